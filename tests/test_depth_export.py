"""Elastic depth in the exports: submodels that skip blocks, in C (host and the virtual
Cortex-M4), ONNX and TFLite, each against PyTorch with the tolerance of its format's tests.

The families (tests/families.py, depth=True) skip more blocks the smaller the submodel:
DS-CNN-S, its image variant and a residual net, whose middle submodel skips a block whose
last layer (an add) is the source of the next block's add (the runtime copies what passes
through into the skip slot, where it already is: the block's input is kept in the same
slot). An architecture file's block checks the edges: it starts at the activation after a
batch norm (fused only where both run), and its kept output is its input, kept by nothing
else.
"""
from __future__ import annotations

import re
import shutil
import subprocess

import numpy as np
import pytest

from csources import CC, CFLAGS, runtime
from families import RESIDUAL, arch_id, make_family, shared_family
from reds.export import abi, export
from reds.export.c.lower import lower
from reds.export.source import Source
from reds.family import load, open as open_family
from test_export_c import check_against_pytorch, needs_cc
from test_export_onnx import check_onnx
from test_export_tflite import BUDGETS, check_tflite, needs_extra
from test_qemu_board import needs_qemu

ARCHS = ["dscnn-s", "dscnn-s-img", RESIDUAL]
MASK = abi.layer_masks()
NM = shutil.which("nm")
# Two edges of a block (`mid`, from the ReLU after bn0 through r1): where it is skipped,
# bn0 runs and its ReLU does not (no fusion), and r1's output, which add2 reads, is what
# passes through (bn0's, kept by nothing else: the runtime copies it to r1's skip slot).
EDGES = """format: reds-arch
version: 1
name: depth-edges
default_dataset: fmnist
ops:
  - {op: conv2d, name: c0, out: 8, kernel: 3, padding: same}
  - {op: batch_norm, name: bn0}
  - {op: relu, name: r0}
  - {op: depthwise_conv2d, name: dw1, kernel: 3, padding: same}
  - {op: batch_norm, name: bn1}
  - {op: relu, name: r1}
  - {op: conv2d, name: c2, out: 8, kernel: 1}
  - {op: batch_norm, name: bn2}
  - {op: add, name: add2, from: r1}
  - {op: flatten, name: flat}
  - {op: dense, name: logits, out: classes}
skippable:
  - {name: mid, first: r0, last: r1}
"""


def _mask(d) -> list[list[int]]:
    src = Source(open_family(d), "test")
    return lower(src, abi.DEFAULT_LAYOUT, "reds_model").mask


def check_depth(d) -> None:
    """Every submodel but the largest skips blocks, the smaller ones more."""
    opened = open_family(d)
    spec, subs = opened.spec, opened.submodels
    skipped = [len(spec.skipped(s.widths)) for s in subs]
    assert skipped[0] > 0 and skipped[-1] == 0 and skipped == sorted(skipped, reverse=True), skipped


def check_mask(d) -> list[list[int]]:
    """The C export's layer mask is the spec's: a row per submodel."""
    check_depth(d)
    opened = open_family(d)
    mask = _mask(d)
    assert [[v == MASK["run"] for v in row] for row in mask] == [opened.spec.runs(s.widths) for s in opened.submodels]
    return mask


@needs_cc
@pytest.mark.parametrize("arch", ARCHS, ids=arch_id)
def test_c_runs_submodels_that_skip_blocks(arch, tmp_path, tmp_path_factory):
    d = shared_family(tmp_path_factory, arch, depth=True)
    mask = check_mask(d)
    if arch == RESIDUAL:  # submodel 1 skips block 1 and runs block 2, whose add reads add1's pass-through
        spec = open_family(d).spec
        add1 = next(l.index for l in spec.layers if l.name == "add1")
        assert mask[1][add1] == MASK["skip_keep"] and mask[1][-1] == MASK["run"]
    fam, _ = load(d)
    x = np.random.default_rng(0).normal(size=(6, *fam.input_shape)).astype(np.float32)
    worst = check_against_pytorch(d, tmp_path, x)
    print(f"{arch_id(arch)} with depth: max |C - PyTorch| = {worst:.3g}")


@pytest.mark.skipif(CC is None or NM is None, reason="needs a C compiler and nm (apt-get install gcc binutils)")
def test_c_sizes_count_the_layer_mask(tmp_path, tmp_path_factory):
    """The compiled model's arena fits every submodel, and the tables the manifest counts
    include the layer mask (a byte per submodel and layer)."""
    d = shared_family(tmp_path_factory, "dscnn-s", depth=True)
    fam, _ = load(d)
    out = tmp_path / "c"
    m = export(open_family(d), "c", out)["c"]
    _, incs = runtime()
    obj = tmp_path / "reds_model.o"
    subprocess.run([CC, *CFLAGS, *incs, f"-I{out}", "-c", str(out / "reds_model.c"), "-o", str(obj)], check=True)
    sizes = {f[3]: int(f[1], 16) for f in (line.split() for line in subprocess.run(
        [NM, "-S", str(obj)], capture_output=True, text=True, check=True).stdout.splitlines()) if len(f) == 4}
    K, nl = len(fam.submodels), len(open_family(d).spec.layers)
    assert sizes["layer_mask"] == K * nl
    assert sizes["arena"] == m["arena_bytes"] == max(s.arena_bytes for s in fam.submodels)
    tables = sum(sizes[n] for n in ("widths", "layer_mask", "macs", "weight_bytes", "arena_bytes", "budgets"))
    assert tables + sum(v for n, v in sizes.items() if re.search(r"_(segs|groups|groups_at|at)$", n)) == m["table_bytes"]


