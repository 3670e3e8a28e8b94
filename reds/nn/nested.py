"""Nested PyTorch modules built from a spec: full weights, any prefix width.

`NestedNet(spec, num_bn=K)` holds one set of weights and K private batch-norm states (one
per submodel: a shared batch norm is what costs slimmable networks accuracy). Run any
width vector with `net(x, widths, bn=k)`; submodel k reads the first widths[g] units of
every group g, and skips the blocks whose entry in `widths` is 0 (elastic depth).

`reds.nn.plain` builds the same submodel from standard torch layers (the independent
reference of the tests and what the ONNX and TFLite exporters convert).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..ir.spec import (Add, AvgPool, BatchNorm, Conv2d, Dense, DepthwiseConv2d, Flatten, Layer, LeakyReLU, MaxPool,
                      ReLU, Spec)


class BNState(nn.Module):
    """One submodel's batch norm over a group's full width (a prefix is used)."""

    def __init__(self, channels: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.register_buffer("running_mean", torch.zeros(channels))
        self.register_buffer("running_var", torch.ones(channels))
        self.register_buffer("num_batches_tracked", torch.zeros((), dtype=torch.long))


class NestedLayer(nn.Module):
    """Holds the full-width parameters of one parametered op."""

    def __init__(self, shapes: dict[str, tuple[int, ...]]):
        super().__init__()
        for name, shape in shapes.items():
            self.register_parameter(name, nn.Parameter(torch.zeros(shape)))


def _init_(layer: NestedLayer, op) -> None:
    if isinstance(op, (Conv2d, Dense, DepthwiseConv2d)):
        # PyTorch's default (kaiming-uniform with a=sqrt(5)), as nn.Conv2d / nn.Linear do
        nn.init.kaiming_uniform_(layer.weight, a=5 ** 0.5)
        if hasattr(layer, "bias"):
            fan_in = layer.weight[0].numel()
            bound = 1 / fan_in ** 0.5
            nn.init.uniform_(layer.bias, -bound, bound)


class NestedNet(nn.Module):
    def __init__(self, spec: Spec, num_bn: int = 1):
        super().__init__()
        self.spec = spec
        self.num_bn = num_bn
        self.layers = nn.ModuleDict()
        for layer in spec.layers:
            shapes = spec.param_shapes(layer)
            if isinstance(layer.op, BatchNorm):
                c = shapes["weight"][0]
                self.layers[layer.name] = nn.ModuleList(BNState(c) for _ in range(num_bn))
            elif shapes:
                self.layers[layer.name] = NestedLayer(shapes)
                _init_(self.layers[layer.name], layer.op)
        # BN momentum: None = cumulative average (used to recalibrate statistics).
        self.bn_momentum: float | None = 0.1

    # ------------------------------------------------------------------------------
    def set_num_bn(self, k: int) -> None:
        """Give every batch norm k private states, each a copy of state 0."""
        for layer in self.spec.layers:
            if isinstance(layer.op, BatchNorm):
                states = self.layers[layer.name]
                base = states[0]
                new = nn.ModuleList()
                for _ in range(k):
                    s = BNState(base.weight.shape[0])
                    s.load_state_dict(base.state_dict())
                    new.append(s)
                self.layers[layer.name] = new
        self.num_bn = k

    def forward(self, x: torch.Tensor, widths: dict[str, int] | None = None, bn: int = 0) -> torch.Tensor:
        spec = self.spec
        if widths is None:
            widths = spec.full_widths()
        saved, kept = spec.saved, {}
        for layer, run in zip(spec.layers, spec.runs(widths)):
            if not run:  # in a skipped block: its input passes through
                pass
            elif isinstance(layer.op, Add):
                x = x + kept.pop(layer.op.source)
            else:
                # in place only on a fresh tensor: never the input, never an output kept for an add
                fresh = layer.index > 0 and not any(t is x for t in kept.values())
                x = self._run(layer, x, widths, bn, inplace=fresh)
            if layer.name in saved:
                kept[layer.name] = x
        return x

    def features(self, x: torch.Tensor, widths: dict[str, int] | None = None, bn: int = 0,
                 at=()) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The logits and the outputs of the layers named in `at` ({name: tensor}), from one
        pass of the same ops as `forward` (no hooks; `forward` is untouched). Nothing runs in
        place here, so a kept output is never overwritten by a later activation."""
        spec = self.spec
        if widths is None:
            widths = spec.full_widths()
        at = set(at)
        unknown = at - {l.name for l in spec.layers}
        if unknown:
            raise KeyError(f"no layers named {sorted(unknown)} in {spec.name}")
        saved, kept, out = spec.saved, {}, {}
        for layer, run in zip(spec.layers, spec.runs(widths)):
            if not run:  # a skipped layer's output is its input
                pass
            elif isinstance(layer.op, Add):
                x = x + kept.pop(layer.op.source)
            else:
                x = self._run(layer, x, widths, bn, inplace=False)
            if layer.name in saved:
                kept[layer.name] = x
            if layer.name in at:
                out[layer.name] = x
        return x, out

    def _run(self, layer: Layer, x, widths, bn, inplace: bool = True):
        op, spec = layer.op, self.spec
        cin = spec.size(layer.in_ch, widths)
        cout = spec.size(layer.out_ch, widths)
        p = self.layers[layer.name] if layer.name in self.layers else None
        if isinstance(op, (Conv2d, DepthwiseConv2d)):
            t, b, l, r = layer.pads
            pad = (t, l)  # symmetric: the conv pads as it reads, no copy of the input
            if t != b or l != r:  # "same" with an even total: TensorFlow's extra row/column at the end
                x, pad = F.pad(x, (l, r, t, b)), 0
            if isinstance(op, Conv2d):
                w = p.weight[:cout, :cin]
                groups = 1
            else:
                w = p.weight[:cout]
                groups = cout
            bias = p.bias[:cout] if op.bias else None
            return F.conv2d(x, w, bias, op.stride, pad, 1, groups)
        if isinstance(op, Dense):
            bias = p.bias[:cout] if op.bias else None
            return F.linear(x, p.weight[:cout, : cin * layer.in_spatial], bias)
        if isinstance(op, BatchNorm):
            s = p[bn]
            mean, var = s.running_mean[:cout], s.running_var[:cout]
            if self.training:
                s.num_batches_tracked += 1
                momentum = self.bn_momentum
                if momentum is None:
                    momentum = 1.0 / float(s.num_batches_tracked)
                # F.batch_norm updates the running statistics in place; the prefix views
                # write through to the full buffers.
                return F.batch_norm(x, mean, var, s.weight[:cout], s.bias[:cout], True, momentum, op.eps)
            return F.batch_norm(x, mean, var, s.weight[:cout], s.bias[:cout], False, 0.0, op.eps)
        if isinstance(op, ReLU):
            return F.relu(x, inplace=inplace)  # a layer's fresh output: no copy
        if isinstance(op, LeakyReLU):
            return F.leaky_relu(x, op.slope, inplace=inplace)
        if isinstance(op, AvgPool):
            k = layer.in_hw if op.kernel is None else op.kernel
            return F.avg_pool2d(x, k, op.stride or k)
        if isinstance(op, MaxPool):
            return F.max_pool2d(x, op.kernel, op.stride or op.kernel)
        if isinstance(op, Flatten):
            return x.flatten(1)
        raise TypeError(f"no forward for {type(op).__name__}")

    def bn_states(self):
        """Every submodel's batch-norm state of every batch norm."""
        for layer in self.spec.layers:
            if isinstance(layer.op, BatchNorm):
                yield from self.layers[layer.name]

    def reset_bn_stats(self, bn: int) -> None:
        for layer in self.spec.layers:
            if isinstance(layer.op, BatchNorm):
                s = self.layers[layer.name][bn]
                s.running_mean.zero_()
                s.running_var.fill_(1.0)
                s.num_batches_tracked.zero_()
