"""Exporters: an opened family -> C source, ONNX or TFLite, one module per format.

`export(family, fmt, out)` writes every file into a staged folder (an int8 family's, as
int8: C through `c.int8`, ONNX through `onnx_int8`, TFLite through `tflite_int8`, which
calibrates on the inputs given as `calib`) and swaps it onto `out`
only when all of it is complete (see `outdir`), with a `manifest.json` (files, budgets,
widths, MACs, the family's hash, the command). `FORMATS` is the one registry of formats:
the CLI's choices and the checks below read it.
"""
from __future__ import annotations

import importlib
import shlex
from dataclasses import dataclass
from pathlib import Path

from typing import TYPE_CHECKING

from ..errors import RedsError
from . import abi
from .outdir import check_out, staged, write_manifest

if TYPE_CHECKING:  # this file is the formats' registry too: the CLI reads it without torch
    from ..family import OpenFamily


@dataclass(frozen=True)
class Format:
    name: str
    module: str  # reds.export.<module>: write(src, folder[, layout, name]) -> dict
    help: str


FORMATS = {f.name: f for f in [
    Format("c", "c", "C source for the firmware runtime: shared weights, widths table, folded batch norms"),
    Format("onnx", "onnx", "one ONNX graph per submodel, checked in onnxruntime"),
    Format("tflite", "tflite", "one .tflite per submodel, float32 or (an int8 family) int8 (needs litert-torch)"),
]}


def check_format(fmt: str) -> Format:
    if fmt not in FORMATS:
        raise RedsError(f"unknown export format '{fmt}'; choose one of: {', '.join(FORMATS)}")
    return FORMATS[fmt]


def check_layout(layout: str) -> str:
    if layout not in abi.layouts():
        raise RedsError(f"unknown layout '{layout}'; choose one of: {', '.join(abi.layout_names())}")
    return layout


def command_line(family_dir, fmt, out, layout=abi.DEFAULT_LAYOUT, name="reds_model", data_dir=None) -> str:
    """The CLI command that makes this export (written into the files' provenance)."""
    args = ["reds", "export", str(family_dir), "--format", fmt, "--out", str(out)]
    if fmt == "c":
        args += ["--layout", layout, "--name", name]
    if data_dir is not None:
        args += ["--data-dir", str(data_dir)]
    return shlex.join(args)


def export(family: OpenFamily, fmt: str, out: str | Path, layout: str = abi.DEFAULT_LAYOUT,
           name: str = "reds_model", command: str | None = None, calib=None) -> dict:
    """Export `family` as `fmt` into the folder `out`; return the manifest written there
    (plus, for C, the sizes under "c"). `calib`: an int8 family's TFLite export calibrates on
    these float raw features (N x C x H x W: the samples `reds quantize` calibrated on)."""
    f = check_format(fmt)
    module = importlib.import_module(f"{__name__}.{f.module}")
    if fmt == "c":
        check_layout(layout)
        module.check_name(name)
    elif fmt == "tflite":
        module.require_converter()
    check_out(out)  # refuse early, before the (slow) export
    from .source import Source

    src = Source(family, command or command_line(family.dir, fmt, out, layout, name))
    fam = src.family
    if src.quant is not None and fmt == "tflite" and calib is None:
        raise RedsError(f"{family.dir}: is an int8 family; its int8 TFLite export calibrates on the family's "
                        "training data: give the calibration inputs (reds export reads them from --data-dir)")
    body = {
        "export_format": fmt, "dtype": "int8" if src.quant is not None else "float32", "command": src.command, "family_hash": src.hash, "arch": fam.arch,
        "spec": src.spec.name, "dataset": fam.dataset, "input_shape": list(src.spec.input_shape),
        "num_classes": src.spec.num_classes, "classes": list(fam.classes),
        "submodels": [{"index": k, "budget": s.budget, "widths": s.widths, "macs": s.macs, "params": s.params,
                       "weight_bytes": s.weight_bytes, "arena_bytes": s.arena_bytes, "accuracy": s.accuracy}
                      for k, s in enumerate(fam.submodels)],
    }
    with staged(out) as tmp:
        if fmt == "c":
            info = module.write(src, tmp, layout, name)
            body["files"] = info.pop("files")
            body["c"] = info
        else:
            if src.quant is not None and fmt == "onnx":  # one QDQ graph per submodel, checked against the integer reference
                from . import onnx_int8

                written = onnx_int8.write(src.quant, tmp, command=src.command)
            elif src.quant is not None:  # tflite: PT2E-quantized per submodel, checked against it too
                from . import tflite_int8

                written = tflite_int8.write(src, tmp, calib)
                for s, io in zip(body["submodels"], written["io"]):
                    s.update(io)
            else:
                written = module.write(src, tmp)
            body["files"] = written["files"]
            for s, file, chk in zip(body["submodels"], written["files"], written["checks"]):
                s["file"] = file
                s["check"] = chk
        write_manifest(tmp, body)
    return body


__all__ = ["FORMATS", "check_format", "check_layout", "command_line", "export"]
