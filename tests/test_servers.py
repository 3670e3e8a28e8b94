"""Servers survive their clients: the Pi harness (C, native build) and `reds serve` (Python)
over TCP.

Each connection starts from a fresh protocol state (the full banner, the largest submodel,
no half-typed line left by the previous client); a client that disconnects mid-reply or
resets the connection never stops the server; a long `infer` stops as soon as a byte
arrives (m-error-aborted); ports are checked before any slow work; and the fuzz of
test_protocol.py runs against the harness over TCP, with random disconnects.
"""
from __future__ import annotations

import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from families import shared_family
from processes import start_announcing
from reds.build import build
from reds.cli import main
from reds.device.emulator import stop_process
from reds.family import open as open_family

pytestmark = pytest.mark.skipif(subprocess.run(["sh", "-c", "command -v cc && command -v make"],
                                               capture_output=True).returncode != 0, reason="needs cc and make")
BANNER = [b"m-timestamp-mode-performance", b"m-init-done"]


@pytest.fixture(scope="module")
def fam(tmp_path_factory) -> Path:
    return shared_family(tmp_path_factory, "dnn-s", 0.25)


def start(cmd: list[str]) -> tuple[subprocess.Popen, int]:
    """Start a server that prints `tcp HOST:PORT`; return it and the port."""
    proc, where = start_announcing(cmd, "tcp")
    return proc, int(where.rsplit(":", 1)[1])


class Client:
    def __init__(self, port: int):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.buf = b""

    def reply(self) -> list[bytes]:
        """Lines up to m-ready."""
        out = []
        while True:
            while b"\r\n" not in self.buf:
                chunk = self.sock.recv(65536)
                if not chunk:
                    raise AssertionError(f"server closed; got {out}")
                self.buf += chunk
            line, self.buf = self.buf.split(b"\r\n", 1)
            if line == b"m-ready":
                return out
            out.append(line)

    def ask(self, cmd: str) -> list[bytes]:
        self.sock.sendall(cmd.encode() + b"%")
        return self.reply()

    def reset(self) -> None:
        """Close with a TCP reset (SO_LINGER 0), as a crashed client does."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()


@pytest.fixture(scope="module", params=["c", "python"])
def server(request, fam, tmp_path_factory):
    if request.param == "c":
        res = build(open_family(fam), "rpi", tmp_path_factory.mktemp("rpi") / "build")
        proc, port = start([res.elf, "tcp:0"])
    else:
        pytest.importorskip("onnxruntime")
        proc, port = start([sys.executable, "-m", "reds", "serve", str(fam), "--runtime", "onnxruntime",
                            "--port", "tcp:0"])
    yield request.param, port
    stop_process(proc)
    assert proc.returncode is not None


def test_each_client_starts_fresh(server, fam):
    _, port = server
    k = len(open_family(fam).submodels)
    a = Client(port)
    assert a.reply() == BANNER  # the whole banner, every line ended by \r\n
    assert a.ask("select 0")[0].startswith(b"m-select k=0")
    a.sock.sendall(b"sel")  # half a command, then gone
    a.sock.close()
    b = Client(port)
    assert b.reply() == BANNER
    info = b.ask("info")[0].decode()
    assert f"active={k - 1}" in info  # not the previous client's submodel
    assert b.ask("name")[0].startswith(b"m-name-reds-")  # not "selname"
    b.sock.close()


def test_disconnects_and_resets_never_stop_the_server(server):
    _, port = server
    for how in ("mid-reply", "reset", "reset-mid-reply", "silent"):
        c = Client(port)
        c.reply()
        if how.endswith("mid-reply"):
            c.sock.sendall(b"list%info%list%info%list%")  # and leave before reading the replies
        if how.startswith("reset"):
            c.reset()
        else:
            c.sock.close()
    d = Client(port)
    assert d.reply() == BANNER and d.ask("name")[0].startswith(b"m-name-")


def test_a_long_infer_is_aborted_by_a_byte(server, fam):
    _, port = server
    c = Client(port)
    c.reply()
    n = 4 * open_family(fam).manifest.input_shape[1] * open_family(fam).manifest.input_shape[2]
    c.ask(f"db load {n}")
    for i in range(0, n, 64):  # 64 bytes a command: within the protocol's line
        c.ask("db " + "00" * min(64, n - i))
    t0 = time.monotonic()
    c.sock.sendall(b"infer 100000 100000%")
    time.sleep(0.5)
    c.sock.sendall(b"%")  # any byte: the '%' also ends what is discarded
    lines = c.reply()
    assert lines[-1] == b"m-error-aborted" and time.monotonic() - t0 < 20, lines
    assert c.ask("name")[0].startswith(b"m-name-")  # answering again at once
    c.sock.close()


WORDS = ["name", "profile", "timestamp", "db", "load", "infer", "results", "info", "list", "select", "budget",
         "loop", "cost", "deadline", "print", "0", "1", "2", "3", "255", "4294967296", "-1", "00", "zz", ""]
command = st.lists(st.one_of(st.sampled_from(WORDS), st.text(alphabet=st.characters(min_codepoint=1,
                                                                                      max_codepoint=255),
                                                                  max_size=8)), max_size=5).map(" ".join)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(script=st.lists(st.tuples(command, st.booleans()), min_size=1, max_size=12))
def test_fuzz_over_tcp_with_disconnects(server, script):
    """Random commands, one at a time; after some, the client leaves (mid-reply or reset) and
    a new one connects. Every reply is m- lines ending in m-ready; the server keeps answering."""
    _, port = server
    c = Client(port)
    assert c.reply() == BANNER
    for cmd, leave in script:
        data = cmd.replace("%", "").encode("latin-1")
        if leave:
            c.sock.sendall(data + b"%")
            c.reset()
            c = Client(port)
            assert c.reply() == BANNER
            continue
        c.sock.sendall(data + b"%")
        lines = c.reply()
        assert all(line.startswith(b"m-") for line in lines), lines
    assert c.ask("name")[0].startswith(b"m-name-")
    c.sock.close()


def test_ports_are_checked_before_any_slow_work(fam, capsys):
    t0 = time.monotonic()
    for port in ("tcp:99999", "tcp:-1", "tcp:abc", "tcp:300.1.1.1:80"):
        assert main(["serve", str(fam), "--runtime", "onnxruntime", "--port", port]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "--port" in err[0], err
    assert time.monotonic() - t0 < 5  # refused before exporting anything


def test_harness_refuses_a_bad_port(server, fam, tmp_path):
    kind, _ = server
    if kind != "c":
        pytest.skip("the C harness's own check")
    res = build(open_family(fam), "rpi", tmp_path / "b")
    r = subprocess.run([res.elf, "tcp:99999"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and "0..65535" in r.stderr
