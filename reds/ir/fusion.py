"""Which layers run as one step: the store chains every deployed form shares.

A conv, depthwise or dense layer's store step takes in the batch norm and the activation
after it; a batch norm no conv took takes in the activation. The float C exporter fuses
these chains into its kernels' store step, the int8 quantizer makes each one int8 step
(its requantization). Pure spec: no weights.
"""
from __future__ import annotations

from .spec import BatchNorm, Conv2d, Dense, DepthwiseConv2d, LeakyReLU, ReLU, Spec


def store_chains(spec: Spec, widths: list[dict] | None, kept: set[str]) -> dict[int, list[int]]:
    """Layer index -> the layers that follow it and run in its store step. A chain stops at
    a layer whose output a residual add reads (`kept`: the next layer must not overwrite
    it), and where some submodel of `widths` (None: every layer runs) would run one layer
    of the pair but skip the other (elastic depth): every submodel runs all of a chain or
    none of it."""
    runs = [spec.runs(w) for w in widths] if widths is not None else []

    def same_runs(a: int, b: int) -> bool:
        return all(r[a] == r[b] for r in runs)

    chains: dict[int, list[int]] = {}
    taken: set[int] = set()
    for i, layer in enumerate(spec.layers):
        if i in taken or not isinstance(layer.op, (Conv2d, DepthwiseConv2d, Dense, BatchNorm)):
            continue
        chain, last = [], i
        wants = ([BatchNorm] if not isinstance(layer.op, BatchNorm) else []) + [ReLU, LeakyReLU]
        for j in range(i + 1, len(spec.layers)):
            op = spec.layers[j].op
            if type(op) not in wants or spec.layers[last].name in kept or not same_runs(last, j):
                break
            chain.append(j)
            last = j
            wants = [ReLU, LeakyReLU] if isinstance(op, BatchNorm) else []
        if chain:
            chains[i] = chain
            taken.update(chain)
    return chains


def absorbed_biases(spec: Spec) -> set[str]:
    """Conv/dense layers whose bias feeds straight into a batch norm (folded into its shift)."""
    out = set()
    for a, b in zip(spec.layers, spec.layers[1:]):
        if isinstance(a.op, (Conv2d, DepthwiseConv2d, Dense)) and a.op.bias and isinstance(b.op, BatchNorm):
            out.add(a.name)
    return out
