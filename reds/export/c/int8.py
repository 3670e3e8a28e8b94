"""Lowering an int8 family (reds.quant): the tables reds_s8.h's runtime reads.

The float lowering gives the geometry every dtype shares: the layers, widths table,
segment tables (their offsets count elements, so they index the int8 weights unchanged)
and which layers run in a step's store (`fused`). On top of that, an int8 model holds:
- each conv, depthwise and dense layer's int8 weights in the same layout (one array every
  submodel reads a prefix of), and no float weight, bias or batch norm;
- per submodel and step, a requantization record (reds_requant_t): its int32 biases and
  multipliers and int8 shifts (the bias and that submodel's batch norm, folded), zero
  points and clamp; avg pool's record holds its one multiplier;
- per submodel, the input's quantization (qa, qb) and the logits' scale and zero point.
Sizes are int8 ones: a submodel's weight bytes are the int8 weights it reads plus its
per-channel tables, its arena the int8 activations plus the float input and logits.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ...errors import RedsError
from ...ir.cost import BYTES_PER_FLOAT, cost
from ..source import Source
from .lower import ORDERS, Array, Lowered, lower

# What the int8 model drops of a float layer's reds_layer_t fields.
FLOAT_FIELDS = ("weight", "bias", "scale", "shift", "scale_at", "act", "slope")
# sizeof on a 32-bit target: reds_requant_t (3 pointers, 4 int32, slope int32, 2 bytes + pad),
# reds_layer_s8_t (2 pointers); per output channel: bias and multiplier int32, shift int8.
REQUANT_BYTES, LAYER_S8_BYTES, PER_CHANNEL_BYTES = 36, 8, 9


@dataclass
class Requant:
    """One submodel's reds_requant_t of a step (arrays by name + offset)."""

    bias: tuple[str, int] | None
    mult: tuple[str, int]
    shift: tuple[str, int]
    zx: int
    zy: int
    lo: int
    hi: int
    slope: tuple[int, int] | None


@dataclass
class S8Tables:
    """What an int8 model adds to the Lowered one (emit writes it as reds_net_s8_t)."""

    weights: dict[str, str] = field(default_factory=dict)  # layer name -> its int8 weight array
    requants: dict[str, list[Requant]] = field(default_factory=dict)  # layer name -> one per submodel
    in_n: int = 1
    in_qa: np.ndarray | None = None  # [K * in_n] float32
    in_qb: np.ndarray | None = None
    out_scale: np.ndarray | None = None  # [K] float32
    out_zero: list[int] = field(default_factory=list)


