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
sys.path.insert(0, str(HERE.parent))
RESULTS = HERE / "results"

# name -> argv (after the interpreter); fast enough together for 2 cores in under an hour
BENCHMARKS = {
    "knapsack": ["benchmarks/knapsack.py", "--time-limit", "20"],
    "device": ["benchmarks/device.py"],
    # the full-length table takes hours on a CPU (minutes on a GPU): `python benchmarks/accuracy.py`
    "accuracy": ["benchmarks/accuracy.py", "--profile", "quick"],
    "training": ["benchmarks/training.py"],
    "runtime": ["benchmarks/runtime.py"],
    "walkthrough": ["benchmarks/walkthrough.py"],
    # the full profile adapts the committed full-width family: `python benchmarks/adapt.py`
    "adapt": ["benchmarks/adapt.py", "--profile", "quick"],
    # dscnn-s on synth-kws with added noise; makes its data set (espeak-ng, sox) and family first
    "adapt-kws": ["benchmarks/adapt.py", "--profile", "quick", "--dataset", "synth-kws"],
    # width-only vs width+depth families (elastic depth), accuracy and virtual-M4 cycles;
    # the full profile takes hours on a CPU: `python benchmarks/depth.py`
    "depth": ["benchmarks/depth.py", "--profile", "quick"],
    # the full profile takes hours on a CPU: `python benchmarks/probe.py`
    "probe": ["benchmarks/probe.py", "--profile", "quick"],
    # int8 post-training quantization of the committed full-length family: float vs int8 per submodel
    "int8": ["benchmarks/int8.py"],
    # int8 vs float on the virtual M4 (instructions per MAC per layer kind, switch, flash, RAM)
    # and dscnn-l's fit on the Nano 33 BLE
    "int8-device": ["benchmarks/int8_device.py"],
    # reds int8 vs TFLite int8 (LiteRT, TFLite Micro) on the committed family: accuracy, agreement, host speed
    "int8-tflite": ["benchmarks/int8_tflite.py"],
    # int8 vs float for dscnn-s, cnn-s, dscnn-l (trains each family first: about an hour on a CPU)
    "int8-families": ["benchmarks/int8_families.py"],
}

INTRO = """# Benchmarks

Regenerate with `make bench` (or `python benchmarks/run.py`); each section below names the
command that produced it, the date and the machine. Shared machines are noisy: compare
ratios measured in one run, not absolute times across runs.
"""


START, END = "<!-- headline:start -->", "<!-- headline:end -->"
WALK_START, WALK_END = "<!-- walkthrough:start -->", "<!-- walkthrough:end -->"
PROBE_START, PROBE_END = "<!-- probe:start -->", "<!-- probe:end -->"


def probe_tables() -> str:
    """The README's `reds probe` table(s), from results/probe-*.json."""
    import json

    from probe import HEADERS, table_rows
    from reds.tables import markdown

    parts = []
    for path in sorted(RESULTS.glob("probe-*.json")):
        d = json.loads(path.read_text())
        parts.append(f"{d['arch']} on {d['dataset']}, {d['profile']} profile (`{d['command'].strip()}`, {d['date']}, "
                     f"{d['machine']}; the setup: benchmarks/results/{path.stem}.md):")
        parts.append(markdown(HEADERS, table_rows(d)))
        parts.append(f"![probe metrics vs MACs](benchmarks/results/{d['plot']})")
    return "\n\n".join(parts) or "(run `python benchmarks/probe.py --profile quick` to measure these)"


def walkthrough() -> str:
    """The README's walk-through with each command's measured wall time."""
    import json

    path = RESULTS / "walkthrough.json"
    if not path.exists():
        return "(run `python benchmarks/walkthrough.py` to time these steps)"
    d = json.loads(path.read_text())
    lines = ["```sh"]
    for s in d["steps"]:
        lines += [f"# {s['step']} ({s['seconds']:.0f} s)", s["command"]]
    lines.append("```")
    lines.append("")
    acc = d.get("test_accuracy", {})
    lines.append(f"Measured by `python benchmarks/walkthrough.py` ({d['date']}, {d['machine']}): "
                 f"{d['total_seconds']:.0f} s in all"
                 + ("; the family's test accuracy per budget: " + ", ".join(
                     f"{float(b):.0%} {a:.1f} %" for b, a in acc.items()) if acc else "") + ".")
    return "\n".join(lines)


