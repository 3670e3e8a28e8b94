"""`reds bench`: time every submodel and every switch on a board, check it against PyTorch.

On a virtual board (`--board qemu-m4`) the family is built if needed (`reds build`), the
emulator is started with its UART on a free TCP port and always stopped at the end. With
`--port URL` the same runs against any board that speaks the protocol (a real port or a
`socket://` URL).

What is measured, all on the device: per submodel, the cycles of `loop N` (min, median,
max), as microseconds at the board's clock and per MAC; every ordered switch k -> k' (the
cycles of reds_select), median and max. Every submodel's outputs on one seeded random
input are compared with the PyTorch reference (NestedNet at that submodel's widths and
batch norm): max |diff| <= 1e-4 and the same argmax, or the bench fails; an int8 family's
with its integer reference (reds.quant), which they must equal bit for bit. With `--audio
WAV` the input is a PCM clip that the device turns into features with its own front end
(the family's MFCC), timed apart; the reference is PyTorch's MFCC of the same clip
(max |diff| <= 1e-3, the same argmax). With `--profile`, then per submodel the cycles of
each layer of one run (`layers%`: the device reads its timer after every step), beside the
layer's output shape and MACs, and the rows' sum checked against an ordinary run.
"""
from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..build import build as build_family
from ..build.boards import Board, get_board
from ..device.emulator import check_emulator, emulate
from ..device.link import Link
from ..errors import RedsError
from ..export import abi
from ..family import OpenFamily, atomic_write

TOLERANCE = 1e-4
# From a PCM clip, the device's MFCCs (firmware/src/reds_mfcc.c) and PyTorch's differ by up
# to ~1.5e-5 on speech (tests/test_mfcc_c.py); the network carries that to the logits, so
# the bar there is 1e-3, with the same argmax.
AUDIO_TOLERANCE = 1e-3
# An int8 family's device outputs equal the integer reference's bit for bit (tolerance 0);
# from a clip, the device's float MFCCs may round an input value to the next int8 step,
# which moves a logit by a few of its own steps.
INT8_AUDIO_STEPS = 8


def read_clip(path) -> np.ndarray:
    """A WAV file (16 kHz mono 16-bit) as the one-second clip a front end reads."""
    from ..data.files import read_wav
    from ..data.mfcc import one_second

    return one_second(read_wav(path, "pass a 16 kHz mono 16-bit PCM WAV (e.g. one of `reds data synth-kws`)"))


def clip_features(family: OpenFamily, clip: np.ndarray) -> np.ndarray:
    """The raw features PyTorch computes from a clip with the family's front end."""
    from ..data import mfcc
    from ..ir.inputs import MfccFrontEnd

    return mfcc.clip_features(clip, MfccFrontEnd.from_json(family.manifest.frontend).stride_ms)


def reference_outputs(family: OpenFamily, x: np.ndarray, qf=None) -> list[np.ndarray]:
    """Every submodel's logits for one raw input (C x H x W), from PyTorch; an int8 family's
    (qf, its reds.quant.QuantFamily) from its integer reference."""
    import torch

    if qf is not None:
        return [qf.logits(x[None], k)[0].astype(np.float64) for k in range(len(family.submodels))]
    out = []
    with torch.no_grad():
        for k in range(len(family.submodels)):
            y = family.logits(torch.from_numpy(x[None]), k)
            out.append(y[0].double().numpy())
    return out


# ---- the per-layer profile ---------------------------------------------------------------------
def _shape(spec, layer, widths) -> list[int]:
    c = spec.size(layer.out_ch, widths)
    return [c] if layer.flat_out else [c, *layer.out_hw]


