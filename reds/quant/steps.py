"""The int8 steps of a family: which spec layers run as one int8 op, and the tables each holds.

A conv, depthwise or dense layer with the batch norm and the activation after it is one
step (reds.ir.fusion's `store_chains`, as the float C exporter fuses them); avg pool, max pool and flatten are
steps of their own. Anything else (a residual add, a batch norm or an activation no conv
took, a submodel that skips blocks) is refused for now, in one RedsError line.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import RedsError
from ..ir.fusion import store_chains
from ..ir.spec import AvgPool, BatchNorm, Conv2d, Dense, DepthwiseConv2d, Flatten, LeakyReLU, MaxPool, ReLU, Spec

WEIGHTED = ("conv2d", "depthwise_conv2d", "dense")
KINDS = WEIGHTED + ("avg_pool", "max_pool", "flatten")


@dataclass
class Params:
    """One step's integer tables for one submodel (per output channel of that submodel;
    avg pool: one mult/shift, no bias; max pool and flatten: none)."""

    bias: np.ndarray  # int32
    mult: np.ndarray  # int32
    shift: np.ndarray  # int8
    zx: int
    zy: int
    lo: int
    hi: int
    sx: float
    sy: float


@dataclass
class Step:
    name: str  # the name of its first layer
    kind: str  # one of KINDS
    layers: tuple[int, ...]  # the spec layers it covers (indices)
    act: str | None = None  # "relu", "leaky_relu" or None
    slope: tuple[int, int] | None = None  # leaky ReLU: the slope's multiplier (M, e)
    weight: np.ndarray | None = None  # int8, the full (largest) tensor, shared by every submodel
    w_scale: np.ndarray | None = None  # float32, per output channel
    params: list[Params] = field(default_factory=list)  # per submodel

    @property
    def first(self) -> int:
        return self.layers[0]

    @property
    def last(self) -> int:
        return self.layers[-1]

    @property
    def own_output(self) -> bool:
        """Whether its output has a scale of its own (max pool and flatten keep their input's)."""
        return self.kind in WEIGHTED + ("avg_pool",)


def plan(spec: Spec, widths: list[dict]) -> list[Step]:
    """The steps of `spec` in network order (no tables yet), or a RedsError for what int8 cannot run yet."""
    if any(spec.skipped(w) for w in widths):
        raise RedsError(f"{spec.name}: int8 does not support submodels that skip blocks (elastic depth) yet")
    chains = store_chains(spec, None, set())
    taken = {j for c in chains.values() for j in c}
    steps = []
    for i, layer in enumerate(spec.layers):
        op = layer.op
        if i in taken:
            continue
        if isinstance(op, (Conv2d, DepthwiseConv2d, Dense)):
            act, slope = None, None
            for j in chains.get(i, []):
                nxt = spec.layers[j].op
                if isinstance(nxt, ReLU):
                    act = "relu"
                elif isinstance(nxt, LeakyReLU):
                    from .ops import quantize_multiplier

                    act, slope = "leaky_relu", quantize_multiplier(float(nxt.slope))
            steps.append(Step(layer.name, layer.kind, (i, *chains.get(i, [])), act, slope))
        elif isinstance(op, (AvgPool, MaxPool, Flatten)):
            steps.append(Step(layer.name, layer.kind, (i,)))
        else:
            what = "a batch norm no conv or dense layer precedes" if isinstance(op, BatchNorm) else layer.kind
            raise RedsError(f"{spec.name}: int8 does not support layer {layer.name} ({what}) yet; "
                            f"it runs {', '.join(KINDS)} with the batch norm and activation after them")
    return steps
