"""The Raspberry Pi harness (boards/rpi) and `reds serve`, end to end on this machine.

- `reds build --board rpi --cross`: the runtime, protocol and model as a static aarch64
  Linux program; run under qemu-aarch64-static on a pseudo-terminal it creates, driven by
  `reds bench --port <pty>`: every submodel matches PyTorch, and a trace replay on the
  same connection picks on the device (cost/deadline) the largest submodel that fits.
- `reds serve --runtime onnxruntime` on a pty, driven by `reds bench --port`.
Needs gcc-aarch64-linux-gnu, libc6-dev-arm64-cross and qemu-user-static (skips, naming
them, without).
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from families import shared_family
from processes import start_announcing
from reds.build import build
from reds.build.boards import get_board
from reds.cli import main
from reds.device.emulator import stop_process
from reds.family import open as open_family

ROOT = Path(__file__).resolve().parents[1]
TRACES = ROOT / "benchmarks" / "traces"


def _cross_missing() -> list[str]:
    miss = []
    if shutil.which("aarch64-linux-gnu-gcc") is None:
        miss.append("gcc-aarch64-linux-gnu")
    else:
        lib = subprocess.run(["aarch64-linux-gnu-gcc", "-print-file-name=libc.a"], capture_output=True,
                             text=True).stdout.strip()
        if not Path(lib).is_absolute():
            miss.append("libc6-dev-arm64-cross")
    if shutil.which("qemu-aarch64-static") is None:
        miss.append("qemu-user-static")
    return miss


MISSING = _cross_missing()
needs_cross = pytest.mark.skipif(bool(MISSING), reason=f"needs Debian packages {' '.join(MISSING)} "
                                 f"(apt-get install {' '.join(MISSING)})")


@pytest.fixture(scope="module")
def fam(tmp_path_factory) -> Path:
    return shared_family(tmp_path_factory, "dscnn-s", 0.25)


def start_pty_server(cmd: list[str], timeout: float = 60.0) -> tuple[subprocess.Popen, str]:
    """Start a server that prints `pty PATH` first; return it and PATH."""
    return start_announcing(cmd, "pty", timeout)


def _make_flags(cc: str) -> list[str]:
    """The compile flags boards/host/Makefile (host and rpi) gives a build with compiler `cc`."""
    r = subprocess.run(["make", "-s", "-f", str(ROOT / "boards" / "host" / "Makefile"), "flags", f"CC={cc}"],
                       capture_output=True, text=True, check=True)
    return r.stdout.split()


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_native_builds_vectorise_and_cross_builds_never_target_this_machine():
    native = _make_flags("cc")  # optimised (GCC vectorises from -O2 on), for this machine's vector units
    assert "-O2" in native and "-march=native" in native and "-ffp-contract=fast" in native
    a64 = _make_flags("aarch64-linux-gnu-gcc")  # the rpi board's cross compiler: the Pi 4's core
    assert "-O2" in a64 and "-mcpu=cortex-a72" in a64 and not any(f.startswith("-march") for f in a64)
    assert get_board("rpi").toolchain["cross_cc"] == "aarch64-linux-gnu-gcc" and get_board("rpi").cpu == "cortex-a72"
    other = _make_flags("arm-linux-gnueabihf-gcc")  # any other cross compiler: generic
    assert "-O2" in other and not any(f.startswith(("-march", "-mcpu")) for f in other)


def test_board_facts():
    b = get_board("rpi")
    assert (b.build, b.timer, b.cycle, b.clock_hz) == ("make", "clock_gettime-ns", "ns", 1_000_000_000)
    assert not b.virtual and all((b.folder / s).is_file() for s in b.sources)


@needs_cross
def test_cross_build_under_qemu_over_a_pty(fam, tmp_path, capsys):
    res = build(open_family(fam), "rpi", tmp_path / "rpi", cross=True)
    assert res.kind == "make" and Path(res.elf).is_file()
    head = Path(res.elf).read_bytes()[:20]
    assert head[:4] == b"\x7fELF" and int.from_bytes(head[18:20], "little") == 183  # EM_AARCH64
    for f in ("Makefile", "main.c", "reds_config.h", "reds_protocol.c", "dscnn_s.c"):
        assert (tmp_path / "rpi" / f).is_file()  # self-contained: copy it to a Pi and `make`
    log = (tmp_path / "rpi" / "build.log").read_text()  # the compile line make echoed
    line = next(l for l in log.splitlines() if l.startswith("aarch64-linux-gnu-gcc ")).split()
    assert "-O2" in line and "-mcpu=cortex-a72" in line and "-march=native" not in log
    proc, pty = start_pty_server(["qemu-aarch64-static", res.elf, "pty"])
    try:
        out = tmp_path / "trace"
        rc = main(["bench", str(fam), "--port", pty, "--runs", "3", "--json", str(tmp_path / "b.json"),
                   "--trace", str(TRACES / "periodic_corunner.csv"), "--trace-out", str(out)])
        text = capsys.readouterr().out
        assert rc == 0, text
    finally:
        stop_process(proc)
    rep = json.loads((tmp_path / "b.json").read_text())
    assert rep["board"] == "rpi" and rep["timer"] == "clock_gettime-ns" and rep["cycle"] == "ns"
    assert rep["outputs_match"] and all(r["max_abs_diff"] <= 1e-4 for r in rep["submodels"])
    assert "every submodel matches PyTorch" in text
    tr = json.loads((out / "trace.json").read_text())
    assert tr["pick"].startswith("on the device") and tr["steps"] == 81
    costs = tr["costs_cycles"]
    for r in tr["rows"]:
        fit = [k for k, c in enumerate(costs) if c <= r["deadline_cycles"]]
        assert r["k"] == (max(fit) if fit else -1)
    assert (out / "trace.png").stat().st_size > 10_000
    print(f"rpi under qemu-aarch64-static: switch median {rep['switch']['median']} ns, "
          f"inference {[r['cycles_median'] for r in rep['submodels']]} ns", file=sys.stderr)


def test_serve_onnxruntime_over_a_pty(fam, tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    proc, pty = start_pty_server([sys.executable, "-m", "reds.cli", "serve", str(fam), "--runtime", "onnxruntime"])
    try:
        rc = main(["bench", str(fam), "--port", pty, "--runs", "3", "--profile", "--json", str(tmp_path / "b.json")])
        text = capsys.readouterr().out
        assert rc == 0, text
    finally:
        stop_process(proc)
    rep = json.loads((tmp_path / "b.json").read_text())
    assert rep["profile"] == {"supported": False, "reason": "not-supported"}  # onnxruntime: whole runs only
    assert "the device cannot time layers" in text
    assert rep["board"] == "host-onnxruntime" and rep["timer"] == "perf_counter-ns"
    assert rep["outputs_match"] and len(rep["submodels"]) == 3


def _untimed(text: str) -> list[str]:
    """Reply lines with the timing fields (cycles, overhead, lap) and the board's names blanked."""
    out = []
    for line in text.replace("\r", "").splitlines():
        line = re.sub(r"(cycles|overhead|total|min|median|max)=\d+", r"\1=T", line)
        line = re.sub(r"board=\S+ timer=\S+ cycle=\S+", "board=B", line)
        out.append(re.sub(r"m-lap-us-\d+", "m-lap-us-T", line))
    return out


