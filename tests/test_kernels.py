"""Every float kernel on its own, reference and optimized, against PyTorch.

Each case is a frozen dataclass with an explicit seed (CMSIS-NN's habit): inputs and
weights from numpy.random.default_rng(seed), the reference from torch.nn.functional.
tests/c/kernel_harness.c runs one kernel of one kernel set (firmware/src/kernels/reference,
or an optimized folder with the reference for what it lacks: the rule of `reds build`)
on the case, for every submodel k of a nested widths table, and for conv and dense in
both weight layouts (laid out by the exporter). Shapes are chosen to reach every path
of the optimized kernels: widths not divisible by 4 (and the 2- or 3-channel tail
blocks), stride 2, 1x1 and 2x2 maps, padding on all sides, kernels too large for the
interleave buffer, the depthwise fast paths by rows, by columns and for one-row maps.
"""
from __future__ import annotations

import struct
import subprocess
from dataclasses import dataclass

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from csources import CC, CFLAGS, KERNELS, LDLIBS, RUNTIME, ROOT, kernels_id, runtime
from reds.build import firmware
from reds.export import abi
from reds.export.c.lower import ORDERS, SegTable, row_groups

HARNESS = ROOT / "tests" / "c" / "kernel_harness.c"
ATOL = 2e-5  # float32 sums of up to ~500 products of unit-scale values, in another order
OP = abi.op_codes()
LAYOUT = abi.layouts()
ACT = {"none": 0, "relu": 1, "leaky_relu": 2}  # reds_act_t

pytestmark = pytest.mark.skipif(CC is None, reason="needs a C compiler (apt-get install gcc)")


@dataclass(frozen=True)
class Case:
    name: str
    op: str  # conv2d, depthwise_conv2d, dense, scale_bias, relu, leaky_relu, avg_pool, max_pool, add
    seed: int
    ins: tuple[int, ...]  # input width per submodel (nested)
    outs: tuple[int, ...]  # output width per submodel (channels; = ins for per-channel ops)
    in_hw: tuple[int, int] = (1, 1)
    kernel: tuple[int, int] = (1, 1)
    stride: tuple[int, int] = (1, 1)
    pads: tuple[int, int, int, int] = (0, 0, 0, 0)  # top, bottom, left, right
    bias: bool = True
    act: str = "none"  # conv, depthwise, dense: the activation their store step applies
    bn: bool = False  # conv, depthwise, dense: a batch norm (scale, shift) fused into the store step, for the bias
    slope: float = 0.0
    elem: int = 1  # dense: values per input channel (a flattened H x W map)

    @property
    def out_hw(self) -> tuple[int, int]:
        (ih, iw), (kh, kw), (sh, sw) = self.in_hw, self.kernel, self.stride
        t, b, l, r = self.pads
        return (ih + t + b - kh) // sh + 1, (iw + l + r - kw) // sw + 1


