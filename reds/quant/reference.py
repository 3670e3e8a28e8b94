"""An int8 family, opened: its tables (int8.json + int8.npz) and the integer reference.

`QuantFamily.run(x, k)` runs submodel k through reds.quant.ops, op by op, as the C int8
kernels must: float raw features in, int8 logits out; `logits` dequantizes them.

The family manifest's schema refuses fields it does not know, so the dtype is recorded
next to it, in `int8.json` (format "reds-int8"), with the steps; `int8.npz` holds every
array (no pickle).
"""
from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import RedsError
from ..family import OpenFamily
from ..family import INT8_FILES
from ..family import open as open_family
from . import ops
from .steps import WEIGHTED, Params, Step, plan

INT8_JSON, INT8_NPZ = INT8_FILES
FORMAT = "reds-int8"
VERSION = 1
PARAM_ARRAYS = ("bias", "mult", "shift")
PARAM_SCALARS = ("zx", "zy", "lo", "hi", "sx", "sy")


@dataclass
class InputQuant:
    s0: float
    z0: int
    qa: np.ndarray  # float32, along `axis`
    qb: np.ndarray


@dataclass
class OutputQuant:
    s: float
    z: int


def input_axis(fam: OpenFamily) -> tuple[str, np.ndarray, np.ndarray]:
    """The axis and (in_scale, in_shift) of the family's input normalisation (identity if none)."""
    norm = fam.input_norm
    if norm is None:
        return "none", np.ones(1), np.zeros(1)
    std = np.asarray(norm.std, dtype=np.float64)
    return norm.axis, 1.0 / std, -np.asarray(norm.mean, dtype=np.float64) / std


class QuantFamily:
    def __init__(self, family: OpenFamily, steps: list[Step], inputs: list[InputQuant],
                 outputs: list[OutputQuant], meta: dict):
        self.family = family
        self.steps = steps
        self.inputs = inputs
        self.outputs = outputs
        self.meta = meta
        self.axis = input_axis(family)[0]

    # ---- the integer reference ----------------------------------------------------------
    def run(self, x, k: int) -> np.ndarray:
        """Submodel k on float raw features x [N, C, H, W] -> int8 logits [N, classes] (int64 values)."""
        spec = self.family.spec
        if not 0 <= k < len(self.inputs):
            n = len(self.inputs)
            raise RedsError(f"submodel {k} does not exist; this family has {n} (0..{n - 1})")
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 4 or tuple(x.shape[1:]) != tuple(spec.input_shape):
            raise RedsError(f"inputs must be N x {' x '.join(map(str, spec.input_shape))}, got {tuple(x.shape)}")
        inp = self.inputs[k]
        q = ops.quantize_input(x, inp.qa, inp.qb, self.axis)
        widths = self.family.submodels[k].widths
        return np.stack([self._one(q[n], widths, k) for n in range(len(q))]).reshape(len(q), -1)

    def _one(self, t, widths, k):
        spec = self.family.spec
        for step in self.steps:
            layer, p = spec.layers[step.first], step.params[k]
            op = layer.op
            cin, cout = spec.size(layer.in_ch, widths), spec.size(layer.out_ch, widths)
            if step.kind in WEIGHTED:
                args = (p.bias, p.mult, p.shift, p.zx, p.zy, p.lo, p.hi)
                if step.kind == "conv2d":
                    t = ops.conv2d(t, step.weight[:cout, :cin], *args, stride=op.stride, pads=layer.pads,
                                   slope=step.slope)
                elif step.kind == "depthwise_conv2d":
                    t = ops.depthwise_conv2d(t, step.weight[:cout], *args, stride=op.stride, pads=layer.pads,
                                             slope=step.slope)
                else:
                    t = ops.dense(t, step.weight[:cout, :cin * layer.in_spatial], *args, slope=step.slope)
            elif step.kind == "avg_pool":
                kernel = layer.in_hw if op.kernel is None else op.kernel
                t = ops.avg_pool(t, kernel, op.stride or kernel, int(p.mult[0]), int(p.shift[0]), p.zx, p.zy,
                                 p.lo, p.hi)
            elif step.kind == "max_pool":
                t = ops.max_pool(t, op.kernel, op.stride or op.kernel)
            else:  # flatten: channel-major
                t = np.asarray(t).reshape(-1)
        return t

    def logits(self, x, k: int) -> np.ndarray:
        """Submodel k's dequantized float32 logits."""
        out = self.outputs[k]
        return ops.dequantize(self.run(x, k), out.s, out.z)

    # ---- files --------------------------------------------------------------------------
    def save(self, folder: Path) -> None:
        """Write int8.json and int8.npz into `folder` (a staging folder: no atomic rename here)."""
        arrays, steps = {}, []
        for step in self.steps:
            if step.weight is not None:
                arrays[f"{step.name}.weight"] = step.weight
                arrays[f"{step.name}.w_scale"] = step.w_scale
            for k, p in enumerate(step.params):
                for a in PARAM_ARRAYS:
                    arrays[f"{step.name}.{k}.{a}"] = getattr(p, a)
            for a in PARAM_SCALARS:
                arrays[f"{step.name}.{a}"] = np.array([getattr(p, a) for p in step.params],
                                                      dtype=np.float64 if a in ("sx", "sy") else np.int64)
            steps.append({"name": step.name, "kind": step.kind, "layers": list(step.layers), "act": step.act,
                          "slope": list(step.slope) if step.slope else None})
        for k, (i, o) in enumerate(zip(self.inputs, self.outputs)):
            arrays[f"input.{k}.qa"], arrays[f"input.{k}.qb"] = i.qa, i.qb
        arrays["input.s0"] = np.array([i.s0 for i in self.inputs], np.float64)
        arrays["input.z0"] = np.array([i.z0 for i in self.inputs], np.int64)
        arrays["output.s"] = np.array([o.s for o in self.outputs], np.float64)
        arrays["output.z"] = np.array([o.z for o in self.outputs], np.int64)
        np.savez(folder / INT8_NPZ, **arrays)
        doc = {"format": FORMAT, "version": VERSION, "dtype": "int8", "input_axis": self.axis,
               "submodels": len(self.inputs), "steps": steps, **self.meta}
        (folder / INT8_JSON).write_text(json.dumps(doc, indent=2) + "\n")


