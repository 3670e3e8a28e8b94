"""A family's input: the front end that makes its features, and their normalisation.

`MfccFrontEnd` is REDS's keyword-spotting front end (the constants `reds.data.mfcc`
computes with); a family trained on audio records it, so the C exporter can emit the same
front end for a device that starts from microphone samples.

`InputNorm` turns raw features into the network's input.

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

# REDS's MFCC front end (Hello Edge's): 16 kHz, 40 ms Hann frames zero-padded to a 1024-point
# FFT, magnitude, 40 mel filters 20 Hz - 4 kHz, log(x + 1e-6), 10 DCT-II coefficients;
# the stride (20 or 40 ms) is the architecture's
SAMPLE_RATE, CLIP_SAMPLES, WINDOW, N_FFT = 16000, 16000, 640, 1024
N_MELS, F_MIN, F_MAX, N_MFCC, LOG_OFFSET = 40, 20.0, 4000.0, 10, 1e-6


@dataclass(frozen=True)
class MfccFrontEnd:
    """PCM (int16, 16 kHz, one clip) -> frames x n_mfcc raw MFCCs, as `reds.data.mfcc`."""

    stride_ms: int

    @property
    def stride(self) -> int:
        return self.stride_ms * SAMPLE_RATE // 1000

    @property
    def frames(self) -> int:
        return 1 + (CLIP_SAMPLES - WINDOW) // self.stride

    def to_json(self) -> dict:
        return {"kind": "mfcc", "sample_rate": SAMPLE_RATE, "clip_samples": CLIP_SAMPLES, "window": WINDOW,
                "stride": self.stride, "n_fft": N_FFT, "n_mels": N_MELS, "f_min": F_MIN, "f_max": F_MAX,
                "n_mfcc": N_MFCC, "log_offset": LOG_OFFSET}

    @classmethod
    def from_json(cls, d) -> MfccFrontEnd:
        """The front end a family recorded; only what this reds computes is accepted."""
        if not isinstance(d, dict) or d.get("kind") != "mfcc":
            raise ValueError("frontend must be an object with kind 'mfcc'")
        stride = d.get("stride")
        if not isinstance(stride, int) or isinstance(stride, bool) or stride <= 0 or stride * 1000 % SAMPLE_RATE:
            raise ValueError("frontend stride must be a whole number of milliseconds in samples")
        f = cls(stride * 1000 // SAMPLE_RATE)
        if f.to_json() != d:
            raise ValueError("frontend differs from REDS's MFCC front end (16 kHz, 40 ms Hann, 1024-point FFT, "
                             "40 mel filters 20-4000 Hz, 10 coefficients), the one this reds computes")
        return f

    def check(self, input_shape) -> None:
        if tuple(input_shape) != (1, self.frames, N_MFCC):
            raise ValueError(f"an MFCC front end of stride {self.stride_ms} ms makes inputs (1, {self.frames}, "
                             f"{N_MFCC}), not {tuple(input_shape)}")


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
