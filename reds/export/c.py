"""C source export: `<name>.h` + `<name>.c`, compiled with the runtime in `firmware/`.

What is emitted:
- the shared weights of the largest submodel as `static const float` arrays (flash),
  every value printed with `%.9g`, which reads back to the same float32 bit for bit;
- one batch norm per submodel, folded into a per-channel scale and bias (only these small
  vectors differ between submodels). A conv/dense bias that feeds a batch norm is folded
  into that bias too (y = s*(Wx + b) + t = s*Wx + (s*b + t)), which saves its bytes;
- a widths table (submodel x layer), each submodel's MACs, weight bytes, arena bytes;
- one static arena of the largest submodel's `arena_bytes`.

Two weight layouts (`firmware/README.md` has the index formulas):
- `rowmajor`: [out][in][elem] with the largest submodel's rows; a submodel reads the
  top-left block with the full row stride.
- `nested` (default): shell by shell, so submodel k's weights are one contiguous prefix:
  the block of submodel 0, then what submodel 1 adds, ...
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import numpy as np
import torch

from ..cost import BYTES_PER_FLOAT
from ..errors import RedsError
from ..nested import bn_scale_shift
from ..spec import (AvgPool, BatchNorm, Conv2d, Dense, DepthwiseConv2d, Flatten, Layer, LeakyReLU, MaxPool,
                    ReLU, Spec)
from .source import Source, check_ops

SUPPORTED = {"conv2d", "depthwise_conv2d", "dense", "batch_norm", "relu", "leaky_relu", "avg_pool",
             "max_pool", "flatten"}
LAYOUTS = ("nested", "rowmajor")
MAX_SUBMODELS = 32  # REDS_MAX_SUBMODELS in firmware/reds.h
OP_ENUM = {Conv2d: "REDS_OP_CONV2D", DepthwiseConv2d: "REDS_OP_DEPTHWISE_CONV2D", Dense: "REDS_OP_DENSE",
           BatchNorm: "REDS_OP_SCALE_BIAS", ReLU: "REDS_OP_RELU", LeakyReLU: "REDS_OP_LEAKY_RELU",
           AvgPool: "REDS_OP_AVG_POOL", MaxPool: "REDS_OP_MAX_POOL", Flatten: "REDS_OP_FLATTEN"}
# Identifiers of the runtime that a model's name must not take.
RESERVED = {"reds_select", "reds_active", "reds_num_submodels", "reds_input", "reds_input_size",
            "reds_output_size", "reds_run", "reds_macs", "reds_weight_bytes", "reds_arena_bytes",
            "reds_budget", "reds_pick_macs", "reds_weight_row", "main"}
PER_LINE = 8


def check_name(name: str) -> str:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,62}", name or "") or name in RESERVED \
            or re.fullmatch(r"reds_[a-z0-9_]*_f32|reds_.*_t", name):
        raise RedsError(f"--name must be a C identifier that is not a runtime function (got {name!r}), "
                        "e.g. reds_model or kws_model")
    return name


def check_layout(layout: str) -> str:
    if layout not in LAYOUTS:
        raise RedsError(f"unknown layout '{layout}'; choose one of: {', '.join(LAYOUTS)}")
    return layout


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


# ---- formatting ------------------------------------------------------------------------
def c_float(v) -> str:
    """A float32 as a C literal that reads back to the same bits (%.9g suffices)."""
    f = float(np.float32(v))
    if not math.isfinite(f):
        raise RedsError(f"the family holds a non-finite value ({f}); it cannot be exported")
    s = "%.9g" % f
    if not any(c in s for c in ".en"):
        s += ".0"
    return s + "f"


def c_floats(values: np.ndarray, indent: str = "    ") -> str:
    vals = [c_float(v) for v in np.asarray(values, dtype=np.float32).reshape(-1)]
    lines = [indent + ", ".join(vals[i:i + PER_LINE]) + "," for i in range(0, len(vals), PER_LINE)]
    return "\n".join(lines)


def c_ints(values, indent: str = "") -> str:
    return indent + ", ".join(str(int(v)) for v in values)


# ---- the model ---------------------------------------------------------------------------
@dataclass
class Array:
    name: str
    size_expr: str
    values: np.ndarray  # float32, already in the layout's order
    kind: str  # "weight", "bias", "scale", "shift"
    comment: str = ""

    @property
    def nbytes(self) -> int:
        return int(self.values.size) * BYTES_PER_FLOAT


@dataclass
class CModel:
    header: str
    source: str
    info: dict = field(default_factory=dict)


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().to(torch.float32).numpy()


def absorbed_biases(spec: Spec) -> set[str]:
    """Conv/dense layers whose bias feeds straight into a batch norm (folded into its bias)."""
    out = set()
    for a, b in zip(spec.layers, spec.layers[1:]):
        if isinstance(a.op, (Conv2d, DepthwiseConv2d, Dense)) and a.op.bias and isinstance(b.op, BatchNorm):
            out.add(a.name)
    return out


def folded_bn(src: Source, layer: Layer, k: int, producer: Layer | None) -> tuple[np.ndarray, np.ndarray]:
    """Submodel k's batch norm `layer` as (scale, bias), with an absorbed producer bias."""
    spec, net = src.spec, src.net
    c = spec.size(layer.in_ch, src.widths[k])
    scale, shift = bn_scale_shift(net.layers[layer.name][k], c, layer.op.eps)
    if producer is not None:
        shift = scale * net.layers[producer.name].bias.detach()[:c] + shift
    return _np(scale), _np(shift)


