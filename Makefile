# Two commands set everything up: `make test` and `make demo`.
# torch is installed first and pinned to the CPU build: a looser pin pulls CUDA wheels.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
TORCH   := torch==2.13.*
APT_PKGS := gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm qemu-user-static \
            gcc-aarch64-linux-gnu libc6-dev-arm64-cross dataset-fashion-mnist espeak-ng sox
JOBS    ?= $(shell nproc 2>/dev/null || echo 2)
DEMO    ?= runs/demo

.PHONY: test demo bench deps apt clean

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q "$(TORCH)"
	$(BIN)/pip install -q -c constraints.txt -e ".[test,tflite]"
	@touch $@

deps: apt $(STAMP)

# Root installs the Debian packages that are missing; anyone else gets the one command to run.
apt:
	@missing=$$(for p in $(APT_PKGS); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || echo $$p; done); \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then \
	  echo "installing Debian packages: $$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	else \
	  echo "note: missing Debian packages; tests that need them will skip. Install with:"; \
	  echo "  sudo apt-get install -y --no-install-recommends $$missing"; \
	fi

test: deps
	$(BIN)/python -m pytest -q -n $(JOBS) --durations=10

# The whole flow on the embedded default: spoken keywords -> family -> C -> virtual
# Cortex-M4 -> every submodel and every switch timed on the device. The synthesised test
# voices are clean, so the demo trains without noise augmentation, which at this length
# costs it accuracy (try it without --no-augment); on real recordings keep it.
demo: deps
	$(BIN)/reds data synth-kws --out data/synth-kws --per-word 400
	rm -rf $(DEMO)
	$(BIN)/reds train --arch dscnn-s --dataset synth-kws --data-dir data/synth-kws \
	    --width 0.5 --epochs 10 --finetune-epochs 10 --no-augment --out $(DEMO)
	$(BIN)/reds info $(DEMO)
	$(BIN)/reds export $(DEMO) --format onnx --out $(DEMO)/onnx
	$(BIN)/reds build $(DEMO) --board qemu-m4 --out $(DEMO)/build-qemu-m4
	$(BIN)/reds bench $(DEMO) --board qemu-m4 --build $(DEMO)/build-qemu-m4 --json $(DEMO)/bench.json
	$(BIN)/reds report $(DEMO) --out $(DEMO)/report --bench $(DEMO)/bench.json

bench: deps
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf $(VENV) runs build
