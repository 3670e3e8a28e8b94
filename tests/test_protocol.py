"""The serial protocol (firmware/src/reds_protocol.c), on the host, against PyTorch and a fuzzer.

The host board (boards/host: main.c and its port) runs the protocol with an exported model
on stdin/stdout (built with -Werror and, where the compiler has them, address and
undefined-behaviour sanitizers that abort on the first error); tests/c/format_harness.c
runs the number formatter (firmware/src/reds_format.c). Checked:
- any bytes at all: the harness never crashes, every reply line starts with `m-`, and
  every '%' is answered by exactly one `m-ready`; a reply is either one `m-error-` line
  or has none (hypothesis: random bytes, and random command-like strings);
- every command answers as documented: name, profile (the family's hash), list (the
  manifest's costs), info, select, budget, db load/db, infer, results, loop, timestamp;
- the outputs equal PyTorch's for every submodel (1e-4, same argmax), and their decimal
  text reads back to exactly the float32 bits the device sent;
- the float formatter is printf's %.9g, digit for digit, on random float32 bit patterns.
"""
from __future__ import annotations

import os
import re
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings, strategies as st

from csources import CC, HOST, LDLIBS, ROOT, RUNTIME, runtime
from families import shared_family
from reds.device.link import bracket_list, fields, floats_from_bits
from reds.export import abi, export
from reds.family import load, open as open_family, read_manifest

FORMAT_HARNESS = ROOT / "tests" / "c" / "format_harness.c"
# as csources.CFLAGS, at -O1 -g for the sanitizers; the host port needs POSIX (clock_gettime)
CFLAGS = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-Wdouble-promotion", "-Wfloat-conversion", "-O1", "-g"]
SANITIZE = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all"]
ENV = {**os.environ, "ASAN_OPTIONS": "abort_on_error=0:detect_leaks=0", "UBSAN_OPTIONS": "halt_on_error=1"}
ATOL = 1e-4
torch.set_num_threads(1)

pytestmark = pytest.mark.skipif(CC is None, reason="needs a C compiler (apt-get install gcc)")


class Harness:
    def __init__(self, exe: Path, family: Path):
        self.exe = exe
        self.family = family

    def run(self, data: bytes, *args: str) -> str:
        r = subprocess.run([str(self.exe), *args], input=data, capture_output=True, env=ENV, timeout=60)
        assert r.returncode == 0 and not r.stderr, (r.returncode, r.stderr.decode(errors="replace")[-2000:])
        return r.stdout.decode("ascii")

    def replies(self, commands: list[str] | bytes) -> list[list[str]]:
        """Reply lines per command (the start-up lines are dropped)."""
        data = commands if isinstance(commands, bytes) else "".join(c + "%" for c in commands).encode()
        groups, cur = [], []
        for line in self.run(data).split("\r\n")[:-1]:
            if line == "m-ready":
                groups.append(cur)
                cur = []
            else:
                cur.append(line)
        assert cur == [], f"lines after the last m-ready: {cur}"
        assert groups[0] == ["m-timestamp-mode-performance", "m-init-done"]
        return groups[1:]

    def one(self, command: str) -> list[str]:
        return self.replies([command])[0]


