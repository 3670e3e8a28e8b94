"""MFCC features as used by Hello Edge (arXiv 1711.07128) and REDS for keyword spotting.

One second of 16 kHz audio; 40 ms frames (640 samples) every 20 ms (49 frames) or 40 ms
(25 frames); periodic Hann window; each frame zero-padded to a 1024-point FFT (the next
power of two, as TensorFlow's `audio_spectrogram`); 40 triangular mel filters from 20 Hz to
4 kHz applied to the *magnitude* spectrum (TensorFlow's `mfcc` op takes the square root of
the power spectrogram before the filterbank, so this matches it); natural log with a 1e-6
offset; orthonormal DCT-II, first 10 coefficients.

Differences from TensorFlow's op, harmless because the networks are trained on these very
features: TF floors the log at 1e-12 instead of adding 1e-6, and scales DCT coefficient 0 by
sqrt(2/N) where the orthonormal DCT uses sqrt(1/N).

Frames are cut with `unfold` + `rfft(n=1024)` rather than `torch.stft`: with
n_fft=1024 > win_length=640, stft would take 1024-sample frames (47 of them, not 49).
No centre padding: frames = 1 + (16000 - 640) // stride.
"""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch

from ..ir.inputs import (CLIP_SAMPLES, F_MAX, F_MIN, LOG_OFFSET, N_FFT, N_MELS, N_MFCC,  # noqa: F401
                         SAMPLE_RATE, WINDOW)
N_BINS = int(F_MAX * N_FFT / SAMPLE_RATE) + 1  # FFT bins up to 4 kHz; the filters ignore the rest


def num_frames(stride_ms: int, samples: int = CLIP_SAMPLES) -> int:
    """Frames per clip: 49 for a 20 ms stride, 25 for 40 ms."""
    return 1 + (samples - WINDOW) // (stride_ms * SAMPLE_RATE // 1000)


def hz_to_mel(f: torch.Tensor) -> torch.Tensor:
    """HTK mel scale, as TensorFlow's filterbank: 1127 ln(1 + f / 700)."""
    return 1127.0 * torch.log1p(f / 700.0)


@lru_cache(maxsize=None)
def mel_filterbank() -> torch.Tensor:
    """(N_BINS, N_MELS) triangular filters, equally spaced on the mel scale.

    Filter c rises from mel point c to c+1 and falls to c+2 (N_MELS + 2 points from F_MIN to
    F_MAX); unnormalized (peak 1), as in TensorFlow. Bins outside [F_MIN, F_MAX] get 0.
    """
    freqs = torch.arange(N_BINS, dtype=torch.float64) * SAMPLE_RATE / N_FFT
    mel = hz_to_mel(freqs)
    lo_mel, hi_mel = hz_to_mel(torch.tensor([F_MIN, F_MAX], dtype=torch.float64)).tolist()
    pts = torch.linspace(lo_mel, hi_mel, N_MELS + 2, dtype=torch.float64)
    lo, mid, hi = pts[:-2], pts[1:-1], pts[2:]
    up = (mel[:, None] - lo) / (mid - lo)
    down = (hi - mel[:, None]) / (hi - mid)
    return torch.clamp(torch.minimum(up, down), min=0.0).float()


@lru_cache(maxsize=None)
def dct_matrix() -> torch.Tensor:
    """(N_MELS, N_MFCC) orthonormal DCT-II basis, so coefficients = log_mel @ dct_matrix()."""
    n = torch.arange(N_MELS, dtype=torch.float64)[:, None]
    k = torch.arange(N_MFCC, dtype=torch.float64)[None, :]
    m = torch.cos(math.pi / N_MELS * (n + 0.5) * k) * math.sqrt(2.0 / N_MELS)
    m[:, 0] /= math.sqrt(2.0)
    return m.float()


@lru_cache(maxsize=None)
def _window() -> torch.Tensor:
    return torch.hann_window(WINDOW, periodic=True)


def mfcc(audio: torch.Tensor, stride_ms: int = 20) -> torch.Tensor:
    """(B, samples) float audio in [-1, 1] at 16 kHz -> (B, 1, frames, 10) float32 MFCCs."""
    if audio.dim() != 2:
        raise ValueError(f"mfcc expects (batch, samples), got shape {tuple(audio.shape)}")
    hop = stride_ms * SAMPLE_RATE // 1000
    dev = audio.device
    frames = audio.float().unfold(-1, WINDOW, hop) * _window().to(dev)  # (B, T, 640)
    magnitude = torch.fft.rfft(frames, n=N_FFT)[..., :N_BINS].abs()  # (B, T, 257)
    mel = magnitude @ mel_filterbank().to(dev)  # (B, T, 40)
    return (torch.log(mel + LOG_OFFSET) @ dct_matrix().to(dev)).unsqueeze(1)


def one_second(samples) -> np.ndarray:
    """int16 samples as exactly one clip: zero-padded at the end or cut (the TensorFlow
    example's rule, and the C front end's: samples past the end read as silence)."""
    out = np.zeros(CLIP_SAMPLES, dtype=np.int16)
    n = min(len(samples), CLIP_SAMPLES)
    out[:n] = samples[:n]
    return out


def clip_features(samples, stride_ms: int) -> np.ndarray:
    """One clip of int16 PCM -> its raw MFCCs (1, frames, 10) float32, as training computes
    them (x / 32768, then `mfcc`): the reference for a device's front end."""
    x = torch.from_numpy(one_second(samples).astype(np.float32) / 32768.0)[None]
    return mfcc(x, stride_ms)[0].numpy()