W3 = (3, 5, 7)  # nested widths, none divisible by 4
CASES = [
    # conv2d: the general 4-channel path, 2-row blocks, tails of 3 and 2 channels
    Case("conv3x3-same", "conv2d", 1, (2, 3, 5), W3, (6, 5), (3, 3), pads=(1, 1, 1, 1)),
    Case("conv10x4-s2-first", "conv2d", 2, (1, 1, 1), (5, 9, 14), (13, 10), (10, 4), (2, 2), (4, 5, 1, 2)),
    # the first conv's path (1-3 inputs; 10x4 / 3x3 stride 2, 3x3 stride 1): 4-pixel blocks and a pixel tail,
    # both paddings, 2- and 3-channel tail blocks, inputs that grow with the submodel
    Case("first3x3-s2-rgb", "conv2d", 37, (3, 3, 3), (5, 9, 14), (9, 11), (3, 3), (2, 2), (0, 1, 1, 1)),
    Case("first3x3-s2-grey-pad1", "conv2d", 38, (1, 1, 1), W3, (8, 7), (3, 3), (2, 2), (1, 1, 1, 1), bias=False),
    Case("first3x3-s2-valid", "conv2d", 39, (1, 1, 1), (5, 9, 14), (7, 12), (3, 3), (2, 2)),
    Case("first3x3-s1-2ch", "conv2d", 40, (2, 2, 2), (6, 7, 10), (5, 9), (3, 3), pads=(1, 1, 1, 1)),
    Case("first3x3-s1-nested-cin", "conv2d", 41, (1, 2, 3), (4, 6, 9), (6, 6), (3, 3), pads=(1, 1, 1, 1)),
    Case("first10x4-s2-valid", "conv2d", 42, (1, 1, 1), W3, (12, 9), (10, 4), (2, 2), bias=False),
    Case("conv3x2-s2x1-valid", "conv2d", 3, (2, 4, 6), (2, 6, 10), (9, 7), (3, 2), (2, 1), bias=False),
    Case("conv3x3-2x2map", "conv2d", 4, (3, 4, 6), (4, 6, 11), (2, 2), (3, 3), pads=(1, 1, 1, 1)),
    Case("conv9x9-wide-kernel", "conv2d", 5, (1, 2, 3), (2, 5, 6), (10, 9), (9, 9), pads=(4, 4, 4, 4)),
    Case("conv2x3-odd-pads", "conv2d", 6, (2, 3, 4), (3, 4, 7), (5, 6), (2, 3), pads=(0, 1, 1, 1)),
    # pointwise: 4 x 4 register blocks, pixel tails, 1x1 and 2x2 maps
    Case("pointwise-7x5", "conv2d", 7, (4, 9, 16), (5, 8, 13), (7, 5)),
    Case("pointwise-2x2map", "conv2d", 8, (3, 6, 10), (4, 7, 12), (2, 2)),
    Case("pointwise-1x1map", "conv2d", 9, (5, 8, 12), (6, 9, 10), (1, 1), bias=False),
    # depthwise: fast path by rows, by columns (narrow maps), one-row and small maps, strided, other kernels
    Case("dw3x3-rows", "depthwise_conv2d", 10, W3, W3, (6, 7), (3, 3), pads=(1, 1, 1, 1)),
    Case("dw3x3-cols", "depthwise_conv2d", 11, W3, W3, (25, 5), (3, 3), pads=(1, 1, 1, 1)),
    Case("dw3x3-one-row", "depthwise_conv2d", 12, W3, W3, (1, 6), (3, 3), pads=(1, 1, 1, 1)),
    Case("dw3x3-2x2map", "depthwise_conv2d", 13, W3, W3, (2, 2), (3, 3), pads=(1, 1, 1, 1)),
    Case("dw3x3-1x1map", "depthwise_conv2d", 14, W3, W3, (1, 1), (3, 3), pads=(1, 1, 1, 1)),
    Case("dw3x3-s2", "depthwise_conv2d", 15, W3, W3, (7, 6), (3, 3), (2, 2), (1, 1, 0, 1)),
    # stride-2 3x3 path: padding 0 or 1 on each side, odd and even maps, small maps, no bias
    Case("dw3x3-s2-pad1-8x8", "depthwise_conv2d", 28, W3, W3, (8, 8), (3, 3), (2, 2), (1, 1, 1, 1)),
    Case("dw3x3-s2-same-16x9", "depthwise_conv2d", 29, W3, W3, (16, 9), (3, 3), (2, 2), (0, 1, 1, 1)),
    Case("dw3x3-s2-valid-5x7", "depthwise_conv2d", 30, W3, W3, (5, 7), (3, 3), (2, 2), bias=False),
    Case("dw3x3-s2-4x4map", "depthwise_conv2d", 31, W3, W3, (4, 4), (3, 3), (2, 2), (0, 1, 0, 1)),
    Case("dw3x3-s2-2x2map", "depthwise_conv2d", 32, W3, W3, (2, 2), (3, 3), (2, 2), (0, 1, 0, 1)),
    Case("dw3x3-s2-2x2map-pad1", "depthwise_conv2d", 35, W3, W3, (2, 2), (3, 3), (2, 2), (1, 1, 1, 1)),
    Case("dw3x3-s2-2x2map-pad-t1-l0", "depthwise_conv2d", 36, W3, W3, (2, 2), (3, 3), (2, 2), (1, 1, 0, 1), bias=False),
    Case("dw3x3-s2-3x2", "depthwise_conv2d", 33, W3, W3, (3, 2), (3, 3), (2, 2), (1, 1, 1, 1)),
    Case("dw3x3-1x1map-no-bias", "depthwise_conv2d", 34, W3, W3, (1, 1), (3, 3), pads=(1, 1, 1, 1), bias=False),
    Case("dw5x5-no-bias", "depthwise_conv2d", 16, W3, W3, (6, 6), (5, 5), pads=(2, 2, 2, 2), bias=False),
    # dense: blocks of 4 rows and a tail, after a flatten (elem = H x W) and not
    Case("dense", "dense", 17, (6, 11, 18), (3, 6, 9)),
    Case("dense-flattened-4x3", "dense", 18, (2, 3, 5), (5, 9, 10), elem=12, bias=False),
    # the store step: a batch norm and an activation fused into every path's store
    Case("pointwise-bn-relu", "conv2d", 43, (4, 9, 16), (5, 8, 13), (7, 5), bn=True, act="relu"),
    Case("pointwise-bn-leaky-1x1", "conv2d", 44, (5, 8, 12), (6, 9, 10), (1, 1), bn=True, act="leaky_relu",
         slope=0.1),
    Case("first10x4-bn-relu", "conv2d", 45, (1, 1, 1), (5, 9, 14), (13, 10), (10, 4), (2, 2), (4, 5, 1, 2),
         bn=True, act="relu"),
    Case("first3x3-s2-bias-relu", "conv2d", 46, (3, 3, 3), W3, (9, 11), (3, 3), (2, 2), (0, 1, 1, 1), act="relu"),
    Case("conv3x3-bn-leaky", "conv2d", 47, (2, 3, 5), W3, (6, 5), (3, 3), pads=(1, 1, 1, 1), bn=True,
         act="leaky_relu", slope=0.2),
    Case("conv9x9-bn-relu", "conv2d", 48, (1, 2, 3), (2, 5, 6), (10, 9), (9, 9), pads=(4, 4, 4, 4), bn=True,
         act="relu"),
    Case("dw3x3-rows-bn-relu", "depthwise_conv2d", 49, W3, W3, (6, 7), (3, 3), pads=(1, 1, 1, 1), bn=True,
         act="relu"),
    Case("dw3x3-cols-bn-relu", "depthwise_conv2d", 50, W3, W3, (25, 5), (3, 3), pads=(1, 1, 1, 1), bn=True,
         act="relu"),
    Case("dw3x3-s2-bn-leaky", "depthwise_conv2d", 51, W3, W3, (8, 8), (3, 3), (2, 2), (1, 1, 1, 1), bn=True,
         act="leaky_relu", slope=0.3),
    Case("dw3x3-2x2map-bn-relu", "depthwise_conv2d", 52, W3, W3, (2, 2), (3, 3), pads=(1, 1, 1, 1), bn=True,
         act="relu"),
    Case("dw3x3-1x1map-bn-relu", "depthwise_conv2d", 53, W3, W3, (1, 1), (3, 3), pads=(1, 1, 1, 1), bn=True,
         act="relu"),
    Case("dw3x3-s2-2x2map-bias-relu", "depthwise_conv2d", 54, W3, W3, (2, 2), (3, 3), (2, 2), (0, 1, 0, 1),
         act="relu"),
    Case("dw5x5-bn-relu", "depthwise_conv2d", 55, W3, W3, (6, 6), (5, 5), pads=(2, 2, 2, 2), bn=True, act="relu"),
    Case("dense-bias-relu", "dense", 56, (6, 11, 18), (3, 6, 9), act="relu"),
    Case("dense-bn-leaky", "dense", 57, (2, 3, 5), (5, 9, 10), elem=12, bn=True, act="leaky_relu", slope=0.05),
    # per-channel and element-wise
    Case("scale-bias", "scale_bias", 19, W3, W3, (3, 5)),
    Case("scale-bias-relu", "scale_bias", 20, W3, W3, (3, 5), act="relu"),
    Case("scale-bias-leaky", "scale_bias", 21, W3, W3, (2, 3), act="leaky_relu", slope=0.3),
    Case("relu", "relu", 22, W3, W3, (3, 3)),
    Case("leaky-relu", "leaky_relu", 23, W3, W3, (3, 3), slope=0.05),
    Case("avg-pool-global", "avg_pool", 24, W3, W3, (5, 4), (5, 4), (5, 4)),
    Case("avg-pool-2x2-s1", "avg_pool", 25, W3, W3, (4, 5), (2, 2)),
    Case("max-pool-2x2", "max_pool", 26, W3, W3, (6, 5), (2, 2), (2, 2)),
    Case("add", "add", 27, W3, W3, (3, 4)),
]
OPCODE = {"conv2d": "REDS_OP_CONV2D", "depthwise_conv2d": "REDS_OP_DEPTHWISE_CONV2D", "dense": "REDS_OP_DENSE",
          "scale_bias": "REDS_OP_SCALE_BIAS", "relu": "REDS_OP_RELU", "leaky_relu": "REDS_OP_LEAKY_RELU",
          "avg_pool": "REDS_OP_AVG_POOL", "max_pool": "REDS_OP_MAX_POOL", "add": "REDS_OP_ADD"}


