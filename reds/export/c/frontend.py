"""The MFCC front end's tables for the C runtime (`firmware/src/reds_mfcc.h`).

`reds_mfcc_f32` / `reds_mfcc_frame_f32` compute on the device the features that
`reds.data.mfcc.mfcc` computes in training (int16 PCM -> raw, unnormalised MFCCs; reds_run
normalises). They take every constant from a `reds_mfcc_config_t` that this module generates,
so the C does no trigonometry at run time:

    header, source = emit_mfcc_c("kws", stride_ms=20)
    # write them as kws_mfcc.h and kws_mfcc.c (the source includes "kws_mfcc.h"), compile
    # kws_mfcc.c with firmware/src/reds_mfcc.c; then in C:
    #   static float work[KWS_MFCC_WORK_FLOATS];
    #   static float features[KWS_MFCC_FEATURES];      /* frames x 10, row-major */
    #   reds_mfcc_f32(&kws_mfcc, pcm, 16000, work, features);

`mfcc_tables(stride_ms)` returns the same numbers as a dict (float32 / uint16 numpy arrays)
for tests and tools. Every table is computed in float64 and rounded once to float32, by the
formulas of reds/data/mfcc.py: the window is the periodic Hann window, the filterbank is
`mel_filterbank()` (kept sparse: each triangle's first bin, bin count and weights), the DCT
is `dct_matrix()` (row-major (mel, coefficient)). The FFT tables: twiddles W_N^k =
exp(-2 pi i k / N) for k < N/2 as interleaved (cos, -sin), N = n_fft; the bit reversal of
log2(N/2) bits for the complex FFT of N/2 points. Values are printed with `%.9g`, which reads
back to the same float32 bit for bit.
"""
from __future__ import annotations

import math

import numpy as np

from ...data import mfcc as M
from ...errors import RedsError
from .literals import c_comment, c_float, c_floats, c_identifier, c_ints

FLOAT_TABLES = ("window_fn", "mel_weights", "dct", "twiddle")
INT_TABLES = ("mel_first", "mel_count", "bitrev")


def _bitrev(m: int) -> np.ndarray:
    bits = m.bit_length() - 1
    return np.array([int(format(i, f"0{bits}b")[::-1], 2) if bits else 0 for i in range(m)], dtype=np.uint16)