def headline() -> str:
    """The headline table for the top-level README, from the results' JSON."""
    import json

    from reds.tables import markdown

    parts = []
    rt = RESULTS / "runtime.json"
    if rt.exists():
        d = json.loads(rt.read_text())
        rows = []
        for a in d["archs"]:
            q = a.get("qemu")
            if not q:
                continue
            full = a["submodels"][-1]["runtimes"]
            dev = max(abs(s["deviation_pct"]) for s in q["submodels"])
            rows.append([a["arch"], f"{q['switch']['median']:g} / {q['switch']['max']:g}",
                         f"{q['reds_switch_cycles_nano_64mhz']:,.0f}",
                         f"{q['submodels'][-1]['cycles_per_mac']:.2f}", f"{dev:.1f} %",
                         f"{full['tflite-micro']['ratio_to_reds']:.2f}x", f"{full['onnxruntime']['ratio_to_reds']:.2f}x"])
        parts.append(markdown(
            ["arch", "switch cycles, median / max (virtual M4)", "REDS switch, cycles (38 us at 64 MHz)",
             "cycles per MAC, full model", "latency vs MACs, worst deviation", "TFLite Micro time / reds (full)",
             "onnxruntime time / reds (full)"], rows))
        parts.append(f"From `{d['command'].strip()}` ({d['date']}); virtual-board cycles are QEMU instruction "
                     "counts. Host runtime ratios on an x86 host: above 1, reds is faster.")
    from accuracy import HEADERS, table_rows

    tables = [json.loads(p.read_text()) for p in sorted(RESULTS.glob("accuracy-*.json"))]
    for d in sorted(tables, key=lambda d: d["profile"] != "full"):  # the full-length table first
        done = [name for name, v in d["runs"].items() if v["status"] == "finished"]
        length = (f"{d['epochs']} + {d['finetune_epochs']} epochs (REDS's recipe: {d['epochs']} + "
                  f"{d['reds_finetune_epochs']} + BN)" + (f" on {d['limit_train']:,} samples" if d["limit_train"]
                                                          else " on all training samples"))
        parts.append(f"{d['arch']} on {d['dataset']}, {d['profile']} length, {length} "
                     f"(`{d['command'].strip()}`, {d['date']}); runs finished: {', '.join(done) or 'none yet'}"
                     + "".join(f"; {name} {v['status']}" for name, v in d["runs"].items()
                               if v["status"] != "finished") + ":")
        rows = table_rows(d)
        if rows:
            parts.append(markdown(HEADERS, rows))
        if rows and (RESULTS / d["plot"]).exists():
            parts.append(f"![accuracy vs MACs](benchmarks/results/{d['plot']})")
    for plot in sorted(RESULTS.glob("device-*-report/switch.png")):
        parts.append(f"![switch cost]({plot.relative_to(HERE.parent)})")
    return "\n\n".join(parts)


def update_readme() -> None:
    readme = HERE.parent / "README.md"
    text = readme.read_text()
    for start, end, block in ((START, END, headline), (WALK_START, WALK_END, walkthrough),
                              (PROBE_START, PROBE_END, probe_tables)):
        if start in text and end in text:
            head, rest = text.split(start, 1)
            _, tail = rest.split(end, 1)
            text = f"{head}{start}\n{block()}\n{end}{tail}"
    tmp = readme.with_name(".README.md.tmp")
    tmp.write_text(text)
    tmp.replace(readme)


def collect() -> None:
    parts = [INTRO]
    for md in sorted(RESULTS.glob("*.md")):
        parts.append(md.read_text().strip() + "\n")
    text = "\n".join(parts)
    tmp = HERE / ".README.md.tmp"
    tmp.write_text(text)
    tmp.replace(HERE / "README.md")
    print(f"wrote {HERE / 'README.md'} from {len(parts) - 1} result files")
    update_readme()


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
