"""The network spec (IR): an ordered list of ops and the unit groups that share one width.

A *unit group* is a set of tensor dimensions that must keep the same number of units in
every submodel: a conv's output channels, the batch norm after it, the depthwise conv
that follows and the next layer's input channels are one group. Widths, permutations and
the knapsack act on groups, never on single layers; that is what keeps every permutation
function-preserving, depthwise-separable blocks included.

Ops declare only what they add (a conv its output group and kernel); channel counts and
spatial shapes flow from the input through `Spec.layers`, so nothing is said twice.
Everything downstream (PyTorch modules, cost model, knapsack, exporters) reads `Layer`s.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Union

Dim = Union[str, int]  # a group name, or a fixed size (input channels, classes)


@dataclass(frozen=True)
class Group:
    name: str
    units: int
    min_units: int = 1


@dataclass(frozen=True)
class Conv2d:
    name: str
    out: Dim
    kernel: tuple[int, int]
    stride: tuple[int, int] = (1, 1)
    # "valid", "same" (TensorFlow's rule: extra pad at the end) or explicit zero pads
    # (top, bottom, left, right), as a PyTorch conv's `padding` gives them
    padding: str | tuple[int, int, int, int] = "valid"
    bias: bool = True


@dataclass(frozen=True)
class DepthwiseConv2d:
    name: str
    kernel: tuple[int, int]
    stride: tuple[int, int] = (1, 1)
    padding: str | tuple[int, int, int, int] = "same"
    bias: bool = True


@dataclass(frozen=True)
class Dense:
    name: str
    out: Dim
    bias: bool = True


@dataclass(frozen=True)
class BatchNorm:
    name: str
    eps: float = 1e-5


@dataclass(frozen=True)
class ReLU:
    name: str


@dataclass(frozen=True)
class LeakyReLU:
    name: str
    slope: float = 0.01


@dataclass(frozen=True)
class AvgPool:
    name: str
    kernel: tuple[int, int] | None = None  # None: global average
    stride: tuple[int, int] | None = None


@dataclass(frozen=True)
class MaxPool:
    name: str
    kernel: tuple[int, int] = (2, 2)
    stride: tuple[int, int] | None = None


@dataclass(frozen=True)
class Flatten:
    name: str


@dataclass(frozen=True)
class Add:
    """A residual add: the output of the earlier op `source` is added to this op's input.
    Both must have one shape, so their channels are one group (an architecture file's
    groups are inferred so: the add ties its two inputs' groups)."""

    name: str
    source: str


@dataclass(frozen=True)
class Block:
    """A run of ops, `first` .. `last`, that a submodel may skip whole (elastic depth): its
    output has its input's shape at full width, so skipping it changes no other shape."""

    name: str
    first: str
    last: str


@dataclass(frozen=True)
class SkipBlock:
    """A skippable block resolved against the layers (see `Spec.blocks`).

    `dead`: the groups only the block's layers produce; while the block is skipped their
    widths mean nothing, except `alias`: the block's output group when it differs from its
    input group (a depthwise-separable block with its own pointwise group). Skipped, the
    block passes its input through, so `alias` must then have the input group's width."""

    name: str
    start: int  # index of its first layer
    stop: int  # index of its last layer (inclusive)
    in_group: str
    out_group: str
    dead: tuple[str, ...]
    alias: str | None


Op = Union[Conv2d, DepthwiseConv2d, Dense, BatchNorm, ReLU, LeakyReLU, AvgPool, MaxPool, Flatten, Add]

OP_KIND = {
    Conv2d: "conv2d", DepthwiseConv2d: "depthwise_conv2d", Dense: "dense",
    BatchNorm: "batch_norm", ReLU: "relu", LeakyReLU: "leaky_relu",
    AvgPool: "avg_pool", MaxPool: "max_pool", Flatten: "flatten", Add: "add",
}
# Ops that may overwrite their input (no second activation buffer needed).
IN_PLACE = (BatchNorm, ReLU, LeakyReLU, Flatten, Add)


@dataclass(frozen=True)
class Layer:
    """One op with everything that follows from its place in the network."""

    index: int
    op: Op
    in_ch: Dim
    out_ch: Dim
    in_hw: tuple[int, int]
    out_hw: tuple[int, int]
    pads: tuple[int, int, int, int] = (0, 0, 0, 0)  # top, bottom, left, right
    flat_in: bool = False  # the input is a flattened (C*H*W) vector
    flat_out: bool = False
    in_spatial: int = 1  # dense: H*W per input channel of the flattened input

    @property
    def name(self) -> str:
        return self.op.name

    @property
    def kind(self) -> str:
        return OP_KIND[type(self.op)]

    @property
    def in_place(self) -> bool:
        return isinstance(self.op, IN_PLACE)


@dataclass(frozen=True)
class ParamDim:
    """Which group indexes which dimension of a parameter tensor.

    `block` > 1 when each unit owns `block` consecutive entries (a dense layer reading a
    flattened C x H x W tensor: channel c owns entries c*H*W .. (c+1)*H*W-1)."""

    param: str  # "weight" or "bias" (batch norm: also "running_mean", "running_var")
    dim: int
    group: str
    block: int = 1
    produces: bool = True  # the unit's own (incoming) weights, vs. a consumer's input


def _same_pads(size: int, k: int, s: int) -> tuple[int, int, int]:
    out = math.ceil(size / s)
    total = max((out - 1) * s + k - size, 0)
    return out, total // 2, total - total // 2


@dataclass(frozen=True)
class Spec:
    name: str
    input_shape: tuple[int, int, int]  # C, H, W
    num_classes: int
    groups: tuple[Group, ...]
    ops: tuple[Op, ...]
    # the blocks a submodel may skip; None: every depthwise-separable block whose output has
    # its input's shape, and every residual block (`infer_blocks`)
    skippable: tuple[Block, ...] | None = None
    layers: tuple[Layer, ...] = field(init=False, repr=False, compare=False)
    blocks: tuple[SkipBlock, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "layers", tuple(self._resolve()))
        if self.skippable is None:  # inferred: the candidates that qualify
            blocks = []
            for b in infer_blocks(self):
                try:
                    blocks.append(_resolve_block(self, b))
                except ValueError:
                    pass
        else:  # named by the architecture: each must qualify
            blocks = [_resolve_block(self, b) for b in self.skippable]
        object.__setattr__(self, "blocks", tuple(blocks))
        names = set(self.group_names)
        for b in self.blocks:
            if b.name in names:
                raise ValueError(f"{self.name}: block {b.name} has the name of a group")
            names.add(b.name)
        for a, b in zip(self.blocks, self.blocks[1:]):
            if b.start <= a.stop:
                raise ValueError(f"{self.name}: skippable blocks {a.name} and {b.name} overlap")

    # ---- elastic depth ----------------------------------------------------------------
    def skipped(self, widths: dict) -> list[SkipBlock]:
        """The blocks a width vector skips: those whose entry is 0 (absent: the block runs)."""
        return [b for b in self.blocks if widths.get(b.name, 1) == 0]

    def runs(self, widths: dict) -> list[bool]:
        """Per layer: does it run in the submodel `widths` (False inside a skipped block)?"""
        out = [True] * len(self.layers)
        for b in self.skipped(widths):
            out[b.start:b.stop + 1] = [False] * (b.stop - b.start + 1)
        return out

    def shallow(self, widths: dict) -> "Spec":
        """The network a submodel with skipped blocks is, built plainly: their ops removed,
        their dead groups gone (an alias group's consumers then read the block's input)."""
        skipped = self.skipped(widths)
        drop = {i for b in skipped for i in range(b.start, b.stop + 1)}
        dead = {g for b in skipped for g in b.dead}
        ops, last = [], {}  # last: each dropped op -> the kept op whose output it passes on
        for i, op in enumerate(self.ops):
            if i in drop:
                last[op.name] = ops[-1].name
                continue
            if isinstance(op, Add) and op.source in last:
                op = replace(op, source=last[op.source])
            ops.append(op)
        ops = tuple(ops)
        groups = tuple(g for g in self.groups if g.name not in dead)
        keep = tuple(Block(b.name, self.layers[b.start].name, self.layers[b.stop].name)
                     for b in self.blocks if b not in skipped)
        return Spec(self.name, self.input_shape, self.num_classes, groups, ops, keep)

    # ---- residual adds --------------------------------------------------------------
    @property
    def skips(self) -> list[tuple[Layer, Layer]]:
        """(source, add) for every residual add: the source's output stays live until the add."""
        by_name = {l.name: l for l in self.layers}
        return [(by_name[l.op.source], l) for l in self.layers if isinstance(l.op, Add)]

    @property
    def saved(self) -> set[str]:
        """Names of the layers whose output a later add reads."""
        return {l.op.source for l in self.layers if isinstance(l.op, Add)}

    @property
    def penultimate(self) -> str:
        """The layer whose output the classifier (the last conv or dense layer) reads: the
        network's hidden representation (contrastive training and the probes use it)."""
        last = max(i for i, l in enumerate(self.layers) if isinstance(l.op, (Conv2d, Dense, DepthwiseConv2d)))
        if last == 0:
            raise ValueError(f"{self.name}: the classifier reads the input: there is no hidden representation")
        return self.layers[last - 1].name

    # ---- widths -------------------------------------------------------------------
    @property
    def group_names(self) -> list[str]:
        return [g.name for g in self.groups]

    def group(self, name: str) -> Group:
        for g in self.groups:
            if g.name == name:
                return g
        raise KeyError(name)

    def full_widths(self) -> dict[str, int]:
        return {g.name: g.units for g in self.groups}

    def size(self, dim: Dim, widths: dict[str, int]) -> int:
        return dim if isinstance(dim, int) else int(widths[dim])

    def check_widths(self, widths: dict[str, int]) -> dict[str, int]:
        """Return `widths` with every group present and in range, or raise ValueError.

        A skippable block's name may be there too: 1 (it runs, as when it is absent) or 0
        (skipped; then its alias group must have its input group's width)."""
        missing = set(self.group_names) - set(widths)
        extra = set(widths) - set(self.group_names) - {b.name for b in self.blocks}
        if missing or extra:
            raise ValueError(f"widths must name exactly the groups {self.group_names}"
                             + (f" (and may name the blocks {[b.name for b in self.blocks]})" if self.blocks else ""))
        for g in self.groups:
            w = widths[g.name]
            if not 1 <= w <= g.units:
                raise ValueError(f"width of group {g.name} must be 1..{g.units}, got {w}")
        out = {g.name: int(widths[g.name]) for g in self.groups}
        for b in self.blocks:
            if b.name in widths:
                if widths[b.name] not in (0, 1):
                    raise ValueError(f"block {b.name} must be 1 (runs) or 0 (skipped), got {widths[b.name]}")
                out[b.name] = int(widths[b.name])
        for b in self.skipped(out):
            if b.alias and out[b.alias] != out[b.in_group]:
                raise ValueError(f"block {b.name} is skipped, so group {b.alias} must have the width of "
                                 f"{b.in_group} ({out[b.in_group]}), got {out[b.alias]}")
        return out

    # ---- structure ----------------------------------------------------------------
    def param_dims(self, layer: Layer) -> list[ParamDim]:
        """Tensor dimensions of this layer's parameters that a unit group indexes."""
        op, out = layer.op, []
        if isinstance(op, (Conv2d, Dense)):
            if isinstance(layer.out_ch, str):
                out.append(ParamDim("weight", 0, layer.out_ch))
                if op.bias:
                    out.append(ParamDim("bias", 0, layer.out_ch))
            if isinstance(layer.in_ch, str):
                out.append(ParamDim("weight", 1, layer.in_ch, layer.in_spatial, produces=False))
        elif isinstance(op, DepthwiseConv2d) and isinstance(layer.in_ch, str):
            out.append(ParamDim("weight", 0, layer.in_ch))
            if op.bias:
                out.append(ParamDim("bias", 0, layer.in_ch))
        elif isinstance(op, BatchNorm) and isinstance(layer.in_ch, str):
            for p in ("weight", "bias", "running_mean", "running_var"):
                out.append(ParamDim(p, 0, layer.in_ch))
        return out

    def param_shapes(self, layer: Layer) -> dict[str, tuple[int, ...]]:
        """Full-width shapes of this layer's parameters (PyTorch layout)."""
        full = self.full_widths()
        cin, cout = self.size(layer.in_ch, full), self.size(layer.out_ch, full)
        op = layer.op
        if isinstance(op, Conv2d):
            shapes = {"weight": (cout, cin, *op.kernel)}
        elif isinstance(op, DepthwiseConv2d):
            shapes = {"weight": (cout, 1, *op.kernel)}
        elif isinstance(op, Dense):
            shapes = {"weight": (cout, cin * layer.in_spatial)}
        elif isinstance(op, BatchNorm):
            return {p: (cout,) for p in ("weight", "bias", "running_mean", "running_var")}
        else:
            return {}
        if op.bias:
            shapes["bias"] = (cout,)
        return shapes

    def _resolve(self):
        names = [g.name for g in self.groups]
        if len(set(names)) != len(names):
            raise ValueError(f"{self.name}: duplicate group names")
        seen_ops: set[str] = set()
        produced: set[str] = set()
        twice: set[str] = set()  # groups produced by more than one layer: an add must tie them
        added: set[str] = set()
        outputs: dict[str, tuple] = {}  # op name -> (channels, hw, flat) of its output
        open_skips: list[str] = []  # sources whose add is still to come, innermost last
        sources: dict[str, int] = {}
        for op in self.ops:
            if isinstance(op, Add):
                sources[op.source] = sources.get(op.source, 0) + 1
        ch: Dim = self.input_shape[0]
        hw = tuple(self.input_shape[1:])
        flat, spatial = False, 1
        for i, op in enumerate(self.ops):
            if op.name in seen_ops or not op.name.isidentifier():
                raise ValueError(f"{self.name}: op name '{op.name}' is repeated or not an identifier")
            seen_ops.add(op.name)
            in_ch, in_hw, flat_in, in_spatial = ch, hw, flat, 1
            pads = (0, 0, 0, 0)
            if isinstance(op, (Conv2d, DepthwiseConv2d)):
                if flat:
                    raise ValueError(f"{self.name}: {op.name} needs a spatial input, not a flat one")
                (kh, kw), (sh, sw) = op.kernel, op.stride
                if op.padding == "same":
                    oh, pt, pb = _same_pads(hw[0], kh, sh)
                    ow, pl, pr = _same_pads(hw[1], kw, sw)
                    pads = (pt, pb, pl, pr)
                elif op.padding == "valid":
                    oh, ow = (hw[0] - kh) // sh + 1, (hw[1] - kw) // sw + 1
                elif (isinstance(op.padding, tuple) and len(op.padding) == 4
                      and all(isinstance(v, int) and v >= 0 for v in op.padding)):
                    pads = op.padding
                    oh = (hw[0] + pads[0] + pads[1] - kh) // sh + 1
                    ow = (hw[1] + pads[2] + pads[3] - kw) // sw + 1
                    if max(pads[0], pads[1]) >= kh or max(pads[2], pads[3]) >= kw:
                        raise ValueError(f"{self.name}: {op.name}: pads {pads} reach past the kernel {op.kernel}")
                else:
                    raise ValueError(f"{self.name}: {op.name}: padding must be 'same', 'valid' or 4 pads")
                if oh < 1 or ow < 1:
                    raise ValueError(f"{self.name}: {op.name}: kernel larger than its input {hw}")
                hw = (oh, ow)
                if isinstance(op, Conv2d):
                    ch = op.out
            elif isinstance(op, Dense):
                if not flat:
                    raise ValueError(f"{self.name}: {op.name}: a dense layer needs a Flatten before it")
                in_spatial, ch, hw = spatial, op.out, (1, 1)
                spatial = 1
            elif isinstance(op, (AvgPool, MaxPool)):
                if flat:
                    raise ValueError(f"{self.name}: {op.name} needs a spatial input")
                k = hw if op.kernel is None else op.kernel
                s = k if op.stride is None else op.stride
                hw = ((hw[0] - k[0]) // s[0] + 1, (hw[1] - k[1]) // s[1] + 1)
            elif isinstance(op, Flatten):
                if not flat:
                    spatial = hw[0] * hw[1]
                flat, hw = True, (1, 1)
            elif isinstance(op, Add):
                if op.source not in outputs:
                    raise ValueError(f"{self.name}: {op.name} adds '{op.source}', which is not an earlier op")
                if outputs[op.source] != (ch, hw, flat):
                    raise ValueError(f"{self.name}: {op.name} adds {op.source}'s output ({outputs[op.source][0]} x "
                                     f"{outputs[op.source][1]}) to a tensor of another shape ({ch} x {hw})")
                if flat:
                    raise ValueError(f"{self.name}: {op.name}: residual adds run on spatial tensors")
                if open_skips[-1] != op.source:
                    raise ValueError(f"{self.name}: {op.name}: residual connections must nest "
                                     f"(it closes {op.source} while {open_skips[-1]} is open)")
                if isinstance(ch, str):
                    added.add(ch)
            if isinstance(ch, str):
                if ch not in names:
                    raise ValueError(f"{self.name}: {op.name} uses unknown group '{ch}'")
                if isinstance(op, (Conv2d, Dense)):
                    if ch in produced:
                        twice.add(ch)
                    produced.add(ch)
            if isinstance(op, Add):
                open_skips.pop()
            outputs[op.name] = (ch, hw, flat)
            yield Layer(i, op, in_ch, ch, in_hw, hw, pads, flat_in, flat, in_spatial)
            if sources.get(op.name, 0) > 1:
                raise ValueError(f"{self.name}: the output of {op.name} feeds {sources[op.name]} adds; one at most")
            if op.name in sources:
                open_skips.append(op.name)
        if ch != self.num_classes or not flat:
            raise ValueError(f"{self.name}: the last layer must be a dense layer with {self.num_classes} outputs")
        if twice - added:
            raise ValueError(f"{self.name}: group(s) {sorted(twice - added)} produced twice without an add "
                             "that joins them")
        unused = set(names) - produced
        if unused:
            raise ValueError(f"{self.name}: groups never produced: {sorted(unused)}")


def infer_blocks(spec: Spec) -> list[Block]:
    """The blocks a submodel may skip when an architecture names none: every residual body
    (the ops after an add's source, up to the add) and every depthwise-separable block (a
    stride-1 depthwise conv, a 1x1 conv, the batch norms and activations after each) whose
    output has its input's shape, outside residual bodies. These are candidates: `Spec`
    keeps those `_resolve_block` accepts (same shape, groups on both ends)."""
    layers = spec.layers
    by_name = {l.name: l for l in layers}
    bodies = [(by_name[l.op.source].index + 1, l.index) for l in layers if isinstance(l.op, Add)]
    out = list(bodies)
    tail = (BatchNorm, ReLU, LeakyReLU)
    for l in layers:
        if not (isinstance(l.op, DepthwiseConv2d) and l.op.stride == (1, 1) and l.in_hw == l.out_hw):
            continue
        i = l.index + 1
        while i < len(layers) and isinstance(layers[i].op, tail):
            i += 1
        if not (i < len(layers) and isinstance(layers[i].op, Conv2d) and layers[i].op.kernel == (1, 1)
                and layers[i].op.stride == (1, 1)):
            continue
        i += 1
        while i < len(layers) and isinstance(layers[i].op, tail):
            i += 1
        stop = i - 1
        if not any(a <= stop and l.index <= b for a, b in bodies):
            out.append((l.index, stop))
    return [Block(f"skip_{layers[a].name}", layers[a].name, layers[b].name) for a, b in sorted(out)]


def _resolve_block(spec: Spec, block: Block) -> SkipBlock:
    by_name = {l.name: l for l in spec.layers}
    where = f"{spec.name}: skippable block {block.name}"
    if not block.name.isidentifier():
        raise ValueError(f"{where}: the name must be an identifier")
    for op in (block.first, block.last):
        if op not in by_name:
            raise ValueError(f"{where}: no op named '{op}'")
    a, b = by_name[block.first], by_name[block.last]
    if b.index < a.index:
        raise ValueError(f"{where}: '{block.last}' comes before '{block.first}'")
    full = spec.full_widths()
    if not (isinstance(a.in_ch, str) and isinstance(b.out_ch, str)):
        raise ValueError(f"{where}: it must read and write unit groups (not the input's channels or the classes)")
    if (a.flat_in or b.flat_out or a.in_hw != b.out_hw
            or spec.size(a.in_ch, full) != spec.size(b.out_ch, full)):
        raise ValueError(f"{where}: its output ({spec.size(b.out_ch, full)} x {b.out_hw}) must have its input's "
                         f"shape ({spec.size(a.in_ch, full)} x {a.in_hw}) to be skipped")
    inside = range(a.index, b.index + 1)
    for src, add in spec.skips:
        if src.index in inside and src.index != b.index and add.index not in inside:
            raise ValueError(f"{where}: {src.name}'s output is added after the block ({add.name})")
        if add.index in inside and src.index < a.index - 1:
            raise ValueError(f"{where}: {add.name} adds {src.name}, which comes before the block's input")
    producers: dict[str, set[int]] = {}
    for l in spec.layers:
        if isinstance(l.op, (Conv2d, Dense)) and isinstance(l.out_ch, str):
            producers.setdefault(l.out_ch, set()).add(l.index)
    dead = tuple(g for g, idx in producers.items() if idx <= set(inside))
    for l in spec.layers[b.index + 1:]:
        if isinstance(l.in_ch, str) and l.in_ch in dead and l.in_ch != b.out_ch:
            raise ValueError(f"{where}: group {l.in_ch} is made inside it and read after it")
    alias = b.out_ch if b.out_ch != a.in_ch else None
    if alias is not None and alias not in dead:
        raise ValueError(f"{where}: its output group {alias} is also made outside it, so a skip could not "
                         f"pass {a.in_ch} through")
    return SkipBlock(block.name, a.index, b.index, a.in_ch, b.out_ch, dead, alias)