@dataclass
class Tensors:
    weight: np.ndarray  # full width, PyTorch layout
    bias: np.ndarray
    scale: np.ndarray
    shift: np.ndarray
    x: np.ndarray  # full input width


def tensors(c: Case) -> Tensors:
    rng = np.random.default_rng(c.seed)
    I, O = c.ins[-1], c.outs[-1]
    kh, kw = c.kernel
    if c.op == "conv2d":
        w = rng.normal(size=(O, I, kh, kw)) / np.sqrt(I * kh * kw)
    elif c.op == "depthwise_conv2d":
        w = rng.normal(size=(O, 1, kh, kw)) / np.sqrt(kh * kw)
    elif c.op == "dense":
        w = rng.normal(size=(O, I * c.elem)) / np.sqrt(I * c.elem)
    elif c.op == "add":  # the kept tensor a residual adds: the harness reads it as the weights
        w = rng.normal(size=(I, *c.in_hw))
    else:
        w = np.zeros(0)
    shape = (I * c.elem,) if c.op == "dense" else (I, *c.in_hw)
    f = np.float32
    return Tensors(w.astype(f), rng.normal(size=O).astype(f), (rng.random(O) + 0.5).astype(f),
                   rng.normal(size=O).astype(f), rng.normal(size=shape).astype(f))


