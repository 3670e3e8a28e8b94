"""The MFCC front end in C (firmware/src/reds_mfcc.c) against reds.data.mfcc.mfcc.

tests/c/mfcc_harness.c is compiled with reds_mfcc.c and the tables that
reds.export.c.frontend.emit_mfcc_c writes (standalone: none of the rest of the runtime),
for both strides, and fed int16 clips: espeak-ng speech (skipped without espeak-ng) and
deterministic signals (silence, tones, a chirp, white noise at several levels, clipping).

Tolerances, set a little above what was measured (gcc -O2 on x86-64; |coefficients| <= 87.4,
the value of coefficient 0 for an all-zero frame, sqrt(40) ln 1e-6):
- speech and signals with a noise floor (white noise from 1 to 40000 LSB rms, clipped tones, a
  full-scale square wave, clicks, silence): max |C - Python| <= ATOL = 1e-4 (measured: speech
  1.5e-5, 1.4e-5 on the frames that hold sound; the others <= 6.9e-5) and <= FLOOR_RTOL = 4e-6
  of the clip's largest |coefficient| (measured <= 1.9e-6, about 30 float32 ulps). Both sides
  are float32 with different FFTs (pocketfft vs the radix-2 FFT here, other summation orders),
  and the window differs from torch's by an ulp here and there (rounded once from float64
  here; torch computes it in float32).
- noise-free synthetic signals (pure tones, a chirp, constant full scale, a tone 68 dB above a
  faint noise floor): the bins away from the tone hold only windowed leakage, at float32
  rounding level (~1e-7 of the peak) in both implementations, and the log turns that rounding
  noise into differences of up to 0.12 (a 6 kHz tone, outside the 4 kHz band) on coefficients
  up to 67. There the bound is relative, max |C - Python| <= RTOL * max |Python| (RTOL = 3e-3,
  measured 1.8e-3), and the C must be no further from a float64 computation of the same
  features than Python's own float32 is: max |C - f64| <= 1.5 max |Python - f64| + ATOL
  (measured at most 1.12x; the C is the closer of the two on most of these signals).
"""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from reds.data.mfcc import dct_matrix, mel_filterbank, mfcc
from reds.export.c.frontend import FLOAT_TABLES, INT_TABLES, emit_mfcc_c, mfcc_tables

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "firmware" / "src"
HARNESS = ROOT / "tests" / "c" / "mfcc_harness.c"
CC = shutil.which("gcc") or shutil.which("cc")
ARM_CC, ARM_SIZE = shutil.which("arm-none-eabi-gcc"), shutil.which("arm-none-eabi-size")
CFLAGS = ["-O2", "-std=c99", "-pedantic", "-ffp-contract=fast", "-Wall", "-Wextra", "-Werror",
          "-Wdouble-promotion", "-Wfloat-conversion"]
M4 = ["-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16"]
STRIDES = (20, 40)
CLIP = 16000
ATOL, FLOOR_RTOL, RTOL, VS_F64 = 1e-4, 4e-6, 3e-3, 1.5
SILENT_C0 = float(np.sqrt(40.0) * np.log(1e-6))  # coefficient 0 of an all-zero frame

pytestmark = pytest.mark.skipif(CC is None, reason="needs a C compiler (apt-get install gcc)")


def _emit(folder: Path, stride_ms: int) -> Path:
    header, source = emit_mfcc_c("harness", stride_ms)
    (folder / "harness_mfcc.h").write_text(header)
    (folder / "harness_mfcc.c").write_text(source)
    return folder / "harness_mfcc.c"


