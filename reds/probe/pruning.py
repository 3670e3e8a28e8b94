"""Unstructured global magnitude pruning: the baseline of the same size as a submodel.

The prunable weights are the conv, depthwise conv and dense weight tensors (biases and
batch norms stay, as in the usual global magnitude pruning). Pruning to a submodel's size
keeps, over the whole network, exactly as many weights as that submodel's prunable
weights (`kept_weights`): the |w| largest (ties: the earlier weight in network order).

- one-shot: prune the pretrained network once, then fine-tune it for N epochs with the
  pruned weights held at zero;
- gradual (Zhu & Gupta 2017, "To prune, or not to prune"): from the pretrained network,
  prune every `every` steps of fine-tuning to the cubic schedule
      s_t = s_f + (s_i - s_f) * (1 - (t - t0) / (n * dt))^3,   t0 <= t <= t0 + n * dt
  (s_i = 0 at t0 = 0; the final sparsity s_f is reached at RAMP of the steps), then
  fine-tune the rest of the steps at s_f. A weight pruned once stays pruned.

The result is a dense NestedNet (full widths, one batch-norm state) whose zeros are the
pruned weights, so the probes read it exactly as they read a submodel. `effective_cost`
counts its nonzero parameters and the MACs of its nonzero weights (sparse compute, ideal).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..ir.cost import cost
from ..ir.spec import Conv2d, Dense, DepthwiseConv2d, Spec

RAMP = 0.75  # share of the fine-tuning steps over which gradual pruning reaches its sparsity
PRUNE_EVERY = 10  # steps between two pruning steps of the gradual schedule


def prunable(spec: Spec) -> list[str]:
    """Names of the layers whose weight tensor is pruned, in network order."""
    return [l.name for l in spec.layers if isinstance(l.op, (Conv2d, Dense, DepthwiseConv2d))]


def kept_weights(spec: Spec, widths: dict[str, int]) -> int:
    """The prunable weights of the submodel with these widths (its conv/dense weights)."""
    total = 0
    for l in spec.layers:
        if not isinstance(l.op, (Conv2d, Dense, DepthwiseConv2d)):
            continue
        cin, cout = spec.size(l.in_ch, widths), spec.size(l.out_ch, widths)
        kh, kw = (1, 1) if isinstance(l.op, Dense) else l.op.kernel
        fan = 1 if isinstance(l.op, DepthwiseConv2d) else cin * (l.in_spatial if isinstance(l.op, Dense) else 1)
        total += cout * fan * kh * kw
    return total


def magnitude_masks(net, keep: int, within: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    """Global magnitude pruning: {layer: bool mask} keeping exactly `keep` weights in all,
    those of largest |w| (a tie keeps the earlier weight in network order); `within`: only
    weights these masks keep may be kept (gradual pruning never revives a weight)."""
    names = prunable(net.spec)
    weights = [net.layers[n].weight.detach() for n in names]
    flat = torch.cat([w.abs().flatten() for w in weights]).double()
    if within is not None:
        flat[~torch.cat([within[n].flatten() for n in names])] = -1.0
    if not 0 <= keep <= int((flat >= 0).sum()):
        raise ValueError(f"cannot keep {keep} of {int((flat >= 0).sum())} weights")
    order = torch.sort(flat, descending=True, stable=True).indices  # stable: ties by position
    m = torch.zeros(flat.numel(), dtype=torch.bool)
    m[order[:keep]] = True
    out, i = {}, 0
    for n, w in zip(names, weights):
        out[n] = m[i:i + w.numel()].view_as(w)
        i += w.numel()
    return out


def apply_masks(net, masks: dict[str, torch.Tensor]) -> None:
    with torch.no_grad():
        for n, m in masks.items():
            net.layers[n].weight.mul_(m.to(net.layers[n].weight.dtype))


def cubic(step: int, total_steps: int, final: float, initial: float = 0.0, begin: int = 0) -> float:
    """Zhu & Gupta's sparsity at `step`: from `initial` at `begin` to `final` at
    `begin + total_steps`, cubic; `final` afterwards, `initial` before."""
    if step <= begin:
        return initial
    if total_steps <= 0 or step >= begin + total_steps:
        return final
    return final + (initial - final) * (1 - (step - begin) / total_steps) ** 3


def effective_cost(net, masks: dict[str, torch.Tensor]) -> dict:
    """Nonzero parameters (kept weights + every bias and batch-norm scale/shift) and the
    MACs of the kept weights (each conv weight is used once per output position)."""
    spec = net.spec
    full = cost(spec, spec.full_widths())
    by_name = {l.name: l for l in spec.layers}
    total_w = sum(int(net.layers[n].weight.numel()) for n in masks)
    kept = sum(int(m.sum()) for m in masks.values())
    macs = sum(int(m.sum()) * by_name[n].out_hw[0] * by_name[n].out_hw[1] for n, m in masks.items())
    return {"weights": kept, "params": full.params - total_w + kept, "macs": macs,
            "sparsity": round(1 - kept / total_w, 6)}


def finetune(net, masks_for, batches_for, epochs: int, lr: float, steps_per_epoch: int, log=None):
    """Fine-tune `net` (full widths, batch-norm state 0) with Adam and cross-entropy;
    before every step `masks_for(step)` gives the masks (or None: keep the last), which are
    applied to the weights and to their gradients. `batches_for(epoch)` yields (x, y)."""
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    masks, step = None, 0
    for epoch in range(epochs):
        net.train()
        total = count = 0.0
        for x, y in batches_for(epoch):
            new = masks_for(step)
            if new is not None:
                masks = new
                apply_masks(net, masks)
            # cosine decay over the whole fine-tuning
            rate = lr * 0.5 * (1 + math.cos(math.pi * step / max(1, epochs * steps_per_epoch)))
            for g in opt.param_groups:
                g["lr"] = rate
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(net(x, None, bn=0), y)
            loss.backward()
            if masks is not None:
                for n, m in masks.items():
                    net.layers[n].weight.grad.mul_(m)
            opt.step()
            if masks is not None:  # Adam's moments move a zero weight: hold it at zero
                apply_masks(net, masks)
            total += float(loss.detach()) * len(y)
            count += len(y)
            step += 1
        if log:
            log(f"  epoch {epoch + 1}/{epochs}: loss {total / max(count, 1):.4f}")
    net.eval()
    return masks


METHODS = ("one-shot", "gradual")


def prune(base, keep: int, method: str, epochs: int, lr: float, batches_for, steps_per_epoch: int,
          calib_batches, log=None):
    """A copy of `base` (NestedNet, one batch-norm state) pruned to `keep` weights by
    `method` and fine-tuned for `epochs`; its batch-norm statistics recomputed over
    `calib_batches` at the end. Returns (net, masks)."""
    import copy

    if method not in METHODS:
        raise ValueError(f"unknown pruning method {method!r}; choose one of {', '.join(METHODS)}")
    net = copy.deepcopy(base)
    total = sum(int(net.layers[n].weight.numel()) for n in prunable(net.spec))
    final = 1 - keep / total
    steps = epochs * steps_per_epoch
    if method == "one-shot" or steps == 0:
        fixed = magnitude_masks(net, keep)
        apply_masks(net, fixed)

        def masks_for(step):
            return fixed if step == 0 else None
    else:
        ramp = max(0, min(steps - 1, int(RAMP * steps)))  # the last pruning step: reached within the run
        state = {"masks": None}

        def masks_for(step):
            if step > ramp or (step % PRUNE_EVERY and step != ramp):
                return None
            s = cubic(step, ramp, final)
            k = keep if step == ramp else max(keep, total - int(round(s * total)))
            state["masks"] = magnitude_masks(net, k, within=state["masks"])
            return state["masks"]
    masks = finetune(net, masks_for, batches_for, epochs, lr, steps_per_epoch, log) if steps else fixed
    calibrate(net, calib_batches)
    apply_masks(net, masks)
    return net, masks


@torch.no_grad()
def calibrate(net, batches) -> None:
    """Batch-norm state 0's statistics as exact averages over `batches` (as the trainer does)."""
    net.train()
    net.reset_bn_stats(0)
    momentum, net.bn_momentum = net.bn_momentum, None
    for x in batches:
        net(x, None, bn=0)
    net.bn_momentum = momentum
    net.eval()
