"""Importance of every unit of every group.

- `grad` (REDS): sum over the unit's incoming weights of |W * G|, G = gradient of the
  cross-entropy summed over N minibatches.
- `l1`: sum of |W| over the same weights.
- `random`: seeded uniform scores, for ablations.

"Incoming weights" are the entries of every tensor the group indexes as a producer: a
conv's or dense layer's output row (and bias), a depthwise conv's channel. Consumers'
input columns are not counted, as in REDS.
"""
from __future__ import annotations

from typing import Iterable

import torch
import torch.nn.functional as F

from ..ir.spec import BatchNorm
from . import METHODS
from .nested import NestedNet



def _producer_weights(net: NestedNet):
    """(group, dim, tensor) for each producing parameter that is a weight or bias."""
    for layer in net.spec.layers:
        if isinstance(layer.op, BatchNorm):
            continue
        for pd in net.spec.param_dims(layer):
            if pd.produces and pd.param in ("weight", "bias"):
                yield pd.group, pd.dim, getattr(net.layers[layer.name], pd.param)


def _per_unit(t: torch.Tensor, dim: int) -> torch.Tensor:
    return t.movedim(dim, 0).reshape(t.shape[dim], -1).sum(1)


def scores(net: NestedNet, method: str = "grad", batches: Iterable | None = None,
           seed: int = 0) -> dict[str, torch.Tensor]:
    spec = net.spec
    out = {g.name: torch.zeros(g.units, dtype=torch.float64) for g in spec.groups}
    if method == "random":
        gen = torch.Generator().manual_seed(seed)
        return {g: torch.rand(len(v), generator=gen, dtype=torch.float64) for g, v in out.items()}
    if method == "l1":
        with torch.no_grad():
            for g, dim, t in _producer_weights(net):
                out[g] += _per_unit(t.abs(), dim).double().cpu()
        return out
    if method != "grad":
        raise ValueError(f"importance method must be one of {METHODS}")
    if batches is None:
        raise ValueError("grad importance needs minibatches")
    params = [t for _, _, t in _producer_weights(net)]
    grads = [torch.zeros_like(p) for p in params]
    was_training = net.training
    net.eval()  # score the trained network as it will run (running BN statistics)
    n = 0
    for x, y in batches:
        net.zero_grad(set_to_none=True)
        F.cross_entropy(net(x), y, reduction="sum").backward()
        for acc, p in zip(grads, params):
            acc += p.grad
        n += 1
    net.zero_grad(set_to_none=True)
    net.train(was_training)
    if n == 0:
        raise ValueError("grad importance got no minibatches")
    with torch.no_grad():
        for (g, dim, t), gsum in zip(_producer_weights(net), grads):
            out[g] += _per_unit((t * gsum).abs(), dim).double().cpu()
    return out


def block_scores(net: NestedNet, batches: list, scores: dict[str, torch.Tensor],
                 submodels: list[dict[str, int]]) -> list[dict[str, float]]:
    """Importance of every skippable block (elastic depth), in the units of `scores`, once
    per submodel of `submodels` (the width-only knapsack's widths, one per budget).

    A block's measured cost is the loss increase dL_b when it alone is skipped from the full
    network, on the minibatches. It is put on the scale of unit scores where the decision
    is made: submodel k drops the score D_k of its groups' tails (`scores` in the units'
    current, sorted order) and raises the loss by dL_k, so at budget k a block is worth
    dL_b * D_k / dL_k. (Unit scores add up linearly while the loss of cutting many layers
    compounds, so one scale for all budgets would misprice a skip at small ones.) Where a
    submodel does not raise the loss (the full one), the scale is the median of S_g / dL_g
    over cutting each group alone to half its width. A block whose skip does not raise the
    loss is worth 0.

    Each probe's batch-norm statistics are first recomputed on the minibatches, as every
    submodel's are after fine-tuning: the full network's statistics would charge a probe for
    a shift that fine-tuning removes. The network's own statistics are restored at the end."""
    spec = net.spec
    if not spec.blocks:
        return [{} for _ in submodels]
    if not batches:
        raise ValueError("block importance needs minibatches")
    full = spec.full_widths()
    was_training, momentum = net.training, net.bn_momentum
    saved = [{k: v.clone() for k, v in s.state_dict().items()} for s in net.bn_states()]

    def loss(widths) -> float:
        with torch.no_grad():
            net.train()
            net.reset_bn_stats(0)
            net.bn_momentum = None  # an exact average over the minibatches
            for x, _ in batches:
                net(x, widths)
            net.eval()
            total = sum(float(F.cross_entropy(net(x, widths), y, reduction="sum")) for x, y in batches)
        return total / sum(len(y) for _, y in batches)

    def dropped(widths) -> float:
        return sum(float(torch.clamp(scores[g.name][widths[g.name]:], min=0).sum()) for g in spec.groups)

    base = loss(full)
    ratios = []
    for g in spec.groups:
        half = max(1, g.units // 2)
        if half < g.units:
            w = {**full, g.name: half}
            dl, d = loss(w) - base, dropped(w)
            if dl > 0 and d > 0:
                ratios.append(d / dl)
    fallback = float(torch.tensor(ratios, dtype=torch.float64).median()) if ratios else 0.0
    skip = {}
    for b in spec.blocks:
        w = dict(full, **{b.name: 0})
        if b.alias:
            w[b.alias] = w[b.in_group]
        skip[b.name] = max(0.0, loss(w) - base)
    out = []
    for w in submodels:
        dl, d = loss(w) - base, dropped(w)
        scale = d / dl if dl > 0 and d > 0 else fallback
        out.append({b: v * scale for b, v in skip.items()})
    with torch.no_grad():
        for s, state in zip(net.bn_states(), saved):
            s.load_state_dict(state)
    net.bn_momentum = momentum
    net.train(was_training)
    return out
