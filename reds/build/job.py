"""One `reds build`: what every build kind gets, and the steps they all share."""
from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from ..export import export
from ..family import OpenFamily
from .boards import Board
from .stamp import BuildResult, finish_stamp

MODEL_DIR = "model"
CONFIG = "reds_config.h"


@dataclass
class Job:
    """A build writes everything into `dir`, a staged folder that replaces `out` only when
    the build is complete and fits (`reds.staging`): a refused build leaves `out` as it was."""

    family: OpenFamily
    board: Board
    out: Path  # where the build will be
    dir: Path  # where it is written
    layout: str
    name: str  # the model's C name
    key: str
    command: str
    cross: bool = False

    def export_model(self) -> Path:
        """The family as C into BUILD/model (`reds export --format c`)."""
        model = self.dir / MODEL_DIR
        export(self.family, "c", model, layout=self.layout, name=self.name, command=self.command)
        return model

    def result(self, elf: Path, text: int, data: int, bss: int, *, flash_used: int | None = None,
               ram_used: int | None = None, stack_bytes: int = 0, kind: str, note: str = "") -> BuildResult:
        b = self.board
        final = self.out / Path(elf).relative_to(self.dir)  # where the artifact will be
        return BuildResult(board=b.name, out=str(self.out), elf=str(final), model=self.name,
                           family_hash=self.family.hash, layout=self.layout, text=text, data=data, bss=bss,
                           flash_used=text + data if flash_used is None else flash_used,
                           ram_used=data + bss if ram_used is None else ram_used,
                           flash_bytes=b.flash_bytes, ram_bytes=b.ram_bytes, stack_bytes=stack_bytes,
                           key=self.key, kind=kind, note=note)

    def finish(self, res: BuildResult, **extra) -> BuildResult:
        finish_stamp(self.dir, res, self.command, self.family.dir, **extra)
        return res


def config_header(name: str) -> str:
    """reds_config.h: the exported model a board's main program serves."""
    return (f"/* Written by reds build: the exported model this program serves. */\n"
            f"#ifndef REDS_CONFIG_H\n#define REDS_CONFIG_H\n"
            f"#define REDS_MODEL {name}\n#define REDS_MODEL_HEADER \"{name}.h\"\n"
            f"#define REDS_INPUT_FLOATS {name.upper()}_INPUT_SIZE\n#endif\n")


def copy(files, dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    for f in files:
        shutil.copy2(f, dest / Path(f).name)


def pct(a: int, b: int) -> str:
    return f"{100.0 * a / b:.1f} %" if b else "?"


def headline(res: BuildResult) -> str:
    return (f"{'built' if res.rebuilt else 'up to date:'} {res.elf} for {res.board} (model {res.model}, "
            f"layout {res.layout}, family {res.family_hash[:12]})")
