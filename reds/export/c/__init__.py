"""C source export: lowering (arrays and tables in a weight layout), C literals, emitting."""
from __future__ import annotations

from pathlib import Path

from typing import TYPE_CHECKING

from .. import abi
from .literals import check_name

if TYPE_CHECKING:
    from ..source import Source
    from .emit import CModel


def generate(src: Source, layout: str = abi.DEFAULT_LAYOUT, name: str = "reds_model") -> CModel:
    from ..source import check_ops
    from .emit import emit
    from .lower import SUPPORTED, lower

    check_ops(src.spec, "c", SUPPORTED)
    check_name(name)
    if src.quant is not None:  # an int8 family
        from .int8 import lower_s8

        return emit(src, lower_s8(src, layout, name))
    return emit(src, lower(src, layout, name))


def write(src: Source, folder: Path, layout: str = abi.DEFAULT_LAYOUT, name: str = "reds_model") -> dict:
    m = generate(src, layout, name)
    (folder / f"{name}.h").write_text(m.header)
    (folder / f"{name}.c").write_text(m.source)
    return m.info


__all__ = ["check_name", "generate", "write"]
