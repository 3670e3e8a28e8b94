"""Every int8 kernel on its own, reference and optimized, against reds.quant.ops, bit for bit.

Each case is a frozen dataclass with an explicit seed: int8 inputs and weights, int32
biases, zero points and per-channel multipliers (ops.quantize_multiplier of random reals
in [1e-4, 2)) from numpy.random.default_rng. tests/c/kernel_s8_harness.c runs one int8
kernel of one kernel set (firmware/src/kernels/reference, or an optimized folder with the
reference for what it lacks: the rule of `reds build`) on the case, for every submodel k
of a nested widths table, and for conv and dense in both weight layouts (laid out by the
exporter, as int8). Every submodel has its own requantization record (bias, multipliers,
shifts, zero points: each is calibrated on its own); the weights are one int8 array. The
expected output is the ops.py function on the submodel's slice of the weights; the C
output must equal it exactly, and the case must not be degenerate (outputs spread, not all
clamped). On the host the cortex_m kernels run their portable C; on QEMU's Cortex-M4
(mps2-an386, semihosting) the same cases run their DSP instructions (SXTB16, SXTAB16, SMLAD).
"""
from __future__ import annotations

import math
import shutil
import struct
import subprocess
from dataclasses import dataclass

import numpy as np
import pytest

from csources import ARM_CC, CC, CFLAGS, KERNELS, M4, RUNTIME, ROOT, SHIPPED, kernels_id, runtime
from reds.build import firmware
from reds.export import abi
from reds.export.c.lower import ORDERS, SegTable, row_groups
from reds.quant import ops

HARNESS = ROOT / "tests" / "c" / "kernel_s8_harness.c"
REFERENCE = RUNTIME / "kernels" / "reference"
OP = abi.op_codes()
OPCODE = {"conv2d": "REDS_OP_CONV2D", "depthwise_conv2d": "REDS_OP_DEPTHWISE_CONV2D", "dense": "REDS_OP_DENSE",
          "avg_pool": "REDS_OP_AVG_POOL", "max_pool": "REDS_OP_MAX_POOL", "add": "REDS_OP_ADD"}
WEIGHTED = ("conv2d", "depthwise_conv2d", "dense")
QEMU = shutil.which("qemu-system-arm")

pytestmark = pytest.mark.skipif(CC is None, reason="needs a C compiler (apt-get install gcc)")


@dataclass(frozen=True)
class Case:
    name: str
    op: str  # conv2d, depthwise_conv2d, dense, avg_pool, max_pool, add
    seed: int
    ins: tuple[int, ...]  # input width per submodel (nested)
    outs: tuple[int, ...]  # output width per submodel (channels; = ins for per-channel ops)
    in_hw: tuple[int, int] = (1, 1)
    kernel: tuple[int, int] = (1, 1)
    stride: tuple[int, int] = (1, 1)
    pads: tuple[int, int, int, int] = (0, 0, 0, 0)  # top, bottom, left, right
    bias: bool = True
    act: str = "none"  # none, relu (the clamp lo = max(zy, -128)), leaky_relu (the slope's requantization)
    slope: float = 0.0
    elem: int = 1  # dense: values per input channel (a flattened H x W map)
    zx: int | None = None  # the input's zero point (None: drawn per submodel, nonzero)
    sweep: bool = False  # dense: biases over all of int32 and shifts from -31 to 30 (the store's edges)

    @property
    def out_hw(self) -> tuple[int, int]:
        if self.op == "dense":
            return 1, 1
        (ih, iw), (kh, kw), (sh, sw) = self.in_hw, self.kernel, self.stride
        t, b, l, r = self.pads
        return (ih + t + b - kh) // sh + 1, (iw + l + r - kw) // sw + 1


