"""`reds build`: an opened family -> firmware for a board (an artifact that speaks the protocol).

A board's `build` field (board.json) names its kind; every kind is a module here with
`KIND`, `build(job)`, `summary(result)` and `settings(board)`, all peers in `KINDS`:
- `gcc-bare-metal` (qemu-m4): compiled and linked here (`bare_metal`);
- `make` (rpi): a Linux program built with make, natively or cross (`make`);
- `platformio` (nano33ble): a PlatformIO project, compiled by `pio run`; `reds flash` uploads it (`platformio`).
What they share is written once: the fit checks (`fit`), the stamp and its key
(`stamp`), the toolchain runs and logs (`tools`), which C files (`firmware`), the job.

BUILD/build.json records what was built and a key over every input (the family's hash,
the C sources, the flags, the exporter), so `reds bench` rebuilds only when one changed.
"""
from __future__ import annotations

import os
import shlex
from pathlib import Path

from .. import staging
from ..errors import RedsError
from ..export import abi, check_layout
from ..export.c.literals import model_name
from ..family import OpenFamily
from . import bare_metal, make, platformio
from .boards import get_board
from .fit import limited
from .job import Job
from .stamp import FORMAT, STAMP, BuildResult, build_key, up_to_date

KINDS = {m.KIND: m for m in (bare_metal, make, platformio)}


def build(family: OpenFamily, board: str = "qemu-m4", out: str | Path | None = None,
          layout: str = abi.DEFAULT_LAYOUT, force: bool = False, command: str | None = None,
          flash: int | None = None, ram: int | None = None, cross: bool = False) -> BuildResult:
    """Build `family` for `board` into `out` (default: a cache folder, `default_dir`); a build
    that is up to date is kept (force=True rebuilds). `flash` / `ram` (bytes) check the result against
    a smaller memory than the board's (the part one means to ship on). `cross` (rpi):
    cross-compile for aarch64 (static) instead of building natively."""
    b = limited(get_board(board), flash, ram)
    if b.build not in KINDS:
        raise RedsError(f"board '{b.name}' is built with {b.build}, not by `reds build`; see boards/{b.name}/README.md")
    kind = KINDS[b.build]
    if cross and kind is not make:
        raise RedsError(f"--cross is for the rpi board (a Linux program); board '{b.name}' has one toolchain")
    check_layout(layout)
    out = Path(out) if out is not None else default_dir(family, b.name)
    staging.check_out(out, STAMP, FORMAT, "build")
    name = model_name(family.manifest.arch)
    key = build_key(family.hash, b, [layout, name, kind.settings(b), b.flash_bytes, b.ram_bytes, cross])
    res = None if force else up_to_date(out, key)
    if res is not None and getattr(kind, "stale", None) and kind.stale(out):  # e.g. PlatformIO installed since
        res = None
    if res is not None:
        return res
    cmd = command or shlex.join(["reds", "build", str(family.dir), "--board", b.name, "--out", str(out),
                                 "--layout", layout] + (["--cross"] if cross else []))
    with staging.staged(out, STAMP, FORMAT, "build") as tmp:
        return kind.build(Job(family, b, out, tmp, layout, name, key, cmd, cross))


def default_dir(family: OpenFamily, board: str) -> Path:
    """Where a build goes when no folder is named (bench, serve): a cache folder per board and
    family ($REDS_CACHE, else $XDG_CACHE_HOME/reds, else ~/.cache/reds), never the family's."""
    root = os.environ.get("REDS_CACHE") or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "reds"
    return Path(root) / f"build-{board}-{family.hash[:16]}"


def summary(res: BuildResult) -> str:
    return KINDS[res.kind].summary(res)


__all__ = ["KINDS", "BuildResult", "build", "default_dir", "summary"]
