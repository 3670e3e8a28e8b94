"""Reorder the units of unit groups, keeping the function the network computes.

Every tensor dimension that a group indexes (the producer's output rows and bias, the
batch norms' parameters and statistics in every submodel, the depthwise channels, the
consumers' input columns, blocks of H*W columns after a flatten) is reordered with the
same permutation, so outputs are unchanged up to float rounding.
"""
from __future__ import annotations

import torch

from ..ir.spec import BatchNorm
from .nested import NestedNet


def _expand(perm: torch.Tensor, block: int) -> torch.Tensor:
    if block == 1:
        return perm
    return (perm[:, None] * block + torch.arange(block)[None, :]).reshape(-1)


@torch.no_grad()
def permute_group(net: NestedNet, group: str, perm: torch.Tensor) -> None:
    """Unit perm[i] (old index) becomes unit i."""
    perm = torch.as_tensor(perm, dtype=torch.long)
    units = net.spec.group(group).units
    if sorted(perm.tolist()) != list(range(units)):
        raise ValueError(f"not a permutation of the {units} units of group {group}")
    for layer in net.spec.layers:
        for pd in net.spec.param_dims(layer):
            if pd.group != group:
                continue
            idx = _expand(perm, pd.block)
            holders = net.layers[layer.name] if isinstance(layer.op, BatchNorm) else [net.layers[layer.name]]
            for h in holders:
                t = getattr(h, pd.param)
                t.copy_(t.index_select(pd.dim, idx.to(t.device)))


def permute_all(net: NestedNet, perms: dict[str, torch.Tensor]) -> None:
    for g, p in perms.items():
        permute_group(net, g, p)


def order_by_importance(scores: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Per group, the permutation that puts units in descending importance (stable)."""
    return {g: torch.argsort(s, descending=True, stable=True) for g, s in scores.items()}