def _compile(exe: Path, sources: list, flags: list[str]) -> None:
    base = [CC, *CFLAGS, *flags, *map(str, sources), "-o", str(exe), *LDLIBS]
    r = subprocess.run(base[:1] + SANITIZE + base[1:], capture_output=True, text=True)
    if r.returncode != 0:  # no sanitizer runtime here: plain build, still -Werror
        r = subprocess.run(base, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def host_harness(fam: Path, tmp_path_factory) -> Harness:
    """The host port (stdin/stdout) with `fam` exported as the model `kws`."""
    out = tmp_path_factory.mktemp("proto") / "model"
    export(open_family(fam), "c", out, name="kws")
    exe = out.parent / "host"
    srcs, incs = runtime(protocol=True)
    _compile(exe, [HOST / "main.c", HOST / "port.c", out / "kws.c", *srcs],
             [*incs, f"-I{HOST}", f"-I{out}", "-DREDS_MODEL=kws", '-DREDS_MODEL_HEADER="kws.h"',
              "-DREDS_INPUT_FLOATS=KWS_INPUT_SIZE"])
    return Harness(exe, fam)


@pytest.fixture(scope="module")
def harness(tmp_path_factory) -> Harness:
    return host_harness(shared_family(tmp_path_factory, "dnn-s", 0.25), tmp_path_factory)


@pytest.fixture(scope="module")
def formatter(tmp_path_factory) -> Harness:
    exe = tmp_path_factory.mktemp("format") / "format"
    _compile(exe, [FORMAT_HARNESS, RUNTIME / "reds_format.c"], ["-pedantic", f"-I{RUNTIME}"])
    return Harness(exe, None)


def _error(group: list[str]) -> str | None:
    errs = [l for l in group if l.startswith("m-error-")]
    return errs[0][len("m-error-"):] if errs else None


# ---- fuzz ------------------------------------------------------------------------------------
def _check_any(h: Harness, data: bytes) -> None:
    data += b"%"
    groups = h.replies(data)
    assert len(groups) == data.count(b"%")
    for g in groups:
        assert all(l.startswith("m-") for l in g), g
        errs = [l for l in g if l.startswith("m-error-")]
        assert errs == [] or g == errs[:1], g


FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FUZZ
@given(data=st.binary(max_size=400))
def test_random_bytes_always_answered(harness, data):
    _check_any(harness, data)


WORDS = ["name", "profile", "timestamp", "db", "load", "infer", "results", "info", "list", "select", "budget",
         "loop", "print", "0", "1", "2", "3", "255", "256", "4294967295", "4294967296", "-1", "+1", "0x10", "1e3",
         "00", "ff", "0000803f", "abc", "zz", "", "%"]
token = st.one_of(st.sampled_from(WORDS), st.integers(0, 2 ** 40).map(str),
                  st.text(alphabet="0123456789abcdefABCDEF", max_size=40),
                  st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=255), max_size=6))
command = st.lists(token, max_size=5).map(" ".join)


@FUZZ
@given(cmds=st.lists(command, max_size=12), ws=st.sampled_from(["", "\r\n", " ", "\n\t"]))
def test_command_like_strings_always_answered(harness, cmds, ws):
    _check_any(harness, (ws + "%").join(cmds).encode("latin-1"))


def test_overlong_line_is_discarded_up_to_percent(harness):
    g = harness.replies(("select 1 " + "x" * 500 + "%name%" + "y" * 161 + "%" + "z" * 160 + "%").encode())
    assert g[0] == ["m-error-line-too-long"]
    assert g[1] == ["m-name-reds-kws"]
    assert g[2] == ["m-error-line-too-long"]
    assert g[3] == ["m-error-unknown-command"]  # exactly 160 characters fit


def test_control_bytes_poison_a_command(harness):
    g = harness.replies(b"name\x00%na\x01me%name\x80%name\r\n%  name  %")
    assert [x[0] for x in g] == ["m-error-bad-character"] * 3 + ["m-name-reds-kws"] * 2


# ---- well-formed commands -------------------------------------------------------------------
def test_identity_and_costs(harness):
    fam = read_manifest(harness.family)
    g = harness.replies(["name", "profile", "info", "list", "timestamp"])
    assert g[0] == ["m-name-reds-kws"]
    assert g[1] == [f"m-profile-[reds-protocol-{abi.protocol_limit('VERSION')}]",
                    f"m-model-[kws {open_family(harness.family).hash}]"]
    info = fields(g[2][0])
    assert info["board"] == "host" and info["model"] == "kws"
    assert int(info["submodels"]) == len(fam.submodels) and int(info["active"]) == len(fam.submodels) - 1
    assert int(info["input"]) == int(np.prod(fam.input_shape)) and int(info["output"]) == fam.num_classes
    assert info["line"] == "160" and info["max_loop"] == "255"
    assert fields(g[3][0]) == {"n": str(len(fam.submodels)), "active": str(len(fam.submodels) - 1)}
    for line, (k, s) in zip(g[3][1:], enumerate(fam.submodels)):
        f = fields(line)
        assert (int(f["k"]), float(f["budget"]), int(f["macs"]), int(f["weight_bytes"]), int(f["arena_bytes"])) == \
            (k, s.budget, s.macs, s.weight_bytes, s.arena_bytes)
    assert re.fullmatch(r"m-lap-us-\d+", g[4][0])


