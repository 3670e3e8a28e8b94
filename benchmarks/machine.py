"""One line naming the machine a benchmark ran on, for every results file."""
from __future__ import annotations

import os
import platform
from pathlib import Path


def describe() -> str:
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"{platform.machine()}, {cpu + ', ' if cpu else ''}{os.cpu_count()} cores, {platform.system()}, "
            f"Python {platform.python_version()}")
