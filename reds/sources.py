"""Where reds's C sources are: `firmware/` (the runtime, an Arduino / PlatformIO library whose
sources are in `firmware/src/`) and `boards/` (one port per board).

An installed wheel carries them as package data (`reds/_c/firmware`, `reds/_c/boards`,
copied there when the wheel is built); a source checkout has them beside the package.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from .errors import RedsError

PACKAGE = Path(__file__).resolve().parent


@lru_cache(maxsize=None)
def c_root() -> Path:
    """The folder that holds `firmware/` and `boards/`."""
    for root in (PACKAGE / "_c", PACKAGE.parent):
        if (root / "firmware" / "src" / "reds.h").is_file() and (root / "boards").is_dir():
            return root
    raise RedsError(f"reds's C sources (firmware/, boards/) are missing from {PACKAGE}: reinstall reds from "
                    "its source tree (pip install . there; the wheel it builds carries them)")


def firmware_dir() -> Path:
    """The library folder: library.properties, library.json, src/, examples/."""
    return c_root() / "firmware"


def runtime_dir() -> Path:
    """The runtime's C sources (`firmware/src/`: reds.h, the runtime, kernels/)."""
    return firmware_dir() / "src"


def boards_dir() -> Path:
    return c_root() / "boards"
