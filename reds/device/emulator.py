"""Emulated boards: start the board's emulator on a firmware ELF with its UART on a free
TCP port, hand back a Link to it, and always stop it (also on Ctrl-C or an error)."""
from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from ..build.boards import Board
from ..errors import RedsError
from .link import Link


def qemu_command(board: Board, elf: str | Path, port: int) -> list[str]:
    e = board.emulator
    icount = [] if e.get("icount_shift") is None else ["-icount", f"shift={int(e['icount_shift'])}"]
    return [e["command"], "-M", e["machine"], "-display", "none", "-monitor", "none", "-nodefaults", *icount,
            "-kernel", str(elf), "-serial", f"tcp:127.0.0.1:{port},server=on,wait=on,nodelay=on"]


def check_emulator(board: Board) -> None:
    e = board.emulator or {}
    if not e.get("command") or shutil.which(e["command"]) is None:
        pkg = e.get("package", e.get("command", "the emulator"))
        raise RedsError(f"{e.get('command', 'the emulator')} not found: install {pkg} (apt-get install {pkg})")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def emulate(board: Board, elf: str | Path, timeout: float = 10.0, start_timeout: float = 15.0):
    """Start the board's emulator on `elf`; yield a Link to its UART; stop it on exit
    (also on Ctrl-C or an error)."""
    import serial

    check_emulator(board)
    for attempt in range(3):  # another process may take the free port before QEMU binds it
        port = free_port()
        errf = tempfile.TemporaryFile()
        proc = subprocess.Popen(qemu_command(board, elf, port), stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=errf, start_new_session=True)
        link = None
        try:
            deadline = time.monotonic() + start_timeout
            while link is None:
                if proc.poll() is not None:
                    break
                try:
                    ser = serial.serial_for_url(f"socket://127.0.0.1:{port}", timeout=0.2)
                    link = Link(f"socket://127.0.0.1:{port}", timeout=timeout, serial_obj=ser)
                except (serial.SerialException, OSError):
                    if time.monotonic() > deadline:
                        raise RedsError(f"{board.emulator['command']} did not open its serial port "
                                        f"within {start_timeout:g} s") from None
                    time.sleep(0.05)
            if link is None:
                errf.seek(0)
                err = errf.read().decode(errors="replace").strip()
                if "ddress already in use" in err and attempt < 2:
                    continue
                raise RedsError(f"{board.emulator['command']} stopped at start: {err.splitlines()[-1] if err else proc.returncode}")
            try:
                yield link
            finally:
                link.close()
            return
        finally:
            stop_process(proc)
            errf.close()


def stop_process(proc: subprocess.Popen) -> None:
    """Terminate a child (emulator, harness) and reap it; kill it if it will not stop."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