def test_select_and_budget(harness):
    fam = read_manifest(harness.family)
    K = len(fam.submodels)
    macs = [s.macs for s in fam.submodels]
    g = harness.replies([f"select {k}" for k in range(K)] + [f"select {K}", "select 4294967296", "select",
                                                              "select 1 2", "select x",
                                                              f"budget {macs[1]}", f"budget {macs[1] - 1}",
                                                              f"budget {macs[0] - 1}", "budget 4294967295",
                                                              "list"])
    for k in range(K):
        f = fields(g[k][0])
        assert g[k][0].startswith("m-select ") and f["k"] == str(k) and int(f["cycles"]) >= 0
    assert [_error(x) for x in g[K:K + 5]] == ["out-of-range", "bad-argument", "wrong-number-of-arguments",
                                               "wrong-number-of-arguments", "bad-argument"]
    b = [fields(x[0]) for x in g[K + 5:K + 9]]
    assert (b[0]["k"], b[0]["macs"]) == ("1", str(macs[1]))
    assert b[1]["k"] == "0"
    assert g[K + 7] == ["m-error-no-submodel-fits"]
    assert b[3]["k"] == str(K - 1)
    assert fields(g[K + 9][0])["active"] == str(K - 1)  # the refused budget left the active submodel alone


def _db_commands(x: np.ndarray, chunk: int = 64) -> list[str]:
    data = np.ascontiguousarray(x, dtype="<f4").tobytes()
    return [f"db load {len(data)}"] + ["db " + data[i:i + chunk].hex() for i in range(0, len(data), chunk)]


def test_outputs_match_pytorch_bit_exact_text(harness):
    fam, net = load(harness.family)
    x = np.random.default_rng(3).standard_normal(tuple(fam.input_shape)).astype(np.float32)
    cmds = ["results"] + _db_commands(x)
    K = len(fam.submodels)
    for k in range(K):
        cmds += [f"select {k}", "infer 2 1", "loop 3", "results"]
    g = harness.replies(cmds)
    assert g[0] == ["m-error-no-results"]
    n_db = len(_db_commands(x))
    assert g[1] == [f"m-[Expecting {x.size * 4} bytes]"]
    assert all(r == [] for r in g[2:n_db]) and g[n_db] == ["m-load-done"]
    with torch.no_grad():
        for k, s in enumerate(fam.submodels):
            sel, inf, lp, res = g[n_db + 1 + 4 * k: n_db + 5 + 4 * k]
            assert fields(sel[0])["k"] == str(k)
            assert inf[:3] == ["m-warmup-start-1", "m-warmup-done", "m-infer-start-2"]
            t0, t1 = (int(l.rsplit("-", 1)[1]) for l in inf[3:5])
            assert inf[5] == "m-infer-done" and t1 >= t0
            assert fields(inf[6]) | {"cycles": "0"} == {"k": str(k), "n": "2", "cycles": "0"}
            assert inf[7:] == res  # infer ends with the results
            lf = {key: int(v) for key, v in fields(lp[0]).items()}
            assert lf["k"] == k and lf["n"] == 3 and lf["min"] <= lf["median"] <= lf["max"] <= lf["total"]
            got = np.array(floats_from_bits(res[1]), dtype=np.float32)
            text = np.array([np.float32(v) for v in bracket_list(res[0])], dtype=np.float32)
            assert got.tobytes() == text.tobytes()  # the decimal text is exact
            ref = net(torch.from_numpy(x[None]), s.widths, bn=k)[0].numpy()
            assert np.max(np.abs(got - ref)) <= ATOL
            assert int(np.argmax(got)) == int(np.argmax(ref))


