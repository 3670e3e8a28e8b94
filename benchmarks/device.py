"""On-device timing on the virtual Cortex-M4: every architecture, and one family plotted.

    python benchmarks/device.py [--arch dscnn-s] [--width 1.0] [--all-width 0.25]

Random-weight families (tests/families.make_family: timing does not depend on training)
are built for qemu-m4 and benched (`reds bench`: every submodel and every ordered switch
timed on the device, outputs checked against PyTorch). Every architecture runs at a small
width; `--arch` also runs at `--width` and `reds report` draws its latency vs MACs and
switch cost. Writes results/device-<arch>.md and results/device-<arch>-report/.
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

from reds.ir.archs import ARCHS  # noqa: E402
from reds.bench.bench import bench  # noqa: E402
from reds.family import atomic_write  # noqa: E402
from reds.family import open as open_family  # noqa: E402
from reds.bench.report import report  # noqa: E402
from reds.tables import markdown as md_table  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--arch", default="dscnn-s")
    p.add_argument("--width", type=float, default=1.0)
    p.add_argument("--all-width", type=float, default=0.25, help="width of the every-architecture table")
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--out", type=Path, default=HERE / "results")
    args = p.parse_args(argv)
    stem = f"device-{args.arch}"
    rows = []
    for arch in ARCHS:
        with tempfile.TemporaryDirectory() as tmp:
            r = bench(open_family(make_family(Path(tmp), arch, args.all_width)), "qemu-m4", runs=args.runs, log=lambda m: None)
        subs = r["submodels"]
        rows.append([arch, len(subs), "yes" if r["outputs_match"] else "NO",
                     f"{r['switch']['median']:g} / {r['switch']['max']:g}",
                     " / ".join(f"{s['cycles_median'] / s['macs']:.2f}" for s in subs)])
        print(arch, rows[-1], file=sys.stderr, flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        fam = make_family(Path(tmp), args.arch, args.width)
        rep = bench(open_family(fam), "qemu-m4", runs=args.runs, log=lambda m: print(m, file=sys.stderr))
        bench_json = Path(tmp) / "bench.json"
        bench_json.write_text(json.dumps(rep))
        args.out.mkdir(parents=True, exist_ok=True)
        report(open_family(fam), os.path.relpath(args.out / f"{stem}-report"), bench_json)
    cmd = "python benchmarks/device.py " + shlex.join(argv if argv is not None else sys.argv[1:])
    md = (f"## On the device: {args.arch} (width x{args.width:g}) on the virtual Cortex-M4\n\n"
          f"`{cmd}` ({datetime.date.today().isoformat()}, {platform.machine()}, {os.cpu_count()} cores). "
          "Random-weight families; cycles are QEMU instruction counts (`-icount`), the same on every run.\n\n"
          f"Every architecture at width x{args.all_width:g}:\n\n"
          + md_table(["arch", "submodels", "outputs match PyTorch", "switch cycles median / max",
                      "cycles per MAC, per submodel"], rows) + "\n\n"
          f"{args.arch} at width x{args.width:g}:\n\n"
          f"![latency vs MACs](results/{stem}-report/latency.png)\n\n"
          f"![switch cost](results/{stem}-report/switch.png)\n")
    atomic_write(args.out / f"{stem}.md", lambda p: p.write_text(md))
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
