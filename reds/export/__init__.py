"""Exporters: a family folder -> C source, ONNX or TFLite, one job per module.

`export(family_dir, fmt, out)` loads and validates the family, writes every file into a
staged folder and swaps it onto `out` only when all of it is complete (see `outdir`),
with a `manifest.json` (files, budgets, widths, MACs, the family's hash, the command).
"""
from __future__ import annotations

import shlex
from pathlib import Path

from ..errors import RedsError
from .outdir import check_out, staged, write_manifest
from .source import read_source

FORMATS = ("c", "onnx", "tflite")
LAYOUTS = ("nested", "rowmajor")


def command_line(family_dir, fmt, out, layout="nested", name="reds_model") -> str:
    """The CLI command that makes this export (written into the files' provenance)."""
    args = ["reds", "export", str(family_dir), "--format", fmt, "--out", str(out)]
    if fmt == "c":
        args += ["--layout", layout, "--name", name]
    return shlex.join(args)


def export(family_dir: str | Path, fmt: str, out: str | Path, layout: str = "nested", name: str = "reds_model",
           command: str | None = None) -> dict:
    """Export the family in `family_dir` as `fmt` into the folder `out`; return the
    manifest written there (plus, for C, the sizes under "c")."""
    if fmt not in FORMATS:
        raise RedsError(f"unknown export format '{fmt}'; choose one of: {', '.join(FORMATS)}")
    if fmt == "c":
        from .c import check_layout, check_name
        check_layout(layout)
        check_name(name)
    elif fmt == "tflite":
        from .tflite import require_converter
        require_converter()
    check_out(out)  # refuse early, before the (slow) export
    src = read_source(family_dir, command or command_line(family_dir, fmt, out, layout, name))
    fam = src.family
    body = {
        "export_format": fmt, "command": src.command, "family_hash": src.hash, "arch": fam.arch,
        "spec": src.spec.name, "dataset": fam.dataset, "input_shape": list(src.spec.input_shape),
        "num_classes": src.spec.num_classes, "classes": list(fam.classes),
        "submodels": [{"index": k, "budget": s.budget, "widths": s.widths, "macs": s.macs, "params": s.params,
                       "weight_bytes": s.weight_bytes, "arena_bytes": s.arena_bytes, "accuracy": s.accuracy}
                      for k, s in enumerate(fam.submodels)],
    }
    with staged(out) as tmp:
        if fmt == "c":
            from . import c
            info = c.write(src, tmp, layout, name)
            body["files"] = info.pop("files")
            body["c"] = info
        elif fmt == "onnx":
            from . import onnx as onnx_export
            files, checks = onnx_export.write(src, tmp)
            body["files"] = files
            for s, f, chk in zip(body["submodels"], files, checks):
                s["file"] = f
                s["check"] = chk
        else:
            from . import tflite
            files, checks = tflite.write(src, tmp)
            body["files"] = files
            for s, f, chk in zip(body["submodels"], files, checks):
                s["file"] = f
                s["check"] = chk
        write_manifest(tmp, body)
    return body


__all__ = ["FORMATS", "LAYOUTS", "command_line", "export"]
