"""Running the toolchain: commands with a log, the first error of their output, `size`, and
one-line refusals when a compiler or its C library is not installed."""
from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import tempfile
from pathlib import Path

from ..errors import RedsError
from .boards import Board

LOG = "build.log"


def run(cmd: list[str], log: list[str]) -> subprocess.CompletedProcess:
    log.append("$ " + shlex.join(cmd))
    r = subprocess.run(cmd, capture_output=True, text=True)
    log.append((r.stdout + r.stderr).rstrip())
    return r


def first_error(text: str) -> str:
    for line in text.splitlines():
        if "error" in line.lower():
            return line.strip()
    lines = [l for l in text.splitlines() if l.strip()]
    return lines[-1].strip() if lines else "no output"


def write_log(out: Path, log: list[str]) -> Path:
    path = out / LOG
    path.write_text("\n".join(l for l in log if l) + "\n")
    return path


def failed(what: str, output: str, folder: Path) -> RedsError:
    """The one-line refusal of a failed step. The build folder is staged and goes with the
    failure, so its log is kept in the temporary folder, named in the message."""
    kept = folder / LOG
    if kept.is_file():
        fd, name = tempfile.mkstemp(prefix="reds-build-", suffix=".log")
        os.close(fd)
        shutil.copyfile(kept, name)
        kept = Path(name)
    return RedsError(f"{what} failed: {first_error(output)} (full log: {kept})")


def elf_size(size_tool: str, elf: Path) -> tuple[int, int, int]:
    """text, data, bss of an ELF (or an object file), from binutils' `size -B`."""
    r = subprocess.run([size_tool, "-B", str(elf)], capture_output=True, text=True)
    lines = r.stdout.strip().splitlines()
    if r.returncode != 0 or len(lines) < 2:
        raise RedsError(f"{size_tool} could not read {elf}: {r.stderr.strip()}")
    text, data, bss = (int(v) for v in lines[1].split()[:3])
    return text, data, bss


def tool_missing(tool: str | None, packages) -> str | None:
    """None if `tool` is on PATH, else the one line that says what to install."""
    if tool and shutil.which(tool) is not None:
        return None
    pkgs = " ".join(packages) or "the board's toolchain"
    return f"{tool or 'a compiler'} not found: install {pkgs} (Debian/Ubuntu: apt-get install {pkgs})"


def missing_toolchain(board: Board) -> str | None:
    """None if the board's compiler, `size` and C library (newlib) are installed, else the reason."""
    tc = board.toolchain
    pkgs = tc.get("packages", [])
    for tool in (tc.get("cc"), tc.get("size")):
        why = tool_missing(tool, pkgs)
        if why:
            return why
    try:
        lib = subprocess.run([tc["cc"], *board.cflags, "-print-file-name=libc_nano.a"], capture_output=True,
                             text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError) as e:
        return f"{tc['cc']} does not run ({e}): install {' '.join(pkgs)}"
    if not os.path.isabs(lib):
        return f"{tc['cc']} has no C library (newlib): install {' '.join(pkgs)} (apt-get install {' '.join(pkgs)})"
    return None


def check_toolchain(board: Board) -> None:
    why = missing_toolchain(board)
    if why:
        raise RedsError(why)