def layer_profile(family: OpenFamily, k: int, dev: dict) -> dict:
    """Submodel k's `layers%` reply (Link.layers) beside the family's spec: each row's layer
    name, op, output shape at the submodel's widths, MACs (reds.ir.cost), cycles, cycles/MAC,
    % of the ordinary run. The rows' sum should equal the run within one timer overhead per
    row (each row's timer read is subtracted as the overhead measured at start-up). A layer
    the submodel skips (elastic depth) has no shape and no MACs: its row times the pass-through
    (about 0 cycles)."""
    from ..export.c.lower import OP_ENUM
    from ..ir.cost import cost

    spec, widths = family.spec, family.submodels[k].widths
    per, runs = cost(spec, widths).layers, spec.runs(widths)
    run = dev["run"]
    rows = []
    for r in dev["rows"]:
        row = {"index": None, "name": r["i"], "op": r["op"], "shape": None, "macs": 0, "skipped": False}
        if r["i"].isdigit():
            i = int(r["i"])
            if i >= len(spec.layers):
                raise RedsError(f"the device profiles layer {i}; {family.dir} has {len(spec.layers)} layers")
            layer = spec.layers[i]
            want = OP_ENUM[type(layer.op)][len("REDS_OP_"):].lower()
            if r["op"] != want:
                raise RedsError(f"the device's layer {i} is a {r['op']}, {family.dir}'s ({layer.name}) a {want}: "
                                "build and flash this family first")
            row.update(index=i, name=layer.name, shape=_shape(spec, layer, widths) if runs[i] else None,
                       macs=per[i].macs, skipped=not runs[i])
        elif r["i"] == "input":
            row["shape"] = list(spec.input_shape)
        c = r["cycles"]
        row.update(cycles=c, fused=c is None,
                   cycles_per_mac=c / row["macs"] if c is not None and row["macs"] else None,
                   pct=100.0 * c / run if c is not None and run else None)
        rows.append(row)
    timed = sum(1 for r in rows if not r["fused"])
    tol = timed * dev["overhead"]
    return {"index": k, "run_cycles": run, "sum_cycles": dev["cycles"], "rows_timed": timed,
            "timer_overhead_cycles": dev["overhead"], "tolerance_cycles": tol,
            "within_tolerance": abs(dev["cycles"] - run) <= tol, "layers": rows}


def run_profile(link: Link, family: OpenFamily) -> dict:
    """Every submodel's `layers%` on the input loaded (the bench's); {"supported": False,
    "reason"} from a device that cannot time layers (reds serve: onnxruntime runs whole graphs)."""
    from ..device.link import DeviceError

    out = []
    for k, s in enumerate(family.submodels):
        link.select(k)
        try:
            dev = link.layers(timeout=_run_timeout(s.macs, 2))
        except DeviceError as e:
            if e.reason in ("not-supported", "unknown-command"):
                return {"supported": False, "reason": e.reason}
            raise
        out.append(layer_profile(family, k, dev))
    return {"supported": True, "submodels": out}


def profile_table(report: dict) -> str:
    prof = report["profile"]
    if not prof["supported"]:
        why = "this runtime times whole runs only" if prof["reason"] == "not-supported" else \
            "its firmware has no `layers` command (rebuild it with this reds)"
        return f"profile: the device cannot time layers ({why})"
    cyc = report.get("cycle") or "cycle"
    word = {"instruction": "instr", "ns": "ns"}.get(cyc, "cycles")
    lines = []
    for p in prof["submodels"]:
        sub = report["submodels"][p["index"]]
        d = p["sum_cycles"] - p["run_cycles"]
        lines += ["", f"profile of submodel {p['index']} (budget {sub['budget']:g}, {sub['macs']:,} MACs): one run "
                  f"{p['run_cycles']:,} {word}; its rows add up to {p['sum_cycles']:,} ({d:+,}; "
                  + (f"within {p['rows_timed']} x {p['timer_overhead_cycles']} timer overhead)" if p["within_tolerance"]
                     else f"MORE than {p['rows_timed']} x {p['timer_overhead_cycles']} timer overhead)")]
        hdr = f"{'#':>3} {'layer':<14} {'op':<16} {'output':>12} {'MACs':>11} {word:>11} {word[:3] + '/MAC':>8} " \
              f"{'%':>6}"
        lines += [hdr, "-" * len(hdr)]
        for r in p["layers"]:
            shape = "skipped" if r.get("skipped") else "x".join(map(str, r["shape"])) if r["shape"] else "-"
            cycles = "fused" if r["fused"] else f"{r['cycles']:,}"
            cpm = f"{r['cycles_per_mac']:.2f}" if r["cycles_per_mac"] is not None else "-"
            pct = f"{r['pct']:.1f}" if r["pct"] is not None else "-"
            idx = "-" if r["index"] is None else str(r["index"])
            lines.append(f"{idx:>3} {r['name']:<14} {r['op']:<16} {shape:>12} {r['macs']:>11,} {cycles:>11} "
                         f"{cpm:>8} {pct:>6}")
        notes = [note for key, note in (("fused", "(fused: runs in the store step of the conv or batch norm above; "
                                                  "that row holds its cost)"),
                                        ("skipped", "(skipped: in a block this submodel skips; its input passes "
                                                    "through)"))
                 if any(r.get(key) for r in p["layers"])]
        lines += notes or [""]
    return "\n".join(lines).rstrip("\n")


