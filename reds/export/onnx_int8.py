"""Int8 ONNX export of an int8 family: one QDQ graph per submodel (`submodel_<k>.int8.onnx`).

Each graph is built by hand (onnx.helper, opset 21, dynamic batch) from the int8 tables of
a `reds.quant` QuantFamily (docs/int8.md), in the QDQ form onnxruntime's own quantizer
writes, so onnxruntime fuses it into an integer graph (QLinearConv, QGemm,
QLinearAveragePool; checked: no float Conv or Gemm is left in the optimized dscnn-s and
cnn-s graphs). Every file passes onnx.checker (full_check) and is run in onnxruntime
against the reds integer reference (`QuantFamily.run`) before it counts as written.

- Input: float raw features [batch, C, H, W] -> Mul(qa) -> Add(qb) -> Floor -> Sub(z0) ->
  Mul(s0) -> QuantizeLinear(s0, z0). Mul and Add are the two float32 roundings of
  `ops.quantize_input`, Floor its floor, QuantizeLinear's saturation its clamp; Q divides
  s0 (q - z0) by s0 again, which gives back the integer q to within 1e-4 of a step, so
  the int8 input equals reds's everywhere (measured: identical on every test input). The
  Sub/Mul are there so that this Q and the first step's DQ are one (s0, z0) pair, the
  only kind onnxruntime fuses. (A plain QuantizeLinear(s0, z0) of the normalised input
  would round ties to even where reds rounds half up.)
- conv2d / depthwise_conv2d / dense: DequantizeLinear of the int8 input (sx, zx), of the
  weights (per output channel, axis 0) and of the int32 bias (scale sx * sw, zero 0), then
  Conv / Gemm, [Relu], QuantizeLinear (sy, zy). The batch norm is already in the integer
  multipliers of Params (reds.quant.fold): acc = bias + sum (x - zx) w is scaled by
  r[o] = M[o] 2**(e[o] - 31) on its way to sy. So the weight scale written is the
  effective one, sw[o] = |r[o]| sy / sx, the bias is reds's own int32 bias with scale
  sx sw[o], and in the channels where r < 0 (a negative batch-norm scale) weights and
  bias are negated (|w| <= 127: still int8); a channel whose multiplier rounds to 0 gets
  zero weights and bias. Then DQ(x) * DQ(w) + DQ(b) = sy r acc and Q gives round(r acc) + zy.
  ReLU is a Relu before the Q only where its clamp is above the Q's own saturation
  (lo > -128); otherwise the Q's clamp at -128 is the ReLU, exactly.
- The weights are written as uint8 with zero point 128 (w + 128: the same int8 values,
  DQ(w + 128, sw, 128) = sw w exactly). With int8 weights onnxruntime runs its U8S8
  kernels, which on x86-64 without VNNI (AVX2: vpmaddubsw) saturate pairs of products at
  int16: measured 34 to 70 steps off on cnn-s. Its U8U8 kernels are exact.
- Leaky ReLU cannot be a faithful QDQ pair: reds requantizes the negative side of the
  int32 pre-activation t = requantize(acc, M, e) a second time (t is not int8, so a Q
  between Conv and LeakyRelu would saturate it, and a float LeakyRelu rounds once where
  gemmlowp rounds four times: measured up to 8 steps off on dscnn-s-img). So a leaky step
  is DQ(x), DQ(w), DQ(b) -> float Conv / Gemm, then reds's store itself in float64 ONNX
  ops (Cast, Mul, Add, Floor, Ceil, Where, Max: `_store`, each value after the conv an
  exact integer), then QuantizeLinear(1, zy) for t + zy and its clamp. It is not fused
  (a float conv) and it is exact up to the float32 conv's own rounding (measured: every
  int8 value of every leaky step of dscnn-s-img equal to reds's).
- avg_pool: DQ -> AveragePool -> Q (sy, zy); max_pool and flatten: DQ -> op -> Q with the
  input's own (sx, zx), exact. Output: DequantizeLinear (s, z): float logits [batch, classes].

Where the graph and the reds integer reference differ: reds's requantize is gemmlowp's
(srdhm, then a rounding divide by 2**-e: two roundings, ties away from zero),
onnxruntime's a float32 scale and one rounding (ties to even). They differ by one step
where r acc lies within 2**e of a half (about 2**e of the outputs of a conv, dense or
average pool: 0.2 to 0.3 % of a first conv's, up to 1/8 of an average pool's with a small
shift), with bit-identical inputs; inside the network such a step moves the next layers
by the network's gain in steps, so a deep stack (9 convs) ends 1 to 3 steps off.
Tolerance (tests/test_export_onnx_int8.py): per submodel, on 64 random inputs not used
for calibration, argmax agreement with `QuantFamily.run` >= MIN_AGREEMENT = 0.95 and the
output at most MAX_STEPS = 2 quantization steps from the reference's int8 logits
(measured: at most 2 on dscnn-s and cnn-s, 1 on dscnn-s-img). A dscnn-s with an input
normalisation and negative batch-norm scales reaches 3 and is held to MAX_STEPS_DEEP = 4:
its differences grow from 1 step on 0.2 % of the first conv's outputs to 9 steps inside
the last block; the same graph with reds's store after each float conv (the folded, sign-
flipped weights and biases unchanged) differed in 1 of 88,000 first-conv outputs by 1 and
nowhere else, so it is the rounding, not the sign fold. `write` itself refuses only a graph more
than SELF_CHECK_STEPS = 8 steps off (a bug: a broken graph is tens of steps off).

`exact=True` (graph, write) is the integer reference itself in ONNX, not QDQ: every conv,
depthwise and dense step is ConvInteger / MatMulInteger on uint8 operands (x + 128,
w + 128: the exact U8U8 kernels) plus reds's int32 bias and signed multipliers, then
`_store`; an average pool sums exactly and stores the same way. onnxruntime runs it
without fusing anything into QLinear ops; its output is the reference's int8 logits
(measured: 0 steps, argmax 1.0, every submodel of every family tested). `_store` is exact
while |acc| M < 2**53 (|acc| < 2**22).

    qf = reds.quant.open(int8_family_dir)
    info = write(qf, folder)   # {"files": ["submodel_0.int8.onnx", ...], "checks": [per submodel]}

This module imports nothing from reds.quant (reds.quant sits above the exporters in the
layering): it reads the QuantFamily it is given, and `check` refuses an inconsistent one.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import RedsError

OPSET = 21
INPUT, OUTPUT = "input", "logits"
CHECK_SEED = 0
CHECK_SAMPLES = 64
MAX_STEPS = 2.0  # the tolerance: max |onnx - reference| in output quantization steps
MAX_STEPS_DEEP = 4.0  # the same, for the deeper-gain family of the module docstring (negative batch-norm scales)
MIN_AGREEMENT = 0.95  # argmax agreement with the integer reference
SELF_CHECK_STEPS = 8.0  # write refuses a graph further off than this: a bug (a broken graph is tens of steps off)
WEIGHTED = ("conv2d", "depthwise_conv2d", "dense")
KINDS = WEIGHTED + ("avg_pool", "max_pool", "flatten")
INT8_MIN, INT8_MAX = -128, 127


def file_name(k: int) -> str:
    return f"submodel_{k}.int8.onnx"


# ---- checking what we are given ------------------------------------------------------------
def _bad(what: str) -> RedsError:
    return RedsError(f"int8 ONNX export: {what}; quantize the family again (`reds quantize FAMILY --out DIR`)")


def check(qf) -> None:
    """Refuse (RedsError, one line) anything that is not a consistent int8 family."""
    for attr in ("family", "steps", "inputs", "outputs", "run", "axis"):
        if not hasattr(qf, attr):
            raise RedsError("int8 ONNX export: not an int8 family (open one with reds.quant.open; "
                            "a float family exports with `reds export --format onnx`)")
    fam = qf.family
    K = len(fam.submodels)
    if not (len(qf.inputs) == len(qf.outputs) == K) or K == 0:
        raise _bad(f"{len(qf.inputs)} input and {len(qf.outputs)} output tables for {K} submodels")
    if qf.axis not in ("channel", "width", "none"):
        raise _bad(f"unknown input axis {qf.axis!r}")
    spec = fam.spec
    for k, (i, o) in enumerate(zip(qf.inputs, qf.outputs)):
        for name, s, z in (("input", i.s0, i.z0), ("output", o.s, o.z)):
            if not (np.isfinite(s) and s > 0 and INT8_MIN <= z <= INT8_MAX):
                raise _bad(f"submodel {k}: {name} scale {s} / zero point {z}")
        if not (np.all(np.isfinite(i.qa)) and np.all(np.isfinite(i.qb)) and np.shape(i.qa) == np.shape(i.qb)):
            raise _bad(f"submodel {k}: input coefficients")
    if not qf.steps:
        raise _bad("no int8 steps")
    for step in qf.steps:
        if step.kind not in KINDS:
            raise _bad(f"step {step.name}: unknown kind {step.kind!r}")
        if len(step.params) != K:
            raise _bad(f"step {step.name}: tables for {len(step.params)} of {K} submodels")
        layer = spec.layers[step.first]
        if step.kind in WEIGHTED:
            w, ws = step.weight, step.w_scale
            if w is None or ws is None or w.dtype != np.int8 or ws.shape != (w.shape[0],) \
                    or not np.all(np.isfinite(ws)):
                raise _bad(f"step {step.name}: int8 weights / per-channel scales")
        if step.act not in (None, "relu", "leaky_relu") or (step.act == "leaky_relu") != (step.slope is not None):
            raise _bad(f"step {step.name}: activation {step.act!r}")
        for k, p in enumerate(step.params):
            where = f"step {step.name}, submodel {k}"
            if not (np.isfinite(p.sx) and p.sx > 0 and np.isfinite(p.sy) and p.sy > 0):
                raise _bad(f"{where}: scales {p.sx}, {p.sy}")
            if not all(INT8_MIN <= v <= INT8_MAX for v in (p.zx, p.zy, p.lo, p.hi)) or p.lo > p.hi:
                raise _bad(f"{where}: zero points / clamp")
            if step.kind in WEIGHTED:
                cout = spec.size(layer.out_ch, fam.submodels[k].widths)
                if not (len(p.bias) == len(p.mult) == len(p.shift) == cout) or cout > len(step.weight):
                    raise _bad(f"{where}: tables for {len(p.mult)} channels, it has {cout}")
                if step.act == "relu" and p.lo != max(p.zy, INT8_MIN):
                    raise _bad(f"{where}: ReLU clamp {p.lo} is not its zero point {p.zy}")
                if (step.act != "relu" and p.lo != INT8_MIN) or p.hi != INT8_MAX:
                    raise _bad(f"{where}: clamp [{p.lo}, {p.hi}]")
            elif step.kind == "avg_pool" and not (len(p.mult) == len(p.shift) == 1):
                raise _bad(f"{where}: average pool multiplier")


# ---- building one graph ----------------------------------------------------------------------
class _Graph:
    def __init__(self):
        self.nodes, self.inits, self.n = [], [], 0

    def name(self, base: str) -> str:
        self.n += 1
        return f"{base}_{self.n}"

    def const(self, base: str, value: np.ndarray) -> str:
        from onnx import numpy_helper

        name = self.name(base)
        self.inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def node(self, op: str, inputs: list[str], base: str, **attrs) -> str:
        from onnx import helper

        out = self.name(base)
        self.nodes.append(helper.make_node(op, inputs, [out], name=out + "_" + op, **attrs))
        return out

    def q(self, x: str, s: float, z: int, base: str) -> str:
        return self.node("QuantizeLinear", [x, self.const(base + "_s", np.float32(s)),
                                            self.const(base + "_z", np.int8(z))], base + "_q")

    def dq(self, x: str, s: float, z: int, base: str) -> str:
        return self.node("DequantizeLinear", [x, self.const(base + "_s", np.float32(s)),
                                              self.const(base + "_z", np.int8(z))], base + "_dq")


def _real_multiplier(m, e) -> np.ndarray:
    return np.asarray(m, np.float64) * np.exp2(np.asarray(e, np.float64) - 31)


def _effective(step, p, cout: int, cin_cols) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(int8 weights, float32 per-channel scales, int32 bias) so that DQ(w) and DQ(b) (scale
    sx * sw) give sx * sw * acc with sx * sw / sy = |M 2**(e-31)|, the sign in w and b."""
    w = np.array(step.weight[:cout] if cin_cols is None else step.weight[:cout, cin_cols], dtype=np.int8)
    r = _real_multiplier(p.mult, p.shift)
    bias = np.asarray(p.bias, np.int64).copy()
    neg = r < 0
    w[neg] = -w[neg]  # symmetric int8 weights: |w| <= 127, negating stays int8
    bias[neg] = -bias[neg]
    zero = r == 0
    w[zero], bias[zero] = 0, 0
    sw = np.where(zero, 1.0, np.abs(r) * p.sy / p.sx).astype(np.float32)
    bias = np.clip(bias, -(2 ** 31) + 1, 2 ** 31 - 1).astype(np.int32)
    return w, sw, bias


