"""The int8 ops, defined: what every int8 kernel (Python or C) must compute, bit for bit.

This module is the definition. The C kernels (firmware/src/kernels/*/<op>_s8.c) and the
reds int8 reference of a family (reds.quant.reference) are checked against it; where they
and this file disagree, they are wrong. Arithmetic is TFLite's (gemmlowp's) so a reds int8
model and a TFLite int8 model of the same tensors round the same way:

- A real multiplier r (r != 0, any sign) is an int32 M and a shift e with
  r ~= M * 2**(e - 31), 2**30 <= |M| < 2**31, -31 <= e <= 30 (`quantize_multiplier`).
- requantize(x, M, e) = rounding_divide_by_pot(srdhm(sat32(x * 2**max(e, 0)), M), max(-e, 0)):
  srdhm is SaturatingRoundingDoublingHighMul (gemmlowp's: a positive tie rounds up, a
  negative tie toward zero), the divide rounds half away from zero (gemmlowp's
  RoundingDivideByPOT); sat32 saturates to int32.

Tensors are int8 with a per-tensor scale s and zero point z (real = s * (q - z)), per
submodel: every submodel is calibrated on its own. Weights are int8, symmetric, one scale per
output channel, shared by every submodel (they are one array). A layer's batch norm and
bias fold into per-submodel int32 biases and multipliers (reds.quant.fold); its activation
into the store:

conv2d / depthwise_conv2d / dense, output channel o of submodel k:
    acc = bias[o] + sum over the taps inside the input (x - zx) * w          (int32)
    t = requantize(acc, M[o], e[o])
    leaky ReLU: if t < 0: t = requantize(t, Ms, es)     (Ms, es: the slope's multiplier)
    y = clamp(t + zy, lo, hi)   (ReLU: lo = max(zy, -128); otherwise lo = -128; hi = 127)
  Taps outside the input (padding) add nothing: they are real zeros.
avg_pool (no padding, count = kh * kw):
    y = clamp(requantize(sum (x - zx), M, e) + zy, lo, hi)   (M, e: sx / (sy * count))
max_pool: y = max over the window (the output has the input's scale and zero point)
add (residual, TFLite's): with L = 20, for each input i in (a, b)
    u_i = requantize((x_i - z_i) * 2**L, M_i, e_i)       (M_i, e_i: s_i / (2 * max(sa, sb)))
    y = clamp(requantize(u_a + u_b, Mo, eo) + zy, lo, hi) (Mo, eo: 2 * max(sa, sb) / (2**L * sy))
flatten: nothing (channel-major, as the float runtime).
Input (the float raw features the family takes, C x H x W), per element along the input's
axis a (channel or width): v = float32(float32(x * qa[a]) + qb[a]) (two float32 roundings,
no fused multiply-add), q = clamp(floor(v), -128, 127), where qa = in_scale / s0 and
qb = in_shift / s0 + z0 + 0.5 are float32 (round half up of the normalised input).
Output: logits = float32(q - z) * s (float32).

Every function here takes numpy arrays of any shape (int64 inside, so nothing overflows
before the definition says it saturates) and returns int64 arrays; C uses int32/int64.
"""
from __future__ import annotations

import math

import numpy as np

INT8_MIN, INT8_MAX = -128, 127
INT32_MIN, INT32_MAX = -(2 ** 31), 2 ** 31 - 1
ADD_LEFT_SHIFT = 20


def quantize_multiplier(real: float) -> tuple[int, int]:
    """(M, e) with real ~= M * 2**(e - 31), 2**30 <= |M| < 2**31, M carrying real's sign;
    (0, 0) for 0 and for |real| < 2**-31 (it rounds to nothing). ValueError if |real| >= 2**30."""
    if not math.isfinite(real):
        raise ValueError(f"multiplier {real} is not finite")
    if real == 0.0:
        return 0, 0
    frac, e = math.frexp(abs(real))  # abs(real) = frac * 2**e, 0.5 <= frac < 1
    m = math.floor(frac * 2 ** 31 + 0.5)
    if m == 2 ** 31:
        m //= 2
        e += 1
    if e < -31:
        return 0, 0
    if e > 30:
        raise ValueError(f"multiplier {real} is too large for int8 requantization")
    return (m if real > 0 else -m), e


def sat32(x):
    return np.clip(np.asarray(x, dtype=np.int64), INT32_MIN, INT32_MAX)