W3 = (3, 5, 7)  # nested widths, none divisible by 4
CASES = [
    # conv2d: general 3x3 'same', the first layer's 10x4 stride 2 with asymmetric pads, odd kernels
    Case("conv3x3-pad1", "conv2d", 101, (2, 3, 5), W3, (6, 5), (3, 3), pads=(1, 1, 1, 1)),
    Case("conv3x3-pad1-relu", "conv2d", 102, (3, 5, 7), (4, 6, 9), (5, 6), (3, 3), pads=(1, 1, 1, 1), act="relu"),
    Case("conv3x3-pad1-leaky", "conv2d", 103, (3, 5, 7), (4, 6, 9), (4, 5), (3, 3), pads=(1, 1, 1, 1),
         act="leaky_relu", slope=0.1),
    Case("conv10x4-s2-asym", "conv2d", 104, (1, 1, 1), (4, 6, 9), (13, 10), (10, 4), (2, 2), (4, 5, 1, 2),
         act="relu"),
    Case("conv3x3-1ch-pad1-relu", "conv2d", 143, (1, 1, 1), (3, 5, 8), (7, 6), (3, 3), pads=(1, 1, 1, 1), act="relu"),
    Case("conv10x4-s2-1ch-leaky", "conv2d", 144, (1, 1, 1), (2, 3, 5), (11, 9), (10, 4), (2, 2), (4, 5, 1, 2),
         act="leaky_relu", slope=0.2),
    Case("conv10x4-s2-asym-nobias", "conv2d", 105, (1, 2, 3), W3, (12, 9), (10, 4), (2, 2), (4, 5, 1, 2),
         bias=False),
    Case("conv3x3-s2-rgb", "conv2d", 106, (3, 3, 3), (5, 9, 14), (9, 11), (3, 3), (2, 2), (0, 1, 1, 1)),
    Case("conv3x2-s2x1-valid", "conv2d", 107, (2, 4, 6), (2, 6, 10), (9, 7), (3, 2), (2, 1), act="leaky_relu",
         slope=0.2),
    Case("conv3x3-2x2map", "conv2d", 108, (3, 4, 6), (4, 6, 11), (2, 2), (3, 3), pads=(1, 1, 1, 1)),
    # pointwise: widths not divisible by 4 (the fast path's row blocks and tails), 1x1 and 2x2 maps
    Case("pointwise-7x5", "conv2d", 109, (5, 9, 13), (6, 7, 10), (7, 5)),
    Case("pointwise-7x5-relu-zx-128", "conv2d", 110, (5, 9, 13), (6, 7, 10), (7, 5), act="relu", zx=-128),
    Case("pointwise-leaky", "conv2d", 111, (4, 9, 15), (5, 8, 13), (3, 4), act="leaky_relu", slope=0.05),
    Case("pointwise-widths-4x", "conv2d", 145, (4, 12, 20), (4, 6, 10), (5, 5), act="relu"),
    # the buffered path's limit (its weight buffer's span exactly 2 KB at 512 inputs), and past it
    Case("pointwise-cin512", "conv2d", 147, (258, 401, 512), (3, 5, 6), (3, 3)),
    Case("pointwise-cin520", "conv2d", 148, (200, 380, 520), (2, 4, 5), (2, 3), act="relu"),
    Case("pointwise-2x2map", "conv2d", 112, (3, 6, 10), (4, 7, 12), (2, 2), act="relu"),
    Case("pointwise-1x1map", "conv2d", 113, (5, 8, 12), (6, 9, 10), (1, 1), bias=False),
    Case("pointwise-1x1map-leaky", "conv2d", 114, (3, 5, 7), (4, 6, 9), (1, 1), act="leaky_relu", slope=0.3),
    # depthwise: 3x3 stride 1 and stride 2 with pads, small maps
    Case("dw3x3-s1-pad1", "depthwise_conv2d", 115, W3, W3, (6, 7), (3, 3), pads=(1, 1, 1, 1)),
    Case("dw3x3-s1-pad1-relu", "depthwise_conv2d", 116, W3, W3, (5, 5), (3, 3), pads=(1, 1, 1, 1), act="relu"),
    Case("dw3x3-s1-pad1-even-rows", "depthwise_conv2d", 146, W3, W3, (5, 6), (3, 3), pads=(1, 1, 1, 1)),
    Case("dw3x3-s2-pad", "depthwise_conv2d", 117, W3, W3, (8, 8), (3, 3), (2, 2), (1, 1, 1, 1), act="leaky_relu",
         slope=0.1),
    Case("dw3x3-s2-asym", "depthwise_conv2d", 118, W3, W3, (7, 6), (3, 3), (2, 2), (0, 1, 0, 1), bias=False),
    Case("dw3x3-2x2map", "depthwise_conv2d", 119, W3, W3, (2, 2), (3, 3), pads=(1, 1, 1, 1)),
    Case("dw3x3-1x1map-relu", "depthwise_conv2d", 120, W3, W3, (1, 1), (3, 3), pads=(1, 1, 1, 1), act="relu"),
    Case("dw5x5", "depthwise_conv2d", 121, W3, W3, (6, 6), (5, 5), pads=(2, 2, 2, 2)),
    # dense: flat (elem 1) and after a flatten (elem = H x W)
    Case("dense", "dense", 122, (6, 11, 18), (3, 6, 9)),
    Case("dense-relu", "dense", 123, (6, 11, 18), (3, 6, 9), act="relu"),
    Case("dense-flattened-4x3", "dense", 124, (2, 3, 5), (5, 9, 10), elem=12, bias=False),
    Case("dense-flattened-leaky", "dense", 125, (2, 3, 5), (5, 9, 10), elem=12, act="leaky_relu", slope=0.1),
    Case("dense-widths-4x", "dense", 142, (4, 8, 16), (4, 8, 12), elem=3, act="relu"),
    # the store's edges: biases across int32 (saturating sums), shifts from -31 to 30
    Case("dense-store-sweep", "dense", 127, (1, 2, 3), (24, 40, 64), sweep=True),
    Case("dense-store-sweep-leaky", "dense", 128, (1, 2, 3), (24, 40, 64), sweep=True, act="leaky_relu",
         slope=0.25),
    # pools and the residual add
    Case("avg-pool-global", "avg_pool", 129, W3, W3, (5, 4), (5, 4), (5, 4)),
    Case("avg-pool-2x2", "avg_pool", 130, W3, W3, (6, 5), (2, 2), (2, 2)),
    Case("avg-pool-2x2-s1", "avg_pool", 131, W3, W3, (4, 5), (2, 2)),
    Case("max-pool-2x2", "max_pool", 132, W3, W3, (6, 5), (2, 2), (2, 2)),
    Case("max-pool-3x3-s1", "max_pool", 133, W3, W3, (5, 5), (3, 3)),
    Case("add", "add", 134, W3, W3, (3, 4)),
    Case("add-relu", "add", 135, W3, W3, (4, 3), act="relu"),
]


