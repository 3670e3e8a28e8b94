"""Write a benchmark's results/<stem>.json and .md (each whole or not at all) and print the markdown."""
from __future__ import annotations

import json
from pathlib import Path

from reds.family import atomic_write


def publish(out: Path, stem: str, result: dict, markdown) -> str:
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / f"{stem}.json", lambda p: p.write_text(json.dumps(result, indent=2) + "\n"))
    text = markdown(result)
    atomic_write(out / f"{stem}.md", lambda p: p.write_text(text))
    print(text, flush=True)
    return text