# ---- the bench -------------------------------------------------------------------------------
def run_bench(link: Link, family: OpenFamily, runs: int = 20, seed: int = 0, board: Board | None = None,
              audio: np.ndarray | None = None, profile: bool = False) -> dict:
    """Talk to a device that runs `family`'s firmware; return the report. `audio`: a PCM
    clip (int16) fed through the device's front end (`input pcm`) instead of features.
    `profile`: then every submodel's cycles per layer (`layers%`), in report["profile"]."""
    from .. import quant

    fam, fhash, family_dir = family.manifest, family.hash, family.dir
    qf = quant.open(family_dir) if quant.is_int8(family_dir) else None  # the reference is then the int8 one
    name = link.sync()
    info = link.info()
    model, dev_hash = link.profile()
    if dev_hash != fhash:
        raise RedsError(f"{link.url} runs model '{model}' of family {dev_hash[:12] or '?'}, not {family_dir} "
                        f"({fhash[:12]}): build and flash this family first (reds build {family_dir} ...)")
    subs = link.submodels()
    if [s["macs"] for s in subs] != [s.macs for s in fam.submodels]:
        raise RedsError(f"{link.url}: the device's submodels differ from {family_dir}'s manifest")
    if info.get("cycle") == "unknown":
        raise RedsError(f"{link.url}: the board cannot tell what its cycles are (an emulator not started with "
                        "-icount?); it reports no timings reds can stand behind")
    max_loop = int(info.get("max_loop", 255))
    if not 1 <= runs <= max_loop:
        raise RedsError(f"--runs must be 1..{max_loop} (the device keeps each run's cycles)")
    clock_hz = int(info.get("clock_hz", 0)) or (board.clock_hz if board else 0)

    if audio is not None:
        if fam.frontend is None:
            raise RedsError(f"{family_dir} records no front end (it was not trained on audio): bench it without "
                            "--audio")
        if info.get("frontend") != "mfcc":
            raise RedsError(f"{link.url}: the device's firmware has no front end: rebuild it with this reds "
                            f"(reds build {family_dir} ...)")
        link.check("input pcm")
        link.load(audio.astype("<i2").tobytes(), int(info.get("line", 160)))
        refs = reference_outputs(family, clip_features(family, audio), qf)
    else:
        x = np.random.default_rng(seed).standard_normal(tuple(fam.input_shape)).astype(np.float32)
        if family.input_norm is not None:  # raw features of the family's range: the device normalises them
            x = family.input_norm.invert(x)
        if info.get("frontend", "none") != "none":
            link.check("input features")
        link.load(x.astype("<f4").tobytes(), int(info.get("line", 160)))
        refs = reference_outputs(family, x, qf)
    if qf is None:
        tolerance = TOLERANCE if audio is None else AUDIO_TOLERANCE
    else:
        tolerance = 0.0 if audio is None else INT8_AUDIO_STEPS * max(o.s for o in qf.outputs)

    rows = []
    for k, s in enumerate(tqdm(fam.submodels, desc="timing submodels", unit="submodel", leave=False,
                               file=sys.stderr, disable=None)):
        link.select(k)
        link.check("loop 1", timeout=_run_timeout(s.macs, 1))  # warm-up (and the outputs)
        stats = link.loop(runs, timeout=_run_timeout(s.macs, runs))
        got, text = link.results()
        y = np.asarray(got, dtype=np.float64)
        ref = refs[k]
        diff = float(np.max(np.abs(y - ref))) if y.shape == ref.shape else float("inf")
        rows.append({
            "index": k, "budget": s.budget, "macs": s.macs,
            "cycles_median": stats["median"], "cycles_min": stats["min"], "cycles_max": stats["max"],
            "us_median": stats["median"] / clock_hz * 1e6 if clock_hz else None,
            "cycles_per_mac": stats["median"] / s.macs if s.macs else None,
            "max_abs_diff": diff, "argmax_match": bool(y.shape == ref.shape and int(np.argmax(y)) == int(np.argmax(ref))),
            "outputs": text,
        })
        if audio is not None:  # of each run's cycles, the front end's (the same clip every run)
            r = rows[-1]
            r["frontend_cycles"] = stats["frontend_total"] / runs
            r["cycles_per_mac"] = (r["cycles_median"] - r["frontend_cycles"]) / s.macs if s.macs else None
    K = len(fam.submodels)
    pairs = []
    for a in tqdm(range(K), desc="timing switches", leave=False, file=sys.stderr, disable=None):
        for b in range(K):
            if a != b:
                link.select(a)
                pairs.append({"from": a, "to": b, "cycles": link.select(b)})
    switch = [p["cycles"] for p in pairs]
    cpm = [r["cycles_per_mac"] for r in rows if r["cycles_per_mac"]]
    report = {
        "format": "reds-bench", "version": 1,
        "family": str(Path(family_dir).resolve()), "family_hash": fhash, "arch": fam.arch, "device": name,
        "board": info.get("board"), "port": link.url, "timer": info.get("timer"), "cycle": info.get("cycle"),
        "clock_hz": clock_hz, "timer_overhead_cycles": int(info.get("overhead", 0)),
        "runs": runs, "seed": seed, "reference": "pytorch" if qf is None else "int8", "tolerance": tolerance,
        "input": "pcm" if audio is not None else "features",
        "submodels": rows,
        "switch": {"median": statistics.median(switch) if switch else None, "max": max(switch) if switch else None,
                   "min": min(switch) if switch else None, "pairs": pairs},
        "cycles_per_mac_spread_pct": (100.0 * (max(cpm) / min(cpm) - 1.0)) if cpm else None,
        "outputs_match": all(r["max_abs_diff"] <= tolerance and r["argmax_match"] for r in rows),
    }
    if board is not None and board.cycle_note:
        report["cycle_note"] = board.cycle_note
    if profile:
        report["profile"] = run_profile(link, family)
    return report


