"""The reds serial protocol in Python: firmware/src/reds_protocol.c command for command (name,
profile, timestamp, db load / db / db print, infer, results, info, list, select, budget,
loop, cost, deadline, input, layers), with the same replies, errors and limits (read from the
headers); `layers` (per-layer cycles) answers m-error-not-supported once an input is loaded:
onnxruntime times a whole graph, not its layers. In `input pcm` mode a run starts from a PCM clip: the family's MFCC front end
(reds.data.mfcc), then the exported graph, which normalises the raw features itself.

Timing: time.perf_counter_ns, so a "cycle" is a nanosecond (timer "perf_counter-ns",
clock_hz 1e9). A switch is what it costs this runtime: picking another already-loaded
session (all submodels are loaded at start).
"""
from __future__ import annotations

import re
import struct
import time

import numpy as np

from ..export import abi
from ..export.c.literals import model_name
from ..family import OpenFamily
from ..ir.inputs import CLIP_SAMPLES, MfccFrontEnd

U32 = 0xFFFFFFFF
COMMANDS = ("name", "profile", "timestamp", "db", "infer", "results", "info", "list", "select", "budget",
            "loop", "cost", "deadline", "input", "layers", "help")
HELP = ("name", "profile", "timestamp", "db load BYTES | db HEX | db print", "infer RUNS WARMUP", "results", "info",
        "list", "select K", "budget MACS", "cost K CYCLES", "deadline CYCLES", "loop RUNS", "input [pcm|features]",
        "layers", "help")


def fmt_float(v) -> str:
    return format(float(np.float32(v)), ".9g")


