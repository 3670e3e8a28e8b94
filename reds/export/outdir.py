"""The output folder of an export: staged, then swapped in whole, with a manifest.

An export is written into a hidden sibling folder and renamed onto OUT only when every
file is complete, so a failure leaves OUT as it was. OUT may be absent, empty, or a
previous reds export (its `manifest.json` says so); anything else is refused, so an
export never replaces a folder of the user's own files.
"""
from __future__ import annotations

import json
import os
import shutil
import secrets
from contextlib import contextmanager
from pathlib import Path

from ..errors import RedsError

MANIFEST = "manifest.json"
FORMAT = "reds-export"
VERSION = 1


def is_export(folder: Path) -> bool:
    try:
        return json.loads((folder / MANIFEST).read_text()).get("format") == FORMAT
    except (OSError, ValueError, AttributeError):
        return False


def check_out(out: str | Path) -> Path:
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise RedsError(f"{out}: exists and is not a folder; choose another --out")
    if out.is_dir() and any(out.iterdir()) and not is_export(out):
        raise RedsError(f"{out}: folder is not empty and holds no reds export ({MANIFEST}); "
                        "choose another --out or empty it")
    return out


@contextmanager
def staged(out: str | Path):
    """Yield a fresh folder to write the export into; on success it replaces `out`."""
    out = check_out(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = _sibling(out, "tmp")
    try:
        yield tmp
        if out.exists():
            old = _sibling(out, "old")
            os.replace(out, old / "export")
            try:
                os.replace(tmp, out)
            except BaseException:
                os.replace(old / "export", out)  # put the previous export back
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


def write_manifest(folder: Path, body: dict) -> None:
    from .. import __version__

    doc = {"format": FORMAT, "version": VERSION, "reds_version": __version__, **body}
    (folder / MANIFEST).write_text(json.dumps(doc, indent=2) + "\n")
