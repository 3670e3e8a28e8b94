"""Host side of the reds serial protocol (`firmware/src/reds_protocol.h`), on pyserial.

`Link(url)` opens a real port (`/dev/ttyACM0`, `COM3`) or anything pyserial's
`serial_for_url` takes (`socket://127.0.0.1:5555` for the emulator). `command("list")`
sends `list%` and returns the reply lines up to `m-ready`; `check()` also raises on an
`m-error-...` line. Every wait has a timeout that names the command and the port.
All timing is done by the device: the host only reads the numbers.
"""
from __future__ import annotations

import re
import socket
import struct
import time

from ..errors import RedsError

READY = "m-ready"
ERROR = "m-error-"


class DeviceError(RedsError):
    """The device answered a command with `m-error-<reason>`."""

    def __init__(self, command: str, reason: str):
        super().__init__(f"the device refused '{command}%': {reason}")
        self.command = command
        self.reason = reason


def fields(line: str) -> dict[str, str]:
    """`m-select k=1 cycles=6` -> {'k': '1', 'cycles': '6'}."""
    return dict(tok.split("=", 1) for tok in line.split()[1:] if "=" in tok)


def ints(line: str) -> dict[str, int]:
    return {k: int(v) for k, v in fields(line).items() if re.fullmatch(r"\d+", v)}


def find(lines: list[str], prefix: str) -> str:
    for line in lines:
        if line == prefix or line.startswith(prefix + " ") or (prefix.endswith("-") and line.startswith(prefix)):
            return line
    raise RedsError(f"the device's reply has no '{prefix}' line: {lines}")


def bracket_list(line: str) -> list[str]:
    m = re.search(r"\[(.*)\]", line)
    if not m:
        raise RedsError(f"malformed reply line: {line!r}")
    return [t for t in m.group(1).split(",") if t]


def floats_from_bits(line: str) -> list[float]:
    """`m-bits-[3f800000,...]` -> the exact float32 values."""
    import numpy as np
    return [float(np.frombuffer(struct.pack("<I", int(t, 16)), "<f4")[0]) for t in bracket_list(line)]


