"""Exact cost of any width vector: MACs, parameters, weight bytes, peak activation bytes.

Every cost is a sum of *monomials* `coef * prod(width[g] for g in groups)` with at most
two groups per monomial (a conv's MACs are bilinear in its input and output widths). The
knapsack reads the same monomials, so the solver optimises exactly what is reported here
(REDS instead costs each unit at full fan-in, and its submodels land far below budget).

Conventions:
- MACs: multiply-accumulates of conv, depthwise conv and dense layers (batch norm,
  activations and pooling are not counted, as in REDS and MLPerf Tiny).
- params: conv/dense weights and biases plus batch-norm scale and shift (two per channel:
  what remains after folding the statistics into a per-channel scale and bias).
- weight_bytes: params as float32.
- arena_bytes: float32 activations with two live buffers: the largest input + output of
  any layer that cannot run in place (batch norm, activations, flatten and adds run in
  place), plus, for residual networks, a region that keeps the outputs a later add reads:
  the largest total of such outputs live at one layer (the C runtime's skip slots).
"""
from __future__ import annotations

from dataclasses import dataclass

from .spec import BatchNorm, Conv2d, Dense, DepthwiseConv2d, Layer, Spec

BYTES_PER_FLOAT = 4


@dataclass(frozen=True)
class Term:
    coef: int
    groups: tuple[str, ...]  # 0, 1 or 2 group names (a name may repeat: never, by construction)

    def value(self, widths: dict[str, int]) -> int:
        v = self.coef
        for g in self.groups:
            v *= widths[g]
        return v


def _mono(coef: int, *dims) -> Term:
    """coef times the product of dims, where a dim is a group name or a fixed int."""
    groups = []
    for d in dims:
        if isinstance(d, int):
            coef *= d
        else:
            groups.append(d)
    return Term(coef, tuple(groups))


@dataclass(frozen=True)
class LayerTerms:
    macs: tuple[Term, ...]
    params: tuple[Term, ...]
    act_in: Term  # floats in the layer's input tensor
    act_out: Term


def layer_terms(spec: Spec, layer: Layer) -> LayerTerms:
    op, cin, cout = layer.op, layer.in_ch, layer.out_ch
    oh, ow = layer.out_hw
    macs: list[Term] = []
    params: list[Term] = []
    if isinstance(op, Conv2d):
        k = op.kernel[0] * op.kernel[1]
        macs.append(_mono(oh * ow * k, cin, cout))
        params.append(_mono(k, cin, cout))
        if op.bias:
            params.append(_mono(1, cout))
    elif isinstance(op, DepthwiseConv2d):
        k = op.kernel[0] * op.kernel[1]
        macs.append(_mono(oh * ow * k, cin))
        params.append(_mono(k, cin))
        if op.bias:
            params.append(_mono(1, cin))
    elif isinstance(op, Dense):
        macs.append(_mono(layer.in_spatial, cin, cout))
        params.append(_mono(layer.in_spatial, cin, cout))
        if op.bias:
            params.append(_mono(1, cout))
    elif isinstance(op, BatchNorm):
        params.append(_mono(2, cin))
    ih, iw = layer.in_hw
    in_sp = ih * iw * (layer.in_spatial if isinstance(op, Dense) else 1)
    return LayerTerms(tuple(macs), tuple(params), _mono(in_sp, cin), _mono(oh * ow, cout))


def spec_terms(spec: Spec) -> list[LayerTerms]:
    return [layer_terms(spec, l) for l in spec.layers]


def skip_terms(spec: Spec) -> list[tuple[Term, ...]]:
    """Per layer, the outputs kept for a later residual add while the layer runs (floats):
    a source's output is live from the layer after it up to its add."""
    live: list[list[Term]] = [[] for _ in spec.layers]
    for src, add in spec.skips:
        oh, ow = src.out_hw
        for i in range(src.index + 1, add.index + 1):
            live[i].append(_mono(oh * ow, src.out_ch))
    return [tuple(t) for t in live]


def _sum(terms, widths) -> int:
    return sum(t.value(widths) for t in terms)


@dataclass(frozen=True)
class LayerCost:
    name: str
    macs: int
    params: int
    act_bytes: int  # bytes this layer needs live (input + output; 0 when in place)


@dataclass(frozen=True)
class Cost:
    macs: int
    params: int
    weight_bytes: int
    arena_bytes: int
    layers: tuple[LayerCost, ...]

    def as_dict(self) -> dict:
        return {"macs": self.macs, "params": self.params,
                "weight_bytes": self.weight_bytes, "arena_bytes": self.arena_bytes}


def live_bytes(spec: Spec, layer: Layer, lt: LayerTerms, widths: dict[str, int]) -> int:
    if layer.in_place:
        return 0
    return BYTES_PER_FLOAT * (lt.act_in.value(widths) + lt.act_out.value(widths))


def cost(spec: Spec, widths: dict[str, int]) -> Cost:
    """The cost of a width vector; the layers of a block it skips cost nothing (they are
    listed, at 0), so the result is that of the shallower network `spec.shallow` builds."""
    widths = spec.check_widths(widths)
    runs = spec.runs(widths)
    layers = []
    for layer, lt, run in zip(spec.layers, spec_terms(spec), runs):
        if run:
            layers.append(LayerCost(layer.name, _sum(lt.macs, widths), _sum(lt.params, widths),
                                    live_bytes(spec, layer, lt, widths)))
        else:
            layers.append(LayerCost(layer.name, 0, 0, 0))
    macs = sum(l.macs for l in layers)
    params = sum(l.params for l in layers)
    # A network of in-place ops only still needs its input buffer.
    first = spec_terms(spec)[0].act_in.value(widths) * BYTES_PER_FLOAT
    # a skipped block's adds keep nothing (its kept outputs are live inside it only)
    skips = max([0] + [BYTES_PER_FLOAT * _sum(t, widths) for t, run in zip(skip_terms(spec), runs) if run])
    arena = max([first] + [l.act_bytes for l in layers]) + skips
    return Cost(macs, params, params * BYTES_PER_FLOAT, arena, tuple(layers))


