"""The int8 C model (`reds export --format c` of an int8 family) and the int8 runtime
(reds_run_s8.c), against the integer reference (reds.quant), bit for bit.

- Every architecture the quantizer takes, both layouts, both kernel sets: compiled with
  tests/c/harness.c on the host, every submodel's float logits equal the reference's
  (QuantFamily.logits) exactly, on inputs of twice the calibration's spread (saturating
  inputs and activations). The cost tables are the export's.
- Cross-compiled for the Cortex-M4F: the model holds no float weight, bias or batch norm;
  the int8 arrays, the tables and the arena have exactly the sizes the manifest declares,
  and take less flash than the float model's (benchmarks/int8.py measures full widths).
- On the virtual board (QEMU's Cortex-M4, the DSP kernels): `reds bench` of an int8
  DS-CNN-S family, every submodel bit for bit the reference's, switching O(1) (the same
  few cycles for every pair, <= 64), and `--profile` rows per int8 step.
- The int8 family is a different family: its hash differs from the float one's, so a
  device that runs the float model is refused for it.
"""
from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from csources import ARM_CC, CFLAGS, KERNELS, M4, kernels_id, runtime
from families import make_family, random_inputs
from reds import quant
from reds.export import export
from reds.family import open as open_family
from reds.cli import main
from test_export_c import ARM_NM, compile_run, needs_cc
from test_qemu_board import needs_qemu

ARCHS = ("dscnn-s", "cnn-s", "dnn-s", "dscnn-s-img", "mobilenetv1-025")
LAYOUTS = ("nested", "rowmajor")
torch.set_num_threads(1)