def test_c_harness_and_python_server_speak_the_same_protocol(fam, tmp_path):
    """cost / deadline (and the rest) give the same replies from the C harness (native
    build, stdin/stdout) and from reds serve's Python protocol."""
    if shutil.which("cc") is None or shutil.which("make") is None:
        pytest.skip("needs cc and make")
    from reds.device.protocol import Protocol

    res = build(open_family(fam), "rpi", tmp_path / "native")
    line = next(l for l in (tmp_path / "native" / "build.log").read_text().splitlines() if " -std=c99 " in l)
    assert {"-O2", "-march=native"} <= set(line.split())  # the Pi harness's native build
    script = ("name%list%cost 0 500%cost 1 900%cost 2 1500%deadline 499%deadline 500%deadline 1499%"
              "deadline 99999%cost 3 1%cost 1%deadline x%budget 0%select 1%info%loop 1%layers%layers 1%"
              "db load 8%layers%db 00000000%infer 1 0%input%input pcm%input features%input bogus%input a b%"
              "bogus%help%")
    # per-layer cycles: the C harness's rows, where onnxruntime (a whole graph) says not-supported
    tail = "db load 8%db 0000000000000000%layers%name%"
    c, c_tail = (subprocess.run([res.elf, "-"], input=x.encode(), capture_output=True, timeout=60).stdout.decode()
                 for x in (script, tail))

    class Zero:
        def run(self, k, x):
            return np.zeros(12, np.float32)

    def serve(text):
        got = []
        proto = Protocol(open_family(fam), Zero(), got.append, "x")
        proto.hello()
        proto.feed(text.encode())
        return b"".join(got).decode()

    py, py_tail = serve(script), serve(tail)
    assert _untimed(py) == _untimed(c)
    lines = _untimed(c)
    assert lines.count("m-error-no-input") == 1 and "m-error-load-incomplete" in lines and "m-help layers%" in lines
    c_rows = [l for l in _untimed(c_tail) if l.startswith("m-layer")]
    py_lines = _untimed(py_tail)
    assert len(c_rows) == 3 + len(open_family(fam).spec.layers) and c_rows[-1].startswith("m-layers-total")
    assert "m-error-not-supported" in py_lines and not any(l.startswith("m-layer") for l in py_lines)
    assert [l for l in _untimed(c_tail) if not l.startswith("m-layer")] == \
        [l for l in py_lines if l != "m-error-not-supported"]
    assert "m-deadline k=0 cost=500 cycles=T" in lines and "m-deadline k=1 cost=900 cycles=T" in lines
    assert "m-deadline k=2 cost=1500 cycles=T" in lines and lines.count("m-error-no-submodel-fits") == 2
    assert "m-error-out-of-range" in lines and "m-error-wrong-number-of-arguments" in lines