@needs_cc
def test_c_handles_a_skipped_activation_and_a_kept_pass_through(tmp_path):
    arch = tmp_path / "depth-edges.yaml"
    arch.write_text(EDGES)
    d = make_family(tmp_path, str(arch), 1.0, depth=True)
    spec = open_family(d).spec
    at = {l.name: l.index for l in spec.layers}
    mask = check_mask(d)
    run, skip, keep = MASK["run"], MASK["skip"], MASK["skip_keep"]
    assert [[row[at[n]] for n in ("bn0", "r0", "r1", "add2")] for row in mask] == [[run, skip, keep, run]] * 2 + \
        [[run] * 4]
    fam, _ = load(d)
    x = np.random.default_rng(1).normal(size=(4, *fam.input_shape)).astype(np.float32)
    check_against_pytorch(d, tmp_path / "c", x)


@needs_qemu
@pytest.mark.parametrize("layout", abi.layout_names())
@pytest.mark.parametrize("arch", ARCHS, ids=arch_id)
def test_virtual_m4_runs_submodels_that_skip_blocks(arch, layout, tmp_path, tmp_path_factory):
    """On the virtual Cortex-M4 (`reds bench --profile`): every submodel matches PyTorch
    within the bench's tolerance, switching costs the same few cycles for every ordered
    pair, and the profile's skipped layers have no MACs and no more cycles than the flatten
    (a step that runs no kernel either)."""
    from reds.bench.bench import TOLERANCE, bench

    d = shared_family(tmp_path_factory, arch, depth=True)
    opened = open_family(d)
    rep = bench(opened, "qemu-m4", runs=1, build_dir=tmp_path / "build", layout=layout, log=lambda *a: None,
                profile=True)
    K = len(opened.submodels)
    assert rep["outputs_match"] and rep["build"]["layout"] == layout
    for r in rep["submodels"]:
        assert r["max_abs_diff"] <= TOLERANCE and r["argmax_match"], r
    sw = rep["switch"]
    assert len(sw["pairs"]) == K * (K - 1) and sw["max"] <= 64 and sw["min"] == sw["max"], sw
    mask = _mask(d)
    for p, row in zip(rep["profile"]["submodels"], mask):
        layers = p["layers"][-len(row):]
        idle = next(r["cycles"] for r in layers if r["op"] == "flatten")  # a step that runs no kernel either
        for r, m in zip(layers, row):
            assert r["skipped"] == (m != MASK["run"]), r
            if m == MASK["skip"]:
                assert r["macs"] == 0 and r["shape"] is None and r["cycles"] <= idle, r
        assert abs(p["sum_cycles"] - p["run_cycles"]) <= p["rows_timed"] * (p["timer_overhead_cycles"] + 4), p
    print(f"{arch_id(arch)} {layout}: switch {sw['min']}..{sw['max']} cycles over {len(sw['pairs'])} pairs; "
          + ", ".join(f"submodel {r['index']} {r['cycles_median']:,.0f} cycles" for r in rep["submodels"]))


@pytest.mark.parametrize("arch", ARCHS, ids=arch_id)
def test_onnx_runs_submodels_that_skip_blocks(arch, tmp_path, tmp_path_factory):
    d = shared_family(tmp_path_factory, arch, depth=True)
    check_depth(d)
    fam, _ = load(d)
    export(open_family(d), "onnx", tmp_path / "onnx")
    x = np.random.default_rng(0).normal(size=(8, *fam.input_shape)).astype(np.float32)
    diffs = check_onnx(d, tmp_path / "onnx", x)
    print(f"{arch_id(arch)} with depth: max |onnxruntime - PyTorch| per submodel: "
          + ", ".join(f"{v:.2g}" for v in diffs))


@needs_extra
@pytest.mark.parametrize("arch", ARCHS, ids=arch_id)
def test_tflite_runs_submodels_that_skip_blocks(arch, tmp_path, tmp_path_factory):
    d = shared_family(tmp_path_factory, arch, budgets=BUDGETS, depth=True)
    check_depth(d)
    fam, _ = load(d)
    export(open_family(d), "tflite", tmp_path / "tflite")
    x = np.random.default_rng(0).normal(size=(4, *fam.input_shape)).astype(np.float32)
    print(f"{arch_id(arch)} with depth: " + ", ".join(check_tflite(d, tmp_path / "tflite", x)))
