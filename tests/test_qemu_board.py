"""The virtual board qemu-m4 end to end: `reds build`, QEMU, the protocol, `reds bench`.

Needs qemu-system-arm and gcc-arm-none-eabi + libnewlib-arm-none-eabi (skips, naming them,
without). Checked:
- `reds bench` on a small DS-CNN family: every submodel's outputs on the device match
  PyTorch (1e-4, same argmax); cycles are deterministic instruction counts; switching
  costs the same few cycles for every ordered pair (an index store, O(1)); `--profile`:
  cycles per layer that add up to a run's within one timer overhead per layer;
- the 64-bit timer across SysTick wraps: an inference of more than 2^24 ticks measures the
  same in every run, and close to the emulator's own count;
- garbage bytes over the socket get error replies, one `m-ready` per '%', and the board
  keeps answering correctly afterwards;
- `reds build` refuses clearly (one line, exit 2) a family that does not fit, before
  exporting when the weights alone are too big, after linking otherwise.
Board facts that need no emulator (registry, linker script vs board.json, toolchain
message) are checked without it.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from families import shared_family
from reds.build import build
from reds.build.boards import get_board, list_boards
from reds.build.tools import missing_toolchain
from reds.cli import main
from reds.device.emulator import check_emulator, emulate, free_port, qemu_command, stop_process
from reds.bench.bench import run_bench
from reds.device.link import fields
from reds.errors import RedsError
from reds.family import open as open_family, read_manifest

ROOT = Path(__file__).resolve().parents[1]
BOARD = get_board("qemu-m4")
MISSING = []
if shutil.which("qemu-system-arm") is None:
    MISSING.append("qemu-system-arm")
if missing_toolchain(BOARD):
    MISSING += ["gcc-arm-none-eabi", "libnewlib-arm-none-eabi"]
needs_qemu = pytest.mark.skipif(bool(MISSING), reason=f"needs Debian packages {' '.join(MISSING)} "
                                f"(apt-get install {' '.join(MISSING)})")
torch.set_num_threads(1)


# ---- without the emulator -----------------------------------------------------------------------
def test_board_registry_and_linker_script_agree():
    assert "qemu-m4" in list_boards()
    b = BOARD
    assert (b.flash_bytes, b.ram_bytes, b.clock_hz, b.timer, b.cycle) == \
        (4 * 2 ** 20, 4 * 2 ** 20, 25_000_000, "systick-icount", "instruction")
    ld = (b.folder / b.linker_script).read_text()
    sizes = {m[0]: int(m[1]) * 2 ** 20 for m in re.findall(r"(\w+)\s+\(\w+\)\s*:\s*ORIGIN = \w+, LENGTH = (\d+)M", ld)}
    assert sizes == {"FLASH": b.flash_bytes, "RAM": b.ram_bytes}
    assert int(re.search(r"STACK_SIZE = (0x[0-9a-fA-F]+);", ld)[1], 16) == b.stack_bytes
    for s in b.sources:
        assert (b.folder / s).is_file()
    assert b.cycles_per_tick() == pytest.approx(5 / 16)  # icount shift 7: an instruction is 3.2 ticks
    cmd = qemu_command(b, "fw.elf", 1234)
    assert cmd[:3] == ["qemu-system-arm", "-M", "mps2-an386"] and "shift=7" in cmd


def test_unknown_board_and_missing_toolchain_are_clear(tmp_path):
    with pytest.raises(RedsError, match="unknown board 'nope'.*qemu-m4"):
        get_board("nope")
    with pytest.raises(RedsError, match=r"^no-such-qemu not found: install qemu-system-arm"):
        check_emulator(replace(BOARD, emulator={**BOARD.emulator, "command": "no-such-qemu"}))
    fake = replace(BOARD, toolchain={**BOARD.toolchain, "cc": "no-such-arm-gcc"})
    assert missing_toolchain(fake) == ("no-such-arm-gcc not found: install gcc-arm-none-eabi libnewlib-arm-none-eabi "
                                       "(Debian/Ubuntu: apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi)")


# ---- with it ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def fam(tmp_path_factory) -> Path:
    return shared_family(tmp_path_factory, "dscnn-s", 0.25)


@pytest.fixture(scope="module")
def built(fam, tmp_path_factory):
    return build(open_family(fam), "qemu-m4", tmp_path_factory.mktemp("qemu") / "build")


@needs_qemu
def test_bench_end_to_end(fam, built, tmp_path, capsys):
    out = tmp_path / "bench.json"
    rc = main(["bench", str(fam), "--build", built.out, "--runs", "3", "--json", str(out)])
    text = capsys.readouterr().out
    assert rc == 0, text
    assert text.startswith("up to date: ")  # the fixture's build was reused
    rep = json.loads(out.read_text())
    manifest = read_manifest(fam)
    assert rep["board"] == "qemu-m4" and rep["timer"] == "systick-icount" and rep["cycle"] == "instruction"
    assert rep["outputs_match"] and len(rep["submodels"]) == len(manifest.submodels)
    for r, s in zip(rep["submodels"], manifest.submodels):
        assert r["macs"] == s.macs and r["max_abs_diff"] <= 1e-4 and r["argmax_match"]
        assert 0 < r["cycles_min"] <= r["cycles_median"] <= r["cycles_max"]
        assert r["cycles_max"] - r["cycles_min"] <= 50  # deterministic but for a SysTick interrupt or two
        assert r["us_median"] == pytest.approx(r["cycles_median"] / 25.0)
    cyc = [r["cycles_median"] for r in rep["submodels"]]
    assert cyc == sorted(cyc)  # more MACs, more cycles
    sw = rep["switch"]
    assert len(sw["pairs"]) == 6 and sw["max"] <= 64 and sw["min"] == sw["max"]  # O(1): same for every pair
    assert "every submodel matches PyTorch" in text and "ordered pairs" in text


@needs_qemu
def test_bench_profile_per_layer(fam, built, tmp_path, capsys):
    """`reds bench --profile`: per submodel, a row per layer from the device's timer; the
    rows add up to an ordinary run's instructions within one timer overhead per row (and a
    few instructions of timing code per layer); convolutions cost more than activations;
    the table is printed and in the JSON report."""
    out = tmp_path / "bench.json"
    rc = main(["bench", str(fam), "--build", built.out, "--runs", "1", "--profile", "--json", str(out)])
    text = capsys.readouterr().out
    assert rc == 0, text
    rep = json.loads(out.read_text())
    spec = open_family(fam).spec
    prof = rep["profile"]
    assert prof["supported"] and [p["index"] for p in prof["submodels"]] == list(range(len(rep["submodels"])))
    for p, sub in zip(prof["submodels"], rep["submodels"]):
        rows = p["layers"]
        assert [r["name"] for r in rows] == ["input"] + [l.name for l in spec.layers]
        assert sum(r["macs"] for r in rows) == sub["macs"]
        assert p["sum_cycles"] == sum(r["cycles"] for r in rows if not r["fused"])
        n = p["rows_timed"]
        assert abs(p["sum_cycles"] - p["run_cycles"]) <= n * p["timer_overhead_cycles"] + 4 * n, p
        assert abs(p["run_cycles"] - sub["cycles_median"]) <= 50  # the same run as `loop`
        by_op: dict[str, list[int]] = {}
        for r in rows:
            if not r["fused"]:
                by_op.setdefault(r["op"], []).append(r["cycles"])
        assert min(by_op["conv2d"]) > max(by_op.get("relu", [0]))  # a conv outweighs an activation
        # every batch norm and ReLU runs in the store step of the conv before it: no row of its own
        assert "scale_bias" not in by_op and "relu" not in by_op
        assert {r["op"] for r in rows if r["fused"]} == {"scale_bias", "relu"}
        assert sum(r["pct"] for r in rows if not r["fused"]) == pytest.approx(100, abs=1)
    assert "profile of submodel 0" in text and "fused" in text and "conv0" in text and "ins/MAC" in text


def _speech_or_chirp(path: Path) -> str:
    """A WAV of one spoken word (espeak-ng, when installed) or of a chirp over noise."""
    import wave

    from reds.data import synth_kws

    try:
        synth_kws._tools()
        audio, rate = synth_kws.speak_cli({"word": "yes", "voice": "en", "pitch": 50, "speed": 160, "amplitude": 90})
        pcm, what = synth_kws._place(synth_kws._trim(synth_kws.resample(audio, rate)), 0.3), "speech"
    except Exception:  # noqa: BLE001 -- no espeak-ng here: a test signal is enough
        t = np.arange(16000) / 16000
        pcm = 9000 * np.sin(2 * np.pi * 300 * t * (1 + 2 * t)) * np.exp(-2 * t)
        pcm, what = pcm + np.random.default_rng(0).normal(0, 200, 16000), "chirp"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(16000)
        w.writeframes(np.clip(pcm, -32768, 32767).astype("<i2").tobytes())
    return what


@needs_qemu
def test_bench_feeds_audio_through_the_devices_front_end(tmp_path, capsys):
    """A family trained on audio carries its MFCC front end to the virtual board: a WAV fed
    over serial becomes features on the device, and every submodel's logits match
    PyTorch's MFCC of the same clip; the front end's instructions are reported apart."""
    from families import make_family
    from reds.ir.inputs import MfccFrontEnd

    rng = np.random.default_rng(4)
    norm = {"axis": "width", "mean": (rng.normal(0, 3, 10) - 5).tolist(), "std": rng.uniform(1, 5, 10).tolist()}
    kws = make_family(tmp_path, "dscnn-s", 0.25, input_norm=norm, frontend=MfccFrontEnd(20).to_json())
    wav = tmp_path / "clip.wav"
    what = _speech_or_chirp(wav)
    out = tmp_path / "bench.json"
    rc = main(["bench", str(kws), "--build", str(tmp_path / "b"), "--runs", "2", "--audio", str(wav),
               "--json", str(out)])
    text = capsys.readouterr().out
    assert rc == 0, text
    rep = json.loads(out.read_text())
    assert rep["input"] == "pcm" and rep["outputs_match"], rep
    fe = [r["frontend_cycles"] for r in rep["submodels"]]
    assert max(fe) - min(fe) <= 50 and 0 < fe[0] < rep["submodels"][0]["cycles_median"]  # one front end for all
    # (deterministic instruction counts, but for a SysTick interrupt or two)
    assert "MFCC front end" in text
    print(f"{what}: front end {fe[0]:,.0f} instructions per 1 s clip; max |diff| "
          + ", ".join(f"{r['max_abs_diff']:.2g}" for r in rep["submodels"]))


@needs_qemu
def test_bench_audio_needs_a_front_end(fam, built, tmp_path, capsys):
    wav = tmp_path / "clip.wav"
    _speech_or_chirp(wav)
    assert main(["bench", str(fam), "--build", built.out, "--runs", "1", "--audio", str(wav)]) == 2
    assert "records no front end" in capsys.readouterr().err


@needs_qemu
def test_bench_opens_the_family_once(fam, tmp_path, monkeypatch, capsys):
    """A whole `reds bench` (build, export, reference outputs, device) parses family.json
    and reads the weights once (each layer takes the opened family, not a path)."""
    import reds.family

    manifests, weights = [], []
    read_manifest_, weight_bytes = reds.family.read_manifest, reds.family.OpenFamily._weight_bytes

    def counted_manifest(folder):
        manifests.append(folder)
        return read_manifest_(folder)

    def counted_weights(self):
        if self._weights is None:
            weights.append(self.dir)
        return weight_bytes(self)

    monkeypatch.setattr(reds.family, "read_manifest", counted_manifest)
    monkeypatch.setattr(reds.family.OpenFamily, "_weight_bytes", counted_weights)
    assert main(["bench", str(fam), "--build", str(tmp_path / "b"), "--runs", "1"]) == 0, capsys.readouterr()
    assert capsys.readouterr().out.startswith("built ")  # a fresh build, export included
    assert len(manifests) == 1 and len(weights) == 1


@needs_qemu
@pytest.mark.parametrize("shift", [0, 4, None])
def test_cycles_stay_instructions_under_another_icount_shift(fam, built, shift):
    """The firmware measures the -icount shift it runs under (board.json says 7): under
    another, it converts with that one; without -icount it says its cycles are unknown,
    and `reds bench` refuses to report them."""
    with emulate(BOARD, built.elf) as link:
        link.sync()
        want = link.select(0), link.loop(3)["median"]
    other = replace(BOARD, emulator={**BOARD.emulator, "icount_shift": shift})
    with emulate(other, built.elf) as link:
        link.sync()
        info = link.info()
        if shift is None:
            assert info["cycle"] == "unknown"
            with pytest.raises(RedsError, match="cannot tell what its cycles are"):
                run_bench(link, open_family(fam), runs=1)
            return
        assert info["cycle"] == "instruction"
        got = link.select(0), link.loop(3)["median"]
    tick = 40 / 2 ** shift  # instructions per timer tick: the resolution under this shift
    assert abs(got[1] - want[1]) <= max(2 * tick, 0.001 * want[1]), (got, want)
    assert abs(got[0] - want[0]) <= 2 * tick + 1


@needs_qemu
def test_a_long_infer_is_aborted_by_a_byte(fam, built):
    with emulate(BOARD, built.elf) as link:
        link.sync()
        n = 4 * int(link.info()["input"])
        link.load(bytes(n))
        link.write(b"infer 100000 100000%")
        time.sleep(0.5)
        link.write(b"%")
        lines = link.read_reply("infer", timeout=30)
        assert lines[-1] == "m-error-aborted", lines
        assert link.sync() == f"reds-{built.model}"


@needs_qemu
def test_garbage_then_still_answers(fam, built):
    rng = np.random.default_rng(7)
    garbage = bytes(rng.integers(0, 256, 3000, dtype=np.uint8)) + b"x" * 700 + b"%" + \
        b"select 99%loop 0%db zz%infer 1%budget 1%\x00\xff%"
    with emulate(BOARD, built.elf) as link:
        assert link.sync() == f"reds-{built.model}"
        link.write(garbage)
        replies = [link.read_reply("garbage") for _ in range(garbage.count(b"%"))]
        for r in replies:
            assert r == [] or all(l.startswith("m-") for l in r)
        assert replies[-7:] == [["m-error-line-too-long"], ["m-error-out-of-range"], ["m-error-out-of-range"],
                                ["m-error-bad-hex"], ["m-error-wrong-number-of-arguments"],
                                ["m-error-no-submodel-fits"], ["m-error-bad-character"]]
        assert sum(r and r[0].startswith("m-error-") for r in replies) >= 7
        assert link.command("name") == [f"m-name-reds-{built.model}"]
        assert len(link.submodels()) == len(read_manifest(fam).submodels)
        assert fields(link.check("select 0")[0])["k"] == "0"


@needs_qemu
def test_timer_is_exact_across_wraps(built):
    """SysTick wraps every 2^24 ticks (5.2 M instructions). A timed batch of inferences
    longer than that must still equal the sum of its runs to a few instructions."""
    with emulate(BOARD, built.elf) as link:
        link.sync()
        link.load(bytes(4 * int(fields(link.check("info")[0])["input"])))
        k = len(link.submodels()) - 1
        link.select(k)
        s = link.loop(7)
        assert s["max"] - s["min"] <= 50, s
        n = 5_300_000 // s["median"] + 2  # enough runs to cross at least one wrap
        inf = link.check(f"infer {n} 0")
        total = int(fields([l for l in inf if l.startswith("m-infer ")][0])["cycles"])
        assert total > 5_300_000
        assert abs(total - n * s["median"]) <= n * 50  # a miscounted wrap is off by 5.2 M


@needs_qemu
def test_build_refuses_what_does_not_fit(fam, tmp_path, capsys):
    weights = read_manifest(fam).submodels[-1].weight_bytes
    out = tmp_path / "b1"
    assert main(["build", str(fam), "--out", str(out), "--flash", str(weights // 2)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and re.match(r"reds: error: .*does not fit qemu-m4 limited to .* its weights alone", err)
    assert not (out / "model").exists()  # refused before exporting
    assert main(["build", str(fam), "--out", str(out), "--flash", str(weights + 4096)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and re.search(r"the firmware does not fit .* it needs [\d,]+ B of flash", err)
    assert not (out / "firmware.elf").exists()
    assert main(["build", str(fam), "--out", str(out), "--ram", "20000"]) == 2
    assert "B of RAM" in capsys.readouterr().err


@needs_qemu
def test_bench_over_a_port(fam, built, capsys):
    """`reds bench --port URL`: what a real board gets, here against QEMU started by hand."""
    port = free_port()
    proc = subprocess.Popen(qemu_command(BOARD, built.elf, port), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        for _ in range(200):  # until QEMU listens (it starts the CPU once a client connects)
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) != 0:
                    time.sleep(0.05)
                    continue
            break
        # that probe was QEMU's one client; it is gone, and QEMU listens again for the next
        assert main(["bench", str(fam), "--port", f"socket://127.0.0.1:{port}", "--runs", "2"]) == 0
        out = capsys.readouterr().out
        assert "on qemu-m4 (socket://127.0.0.1:" in out and "every submodel matches PyTorch" in out
    finally:
        stop_process(proc)


@pytest.mark.skipif(not (os.environ.get("REDS_PORT") and os.environ.get("REDS_FAMILY")),
                    reason="a real board: set REDS_PORT=/dev/ttyACM0 and REDS_FAMILY=<family it runs>")
def test_real_board(capsys):
    assert main(["bench", os.environ["REDS_FAMILY"], "--port", os.environ["REDS_PORT"], "--runs", "5"]) == 0
