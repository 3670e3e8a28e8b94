"""reds int8 against TFLite int8, side by side: accuracy, agreement and host speed per submodel.

    python benchmarks/int8_tflite.py [--family benchmarks/runs/accuracy-full/default]
                                     [--limit 2000] [--calib 512] [--seconds 2]

Quantizes a trained family with `reds quantize`'s post-training quantization (calibrated
per submodel on --calib training samples) and exports it as int8 C and as int8 TFLite
(`reds export --format tflite`: litert-torch's PT2E, calibrated on the same samples). On
the same --limit test samples, per submodel:

- accuracy: float (PyTorch), reds int8 (the integer reference, which the int8 C matches
  bit for bit: tests/test_export_c_int8.py), the .tflite in LiteRT (`ai-edge-litert`, its
  default delegate) and in TFLite Micro's interpreter (`tflite-micro`, its reference int8
  kernels);
- agreement of each TFLite runtime with reds int8: argmax agreement, and the largest
  difference in steps of reds's output scale;
- host speed, on one test sample: the reds int8 C runtime (built with the host board's
  flags, timed in C around reds_run, as benchmarks/runtime.py does), against TFLite Micro
  and LiteRT on the same submodel's .tflite, timed around their Python calls (so their
  figures include the binding's per-call overhead), in interleaved rounds; ratio > 1:
  reds is faster.

Writes results/int8-tflite-<arch>-<dataset>.{json,md}.
"""
from __future__ import annotations

import argparse
import datetime
import shlex
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import numpy as np  # noqa: E402

from machine import describe  # noqa: E402
from publish import publish  # noqa: E402
from runtime import CRunner, _time_calls, host_cflags  # noqa: E402

RUNTIMES = ("litert", "tflite-micro")


def accuracy_rows(fam, qf, m, folder: Path, x: np.ndarray, y: np.ndarray, arena: int) -> list[dict]:
    import torch

    from reds.export import tflite_int8

    rows = []
    xt = torch.from_numpy(x)
    for k, s in enumerate(m["submodels"]):
        with torch.no_grad():
            fl = fam.logits(xt, k).numpy()
        ref = qf.logits(x, k)
        q = s["input_quant"]
        xq = tflite_int8.quantize_features(qf, x, q["scale"], q["zero_point"])
        row = {"index": k, "budget": s["budget"], "macs": s["macs"], "samples": int(len(y)),
               "float_acc": 100.0 * float((fl.argmax(1) == y).mean()),
               "reds_int8_acc": 100.0 * float((ref.argmax(1) == y).mean()), "tflite": {}}
        for rt in RUNTIMES:
            got = tflite_int8.run(folder / s["file"], xq, rt, arena)
            row["tflite"][rt] = {"acc": 100.0 * float((got.argmax(1) == y).mean()),
                                 **tflite_int8.agreement(got, ref, qf.outputs[k].s)}
        rows.append(row)
    return rows


def speed_rows(qf, m, c_dir: Path, tfl_dir: Path, work: Path, x1: np.ndarray, arena: int, a) -> dict:
    """Median seconds per inference per runtime and submodel (interleaved rounds)."""
    import tflite_micro
    from ai_edge_litert.interpreter import Interpreter

    from reds.export import tflite_int8

    K = len(m["submodels"])
    cc = shutil.which("gcc") or shutil.which("cc")
    c = CRunner(c_dir, work, x1, cc, host_cflags(cc))
    tflm, lite = [], []
    for s in m["submodels"]:
        q = s["input_quant"]
        xq = tflite_int8.quantize_features(qf, x1[None], q["scale"], q["zero_point"])
        tflm.append((tflite_micro.runtime.Interpreter.from_file(str(tfl_dir / s["file"]), arena_size=arena), xq))
        it = Interpreter(model_path=str(tfl_dir / s["file"]), num_threads=1)
        it.allocate_tensors()
        lite.append((it, it.get_input_details()[0]["index"], it.get_output_details()[0]["index"], xq))
    meds = {r: {k: [] for k in range(K)} for r in ("reds", *RUNTIMES)}
    per_round = a.seconds / a.rounds
    for _ in range(a.rounds):
        for k, (med, _n, _y) in c.round(K, a.warmup, a.min_runs, a.max_runs, per_round).items():
            meds["reds"][k].append(med)
        for k, (it, xq) in enumerate(tflm):
            def call(it=it, xq=xq):
                it.set_input(xq, 0)
                it.invoke()
                return it.get_output(0)
            meds["tflite-micro"][k].append(_time_calls(call, a.warmup, a.min_runs, a.max_runs, per_round)[0])
        for k, (it, i, o, xq) in enumerate(lite):
            def call(it=it, i=i, o=o, xq=xq):
                it.set_tensor(i, xq)
                it.invoke()
                return it.get_tensor(o)
            meds["litert"][k].append(_time_calls(call, a.warmup, a.min_runs, a.max_runs, per_round)[0])
    return {r: {k: statistics.median(v) for k, v in per.items()} for r, per in meds.items()}


