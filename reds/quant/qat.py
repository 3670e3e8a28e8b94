"""Quantization-aware fine-tuning of a nested family: all submodels together, on shared weights.

Every step trains every submodel k (its widths, its batch norm, eval-mode statistics) on
one batch, the losses summed, through a forward that sees what the int8 family will run:
- the weights fake-quantized as `fold.quantize_weight` quantizes them (symmetric, one scale
  per output channel of the full tensor, shared by every submodel), gradients straight
  through;
- the normalised input and every int8 step's output (after its batch norm and activation)
  fake-quantized with submodel k's own calibrated (scale, zero point), gradients straight
  through inside the range and zero where the value clips.
The ranges are calibrated once before (`calibrate.ranges`, as post-training quantization
does). Batch-norm statistics stay frozen during it and are recalibrated per submodel after
it (the tuned weights move the activations); then `quantize` calibrates afresh.
"""
from __future__ import annotations

import sys

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from ..family import OpenFamily
from ..ir.spec import Add
from .calibrate import qparams, ranges
from .ops import INT8_MAX, INT8_MIN
from .steps import WEIGHTED, plan

LR = 1e-4  # small: the float weights are trained; this only moves them toward the int8 grid
BN_SAMPLES = 2000  # training samples each submodel's batch norm is recalibrated on afterwards


class _FakeQuantWeight(torch.nn.Module):
    """A weight's int8 image (symmetric per output channel), straight-through."""

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        flat = w.reshape(w.shape[0], -1)
        amax = flat.detach().abs().amax(1).clamp_min(1e-12)
        scale = (amax / INT8_MAX).reshape(-1, *([1] * (w.dim() - 1)))
        q = torch.clamp(torch.round(w / scale), -INT8_MAX, INT8_MAX) * scale
        return w + (q - w).detach()


def _fake_quant(x: torch.Tensor, s: float, z: int) -> torch.Tensor:
    """x through int8 (scale s, zero point z): straight-through inside the range, 0 outside."""
    xc = torch.clamp(x, s * (INT8_MIN - z), s * (INT8_MAX - z))
    return xc + (torch.round(xc / s) * s - xc).detach()


def _forward(net, spec, x, widths, k: int, q_in, q_out: dict):
    """Submodel k's logits with its int8 input and steps' outputs fake-quantized."""
    x = _fake_quant(x, *q_in)
    for layer in spec.layers:  # int8 steps: no skipped blocks (steps.plan refuses them)
        if isinstance(layer.op, Add):
            raise AssertionError("int8 steps have no residual adds")
        x = net._run(layer, x, widths, k, inplace=False)
        if layer.name in q_out:
            x = _fake_quant(x, *q_out[layer.name])
    return x


def finetune(fam: OpenFamily, ds, calib_x: np.ndarray, epochs: int, batch_size: int = 64,
             limit: int | None = None, log=print) -> None:
    """Fine-tune fam.net in place (all submodels together) for `epochs` passes over the
    training split (`limit`: at most that many samples per pass)."""
    from torch.nn.utils import parametrize

    spec, net = fam.spec, fam.net  # ds's batches are normalised features, as the ranges' input is
    widths = [s.widths for s in fam.submodels]
    steps = plan(spec, widths)
    quant = []
    for k in range(len(widths)):  # per submodel: the input's and each step's output's (s, z)
        (lo, hi), per_step = ranges(fam, steps, calib_x, k)
        quant.append((qparams(lo, hi), {spec.layers[s.last].name: qparams(*r)
                                        for s, r in zip(steps, per_step) if r is not None}))
    weighted = [spec.layers[s.first].name for s in steps if s.kind in WEIGHTED]
    for name in weighted:
        parametrize.register_parametrization(net.layers[name], "weight", _FakeQuantWeight())
    params = [p for p in net.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=LR)
    net.eval()  # batch norm statistics stay each submodel's own (calibrated by the trainer)
    gen = torch.Generator().manual_seed(0)
    try:
        for epoch in range(epochs):
            total = n = 0.0
            bar = tqdm(ds.batches("train", batch_size, shuffle=True, generator=gen, limit=limit),
                       desc=f"qat {epoch + 1}/{epochs}", unit="batch", leave=False, file=sys.stderr, disable=None)
            for x, y in bar:
                opt.zero_grad(set_to_none=True)
                loss = 0.0
                for k, w in enumerate(widths):
                    q_in, q_out = quant[k]
                    loss = loss + F.cross_entropy(_forward(net, spec, x, w, k, q_in, q_out), y)
                loss.backward()
                opt.step()
                total += float(loss.detach()) * len(y)
                n += len(y)
            log(f"qat epoch {epoch + 1}/{epochs}: loss {total / max(n, 1):.4f} (summed over {len(widths)} submodels)")
    finally:
        for name in weighted:  # keep the tuned float weights, drop the fake quantization
            parametrize.remove_parametrizations(net.layers[name], "weight", leave_parametrized=False)
    recalibrate_bn(fam, ds, batch_size)


@torch.no_grad()
def recalibrate_bn(fam: OpenFamily, ds, batch_size: int = 64, samples: int = BN_SAMPLES) -> None:
    """Each submodel's batch-norm statistics recomputed as exact averages over `samples`
    training samples (as the trainer does after fine-tuning): the tuned weights moved the
    activations away from the statistics frozen during the fine-tuning."""
    spec, net = fam.spec, fam.net
    if not any(l.kind == "batch_norm" for l in spec.layers):
        return
    momentum = net.bn_momentum
    for k, s in enumerate(fam.submodels):
        net.train()
        net.reset_bn_stats(k)
        net.bn_momentum = None  # cumulative average
        gen = torch.Generator().manual_seed(k)
        for x, _ in ds.batches("train", batch_size, shuffle=True, generator=gen, limit=samples):
            net(x, s.widths, bn=k)
    net.bn_momentum = momentum
    net.eval()
