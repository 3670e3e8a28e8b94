"""`reds serve`: the reds serial protocol served from this computer, so that runtimes can be
compared on one machine (a Raspberry Pi, a laptop) with the same `reds bench --port`.

Runtimes:
- `c`: the rpi harness (boards/rpi: the C runtime and protocol as a Linux program), built
  natively into --build (default: a cache folder, reds.build.default_dir) and exec'd: this
  process becomes it.
- `onnxruntime`: the family's ONNX export (one graph per submodel), onnxruntime's CPU
  provider.
- `tflite`: the family's TFLite export, run by ai-edge-litert (else tflite-runtime). The
  export needs the `tflite` extra (litert-torch).
Exports are written to a temporary folder (`reds.export.export`) and removed at the end.

The protocol is firmware/src/reds_protocol.h's, command for command (`protocol`).

Where (--port): `pty` (default: a new pseudo-terminal, its path printed as `pty PATH`), a
serial device (`/dev/ttyAMA0`, `/dev/ttyGS0` for a Pi's USB gadget), `-` (stdin/stdout), or
`tcp:[HOST:]PORT` (one client at a time; connect with `socket://HOST:PORT`).
"""
from __future__ import annotations

import os
import select
import socket
import sys
import tempfile
from pathlib import Path

from ..build import build, summary
from ..errors import RedsError
from ..family import OpenFamily
from .protocol import Protocol
from .runners import RUNNERS, make_runner

RUNTIMES = ("c", *RUNNERS)


def _serve_fd(proto: Protocol, rfd: int) -> None:
    while True:
        try:
            data = os.read(rfd, 4096)
        except InterruptedError:
            continue
        except OSError:
            return
        if not data:
            return
        proto.feed(data)


def where(port: str) -> tuple:
    """--port as ("pty",), ("stdio",), ("tcp", host, port) or ("serial", path), checked before
    any slow work (build, export)."""
    if port == "pty":
        return ("pty",)
    if port == "-":
        return ("stdio",)
    if port.startswith("tcp:"):
        host, _, num = port[4:].rpartition(":")
        if not num.isdigit() or not 0 <= int(num) <= 65535:
            raise RedsError(f"--port {port}: expected tcp:[HOST:]PORT with PORT 0..65535 (0: any free port)")
        try:
            socket.inet_aton(host or "127.0.0.1")
        except OSError:
            raise RedsError(f"--port {port}: {host!r} is not an IPv4 address (e.g. 127.0.0.1 or 0.0.0.0)") from None
        return ("tcp", host or "127.0.0.1", int(num))
    return ("serial", port)


def _waiting(fd: int):
    """pending() for Protocol: a byte waits on fd."""
    return lambda: bool(select.select([fd], [], [], 0)[0])


def _sender(conn: socket.socket):
    """conn.sendall that never raises: a client that left takes its replies with it."""
    def send(b: bytes) -> None:
        try:
            conn.sendall(b)
        except OSError:
            pass
    return send


def _writer(fd: int):
    def write(b: bytes) -> None:
        view = memoryview(b)
        while view:
            try:
                n = os.write(fd, view)
            except BlockingIOError:
                continue
            except OSError:
                return
            view = view[n:]
    return write


def serve(family: OpenFamily, runtime: str = "onnxruntime", port: str = "pty", build_dir=None,
          announce=None) -> None:
    """Serve until the peer closes (stdin, a device) or forever (pty, tcp). `announce(text)`
    is told where (default: printed to stdout)."""
    announce = announce or (lambda s: (print(s, flush=True)))
    place = where(port)
    if runtime not in RUNTIMES:
        raise RedsError(f"unknown runtime '{runtime}'; choose one of: {', '.join(RUNTIMES)}")
    if runtime == "c":
        res = build(family, "rpi", build_dir)  # no --build: a cached build, not in the family folder
        print(summary(res), file=sys.stderr, flush=True)
        sys.stdout.flush()
        os.execv(res.elf, [res.elf, port])
    with tempfile.TemporaryDirectory(prefix="reds-serve-") as tmp:
        runner = make_runner(family, runtime, Path(tmp))
        board = f"host-{runtime}"
        if place[0] == "stdio":
            proto = Protocol(family, runner, _writer(1), board, _waiting(0) if os.isatty(0) else None)
            proto.hello()
            _serve_fd(proto, 0)
            return
        if place[0] == "pty":
            import tty

            master, slave = os.openpty()
            tty.setraw(slave)
            announce(f"pty {os.ttyname(slave)}")
            proto = Protocol(family, runner, _writer(master), board, _waiting(master))
            proto.hello()
            _serve_fd(proto, master)  # the slave stays open here: clients come and go
            return
        if place[0] == "tcp":
            addr = place[1:]
            srv = socket.socket()
            srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                srv.bind(addr)
            except OSError as e:
                raise RedsError(f"cannot listen on {addr[0]}:{addr[1]}: {e.strerror or e}") from None
            srv.listen(1)
            announce(f"tcp {addr[0]}:{srv.getsockname()[1]}")
            while True:  # one client at a time, each from a fresh protocol state
                conn, _ = srv.accept()
                with conn:
                    try:
                        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                        proto = Protocol(family, runner, _sender(conn), board, _waiting(conn.fileno()))
                        proto.hello()
                        _serve_fd(proto, conn.fileno())
                    except OSError:  # reset or gone between accept and the first read: next client
                        continue
        import serial

        try:
            ser = serial.Serial(port, 115200, timeout=None)
        except (serial.SerialException, OSError, ValueError) as e:
            raise RedsError(f"cannot open {port}: {e}") from None
        announce(f"serial {port}")
        proto = Protocol(family, runner, lambda b: (ser.write(b), ser.flush()), board, lambda: ser.in_waiting > 0)
        proto.hello()
        while True:
            data = ser.read(max(1, ser.in_waiting))
            if data:
                proto.feed(data)