def markdown(r: dict) -> str:
    lines = [f"## reds int8 vs TFLite int8: {r['arch']} on {r['dataset']}", "",
             f"`{r['command']}` ({r['date']}, {r['machine']}). One int8 family (`reds quantize`, calibrated per "
             f"submodel on {r['calib']} training samples); its int8 TFLite files from `reds export --format tflite` "
             "(litert-torch PT2E, calibrated on the same samples). reds int8 = the integer reference, which the int8 "
             "C runtime matches bit for bit. Agreement: of each TFLite runtime with reds int8 on the test samples "
             "(argmax; max difference in steps of reds's output scale).", "",
             "| submodel | budget | MACs | test samples | float % | reds int8 % | LiteRT int8 % | TFLite Micro int8 % "
             "| LiteRT: argmax agreement, max steps | TFLite Micro: argmax agreement, max steps |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for w in r["accuracy"]:
        t = w["tflite"]
        lines.append(f"| {w['index']} | {w['budget']:g} | {w['macs']:,} | {w['samples']:,} | {w['float_acc']:.2f} | "
                     f"{w['reds_int8_acc']:.2f} | {t['litert']['acc']:.2f} | {t['tflite-micro']['acc']:.2f} | "
                     f"{t['litert']['argmax_agreement']:.1%}, {t['litert']['max_steps']} | "
                     f"{t['tflite-micro']['argmax_agreement']:.1%}, {t['tflite-micro']['max_steps']} |")
    sp = r["speed"]
    lines += ["", f"Host speed, µs per inference (median of {r['rounds']} interleaved rounds; reds timed in C, the "
              "TFLite runtimes around their Python calls); ratio > 1: reds int8 is faster.", "",
              "| submodel | MACs | reds int8 C | TFLite Micro int8 | ratio | LiteRT int8 (XNNPACK) | ratio |",
              "|---|---|---|---|---|---|---|"]
    for w in r["accuracy"]:
        k = str(w["index"])
        base = sp["reds"][k]
        lines.append(f"| {k} | {w['macs']:,} | {base * 1e6:,.1f} | {sp['tflite-micro'][k] * 1e6:,.1f} | "
                     f"{sp['tflite-micro'][k] / base:.2f} | {sp['litert'][k] * 1e6:,.1f} | "
                     f"{sp['litert'][k] / base:.2f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--family", type=Path, default=HERE / "runs" / "accuracy-full" / "default")
    ap.add_argument("--data-dir", help="the family's data set folder (default: the one it was trained on)")
    ap.add_argument("--limit", type=int, default=2000, help="test samples")
    ap.add_argument("--calib", type=int, default=512, help="calibration samples (training split)")
    ap.add_argument("--seconds", type=float, default=2.0, help="timing per runtime and submodel, all rounds")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--min-runs", type=int, default=5)
    ap.add_argument("--max-runs", type=int, default=2000)
    ap.add_argument("--out", type=Path, default=HERE / "results")
    a = ap.parse_args()

    from reds import quant
    from reds.export import export
    from reds.export.tflite_int8 import tflm_arena
    from reds.family import open as open_family
    from reds.quant.evaluate import calibration_inputs, raw_features
    from reds.train.trainer import family_data

    fam = open_family(a.family)
    ds = family_data(fam, a.data_dir)
    calib = calibration_inputs(fam, ds, a.calib)
    batches = list(ds.batches("test", 200, limit=a.limit))
    x = np.concatenate([raw_features(fam, xb) for xb, _ in batches])
    y = np.concatenate([yb.numpy() for _, yb in batches])
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        qf = quant.quantize(a.family, tmp / "int8", calib, log=lambda s: None)
        q8 = open_family(tmp / "int8")
        export(q8, "c", tmp / "c")
        m = export(q8, "tflite", tmp / "tfl", calib=calib)
        arena = tflm_arena(max(s["arena_bytes"] for s in m["submodels"]))
        print(f"exported int8 C and {len(m['files'])} int8 .tflite files; testing on {len(y):,} samples", flush=True)
        acc = accuracy_rows(fam, qf, m, tmp / "tfl", x, y, arena)
        speed = speed_rows(qf, m, tmp / "c", tmp / "tfl", tmp, x[0], arena, a)
    mf = fam.manifest
    res = {"command": "python benchmarks/int8_tflite.py " + shlex.join(sys.argv[1:]),
           "date": datetime.date.today().isoformat(), "machine": describe(), "arch": mf.arch, "dataset": mf.dataset,
           "calib": a.calib, "rounds": a.rounds, "accuracy": acc,
           "speed": {r: {str(k): v for k, v in per.items()} for r, per in speed.items()}}
    publish(a.out, f"int8-tflite-{mf.arch}-{mf.dataset}", res, markdown)


if __name__ == "__main__":
    main()
