"""The README's 10-minute walk-through, timed step by step on this machine.

    python benchmarks/walkthrough.py [--out benchmarks/results] [--work runs/walkthrough]

Runs exactly the commands the README lists (data -> train -> info -> export -> build ->
bench -> report) with the `reds` next to this Python, and writes results/walkthrough.md
(each command and its wall time) and walkthrough.json. The README's run-time estimates
are these numbers.
"""
from __future__ import annotations

import argparse
import datetime
import json
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from machine import describe as describe_machine  # noqa: E402

# {w}: the work folder. The same commands as the README's walk-through.
STEPS = [
    ("make a spoken-keyword data set", "reds data synth-kws --out {w}/data --per-word 400"),
    ("train a family of 4 nested submodels",
     "reds train --arch dscnn-s --dataset synth-kws --data-dir {w}/data --width 0.5 --epochs 10 "
     "--finetune-epochs 10 --no-augment --out {w}/family"),
    ("look at it", "reds info {w}/family"),
    ("export ONNX (checked in onnxruntime)", "reds export {w}/family --format onnx --out {w}/onnx"),
    ("build for the virtual Cortex-M4", "reds build {w}/family --board qemu-m4 --out {w}/build"),
    ("time every submodel and switch on it", "reds bench {w}/family --build {w}/build --json {w}/bench.json"),
    ("plots and a summary", "reds report {w}/family --bench {w}/bench.json --out {w}/report"),
]


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=HERE / "results", help="where walkthrough.md/json go")
    p.add_argument("--work", type=Path, default=HERE.parent / "runs" / "walkthrough", help="scratch folder")
    args = p.parse_args(argv)
    reds = str(Path(sys.executable).parent / "reds")
    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)
    rows = []
    for what, cmd in STEPS:
        line = cmd.format(w=args.work)
        t0 = time.perf_counter()
        r = subprocess.run([reds, *shlex.split(line)[1:]], capture_output=True, text=True)
        seconds = time.perf_counter() - t0
        if r.returncode != 0:
            raise SystemExit(f"{line} failed:\n{r.stderr[-2000:]}")
        rows.append({"step": what, "command": cmd.format(w="runs"), "seconds": round(seconds, 1)})
        print(f"{seconds:7.1f} s  {line}", file=sys.stderr, flush=True)
    total = sum(r["seconds"] for r in rows)
    subs = json.loads((args.work / "family" / "family.json").read_text())["submodels"]
    doc = {"date": datetime.date.today().isoformat(), "machine": describe_machine(), "steps": rows,
           "total_seconds": round(total, 1),
           "test_accuracy": {f"{s['budget']:g}": s["accuracy"] for s in subs}}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "walkthrough.json").write_text(json.dumps(doc, indent=2) + "\n")
    md = ["## Walk-through, timed", "",
          f"`python benchmarks/walkthrough.py` ({doc['date']}, {doc['machine']}): the README's commands, "
          f"one after the other, {total / 60:.1f} minutes in all. Test accuracy of the family, per budget: "
          + ", ".join(f"{float(b):.0%}: {a:.1f} %" for b, a in doc["test_accuracy"].items()) + ".", "",
          "| step | command | wall time |", "|---|---|---|"]
    md += [f"| {r['step']} | `{r['command']}` | {r['seconds']:.0f} s |" for r in rows]
    (args.out / "walkthrough.md").write_text("\n".join(md) + "\n")
    print(f"wrote {args.out / 'walkthrough.md'}: {total:.0f} s in all", file=sys.stderr)


if __name__ == "__main__":
    main()
