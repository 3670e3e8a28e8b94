"""REDS's image augmentation, on whole batches and seeded by the caller's generator.

Its released vision code: horizontal flip (p = 0.5), rotation by U(-0.2, 0.2) rad with
p = 0.3, then a 2-pixel zero pad and a random crop back to the input size. It runs on
images in [0, 1] before normalisation, so the fill is black, as in the original.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

PAD = 2
ROTATION = 0.2  # radians, either way
P_ROTATE = 0.3

DESCRIPTION = f"horizontal flip, rotation +-{ROTATION:g} rad (p={P_ROTATE:g}), pad {PAD} + random crop"


def images(x: torch.Tensor, generator: torch.Generator, pad: int = PAD) -> torch.Tensor:
    """float (B, C, H, W) in [0, 1] -> the same shape, augmented."""
    b, _, h, w = x.shape
    flip = torch.rand(b, generator=generator) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(3), x)
    turn = torch.rand(b, generator=generator) < P_ROTATE
    angle = (torch.rand(b, generator=generator) * 2 - 1) * ROTATION
    if turn.any():
        a = angle[turn]
        cos, sin = torch.cos(a), torch.sin(a)
        zero = torch.zeros_like(a)
        theta = torch.stack([torch.stack([cos, -sin, zero], 1), torch.stack([sin, cos, zero], 1)], 1)
        grid = F.affine_grid(theta, list(x[turn].shape), align_corners=False)
        x = x.clone()
        x[turn] = F.grid_sample(x[turn], grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    dy, dx = torch.randint(0, 2 * pad + 1, (2, b), generator=generator)
    x = F.pad(x, (pad, pad, pad, pad))
    rows = (dy[:, None] + torch.arange(h))[:, None, :, None]  # (B, 1, H, 1)
    cols = (dx[:, None] + torch.arange(w))[:, None, None, :]  # (B, 1, 1, W)
    chans = torch.arange(x.shape[1])[None, :, None, None]
    return x[torch.arange(b)[:, None, None, None], chans, rows, cols]