@dataclass
class Tensors:
    weight: np.ndarray  # int8 values, full width: [O, I, kh, kw], [O, kh, kw] or [O, I * elem]
    x: np.ndarray  # int8 values, full input width


@dataclass
class Record:
    """Submodel k's requantization (reds_requant_t), pool multiplier or add parameters."""
    zx: int
    zy: int
    lo: int
    hi: int
    bias: np.ndarray  # [cout] int32 (zeros when the case has no bias)
    mult: np.ndarray  # [cout]
    shift: np.ndarray  # [cout]
    slope: tuple[int, int] | None
    pool: tuple[int, int] = (0, 0)
    add: tuple = ()  # za, zb, (ma, ea), (mb, eb), (mo, eo)
    skip: np.ndarray | None = None  # add: input b


def _loguniform(rng, lo: float, hi: float, n: int) -> np.ndarray:
    return np.exp(rng.uniform(math.log(lo), math.log(hi), n))


def _zero_point(rng) -> int:
    z = 0
    while z == 0:
        z = int(rng.integers(-60, 61))
    return z


def _taps(c: Case, k: int) -> int:
    kh, kw = c.kernel
    return {"conv2d": c.ins[k] * kh * kw, "depthwise_conv2d": kh * kw, "dense": c.ins[k] * c.elem}.get(c.op, 1)


def _reals(c: Case) -> np.ndarray:
    """Each output channel's real multiplier (shared by the submodels, which jitter it):
    log-uniform in [1e-4, 2), channel 0 in [1, 2) (a left shift), channel 1 in [1e-4, 1e-3)."""
    rng = np.random.default_rng((c.seed, 1))
    r = _loguniform(rng, 1e-4, 2.0, c.outs[-1])
    r[0] = rng.uniform(1.0, 2.0)
    if len(r) > 1:
        r[1] = _loguniform(rng, 1e-4, 1e-3, 1)[0]
    return r


def tensors(c: Case) -> Tensors:
    rng = np.random.default_rng(c.seed)
    I, O = c.ins[-1], c.outs[-1]
    kh, kw = c.kernel
    shape = (I * c.elem,) if c.op == "dense" else (I, *c.in_hw)
    x = rng.integers(-128, 128, size=shape)
    if c.op in WEIGHTED:
        # weights' amplitude per output channel so that the channel's real multiplier
        # brings its sums to tens of int8 steps (clipped to int8: some channels saturate)
        n = _taps(c, len(c.ins) - 1)
        amp = np.clip(np.rint(60 * math.sqrt(3) / (_reals(c) * math.sqrt(n) * 80)), 1, 127).astype(np.int64)
        wshape = {"conv2d": (O, I, kh, kw), "depthwise_conv2d": (O, kh, kw), "dense": (O, I * c.elem)}[c.op]
        w = rng.integers(-127, 128, size=wshape)
        w = np.clip(np.rint(w * amp.reshape((-1,) + (1,) * (len(wshape) - 1)) / 127), -127, 127)
        if c.sweep:
            w = np.ones(wshape)
        return Tensors(w.astype(np.int64), x)
    return Tensors(np.zeros(0, dtype=np.int64), x)


