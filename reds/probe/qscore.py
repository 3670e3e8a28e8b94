"""Q-score (Kalibhat et al. 2022, "Measuring self-supervised representation quality for
downstream classification using discriminative features", arXiv 2203.01881): how sparse
and peaked one example's representation is.

For an example's representation z in R^d (here the penultimate layer: the classifier's
input), with the z-scores of its own features
    zeta_j(z) = (z_j - mean(z)) / std(z)        (mean and population std over the d features)
the Q-score is the largest z-score over the L1 norm:
    Q(z) = max_j zeta_j(z) / ||z||_1.
A representation with one strongly active feature and little else scores high; a dense one
low. Q depends on the scale of z (||z||_1) and its bound on d, so between networks of
other widths reds also reports the *normalised* Q-score
    Qn(z) = Q(z / ||z||_1) / sqrt(d - 1) = max_j zeta_j(z) / sqrt(d - 1),
the Q-score of z rescaled to unit L1 norm over its largest possible value (max zeta <=
sqrt(d - 1), with equality exactly for a one-hot z): 1 for a one-hot representation, near
sqrt(2 ln d / d) for a dense Gaussian one. A constant z (std 0) scores 0.
"""
from __future__ import annotations

import torch


def _max_zeta(z: torch.Tensor) -> torch.Tensor:
    z = z.double()
    std = z.std(1, unbiased=False)
    top = (z.max(1).values - z.mean(1)) / std.clamp(min=1e-30)
    return torch.where(std > 0, top, torch.zeros_like(top))


def q_score(z: torch.Tensor) -> torch.Tensor:
    """Q(z) = max_j zeta_j(z) / ||z||_1 per row of z (N, d) -> (N,) float64; 0 for z = 0."""
    l1 = z.double().abs().sum(1)
    return torch.where(l1 > 0, _max_zeta(z) / l1.clamp(min=1e-30), torch.zeros_like(l1))


def q_score_normalised(z: torch.Tensor) -> torch.Tensor:
    """Qn(z) = max_j zeta_j(z) / sqrt(d - 1) per row of z (N, d), d >= 2 -> (N,) float64 in [0, 1]."""
    d = z.shape[1]
    if d < 2:
        raise ValueError("the Q-score needs a representation of at least 2 features")
    return _max_zeta(z) / (d - 1) ** 0.5