def generate(src: Source, layout: str = "nested", name: str = "reds_model") -> CModel:
    spec, net, fam = src.spec, src.net, src.family
    check_ops(spec, "c", SUPPORTED)
    check_layout(layout)
    check_name(name)
    K = len(fam.submodels)
    if not 1 <= K <= MAX_SUBMODELS:
        raise RedsError(f"the C runtime runs 1..{MAX_SUBMODELS} submodels; this family has {K}")
    widths = src.widths
    cols = [[spec.input_shape[0]] + [spec.size(l.out_ch, w) for l in spec.layers] for w in widths]
    if max(max(r) for r in cols) > 0xFFFF:
        raise RedsError("a layer is wider than 65535 units; the C runtime's widths table is 16-bit")
    if max(s.macs for s in fam.submodels) >= 2 ** 32 or max(s.arena_bytes for s in fam.submodels) >= 2 ** 32:
        raise RedsError("a submodel needs 2^32 MACs or arena bytes or more; the C runtime counts in 32 bits")
    big = widths[-1]
    absorbed = absorbed_biases(spec)
    up = name.upper()

    arrays: list[Array] = []
    layer_inits: list[str] = []
    shape_enums: list[str] = []
    absorbed_bytes = 0
    for li, layer in enumerate(spec.layers):
        op = layer.op
        L = re.sub(r"\W", "_", layer.name).upper()
        cin, cout = spec.size(layer.in_ch, big), spec.size(layer.out_ch, big)
        (ih, iw), (oh, ow) = layer.in_hw, layer.out_hw
        ins = [c[li] for c in cols]
        outs = [c[li + 1] for c in cols]
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
            order = nested_order if layout == "nested" else rowmajor_order
            arrays.append(Array(f"{layer.name}_weight", size, order(w, outs, ins), "weight",
                                f"[{cout}][{cin}][{e}], {layout} layout"))
            init.update(elem=e, weight=f"{layer.name}_weight")
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
        if isinstance(op, BatchNorm):
            prev = spec.layers[li - 1] if li and spec.layers[li - 1].name in absorbed else None
            folded = [folded_bn(src, layer, k, prev) for k in range(K)]
            total = " + ".join(str(o) for o in outs)
            for j, kind in enumerate(("scale", "shift")):
                arrays.append(Array(f"{layer.name}_{kind}", f"{sum(outs)}",
                                    np.concatenate([f[j] for f in folded]), kind,
                                    f"submodels 0..{K - 1}, one after the other: {total} channels"))
            init.update(scale=f"{layer.name}_scale", shift=f"{layer.name}_shift")
        if isinstance(op, LeakyReLU):
            init["slope"] = c_float(op.slope)
        layer_inits.append(f"    /* {li} {layer.name} */ {{" + ", ".join(f".{k} = {v}" for k, v in init.items()) + "},")
        shape_enums.append((li, desc, "enum { " + ", ".join(enum) + " };"))

    # ---- sizes -------------------------------------------------------------------------
    weight_arrays = sum(a.nbytes for a in arrays)
    shared = sum(a.nbytes for a in arrays if a.kind in ("weight", "bias"))
    folded_all = sum(a.nbytes for a in arrays if a.kind in ("scale", "shift"))
    n_bn_big = sum(2 * spec.size(l.in_ch, big) for l in spec.layers if isinstance(l.op, BatchNorm))
    folded_big = n_bn_big * BYTES_PER_FLOAT
    nl = len(spec.layers)
    tables = K * (nl + 1) * 2 + K * 4 * 4  # widths (uint16) + macs, weight/arena bytes (uint32), budgets
    largest = fam.submodels[-1]
    if shared + folded_big + absorbed_bytes != largest.weight_bytes:  # the cost model's count, exactly
        raise AssertionError(f"exported weights {shared + folded_big + absorbed_bytes} != "
                             f"family weight_bytes {largest.weight_bytes}")
    overhead = weight_arrays + tables - largest.weight_bytes
    arena_floats = largest.arena_bytes // BYTES_PER_FLOAT
    info = {
        "layout": layout, "name": name, "files": [f"{name}.h", f"{name}.c"],
        "arena_bytes": largest.arena_bytes,
        "weight_array_bytes": weight_arrays,  # every float array: shared + folded batch norms
        "shared_bytes": shared,  # conv/dense weights and biases, read by every submodel
        "folded_bn_bytes": folded_all,  # per-submodel scale and bias, all submodels
        "table_bytes": tables,
        "absorbed_bias_bytes": absorbed_bytes,
        "largest_weight_bytes": largest.weight_bytes,
        "overhead_bytes": overhead,
        "overhead_pct": round(100.0 * overhead / largest.weight_bytes, 3),
        "separate_bytes": sum(s.weight_bytes for s in fam.submodels),
    }

    # ---- text ----------------------------------------------------------------------------
    prov = "\n".join(f" * {line}" for line in src.provenance())
    head = f"/*\n * Generated by reds: do not edit. Compile with firmware/reds_runtime.c and reds_kernels.c.\n{prov}\n"
    sizes = (f" * layout {layout}; arena {largest.arena_bytes} B; float arrays {weight_arrays} B "
             f"(largest submodel alone {largest.weight_bytes} B), tables {tables} B: "
             f"overhead {overhead} B ({info['overhead_pct']:.2f} %)\n */\n")
    inc = f"{up}_H"
    header = (head + sizes + f"#ifndef {inc}\n#define {inc}\n\n#include \"reds.h\"\n\n"
              f"#define {up}_NUM_SUBMODELS {K}\n#define {up}_NUM_LAYERS {nl}\n"
              f"#define {up}_INPUT_C {spec.input_shape[0]}\n#define {up}_INPUT_H {spec.input_shape[1]}\n"
              f"#define {up}_INPUT_W {spec.input_shape[2]}\n"
              f"#define {up}_INPUT_SIZE ({up}_INPUT_C * {up}_INPUT_H * {up}_INPUT_W)\n"
              f"#define {up}_OUTPUT_SIZE {spec.num_classes}\n"
              f"#define {up}_ARENA_BYTES {largest.arena_bytes}u /* largest submodel's activations */\n"
              f"#define {up}_WEIGHT_BYTES {weight_arrays}u /* all float arrays, every submodel */\n"
              f"#define {up}_TABLE_BYTES {tables}u\n"
              f"#define {up}_LAYOUT {'REDS_LAYOUT_NESTED' if layout == 'nested' else 'REDS_LAYOUT_ROWMAJOR'}\n"
              f"#define {up}_FAMILY_HASH \"{src.hash}\"\n\n"
              f"/* reds_select(&{name}, k), then reds_run(&{name}, input). Submodel {K - 1} (the largest) "
              f"is active at start. */\nextern reds_model_t {name};\n\n#endif /* {inc} */\n")

    by_layer: dict[str, list[Array]] = {}
    for a in arrays:
        by_layer.setdefault(a.name.rsplit("_", 1)[0], []).append(a)
    body = [head + sizes, f"#include \"{name}.h\"\n", "#if REDS_ABI_VERSION != 1\n"
            "#error \"this model was exported for reds runtime ABI 1: re-run reds export with this runtime\"\n#endif\n"]
    for li, desc, enum in shape_enums:
        layer = spec.layers[li]
        body.append(f"/* {desc} */\n{enum}")
        for a in by_layer.get(layer.name, []):
            note = f" /* {a.comment} */" if a.comment else ""
            body.append(f"static const float {a.name}[{a.size_expr}] = {{{note}\n{c_floats(a.values)}\n}};")
        body.append("")
    col_names = ", ".join(["input"] + [l.name for l in spec.layers])
    rows = "\n".join(f"    {{{c_ints(c)}}}, /* {k}: budget {fam.submodels[k].budget:g} */" for k, c in enumerate(cols))
    body.append(f"/* Output channels per submodel (rows) and layer (columns: {col_names}). */\n"
                f"static const uint16_t widths[{K}][{nl + 1}] = {{\n{rows}\n}};")
    body.append(f"static const uint32_t macs[{K}] = {{{c_ints(s.macs for s in fam.submodels)}}};")
    body.append(f"static const uint32_t weight_bytes[{K}] = {{{c_ints(s.weight_bytes for s in fam.submodels)}}};")
    body.append(f"static const uint32_t arena_bytes[{K}] = {{{c_ints(s.arena_bytes for s in fam.submodels)}}};")
    body.append(f"static const float budgets[{K}] = {{{', '.join(c_float(s.budget) for s in fam.submodels)}}};\n")
    body.append(f"static const reds_layer_t layers[{nl}] = {{\n" + "\n".join(layer_inits) + "\n};\n")
    body.append(f"/* The largest submodel needs max(input + output) over its layers: {arena_floats} floats. */\n"
                f"static float arena[{up}_ARENA_BYTES / sizeof(float)];\n")
    body.append(f"static const reds_net_t net = {{\n    .name = \"{name}\", .family_hash = {up}_FAMILY_HASH,\n"
                f"    .num_submodels = {K}, .layout = {up}_LAYOUT, .num_layers = {nl},\n"
                f"    .in_c = {up}_INPUT_C, .in_h = {up}_INPUT_H, .in_w = {up}_INPUT_W,\n"
                f"    .input_size = {up}_INPUT_SIZE, .output_size = {up}_OUTPUT_SIZE,\n"
                f"    .arena_floats = {up}_ARENA_BYTES / sizeof(float),\n"
                f"    .layers = layers, .widths = &widths[0][0], .macs = macs, .weight_bytes = weight_bytes,\n"
                f"    .arena_bytes = arena_bytes, .budgets = budgets,\n}};\n")
    body.append(f"reds_model_t {name} = {{&net, arena, {K - 1}}};\n")
    return CModel(header, "\n".join(body), info)


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


def write(src: Source, folder, layout: str = "nested", name: str = "reds_model") -> dict:
    m = generate(src, layout, name)
    (folder / f"{name}.h").write_text(m.header)
    (folder / f"{name}.c").write_text(m.source)
    return m.info
