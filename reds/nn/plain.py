"""A submodel of a NestedNet as standard torch layers with copied (sliced) weights.

`plain_model(net, widths, bn)` is the independent reference the tests use and what the
ONNX and TFLite exporters convert; `bn_scale_shift` is batch norm folded into a
per-channel affine, as every exporter emits it.
"""
from __future__ import annotations

import torch
from torch import nn

from ..ir.spec import Add, AvgPool, BatchNorm, Conv2d, Dense, DepthwiseConv2d, Flatten, LeakyReLU, MaxPool, ReLU
from .nested import BNState, NestedNet


def plain_model(net: NestedNet, widths: dict[str, int], bn: int = 0, fold_bn: bool = False) -> nn.Module:
    """The submodel `widths` as standard layers, weights copied: an nn.Sequential, or for a
    residual network a `Residual` (the same layers, with the adds). The layers of a block
    the submodel skips are left out.

    fold_bn: replace each batch norm by its eval-mode per-channel affine (scale, shift),
    the form the exporters emit. Outputs are the same in eval mode.
    """
    spec = net.spec
    widths = spec.check_widths(widths)
    mods: list[nn.Module] = []
    adds: dict[int, int] = {}  # module index of an add -> module index of its source
    ends: dict[str, int] = {}  # layer name -> index of the module that ends it
    with torch.no_grad():
        for layer, run in zip(spec.layers, spec.runs(widths)):
            if not run:  # a skipped block: no module; its output is the last module's
                ends[layer.name] = len(mods) - 1
                continue
            op = layer.op
            if isinstance(op, Add):
                adds[len(mods)] = ends[op.source]
                mods.append(nn.Identity())
                ends[layer.name] = len(mods) - 1
                continue
            cin = spec.size(layer.in_ch, widths)
            cout = spec.size(layer.out_ch, widths)
            p = net.layers[layer.name] if layer.name in net.layers else None
            if isinstance(op, (Conv2d, DepthwiseConv2d)):
                if any(layer.pads):
                    t, b, l, r = layer.pads
                    if t == b and l == r:
                        pad = (t, l)
                    else:
                        mods.append(nn.ZeroPad2d((l, r, t, b)))
                        pad = 0
                else:
                    pad = 0
                dw = isinstance(op, DepthwiseConv2d)
                m = nn.Conv2d(cout if dw else cin, cout, op.kernel, op.stride, pad,
                              groups=cout if dw else 1, bias=op.bias)
                m.weight.copy_(p.weight[:cout] if dw else p.weight[:cout, :cin])
                if op.bias:
                    m.bias.copy_(p.bias[:cout])
            elif isinstance(op, Dense):
                m = nn.Linear(cin * layer.in_spatial, cout, bias=op.bias)
                m.weight.copy_(p.weight[:cout, : cin * layer.in_spatial])
                if op.bias:
                    m.bias.copy_(p.bias[:cout])
            elif isinstance(op, BatchNorm):
                s = net.layers[layer.name][bn]
                if fold_bn:
                    scale, shift = bn_scale_shift(s, cout, op.eps)
                    m = ChannelAffine(scale, shift, flat=layer.flat_in)
                else:
                    m = (nn.BatchNorm1d if layer.flat_in else nn.BatchNorm2d)(cout, eps=op.eps)
                    m.weight.copy_(s.weight[:cout])
                    m.bias.copy_(s.bias[:cout])
                    m.running_mean.copy_(s.running_mean[:cout])
                    m.running_var.copy_(s.running_var[:cout])
            elif isinstance(op, ReLU):
                m = nn.ReLU()
            elif isinstance(op, LeakyReLU):
                m = nn.LeakyReLU(op.slope)
            elif isinstance(op, AvgPool):
                k = layer.in_hw if op.kernel is None else op.kernel
                m = nn.AvgPool2d(k, op.stride or k)
            elif isinstance(op, MaxPool):
                m = nn.MaxPool2d(op.kernel, op.stride or op.kernel)
            elif isinstance(op, Flatten):
                m = nn.Flatten()
            else:
                raise TypeError(type(op).__name__)
            mods.append(m)
            ends[layer.name] = len(mods) - 1
    if adds:
        return Residual(mods, adds).eval()
    return nn.Sequential(*mods).eval()


