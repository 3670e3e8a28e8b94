"""Accuracy of a trained family beside REDS's published numbers and beside the scratch baseline.

    python benchmarks/accuracy.py --arch dscnn-s-img --dataset fmnist --epochs 4 --finetune-epochs 4

Trains with `reds.train.Trainer` (the same code as `reds train`), then writes
benchmarks/results/accuracy-<arch>-<dataset>.{json,md}: per budget the MACs, the reds test
accuracy, the same widths trained alone (scratch), and REDS's figure where published,
with the epochs and wall time used. Everything in the table is measured by this run,
except the column marked REDS (ANCHORS: arXiv 2311.13349, bottom-up knapsack).
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import shutil
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from reds.family import atomic_write  # noqa: E402
from reds.family import open as open_family  # noqa: E402
from reds.bench.report import PUBLISHED, report  # noqa: E402
from reds.tables import markdown as md_table  # noqa: E402
from reds.train import TrainConfig, Trainer  # noqa: E402

def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--arch", default="dscnn-s-img")
    p.add_argument("--dataset", default="fmnist")
    p.add_argument("--data-dir")
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--finetune-epochs", type=int, default=4)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--limit-train", type=int)
    p.add_argument("--limit-eval", type=int)
    p.add_argument("--width", type=float, default=1.0)
    p.add_argument("--no-scratch", action="store_true", help="skip the scratch baseline")
    p.add_argument("--scratch-budgets", help="train the scratch baseline only at these budgets, e.g. 0.25")
    p.add_argument("--out", type=Path, default=HERE / "results")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    cfg = TrainConfig(arch=args.arch, dataset=args.dataset, data_dir=args.data_dir, epochs=args.epochs,
                      finetune_epochs=args.finetune_epochs, batch_size=args.batch_size,
                      limit_train=args.limit_train, limit_eval=args.limit_eval, width_mult=args.width,
                      baseline=None if args.no_scratch else "scratch", seed=args.seed,
                      baseline_budgets=[float(b) for b in args.scratch_budgets.split(",")]
                      if args.scratch_budgets else None)
    stem = f"accuracy-{args.arch}-{args.dataset}"
    t0 = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        fam = Trainer(cfg, Path(tmp) / "family").run()
        wall = time.time() - t0
        # keep the trained family (a few hundred KB) and its plots beside the numbers
        args.out.mkdir(parents=True, exist_ok=True)
        kept = args.out / "families" / stem
        shutil.rmtree(kept, ignore_errors=True)
        kept.mkdir(parents=True)
        for name in ("family.json", "weights.safetensors"):
            shutil.copy(Path(tmp) / "family" / name, kept / name)
    # relative paths: the report records where its family lies
    report(open_family(os.path.relpath(kept)), os.path.relpath(args.out / f"{stem}-report"))
    reds = PUBLISHED.get((args.arch, args.dataset), {})
    rows = []
    for s in reversed(fam.submodels):
        rows.append({"budget": s.budget, "macs": s.macs, "widths": s.widths, "accuracy": s.accuracy,
                     "val_accuracy": s.val_accuracy, "scratch_accuracy": s.scratch_accuracy,
                     "reds_published": reds.get(round(s.budget, 2))})
    result = {
        "command": "python benchmarks/accuracy.py " + shlex.join(argv if argv is not None else sys.argv[1:]),
        "date": datetime.date.today().isoformat(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "arch": args.arch, "dataset": args.dataset, "epochs": args.epochs,
        "finetune_epochs": args.finetune_epochs, "train_samples": fam.training["train_samples"],
        "test_samples": fam.training["test_samples"], "wall_seconds": round(wall, 1),
        "knapsack": {k: fam.knapsack[k] for k in ("mode", "status", "seconds")}, "submodels": rows,
        "plot": f"{stem}-report/accuracy.png",
    }
    atomic_write(args.out / f"{stem}.json", lambda p: p.write_text(json.dumps(result, indent=2) + "\n"))
    atomic_write(args.out / f"{stem}.md", lambda p: p.write_text(markdown(result)))
    print(markdown(result))
    return 0


def _f(v):
    return "-" if v is None else f"{v:.2f}"


def markdown(r: dict) -> str:
    table = md_table(
        ["budget", "MACs", "reds test %", "scratch test %", "REDS published %", "reds - REDS"],
        [[f"{s['budget']:.0%}", f"{s['macs']:,}", _f(s["accuracy"]), _f(s["scratch_accuracy"]),
          _f(s["reds_published"]),
          "-" if s["reds_published"] is None else f"{s['accuracy'] - s['reds_published']:+.2f}"]
         for s in r["submodels"]])
    return (f"## Accuracy: {r['arch']} on {r['dataset']}\n\n"
            f"`{r['command']}` ({r['date']}, {r['machine']})\n\n"
            f"{r['epochs']} pretraining + {r['finetune_epochs']} fine-tuning epochs on {r['train_samples']:,} "
            f"training samples, tested on {r['test_samples']:,}; wall time {r['wall_seconds'] / 60:.1f} min "
            f"(scratch baselines included). Knapsack: {r['knapsack']['mode']}, {r['knapsack']['status']}, "
            f"{r['knapsack']['seconds']:.2f} s.\n\n{table}\n\n"
            f"![accuracy vs MACs](results/{r['plot']})\n")


if __name__ == "__main__":
    sys.exit(main())
