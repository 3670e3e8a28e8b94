"""C literals and identifiers: floats that read back bit for bit, integer lists, names."""
from __future__ import annotations

import math
import re

import numpy as np

from ...errors import RedsError
from ..abi import reserved_names

PER_LINE = 8


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


def c_comment(text: str) -> str:
    """Any text as the inside of a C block comment: printable ASCII is kept, anything else
    (a newline, a control or non-ASCII character) is written as \\xNN or \\uNNNN, and the
    character pairs that could end the comment or splice a line ("*/", "/*", "??") are split.
    Every string that reaches generated C (provenance, the manifest's text) goes through here."""
    out = []
    for ch in str(text):
        o = ord(ch)
        out.append(ch if 0x20 <= o <= 0x7E else (f"\\x{o:02x}" if o < 0x100 else f"\\u{o:04x}"))
    s = "".join(out)
    for pair, split in (("*/", "* /"), ("/*", "/ *"), ("??", "? ?")):
        while pair in s:
            s = s.replace(pair, split)
    return s


def c_ints(values, indent: str = "") -> str:
    return indent + ", ".join(str(int(v)) for v in values)


def c_identifier(text: str) -> str:
    """`dscnn-s` -> `dscnn_s`: any text as a C identifier (an underscore for each other character)."""
    name = re.sub(r"\W", "_", text, flags=re.A)
    return name if re.match(r"[A-Za-z_]", name) else f"m_{name}"


def model_name(arch: str) -> str:
    """The C name `reds build` gives a family's model: its architecture's, e.g. dscnn_s."""
    return c_identifier(arch)


def check_name(name: str) -> str:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,62}", name or "") or name in reserved_names() \
            or re.fullmatch(r"reds_[a-z0-9_]*_f32|reds_.*_t", name):
        raise RedsError(f"--name must be a C identifier that is not a runtime function (got {name!r}), "
                        "e.g. reds_model or kws_model")
    return name