def open(folder) -> QuantFamily:  # noqa: A001 (reds.quant.open, as reds.family.open)
    """The int8 family in `folder`; a float family (no int8.json) is refused."""
    folder = Path(folder)
    fam = open_family(folder)
    path = folder / INT8_JSON
    if not path.is_file():
        raise RedsError(f"{folder}: a float family (no {INT8_JSON}); make an int8 one with "
                        "reds.quant.quantize (`reds quantize FAMILY --out DIR`)")
    try:
        doc = json.loads(path.read_text())
        data = np.load(folder / INT8_NPZ, allow_pickle=False)
        arrays = {k: data[k] for k in data.files}
    except (OSError, ValueError, zipfile.BadZipFile) as e:  # a truncated npz is a bad zip
        raise RedsError(f"{folder}: its int8 tables are unreadable ({e}); quantize the family again") from None
    K = len(fam.submodels)
    steps = plan(fam.spec, [s.widths for s in fam.submodels])
    if (not isinstance(doc, dict) or doc.get("format") != FORMAT or doc.get("dtype") != "int8"
            or doc.get("submodels") != K
            or [(s.get("name"), s.get("kind"), s.get("layers")) for s in doc.get("steps", [])]
            != [(s.name, s.kind, list(s.layers)) for s in steps]):
        raise RedsError(f"{path}: does not describe this family's int8 steps; quantize the family again")
    try:
        for step, d in zip(steps, doc["steps"]):
            step.slope = tuple(d["slope"]) if d.get("slope") else None
            if step.kind in WEIGHTED:
                step.weight = arrays[f"{step.name}.weight"].astype(np.int8)
                step.w_scale = arrays[f"{step.name}.w_scale"].astype(np.float32)
            for k in range(K):
                vals = {a: arrays[f"{step.name}.{k}.{a}"] for a in PARAM_ARRAYS}
                sc = {a: arrays[f"{step.name}.{a}"][k] for a in PARAM_SCALARS}
                step.params.append(Params(**vals, **{a: (float(v) if a in ("sx", "sy") else int(v))
                                                     for a, v in sc.items()}))
        inputs = [InputQuant(float(arrays["input.s0"][k]), int(arrays["input.z0"][k]),
                             arrays[f"input.{k}.qa"], arrays[f"input.{k}.qb"]) for k in range(K)]
        outputs = [OutputQuant(float(arrays["output.s"][k]), int(arrays["output.z"][k])) for k in range(K)]
    except (KeyError, IndexError) as e:
        raise RedsError(f"{folder / INT8_NPZ}: lacks {e}; quantize the family again") from None
    meta = {k: v for k, v in doc.items() if k in ("calibration", "accuracy", "qat")}
    return QuantFamily(fam, steps, inputs, outputs, meta)


def record_accuracy(folder, rows: list[dict]) -> None:
    """Write float vs int8 test accuracy per submodel (reds.quant.evaluate's rows) into the
    int8 family's int8.json, replacing the file whole (what `reds info` shows)."""
    from ..staging import atomic_write

    path = Path(folder) / INT8_JSON
    doc = json.loads(path.read_text())
    doc["accuracy"] = [{k: r[k] for k in ("index", "samples", "float_acc", "int8_acc")} for r in rows]
    text = json.dumps(doc, indent=2) + "\n"
    atomic_write(path, lambda p: p.write_text(text))