def record(c: Case, k: int) -> Record:
    rng = np.random.default_rng((c.seed, 2, k))
    cout = c.outs[k]
    zx = c.zx if c.zx is not None else _zero_point(rng)
    zy = _zero_point(rng)
    lo = max(zy, ops.INT8_MIN) if c.act == "relu" else ops.INT8_MIN
    hi = ops.INT8_MAX
    slope = ops.quantize_multiplier(c.slope) if c.act == "leaky_relu" else None
    bias = np.zeros(cout, dtype=np.int64)
    mult = np.zeros(cout, dtype=np.int64)
    shift = np.zeros(cout, dtype=np.int64)
    if c.op in WEIGHTED:
        if c.sweep:  # dense, weights 1: acc = sum(x - zx) + bias; bias up to |2^31|, reals up to 2^29
            mag = np.exp(rng.uniform(0, math.log(2.0 ** 31), cout))
            bias = np.clip(np.rint(mag * rng.choice([-1, 1], cout)), ops.INT32_MIN, ops.INT32_MAX).astype(np.int64)
            bias[:2] = [ops.INT32_MAX, ops.INT32_MIN]
            reals = 40.0 / np.maximum(mag, 1.0) * rng.uniform(0.5, 2.0, cout)  # most land inside int8
            wild = rng.random(cout) < 0.3  # others anywhere from 2^-31 to 2^29
            reals[wild] = np.exp(rng.uniform(math.log(2.0 ** -31), math.log(2.0 ** 29), int(wild.sum())))
            reals[2], reals[3] = 2.0 ** 29 * 1.5, 2.0 ** -30  # e = 30 and e = -29 .. -31
        else:
            reals = np.minimum(_reals(c)[:cout] * rng.uniform(0.8, 1.25, cout), 1.999)
            if c.bias:  # about half a sum's spread (the sums' spread is ~60 / real)
                bias = np.rint(rng.normal(size=cout) * 30 / reals).astype(np.int64)
        for o, r in enumerate(reals):
            mult[o], shift[o] = ops.quantize_multiplier(float(r) * (-1 if c.sweep and o % 7 == 5 else 1))
        if not c.bias and not c.sweep:
            bias[:] = 0
        return Record(zx, zy, lo, hi, bias, mult, shift, slope)
    if c.op == "avg_pool":
        m, e = ops.quantize_multiplier(float(rng.uniform(0.5, 2.0)) / (c.kernel[0] * c.kernel[1]))
        return Record(zx, zy, ops.INT8_MIN, ops.INT8_MAX, bias, mult, shift, None, pool=(m, e))
    if c.op == "add":
        sa, sb, sy = _loguniform(rng, 0.01, 0.1, 3)
        ma, mb, mo = ops.add_multipliers(float(sa), float(sb), float(sy))
        zb = _zero_point(rng)
        skip = rng.integers(-128, 128, size=(c.ins[-1], *c.in_hw))
        return Record(zx, zy, lo, hi, bias, mult, shift, None, add=(zx, zb, ma, mb, mo), skip=skip)
    return Record(zx, zy, ops.INT8_MIN, ops.INT8_MAX, bias, mult, shift, None)


def reference(c: Case, t: Tensors, q: Record, k: int) -> np.ndarray:
    """The ops.py function on submodel k's slice of the weights and inputs."""
    cin, cout = c.ins[k], c.outs[k]
    x = t.x[:cin * c.elem] if c.op == "dense" else t.x[:cin]
    top, bottom, left, right = c.pads
    store = dict(zx=q.zx, zy=q.zy, lo=q.lo, hi=q.hi, slope=q.slope)
    if c.op == "conv2d":
        y = ops.conv2d(x, t.weight[:cout, :cin], q.bias, q.mult, q.shift, stride=c.stride, pads=c.pads, **store)
    elif c.op == "depthwise_conv2d":
        y = ops.depthwise_conv2d(x, t.weight[:cout], q.bias, q.mult, q.shift, stride=c.stride, pads=c.pads, **store)
    elif c.op == "dense":
        y = ops.dense(x, t.weight[:cout, :cin * c.elem], q.bias, q.mult, q.shift, **store)
    elif c.op == "avg_pool":
        y = ops.avg_pool(x, c.kernel, c.stride, *q.pool, q.zx, q.zy)
    elif c.op == "max_pool":
        y = ops.max_pool(x, c.kernel, c.stride)
    else:
        za, zb, ma, mb, mo = q.add
        y = ops.add(x, q.skip[:cin], za, zb, ma, mb, mo, q.zy, q.lo, q.hi)
    return np.asarray(y, dtype=np.int64).reshape(-1)


def layout_weights(c: Case, t: Tensors, layout: str) -> np.ndarray:
    """The int8 weight array as the exporter lays it out (conv / dense), or as ops holds it."""
    if c.op not in ("conv2d", "dense"):
        return t.weight.reshape(-1)
    w = t.weight.reshape(t.weight.shape[0], c.ins[-1], -1)
    return ORDERS[layout](w, list(c.outs), list(c.ins))