def lower_s8(src: Source, layout: str, name: str) -> Lowered:
    """The C model of the int8 family `src` (src.quant) in `layout`."""
    qf = src.quant
    spec, fam = src.spec, src.family
    K = len(fam.submodels)
    m = lower(src, layout, name)
    if m.mask is not None or m.skip_floats:
        raise RedsError(f"{spec.name}: the int8 C runtime does not run residual adds or skipped blocks yet")
    steps = {s.first: s for s in qf.steps}
    for lc in m.layers:
        for f in FLOAT_FIELDS:
            lc.init.pop(f, None)
        if lc.index not in steps and lc.init.get("fused"):
            raise AssertionError(f"{lc.name}: fused in float but no int8 step")
    arrays: list[Array] = []
    tables = S8Tables()
    widths = src.widths
    for step in qf.steps:
        layer = spec.layers[step.first]
        lname = layer.name
        fused = len(step.layers) - 1
        if m.layers[step.first].init.get("fused", 0) != fused:
            raise AssertionError(f"{lname}: the int8 step covers {fused} fused layers, the float model's store step "
                                 f"{m.layers[step.first].init.get('fused', 0)}")
        outs = [spec.size(layer.out_ch, w) for w in widths]
        ins = [spec.size(layer.in_ch, w) for w in widths]
        if step.kind in ("conv2d", "dense"):
            o = step.weight.shape[0]  # conv [O, I, kh, kw] -> [O, I, kh*kw]; dense [O, I*spatial] -> [O, I, spatial]
            w = (step.weight.reshape(o, step.weight.shape[1], -1) if step.kind == "conv2d"
                 else step.weight.reshape(o, -1, layer.in_spatial))
            values = ORDERS[layout](w, outs, ins)
            arrays.append(Array(f"{lname}_weight", str(values.size), values.astype(np.int8), "weight",
                                f"int8 [{outs[-1]}][{ins[-1]}][{w.shape[2]}], {layout} layout", "int8_t"))
            tables.weights[lname] = f"{lname}_weight"
        elif step.kind == "depthwise_conv2d":
            values = step.weight[:outs[-1]].reshape(-1)
            arrays.append(Array(f"{lname}_weight", str(values.size), values.astype(np.int8), "weight",
                                f"int8 [{outs[-1]}][{layer.op.kernel[0] * layer.op.kernel[1]}], a prefix per submodel",
                                "int8_t"))
            tables.weights[lname] = f"{lname}_weight"
        if step.kind in ("max_pool", "flatten"):
            continue
        has_bias = step.kind != "avg_pool"
        parts = {"bias": [], "mult": [], "shift": []}
        reqs, at = [], 0
        for k, p in enumerate(step.params):
            n = len(p.mult)
            for a in parts:
                if a != "bias" or has_bias:
                    parts[a].append(np.asarray(getattr(p, a)))
            reqs.append(Requant((f"{lname}_qbias", at) if has_bias else None, (f"{lname}_qmult", at),
                                (f"{lname}_qshift", at), p.zx, p.zy, p.lo, p.hi, step.slope))
            at += n
        total = " + ".join(str(len(p.mult)) for p in step.params)
        for a, ctype in (("bias", "int32_t"), ("mult", "int32_t"), ("shift", "int8_t")):
            if parts[a]:
                arrays.append(Array(f"{lname}_q{a}", str(at), np.concatenate(parts[a]).astype(ctype[:-2]), "requant",
                                    f"submodels 0..{K - 1}, one after the other: {total} values", ctype))
        tables.requants[lname] = reqs
    tables.in_n = len(qf.inputs[0].qa)
    tables.in_qa = np.concatenate([np.asarray(i.qa, np.float32).reshape(-1) for i in qf.inputs])
    tables.in_qb = np.concatenate([np.asarray(i.qb, np.float32).reshape(-1) for i in qf.inputs])
    tables.out_scale = np.array([o.s for o in qf.outputs], np.float32)
    tables.out_zero = [int(o.z) for o in qf.outputs]

    weight_bytes = [_weight_bytes(qf, spec, w) for w in widths]
    arena = [_arena_bytes(spec, w) for w in widths]
    weight_arrays = sum(a.nbytes for a in arrays)
    nl = len(spec.layers)
    extra = (K * REQUANT_BYTES * len(tables.requants) + LAYER_S8_BYTES * nl
             + BYTES_PER_FLOAT * (2 * len(tables.in_qa) + 2 * K))
    tables_bytes = m.info["table_bytes"] - sum(4 * len(v) for v in m.scale_at.values()) + extra
    overhead = weight_arrays + tables_bytes - weight_bytes[-1]
    m.arrays = arrays  # the input's normalisation is in qa, qb
    m.scale_at = {}
    m.input_axis = qf.axis if qf.axis != "none" else None
    m.s8 = tables
    m.weight_bytes, m.arena_per = weight_bytes, arena
    m.info = {
        "dtype": "int8", "layout": layout, "name": name, "files": m.info["files"],
        "arena_bytes": max(arena),
        "weight_array_bytes": weight_arrays,  # int8 weights + every submodel's requantization arrays
        "shared_bytes": sum(a.nbytes for a in arrays if a.kind == "weight"),
        "requant_bytes": sum(a.nbytes for a in arrays if a.kind == "requant"),
        "table_bytes": tables_bytes,
        "largest_weight_bytes": weight_bytes[-1],
        "overhead_bytes": overhead,
        "overhead_pct": round(100.0 * overhead / weight_bytes[-1], 3),
        "separate_bytes": sum(weight_bytes),
        "fused_layers": m.info["fused_layers"],
        "float_weight_bytes": fam.submodels[-1].weight_bytes,  # what the float family's largest reads
    }
    return m


def submodel_bytes(qf) -> list[tuple[int, int]]:
    """Per submodel of the int8 family qf, (weight bytes, arena bytes) of its C model."""
    spec = qf.family.spec
    return [(_weight_bytes(qf, spec, s.widths), _arena_bytes(spec, s.widths)) for s in qf.family.submodels]


def _weight_bytes(qf, spec, widths: dict) -> int:
    """The int8 weights submodel `widths` reads, plus its per-channel tables."""
    total = 0
    for step in qf.steps:
        layer = spec.layers[step.first]
        cin, cout = spec.size(layer.in_ch, widths), spec.size(layer.out_ch, widths)
        if step.kind in ("conv2d", "dense"):
            per = int(np.prod(step.weight.shape[2:])) if step.kind == "conv2d" else layer.in_spatial
            total += cout * cin * per + PER_CHANNEL_BYTES * cout
        elif step.kind == "depthwise_conv2d":
            total += cout * int(np.prod(step.weight.shape[1:])) + PER_CHANNEL_BYTES * cout
        elif step.kind == "avg_pool":
            total += 5
    return total


def _arena_bytes(spec, widths: dict) -> int:
    """The int8 arena of submodel `widths` as reds_run_s8 lays it out: the int8 ping-pong
    region (the largest input + output of a layer, in bytes) or the float input if larger,
    then the float logits."""
    c = cost(spec, widths)
    region = max(int(np.prod(spec.input_shape)), *(l.act_bytes // BYTES_PER_FLOAT for l in c.layers))
    floats = max(-(-region // BYTES_PER_FLOAT), int(np.prod(spec.input_shape)))
    return BYTES_PER_FLOAT * (floats + spec.num_classes)
