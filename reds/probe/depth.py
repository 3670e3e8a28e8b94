"""Prediction depth (Baldock et al. 2021, "Deep learning through the lens of example
difficulty"): how deep in the network an example's prediction is settled.

At every probe point l = 0 .. L-1 (`points.block_outputs`) a k-NN classifier (k = 30,
Euclidean distance, majority vote of the training examples' true labels, a tie going to
the lowest class index) is fitted on the representations of training data. An example's
prediction depth is the earliest l from which the probes at l and at every later point
all agree with the network's final prediction (its logits' argmax); L when even the last
probe disagrees. So 0: the first probe already gives the final answer and no later one
changes it.
"""
from __future__ import annotations

import torch

K = 30


@torch.no_grad()
def knn_predict(train: torch.Tensor, labels: torch.Tensor, test: torch.Tensor, num_classes: int, k: int = K,
                chunk: int = 1024) -> torch.Tensor:
    """The majority label of the k nearest training rows (Euclidean) of each test row."""
    k = min(k, len(train))
    out = []
    for i in range(0, len(test), chunk):
        d = torch.cdist(test[i:i + chunk], train)
        idx = d.topk(k, dim=1, largest=False).indices
        votes = torch.zeros(len(idx), num_classes, dtype=torch.long)
        votes.scatter_add_(1, labels[idx], torch.ones_like(idx))
        out.append(votes.argmax(1))
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.long)


def prediction_depth(probes: torch.Tensor, final: torch.Tensor) -> torch.Tensor:
    """probes (L, N) k-NN predictions per point, final (N,) -> (N,) depths in 0..L."""
    agree = probes == final.unsqueeze(0)  # (L, N)
    # suffix "all agree from l on": reverse cumulative product
    settled = agree.flip(0).long().cumprod(0).flip(0).bool()
    L = probes.shape[0]
    # the earliest settled l; L where none is (settled[l] holds for a suffix of l only)
    return L - settled.sum(0)
