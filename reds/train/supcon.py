"""Supervised contrastive loss (Khosla et al. 2020, "Supervised Contrastive Learning",
the L_out form), for `reds train --loss supcon`.

The representation is the penultimate layer (the classifier's input), L2-normalised; there
is no projection head, and one view per example: the positives of an anchor are the other
examples of its class in the batch. With z_i = f(x_i) / ||f(x_i)||, temperature tau,
P(i) = {p != i : y_p = y_i} and A(i) = {a != i}:

    L = mean over anchors i with P(i) nonempty of
        -1/|P(i)| * sum_{p in P(i)} log( exp(z_i . z_p / tau) / sum_{a in A(i)} exp(z_i . z_a / tau) ).

Pretraining minimises L; a linear head is then trained on the frozen network with
cross-entropy (the trainer's "head" phase) before importance, the knapsack and the
(cross-entropy) fine-tuning of all submodels.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def supcon_loss(features: torch.Tensor, labels: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    """L_out of (N, D) features (normalised here) with (N,) labels; 0 when no anchor has a positive."""
    z = F.normalize(features.flatten(1).float(), dim=1)
    n = len(z)
    logits = z @ z.T / temperature
    self_mask = torch.eye(n, dtype=torch.bool, device=z.device)
    logits = logits.masked_fill(self_mask, float("-inf"))  # a in A(i): every other example
    log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    pos = (labels.unsqueeze(0) == labels.unsqueeze(1)) & ~self_mask
    count = pos.sum(1)
    has = count > 0
    if not bool(has.any()):
        return z.sum() * 0.0
    mean_pos = log_prob.masked_fill(~pos, 0.0).sum(1)[has] / count[has]
    return -mean_pos.mean()