class Protocol:
    """firmware/src/reds_protocol.c in Python, over any `write(bytes)`."""

    def __init__(self, family: OpenFamily, runner, write, board: str, pending=None):
        """pending(): whether input waits (a long infer or loop then aborts); None for batch
        input (a pipe), where only bytes of the same read that follow a command count."""
        fam = family.manifest
        self.fam = fam
        self.hash = family.hash
        self.model = model_name(fam.arch)
        self.max_line, self.max_loop = abi.protocol_limit("LINE"), abi.protocol_limit("MAX_LOOP")
        self.max_infer, self.version = abi.protocol_limit("MAX_INFER"), abi.protocol_limit("VERSION")
        self.shape = tuple(fam.input_shape)
        self.input_size = int(np.prod(self.shape))
        self.runner = runner
        self.write = write
        self.board = board
        self.K = len(fam.submodels)
        self.active = self.K - 1
        self.input = bytearray(4 * self.input_size)
        self.frontend = None if fam.frontend is None else MfccFrontEnd.from_json(fam.frontend)
        self.pcm = None  # `input pcm`: the clip's bytes (int16), what db fills
        self.frontend_ns = 0
        self.output = None
        self.db_expect = self.db_have = 0
        self.cost = [0] * self.K
        self.line = bytearray()
        self.overflow = False
        self.discard = False  # a run was aborted: drop input up to its '%'
        self.pending = pending
        self.unfed = 0  # bytes of the current read after the command that runs
        self.t0 = time.perf_counter_ns()
        self.overhead = min(self._timed(lambda: None)[0] for _ in range(8))

    # timing
    def ticks(self) -> int:
        return time.perf_counter_ns() - self.t0

    def _timed(self, fn):
        t0 = time.perf_counter_ns()
        r = fn()
        t1 = time.perf_counter_ns()
        return t1 - t0, r

    def net(self, c: int) -> int:
        return c - self.overhead if c > self.overhead else 0

    def say(self, s: str) -> None:
        self.write(s.encode("ascii"))

    def fail(self, why: str) -> None:
        self.say(f"m-error-{why}\r\n")

    def hello(self) -> None:
        self.say("m-timestamp-mode-performance\r\nm-init-done\r\nm-ready\r\n")

    # input
    def feed(self, data: bytes) -> None:
        for i, c in enumerate(data):
            if self.discard:
                self.discard = c != 0x25
                continue
            if c == 0x25:  # '%'
                if self.overflow:
                    self.fail("line-too-long")
                elif 0 in self.line:
                    self.fail("bad-character")
                else:
                    self.unfed = len(data) - i - 1 if self.pending is not None else 0
                    self.run_command(self.line.decode("ascii"))
                self.line.clear()
                self.overflow = False
                self.say("m-ready\r\n")
                continue
            if self.overflow:
                continue
            if len(self.line) == self.max_line:
                self.overflow = True
                continue
            if (c < 0x20 and c not in (9, 10, 13)) or c > 0x7E:
                c = 0
            self.line.append(c)

    def x(self) -> np.ndarray:
        return np.frombuffer(bytes(self.input), "<f4").reshape((1,) + self.shape).astype(np.float32)

    def features(self) -> np.ndarray:
        """The front end on the loaded clip (as reds_features: a short clip padded with silence)."""
        from ..data.mfcc import clip_features

        pcm = np.frombuffer(bytes(self.pcm[:self.db_have - self.db_have % 2]), "<i2")
        return clip_features(pcm, self.frontend.stride_ms)[None]

    def infer_once(self) -> int:
        if self.pcm is not None:
            cf, x = self._timed(self.features)
            self.frontend_ns += self.net(cf)
        else:
            cf, x = 0, self.x()
        c, y = self._timed(lambda: self.runner.run(self.active, x))
        self.output = np.asarray(y, dtype=np.float32).reshape(-1)
        return self.net(c + cf)

    # commands
    def run_command(self, line: str) -> None:
        tok = line.split()
        if not tok:
            return self.fail("empty-command")
        if len(tok) > 4:
            return self.fail("too-many-arguments")
        cmd, args = tok[0], tok[1:]
        n = len(args)
        try:
            if cmd in ("name", "profile", "timestamp", "results", "info", "list", "layers", "help") and n == 0:
                return getattr(self, f"cmd_{cmd}")()
            if cmd == "db" and n in (1, 2):
                return self.cmd_db(*args)
            if cmd == "input" and n <= 1:
                return self.cmd_input(*args)
            if cmd == "infer" and n == 2:
                return self.cmd_infer(self.u32(args[0]), self.u32(args[1]))
            if cmd in ("select", "budget", "loop", "deadline") and n == 1:
                return getattr(self, f"cmd_{cmd}")(self.u32(args[0]))
            if cmd == "cost" and n == 2:
                return self.cmd_cost(self.u32(args[0]), self.u32(args[1]))
        except ValueError:
            return self.fail("bad-argument")
        self.fail("wrong-number-of-arguments" if cmd in COMMANDS else "unknown-command")

    @staticmethod
    def u32(s: str) -> int:
        if not re.fullmatch(r"[0-9]+", s) or int(s) > U32:
            raise ValueError(s)
        return int(s)

    def us(self, ns: int) -> int:
        return ns // 1000

    def cmd_name(self):
        self.say(f"m-name-reds-{self.model}\r\n")

    def cmd_profile(self):
        self.say(f"m-profile-[reds-protocol-{self.version}]\r\nm-model-[{self.model} {self.hash}]\r\n")

    def cmd_timestamp(self):
        self.say(f"m-lap-us-{self.us(self.ticks())}\r\n")

    def cmd_info(self):
        self.say(f"m-info board={self.board} timer=perf_counter-ns cycle=ns clock_hz=1000000000 "
                 f"overhead={self.overhead} model={self.model} submodels={self.K} active={self.active} "
                 f"input={self.input_size} input_bytes={4 * self.input_size} "
                 f"frontend={'mfcc' if self.frontend else 'none'} "
                 f"pcm_samples={CLIP_SAMPLES if self.frontend else 0} "
                 f"output={self.fam.num_classes} line={self.max_line} max_loop={self.max_loop} "
                 f"abi={abi.abi_version()} proto={self.version}\r\n")

    def cmd_list(self):
        self.say(f"m-submodels n={self.K} active={self.active}\r\n")
        for k, s in enumerate(self.fam.submodels):
            self.say(f"m-submodel k={k} budget={fmt_float(s.budget)} macs={s.macs} weight_bytes={s.weight_bytes} "
                     f"arena_bytes={s.arena_bytes}\r\n")

    def db_buffer(self) -> bytearray:
        return self.input if self.pcm is None else self.pcm

    def cmd_input(self, kind=None):
        if kind is not None:
            if kind == "pcm":
                if self.frontend is None:
                    return self.fail("no-frontend")
                self.pcm = bytearray(2 * CLIP_SAMPLES)
            elif kind == "features":
                self.pcm = None
            else:
                return self.fail("bad-argument")
            self.db_expect = self.db_have = 0
        cap = 4 * self.input_size if self.pcm is None else len(self.pcm)
        self.say(f"m-input kind={'features' if self.pcm is None else 'pcm'} bytes={cap} "
                 f"frontend={'mfcc' if self.frontend else 'none'}\r\n")

    def cmd_db(self, arg, count=None):
        cap = 4 * self.input_size if self.pcm is None else len(self.pcm)
        if arg == "load":
            if count is None:
                return self.fail("bad-argument")
            n = self.u32(count)
            if n == 0 or n > cap:
                return self.fail("out-of-range")
            self.db_expect, self.db_have = n, 0
            return self.say(f"m-[Expecting {n} bytes]\r\n")
        if count is not None:
            return self.fail("bad-argument")
        if arg == "print":
            data = bytes(self.db_buffer()[:self.db_have])
            if data:
                self.say("\r\n".join("m-buffer-" + data[i:i + 32].hex() for i in range(0, len(data), 32)) + "\r\n")
            return
        if not re.fullmatch(r"[0-9a-fA-F]*", arg) or len(arg) % 2:
            return self.fail("bad-hex")
        if self.db_have >= self.db_expect:
            return self.fail("no-load")
        data = bytes.fromhex(arg)
        if len(data) > self.db_expect - self.db_have:
            return self.fail("too-much-data")
        self.db_buffer()[self.db_have:self.db_have + len(data)] = data
        self.db_have += len(data)
        if self.db_have == self.db_expect:
            self.say("m-load-done\r\n")

    def aborted(self) -> bool:
        """A byte arrived while a long command ran: stop it (as firmware/src/reds_protocol.c)."""
        if self.pending is None or not (self.unfed or self.pending()):
            return False
        self.discard = True
        self.fail("aborted")
        return True

    def incomplete(self) -> bool:
        if self.db_have < self.db_expect:
            self.fail("load-incomplete")
            return True
        return False

    def cmd_infer(self, n, warmup):
        if n == 0 or n > self.max_infer or warmup > self.max_infer:
            return self.fail("out-of-range")
        if self.incomplete():
            return
        self.say(f"m-warmup-start-{warmup}\r\n")
        for _ in range(warmup):
            if self.aborted():
                return
            self.infer_once()
        self.say(f"m-warmup-done\r\nm-infer-start-{n}\r\n")
        self.frontend_ns = 0
        t0 = self.ticks()
        if self.pcm is not None:  # each run from the clip: front end, then the model
            for _ in range(n):
                if self.aborted():
                    return
                self.infer_once()
        else:
            x = self.x()
            for _ in range(n):
                if self.aborted():
                    return
                y = self.runner.run(self.active, x)
            self.output = np.asarray(y, dtype=np.float32).reshape(-1)
        t1 = self.ticks()
        fe = f" frontend={self.frontend_ns}" if self.pcm is not None else ""
        self.say(f"m-lap-us-{self.us(t0)}\r\nm-lap-us-{self.us(t1)}\r\nm-infer-done\r\n"
                 f"m-infer k={self.active} n={n} cycles={self.net(t1 - t0)}{fe}\r\n")
        self.cmd_results()

    def cmd_results(self):
        if self.output is None:
            return self.fail("no-results")
        self.say("m-results-[" + ",".join(fmt_float(v) for v in self.output) + "]\r\n")
        self.say("m-bits-[" + ",".join(f"{struct.unpack('<I', struct.pack('<f', float(v)))[0]:08x}"
                                       for v in self.output) + "]\r\n")

    def cmd_loop(self, n):
        if n == 0 or n > self.max_loop:
            return self.fail("out-of-range")
        if self.incomplete():
            return
        s = []
        self.frontend_ns = 0
        for _ in range(n):
            if self.aborted():
                return
            s.append(self.infer_once())
        s.sort()
        med = s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) // 2
        fe = f" frontend_total={self.frontend_ns}" if self.pcm is not None else ""
        self.say(f"m-loop k={self.active} n={n} min={s[0]} median={med} max={s[-1]} total={sum(s)}{fe}\r\n")

    def _switch(self, what, pick, extra):
        c, k = self._timed(pick)
        if k < 0:
            return self.fail("no-submodel-fits")
        self.say(f"m-{what} k={self.active}{extra(self.active)} cycles={self.net(c)}\r\n")

    def _set(self, k):
        self.active = k
        return k

    def cmd_select(self, k):
        if k >= self.K:
            return self.fail("out-of-range")
        self._switch("select", lambda: self._set(k), lambda a: "")

    def cmd_budget(self, macs):
        subs = self.fam.submodels

        def pick():
            fit = [k for k in range(self.K) if subs[k].macs <= macs]
            return self._set(fit[-1]) if fit else -1
        self._switch("budget", pick, lambda a: f" macs={subs[a].macs}")

    def cmd_cost(self, k, cycles):
        if k >= self.K:
            return self.fail("out-of-range")
        self.cost[k] = cycles
        self.say(f"m-cost k={k} cycles={cycles}\r\n")

    def cmd_layers(self):
        """Per-layer cycles need the C runtime's reds_run_profiled: onnxruntime runs a whole graph.
        The same checks first as the C side, then m-error-not-supported."""
        if self.db_expect == 0:
            return self.fail("no-input")
        if self.incomplete():
            return
        self.fail("not-supported")

    def cmd_help(self):
        for usage in HELP:
            self.say(f"m-help {usage}%\r\n")

    def cmd_deadline(self, cycles):
        if not any(self.cost):
            return self.fail("no-costs")

        def pick():
            fit = [k for k in range(self.K) if 0 < self.cost[k] <= cycles]
            return self._set(fit[-1]) if fit else -1
        self._switch("deadline", pick, lambda a: f" cost={self.cost[a]}")


