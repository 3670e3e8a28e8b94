"""The two adaptation tasks: distribution shift, and new classes.

shift: every split of the new data is changed the same way, deterministically from a seed
(each sample its own draw): images (raw uint8, before normalisation) are rotated by
`rotate` degrees (+- 5), get Gaussian noise of std `noise` (in [0, 1] units) and their
contrast scaled by `contrast` towards mid-grey; audio (raw int16 clips) gets white noise at
`snr` dB below each clip's level; ready features (npz) get Gaussian noise of std `noise`
(in their normalised units). `--shift` overrides any of these (`rotate=30,noise=0.1`).

new-classes: the new data set holds the family's classes (by name; a family without names:
its first classes by index) and more. The labels are renumbered so that the old classes
keep their indices and the new ones follow; the classifier grows to all of them.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..data.base import Dataset, Split
from ..errors import RedsError
from . import TASKS  # noqa: F401 (the registry)

DEFAULTS = {"image": {"rotate": 30.0, "noise": 0.1, "contrast": 0.6},
            "audio": {"snr": 10.0},
            "array": {"noise": 0.5}}
JITTER_DEG = 5.0


def kind(ds: Dataset) -> str:
    x = ds.splits["train"].x
    if ds.info.get("kind") == "audio" and x.dim() == 2:
        return "audio"
    if x.dtype == torch.uint8 and x.dim() == 4:
        return "image"
    return "array"


def parse_shift(text: str | None, what: str) -> dict[str, float]:
    params = dict(DEFAULTS[what])
    if not text:
        return params
    for item in (t.strip() for t in text.split(",") if t.strip()):
        key, _, val = item.partition("=")
        if key not in params:
            raise RedsError(f"--shift {key!r} does not apply to {what} data; it takes: "
                            + ", ".join(f"{k}={v:g}" for k, v in DEFAULTS[what].items()))
        try:
            params[key] = float(val)
        except ValueError:
            raise RedsError(f"--shift {key}= needs a number, got {val!r}") from None
        if not math.isfinite(params[key]) or (key != "rotate" and params[key] < 0):
            raise RedsError(f"--shift {key}={val}: must be a finite number" + (" >= 0" if key != "rotate" else ""))
    return params


def _images(x: torch.Tensor, p: dict, gen: torch.Generator) -> torch.Tensor:
    b = x.shape[0]
    f = x.float() / 255.0
    angle = torch.deg2rad(p["rotate"] + (torch.rand(b, generator=gen) * 2 - 1) * JITTER_DEG)
    if p["rotate"] != 0:
        cos, sin, zero = torch.cos(angle), torch.sin(angle), torch.zeros(b)
        theta = torch.stack([torch.stack([cos, -sin, zero], 1), torch.stack([sin, cos, zero], 1)], 1)
        grid = F.affine_grid(theta, list(f.shape), align_corners=False)
        f = F.grid_sample(f, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    f = p["contrast"] * f + (1 - p["contrast"]) * 0.5
    f = f + p["noise"] * torch.randn(f.shape, generator=gen)
    return (f.clamp(0, 1) * 255).round().to(torch.uint8)


def _audio(x: torch.Tensor, p: dict, gen: torch.Generator) -> torch.Tensor:
    f = x.float()
    rms = f.pow(2).mean(1, keepdim=True).sqrt().clamp(min=1.0)
    f = f + torch.randn(f.shape, generator=gen) * rms / 10 ** (p["snr"] / 20)
    return f.round().clamp(-32768, 32767).to(torch.int16)


def _arrays(x: torch.Tensor, p: dict, gen: torch.Generator) -> torch.Tensor:
    return x + p["noise"] * torch.randn(x.shape, generator=gen, dtype=x.dtype)


def shift(ds: Dataset, text: str | None, seed: int) -> dict:
    """Change every split of ds in place; returns what was done (for the report)."""
    what = kind(ds)
    p = parse_shift(text, what)
    fn = {"image": _images, "audio": _audio, "array": _arrays}[what]
    for i, (name, s) in enumerate(sorted(ds.splits.items())):
        gen = torch.Generator().manual_seed(seed * 7919 + i + 1)
        chunks = [fn(s.x[j:j + 2000], p, gen) for j in range(0, len(s), 2000)]
        ds.splits[name] = Split(torch.cat(chunks) if chunks else s.x, s.y)
    return {"kind": what, **p, "seed": seed}


def new_classes(ds: Dataset, old: list[str], old_count: int) -> list[str]:
    """Renumber ds's labels: the family's classes first, in its order, then the new ones.
    Returns the new class list."""
    names = list(ds.classes)
    if old:
        missing = [c for c in old if c not in names]
        if missing:
            raise RedsError(f"the new data lacks the family's class(es) {', '.join(missing[:5])}: new-classes keeps "
                            "the old classes and needs their data too")
    else:
        old = names[:old_count]
    new = [c for c in names if c not in old]
    if not new:
        raise RedsError(f"the new data holds no class beyond the family's {len(old)}; use --task shift")
    order = old + new
    remap = torch.tensor([order.index(c) for c in names])
    for name, s in ds.splits.items():
        ds.splits[name] = Split(s.x, remap[s.y])
    ds.classes = order
    return order