def _store(g: _Graph, v: str, mult, shift, slope: tuple[int, int] | None, lo: int, zy: int, base: str,
           rank: int) -> str:
    """reds's store (ops.store) in float64 ONNX ops, from v = acc M 2**(left - 31) (the
    product srdhm rounds; left, right = max(e, 0), max(-e, 0)), every later value an exact
    integer:

        u = floor(v + 1/2)                           (srdhm: a tie up, a negative tie toward zero)
        t = u >= 0 ? floor(u / 2**right + 1/2) : ceil(u / 2**right - 1/2)   (a tie away from zero)
        leaky ReLU, t < 0: the same two roundings of t Ms 2**(ls - 31), over 2**rs
        ReLU: max(t, lo - zy); then QuantizeLinear(t, 1, zy): t + zy, saturated (the int8 clamp)."""
    from onnx import TensorProto

    def f64(name: str, value) -> str:
        return g.const(name, np.asarray(value, np.float64))

    def requant(x: str, right, what: str) -> str:
        u = g.node("Floor", [g.node("Add", [x, f64("half", 0.5)], what + "_nudge")], what + "_u")
        d = g.node("Mul", [u, f64(what + "_pot", np.exp2(-right))], what + "_div")
        up = g.node("Floor", [g.node("Add", [d, f64("half", 0.5)], what + "_up")], what + "_fl")
        down = g.node("Ceil", [g.node("Sub", [d, f64("half", 0.5)], what + "_down")], what + "_cl")
        pos = g.node("GreaterOrEqual", [u, f64("zero", 0.0)], what + "_pos")
        return g.node("Where", [pos, up, down], what + "_t")

    right = np.maximum(-np.asarray(shift, np.float64), 0.0)
    right = right.reshape((-1,) + (1,) * (rank - 2)) if right.size > 1 else right.reshape(())
    t = requant(v, right, base + "_acc")
    if slope is not None:
        ms, es = int(slope[0]), int(slope[1])
        vs = g.node("Mul", [t, f64(base + "_ms", ms * 2.0 ** (max(es, 0) - 31))], base + "_vs")
        w = requant(vs, np.float64(max(-es, 0)), base + "_slope")
        t = g.node("Where", [g.node("Less", [t, f64("zero", 0.0)], base + "_neg"), w, t], base + "_leaky")
    if lo > INT8_MIN:
        t = g.node("Max", [t, f64(base + "_lo", lo - zy)], base + "_relu")
    return g.q(g.node("Cast", [t], base + "_t32", to=TensorProto.FLOAT), 1.0, zy, base + "_y")


