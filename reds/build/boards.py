"""The board registry: one folder per board under `boards/`, its facts in `board.json`.

A board's folder holds its port (startup, UART, timer, main) and `board.json`, which says
what the host tools need: how it is built (`build`), its CPU flags and toolchain, its
clock, flash and RAM, its timer and what one reported cycle is, and for a virtual board
how to start the emulator. The C runtime in `firmware/` knows no board.

`kernels` names the optimized kernel folder the board's builds use
(`firmware/src/kernels/<kernels>/`); ops it lacks fall back to `firmware/src/kernels/reference/`.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

from ..errors import RedsError
from ..sources import boards_dir

BOARD_FILE = "board.json"


@dataclass(frozen=True)
class Board:
    name: str
    folder: Path
    description: str
    build: str  # how `reds build` makes it: a kind of `reds.build.KINDS`
    clock_hz: int
    flash_bytes: int
    ram_bytes: int
    timer: str  # e.g. "systick-icount", "dwt-cyccnt"
    cycle: str  # what one reported cycle is: "instruction", "cpu-cycle"
    cpu: str = ""
    kernels: str | None = None  # optimized kernels: firmware/src/kernels/<kernels>/ (else reference only)
    cflags: tuple[str, ...] = ()
    toolchain: dict = field(default_factory=dict)
    sources: tuple[str, ...] = ()
    linker_script: str | None = None
    stack_bytes: int = 0
    cycle_note: str = ""
    emulator: dict | None = None
    raw: dict = field(default_factory=dict, compare=False, repr=False)

    @property
    def virtual(self) -> bool:
        return self.emulator is not None

    def cycles_per_tick(self) -> Fraction:
        """For an emulated board timed by a clock of virtual time under `-icount shift=S`:
        one instruction lasts 2^S ns, so it is 2^S * timer_hz / 1e9 ticks of that timer."""
        if not self.emulator:
            return Fraction(1)
        e = self.emulator
        return Fraction(10 ** 9, 2 ** int(e["icount_shift"]) * int(e["timer_hz"]))


REQUIRED = {"name": str, "description": str, "build": str, "clock_hz": int, "flash_bytes": int,
            "ram_bytes": int, "timer": str, "cycle": str}


def read_board(folder: Path) -> Board:
    path = Path(folder) / BOARD_FILE
    try:
        d = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise RedsError(f"{path}: unreadable board description ({e})") from None
    if not isinstance(d, dict):
        raise RedsError(f"{path}: not a JSON object")
    for key, kind in REQUIRED.items():
        if not isinstance(d.get(key), kind):
            raise RedsError(f"{path}: field '{key}' is missing or not a {kind.__name__}")
    if d["name"] != Path(folder).name:
        raise RedsError(f"{path}: name '{d['name']}' differs from its folder '{Path(folder).name}'")
    known = {f for f in Board.__dataclass_fields__ if f not in ("folder", "raw")}
    kw = {k: v for k, v in d.items() if k in known}
    for k in ("cflags", "sources"):
        if k in kw:
            kw[k] = tuple(kw[k])
    return Board(folder=Path(folder), raw=d, **kw)


def list_boards() -> list[str]:
    return sorted(p.parent.name for p in boards_dir().glob(f"*/{BOARD_FILE}"))


def get_board(name: str) -> Board:
    folder = boards_dir() / name
    if not name or "/" in name or not (folder / BOARD_FILE).is_file():
        raise RedsError(f"unknown board '{name}'; boards here: {', '.join(list_boards()) or 'none'}")
    return read_board(folder)
