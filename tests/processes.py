"""Starting a server the tests talk to: it prints one line naming where it listens."""
from __future__ import annotations

import subprocess
import time


def start_announcing(cmd: list[str], prefix: str, timeout: float = 120.0) -> tuple[subprocess.Popen, str]:
    """Start `cmd` (its own session); wait for its line `<prefix> WHERE`; return it and WHERE."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            start_new_session=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line.startswith(prefix + " "):
            return proc, line.split()[1]
        if not line and proc.poll() is not None:
            break
    proc.kill()
    raise AssertionError(f"{cmd[0]} printed no '{prefix} ...' line")