def _exact_weighted(g: _Graph, t: str, step, layer, p, cin: int, cout: int, rank: int) -> tuple[str, int]:
    """A conv / depthwise / dense step as reds computes it: the int32 sums by ConvInteger /
    MatMulInteger (uint8 operands, x + 128 and w + 128, so onnxruntime's exact U8U8
    kernels), reds's own int32 bias and signed multipliers, then `_store`."""
    from onnx import TensorProto

    base, op = step.name, layer.op
    x = g.node("Cast", [t], base + "_x32", to=TensorProto.INT32)
    x = g.node("Cast", [g.node("Add", [x, g.const(base + "_128", np.int32(128))], base + "_xo")], base + "_xu",
               to=TensorProto.UINT8)
    xz, wz = g.const(base + "_xz", np.uint8(p.zx + 128)), g.const(base + "_wz", np.uint8(128))
    if step.kind == "dense":
        if rank != 2:
            x = g.node("Flatten", [x], base + "_flat", axis=1)
            rank = 2
        w = np.asarray(step.weight[:cout, :cin * layer.in_spatial], np.int16).T + 128
        acc = g.node("MatMulInteger", [x, g.const(base + "_w", w.astype(np.uint8)), xz, wz], base + "_acc")
    else:
        w = np.asarray(step.weight[:cout, :cin] if step.kind == "conv2d" else step.weight[:cout], np.int16) + 128
        pt, pb, pl, pr = layer.pads
        acc = g.node("ConvInteger", [x, g.const(base + "_w", w.astype(np.uint8)), xz, wz], base + "_acc",
                     kernel_shape=list(op.kernel), strides=list(op.stride), pads=[pt, pl, pb, pr],
                     group=cout if step.kind == "depthwise_conv2d" else 1)
    shape = (-1,) + (1,) * (rank - 2)
    acc = g.node("Add", [acc, g.const(base + "_b", np.asarray(p.bias, np.int32).reshape(shape))], base + "_accb")
    m = np.asarray(p.mult, np.float64) * np.exp2(np.maximum(np.asarray(p.shift, np.float64), 0.0) - 31)
    v = g.node("Mul", [g.node("Cast", [acc], base + "_a64", to=TensorProto.DOUBLE),
                       g.const(base + "_m", m.reshape(shape))], base + "_v")
    return _store(g, v, p.mult, p.shift, step.slope, p.lo, p.zy, base, rank), rank