def case_bytes(c: Case, t: Tensors, q: Record, k: int, layout: str) -> bytes:
    (kh, kw), (sh, sw) = c.kernel, c.stride
    oh, ow = c.out_hw
    elem = c.elem if c.op == "dense" else kh * kw
    slope = q.slope or (0, 0)
    add = q.add or (0, 0, (0, 0), (0, 0), (0, 0))
    head = [OP[OPCODE[c.op]], kh, kw, sh, sw, *c.pads, *c.in_hw, oh, ow, elem, c.ins[k], c.outs[k],
            q.zx, q.zy, q.lo, q.hi, int(q.slope is not None), *slope, int(c.bias or c.sweep), *q.pool,
            add[0], add[1], *add[2], *add[3], *add[4]]
    data = struct.pack(f"={len(head)}i", *head)
    st = SegTable.of([row_groups(layout, list(c.outs), list(c.ins), elem)[k]] if c.op in ("conv2d", "dense") else [])
    for rows in (st.groups, st.segs):  # the exporter's segment table of submodel k
        data += struct.pack(f"={1 + 4 * len(rows)}I", len(rows), *[v for r in rows for v in r])
    x = t.x[:c.ins[k] * c.elem] if c.op == "dense" else t.x[:c.ins[k]]
    skip = q.skip[:c.ins[k]] if q.skip is not None else np.zeros(0)
    bias = q.bias if (c.bias or c.sweep) else np.full(c.outs[k], 12345)  # NULL: the kernel must not read it
    for arr in (layout_weights(c, t, layout), bias, q.mult, q.shift, x, skip):
        a = np.ascontiguousarray(arr, dtype="=i4").reshape(-1)
        data += struct.pack("=I", a.size) + a.tobytes()
    return data


def s8_sources(kernels: str | None) -> tuple[list[str], list[str]]:
    """The int8 kernel files of one kernel set (the build's picking rule) and its -I flags."""
    srcs = [str(p) for p in firmware.kernel_sources(kernels) if p.name.endswith("_s8.c")]
    _, incs = runtime(kernels)
    return srcs, [*incs, f"-I{REFERENCE}"]


