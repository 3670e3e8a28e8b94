"""Build kind `make` (board rpi): a self-contained folder built with `make`.

The folder holds the board's sources (board.json `sources`: its `main.c`, and the host
port and `Makefile` of `boards/host/`), the runtime (`firmware/`, the board's kernels), the exported model and `reds_config.h`, all
side by side; it is built natively, or with `make CC=aarch64-linux-gnu-gcc` (static) for
`--cross`, and can be copied to a Pi and built there with `make`.
"""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

from ..errors import RedsError
from . import firmware
from .boards import Board, get_board
from .fit import precheck
from .job import CONFIG, Job, config_header, copy, headline
from .stamp import BuildResult
from .tools import elf_size, failed, run, tool_missing, write_log

KIND = "make"


def settings(board) -> list:
    return []


def tools(board: Board, cross: bool) -> tuple[str, str]:
    tc = board.toolchain
    cc = tc.get("cross_cc" if cross else "cc", "cc")
    size = tc.get("cross_size" if cross else "size", "size")
    pkgs = tc.get("cross_packages" if cross else "packages", [])
    for tool in (cc, "make", size):
        why = tool_missing(tool, pkgs)
        if why:
            raise RedsError(why)
    if cross:
        lib = subprocess.run([cc, "-print-file-name=libc.a"], capture_output=True, text=True).stdout.strip()
        if not os.path.isabs(lib):
            raise RedsError(f"{cc} has no static C library for the cross build: install libc6-dev-arm64-cross "
                            f"(apt-get install libc6-dev-arm64-cross)")
    return cc, size


def build(job: Job) -> BuildResult:
    b, out, name = job.board, job.dir, job.name
    cc, size = tools(b, job.cross)
    precheck(job.family, b)
    prog = out / b.raw.get("program", f"reds-{b.name}")
    model = job.export_model()
    copy([*firmware.sources(b.kernels), *firmware.headers(b.kernels), *(b.folder / s for s in b.sources),
          model / f"{name}.c", model / f"{name}.h"], out)
    (out / CONFIG).write_text(config_header(name))
    log: list[str] = []
    r = run(["make", "-C", str(out), f"CC={cc}", f"PROG={prog.name}"], log)
    write_log(out, log)
    if r.returncode != 0 or not prog.is_file():
        raise failed(f"building {prog.name}", r.stdout + r.stderr, out)
    note = f"{'aarch64 static (cross)' if job.cross else 'native'} build with {cc}"
    return job.finish(job.result(prog, *elf_size(size, prog), kind=KIND, note=note), cross=job.cross)


def summary(res: BuildResult) -> str:
    usage = get_board(res.board).raw.get("usage")
    return (f"{headline(res)}\n  {res.note}; text {res.text:,} B  data {res.data:,} B  bss {res.bss:,} B\n"
            f"  run it: {Path(res.elf)}" + (f" ({usage})" if usage else ""))
