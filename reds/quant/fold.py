"""Folding: float weights, biases and each submodel's batch norm -> the int8 tables.

Weights are int8, symmetric, one scale per output channel, from the full (largest) row:
one array every submodel reads a prefix of. Per submodel k and step, with input scale sx,
output scale sy and batch norm k as y = scale * (W x + b) + shift (the float exporter's
reds.nn.plain's `folded_bn`, the conv bias absorbed):

    bias[o] = round((b[o] + shift[o] / scale[o]) / (sx * sw[o]))      (int32)
    (M[o], e[o]) = quantize_multiplier(sx * sw[o] * scale[o] / sy)   (the sign of scale in M)

so acc * sx * sw * scale is the batch norm's output; the activation is the clamp (ReLU:
lo = max(zy, -128)) or the slope's second multiplier (leaky ReLU).
"""
from __future__ import annotations

import numpy as np

from ..errors import RedsError
from ..ir.fusion import absorbed_biases
from ..nn.plain import folded_bn
from ..family import OpenFamily
from ..ir.spec import AvgPool
from . import ops
from .steps import WEIGHTED, Params, Step

EMPTY_I32 = np.zeros(0, dtype=np.int32)


def quantize_weight(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(int8 weights, float32 per-output-channel scales): symmetric, max |w| -> 127."""
    flat = w.reshape(w.shape[0], -1)
    amax = np.abs(flat).max(axis=1) if flat.shape[1] else np.zeros(w.shape[0])
    scale = np.where(amax > 0, amax / ops.INT8_MAX, 1.0).astype(np.float32)
    q = np.clip(np.rint(flat / scale[:, None].astype(np.float64)), -ops.INT8_MAX, ops.INT8_MAX)
    return q.astype(np.int8).reshape(w.shape), scale


def _multiplier(real: float, where: str) -> tuple[int, int]:
    try:
        return ops.quantize_multiplier(float(real))
    except ValueError as e:
        raise RedsError(f"{where}: {e} (the calibration ranges are degenerate; calibrate on more varied inputs)") \
            from None


def fold(fam: OpenFamily, steps: list[Step], quant: list[list[tuple[float, int]]]) -> None:
    """Fill every step's weight and per-submodel Params. quant[k][i]: submodel k's (scale,
    zero point) of the input of step i, then (at index len(steps)) of the network's output."""
    spec, net = fam.spec, fam.net
    absorbed = absorbed_biases(spec)
    for i, step in enumerate(steps):
        layer = spec.layers[step.first]
        if step.kind in WEIGHTED:
            w = net.layers[layer.name].weight.detach().cpu().numpy().astype(np.float64)
            step.weight, step.w_scale = quantize_weight(w)
        for k, w_k in enumerate(s.widths for s in fam.submodels):
            (sx, zx), (sy, zy) = quant[k][i], quant[k][i + 1]
            where = f"submodel {k}, {layer.name}"
            if step.kind in WEIGHTED:
                cout = spec.size(layer.out_ch, w_k)
                bn = next((spec.layers[j] for j in step.layers[1:] if spec.layers[j].kind == "batch_norm"), None)
                if bn is not None:
                    scale, shift = (t.detach().float().numpy().astype(np.float64) for t in
                                    folded_bn(net, spec, bn, w_k, k, layer if layer.name in absorbed else None))
                    pre = np.where(scale != 0, shift / np.where(scale != 0, scale, 1.0), 0.0)
                else:
                    scale = np.ones(cout)
                    p = net.layers[layer.name]
                    pre = (p.bias.detach().cpu().numpy()[:cout].astype(np.float64) if layer.op.bias
                           else np.zeros(cout))
                sw = step.w_scale[:cout].astype(np.float64)
                bias = np.clip(np.rint(pre / (sx * sw)), ops.INT32_MIN, ops.INT32_MAX).astype(np.int32)
                ms = [_multiplier(sx * sw[o] * scale[o] / sy, where) for o in range(cout)]
                mult = np.array([m for m, _ in ms], dtype=np.int32)
                shift_ = np.array([e for _, e in ms], dtype=np.int8)
                lo = max(zy, ops.INT8_MIN) if step.act == "relu" else ops.INT8_MIN
                step.params.append(Params(bias, mult, shift_, zx, zy, lo, ops.INT8_MAX, sx, sy))
            elif step.kind == "avg_pool":
                op: AvgPool = layer.op
                kh, kw = layer.in_hw if op.kernel is None else op.kernel
                m, e = _multiplier(sx / (sy * kh * kw), where)
                step.params.append(Params(EMPTY_I32, np.array([m], np.int32), np.array([e], np.int8), zx, zy,
                                          ops.INT8_MIN, ops.INT8_MAX, sx, sy))
            else:  # max pool, flatten: the output is the input's tensor scale
                step.params.append(Params(EMPTY_I32, EMPTY_I32, np.zeros(0, np.int8), zx, zx,
                                          ops.INT8_MIN, ops.INT8_MAX, sx, sx))