def _srdhm_product(g: _Graph, y: str, shift, sy: float, base: str, rank: int) -> str:
    """v of `_store` from a float conv / dense output y = sy r acc: y / sy * 2**right."""
    from onnx import TensorProto

    right = np.maximum(-np.asarray(shift, np.float64), 0.0).reshape((-1,) + (1,) * (rank - 2))
    v = g.node("Cast", [y], base + "_y64", to=TensorProto.DOUBLE)
    return g.node("Mul", [v, g.const(base + "_scale", np.exp2(right) / np.float64(sy))], base + "_v")


def graph(qf, k: int, metadata: dict[str, str] | None = None, exact: bool = False):
    """The QDQ onnx.ModelProto of submodel k (checked with onnx.checker, full_check); with
    `exact`, the integer reference's own arithmetic (module docstring), not QDQ."""
    import onnx
    from onnx import TensorProto, helper

    fam = qf.family
    spec, widths = fam.spec, fam.submodels[k].widths
    g = _Graph()
    inp = qf.inputs[k]
    qa = np.asarray(inp.qa, np.float32)
    qb = np.asarray(inp.qb, np.float32)
    if qf.axis == "channel":
        qa, qb = qa.reshape(-1, 1, 1), qb.reshape(-1, 1, 1)
    v = g.node("Mul", [INPUT, g.const("in_qa", qa)], "in_mul")
    v = g.node("Add", [v, g.const("in_qb", qb)], "in_add")
    v = g.node("Floor", [v], "in_floor")  # q before the clamp: ops.quantize_input's integers
    # as real values s0 (q - z0), so that the Q and the first step's DQ are one (s0, z0) pair
    # (onnxruntime fuses only such pairs); Q's division gives q back to within 1e-4 of a step
    v = g.node("Mul", [g.node("Sub", [v, g.const("in_z0", np.float32(inp.z0))], "in_sub"),
                       g.const("in_s0", np.float32(inp.s0))], "in_real")
    t = g.q(v, inp.s0, inp.z0, "in")
    rank = 4
    for step in qf.steps:
        layer, p = spec.layers[step.first], step.params[k]
        op, base = layer.op, step.name
        cin, cout = spec.size(layer.in_ch, widths), spec.size(layer.out_ch, widths)
        if exact and step.kind in WEIGHTED:
            t, rank = _exact_weighted(g, t, step, layer, p, cin, cout, rank)
            continue
        x = g.dq(t, p.sx, p.zx, base + "_x")
        if step.kind in WEIGHTED:
            if step.kind == "dense":
                if rank != 2:
                    x = g.node("Flatten", [x], base + "_flat", axis=1)
                    rank = 2
                w, sw, b = _effective(step, p, cout, slice(0, cin * layer.in_spatial))
            elif step.kind == "conv2d":
                w, sw, b = _effective(step, p, cout, slice(0, cin))
            else:
                w, sw, b = _effective(step, p, cout, None)
            # reds's int8 weights as uint8 with zero point 128: the same values (see the module docstring)
            wc, wz = (w.astype(np.int16) + 128).astype(np.uint8), np.full(cout, 128, np.uint8)
            wq = g.node("DequantizeLinear", [g.const(base + "_w", wc), g.const(base + "_ws", sw),
                                             g.const(base + "_wz", wz)], base + "_w_dq", axis=0)
            bq = g.node("DequantizeLinear", [g.const(base + "_b", b),
                                             g.const(base + "_bs", (np.float32(p.sx) * sw).astype(np.float32)),
                                             g.const(base + "_bz", np.zeros(cout, np.int32))], base + "_b_dq", axis=0)
            if step.kind == "dense":
                y = g.node("Gemm", [x, wq, bq], base + "_gemm", transB=1)
            else:
                pt, pb, pl, pr = layer.pads
                y = g.node("Conv", [x, wq, bq], base + "_conv", kernel_shape=list(op.kernel),
                           strides=list(op.stride), pads=[pt, pl, pb, pr],
                           group=cout if step.kind == "depthwise_conv2d" else 1)
            if step.act == "leaky_relu":
                v = _srdhm_product(g, y, p.shift, p.sy, base, rank)
                t = _store(g, v, p.mult, p.shift, step.slope, p.lo, p.zy, base, rank)
            else:
                if step.act == "relu" and p.lo > INT8_MIN:
                    y = g.node("Relu", [y], base + "_relu")
                t = g.q(y, p.sy, p.zy, base + "_y")
        elif step.kind == "avg_pool":
            kernel = list(layer.in_hw if op.kernel is None else op.kernel)
            strides = list(op.stride or kernel)
            if exact:  # the integer sum (x - zx) (rounded back from the mean), then reds's store
                from onnx import TensorProto

                y = g.node("AveragePool", [x], base + "_avg", kernel_shape=kernel, strides=strides)
                y = g.node("Round", [g.node("Mul", [y, g.const(base + "_n", np.float32(kernel[0] * kernel[1] / p.sx))],
                                            base + "_sum")], base + "_sumi")
                m, e = int(p.mult[0]), int(p.shift[0])
                v = g.node("Mul", [g.node("Cast", [y], base + "_s64", to=TensorProto.DOUBLE),
                                   g.const(base + "_m", np.float64(m * 2.0 ** (max(e, 0) - 31)))], base + "_v")
                t = _store(g, v, p.mult, p.shift, None, p.lo, p.zy, base, rank)
            else:
                y = g.node("AveragePool", [x], base + "_avg", kernel_shape=kernel, strides=strides)
                t = g.q(y, p.sy, p.zy, base + "_y")
        elif step.kind == "max_pool":
            y = g.node("MaxPool", [x], base + "_max", kernel_shape=list(op.kernel),
                       strides=list(op.stride or op.kernel))
            t = g.q(y, p.sx, p.zx, base + "_y")
        else:  # flatten: channel-major, as reds
            y = g.node("Flatten", [x], base + "_flat", axis=1)
            rank = 2
            t = g.q(y, p.sx, p.zx, base + "_y")
    if rank != 2:
        t = g.node("Flatten", [t], "out_flat", axis=1)
    out = qf.outputs[k]
    y = g.node("DequantizeLinear", [t, g.const("out_s", np.float32(out.s)), g.const("out_z", np.int8(out.z))],
               "out_dq")
    g.nodes[-1].output[0] = OUTPUT
    del y
    x_info = helper.make_tensor_value_info(INPUT, TensorProto.FLOAT, ["batch", *spec.input_shape])
    y_info = helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, ["batch", spec.num_classes])
    model = helper.make_model(helper.make_graph(g.nodes, f"{spec.name}_submodel_{k}_int8", [x_info], [y_info],
                                                g.inits),
                              opset_imports=[helper.make_opsetid("", OPSET)], producer_name="reds")
    model.ir_version = min(model.ir_version, 10)  # opset 21's IR; readable by older onnxruntime builds
    if metadata:
        helper.set_model_props(model, metadata)
        model.doc_string = metadata.get("provenance", "")
    onnx.checker.check_model(model, full_check=True)
    return model


