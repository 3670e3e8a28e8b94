"""Where the probes read a network: the output of every block, and the penultimate layer.

A *block output* is the output of every activation (ReLU, LeakyReLU), or, where an
activation feeds a residual add straight away, the add's output; the penultimate
representation is the input of the last parametered layer (the classifier), which
`reds probe` also probes. `representations` runs a submodel once per batch
(`NestedNet.features`) and keeps, per point, a flat vector per example: a feature map
(C, H, W) is average-pooled to at most POOL x POOL positions first, so a k-NN probe on
a wide early layer stays cheap (Baldock et al. probe the full map; pooling keeps the
channels and a coarse layout). The penultimate representation is kept as it is.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..ir.spec import Add, LeakyReLU, ReLU, Spec

POOL = 4  # feature maps are pooled to at most POOL x POOL positions for the k-NN probes


def block_outputs(spec: Spec) -> list[str]:
    """The probe points in network order: block outputs, then the penultimate layer."""
    layers = spec.layers
    names = []
    for i, l in enumerate(layers):
        feeds_add = i + 1 < len(layers) and isinstance(layers[i + 1].op, Add)
        if isinstance(l.op, (ReLU, LeakyReLU)) and not feeds_add or isinstance(l.op, Add):
            names.append(l.name)
    pen = spec.penultimate
    last = max(i for i, l in enumerate(layers) if l.name == pen)
    names = [n for n in names if next(i for i, l in enumerate(layers) if l.name == n) <= last]
    if pen not in names:
        names.append(pen)
    return names


def flat(t: torch.Tensor, pool: int = POOL) -> torch.Tensor:
    """(N, C, H, W) -> (N, C * h * w) after average pooling to h, w <= pool; (N, D) as is."""
    if t.dim() == 4:
        h, w = t.shape[2:]
        if h > pool or w > pool:
            t = F.adaptive_avg_pool2d(t, (min(h, pool), min(w, pool)))
    return t.flatten(1)


@torch.no_grad()
def representations(net, batches, widths, bn: int, points: list[str]):
    """(logits (N, K), {point: (N, D) float32}) of submodel (widths, bn) over `batches` of
    features; the penultimate point (the last) is kept unpooled."""
    net.eval()
    logits, reps = [], {p: [] for p in points}
    pen = points[-1]
    for x in batches:
        out, feats = net.features(x, widths, bn=bn, at=points)
        logits.append(out.float())
        for p in points:
            reps[p].append(feats[p].flatten(1).float() if p == pen else flat(feats[p]).float())
    return torch.cat(logits), {p: torch.cat(v) for p, v in reps.items()}