class Link:
    def __init__(self, url: str, timeout: float = 10.0, baudrate: int = 115200, serial_obj=None):
        self.url = url
        self.timeout = timeout
        if serial_obj is not None:
            self.ser = serial_obj
        else:
            import serial

            try:
                self.ser = serial.serial_for_url(url, baudrate=baudrate, timeout=0.2)
            except (serial.SerialException, OSError, ValueError) as e:
                raise RedsError(f"cannot open {url}: {e}") from None
        sock = getattr(self.ser, "_socket", None)
        if sock is not None:  # one command is one small write: send it now
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
        self._buf = b""
        self.banner: list[str] = []

    # ---- lines ------------------------------------------------------------------------
    def _readline(self, deadline: float, what: str) -> str:
        import serial

        while b"\n" not in self._buf:
            if time.monotonic() > deadline:
                raise RedsError(f"{self.url}: no reply to {what} within {self.timeout:g} s "
                                "(is reds firmware running there, at this baud rate?)")
            try:
                chunk = self.ser.read(max(1, self.ser.in_waiting or 1))
            except (serial.SerialException, OSError) as e:
                raise RedsError(f"{self.url}: connection lost during {what} ({e})") from None
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        return line.decode("ascii", "replace").strip()

    def write(self, data: bytes) -> None:
        import serial

        try:
            self.ser.write(data)
            self.ser.flush()
        except (serial.SerialException, OSError) as e:
            raise RedsError(f"{self.url}: cannot write ({e})") from None

    def read_reply(self, what: str, timeout: float | None = None) -> list[str]:
        """Lines up to (without) `m-ready`; lines that do not start with `m-` are dropped."""
        t = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + t
        out = []
        while True:
            line = self._readline(deadline, what)
            if line == READY:
                return out
            if line.startswith("m-"):
                out.append(line)
            deadline = max(deadline, time.monotonic() + min(t, 5.0))  # a talking device is alive

    # ---- commands ---------------------------------------------------------------------
    def command(self, cmd: str, timeout: float | None = None) -> list[str]:
        """Send `cmd%`; the reply lines up to m-ready (errors included)."""
        self.write(cmd.encode("ascii") + b"%")
        return self.read_reply(f"'{cmd}%'", timeout)

    def check(self, cmd: str, timeout: float | None = None) -> list[str]:
        """As command(), but an `m-error-...` line raises DeviceError."""
        lines = self.command(cmd, timeout)
        for line in lines:
            if line.startswith(ERROR):
                raise DeviceError(cmd, line[len(ERROR):])
        return lines

    def sync(self) -> str:
        """Get in step with a device that may have printed its start-up lines or hold half
        a command: end whatever it holds with '%', then ask its name. Returns the name."""
        self.write(b"%name%")
        deadline = time.monotonic() + self.timeout
        while True:
            line = self._readline(deadline, "'name%'")
            if line.startswith("m-name-"):
                name = line[len("m-name-"):]
                if self._readline(deadline, "'name%'") != READY:
                    raise RedsError(f"{self.url}: garbled reply to 'name%'")
                return name
            self.banner.append(line)

    # ---- the protocol's commands ---------------------------------------------------------
    def info(self) -> dict[str, str]:
        return fields(find(self.check("info"), "m-info"))

    def profile(self) -> tuple[str, str]:
        """(model name, family sha256) from `m-model-[name hash]`."""
        parts = bracket_list(find(self.check("profile"), "m-model-"))[0].split()
        return (parts[0], parts[1] if len(parts) > 1 else "")

    def submodels(self) -> list[dict]:
        lines = self.check("list")
        out = []
        for line in lines:
            if line.startswith("m-submodel "):
                f = fields(line)
                out.append({"index": int(f["k"]), "budget": float(f["budget"]), "macs": int(f["macs"]),
                            "weight_bytes": int(f["weight_bytes"]), "arena_bytes": int(f["arena_bytes"])})
        return out

    def select(self, k: int) -> int:
        """Make submodel k active; the cycles the switch took on the device."""
        return ints(find(self.check(f"select {k}"), "m-select"))["cycles"]

    def budget(self, macs: int) -> tuple[int, int]:
        """(submodel chosen for at most `macs` MACs, cycles of pick + switch)."""
        f = ints(find(self.check(f"budget {macs}"), "m-budget"))
        return f["k"], f["cycles"]

    def load(self, data: bytes, line: int = 160) -> None:
        """Send an input tensor with `db load N%` and `db <hex>%` commands."""
        self.check(f"db load {len(data)}")
        chunk = max(1, min(64, (line - 4) // 2))
        for i in range(0, len(data), chunk):
            self.check("db " + data[i:i + chunk].hex())

    def loop(self, n: int, timeout: float | None = None) -> dict[str, int]:
        return ints(find(self.check(f"loop {n}", timeout), "m-loop"))

    def layers(self, timeout: float | None = None) -> dict:
        """`layers%`: {"k", "rows": [{"i", "op", "cycles"}] (cycles an int, or None where the
        layer ran in the store step of the conv or batch norm before it), "cycles" (the rows' sum), "run"
        (an ordinary run's cycles), "overhead"}."""
        lines = self.check("layers", timeout)
        total = ints(find(lines, "m-layers-total"))
        rows = []
        for line in lines:
            if line.startswith("m-layer "):
                f = fields(line)
                rows.append({"i": f["i"], "op": f["op"],
                             "cycles": None if f["cycles"] == "fused" else int(f["cycles"])})
        return {"k": ints(find(lines, "m-layers"))["k"], "rows": rows, "cycles": total["cycles"],
                "run": total["run"], "overhead": total["overhead"]}

    def results(self) -> tuple[list[float], list[str]]:
        """The last outputs: exact floats (from their bits) and the decimal text."""
        lines = self.check("results")
        return floats_from_bits(find(lines, "m-bits-")), bracket_list(find(lines, "m-results-"))

    def close(self) -> None:
        try:
            self.ser.close()
        except Exception:  # closing a dead connection: nothing left to do
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
