"""`reds flash BUILD [--port P]`: build and upload a `reds build --board nano33ble` project.

Runs `pio run -d BUILD -t upload [--upload-port P]` (PlatformIO builds the sketch with
the Arduino mbed core, then bossac uploads it after the 1200-baud touch that starts the
bootloader). What is missing is said in one line: PlatformIO itself, or its downloads
(the nordicnrf52 platform, the ARM toolchain and the Arduino core come from the internet
on first use), or the board.
"""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

from ..build.stamp import read_stamp
from ..errors import RedsError

DOWNLOAD_FAILED = re.compile(
    r"HTTPClientError|Could not resolve host|Name or service not known|Temporary failure in name resolution|"
    r"Max retries exceeded|Failed to establish a new connection|ConnectTimeout|Network is unreachable|"
    r"UnknownPackageError|Could not find the package", re.I)
NO_BOARD = re.compile(r"No device found|Please specify `upload_port`|could not open port|No such file or directory: "
                      r"'/dev/|Device or resource busy|Permission denied: '/dev/", re.I)


def pio_command() -> str | None:
    """`pio` on PATH, or next to this Python (pip install platformio into reds's virtualenv)."""
    here = Path(sys.executable).parent / "pio"
    return shutil.which("pio") or shutil.which("platformio") or (str(here) if here.is_file() else None)


def classify(output: str, rc: int, build: Path) -> str:
    """One line that says why `pio run -t upload` failed."""
    if DOWNLOAD_FAILED.search(output):
        return ("PlatformIO could not download the nordicnrf52 platform, its toolchain or the Arduino mbed core "
                f"(no internet?): connect once and run `reds flash {build}` again (later runs use its cache)")
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
        raise RedsError("PlatformIO (pio) not found: pip install platformio (it downloads the nordicnrf52 platform "
                        "and the Arduino mbed core on first use, so the first flash needs internet)")
    cmd = [pio, "run", "-d", str(build), "-t", "upload"] + (["--upload-port", port] if port else [])
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
