"""The output folder of an export: staged, then swapped in whole, with a manifest.

OUT may be absent, empty, or a previous reds export (its `manifest.json` says so);
see `reds.staging` for how a failure leaves OUT as it was.
"""
from __future__ import annotations

import json
from pathlib import Path

from .. import staging

MANIFEST = "manifest.json"
FORMAT = "reds-export"
VERSION = 1


def check_out(out: str | Path) -> Path:
    return staging.check_out(out, MANIFEST, FORMAT, "export")


def staged(out: str | Path):
    """A fresh folder to write the export into; on success it replaces `out`."""
    return staging.staged(out, MANIFEST, FORMAT, "export")


def write_manifest(folder: Path, body: dict) -> None:
    from .. import __version__

    doc = {"format": FORMAT, "version": VERSION, "reds_version": __version__, **body}
    (folder / MANIFEST).write_text(json.dumps(doc, indent=2) + "\n")
