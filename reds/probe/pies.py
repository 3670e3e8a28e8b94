"""Pruning-identified exemplars (PIEs; Hooker et al. 2019, "What do compressed deep neural
networks forget?").

With several networks per size (trained with other seeds), an example is a PIE of the
compressed size when the *modal* prediction of the compressed networks differs from the
modal prediction of the dense ones. With one network per size (one family) the modal
prediction is that network's prediction, so a PIE is an example on which the submodel and
the full submodel disagree. A submodel identical to the full one has no PIEs.
"""
from __future__ import annotations

import torch


def modal(preds: list[torch.Tensor] | torch.Tensor, num_classes: int) -> torch.Tensor:
    """The most frequent class per example over networks: preds (S, N) or a list of S (N,)
    tensors -> (N,); a tie goes to the lowest class index."""
    p = torch.stack(list(preds)) if not isinstance(preds, torch.Tensor) else preds
    if p.dim() == 1:
        return p.clone()
    votes = torch.zeros(p.shape[1], num_classes, dtype=torch.long)
    votes.scatter_add_(1, p.T.long(), torch.ones_like(p.T, dtype=torch.long))
    return votes.argmax(1)  # argmax returns the first (lowest) of equal counts


def pies(compressed, dense, num_classes: int) -> torch.Tensor:
    """Boolean (N,): the modal prediction of the compressed networks differs from the dense
    networks' modal prediction (each argument: (N,) of one network, or S of them)."""
    return modal(compressed, num_classes) != modal(dense, num_classes)