def reference(c: Case, t: Tensors, k: int) -> np.ndarray:
    cin, cout = c.ins[k], c.outs[k]
    x = torch.from_numpy(t.x[:cin * c.elem])[None]
    b = torch.from_numpy(t.bias[:cout]) if c.bias and not c.bn else None
    top, bottom, left, right = c.pads
    if c.op in ("conv2d", "depthwise_conv2d"):
        w = torch.from_numpy(t.weight[:cout] if c.op == "depthwise_conv2d" else t.weight[:cout, :cin])
        y = F.conv2d(F.pad(x, (left, right, top, bottom)), w, b, c.stride, groups=cout if c.op != "conv2d" else 1)
    elif c.op == "dense":
        y = F.linear(x, torch.from_numpy(t.weight[:cout, :cin * c.elem]), b)
    elif c.op == "scale_bias":
        y = x * torch.from_numpy(t.scale[:cout])[:, None, None] + torch.from_numpy(t.shift[:cout])[:, None, None]
        y = {"none": y, "relu": F.relu(y), "leaky_relu": F.leaky_relu(y, c.slope)}[c.act]
    elif c.op == "relu":
        y = F.relu(x)
    elif c.op == "leaky_relu":
        y = F.leaky_relu(x, c.slope)
    elif c.op == "add":
        y = x + torch.from_numpy(t.weight[:cin])[None]
    elif c.op == "avg_pool":
        y = F.avg_pool2d(x, c.kernel, c.stride)
    else:
        y = F.max_pool2d(x, c.kernel, c.stride)
    if c.op in ("conv2d", "depthwise_conv2d", "dense"):  # the store step
        if c.bn:
            shape = (-1, 1, 1) if y.dim() == 4 else (-1,)
            y = y * torch.from_numpy(t.scale[:cout]).view(shape) + torch.from_numpy(t.shift[:cout]).view(shape)
        y = {"none": y, "relu": F.relu(y), "leaky_relu": F.leaky_relu(y, c.slope)}[c.act]
    return y[0].numpy().reshape(-1)


def layout_weights(c: Case, t: Tensors, layout: str) -> np.ndarray:
    """The weight array as the exporter lays it out (conv / dense), or as PyTorch holds it."""
    if c.op not in ("conv2d", "dense"):
        return t.weight.reshape(-1)
    w = t.weight.reshape(t.weight.shape[0], c.ins[-1], -1)
    return ORDERS[layout](w, list(c.outs), list(c.ins))