def _run_timeout(macs: int, runs: int) -> float:
    """Generous: 1 us per MAC and run (a 64 MHz M4 takes ~0.1 us), plus 30 s."""
    return 30.0 + runs * macs * 1e-6


def bench(family: OpenFamily, board: str = "qemu-m4", port: str | None = None, runs: int = 20, seed: int = 0,
          build_dir=None, layout: str = abi.DEFAULT_LAYOUT, timeout: float = 10.0, log=print, trace=None,
          audio: np.ndarray | None = None, profile: bool = False) -> dict:
    """`trace`: a reds.trace.TraceJob replayed on the same connection after the bench
    (its summary lands in report["trace"]). `audio`: a PCM clip for the front end.
    `profile`: cycles per layer of every submodel (report["profile"])."""
    if port is not None:
        with Link(port, timeout=timeout) as link:
            report = run_bench(link, family, runs, seed, audio=audio, profile=profile)
            if trace is not None:
                report["trace"] = trace.run(link, family, report)
            return report
    b = get_board(board)
    if not b.virtual:
        raise RedsError(f"board '{b.name}' is not emulated here: flash it, then pass its serial port "
                        f"with --port (e.g. /dev/ttyACM0)")
    check_emulator(b)
    res = build_family(family, b.name, build_dir, layout=layout)
    log(("built " if res.rebuilt else "up to date: ") + res.elf
        + ("" if build_dir else " (no --build given: a cached build; pass the --out of `reds build` to bench that)"))
    with emulate(b, res.elf, timeout=timeout) as link:  # its own session: Ctrl-C reaches reds only
        report = run_bench(link, family, runs, seed, board=b, audio=audio, profile=profile)
        if trace is not None:
            report["trace"] = trace.run(link, family, report)
    report["build"] = {"elf": res.elf, "flash_used": res.flash_used, "ram_used": res.ram_used,
                       "flash_bytes": res.flash_bytes, "ram_bytes": res.ram_bytes, "layout": res.layout}
    return report