@pytest.fixture(scope="module")
def harness(tmp_path_factory):
    """stride_ms -> the compiled harness."""
    exes = {}
    for stride in STRIDES:
        d = tmp_path_factory.mktemp(f"mfcc{stride}")
        tables = _emit(d, stride)
        exe = d / "mfcc_harness"
        r = subprocess.run([CC, *CFLAGS, f"-I{SRC}", f"-I{d}", str(HARNESS), str(SRC / "reds_mfcc.c"),
                            str(tables), "-lm", "-o", str(exe)], check=False, capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        exes[stride] = exe
    return exes


def run_c(exe: Path, clips: np.ndarray, stride_ms: int, n: int = CLIP) -> np.ndarray:
    t = mfcc_tables(stride_ms)
    r = subprocess.run([str(exe), str(n)], input=np.ascontiguousarray(clips, dtype=np.int16).tobytes(),
                       check=False, capture_output=True)
    assert r.returncode == 0, f"harness exit {r.returncode} (3: frame and clip functions disagree)"
    return np.frombuffer(r.stdout, dtype=np.float32).reshape(len(clips), t["frames"], t["n_mfcc"])


def run_py(clips: np.ndarray, stride_ms: int) -> np.ndarray:
    """As speech_commands.Featurizer, less the normalisation: raw / 32768, then mfcc."""
    return mfcc(torch.from_numpy(clips.astype(np.int16)).float() / 32768.0, stride_ms)[:, 0].numpy()


def run_f64(clips: np.ndarray, stride_ms: int) -> np.ndarray:
    """The same features computed in float64 (numpy's FFT), with the same (float32) tables."""
    t = mfcc_tables(stride_ms)
    x = clips.astype(np.float64) / 32768.0
    frames = np.lib.stride_tricks.sliding_window_view(x, t["window"], axis=1)[:, ::t["stride"]][:, :t["frames"]]
    mag = np.abs(np.fft.rfft(frames * t["window_fn"].astype(np.float64), n=t["n_fft"]))[..., :t["n_bins"]]
    mel = mag @ mel_filterbank().numpy().astype(np.float64)
    return np.log(mel + t["log_offset"]) @ dct_matrix().numpy().astype(np.float64)


def _int16(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round(x), -32768, 32767).astype(np.int16)


def floor_signals() -> dict[str, np.ndarray]:
    """Signals with a noise floor (or none at all: silence), where C and Python agree to ATOL."""
    rng = np.random.default_rng(16)
    t = np.arange(CLIP) / CLIP
    out = {"silence": np.zeros(CLIP)}
    for sd in (1, 30, 1000, 8000):
        out[f"noise_sd{sd}"] = rng.normal(0.0, sd, CLIP)
    out["noise_clipped"] = rng.normal(0.0, 40000, CLIP)  # a third of the samples at full scale
    out["tone300_clipped"] = 3 * 32767 * np.sin(2 * np.pi * 300 * t)
    out["square250_full_scale"] = np.where(np.sin(2 * np.pi * 250 * t) >= 0, 32767, -32768)
    clicks = np.zeros(CLIP)
    clicks[::1234] = 32767
    out["clicks"] = clicks
    return {k: _int16(v) for k, v in out.items()}


def pure_signals() -> dict[str, np.ndarray]:
    """Noise-free synthetic signals: agreement relative to the coefficients' range (RTOL)."""
    t = np.arange(CLIP) / CLIP
    out = {f"tone{f}": 0.5 * 32767 * np.sin(2 * np.pi * f * t + 0.3) for f in (100, 440, 1000, 2500, 3900, 6000)}
    out["tone1000_quiet"] = 33 * np.sin(2 * np.pi * 1000 * t)
    out["chirp_20_8000"] = 0.7 * 32767 * np.sin(2 * np.pi * (20 * t + 0.5 * (8000 - 20) * t ** 2))
    out["dc_min"] = np.full(CLIP, -32768.0)
    # 68 dB above a faint noise floor: still mostly leakage at float32 rounding level
    out["tone1000_in_faint_noise"] = 8000 * np.sin(2 * np.pi * 1000 * t) + np.random.default_rng(16).normal(0.0, 3, CLIP)
    return {k: _int16(v) for k, v in out.items()}


def speech_clips() -> dict[str, np.ndarray]:
    """A few espeak-ng words placed in 1 s clips as synth-kws makes them (resampled, trimmed)."""
    from reds.data import synth_kws as sk

    engine = sk.engine()  # the process's one engine: a second LibEspeak would leave a dangling callback
    speak = engine.speak if engine is not None else sk.speak_cli
    out = {}
    for i, (word, voice) in enumerate((("yes", "en"), ("left", "en-us"), ("stop", "en"), ("seven", "en-us"))):
        job = {"word": word, "voice": voice, "pitch": 30 + 15 * i, "speed": 140 + 15 * i, "amplitude": 70 + 8 * i}
        speech, rate = speak(job)
        out[f"speech_{word}_{voice}"] = sk._place(sk._trim(sk.resample(speech, rate)), 0.1 + 0.25 * i)
    return out


def _compare(harness, cases: dict[str, np.ndarray], stride: int):
    clips = np.stack(list(cases.values()))
    c = run_c(harness[stride], clips, stride).astype(np.float64)
    py = run_py(clips, stride).astype(np.float64)
    f64 = run_f64(clips, stride)
    rows = []
    for i, name in enumerate(cases):
        rows.append((name, np.abs(c[i] - py[i]).max(), np.abs(py[i]).max(), np.abs(c[i] - f64[i]).max(),
                     np.abs(py[i] - f64[i]).max()))
        sounding = py[i][:, 0] > SILENT_C0 + 1.0  # frames with any energy (all-zero frames: c0 = -87.4)
        on = f"{np.abs(c[i] - py[i])[sounding].max():.2e}" if sounding.any() else "-"
        print(f"stride {stride} ms {name:24s} max|C-py| {rows[-1][1]:.2e} (sounding frames {sounding.sum():2d}: {on})"
              f"  max|py| {rows[-1][2]:5.1f}  max|C-f64| {rows[-1][3]:.2e}  max|py-f64| {rows[-1][4]:.2e}")
    return rows


@pytest.mark.parametrize("stride", STRIDES)
def test_signals_with_a_noise_floor(harness, stride):
    for name, diff, scale, *_ in _compare(harness, floor_signals(), stride):
        assert diff <= ATOL, f"{name}: max |C - Python| = {diff:.3g} > {ATOL}"
        assert diff <= FLOOR_RTOL * scale, f"{name}: max |C - Python| = {diff:.3g} > {FLOOR_RTOL} x {scale:.3g}"


@pytest.mark.parametrize("stride", STRIDES)
def test_pure_synthetic_signals(harness, stride):
    for name, diff, scale, c64, py64 in _compare(harness, pure_signals(), stride):
        assert diff <= RTOL * scale, f"{name}: max |C - Python| = {diff:.3g} > {RTOL} x {scale:.3g}"
        assert c64 <= VS_F64 * py64 + ATOL, f"{name}: C is {c64:.3g} from float64, Python {py64:.3g}"


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs espeak-ng (apt-get install espeak-ng)")
@pytest.mark.parametrize("stride", STRIDES)
def test_synthesised_speech(harness, stride):
    for name, diff, scale, *_ in _compare(harness, speech_clips(), stride):
        assert diff <= ATOL, f"{name}: max |C - Python| = {diff:.3g} > {ATOL}"
        assert diff <= FLOOR_RTOL * scale, f"{name}: max |C - Python| = {diff:.3g} > {FLOOR_RTOL} x {scale:.3g}"


def test_silence_is_log_offset(harness):
    """All-zero audio: every mel energy is 0, so coefficient 0 is sqrt(40) ln(1e-6), the rest 0."""
    c = run_c(harness[20], np.zeros((1, CLIP), np.int16), 20)
    want = np.zeros(10, np.float32)
    want[0] = SILENT_C0
    np.testing.assert_allclose(c[0], np.broadcast_to(want, c[0].shape), atol=3e-5)


def test_short_clip_is_padded_with_silence(harness):
    """n < 16000: the samples past n read as zero, bit for bit; and the harness checks that
    reds_mfcc_frame_f32 on each whole frame equals reds_mfcc_f32's row (exit 3 otherwise)."""
    speechlike = pure_signals()["tone1000_in_faint_noise"]
    for n in (12000, 639, 1):
        padded = speechlike.copy()
        padded[n:] = 0
        short = run_c(harness[20], speechlike[None, :n], 20, n=n)
        full = run_c(harness[20], padded[None], 20)
        assert short.tobytes() == full.tobytes(), n


def _c_arrays(source: str) -> dict[str, list[str]]:
    return {m.group(2): [v.strip() for v in m.group(4).split(",") if v.strip()]
            for m in re.finditer(r"static const (float|uint16_t) harness_mfcc_(\w+)\[(\d+)\] = \{(.*?)\};",
                                 source, re.DOTALL)}


@pytest.mark.parametrize("stride", STRIDES)
def test_tables_read_back_bit_exactly(tmp_path, stride):
    """The emitted literals, read by a C compiler, are the float32 tables bit for bit; and the
    tables are those of reds/data/mfcc.py (float64, rounded once)."""
    t = mfcc_tables(stride)
    _emit(tmp_path, stride)
    arrays = _c_arrays((tmp_path / "harness_mfcc.c").read_text())
    assert set(arrays) == set(FLOAT_TABLES + INT_TABLES)
    dump = tmp_path / "dump.c"  # the compiler's reading of every table, as bytes
    writes = "".join(f"    fwrite(c->{k}, sizeof *c->{k}, {t[k].size}, stdout);\n" for k in FLOAT_TABLES + INT_TABLES)
    dump.write_text('#include <stdio.h>\n#include "harness_mfcc.h"\nint main(void)\n{\n'
                    f"    const reds_mfcc_config_t *c = &harness_mfcc;\n{writes}"
                    "    fwrite(&c->log_offset, sizeof(float), 1, stdout);\n    return 0;\n}\n")
    exe = tmp_path / "dump"
    r = subprocess.run([CC, *CFLAGS, f"-I{SRC}", f"-I{tmp_path}", str(dump), str(tmp_path / "harness_mfcc.c"),
                        "-o", str(exe)], check=False, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    want = b"".join(t[k].tobytes() for k in FLOAT_TABLES + INT_TABLES) + np.float32(t["log_offset"]).tobytes()
    assert subprocess.run([str(exe)], capture_output=True, check=True).stdout == want
    for k in FLOAT_TABLES:  # and as text, each literal parses to the same bits
        assert np.array([float(v.rstrip("f")) for v in arrays[k]], np.float32).tobytes() == t[k].tobytes(), k

    n = np.arange(t["window"], dtype=np.float64)
    assert t["window_fn"].tobytes() == (0.5 - 0.5 * np.cos(2 * np.pi * n / t["window"])).astype(np.float32).tobytes()
    np.testing.assert_allclose(t["window_fn"], torch.hann_window(t["window"], periodic=True).numpy(), atol=2e-7)
    dense = np.zeros((t["n_bins"], t["n_mels"]), np.float32)
    at = 0
    for m, (first, count) in enumerate(zip(t["mel_first"], t["mel_count"])):
        dense[first:first + count, m] = t["mel_weights"][at:at + count]
        at += count
    assert at == t["mel_weights"].size and dense.tobytes() == mel_filterbank().numpy().tobytes()
    assert t["dct"].tobytes() == dct_matrix().numpy().tobytes()
    k = np.arange(t["n_fft"] // 2)
    w = np.exp(-2j * np.pi * k / t["n_fft"])
    np.testing.assert_array_equal(t["twiddle"][0::2], w.real.astype(np.float32) * (np.abs(w.real) > 1e-12))
    np.testing.assert_array_equal(t["twiddle"][1::2], w.imag.astype(np.float32) * (np.abs(w.imag) > 1e-12))
    bits = int(np.log2(t["n_fft"] // 2))
    assert [int(format(int(b), f"0{bits}b")[::-1], 2) for b in t["bitrev"]] == list(k)
    assert (t["frames"], t["stride"]) == ({20: (49, 320), 40: (25, 640)}[stride])


def flops_per_frame(t: dict) -> dict:
    """Float operations of one reds_mfcc_frame_f32, counted from its loops (an FMA is 2)."""
    m = t["n_fft"] // 2
    stages = m.bit_length() - 1
    trivial = sum(m // (2 ** s) for s in range(1, stages + 1))  # the j = 0 butterflies of each stage
    butterflies = stages * m // 2
    ops = {"window": t["window"], "fft": 4 * trivial + 10 * (butterflies - trivial), "split": 15 * t["n_bins"],
           "mel": 2 * int(t["mel_count"].sum()) + 2 * t["n_mels"], "dct": 2 * t["n_mels"] * t["n_mfcc"]}
    ops["total"] = sum(ops.values())
    ops.update(sqrtf=t["n_bins"], logf=t["n_mels"], int_to_float=t["window"])
    return ops


def test_sizes_and_costs():
    t = mfcc_tables(20)
    ops = flops_per_frame(t)
    assert t["mel_weights"].size == 493 and t["table_bytes"] == 11412
    assert ops["fft"] == 19974 and ops["total"] == 26335
    print(f"tables {t['table_bytes']} B; work {t['n_fft'] + t['n_bins']} floats; per frame {ops}")


@pytest.mark.skipif(ARM_CC is None or ARM_SIZE is None, reason="needs arm-none-eabi-gcc (apt-get install gcc-arm-none-eabi)")
def test_cortex_m4_code_size(tmp_path):
    objs = []
    for src in (SRC / "reds_mfcc.c", _emit(tmp_path, 20)):
        obj = tmp_path / (src.stem + ".o")
        r = subprocess.run([ARM_CC, *CFLAGS, *M4, f"-I{SRC}", f"-I{tmp_path}", "-c", str(src), "-o", str(obj)],
                           check=False, capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        objs.append(obj)
    out = subprocess.run([ARM_SIZE, "-B", *map(str, objs)], capture_output=True, text=True, check=True).stdout
    print(out)
    code = int(out.splitlines()[1].split()[0])
    tables = int(out.splitlines()[2].split()[0])
    assert code < 2048, out  # the front end's code alone
    assert tables == mfcc_tables(20)["table_bytes"] + 52, out  # + the config struct itself (52 B)


def test_generator_refuses_what_the_c_cannot_take():
    from reds.errors import RedsError

    for bad in (0, -20, 20.0, True, 1001, "20"):
        with pytest.raises(RedsError, match="stride"):
            mfcc_tables(bad)
    with pytest.raises(RedsError, match="name other than"):
        emit_mfcc_c("reds", 20)
    header, source = emit_mfcc_c("dscnn-s", 40)  # any text: a C identifier, as the model's name
    assert "extern const reds_mfcc_config_t dscnn_s_mfcc;" in header and "#define DSCNN_S_MFCC_FRAMES 25" in header
    assert '#include "dscnn_s_mfcc.h"' in source