def _twiddles(n_fft: int) -> np.ndarray:
    k = np.arange(n_fft // 2, dtype=np.float64)
    angle = 2.0 * math.pi * k / n_fft
    tw = np.stack([np.cos(angle), -np.sin(angle)], axis=1).reshape(-1)
    tw[np.abs(tw) < 1e-12] = 0.0  # cos(pi/2) is 6e-17 in float64: the exact value is 0
    return tw.astype(np.float32)


def mfcc_tables(stride_ms: int) -> dict:
    """The front end's configuration and tables for a stride of `stride_ms` (REDS: 20 or 40).

    Keys: sample_rate, window, stride, n_fft, n_bins, n_mels, n_mfcc, frames (ints);
    log_offset (float); window_fn, mel_weights, dct, twiddle (float32 arrays); mel_first,
    mel_count, bitrev (uint16 arrays); table_bytes (all tables together).
    """
    if isinstance(stride_ms, bool) or not isinstance(stride_ms, int) or not 1 <= stride_ms <= 1000 \
            or stride_ms * M.SAMPLE_RATE % 1000:
        raise RedsError(f"the MFCC stride must be a whole number of milliseconds from 1 to 1000, got {stride_ms!r}")
    stride = stride_ms * M.SAMPLE_RATE // 1000
    n_fft, n_bins = M.N_FFT, M.N_BINS
    if n_bins > n_fft // 2 or M.WINDOW > n_fft or M.WINDOW % 2:
        raise RedsError("the C front end needs n_bins <= n_fft / 2 and an even window <= n_fft")

    n = np.arange(M.WINDOW, dtype=np.float64)
    window = (0.5 - 0.5 * np.cos(2.0 * math.pi * n / M.WINDOW)).astype(np.float32)  # periodic Hann

    fb = M.mel_filterbank().numpy()  # (n_bins, n_mels) float32, from float64
    first, count, weights = [], [], []
    for c in range(M.N_MELS):
        nz = np.flatnonzero(fb[:, c])
        lo, hi = (int(nz[0]), int(nz[-1]) + 1) if nz.size else (0, 0)
        first.append(lo)
        count.append(hi - lo)
        weights.append(fb[lo:hi, c])
    t = {
        "sample_rate": M.SAMPLE_RATE, "window": M.WINDOW, "stride": stride, "n_fft": n_fft,
        "n_bins": n_bins, "n_mels": M.N_MELS, "n_mfcc": M.N_MFCC, "frames": M.num_frames(stride_ms),
        "log_offset": float(np.float32(M.LOG_OFFSET)),
        "window_fn": window,
        "mel_first": np.array(first, dtype=np.uint16),
        "mel_count": np.array(count, dtype=np.uint16),
        "mel_weights": np.concatenate(weights).astype(np.float32),
        "dct": M.dct_matrix().numpy().astype(np.float32).reshape(-1),
        "twiddle": _twiddles(n_fft),
        "bitrev": _bitrev(n_fft // 2),
    }
    t["table_bytes"] = sum(t[k].nbytes for k in FLOAT_TABLES + INT_TABLES)
    return t


def _c_uints(values: np.ndarray, per_line: int = 16) -> str:
    vals = [int(v) for v in values]
    return "\n".join(c_ints(vals[i:i + per_line], "    ") + "," for i in range(0, len(vals), per_line))


def mfcc_definitions(name: str, stride_ms: int) -> tuple[str, str, dict]:
    """(macros, definitions, tables) of the config `<name>_mfcc`: the `<NAME>_MFCC_*` sizes
    and its extern declaration (for a header), and the tables and the config (for a source
    that includes "reds_mfcc.h")."""
    ident = c_identifier(name)
    if ident == "reds":  # REDS_MFCC_* are the runtime's
        raise RedsError("the MFCC tables need a name other than 'reds', e.g. the model's")
    cfg, up = f"{ident}_mfcc", f"{ident}_mfcc".upper()
    t = mfcc_tables(stride_ms)
    macros = (f"#define {up}_FRAMES {t['frames']}\n#define {up}_COEFFS {t['n_mfcc']}\n"
              f"#define {up}_FEATURES ({up}_FRAMES * {up}_COEFFS)\n"
              f"#define {up}_WINDOW {t['window']}\n#define {up}_STRIDE {t['stride']}\n"
              f"#define {up}_WORK_FLOATS {t['n_fft'] + t['n_bins']} /* REDS_MFCC_WORK_FLOATS(&{cfg}) */\n"
              f"#define {up}_TABLE_BYTES {t['table_bytes']}u\n\n"
              f"extern const reds_mfcc_config_t {cfg};\n")
    parts = []
    for key in FLOAT_TABLES:
        parts.append(f"\nstatic const float {cfg}_{key}[{t[key].size}] = {{\n{c_floats(t[key])}\n}};\n")
    for key in INT_TABLES:
        parts.append(f"\nstatic const uint16_t {cfg}_{key}[{t[key].size}] = {{\n{_c_uints(t[key])}\n}};\n")
    fields = ",\n".join(f"    .{k} = {t[k]}" for k in ("sample_rate", "window", "stride", "n_fft", "n_bins",
                                                        "n_mels", "n_mfcc", "frames"))
    tables = ",\n".join(f"    .{k} = {cfg}_{k}" for k in ("window_fn", "mel_first", "mel_count", "mel_weights",
                                                          "dct", "twiddle", "bitrev"))
    parts.append(f"\nconst reds_mfcc_config_t {cfg} = {{\n{fields},\n"
                 f"    .log_offset = {c_float(t['log_offset'])},\n{tables},\n}};\n")
    return macros, "".join(parts), t


def describe(t: dict, stride_ms: int) -> str:
    return (f"{t['sample_rate']} Hz, {t['window']}-sample Hann frames every {t['stride']} samples "
            f"({stride_ms} ms), {t['frames']} frames; {t['n_fft']}-point FFT, bins 0..{t['n_bins'] - 1}, "
            f"{t['n_mels']} mel filters {M.F_MIN:g}-{M.F_MAX:g} Hz, {t['n_mfcc']} coefficients; "
            f"tables {t['table_bytes']} B")


def emit_mfcc_c(name: str, stride_ms: int) -> tuple[str, str]:
    """(`<name>_mfcc.h`, `<name>_mfcc.c`): the header declares `extern const reds_mfcc_config_t
    <name>_mfcc` and `<NAME>_MFCC_*` sizes (WORK_FLOATS, FEATURES, FRAMES, COEFFS, TABLE_BYTES);
    the source defines it, with every table a `static const` array. Compile the source with
    firmware/src/reds_mfcc.c (include path: firmware/src). (`reds export --format c` puts the
    same definitions into the model's own files.)"""
    macros, defs, t = mfcc_definitions(name, stride_ms)
    cfg = f"{c_identifier(name)}_mfcc"
    doc = ("/*\n * Generated by reds: do not edit. The MFCC front end's tables for firmware/src/reds_mfcc.c\n"
           f" * ({c_comment(describe(t, stride_ms))}).\n * Output: raw MFCCs (frames x {t['n_mfcc']}, row-major), "
           "not normalised.\n */\n")
    guard = f"{cfg.upper()}_H"
    header = doc + f"#ifndef {guard}\n#define {guard}\n\n#include \"reds_mfcc.h\"\n\n{macros}\n#endif /* {guard} */\n"
    return header, doc + f"#include \"{cfg}.h\"\n" + defs
