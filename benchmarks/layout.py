"""Nested vs rowmajor weight layout on the virtual Cortex-M4: instructions per submodel.

    python benchmarks/layout.py [--width 1.0] [--arch dnn-s ...] [--out results/layout.md]

Random-weight families (tests/families.make_family: instruction counts do not depend on
the weights' values) of every architecture are built for qemu-m4 once per layout and
benched (`reds bench`, outputs checked against PyTorch). Cycles are QEMU instruction
counts (`-icount`), the same on every run, so one run per submodel is enough. The target
(issue 14): nested <= rowmajor + 2 % for every architecture and submodel.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE.parent / "tests"))

from families import make_family  # noqa: E402

from reds.bench.bench import bench  # noqa: E402
from reds.family import atomic_write  # noqa: E402
from reds.family import open as open_family  # noqa: E402
from reds.ir.archs import ARCHS  # noqa: E402
from reds.tables import markdown as md_table  # noqa: E402

LAYOUTS = ("rowmajor", "nested")
TARGET_PCT = 2.0


def measure(arch: str, width: float, runs: int) -> dict:
    """{layout: [cycles of submodel 0, 1, ...]} and the submodels' MACs."""
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        fam = make_family(Path(tmp), arch, width)
        for layout in LAYOUTS:
            r = bench(open_family(fam), "qemu-m4", runs=runs, layout=layout, build_dir=Path(tmp) / f"build-{layout}",
                      log=lambda m: None)
            if not r["outputs_match"]:
                raise SystemExit(f"{arch} {layout}: outputs differ from PyTorch")
            out[layout] = [s["cycles_median"] for s in r["submodels"]]
            out["macs"] = [s["macs"] for s in r["submodels"]]
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--width", type=float, default=1.0)
    p.add_argument("--arch", nargs="*", default=list(ARCHS))
    p.add_argument("--runs", type=int, default=1)
    p.add_argument("--out", type=Path, default=HERE / "results" / "layout.md")
    args = p.parse_args(argv)
    rows, data = [], {}
    for arch in args.arch:
        m = measure(arch, args.width, args.runs)
        pct = [100.0 * (n / r - 1.0) for n, r in zip(m["nested"], m["rowmajor"])]
        data[arch] = {**m, "nested_vs_rowmajor_pct": pct}
        rows.append([arch, " / ".join(f"{c:,}" for c in m["rowmajor"]), " / ".join(f"{c:,}" for c in m["nested"]),
                     " / ".join(f"{v:+.2f}" for v in pct), "yes" if max(pct) <= TARGET_PCT else "NO"])
        print(arch, rows[-1], file=sys.stderr, flush=True)
    cmd = "python benchmarks/layout.py " + shlex.join(argv if argv is not None else sys.argv[1:])
    md = (f"## Weight layouts: nested vs rowmajor on the virtual Cortex-M4 (width x{args.width:g})\n\n"
          f"`{cmd}` ({datetime.date.today().isoformat()}, {platform.machine()}, {os.cpu_count()} cores). "
          "Random-weight families; cycles are QEMU instruction counts (`-icount`), per submodel "
          "(smallest first). Target: nested <= rowmajor + 2 %.\n\n"
          + md_table(["arch", "rowmajor cycles", "nested cycles", "nested - rowmajor %", "<= +2 %"], rows) + "\n")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(args.out, lambda f: f.write_text(md))
    atomic_write(args.out.with_suffix(".json"), lambda f: f.write_text(json.dumps(data, indent=1) + "\n"))
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