# ---- running and comparing -------------------------------------------------------------------
def session(data: bytes | str | Path):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    return ort.InferenceSession(data if isinstance(data, bytes) else str(data), opts,
                                providers=["CPUExecutionProvider"])


def run_onnx(data: bytes | str | Path, x: np.ndarray) -> np.ndarray:
    return session(data).run([OUTPUT], {INPUT: np.asarray(x, np.float32)})[0]


def agreement(qf, k: int, data: bytes | str | Path, x: np.ndarray) -> dict:
    """Submodel k's ONNX graph (bytes or a file) vs the integer reference qf.run on x:
    argmax agreement (fraction) and max |onnx / s - (q - z)| in output steps."""
    x = np.asarray(x, np.float32)
    got = run_onnx(data, x).astype(np.float64)
    ref = np.asarray(qf.run(x, k), np.int64)
    out = qf.outputs[k]
    if got.shape != ref.shape:
        raise RedsError(f"int8 ONNX submodel {k}: output {got.shape}, the reference's {ref.shape}; "
                        "this is a bug in reds, please report it")
    steps = np.abs(np.rint(got / np.float64(np.float32(out.s))) - (ref - out.z))  # got: a DQ of int8
    return {"runtime": "onnxruntime", "samples": int(len(x)),
            "argmax_agreement": float((got.argmax(1) == ref.argmax(1)).mean()),
            "max_steps": float(steps.max()) if steps.size else 0.0}


