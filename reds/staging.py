"""Files and output folders written whole or not at all.

`atomic_write(path, write)`: one file, written to a temporary name and renamed.

A command that writes a folder (an export, a report) writes into a hidden sibling first
and renames it onto OUT only when every file is complete, so a failure leaves OUT as it
was. OUT may be absent, empty, or an earlier output of the same command (recognised by
its data file's `format`); anything else is refused, so reds never replaces a folder of
the user's own files.
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

from .errors import RedsError


def holds(folder: Path, data_file: str, fmt: str) -> bool:
    """Whether `folder` is an earlier output: its `data_file` says `format: fmt`."""
    try:
        return json.loads((folder / data_file).read_text()).get("format") == fmt
    except (OSError, ValueError, AttributeError):
        return False


def check_out(out: str | Path, data_file: str, fmt: str, what: str) -> Path:
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise RedsError(f"{out}: exists and is not a folder; choose another --out")
    if out.is_dir() and any(out.iterdir()) and not holds(out, data_file, fmt):
        raise RedsError(f"{out}: folder is not empty and holds no reds {what} ({data_file}); "
                        "choose another --out or empty it")
    return out


@contextmanager
def staged(out: str | Path, data_file: str, fmt: str, what: str):
    """Yield a fresh folder to write into; on success it replaces `out`."""
    out = check_out(out, data_file, fmt, what)
    out.parent.mkdir(parents=True, exist_ok=True)
    for tag in ("tmp", "old"):  # what a killed run left next to OUT
        for stale in out.parent.glob(f".{out.name}.{tag}-*"):
            shutil.rmtree(stale, ignore_errors=True)
    tmp = _sibling(out, "tmp")
    try:
        yield tmp
        if out.exists():
            old = _sibling(out, "old")
            os.replace(out, old / "previous")
            try:
                os.replace(tmp, out)
            except BaseException:
                os.replace(old / "previous", out)  # put the previous output back
                old.rmdir()
                raise
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _sibling(out: Path, tag: str) -> Path:
    """A new hidden folder next to `out` (plain mkdir: it gets the user's umask)."""
    while True:
        p = out.parent / f".{out.name}.{tag}-{secrets.token_hex(4)}"
        try:
            p.mkdir()
            return p
        except FileExistsError:
            continue


def atomic_write(path: Path, write) -> None:
    """write(tmp_path) then rename onto path: readers see the old file or the new one.
    (One writer per file: the temporary files a killed write left are removed first.)"""
    path = Path(path)
    for stale in path.parent.glob(f".{path.name}.*"):  # left by a write that was killed
        stale.unlink(missing_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file the usual mode
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
