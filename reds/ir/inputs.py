"""A family's input normalisation: what turns raw features into the network's input.

Training standardises its features (images per channel, MFCCs per coefficient) with
statistics of the training split. The family records them, so that every export takes
*raw* features and normalises them itself: the ONNX and TFLite graphs start with it, and
the C runtime applies it to the input in `reds_run`. A device then reproduces the model's
input from what its front end computes, with nothing to copy by hand.

    x_norm[..., a, ...] = (x[..., a, ...] - mean[a]) / std[a]

along one axis of the C x H x W input: "channel" (images) or "width" (the W axis: MFCC
coefficients of a frames x coefficients map).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

AXES = {"channel": 0, "width": 2}  # axis name -> dimension of (C, H, W)


@dataclass(frozen=True)
class InputNorm:
    axis: str
    mean: tuple[float, ...]
    std: tuple[float, ...]

    def __post_init__(self):
        if self.axis not in AXES:
            raise ValueError(f"input normalisation axis must be one of {', '.join(AXES)}, got {self.axis!r}")
        if len(self.mean) != len(self.std) or not self.mean:
            raise ValueError("input normalisation needs as many means as standard deviations (at least one)")
        if not all(math.isfinite(m) for m in self.mean) or not all(math.isfinite(s) and s > 0 for s in self.std):
            raise ValueError("input normalisation: means must be finite and standard deviations positive")

    def check(self, input_shape) -> None:
        n = input_shape[AXES[self.axis]]
        if len(self.mean) != n:
            raise ValueError(f"input normalisation along {self.axis} holds {len(self.mean)} values; "
                             f"the input {tuple(input_shape)} has {n} there")

    def shape(self, ndim: int) -> tuple[int, ...]:
        """Broadcast shape of the vectors for an input of `ndim` dims ending in C, H, W."""
        dims = [1] * ndim
        dims[ndim - 3 + AXES[self.axis]] = -1
        return tuple(dims)

    def _vectors(self, x):
        if hasattr(x, "new_tensor"):  # torch
            return (x.new_tensor(self.mean).reshape(self.shape(x.dim())),
                    x.new_tensor(self.std).reshape(self.shape(x.dim())))
        import numpy as np

        return (np.asarray(self.mean, dtype=x.dtype).reshape(self.shape(x.ndim)),
                np.asarray(self.std, dtype=x.dtype).reshape(self.shape(x.ndim)))

    def apply(self, x):
        """(x - mean) / std along the axis; x: numpy array or torch tensor (..., C, H, W)."""
        mean, std = self._vectors(x)
        return (x - mean) / std

    def invert(self, x):
        """The raw features of normalised ones (x * std + mean): inputs of a realistic range
        for checks and benchmarks."""
        mean, std = self._vectors(x)
        return x * std + mean

    def to_json(self) -> dict:
        return {"axis": self.axis, "mean": list(self.mean), "std": list(self.std)}

    @classmethod
    def from_json(cls, d) -> InputNorm:
        if not isinstance(d, dict) or set(d) != {"axis", "mean", "std"}:
            raise ValueError("input normalisation must be an object with axis, mean and std")
        vals = []
        for key in ("mean", "std"):
            v = d[key]
            if not isinstance(v, list) or not all(isinstance(f, (int, float)) and not isinstance(f, bool) for f in v):
                raise ValueError(f"input normalisation {key} must be a list of numbers")
            vals.append(tuple(float(f) for f in v))
        return cls(str(d["axis"]), *vals)

    @classmethod
    def from_info(cls, info: dict, input_shape) -> InputNorm | None:
        """What a data set recorded (`Dataset.info`): "normalize" {mean, std[, axis]} (a
        scalar mean/std applies to every channel), or MFCC "mfcc_mean"/"mfcc_std"."""
        if "normalize" in info:
            d = info["normalize"]
            axis = d.get("axis", "channel")
            axis = {"coefficient": "width"}.get(axis, axis)
            n = input_shape[AXES[axis]] if axis in AXES else 1
            mean, std = d["mean"], d["std"]
            mean = [mean] * n if isinstance(mean, (int, float)) else mean
            std = [std] * n if isinstance(std, (int, float)) else std
            norm = cls(axis, tuple(map(float, mean)), tuple(map(float, std)))
        elif "mfcc_mean" in info:
            norm = cls("width", tuple(map(float, info["mfcc_mean"])), tuple(map(float, info["mfcc_std"])))
        else:
            return None
        norm.check(input_shape)
        return norm