def test_db_mistakes(harness):
    fam = read_manifest(harness.family)
    n = int(np.prod(fam.input_shape)) * 4
    g = harness.replies(["db 00", f"db load {n + 1}", "db load 0", "db load", "db load x", "db load 4",
                         "infer 1 0", "loop 1", "db 0000", "db 0g", "db 000", "db 000000", "db 0000",
                         "db 00", "infer 0 0", "infer 1 100001", "loop 0", "loop 256", "loop 1", "db print", "db print x"])
    assert [_error(x) for x in g] == [
        "no-load", "out-of-range", "out-of-range", "bad-argument", "bad-argument", None,
        "load-incomplete", "load-incomplete", None, "bad-hex", "bad-hex", "too-much-data", None,
        "no-load", "out-of-range", "out-of-range", "out-of-range", "out-of-range", None, None, "bad-argument"]
    assert g[5] == ["m-[Expecting 4 bytes]"] and g[12] == ["m-load-done"]
    assert g[19] == ["m-buffer-00000000"]
    big = harness.replies(_db_commands(np.arange(20, dtype=np.float32)) + ["db print"])[-1]
    assert "".join(l[len("m-buffer-"):] for l in big) == np.arange(20, dtype="<f4").tobytes().hex()
    assert [len(l) for l in big] == [len("m-buffer-") + 64] * 2 + [len("m-buffer-") + 32]


# ---- number formatting ------------------------------------------------------------------------
def _py_g9(v: np.float32) -> str:
    return "nan" if np.isnan(v) else "%.9g" % float(v)


def test_float_format_is_printf_g9(formatter):
    rng = np.random.default_rng(0)
    bits = np.concatenate([rng.integers(0, 2 ** 32, 20000, dtype=np.uint64).astype(np.uint32),
                           np.array([0, 0x80000000, 1, 0x807FFFFF, 0x00800000, 0x7F7FFFFF, 0x7F800000, 0xFF800000,
                                     0x7FC00000, 0xFFC00001, 0x3F800000, 0x3DCCCCCD, 0x4B7FFFFF, 0x4CBEBC20,
                                     0x4E6E6B28, 0x38D1B717, 0x3A83126F], dtype=np.uint32)])
    # exact ties at the 10th significant digit: rounded half to even, down and up
    ties = np.array([123456.0625, 100000.0625, 654321.1875, -654321.1875], dtype=np.float32).view(np.uint32)
    vals = np.concatenate([bits, ties]).view(np.float32)
    got = formatter.run(vals.astype("<f4").tobytes(), "--floats").splitlines()
    want = [_py_g9(v) for v in vals]
    bad = [(hex(int(b)), g, w) for b, g, w in zip(vals.view(np.uint32), got, want) if g != w]
    assert not bad, bad[:10]
    for b, text in zip(vals.view(np.uint32), got):  # and every finite one reads back exactly
        if text not in ("nan", "inf", "-inf"):
            assert np.float32(text).view(np.uint32) == b


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(vals=st.lists(st.floats(width=32, allow_nan=False), min_size=1, max_size=200))
def test_float_format_hypothesis(formatter, vals):
    arr = np.array(vals, dtype=np.float32)
    assert formatter.run(arr.astype("<f4").tobytes(), "--floats").splitlines() == [_py_g9(v) for v in arr]


def test_u64_format(formatter):
    vals = [0, 1, 9, 10, 99, 100, 2 ** 32 - 1, 2 ** 32, 10 ** 19, 2 ** 64 - 1] + \
        [int(v) for v in np.random.default_rng(1).integers(0, 2 ** 63, 200, dtype=np.uint64)]
    data = b"".join(struct.pack("=Q", v) for v in vals)
    assert formatter.run(data, "--u64").splitlines() == [str(v) for v in vals]


def test_help_input_bytes_and_deadline_before_costs(harness):
    g = harness.replies(["help", "info", "deadline 1000", "cost 0 10", "deadline 1000"])
    assert [l for l in g[0]][:2] == ["m-help name%", "m-help profile%"] and "m-help help%" in g[0]
    info = fields(g[1][0])
    assert int(info["input_bytes"]) == 4 * int(info["input"])  # what `db load` counts
    assert g[2] == ["m-error-no-costs"]  # says why, before any cost is known
    assert g[4][0].startswith("m-deadline k=0")


# ---- layers%: cycles per layer -----------------------------------------------------------------
def _layer_rows(group: list[str]) -> tuple[dict, list[dict], dict]:
    """(the m-layers header's fields, one dict per m-layer row, the m-layers-total fields)."""
    assert group[0].startswith("m-layers ") and group[-1].startswith("m-layers-total "), group
    rows = [fields(l) for l in group[1:-1]]
    assert all(l.startswith("m-layer i=") for l in group[1:-1]), group
    return fields(group[0]), rows, {k: int(v) for k, v in fields(group[-1]).items()}