@pytest.fixture(scope="module", params=KERNELS, ids=kernels_id)
def harness(request, tmp_path_factory):
    kernels = request.param
    exe = tmp_path_factory.mktemp("kernels-s8") / f"kernels-s8-{kernels_id(kernels)}"
    srcs, incs = s8_sources(kernels)
    r = subprocess.run([CC, *CFLAGS, *incs, str(HARNESS), *srcs, "-o", str(exe)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return kernels, exe


def run_case(exe, data: bytes, name: str) -> np.ndarray:
    r = subprocess.run([str(exe)], input=data, capture_output=True, timeout=30)
    assert r.returncode == 0, (name, r.returncode, r.stderr.decode(errors="replace"))
    return np.frombuffer(r.stdout, dtype=np.int8).astype(np.int64)


def _layouts(c: Case) -> tuple[str, ...]:
    return abi.layout_names() if c.op in ("conv2d", "dense") else (abi.DEFAULT_LAYOUT,)


def test_every_int8_kernel_has_cases():
    assert {p.stem.removesuffix("_s8") for p in REFERENCE.glob("*_s8.c")} == {c.op for c in CASES}
    assert set(abi.layout_names()) == set(ORDERS)


def test_cases_reach_both_shift_signs_and_the_store_edges():
    shifts, leaky, relu = set(), False, False
    for c in CASES:
        for k in range(len(c.ins)):
            q = record(c, k)
            shifts |= {int(np.sign(e)) for e in q.shift}
            leaky |= q.slope is not None
            relu |= q.lo > ops.INT8_MIN
    assert {-1, 1} <= shifts and leaky and relu
    sweep = [record(c, 2) for c in CASES if c.sweep][0]
    assert sweep.shift.min() <= -29 and sweep.shift.max() == 30 and (sweep.mult < 0).any()


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_int8_kernel_matches_ops(harness, case):
    kernels, exe = harness
    t = tensors(case)
    for layout in _layouts(case):
        outs, inside, slope_used = [], [], False
        for k in range(len(case.ins)):
            q = record(case, k)
            want = reference(case, t, q, k)
            got = run_case(exe, case_bytes(case, t, q, k, layout), case.name)
            where = f"{case.name} ({kernels_id(kernels)}, {layout}, submodel {k})"
            assert got.shape == want.shape, (where, got.shape, want.shape)
            bad = np.flatnonzero(got != want)
            assert bad.size == 0, f"{where}: {bad.size} of {want.size} differ, first at {bad[0]}: " \
                                  f"C {got[bad[0]]}, ops {want[bad[0]]}"
            outs.append(want)
            inside.append((want > q.lo) & (want < q.hi))
            slope_used |= bool((want < q.zy).any())
        # not degenerate (over the submodels): the outputs spread, and most are not clamped
        want, inside = np.concatenate(outs), np.concatenate(inside)
        assert len(np.unique(want)) >= 5, (case.name, layout, want)
        if case.op != "max_pool":
            assert inside.mean() >= (0.2 if case.sweep or case.act == "relu" else 0.4), (case.name, layout, want)
        if case.act == "leaky_relu":
            assert slope_used, (case.name, layout, "the slope never applied")


@pytest.mark.parametrize("field", ["mult", "shift"])
def test_a_wrong_multiplier_changes_the_output(harness, field):
    """A negative control: the comparison sees a multiplier 10 % off, or a shift off by one."""
    _, exe = harness
    for case in [c for c in CASES if c.op in WEIGHTED and not c.sweep][:6]:
        t = tensors(case)
        k = len(case.ins) - 1
        q = record(case, k)
        want = reference(case, t, q, k)
        assert np.array_equal(run_case(exe, case_bytes(case, t, q, k, abi.DEFAULT_LAYOUT), case.name), want)
        if field == "mult":
            q.mult = np.rint(q.mult * 0.9).astype(np.int64)
        else:
            q.shift = q.shift - 1
        got = run_case(exe, case_bytes(case, t, q, k, abi.DEFAULT_LAYOUT), case.name)
        assert not np.array_equal(got, want), case.name


def test_the_roundings_by_hand():
    """A few values of the definition, by hand (a check of ops itself, which the C matches)."""
    assert int(ops.rounding_divide_by_pot(5, 1)) == 3 and int(ops.rounding_divide_by_pot(-5, 1)) == -3
    assert int(ops.srdhm(ops.INT32_MIN, ops.INT32_MIN)) == ops.INT32_MAX
    assert int(ops.requantize(3, 1 << 30, 0)) == 2  # 3 * 0.5 = 1.5 -> 2
    # gemmlowp's SRDHM nudges a negative product by 1 - 2^30 and truncates: a negative tie
    # goes toward zero (-1.5 -> -1), unlike the divide (-2.5 -> -3)
    assert int(ops.requantize(-3, 1 << 30, 0)) == -1
    assert int(ops.requantize(-5, 1 << 30, -1)) == -1  # srdhm -> -2 (-2.5 -> -2), then -2 / 2 -> -1


def _all_s8_files() -> list:
    files = sorted(REFERENCE.glob("*_s8.c"))
    for target in firmware.kernel_targets():
        files += sorted(firmware.kernel_dir(target).glob("*_s8.c"))
    return files


@pytest.mark.parametrize("defines", [[], ["-DARDUINO"]], ids=["picked", "arduino"])
def test_int8_kernels_compile_for_the_host(tmp_path, defines):
    """What `reds build` (and the Arduino builder, which compiles all of src/) compiles:
    every int8 kernel file, warnings as errors, float warnings too."""
    for src in _all_s8_files():
        r = subprocess.run([CC, *CFLAGS, *defines, f"-I{RUNTIME}", f"-I{src.parent}", "-c", str(src),
                            "-o", str(tmp_path / (src.parent.name + "-" + src.stem + ".o"))],
                           capture_output=True, text=True)
        assert r.returncode == 0, f"{src}\n{r.stderr}"


@pytest.mark.skipif(ARM_CC is None, reason="needs arm-none-eabi-gcc")
@pytest.mark.parametrize("opt", ["-O2", "-Os", "-O0"])
@pytest.mark.parametrize("defines", [[], ["-DARDUINO"]], ids=["picked", "arduino"])
def test_int8_kernels_compile_for_cortex_m4(tmp_path, defines, opt):
    """At every usual optimization level: the assembly loops need 14 registers, which -O0
    (r7 kept as the frame pointer) does not give, nor -Os where GCC inlines a loop."""
    for src in _all_s8_files():
        r = subprocess.run([ARM_CC, *M4, "-std=c99", "-Wall", "-Wextra", "-Werror", "-Wdouble-promotion",
                            "-Wfloat-conversion", opt, *defines, f"-I{RUNTIME}", f"-I{src.parent}", "-c", str(src),
                            "-o", str(tmp_path / (src.parent.name + "-" + src.stem + ".o"))],
                           capture_output=True, text=True)
        assert r.returncode == 0, f"{src}\n{r.stderr}"


def _rdimon() -> bool:
    """newlib's semihosting specs (libnewlib-arm-none-eabi) are there."""
    if ARM_CC is None:
        return False
    r = subprocess.run([ARM_CC, *M4, "-print-file-name=rdimon.specs"], capture_output=True, text=True)
    return r.returncode == 0 and r.stdout.strip().startswith("/")


@pytest.fixture(scope="module")
def m4_harness(tmp_path_factory):
    """The harness and the shipped kernel set for QEMU's mps2-an386 (a Cortex-M4F), I/O by semihosting."""
    if QEMU is None or not _rdimon():
        pytest.skip("needs arm-none-eabi-gcc with newlib (rdimon.specs) and qemu-system-arm")
    elf = tmp_path_factory.mktemp("kernels-s8-m4") / "kernels-s8-m4.elf"
    srcs, incs = s8_sources(SHIPPED)
    r = subprocess.run([ARM_CC, *M4, "-std=c99", "-pedantic", "-Wall", "-Wextra", "-Werror", "-Wdouble-promotion",
                        "-Wfloat-conversion", "-O2", "-DREDS_HARNESS_SEMIHOSTING", *incs, str(HARNESS), *srcs,
                        "--specs=rdimon.specs", "-Wl,-Ttext-segment=0x400", "-Wl,-z,max-page-size=0x400",
                        "-Wl,--section-start=.vectors=0", "-o", str(elf)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    objdump = shutil.which(ARM_CC.removesuffix("gcc") + "objdump")
    if objdump:  # the fast paths do run the DSP instructions there
        text = subprocess.run([objdump, "-d", str(elf)], capture_output=True, text=True, check=True).stdout
        assert "smlad" in text and "sxtab16" in text
    return elf


def test_int8_kernels_on_an_emulated_cortex_m4(m4_harness, tmp_path):
    """Every case, every submodel and layout, in one run of the emulator: bit for bit."""
    data, expected = [], []
    for case in CASES:
        t = tensors(case)
        for layout in _layouts(case):
            for k in range(len(case.ins)):
                q = record(case, k)
                data.append(case_bytes(case, t, q, k, layout))
                expected.append((f"{case.name} ({layout}, submodel {k})", reference(case, t, q, k)))
    (tmp_path / "cases.bin").write_bytes(b"".join(data))
    r = subprocess.run([QEMU, "-M", "mps2-an386", "-display", "none", "-monitor", "none", "-nodefaults",
                        "-semihosting-config", "enable=on,target=native,arg=harness,arg=cases.bin,arg=out.bin",
                        "-kernel", str(m4_harness)], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)
    got = np.frombuffer((tmp_path / "out.bin").read_bytes(), dtype=np.int8).astype(np.int64)
    assert got.size == sum(w.size for _, w in expected)
    at = 0
    for where, want in expected:
        bad = np.flatnonzero(got[at:at + want.size] != want)
        assert bad.size == 0, f"{where} on the Cortex-M4: {bad.size} of {want.size} differ"
        at += want.size


REQUANT_C = r"""
#include <stdio.h>
#include "reds_s8.h"
/* stdin: lines "x m e"; stdout: reds_requantize(x, m, e) and reds_srdhm(x, m) */
int main(void)
{
    long x, m;
    int e;
    while (scanf("%ld %ld %d", &x, &m, &e) == 3)
        printf("%ld %ld\n", (long)reds_requantize((int32_t)x, (int32_t)m, e), (long)reds_srdhm((int32_t)x, (int32_t)m));
    return 0;
}
"""


def test_requantize_in_c_matches_ops_at_the_edges(tmp_path):
    """reds_s8.h's requantize and srdhm (32-bit, one 64-bit product: no sign branch) against
    ops on the int32 edges, ties and random values, every shift -31..30 and both signs of M."""
    src = tmp_path / "rq.c"
    src.write_text(REQUANT_C)
    exe = tmp_path / "rq"
    subprocess.run([CC, *CFLAGS, f"-I{RUNTIME}", str(src), "-o", str(exe)], check=True)
    rng = np.random.default_rng(3)
    edges = [ops.INT32_MIN, ops.INT32_MIN + 1, -(1 << 30), -3, -2, -1, 0, 1, 2, 3, 1 << 30, ops.INT32_MAX]
    xs = np.concatenate([np.repeat(edges, 6), rng.integers(ops.INT32_MIN, ops.INT32_MAX, 3000, endpoint=True),
                         rng.integers(-4096, 4096, 3000)])
    ms = rng.integers(1 << 30, 1 << 31, xs.size) * rng.choice([-1, 1], xs.size)
    ms[:len(edges)] = (1 << 30)  # exact halves: the ties
    es = rng.integers(-31, 31, xs.size)
    es[: 6 * len(edges)] = np.tile([-31, -1, 0, 1, 30, -5], len(edges))
    lines = "".join(f"{x} {m} {e}\n" for x, m, e in zip(xs, ms, es))
    out = subprocess.run([str(exe)], input=lines, capture_output=True, text=True, check=True).stdout.split()
    got = np.array(out, dtype=np.int64).reshape(-1, 2)
    np.testing.assert_array_equal(got[:, 0], ops.requantize(xs, ms, es))
    np.testing.assert_array_equal(got[:, 1], ops.srdhm(xs, ms))
    assert int(ops.srdhm(ops.INT32_MIN, ops.INT32_MIN)) == ops.INT32_MAX


FAST_STORE_C = r"""
#include <stdio.h>
#include "reds_s8.h"
#include "window_s8.h"
#ifdef REDS_HARNESS_SEMIHOSTING
#include "m4_start.h"
#endif
/* The fast store (store_fast_s8: SMMLAR, ASRS + ADC, SSAT on a Cortex-M4) against
 * reds_store_s8 over its whole domain: |acc| < 2^30, 0 < m < 2^31, 1 <= right <= 22, any
 * zy; the int32 edges of acc, small sums, exact halves (m = 2^30) and xorshift32 draws.
 * Prints the cases run and how many differ. */
static uint32_t s = 2463534242u;
static uint32_t next(void)
{
    s ^= s << 13;
    s ^= s >> 17;
    s ^= s << 5;
    return s;
}
int main(void)
{
    static const int32_t edge[] = {-1073741823, -1073741822, -65536, -3, -2, -1, 0, 1, 2, 3, 65536, 1073741822,
                                   1073741823};
    long n = 0, bad = 0;
    uint32_t i;
    for (i = 0; i < 60000u; ++i) {
        const uint32_t kind = i % 4u;
        int32_t mult = (int32_t)(kind == 0 ? 1u + next() % 0x7FFFFFFFu : (kind == 1 ? 0x40000000u : 0x40000000u + next() % 0x40000000u));
        int8_t shift = (int8_t)(-(int)(1u + next() % 22u));
        int32_t acc = i < 13u * 22u ? edge[i % 13u] : (kind == 2 ? (int32_t)(next() % 8193u) - 4096 : (int32_t)(next() % 0x7FFFFFFFu) - 0x3FFFFFFF);
        reds_requant_t q = {0};
        int right;
        if (i < 13u * 22u)
            shift = (int8_t)(-(int)(1u + i / 13u));
        q.mult = &mult;
        q.shift = &shift;
        q.zy = (int32_t)(next() % 256u) - 128;
        q.lo = -128;
        q.hi = 127;
        right = -shift;
        ++n;
        if (store_fast_s8((int32_t)((uint32_t)acc << 1), mult, right, (int32_t)((uint32_t)q.zy << right)) !=
            reds_store_s8(&q, 0, acc))
            ++bad;
    }
    printf("%ld %ld\n", n, bad);
    return 0;
}
"""


def _fast_store_src(tmp_path) -> tuple:
    src = tmp_path / "fast.c"
    src.write_text(FAST_STORE_C)
    return src, [f"-I{RUNTIME}", f"-I{RUNTIME / 'kernels' / 'cortex_m'}", f"-I{REFERENCE}"]


def test_fast_store_matches_reds_store_s8(tmp_path):
    """window_s8.h's fast store (one SMMLAR, the rounding shift as ASRS and ADC, SSAT) gives
    reds_store_s8's bits over the domain chan_s8 sends it, in the portable C."""
    src, incs = _fast_store_src(tmp_path)
    exe = tmp_path / "fast"
    subprocess.run([CC, *CFLAGS, *incs, str(src), "-o", str(exe)], check=True)
    n, bad = map(int, subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout.split())
    assert n == 60000 and bad == 0, f"{bad} of {n} differ"


def test_fast_store_matches_reds_store_s8_on_a_cortex_m4(tmp_path):
    """The same cases through the DSP instructions, on QEMU's Cortex-M4."""
    if QEMU is None or not _rdimon():
        pytest.skip("needs arm-none-eabi-gcc with newlib (rdimon.specs) and qemu-system-arm")
    src, incs = _fast_store_src(tmp_path)
    elf = tmp_path / "fast.elf"
    subprocess.run([ARM_CC, *M4, "-std=c99", "-O2", "-DREDS_HARNESS_SEMIHOSTING", *incs, f"-I{HARNESS.parent}",
                    str(src), "--specs=rdimon.specs",
                    "-Wl,-Ttext-segment=0x400", "-Wl,-z,max-page-size=0x400", "-Wl,--section-start=.vectors=0",
                    "-o", str(elf)], check=True)
    r = subprocess.run([QEMU, "-M", "mps2-an386", "-display", "none", "-monitor", "none", "-nodefaults",
                        "-semihosting-config", "enable=on,target=native", "-kernel", str(elf)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)
    n, bad = map(int, r.stdout.split())
    assert n == 60000 and bad == 0, f"{bad} of {n} differ on the Cortex-M4"
