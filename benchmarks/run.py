"""`make bench`: run every benchmark, then rebuild benchmarks/README.md from their results.

    python benchmarks/run.py              # everything (about an hour on 2 cores)
    python benchmarks/run.py --only knapsack
    python benchmarks/run.py --collect    # only rebuild README.md from results/

Each benchmark writes results/<name>.{json,md} with the command that made it, the date
and the machine; README.md is those markdown files joined, so every figure in it was
measured by a command in this folder.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"

# name -> argv (after the interpreter); fast enough together for 2 cores in under an hour
BENCHMARKS = {
    "knapsack": ["benchmarks/knapsack.py"],
    "accuracy": ["benchmarks/accuracy.py", "--arch", "dscnn-s-img", "--dataset", "fmnist",
                 "--epochs", "3", "--finetune-epochs", "3", "--limit-train", "10000",
                 "--scratch-budgets", "0.25"],
    "runtime": ["benchmarks/runtime.py"],
}

INTRO = """# Benchmarks

Regenerate with `make bench` (or `python benchmarks/run.py`); each section below names the
command that produced it, the date and the machine. Shared machines are noisy: compare
ratios measured in one run, not absolute times across runs.
"""


def collect() -> None:
    parts = [INTRO]
    for md in sorted(RESULTS.glob("*.md")):
        parts.append(md.read_text().strip() + "\n")
    text = "\n".join(parts)
    tmp = HERE / ".README.md.tmp"
    tmp.write_text(text)
    tmp.replace(HERE / "README.md")
    print(f"wrote {HERE / 'README.md'} from {len(parts) - 1} result files")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--only", choices=list(BENCHMARKS), action="append")
    p.add_argument("--collect", action="store_true", help="only rebuild README.md")
    args = p.parse_args(argv)
    if not args.collect:
        for name in args.only or BENCHMARKS:
            print(f"== {name}", flush=True)
            subprocess.run([sys.executable, *BENCHMARKS[name]], cwd=HERE.parent, check=True)
    collect()
    return 0


if __name__ == "__main__":
    sys.exit(main())
