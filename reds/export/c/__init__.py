"""C source export: lowering (arrays and tables in a weight layout), C literals, emitting."""
from __future__ import annotations

from pathlib import Path

from .. import abi
from ..source import Source, check_ops
from .emit import CModel, emit
from .literals import check_name
from .lower import SUPPORTED, absorbed_biases, lower


def generate(src: Source, layout: str = abi.DEFAULT_LAYOUT, name: str = "reds_model") -> CModel:
    check_ops(src.spec, "c", SUPPORTED)
    check_name(name)
    return emit(src, lower(src, layout, name))


def write(src: Source, folder: Path, layout: str = abi.DEFAULT_LAYOUT, name: str = "reds_model") -> dict:
    m = generate(src, layout, name)
    (folder / f"{name}.h").write_text(m.header)
    (folder / f"{name}.c").write_text(m.source)
    return m.info


__all__ = ["absorbed_biases", "check_name", "generate", "write"]