@pytest.fixture(scope="module", params=ARCHS)
def int8_family(request, tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp(f"c8-{request.param}")
    src = make_family(tmp, request.param, 0.25)
    quant.quantize(src, tmp / "int8", random_inputs(open_family(src).spec.input_shape, 128, 1))
    (tmp / "int8" / "float-source").write_text(str(src))  # for the hash test (not read by reds)
    return tmp / "int8"


@needs_cc
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("kernels", KERNELS, ids=kernels_id)
def test_c_int8_is_the_integer_reference(int8_family, layout, kernels, tmp_path):
    qf = quant.open(int8_family)
    fam = qf.family
    out = tmp_path / "c"
    body = export(fam, "c", out, layout=layout)
    assert body["c"]["dtype"] == "int8" and body["c"]["layout"] == layout
    x = random_inputs(fam.spec.input_shape, 8, 7, spread=2.0)
    costs, outs = compile_run(out, x, kernels=kernels)
    for k, s in enumerate(fam.submodels):
        ref = qf.logits(x, k)
        assert np.array_equal(outs[k], ref), (k, np.abs(outs[k] - ref).max())
        macs, weight_bytes, arena, budget = costs[k]
        assert macs == s.macs and budget == pytest.approx(s.budget)
        assert 0 < weight_bytes < s.weight_bytes / 2 and arena <= body["c"]["arena_bytes"]


@pytest.mark.skipif(ARM_CC is None or ARM_NM is None,
                    reason="needs arm-none-eabi-gcc (apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi)")
def test_cortex_m4_int8_sizes(int8_family, tmp_path):
    qf = quant.open(int8_family)
    fam = qf.family
    out = tmp_path / "c"
    info = export(fam, "c", out)["c"]
    text = (out / "reds_model.c").read_text()
    assert not re.search(r"static const float \w+_(weight|bias|scale|shift)\[", text.replace("out_scale[", ""))  # no float weights
    srcs, incs = runtime("cortex_m")
    obj = tmp_path / "reds_model.o"
    r = subprocess.run([ARM_CC, *CFLAGS, *M4, "-c", *incs, f"-I{out}", str(out / "reds_model.c"), "-o", str(obj)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    sizes = {}
    for line in subprocess.run([ARM_NM, "-S", str(obj)], capture_output=True, text=True, check=True).stdout.splitlines():
        f = line.split()
        if len(f) == 4:
            sizes[f[3]] = (int(f[1], 16), f[2])
    assert sizes["arena"] == (info["arena_bytes"], "b")
    arrays = {n: s for n, (s, kind) in sizes.items() if re.search(r"_(weight|qbias|qmult|qshift)$", n)}
    assert all(sizes[n][1] == "r" for n in arrays)
    assert sum(arrays.values()) == info["weight_array_bytes"]
    assert sum(s for n, s in arrays.items() if n.endswith("_weight")) == info["shared_bytes"]
    tables = sum(sizes[n][0] for n in ("widths", "macs", "weight_bytes", "arena_bytes", "budgets", "layers_s8",
                                       "in_qa", "in_qb", "out_scale", "out_zero"))
    tables += sum(s for n, (s, kind) in sizes.items() if re.search(r"_(segs|groups|groups_at|q)$", n))
    assert tables == info["table_bytes"]
    float_info = export(open_family((Path(int8_family) / "float-source").read_text()), "c", tmp_path / "f")["c"]
    flash, float_flash = sum(arrays.values()) + tables, float_info["weight_array_bytes"] + float_info["table_bytes"]
    # a byte per weight, not 4; at these tiny widths the per-channel tables (int8: 9 B per
    # channel and submodel, float: 8) and segment tables weigh as much as the weights
    assert flash < 0.7 * float_flash
    assert info["largest_weight_bytes"] < 0.4 * fam.submodels[-1].weight_bytes


def test_int8_family_has_its_own_hash(int8_family):
    fam8 = open_family(int8_family)
    src = open_family((Path(int8_family) / "float-source").read_text())
    assert fam8.manifest.weights_sha256 == src.manifest.weights_sha256  # the same float weights
    assert fam8.hash != src.hash  # but another family: its tables are in its hash
    before = fam8.hash
    npz = Path(int8_family) / "int8.npz"
    data = npz.read_bytes()
    npz.write_bytes(data + b"\0")
    try:
        assert open_family(int8_family).hash != before
    finally:
        npz.write_bytes(data)


def test_manifest_records_the_int8_export(int8_family, tmp_path):
    out = tmp_path / "c"
    export(open_family(int8_family), "c", out)
    m = json.loads((out / "manifest.json").read_text())
    assert m["c"]["dtype"] == "int8" and m["family_hash"] == open_family(int8_family).hash
    h = (out / "reds_model.h").read_text()
    assert "int8; layout nested" in h and f"#define REDS_MODEL_ARENA_BYTES {m['c']['arena_bytes']}u" in h


@needs_qemu
def test_int8_on_the_virtual_m4(tmp_path_factory, capsys):
    tmp = tmp_path_factory.mktemp("q8-qemu")
    src = make_family(tmp, "dscnn-s", 0.25)
    quant.quantize(src, tmp / "int8", random_inputs(open_family(src).spec.input_shape, 128, 1))
    out = tmp / "bench.json"
    rc = main(["bench", str(tmp / "int8"), "--board", "qemu-m4", "--build", str(tmp / "build"), "--runs", "2",
               "--profile", "--json", str(out)])
    text = capsys.readouterr().out
    assert rc == 0, text
    rep = json.loads(out.read_text())
    assert rep["reference"] == "int8" and rep["tolerance"] == 0 and rep["outputs_match"]
    assert all(r["max_abs_diff"] == 0 and r["argmax_match"] for r in rep["submodels"])
    sw = rep["switch"]
    assert len(sw["pairs"]) == 6 and sw["max"] <= 64 and sw["min"] == sw["max"]
    assert "matches the int8 reference (reds.quant) bit for bit" in text
    spec = open_family(tmp / "int8").spec
    for p, sub in zip(rep["profile"]["submodels"], rep["submodels"]):
        rows = p["layers"]
        assert [r["name"] for r in rows] == ["input"] + [l.name for l in spec.layers]
        assert {r["op"] for r in rows if r["fused"]} == {"scale_bias", "relu"}
        assert abs(p["run_cycles"] - sub["cycles_median"]) <= 50
