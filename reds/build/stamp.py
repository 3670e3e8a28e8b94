"""BUILD/build.json: what was built, and a key over every input, so an up-to-date build is
kept. A build folder is written staged (`reds.staging`): it holds a finished build or the
one before it, never half of one."""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

from .. import __version__
from ..sources import PACKAGE, firmware_dir
from .boards import Board

STAMP = "build.json"
FORMAT = "reds-build"


@dataclass
class BuildResult:
    board: str
    out: str
    elf: str  # the artifact: an ELF, a Linux program, or a PlatformIO project's platformio.ini
    model: str  # the exported model's C name
    family_hash: str
    layout: str
    text: int
    data: int
    bss: int
    flash_used: int  # text + data (the initial values of .data live in flash)
    ram_used: int  # data + bss, the stack included
    flash_bytes: int
    ram_bytes: int
    stack_bytes: int
    key: str
    kind: str  # the board's build kind
    rebuilt: bool = True
    note: str = ""  # what the sizes mean when they are not a linked image's


def read_stamp(out: Path) -> dict | None:
    try:
        d = json.loads((Path(out) / STAMP).read_text())
    except (OSError, ValueError):
        return None
    return d if isinstance(d, dict) and d.get("format") == FORMAT else None


def _digest(h, path: Path) -> None:
    h.update(str(path.name).encode() + b"\0" + path.read_bytes() + b"\0")


def build_key(family_hash: str, board: Board, settings: list) -> str:
    """sha256 over everything the artifact depends on: the family, the runtime's C sources,
    the board's files, the exporter's code and the settings (flags, layout, limits)."""
    h = hashlib.sha256()
    h.update(json.dumps([__version__, family_hash, *settings], default=str).encode())
    # the runtime (firmware/src) and the example sketches (a board may build one: nano33ble)
    for p in sorted(p for p in firmware_dir().rglob("*") if p.suffix in (".c", ".h", ".ino") and p.is_file()):
        _digest(h, p)
    board_files = {p for p in board.folder.rglob("*") if p.is_file()}
    board_files |= {(board.folder / s).resolve() for s in board.sources}  # shared ones (boards/host)
    for p in sorted(board_files):
        _digest(h, p)
    for p in sorted((PACKAGE / "export").rglob("*.py")):
        _digest(h, p)
    return h.hexdigest()


def up_to_date(out: Path, key: str) -> BuildResult | None:
    stamp = read_stamp(out)
    if not (stamp and stamp.get("complete") and stamp.get("key") == key):
        return None
    fields = {k: v for k, v in (stamp.get("result") or {}).items() if k in BuildResult.__dataclass_fields__}
    try:
        res = BuildResult(**fields)
    except TypeError:  # a stamp of another reds version
        return None
    if not Path(res.elf).exists():
        return None
    res.rebuilt = False
    return res


def finish_stamp(out: Path, res: BuildResult, cmd: str, family_dir: Path, **extra) -> None:
    doc = {"format": FORMAT, "version": 1, "complete": True, "reds_version": __version__, "command": cmd,
           "family_dir": str(Path(family_dir).resolve()), "key": res.key, "result": asdict(res), **extra}
    (out / STAMP).write_text(json.dumps(doc, indent=2) + "\n")