def case_bytes(c: Case, t: Tensors, k: int, layout: str) -> bytes:
    (kh, kw), (sh, sw) = c.kernel, c.stride
    oh, ow = c.out_hw
    elem = c.elem if c.op == "dense" else kh * kw
    head = [OP[OPCODE[c.op]], LAYOUT[layout], len(c.ins), k, kh, kw, sh, sw, *c.pads, *c.in_hw, oh, ow, elem,
            ACT[c.act], 2 if c.bn else int(c.bias)]
    data = struct.pack(f"={len(head)}If", *head, c.slope)
    data += struct.pack(f"={2 * len(c.ins)}I", *[v for pair in zip(c.ins, c.outs) for v in pair])
    st = SegTable.of([row_groups(layout, list(c.outs), list(c.ins), elem)[k]] if c.op in ("conv2d", "dense") else [])
    for rows in (st.groups, st.segs):  # the exporter's segment table of submodel k
        data += struct.pack(f"={1 + 4 * len(rows)}I", len(rows), *[v for r in rows for v in r])
    x = t.x[:c.ins[k] * c.elem]
    for arr in (layout_weights(c, t, layout), t.bias, t.scale[:c.outs[k]], t.shift[:c.outs[k]], x):
        a = np.ascontiguousarray(arr, dtype="=f4").reshape(-1)
        data += struct.pack("=I", a.size) + a.tobytes()
    return data


@pytest.fixture(scope="module", params=KERNELS, ids=kernels_id)
def harness(request, tmp_path_factory):
    kernels = request.param
    exe = tmp_path_factory.mktemp("kernels") / f"kernels-{kernels_id(kernels)}"
    srcs, incs = runtime(kernels)
    srcs = [s for s in srcs if not s.endswith("reds_runtime.c")]  # one kernel, no layer loop
    r = subprocess.run([CC, *CFLAGS, *incs, str(HARNESS), *srcs, "-o", str(exe), *LDLIBS], capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stderr
    return kernels, exe


def run_case(exe, c: Case, t: Tensors, k: int, layout: str) -> np.ndarray:
    r = subprocess.run([str(exe)], input=case_bytes(c, t, k, layout), capture_output=True, timeout=30)
    assert r.returncode == 0, (c.name, r.returncode, r.stderr.decode(errors="replace"))
    return np.frombuffer(r.stdout, dtype="=f4")


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_kernel_matches_pytorch(harness, case):
    kernels, exe = harness
    t = tensors(case)
    layouts = abi.layout_names() if case.op in ("conv2d", "dense") else (abi.DEFAULT_LAYOUT,)
    for layout in layouts:
        for k in range(len(case.ins)):
            want = reference(case, t, k)
            got = run_case(exe, case, t, k, layout)
            assert got.shape == want.shape, (layout, k, got.shape, want.shape)
            diff = float(np.abs(got - want).max())
            assert diff <= ATOL, f"{case.name} ({kernels_id(kernels)}, {layout}, submodel {k}): max |C - torch| {diff:.3g}"
            assert np.abs(want).max() > 0.05  # a real signal


def test_every_kernel_has_cases():
    """Each op the runtime has a float kernel for is tested here (the int8 ones, *_s8.c, in
    test_kernels_s8.py), and each optimized kernel replaces a reference kernel of the same
    name (the fallback rule)."""
    ref = {p.stem.removesuffix("_f32") for p in firmware.kernel_dir("reference").glob("*_f32.c")}
    assert ref == {c.op for c in CASES}
    assert all(p.stem.endswith(("_f32", "_s8")) for p in firmware.kernel_dir("reference").glob("*.c"))
    for target in firmware.kernel_targets():
        opt = {p.name for p in firmware.kernel_dir(target).glob("*.c")}
        assert opt and opt <= {p.name for p in firmware.kernel_dir("reference").glob("*.c")}
        picked = firmware.kernel_sources(target)
        assert [p.name for p in picked] == sorted(p.name for p in firmware.kernel_dir("reference").glob("*.c"))
        assert all(p.parent.name == (target if p.name in opt else "reference") for p in picked)


def test_headers_can_share_one_flat_folder():
    """make and PlatformIO builds copy the picked files into one folder: no two may share a name."""
    for kernels in KERNELS:
        names = [p.name for p in firmware.sources(kernels) + firmware.headers(kernels)]
        assert len(names) == len(set(names)), kernels


def test_optimized_kernels_differ_from_the_reference():
    """A negative control: the optimized files are not copies of the reference ones."""
    for target in firmware.kernel_targets():
        for p in firmware.kernel_dir(target).glob("*.c"):
            assert p.read_text() != (RUNTIME / "kernels" / "reference" / p.name).read_text()
