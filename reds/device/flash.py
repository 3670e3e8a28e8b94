"""`reds flash BUILD [--port P]`: upload a `reds build --board nano33ble` project.

`reds build` compiled it (`pio run`); this runs `pio run -d BUILD -t upload [--upload-port P]`
(PlatformIO compiles what changed, then bossac uploads after the 1200-baud touch that starts
the bootloader). What is missing is said in one line: PlatformIO itself, or its downloads
(the nordicnrf52 platform, the ARM toolchain and the Arduino core come from the internet on
first use), or the board.
"""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from ..build.platformio import DOWNLOAD_FAILED, INSTALL, NO_DOWNLOAD, compile_command, pio_command
from ..build.stamp import read_stamp
from ..errors import RedsError

__all__ = ["DOWNLOAD_FAILED", "classify", "flash", "pio_command", "upload_command"]
NO_BOARD = re.compile(r"No device found|Please specify `upload_port`|could not open port|No such file or directory: "
                      r"'/dev/|Device or resource busy|Permission denied: '/dev/", re.I)


def upload_command(pio: str, build: Path, port: str | None = None) -> list[str]:
    """What `reds flash` runs: `reds build`'s compile command with `-t upload`."""
    return compile_command(pio, build) + ["-t", "upload"] + (["--upload-port", port] if port else [])


def classify(output: str, rc: int, build: Path) -> str:
    """One line that says why `pio run -t upload` failed."""
    if DOWNLOAD_FAILED.search(output):
        return f"PlatformIO {NO_DOWNLOAD}: connect once and run `reds flash {build}` again (later runs use its cache)"
    if NO_BOARD.search(output):
        return ("no Nano 33 BLE found to upload to: plug it in (double-tap reset if the upload still fails) and "
                "pass its port with --port /dev/ttyACM0")
    err = [l.strip() for l in output.splitlines() if re.search(r"error", l, re.I)]
    last = err[-1] if err else (output.strip().splitlines() or ["no output"])[-1].strip()
    return f"pio run -t upload failed (exit {rc}): {last} (run `pio run -d {build} -t upload -v` for the details)"


def flash(build_dir, port: str | None = None, echo=None) -> None:
    build = Path(build_dir)
    stamp = read_stamp(build)
    if stamp is None or not (build / "platformio.ini").is_file():
        raise RedsError(f"{build}: not a reds build of a PlatformIO board (make one with "
                        f"`reds build FAMILY --board nano33ble --out {build}`)")
    if not stamp.get("complete"):
        raise RedsError(f"{build}: the build did not finish; run `reds build` again")
    pio = pio_command()
    if pio is None:
        raise RedsError(f"PlatformIO (pio) not found: {INSTALL}, so the first flash needs internet")
    cmd = upload_command(pio, build, port)
    echo = echo or (lambda line: print(line, end="", file=sys.stderr))
    try:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace")
    except OSError as e:
        raise RedsError(f"cannot run {pio}: {e}") from None
    out = []
    for line in proc.stdout:
        out.append(line)
        echo(line)
    rc = proc.wait()
    if rc != 0:
        raise RedsError(classify("".join(out), rc, build))
