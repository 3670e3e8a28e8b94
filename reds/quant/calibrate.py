"""Calibration: each submodel's activation ranges, from its own float forward pass.

Submodel k runs in float (the family's NestedNet, batch norm k, eval mode) on the
calibration inputs; the min and max of the normalised input and of every step's output
(after its batch norm and activation) give that tensor's int8 scale and zero point, per
submodel. The range always includes 0, so a real zero (padding, ReLU) is exact.
"""
from __future__ import annotations

import numpy as np
import torch

from ..errors import RedsError
from ..family import OpenFamily
from .ops import INT8_MAX, INT8_MIN
from .steps import Step

BATCH = 256


def check_inputs(fam: OpenFamily, x) -> np.ndarray:
    """The calibration inputs as float32 N x C x H x W raw features, or a RedsError."""
    shape = tuple(fam.spec.input_shape)
    try:
        x = np.asarray(x, dtype=np.float32)
    except (TypeError, ValueError):
        raise RedsError("calibration inputs must be an array of numbers") from None
    if x.ndim != 4 or tuple(x.shape[1:]) != shape or x.shape[0] < 1:
        raise RedsError(f"calibration inputs must be N x {' x '.join(map(str, shape))} raw features "
                        f"(N >= 1), got shape {tuple(x.shape)}")
    if not np.isfinite(x).all():
        raise RedsError("calibration inputs hold NaN or infinite values")
    return x


def qparams(lo: float, hi: float) -> tuple[float, int]:
    """(scale, zero point) of an asymmetric int8 tensor whose reals span lo..hi (0 included)."""
    lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
    if hi - lo <= 0.0:
        return 1.0, 0
    s = (hi - lo) / (INT8_MAX - INT8_MIN)
    z = int(np.clip(round(INT8_MIN - lo / s), INT8_MIN, INT8_MAX))
    return s, z


def ranges(fam: OpenFamily, steps: list[Step], x: np.ndarray, k: int) -> tuple[tuple[float, float], list]:
    """Submodel k's (min, max) of the normalised input, and of each step's output (None
    for a step that keeps its input's scale)."""
    spec, net, norm = fam.spec, fam.net, fam.input_norm
    names = [spec.layers[s.last].name for s in steps if s.own_output]
    lo_in, hi_in = np.inf, -np.inf
    lo, hi = {n: np.inf for n in names}, {n: -np.inf for n in names}
    widths = fam.submodels[k].widths
    with torch.no_grad():
        for a in range(0, len(x), BATCH):
            xb = torch.from_numpy(x[a:a + BATCH])
            if norm is not None:
                xb = norm.apply(xb)
            lo_in, hi_in = min(lo_in, float(xb.min())), max(hi_in, float(xb.max()))
            _, outs = net.features(xb, widths, bn=k, at=names)
            for n, t in outs.items():
                lo[n], hi[n] = min(lo[n], float(t.min())), max(hi[n], float(t.max()))
    per_step = [(lo[spec.layers[s.last].name], hi[spec.layers[s.last].name]) if s.own_output else None
                for s in steps]
    return (lo_in, hi_in), per_step
