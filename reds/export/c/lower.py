"""Lowering: a family -> the arrays and tables the C runtime reads, in one weight layout.

Two weight layouts (`firmware/README.md` has the index formulas):
- `rowmajor`: [out][in][elem] with the largest submodel's rows; a submodel reads the
  top-left block with the full row stride.
- `nested` (default): shell by shell, so submodel k's weights are one contiguous prefix:
  the block of submodel 0, then what submodel 1 adds, ...

Batch norm is folded per submodel into a per-channel scale and bias; a conv/dense bias
that feeds a batch norm is folded into that bias too (y = s*(Wx + b) + t = s*Wx + (s*b + t)).
A conv, depthwise or dense layer's store step (reds.h's reds_post_t) takes in the batch
norm and the activation after it (`store_chains`), so they cost no pass of their own; the
per-submodel offsets of the folded vectors are precomputed (`<bn>_at`).
A submodel that skips blocks (elastic depth) gets a row of the layer mask: a skipped layer's
widths-table column passes its input's channels through, while its weights and segment
tables keep the group widths (as if it ran). Nothing here writes text: `emit` does.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import torch

from ...errors import RedsError
from ...ir.cost import BYTES_PER_FLOAT, cost
from ...ir.spec import (Add, AvgPool, BatchNorm, Conv2d, Dense, DepthwiseConv2d, Flatten, Layer, LeakyReLU, MaxPool,
                        ReLU, Spec)
from ...ir.fusion import absorbed_biases, store_chains
from ...nn.plain import folded_bn
from .. import abi
from ..source import Source
from .literals import c_float

SUPPORTED = {"conv2d", "depthwise_conv2d", "dense", "batch_norm", "relu", "leaky_relu", "avg_pool",
             "max_pool", "flatten", "add"}
# Each spec op as the runtime's reds_op_t (tests/test_layout.py checks these against reds.h).
OP_ENUM = {Conv2d: "REDS_OP_CONV2D", DepthwiseConv2d: "REDS_OP_DEPTHWISE_CONV2D", Dense: "REDS_OP_DENSE",
           BatchNorm: "REDS_OP_SCALE_BIAS", ReLU: "REDS_OP_RELU", LeakyReLU: "REDS_OP_LEAKY_RELU",
           AvgPool: "REDS_OP_AVG_POOL", MaxPool: "REDS_OP_MAX_POOL", Flatten: "REDS_OP_FLATTEN", Add: "REDS_OP_ADD"}


# ---- layouts -------------------------------------------------------------------------
def nested_order(w: np.ndarray, outs: list[int], ins: list[int]) -> np.ndarray:
    """w: [O, I, E]. Shell k = what submodel k adds to submodel k-1's block: first the
    new inputs of the old rows (out[k-1] x (in[k] - in[k-1])), then the new rows with all
    their inputs ((out[k] - out[k-1]) x in[k]); each part row-major."""
    parts, po, pi = [], 0, 0
    for o, i in zip(outs, ins):
        parts += [w[:po, pi:i].reshape(-1), w[po:o, :i].reshape(-1)]
        po, pi = o, i
    return np.concatenate(parts)


def rowmajor_order(w: np.ndarray, outs: list[int], ins: list[int]) -> np.ndarray:
    return np.ascontiguousarray(w[:outs[-1], :ins[-1]]).reshape(-1)


# layout -> weight order (tests/test_layout.py checks the names against reds.h's reds_layout_t)
ORDERS = {"nested": nested_order, "rowmajor": rowmajor_order}
# The activations a store step applies, as reds_act_t.
ACT_ENUM = {ReLU: "REDS_ACT_RELU", LeakyReLU: "REDS_ACT_LEAKY_RELU"}


def row_groups(layout: str, outs: list[int], ins: list[int], e: int) -> list[list[tuple[int, int, list[tuple]]]]:
    """The segment table of a conv/dense layer (reds.h's reds_group_t, reds_seg_t): per
    submodel k, its groups of rows (o0, o1, segments) in row order; rows o0 .. o1-1 of a
    group have, in segment (off, step, lo, hi), inputs lo .. hi-1 at off + o * step floats
    (then `e` floats per input). The exporter computes it once, so no kernel does."""
    table = []
    for k in range(len(outs)):
        if layout == "rowmajor":  # every row: the largest submodel's row stride
            table.append([(0, outs[k], [(0, ins[-1] * e, 0, ins[k])])])
            continue
        groups, o0 = [], 0
        for j in range(k + 1):  # shell j: the rows submodel j adds, row o at o * in[j]
            if outs[j] <= o0:
                continue
            segs = [(0, ins[j] * e, 0, ins[j])]
            for m in range(j + 1, k + 1):  # the inputs shell m adds to older rows, after block m-1
                if ins[m] > ins[m - 1]:
                    segs.append((outs[m - 1] * ins[m - 1] * e, (ins[m] - ins[m - 1]) * e, ins[m - 1], ins[m]))
            groups.append((o0, outs[j], segs))
            o0 = outs[j]
        table.append(groups)
    return table


@dataclass
class SegTable:
    """A layer's row_groups flattened as C holds them: groups_at[k] .. groups_at[k+1]-1 are
    submodel k's groups (o0, o1, first, n) into segs (off, step, lo, hi)."""

    groups_at: list[int]
    groups: list[tuple[int, int, int, int]]
    segs: list[tuple[int, int, int, int]]

    SEG_BYTES, GROUP_BYTES, AT_BYTES = 12, 8, 2  # sizeof reds_seg_t, reds_group_t, uint16_t

    @classmethod
    def of(cls, table) -> "SegTable":
        at, groups, segs = [0], [], []
        for sub in table:
            for o0, o1, ss in sub:
                groups.append((o0, o1, len(segs), len(ss)))
                segs += ss
            at.append(len(groups))
        if len(segs) > 0xFFFF or len(groups) > 0xFFFF or max((s[0] + s[1] for s in segs), default=0) >= 2 ** 32:
            raise RedsError("a layer's segment table does not fit the C runtime's 16/32-bit fields")
        return cls(at, groups, segs)

    @property
    def nbytes(self) -> int:
        return len(self.segs) * self.SEG_BYTES + len(self.groups) * self.GROUP_BYTES + len(self.groups_at) * self.AT_BYTES


# ---- the lowered model ------------------------------------------------------------------
@dataclass
class Array:
    name: str
    size_expr: str
    values: np.ndarray  # of ctype, already in the layout's order
    kind: str  # "weight", "bias", "scale", "shift", "input" (int8: "requant")
    comment: str = ""
    ctype: str = "float"  # or int8_t, int32_t (an int8 model's)

    @property
    def nbytes(self) -> int:
        return int(self.values.size) * {"float": BYTES_PER_FLOAT, "int8_t": 1, "int32_t": 4}[self.ctype]


@dataclass
class LayerC:
    """One layer as C sees it: its reds_layer_t fields, shape constants and a comment."""

    index: int
    name: str
    init: dict  # reds_layer_t field -> C expression
    enum: list[str]  # "CONV0_IN_C = 1", ...
    desc: str


@dataclass
class Lowered:
    """Everything the C model holds, before it becomes text."""

    name: str
    layout: str
    arrays: list[Array]
    layers: list[LayerC]
    widths: list[list[int]]  # [submodel][layer + 1]: input channels, then each layer's outputs
    mask: list[list[int]] | None = None  # [submodel][layer] reds_layer_mask_t; None: every layer runs
    skip_floats: int = 0  # the arena's skip slots (residual adds)
    info: dict = field(default_factory=dict)  # sizes, as the export's manifest records them
    input_axis: str | None = None  # the input normalisation's axis (arrays input_scale, input_shift)
    seg_tables: dict[str, SegTable] = field(default_factory=dict)  # conv/dense layer name -> its segment table
    scale_at: dict[str, list[int]] = field(default_factory=dict)  # batch norm name -> submodel k's offset
    weight_bytes: list[int] | None = None  # per submodel, as the C table holds them (None: the family's)
    arena_per: list[int] | None = None  # arena bytes per submodel (None: the family's)
    s8: object | None = None  # an int8 model's tables (reds.export.c.int8.S8Tables)


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().to(torch.float32).numpy()


def _np_pair(ts) -> tuple[np.ndarray, np.ndarray]:
    return _np(ts[0]), _np(ts[1])


def columns(spec: Spec, widths: dict[str, int]) -> list[int]:
    """A submodel's row of the widths table: the input's channels, then each layer's output
    channels; a skipped layer's are its input's (they pass through)."""
    col = [spec.input_shape[0]]
    for layer, run in zip(spec.layers, spec.runs(widths)):
        col.append(spec.size(layer.out_ch, widths) if run else col[-1])
    return col


def layer_mask(spec: Spec, widths: dict[str, int], kept: set[str]) -> list[int]:
    """A submodel's row of the layer mask (reds_layer_mask_t). A skipped block's last layer
    whose output is `kept` for a later add keeps what passes through instead."""
    codes, stops = abi.layer_masks(), {b.stop for b in spec.blocks}
    return [codes["run"] if run else codes["skip_keep"] if l.name in kept and l.index in stops else codes["skip"]
            for l, run in zip(spec.layers, spec.runs(widths))]


def arena_bytes(spec: Spec, widths: list[dict[str, int]], skip_floats: int) -> int:
    """The arena as the runtime lays it out: the skip slots, then the ping-pong region of the
    submodel that needs most (the largest input + output of a layer it runs, or its input).
    Without skipped blocks that is the largest submodel's arena_bytes."""
    first = BYTES_PER_FLOAT * int(np.prod(spec.input_shape))
    return BYTES_PER_FLOAT * skip_floats + max(max([first] + [l.act_bytes for l in cost(spec, w).layers])
                                               for w in widths)


def lower(src: Source, layout: str, name: str) -> Lowered:
    """The C model of `src` in `layout`; refuses a family the runtime cannot run."""
    spec, net, fam = src.spec, src.net, src.family
    K = len(fam.submodels)
    if not 1 <= K <= abi.max_submodels():
        raise RedsError(f"the C runtime runs 1..{abi.max_submodels()} submodels; this family has {K}")
    widths = src.widths
    cols = [columns(spec, w) for w in widths]
    if max(max(r) for r in cols) > 0xFFFF:
        raise RedsError("a layer is wider than 65535 units; the C runtime's widths table is 16-bit")
    if max(s.macs for s in fam.submodels) >= 2 ** 32 or max(s.arena_bytes for s in fam.submodels) >= 2 ** 32:
        raise RedsError("a submodel needs 2^32 MACs or arena bytes or more; the C runtime counts in 32 bits")
    big = widths[-1]
    absorbed = absorbed_biases(spec)

    arrays: list[Array] = []
    layers: list[LayerC] = []
    seg_tables: dict[str, SegTable] = {}
    absorbed_bytes = 0
    slots, skip_floats = skip_slots(spec, big)
    mask = [layer_mask(spec, w, set(slots)) for w in widths] if any(spec.skipped(w) for w in widths) else None
    run_code = abi.layer_masks()["run"]
    chains = store_chains(spec, widths if mask is not None else None, set(slots))
    fused_into = {j: i for i, chain in chains.items() for j in chain}
    scale_at: dict[str, list[int]] = {}
    for li, layer in enumerate(spec.layers):
        op = layer.op
        L = re.sub(r"\W", "_", layer.name).upper()
        cin, cout = spec.size(layer.in_ch, big), spec.size(layer.out_ch, big)
        (ih, iw), (oh, ow) = layer.in_hw, layer.out_hw
        ins = [spec.size(layer.in_ch, w) for w in widths]  # the weights': group widths, skipped or not
        outs = [spec.size(layer.out_ch, w) for w in widths]
        init = {"op": OP_ENUM[type(op)], "in_h": ih, "in_w": iw, "out_h": oh, "out_w": ow}
        enum = [f"{L}_IN_C = {cin}", f"{L}_IN_H = {ih}", f"{L}_IN_W = {iw}",
                f"{L}_OUT_C = {cout}", f"{L}_OUT_H = {oh}", f"{L}_OUT_W = {ow}"]
        desc = _describe(spec, layer, widths)
        if isinstance(op, (Conv2d, DepthwiseConv2d, AvgPool, MaxPool)):
            kh, kw = (layer.in_hw if op.kernel is None else op.kernel) if isinstance(op, AvgPool) else op.kernel
            stride = getattr(op, "stride", None) or (kh, kw)
            t, b, l_, r = layer.pads
            init.update(kh=kh, kw=kw, sh=stride[0], sw=stride[1], pad_t=t, pad_b=b, pad_l=l_, pad_r=r)
            enum += [f"{L}_KH = {kh}", f"{L}_KW = {kw}"]
        p = net.layers[layer.name] if layer.name in net.layers else None
        if isinstance(op, (Conv2d, Dense)):
            if isinstance(op, Conv2d):
                e = op.kernel[0] * op.kernel[1]
                w = _np(p.weight).reshape(p.weight.shape[0], p.weight.shape[1], e)
                size = f"{L}_OUT_C * {L}_IN_C * {L}_KH * {L}_KW"
            else:
                e = layer.in_spatial
                w = _np(p.weight).reshape(p.weight.shape[0], -1, e)
                enum.append(f"{L}_IN_SPATIAL = {e}")
                size = f"{L}_OUT_C * {L}_IN_C * {L}_IN_SPATIAL"
            order = ORDERS[layout]
            arrays.append(Array(f"{layer.name}_weight", size, order(w, outs, ins), "weight",
                                f"[{cout}][{cin}][{e}], {layout} layout"))
            init.update(elem=e, weight=f"{layer.name}_weight", groups=f"{layer.name}_groups",
                        groups_at=f"{layer.name}_groups_at", segs=f"{layer.name}_segs")
            seg_tables[layer.name] = SegTable.of(row_groups(layout, outs, ins, e))
        elif isinstance(op, DepthwiseConv2d):
            e = op.kernel[0] * op.kernel[1]
            arrays.append(Array(f"{layer.name}_weight", f"{L}_OUT_C * {L}_KH * {L}_KW",
                                _np(p.weight)[:cout].reshape(-1), "weight", f"[{cout}][{e}], a prefix per submodel"))
            init.update(elem=e, weight=f"{layer.name}_weight")
        if isinstance(op, (Conv2d, Dense, DepthwiseConv2d)) and op.bias:
            if layer.name in absorbed:
                absorbed_bytes += cout * BYTES_PER_FLOAT
                desc += f"\n   bias folded into {spec.layers[li + 1].name}'s per-submodel bias"
            else:
                arrays.append(Array(f"{layer.name}_bias", f"{L}_OUT_C", _np(p.bias)[:cout], "bias"))
                init["bias"] = f"{layer.name}_bias"
        for j in chains.get(li, []):  # the store step: a batch norm's vectors, an activation
            nxt = spec.layers[j]
            if isinstance(nxt.op, BatchNorm):
                init.update(scale=f"{nxt.name}_scale", shift=f"{nxt.name}_shift", scale_at=f"{nxt.name}_at")
            else:
                init.update(act=ACT_ENUM[type(nxt.op)])
                if isinstance(nxt.op, LeakyReLU):
                    init["slope"] = c_float(nxt.op.slope)
            desc += f"\n   {nxt.name} runs in this layer's store step"
        if chains.get(li):
            init["fused"] = len(chains[li])
        if li in fused_into:
            desc += f"\n   runs in {spec.layers[fused_into[li]].name}'s store step"
        if isinstance(op, BatchNorm):
            prev = spec.layers[li - 1] if li and spec.layers[li - 1].name in absorbed else None
            # submodel k's vectors: as many as its widths-table column (zeros, never read, where it skips them)
            chans = [c[li + 1] for c in cols]
            folded = [_np_pair(folded_bn(net, spec, layer, widths[k], k, prev)) if mask is None or mask[k][li] == run_code
                      else (np.zeros(chans[k], np.float32),) * 2 for k in range(K)]
            total = " + ".join(str(o) for o in chans)
            for j, kind in enumerate(("scale", "shift")):
                arrays.append(Array(f"{layer.name}_{kind}", f"{sum(chans)}",
                                    np.concatenate([f[j] for f in folded]), kind,
                                    f"submodels 0..{K - 1}, one after the other: {total} channels"))
            init.update(scale=f"{layer.name}_scale", shift=f"{layer.name}_shift", scale_at=f"{layer.name}_at")
            scale_at[layer.name] = [int(v) for v in np.cumsum([0] + chans[:-1])]
        if isinstance(op, LeakyReLU):
            init["slope"] = c_float(op.slope)
        if layer.name in slots:
            init.update(keep=1, skip=slots[layer.name])
            desc += f"\n   output kept for a residual add in the arena's floats {slots[layer.name]}.."
        if isinstance(op, Add):
            init["skip"] = slots[op.source]
        layers.append(LayerC(li, layer.name, init, enum, desc))

    # ---- sizes -------------------------------------------------------------------------
    weight_arrays = sum(a.nbytes for a in arrays)
    shared = sum(a.nbytes for a in arrays if a.kind in ("weight", "bias"))
    folded_all = sum(a.nbytes for a in arrays if a.kind in ("scale", "shift"))
    n_bn_big = sum(2 * spec.size(l.in_ch, big) for l in spec.layers if isinstance(l.op, BatchNorm))
    folded_big = n_bn_big * BYTES_PER_FLOAT
    nl = len(spec.layers)
    tables = K * (nl + 1) * 2 + K * 4 * 4  # widths (uint16) + macs, weight/arena bytes (uint32), budgets
    tables += K * nl if mask is not None else 0  # the layer mask (uint8)
    tables += sum(t.nbytes for t in seg_tables.values())  # + the segment tables
    tables += sum(4 * len(v) for v in scale_at.values())  # + the folded vectors' offsets (uint32)
    largest = fam.submodels[-1]
    every = cost(spec, {g: big[g] for g in spec.group_names}).weight_bytes  # the largest, every block run
    if shared + folded_big + absorbed_bytes != every:  # the cost model's count, exactly
        raise AssertionError(f"exported weights {shared + folded_big + absorbed_bytes} != "
                             f"the cost model's {every}")
    overhead = weight_arrays + tables - largest.weight_bytes
    info = {
        "layout": layout, "name": name, "files": [f"{name}.h", f"{name}.c"],
        "arena_bytes": arena_bytes(spec, widths, skip_floats),
        "weight_array_bytes": weight_arrays,  # every float array: shared + folded batch norms
        "shared_bytes": shared,  # conv/dense weights and biases, read by every submodel
        "folded_bn_bytes": folded_all,  # per-submodel scale and bias, all submodels
        "table_bytes": tables,
        "absorbed_bias_bytes": absorbed_bytes,
        "largest_weight_bytes": largest.weight_bytes,
        "overhead_bytes": overhead,
        "overhead_pct": round(100.0 * overhead / largest.weight_bytes, 3),
        "separate_bytes": sum(s.weight_bytes for s in fam.submodels),
        "fused_layers": len(fused_into),  # batch norms and activations run in a store step
    }
    norm = src.opened.input_norm
    if norm is not None:  # raw features in: reds_run normalises them (x * 1/std - mean/std)
        std = np.asarray(norm.std, dtype=np.float64)
        arrays.append(Array("input_scale", str(len(std)), (1.0 / std).astype(np.float32), "input",
                            f"1 / std along the input's {norm.axis}"))
        arrays.append(Array("input_shift", str(len(std)), (-np.asarray(norm.mean) / std).astype(np.float32), "input",
                            "-mean / std"))
        info["input_norm"] = norm.axis
        info["input_norm_bytes"] = 2 * len(std) * BYTES_PER_FLOAT
    return Lowered(name, layout, arrays, layers, cols, mask, skip_floats, info, norm.axis if norm else None,
                   seg_tables, scale_at)


def skip_slots(spec: Spec, widths: dict[str, int]) -> tuple[dict[str, int], int]:
    """Each kept output's offset (floats) in the arena's skip region, at `widths` (the
    largest submodel's), and the region's size. Residual connections nest, so the slots
    stack: a source's slot follows those of the connections still open around it; the
    region is the largest total live at once, as the cost model counts it."""
    slots, stack, top, region = {}, [], 0, 0
    for src, add in sorted(spec.skips, key=lambda sa: sa[0].index):
        while stack and stack[-1][0] <= src.index:  # closed before (or where) this one opens
            stack.pop()
        top = stack[-1][1] if stack else 0
        size = spec.size(src.out_ch, widths) * src.out_hw[0] * src.out_hw[1]
        slots[src.name] = top
        stack.append((add.index, top + size))
        region = max(region, top + size)
    return slots, region


def _describe(spec: Spec, layer: Layer, widths: list[dict[str, int]]) -> str:
    """`conv0: conv2d 10x4 stride 2x2 pads t4 b5 l1 r2; [1 x 49 x 10] -> [g0 x 25 x 5], g0 = 7/11/16`"""
    op = layer.op
    (ih, iw), (oh, ow) = layer.in_hw, layer.out_hw

    def ch(dim):
        return str(dim) if isinstance(dim, int) else dim
    what = layer.kind
    if isinstance(op, (Conv2d, DepthwiseConv2d)):
        what += f" {op.kernel[0]}x{op.kernel[1]} stride {op.stride[0]}x{op.stride[1]}"
        if any(layer.pads):
            what += " pads t{} b{} l{} r{}".format(*layer.pads)
    elif isinstance(op, (AvgPool, MaxPool)):
        k = (layer.in_hw if op.kernel is None else op.kernel)
        what += f" {k[0]}x{k[1]}"
    elif isinstance(op, LeakyReLU):
        what += f" slope {op.slope:g}"
    if isinstance(op, Dense) and layer.in_spatial > 1:
        src = f"[{ch(layer.in_ch)} x {layer.in_spatial}]"
    elif layer.flat_in:
        src = f"[{ch(layer.in_ch)}]"
    else:
        src = f"[{ch(layer.in_ch)} x {ih} x {iw}]"
    if isinstance(op, Flatten) and not layer.flat_in:
        dst = f"[{ch(layer.out_ch)} x {ih * iw}] (flat)"
    elif layer.flat_out:
        dst = f"[{ch(layer.out_ch)}]"
    else:
        dst = f"[{ch(layer.out_ch)} x {oh} x {ow}]"
    groups = sorted({d for d in (layer.in_ch, layer.out_ch) if isinstance(d, str)})
    per = "; ".join(f"{g} = " + "/".join(str(w[g]) for w in widths) for g in groups)
    return f"layer {layer.index} {layer.name}: {what}; {src} -> {dst}" + (f"; {per} per submodel" if per else "")