# ---- report ----------------------------------------------------------------------------------
def table(report: dict) -> str:
    cyc = report.get("cycle") or "cycle"
    hz = report.get("clock_hz") or 0
    lines = [f"reds bench: {report['arch']} family {report['family_hash'][:12]} on {report['board']} "
             f"({report['port']}), {report['runs']} runs per submodel",
             f"timer {report['timer']}: a cycle is one {cyc}; us at {hz / 1e6:g} MHz; "
             f"timer overhead {report['timer_overhead_cycles']} cycles (subtracted)"]
    if report.get("cycle_note"):
        lines.append(f"note: {report['cycle_note']}")
    word = {"instruction": "instr", "ns": "ns"}.get(cyc, "cycles")  # say what is counted
    hdr = f"{'k':>2} {'budget':>6} {'MACs':>11} {word + ' med':>12} {'min':>12} {'max':>12} {'us med':>10} " \
          f"{word[:3] + '/MAC':>8} {'max|diff|':>9} {'argmax':>6}"
    lines += ["", hdr, "-" * len(hdr)]
    for r in report["submodels"]:
        us = f"{r['us_median']:.1f}" if r["us_median"] is not None else "-"
        cpm = f"{r['cycles_per_mac']:.2f}" if r["cycles_per_mac"] is not None else "-"
        lines.append(f"{r['index']:>2} {r['budget']:>6g} {r['macs']:>11,} {r['cycles_median']:>12,} "
                     f"{r['cycles_min']:>12,} {r['cycles_max']:>12,} {us:>10} {cpm:>8} "
                     f"{r['max_abs_diff']:>9.2e} {'ok' if r['argmax_match'] else 'DIFF':>6}")
    fe = [r["frontend_cycles"] for r in report["submodels"] if "frontend_cycles" in r]
    if fe:
        full = report["submodels"][-1]["cycles_median"]
        lines.append("")
        lines.append(f"input: a PCM clip through the device's MFCC front end: {statistics.median(fe):,.0f} {word} of each "
                     f"run ({100 * statistics.median(fe) / full:.1f} % of the largest submodel's), in the "
                     f"{word} columns; {word[:3]}/MAC counts the network alone")
    sw = report["switch"]
    lines.append("")
    if sw["median"] is None:
        lines.append("switch: one submodel, nothing to switch")
    else:
        lines.append(f"switch k -> k' ({len(sw['pairs'])} ordered pairs): median {sw['median']:g}, "
                     f"max {sw['max']}, min {sw['min']} {word}")
    spread = report.get("cycles_per_mac_spread_pct")
    if spread is not None:
        lines.append(f"{word} per MAC spread across submodels: {spread:.1f} %")
        if cyc == "ns" and spread > 50:
            lines.append("warning: host timings (a shared computer's nanoseconds, caches and frequency scaling) "
                         "scatter this much; compare runtimes side by side in one run, or time on a board")
    ref = "the int8 reference (reds.quant)" if report.get("reference") == "int8" else "PyTorch"
    exact = report.get("reference") == "int8" and report["tolerance"] == 0
    lines.append((f"outputs: every submodel matches {ref} " + ("bit for bit" if exact else
                  "(max |diff| <= %g, same argmax)" % report["tolerance"])) if report["outputs_match"]
                 else f"outputs: MISMATCH with {ref} (see max|diff| and argmax)")
    return "\n".join(lines)


def write_json(report: dict, path) -> None:
    text = json.dumps(report, indent=2) + "\n"
    atomic_write(Path(path), lambda p: p.write_text(text))


def check_outputs(report: dict) -> None:
    if not report["outputs_match"]:
        bad = [r for r in report["submodels"] if not (r["max_abs_diff"] <= report["tolerance"] and r["argmax_match"])]
        r = bad[0]
        ref = "the int8 reference" if report.get("reference") == "int8" else "PyTorch"
        raise RedsError(f"submodel {r['index']}'s outputs on the device differ from {ref} "
                        f"(max |diff| {r['max_abs_diff']:.3g}, argmax {'same' if r['argmax_match'] else 'differs'}); "
                        f"{len(bad)} of {len(report['submodels'])} submodels differ")