def check_inputs(qf, n: int = CHECK_SAMPLES, seed: int = CHECK_SEED) -> np.ndarray:
    """n seeded raw inputs whose normalised values are standard normal."""
    fam = qf.family
    x = np.random.default_rng(seed).standard_normal((n, *fam.spec.input_shape)).astype(np.float32)
    norm = fam.input_norm
    return x if norm is None else np.asarray(norm.invert(x), np.float32)


def _metadata(qf, k: int, command: str) -> dict[str, str]:
    from .source import Source

    src = Source(qf.family, command)
    sub = src.family.submodels[k]
    return {"provenance": "\n".join(src.provenance()), "reds_family_hash": src.hash, "reds_submodel": str(k),
            "reds_dtype": "int8", "reds_budget": f"{sub.budget:g}", "reds_macs": str(sub.macs),
            "reds_widths": " ".join(f"{g}={w}" for g, w in sub.widths.items())}


def write(qf, folder, x: np.ndarray | None = None, command: str = "reds export --format onnx",
          exact: bool = False) -> dict:
    """One `submodel_<k>.int8.onnx` per submodel into `folder` (each written to a hidden
    temporary name, then renamed), each run in onnxruntime against qf.run on x (default:
    CHECK_SAMPLES seeded raw inputs). Returns {"files": [...], "checks": [one row per
    submodel: runtime, samples, argmax_agreement, max_steps, seed (None: the caller's x),
    graph ("qdq" or "exact")]}.
    A submodel more than SELF_CHECK_STEPS off is a RedsError (a bug) and leaves no file of
    its own; the tested tolerance (MIN_AGREEMENT, MAX_STEPS) is the caller's to hold."""
    check(qf)
    folder = Path(folder)
    seed = CHECK_SEED if x is None else None
    x = check_inputs(qf) if x is None else np.asarray(x, np.float32)
    files, checks = [], []
    for k in range(len(qf.family.submodels)):
        meta = {**_metadata(qf, k, command), "reds_int8_graph": "exact" if exact else "qdq"}
        data = graph(qf, k, meta, exact).SerializeToString()
        row = agreement(qf, k, data, x)
        row["seed"] = seed
        row["graph"] = meta["reds_int8_graph"]
        if not row["max_steps"] <= SELF_CHECK_STEPS:
            raise RedsError(f"int8 ONNX submodel {k} differs from the reds integer reference by {row['max_steps']:g} "
                            f"steps (> {SELF_CHECK_STEPS:g}; argmax agreement {row['argmax_agreement']:.3f}); "
                            "this is a bug in reds, please report it")
        name = file_name(k)
        tmp = folder / f".{name}.tmp"
        try:
            tmp.write_bytes(data)
            os.replace(tmp, folder / name)
        finally:
            tmp.unlink(missing_ok=True)
        files.append(name)
        checks.append(row)
    return {"files": files, "checks": checks}


__all__ = ["MAX_STEPS", "MIN_AGREEMENT", "agreement", "check", "graph", "run_onnx", "write"]
