"""The C runtime's ABI as `firmware/src/reds.h` declares it: read from the header, never copied.

The exporter emits these names and numbers; `tests/test_layout.py` ties the tables below to
the header, so a change on one side that the other does not follow fails a test.
"""
from __future__ import annotations

import re
from functools import lru_cache

from ..sources import runtime_dir


@lru_cache(maxsize=None)
def header() -> str:
    return (runtime_dir() / "reds.h").read_text()


def _define(name: str, file: str = "reds.h") -> int:
    text = header() if file == "reds.h" else (runtime_dir() / file).read_text()
    m = re.search(rf"^#define\s+{name}\s+(\d+)u?\b", text, re.M)
    if not m:
        raise RuntimeError(f"firmware/src/{file} defines no {name}")
    return int(m.group(1))


def _enum(prefix: str) -> dict[str, int]:
    return {m.group(1): int(m.group(2)) for m in re.finditer(rf"\b({prefix}\w+)\s*=\s*(\d+)", header())}


def abi_version() -> int:
    return _define("REDS_ABI_VERSION")


def max_submodels() -> int:
    return _define("REDS_MAX_SUBMODELS")


def op_codes() -> dict[str, int]:
    """`REDS_OP_CONV2D` -> 1, ..."""
    return _enum("REDS_OP_")


def layer_masks() -> dict[str, int]:
    """`run` -> 0, `skip` -> 1, `skip_keep` -> 2 (reds_layer_mask_t, lower case): what a
    submodel does with a layer (elastic depth)."""
    return {k[len("REDS_LAYER_"):].lower(): v for k, v in _enum("REDS_LAYER_").items()}


def layouts() -> dict[str, int]:
    """`nested` -> 1, `rowmajor` -> 0 (the enum's REDS_LAYOUT_ names, lower case)."""
    return {k[len("REDS_LAYOUT_"):].lower(): v for k, v in _enum("REDS_LAYOUT_").items()}


def reserved_names() -> set[str]:
    """The identifiers the runtime's headers declare (functions, types): a model may not take one."""
    text = "\n".join(p.read_text() for p in sorted(runtime_dir().glob("*.h")))
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    funcs = set(re.findall(r"\b(reds_\w+)\s*\(", text))
    types = set(re.findall(r"\b(reds_\w+_t)\b", text))
    return funcs | types | {"main"}


DEFAULT_LAYOUT = "nested"


def layout_names() -> tuple[str, ...]:
    """The layouts the runtime reads, the default first (what --layout offers)."""
    return (DEFAULT_LAYOUT, *sorted(n for n in layouts() if n != DEFAULT_LAYOUT))


def protocol_limit(name: str) -> int:
    """A `REDS_PROTO_*` number from reds_protocol.h (LINE, MAX_LOOP, MAX_INFER, VERSION)."""
    return _define(f"REDS_PROTO_{name}", "reds_protocol.h")