class Residual(nn.Module):
    """Standard layers run in order; at module i in `adds`, the output of module adds[i]
    is added (a residual connection). Traces to plain Add nodes for ONNX and TFLite."""

    def __init__(self, mods: list[nn.Module], adds: dict[int, int]):
        super().__init__()
        self.layers = nn.ModuleList(mods)
        self.adds = dict(adds)
        self.keep = set(adds.values())

    def forward(self, x):
        kept = {}
        for i, m in enumerate(self.layers):
            x = m(x + kept.pop(self.adds[i])) if i in self.adds else m(x)  # an add's module: Identity
            if i in self.keep:
                kept[i] = x
        return x


def bn_scale_shift(s: BNState, c: int, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Batch norm in eval mode as y = x * scale + shift, per channel."""
    scale = s.weight[:c] / torch.sqrt(s.running_var[:c] + eps)
    return scale.detach().clone(), (s.bias[:c] - s.running_mean[:c] * scale).detach().clone()


def folded_bn(net, spec, layer, widths: dict, k: int, producer=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Submodel k's (at `widths`) batch norm `layer` as (scale, shift) per channel, with the
    bias of the conv/dense `producer` before it absorbed (y = s*(Wx + b) + t = s*Wx + (s*b + t))."""
    c = spec.size(layer.in_ch, widths)
    scale, shift = bn_scale_shift(net.layers[layer.name][k], c, layer.op.eps)
    if producer is not None:
        shift = scale * net.layers[producer.name].bias.detach()[:c] + shift
    return scale, shift


class Normalize(nn.Module):
    """The family's input normalisation (`reds.ir.inputs.InputNorm`) as the first module of
    an exported graph: raw features in, (x - mean) / std along one axis."""

    def __init__(self, norm):
        super().__init__()
        shape = norm.shape(4)
        self.register_buffer("mean", torch.tensor(norm.mean, dtype=torch.float32).reshape(shape))
        self.register_buffer("std", torch.tensor(norm.std, dtype=torch.float32).reshape(shape))

    def forward(self, x):
        return (x - self.mean) / self.std


def with_input_norm(model: nn.Module, norm) -> nn.Module:
    """`model` reading raw features: Normalize(norm) first (or `model` itself for None)."""
    return model if norm is None else nn.Sequential(Normalize(norm), model).eval()


class ChannelAffine(nn.Module):
    """y = x * scale + shift per channel: a batch norm with its statistics folded in."""

    def __init__(self, scale: torch.Tensor, shift: torch.Tensor, flat: bool = False):
        super().__init__()
        shape = (1, -1) if flat else (1, -1, 1, 1)
        self.register_buffer("scale", scale.reshape(shape))
        self.register_buffer("shift", shift.reshape(shape))

    def forward(self, x):
        return x * self.scale + self.shift


def merged_bn(model: nn.Module) -> nn.Module:
    """A `plain_model(..., fold_bn=True)` Sequential with every ChannelAffine right after a
    conv or dense merged into it (W' = s W, b' = s b + t per output channel), the form an
    integer converter quantizes as one op. Outputs are the same up to float rounding."""
    if not isinstance(model, nn.Sequential):
        raise TypeError("merged_bn takes a Sequential (a network without residual adds)")
    out: list[nn.Module] = []
    with torch.no_grad():
        for m in model:
            prev = out[-1] if out else None
            if isinstance(m, ChannelAffine) and isinstance(prev, (nn.Conv2d, nn.Linear)):
                scale, shift = m.scale.reshape(-1), m.shift.reshape(-1)
                prev.weight.mul_(scale.reshape(-1, *([1] * (prev.weight.dim() - 1))))
                bias = prev.bias if prev.bias is not None else torch.zeros_like(scale)
                prev.bias = nn.Parameter(bias * scale + shift)
                continue
            out.append(m)
    return nn.Sequential(*out).eval()