def fused_rows(spec) -> list[bool]:
    """Which spec layers run in the store step of a layer before them: a batch norm right
    after a conv, depthwise or dense layer, and an activation right after one of those or
    after a batch norm, unless the layer before is kept for a residual add (no elastic
    depth here: every submodel runs every layer)."""
    from reds.ir.spec import BatchNorm, Conv2d, Dense, DepthwiseConv2d, LeakyReLU, ReLU

    out, prev = [], None  # prev: what the open chain can take next
    for i, layer in enumerate(spec.layers):
        op = layer.op
        kept = i > 0 and spec.layers[i - 1].name in spec.saved
        fused = prev is not None and not kept and isinstance(op, prev)
        out.append(fused)
        if isinstance(op, (Conv2d, DepthwiseConv2d, Dense)):
            prev = (BatchNorm, ReLU, LeakyReLU)
        elif isinstance(op, BatchNorm):
            prev = (ReLU, LeakyReLU)
        else:
            prev = None
    return out


def _check_layer_rows(spec, rows: list[dict], total: dict) -> None:
    """One row per spec layer, in order, with its op; a layer run in the store step of the
    one before (fused_rows) says so; the rows' cycles add up to the total line's."""
    from reds.export.c.lower import OP_ENUM

    assert [r["i"] for r in rows] == [str(i) for i in range(len(spec.layers))]
    ops = [OP_ENUM[type(l.op)][len("REDS_OP_"):].lower() for l in spec.layers]
    assert [r["op"] for r in rows] == ops
    for i, (r, fused) in enumerate(zip(rows, fused_rows(spec))):
        assert (r["cycles"] == "fused") == fused, (i, r)
    assert any(r["cycles"] == "fused" for r in rows)
    assert sum(int(r["cycles"]) for r in rows if r["cycles"] != "fused") <= total["cycles"]


def test_layers_rows_and_mistakes(harness):
    """layers%: refused before an input is loaded and while a load is incomplete; then a row
    per layer (and the input's), the rows' sum next to an ordinary run's cycles, and the
    outputs of the profiled run are the ordinary run's, bit for bit."""
    f = open_family(harness.family)
    x = np.random.default_rng(3).standard_normal(tuple(f.manifest.input_shape)).astype(np.float32)
    db = _db_commands(x)
    g = harness.replies(["layers", "layers 1", "db load 8", "layers", *db, "layers", "results", "infer 1 0",
                         "select 0", "layers"])
    assert g[0] == ["m-error-no-input"] and g[1] == ["m-error-wrong-number-of-arguments"]
    assert g[3] == ["m-error-load-incomplete"]
    at = 4 + len(db)
    head, rows, total = _layer_rows(g[at])
    K = len(f.submodels)
    assert head == {"k": str(K - 1), "layers": str(len(f.spec.layers))}
    assert rows[0] == {"i": "input", "op": "copy", "cycles": rows[0]["cycles"]}  # dnn-s: no normalisation
    _check_layer_rows(f.spec, rows[1:], total)
    assert total["cycles"] == sum(int(r["cycles"]) for r in rows if r["cycles"] != "fused")
    assert total["run"] > 0 and "overhead" in total
    assert g[at + 1][1] == g[at + 2][-1]  # m-bits: the profiled run's outputs are the ordinary run's
    head0, rows0, _ = _layer_rows(g[at + 4])
    assert head0["k"] == "0" and len(rows0) == len(rows)


def test_layers_in_pcm_mode(kws_harness):
    """In pcm mode the front end is a row of its own, and the input row is its normalisation;
    switching to pcm empties db: no input until a clip is loaded."""
    f = open_family(kws_harness.family)
    pcm = _clip(1)
    g = kws_harness.replies(["input pcm", "layers", *_pcm_commands(pcm), "layers", "help"])
    assert g[1] == ["m-error-no-input"]
    _, rows, total = _layer_rows(g[2 + len(_pcm_commands(pcm))])
    assert rows[0]["i"] == "frontend" and rows[0]["op"] == "mfcc" and int(rows[0]["cycles"]) > 0
    assert rows[1]["i"] == "input" and rows[1]["op"] == "normalise"
    _check_layer_rows(f.spec, rows[2:], total)
    assert "m-help layers%" in g[-1]


