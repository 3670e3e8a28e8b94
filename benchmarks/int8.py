"""int8 vs float accuracy per submodel: `reds quantize`'s post-training quantization.

    python benchmarks/int8.py [--family benchmarks/runs/accuracy-full/default] [--limit 2000]
                              [--qat N --qat-limit M]

Quantizes a trained family (calibrated per submodel on 512 training samples, as `reds
quantize` does by default) and tests every submodel in float (PyTorch) and in int8 (the
reds integer reference, which the C int8 kernels match bit for bit) on the same test
samples. Writes results/int8-<arch>-<dataset>.{json,md} (with --qat: -qat, the
quantization-aware fine-tuning of `reds quantize --qat` first). The target (issue 13): int8
within 1 point of float for every submodel (the float column is the family as given).
"""
from __future__ import annotations

import argparse
import datetime
import json
import shlex
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from machine import describe  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--family", type=Path, default=HERE / "runs" / "accuracy-full" / "default")
    ap.add_argument("--limit", type=int, default=2000, help="test samples")
    ap.add_argument("--calib", type=int, default=512, help="calibration samples (training split)")
    ap.add_argument("--qat", type=int, default=0, help="quantization-aware fine-tuning passes first")
    ap.add_argument("--qat-limit", type=int, help="training samples per --qat pass")
    a = ap.parse_args()

    from reds import quant
    from reds.family import open as open_family
    from reds.quant.evaluate import calibration_inputs, float_vs_int8
    from reds.train.trainer import family_data

    fam = open_family(a.family)
    ds = family_data(fam)
    with tempfile.TemporaryDirectory() as tmp:
        qf = quant.quantize(a.family, Path(tmp) / "int8", calibration_inputs(fam, ds, a.calib), qat_epochs=a.qat,
                            data=ds, qat_limit=a.qat_limit)
        rows = float_vs_int8(fam, qf, ds, a.limit)
    m = fam.manifest
    name = f"int8-{m.arch}-{m.dataset}" + ("-qat" if a.qat else "")
    cmd = "python benchmarks/int8.py " + shlex.join(sys.argv[1:])
    res = {"command": cmd, "date": datetime.date.today().isoformat(), "machine": describe(), "arch": m.arch,
           "dataset": m.dataset, "calib": a.calib, "qat": {"epochs": a.qat, "samples_per_epoch": a.qat_limit},
           "rows": rows,
           "within_1_point": all(abs(r["int8_acc"] - r["float_acc"]) <= 1.0 for r in rows)}
    lines = [f"## int8 vs float accuracy: {m.arch} on {m.dataset}", "",
             f"`{cmd}` ({res['date']}, {res['machine']}). Post-training quantization (`reds quantize`): "
             f"per-channel int8 weights shared by every submodel, activations calibrated per submodel on "
             f"{a.calib} training samples; int8 accuracy from the reds integer reference. "
             + (f"First quantization-aware fine-tuning (`--qat {a.qat}`, {a.qat_limit or 'all'} training samples a "
                "pass, all submodels together); float is the family before it. " if a.qat else "") +
             f"Target: int8 within 1 point of float for every submodel.", "",
             "| submodel | budget | test samples | float % | int8 % | int8 - float | within 1 point |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        d = r["int8_acc"] - r["float_acc"]
        lines.append(f"| {r['index']} | {r['budget']:g} | {r['samples']:,} | {r['float_acc']:.2f} | "
                     f"{r['int8_acc']:.2f} | {d:+.2f} | {'yes' if abs(d) <= 1.0 else 'NO'} |")
    out = HERE / "results" / name
    out.with_suffix(".json").write_text(json.dumps(res, indent=1) + "\n")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