def _trunc_div_pow2(x, n: int):
    """x / 2**n rounded toward zero (C's integer division), x int64."""
    return np.where(x >= 0, x >> n, -((-x) >> n))


def srdhm(a, b):
    """SaturatingRoundingDoublingHighMul(a, b): the high 32 bits of 2*a*b, rounded to
    nearest (gemmlowp's nudge: a positive tie up, a negative tie toward zero); INT32_MAX for a == b == INT32_MIN."""
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    ab = a * b
    nudge = np.where(ab >= 0, 1 << 30, 1 - (1 << 30))
    out = _trunc_div_pow2(ab + nudge, 31)
    return np.where((a == INT32_MIN) & (b == INT32_MIN), INT32_MAX, out)


def rounding_divide_by_pot(x, exponent):
    """x / 2**exponent, rounded half away from zero (0 <= exponent <= 31)."""
    x = np.asarray(x, dtype=np.int64)
    exponent = np.asarray(exponent, dtype=np.int64)
    mask = (np.int64(1) << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (x < 0)
    return (x >> exponent) + (remainder > threshold)


def requantize(x, m, e):
    """requantize(x, M, e) of the module docstring; M and e broadcast against x."""
    e = np.asarray(e, dtype=np.int64)
    left = np.maximum(e, 0)
    right = np.maximum(-e, 0)
    shifted = sat32(np.asarray(x, dtype=np.int64) << left)
    return rounding_divide_by_pot(srdhm(shifted, m), right)


def store(acc, m, e, zy: int, lo: int, hi: int, slope: tuple[int, int] | None = None):
    """The store step of conv / depthwise / dense / avg pool: acc (int32 sums with the
    bias) -> int8 values; m, e broadcast against acc (per channel on axis 0 for maps)."""
    t = requantize(acc, m, e)
    if slope is not None:
        t = np.where(t < 0, requantize(t, slope[0], slope[1]), t)
    return np.clip(t + zy, lo, hi)


def _per_channel(v, ndim: int):
    v = np.asarray(v, dtype=np.int64)
    return v.reshape(v.shape + (1,) * (ndim - 1)) if v.ndim == 1 else v


def _sums(x, w, zx: int, stride, pads, depthwise: bool):
    """Integer sums of a conv over (x - zx) with zero padding (exact: float64 holds every
    partial sum of int8 products below 2**53)."""
    cin, h, wd = x.shape
    kh, kw = w.shape[-2:]
    t, b, l, r = pads
    xp = np.zeros((cin, h + t + b, wd + l + r), dtype=np.float64)
    xp[:, t:t + h, l:l + wd] = np.asarray(x, dtype=np.float64) - zx
    sh, sw = stride
    oh = (h + t + b - kh) // sh + 1
    ow = (wd + l + r - kw) // sw + 1
    cols = np.empty((cin, kh, kw, oh, ow), dtype=np.float64)
    for dy in range(kh):
        for dx in range(kw):
            cols[:, dy, dx] = xp[:, dy:dy + sh * (oh - 1) + 1:sh, dx:dx + sw * (ow - 1) + 1:sw]
    wf = np.asarray(w, dtype=np.float64)
    if depthwise:  # w: [C, kh, kw] or [C, 1, kh, kw]
        wf = wf.reshape(cin, kh, kw)
        acc = np.einsum("ckl,cklhw->chw", wf, cols)
    else:  # w: [Cout, Cin, kh, kw]
        acc = np.tensordot(wf, cols, axes=([1, 2, 3], [0, 1, 2]))
    return np.rint(acc).astype(np.int64)


def conv2d(x, w, bias, m, e, zx: int, zy: int, lo: int, hi: int, stride=(1, 1), pads=(0, 0, 0, 0),
           slope=None):
    """x: int8 [Cin, H, W]; w: int8 [Cout, Cin, kh, kw]; bias, m, e: [Cout]; pads (t, b, l, r)."""
    acc = _sums(x, w, zx, stride, pads, depthwise=False) + _per_channel(bias, 3)
    return store(acc, _per_channel(m, 3), _per_channel(e, 3), zy, lo, hi, slope)


def depthwise_conv2d(x, w, bias, m, e, zx: int, zy: int, lo: int, hi: int, stride=(1, 1), pads=(0, 0, 0, 0),
                     slope=None):
    """x: int8 [C, H, W]; w: int8 [C, kh, kw] (or [C, 1, kh, kw]); bias, m, e: [C]."""
    acc = _sums(x, w, zx, stride, pads, depthwise=True) + _per_channel(bias, 3)
    return store(acc, _per_channel(m, 3), _per_channel(e, 3), zy, lo, hi, slope)


def dense(x, w, bias, m, e, zx: int, zy: int, lo: int, hi: int, slope=None):
    """x: int8 [N] (a flattened map, channel-major); w: int8 [Cout, N]; bias, m, e: [Cout]."""
    xs = np.asarray(x, dtype=np.float64).reshape(-1) - zx
    acc = np.rint(np.asarray(w, dtype=np.float64) @ xs).astype(np.int64) + np.asarray(bias, dtype=np.int64)
    return store(acc, m, e, zy, lo, hi, slope)


def avg_pool(x, kernel, stride, m: int, e: int, zx: int, zy: int, lo: int = INT8_MIN, hi: int = INT8_MAX):
    """x: int8 [C, H, W]; no padding; (m, e): sx / (sy * kh * kw)."""
    x = np.asarray(x, dtype=np.int64) - zx
    c, h, wd = x.shape
    kh, kw = kernel
    sh, sw = stride
    oh, ow = (h - kh) // sh + 1, (wd - kw) // sw + 1
    acc = np.zeros((c, oh, ow), dtype=np.int64)
    for dy in range(kh):
        for dx in range(kw):
            acc += x[:, dy:dy + sh * (oh - 1) + 1:sh, dx:dx + sw * (ow - 1) + 1:sw]
    return store(acc, m, e, zy, lo, hi)


def max_pool(x, kernel, stride):
    x = np.asarray(x, dtype=np.int64)
    c, h, wd = x.shape
    kh, kw = kernel
    sh, sw = stride
    oh, ow = (h - kh) // sh + 1, (wd - kw) // sw + 1
    out = np.full((c, oh, ow), INT8_MIN, dtype=np.int64)
    for dy in range(kh):
        for dx in range(kw):
            out = np.maximum(out, x[:, dy:dy + sh * (oh - 1) + 1:sh, dx:dx + sw * (ow - 1) + 1:sw])
    return out


def add_multipliers(sa: float, sb: float, sy: float) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
    """(Ma, ea), (Mb, eb), (Mo, eo) of a residual add with input scales sa, sb, output sy."""
    twice = 2.0 * max(sa, sb)
    return (quantize_multiplier(sa / twice), quantize_multiplier(sb / twice),
            quantize_multiplier(twice / ((1 << ADD_LEFT_SHIFT) * sy)))


def add(a, b, za: int, zb: int, ma, mb, mo, zy: int, lo: int = INT8_MIN, hi: int = INT8_MAX):
    """ma, mb, mo: (M, e) pairs of add_multipliers."""
    ua = requantize((np.asarray(a, dtype=np.int64) - za) << ADD_LEFT_SHIFT, *ma)
    ub = requantize((np.asarray(b, dtype=np.int64) - zb) << ADD_LEFT_SHIFT, *mb)
    return np.clip(requantize(ua + ub, *mo) + zy, lo, hi)


def quantize_input(x, qa, qb, axis: str):
    """The float raw features x [C, H, W] (or [N, C, H, W]) -> int8; qa, qb float32 along
    `axis` ("channel": C values, "width": W values, "none": one value each)."""
    x = np.asarray(x, dtype=np.float32)
    qa = np.asarray(qa, dtype=np.float32)
    qb = np.asarray(qb, dtype=np.float32)
    if axis == "channel":
        qa, qb = qa.reshape(-1, 1, 1), qb.reshape(-1, 1, 1)
    v = (x * qa).astype(np.float32)
    v = (v + qb).astype(np.float32)
    return np.clip(np.floor(v), INT8_MIN, INT8_MAX).astype(np.int64)


def input_coefficients(in_scale, in_shift, s0: float, z0: int) -> tuple[np.ndarray, np.ndarray]:
    """qa, qb of quantize_input from the family's input normalisation (x * in_scale + in_shift)."""
    a = np.asarray(in_scale, dtype=np.float64) / s0
    b = np.asarray(in_shift, dtype=np.float64) / s0 + z0 + 0.5
    return a.astype(np.float32), b.astype(np.float32)


def dequantize(q, s: float, z: int):
    return ((np.asarray(q, dtype=np.int64) - z).astype(np.float32) * np.float32(s)).astype(np.float32)