# ---- the front end: a PCM clip in (`input pcm`) ---------------------------------------------
@pytest.fixture(scope="module")
def kws_harness(tmp_path_factory) -> Harness:
    """The host port with a keyword-spotting family that records REDS's MFCC front end and
    an input normalisation: the export carries the front end's tables and buffers."""
    from families import make_family
    from reds.ir.inputs import MfccFrontEnd

    rng = np.random.default_rng(4)
    norm = {"axis": "width", "mean": (rng.normal(0, 3, 10) - 5).tolist(), "std": rng.uniform(1, 5, 10).tolist()}
    fam = make_family(tmp_path_factory.mktemp("kws"), "dscnn-s", 0.25, input_norm=norm,
                      frontend=MfccFrontEnd(20).to_json())
    return host_harness(fam, tmp_path_factory)


def _clip(seed: int = 0) -> np.ndarray:
    """A second of a decaying chirp over noise, 16-bit."""
    rng = np.random.default_rng(seed)
    t = np.arange(16000) / 16000
    x = 9000 * np.sin(2 * np.pi * 300 * t * (1 + 2 * t)) * np.exp(-2 * t) + rng.normal(0, 200, 16000)
    return np.clip(x, -32768, 32767).astype(np.int16)


def _pcm_commands(pcm: np.ndarray) -> list[str]:
    data = pcm.astype("<i2").tobytes()
    return [f"db load {len(data)}"] + ["db " + data[i:i + 64].hex() for i in range(0, len(data), 64)]


def test_input_without_a_front_end(harness):
    g = harness.replies(["input", "input pcm", "input bogus", "input features", "info"])
    assert fields(g[0][0]) == {"kind": "features", "bytes": str(4 * 250), "frontend": "none"}
    assert g[1] == ["m-error-no-frontend"] and g[2] == ["m-error-bad-argument"]
    assert fields(g[3][0])["kind"] == "features"
    assert fields(g[4][0])["frontend"] == "none" and fields(g[4][0])["pcm_samples"] == "0"


def test_pcm_through_the_front_end_matches_pytorch(kws_harness):
    """PCM -> the device's MFCC -> its normalisation -> every submodel: the same logits as
    PyTorch's MFCC of the clip through the family (1e-3, the same argmax); the front end's
    cycles are reported apart; `input features` goes back to features."""
    from reds.bench.bench import AUDIO_TOLERANCE, clip_features

    f = open_family(kws_harness.family)
    pcm = _clip()
    cmds = ["input pcm", "db load 32001", *_pcm_commands(pcm)]
    K = len(f.submodels)
    for k in range(K):
        cmds += [f"select {k}", "infer 1 0", "loop 2"]
    x = clip_features(f, pcm)
    cmds += ["input features", "infer 1 0", *_db_commands(x), "infer 1 0"]
    g = kws_harness.replies(cmds)
    assert fields(g[0][0]) == {"kind": "pcm", "bytes": "32000", "frontend": "mfcc"}
    assert g[1] == ["m-error-out-of-range"]  # more than a clip
    n_db = len(_pcm_commands(pcm))
    at = 2 + n_db
    assert g[at - 1] == ["m-load-done"]
    with torch.no_grad():
        ref = [f.logits(torch.from_numpy(x[None]), k)[0].numpy() for k in range(K)]
    for k in range(K):
        _, inf, lp = g[at + 3 * k: at + 3 * k + 3]
        info = {key: int(v) for key, v in fields(inf[6]).items()}
        assert info["k"] == k and 0 < info["frontend"] <= info["cycles"]
        got = np.array(floats_from_bits(inf[8]), dtype=np.float32)
        assert np.abs(got - ref[k]).max() <= AUDIO_TOLERANCE and int(np.argmax(got)) == int(np.argmax(ref[k]))
        lf = {key: int(v) for key, v in fields(lp[0]).items()}
        assert 0 < lf["frontend_total"] <= lf["total"]
    rest = g[at + 3 * K:]
    assert fields(rest[0][0])["kind"] == "features"
    assert rest[1][:3] == ["m-warmup-start-0", "m-warmup-done", "m-infer-start-1"]  # features again: no clip
    feats = np.array(floats_from_bits(rest[-1][8]), dtype=np.float32)  # the same features, sent as floats
    assert np.abs(feats - ref[-1]).max() <= 1e-4
