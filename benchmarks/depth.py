"""Elastic depth: width-only vs width+depth families at the same budgets, accuracy and latency.

    python benchmarks/depth.py --profile quick     # what `make bench` runs (about half an hour on 2 cores)
    python benchmarks/depth.py                     # the full-length runs (hours on a CPU)
    python benchmarks/depth.py --setups dscnn-s-img/fmnist

For each setup (an architecture on a data set) four `reds.train.Trainer` runs (the code of
`reds train`) with the same seed: `--depth off` (widths only, REDS), `--depth on` (the
knapsack may skip blocks too, each worth its measured loss increase), the same after
pretraining with stochastic depth (`--layer-drop 0.25`), and `--depth on --block-importance
none` (skips cost nothing: does a shallower, wider submodel win once fine-tuned?), at
budgets of 10, 25, 50, 75 and 100 % of the MACs. All but the layer-drop run share one
pretraining. Runs live in benchmarks/runs/depth-<profile>/<setup>-<depth>/ and resume from
their checkpoints: kill the script and run it again to continue. Each finished family is
then built for the virtual Cortex-M4 and benched there (`reds bench`: every submodel and
every ordered switch timed on the device in cycles, outputs checked against PyTorch).
Writes results/depth[-<profile>].{json,md,png}.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import shlex
import sys
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from machine import describe as describe_machine  # noqa: E402
from publish import publish  # noqa: E402
from reds.family import MANIFEST, atomic_write, read_manifest  # noqa: E402
from reds.tables import markdown as md_table  # noqa: E402

BUDGETS = [0.1, 0.25, 0.5, 0.75, 1.0]
SETUPS = {  # name -> (arch, dataset)
    "dscnn-s-img/fmnist": ("dscnn-s-img", "fmnist"),
    "dscnn-s/synth-kws": ("dscnn-s", "synth-kws"),
    "dscnn-l/synth-kws": ("dscnn-l", "synth-kws"),
}
# each setup's training: the profile's settings, then its data set's and its architecture's
PROFILES = {
    "full": {"epochs": 30, "finetune_epochs": 30, "limit_train": None, "per_word": 400, "width": 1.0,
             "augment": True},
    "quick": {"epochs": 3, "finetune_epochs": 3, "limit_train": 10000, "per_word": 200, "width": 0.5,
              "augment": True,
              # synth-kws is small (2,660 clips) and its voices clean: more epochs, no added noise
              "synth-kws": {"epochs": 10, "finetune_epochs": 10, "augment": False},
              # dscnn-l has 10x dscnn-s's MACs: a quarter of its width keeps it in minutes
              "dscnn-l": {"width": 0.25}},
}
# run name -> (label, `reds train` flags)
VARIANTS = {
    "off": ("width only", "--depth off: REDS's knapsack"),
    "on": ("+depth", "--depth on: the knapsack may skip blocks, each worth its measured loss increase"),
    "drop": ("+depth, layer drop", "--depth on --layer-drop 0.25: pretrained with each block skipped a quarter "
             "of the time (stochastic depth), then as +depth"),
    "free": ("+depth, free skips", "--depth on --block-importance none: skipping a block costs nothing but "
             "what its own units were worth (an ablation)"),
}
TRAIN_FLAGS = {"off": {"depth": "off"}, "on": {"depth": "on"}, "drop": {"depth": "on", "layer_drop": 0.25},
               "free": {"depth": "on", "block_importance": "none"}}


def data_dir(dataset: str, prof: dict, work: Path) -> str | None:
    """fmnist: the Debian package's (the loader finds it); synth-kws: made in the work folder."""
    if dataset != "synth-kws":
        return None
    from reds.data.synth_kws import generate

    out = work / "data-synth-kws"
    s = generate(out, per_word=prof["per_word"], seed=0, progress=False)
    if s.get("created", True):
        print(f"made synth-kws ({s['utterances']:,} utterances, {s['seconds']:.0f} s) in {out}", flush=True)
    return str(out)


def settings(setup: str, prof: dict) -> dict:
    """How a setup trains in this profile: epochs, finetune_epochs, limit_train, width, augment."""
    arch, dataset = SETUPS[setup]
    out = {k: prof[k] for k in ("epochs", "finetune_epochs", "limit_train", "width", "augment")}
    out.update(prof.get(dataset, {}))
    out.update(prof.get(arch, {}))
    return out


def run_folder(work: Path, setup: str, variant: str) -> Path:
    return work / f"{setup.replace('/', '-')}-depth-{variant}"


def train(setup: str, variant: str, prof: dict, work: Path, args) -> None:
    from reds.train import TrainConfig, Trainer

    folder = run_folder(work, setup, variant)
    if (folder / MANIFEST).exists() and not (folder / "checkpoint.pt").exists():
        print(f"== {folder.name}: finished before", flush=True)
        return
    arch, dataset = SETUPS[setup]
    print(f"== {folder.name}", flush=True)
    st = settings(setup, prof)
    cfg = TrainConfig(arch=arch, dataset=dataset, data_dir=data_dir(dataset, prof, work), budgets=BUDGETS,
                      **TRAIN_FLAGS[variant], epochs=st["epochs"], finetune_epochs=st["finetune_epochs"],
                      limit_train=st["limit_train"], width_mult=st["width"], augment=st["augment"], seed=args.seed)
    Trainer(cfg, folder, device=args.device, threads=args.threads, progress=False).run(resume=True)


def latency(folder: Path, runs: int) -> dict:
    """The family benched on the virtual M4 (cached in the run folder as bench.json)."""
    cached = folder / "bench.json"
    if cached.exists():
        return json.loads(cached.read_text())
    from reds.bench.bench import bench
    from reds.errors import RedsError
    from reds.family import open as open_family

    try:
        r = bench(open_family(folder), "qemu-m4", runs=runs, log=lambda m: None)
    except RedsError as e:  # recorded in the table, not hidden
        return {"error": str(e)}
    out = {"outputs_match": r["outputs_match"], "switch": r["switch"],
           "cycles": [s["cycles_median"] for s in r["submodels"]]}
    atomic_write(cached, lambda p: p.write_text(json.dumps(out, indent=2) + "\n"))
    return out


def summary(folder: Path, runs: int, bench: bool) -> dict | None:
    if not (folder / MANIFEST).exists() or (folder / "checkpoint.pt").exists():
        return None
    fam = read_manifest(folder)
    spec = fam.spec()
    out = {"seconds": fam.training["seconds"], "knapsack_status": fam.knapsack["status"],
           "knapsack_seconds": fam.knapsack["seconds"],
           "submodels": [{"budget": s.budget, "macs": s.macs, "accuracy": s.accuracy,
                          "skips": [b.name for b in spec.skipped(s.widths)]}
                         for s in fam.submodels]}
    if bench:
        out["device"] = latency(folder, runs)
    return out


def write(result: dict, out: Path, stem: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    plot(result, out / f"{stem}.png")
    publish(out, stem, result, markdown)


def table_rows(runs: dict) -> tuple[list[list[str]], list[list[str]]]:
    """(accuracy rows, virtual-M4 cycle rows), or ([], []) until every variant is done."""
    if any(runs.get(v) is None for v in VARIANTS):
        return [], []
    acc, cyc = [], []
    for i, base in enumerate(runs["off"]["submodels"]):
        a, c = [f"{base['budget']:.0%}"], [f"{base['budget']:.0%}"]
        for v in VARIANTS:
            s = runs[v]["submodels"][i]
            dev = runs[v].get("device") or {}
            a += [f"{s['accuracy']:.2f}", f"{s['macs']:,}"]
            if v != "off":
                a.append(", ".join(b.removeprefix("skip_") for b in s["skips"]) or "-")
            c.append(f"{dev['cycles'][i]:,.0f}" if "cycles" in dev else "-")
        acc.append(a)
        cyc.append(c)
    return acc, cyc


ACC_HEADERS = ["budget"] + [h for v, (label, _) in VARIANTS.items()
                            for h in ([f"{label} %", "MACs"] + ([] if v == "off" else ["skipped"]))]
CYCLE_HEADERS = ["budget"] + [f"{label}: M4 cycles" for label, _ in VARIANTS.values()]


def markdown(r: dict) -> str:
    parts = [f"## Elastic depth: width-only vs width+depth ({r['profile']} profile)\n",
             f"`{r['command']}` ({r['date']}; {r['machine']}). Each setup: four runs with the same seed (all but "
             "the layer-drop one share their pretraining): " + "; ".join(f"{label} ({flags})" for label, flags in VARIANTS.values())
             + ". Test accuracy; cycles are the median of `reds bench` on the virtual Cortex-M4 "
             "(instructions, deterministic).\n"]
    parts.append(f"![accuracy vs MACs, width-only and width+depth](results/{r['plot']})\n")
    for setup, runs in r["setups"].items():
        st = settings(setup, r)
        parts.append(f"### {setup}\n\nwidth x{st['width']:g}, {st['epochs']} + {st['finetune_epochs']} epochs"
                     + (f" on at most {st['limit_train']:,} training samples" if st["limit_train"] else "")
                     + ("" if st["augment"] else ", no augmentation") + ".\n")
        rows, cycles = table_rows(runs)
        if not rows:
            parts.append("not finished: " + ", ".join(f"{VARIANTS[v][0]}: {'done' if runs.get(v) else 'not finished'}"
                                                    for v in VARIANTS) + "\n")
            continue
        parts.append(md_table(ACC_HEADERS, rows) + "\n")
        parts.append(md_table(CYCLE_HEADERS, cycles) + "\n")
        notes = []
        base = runs["off"]["submodels"]
        for v in [v for v in VARIANTS if v != "off"]:
            subs = runs[v]["submodels"]
            skipping = sum(bool(s["skips"]) for s in subs)
            diff = [s["accuracy"] - b["accuracy"] for s, b in zip(subs, base)]
            notes.append(f"{VARIANTS[v][0]} vs width only: skips blocks in {skipping} of {len(subs)} submodels; "
                         f"accuracy {min(diff):+.2f} to {max(diff):+.2f} points")
        for v, (label, _) in VARIANTS.items():
            run = runs[v]
            dev = run.get("device") or {}
            if "error" in dev:
                notes.append(f"{label}: not benched on the M4: {dev['error']}")
            elif dev:
                notes.append(f"{label}: outputs match PyTorch: {'yes' if dev['outputs_match'] else 'NO'}; "
                             f"switch {dev['switch']['median']:g} cycles median, {dev['switch']['max']:g} max")
            notes.append(f"{label}: knapsack {run['knapsack_status']} in {run['knapsack_seconds']:.2f} s; "
                         f"trained in {run['seconds'] / 60:.1f} min")
        parts.append("\n".join(f"- {n}" for n in notes) + "\n")
    return "\n".join(parts)


def plot(r: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter

    setups = list(r["setups"].items())
    fig, axes = plt.subplots(1, len(setups), figsize=(4.6 * len(setups), 3.8), squeeze=False)
    for ax, (setup, runs) in zip(axes[0], setups):
        # width only is drawn wide and pale: where +depth skips nothing it lies right on top
        looks = {"off": dict(fmt="o-", lw=5, alpha=0.35, ms=10), "on": dict(fmt="s-", lw=1.5, alpha=1, ms=5),
                 "drop": dict(fmt="D-", lw=1.5, alpha=1, ms=5), "free": dict(fmt="^--", lw=1.5, alpha=1, ms=6)}
        for v in VARIANTS:
            run, label, look = runs.get(v), VARIANTS[v][0], looks[v]
            if run:
                subs = run["submodels"]
                ax.plot([s["macs"] for s in subs], [s["accuracy"] for s in subs], look["fmt"], label=label,
                        lw=look["lw"], alpha=look["alpha"], ms=look["ms"])
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())  # the minor ticks' labels overlap
        ax.set_title(setup)
        ax.set_xlabel("MACs")
        ax.set_ylabel("test accuracy (%)")
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend()
    fig.tight_layout()
    atomic_write(path, lambda p: fig.savefig(p, dpi=110, format="png"))
    plt.close(fig)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--profile", choices=list(PROFILES), default="full")
    p.add_argument("--setups", nargs="+", choices=list(SETUPS), default=list(SETUPS))
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--threads", type=int)
    p.add_argument("--runs", type=int, default=3, help="timed runs per submodel on the virtual M4")
    p.add_argument("--no-bench", action="store_true", help="skip the virtual M4 (accuracy only)")
    p.add_argument("--report-only", action="store_true", help="write the tables from the runs as they stand")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--work", type=Path, help="runs (default: benchmarks/runs/depth-PROFILE)")
    p.add_argument("--out", type=Path, default=HERE / "results")
    args = p.parse_args(argv)
    prof = PROFILES[args.profile]
    work = args.work or HERE / "runs" / f"depth-{args.profile}"
    stem = "depth" + ("" if args.profile == "full" else f"-{args.profile}")
    given = argv if argv is not None else sys.argv[1:]
    command = "python benchmarks/depth.py " + shlex.join(a for a in given if a != "--report-only")
    result = {"command": command, "date": datetime.date.today().isoformat(), "machine": describe_machine(),
              "profile": args.profile, **prof, "budgets": BUDGETS, "plot": f"{stem}.png", "setups": {}}

    def collect():
        for setup in args.setups:
            result["setups"][setup] = {v: summary(run_folder(work, setup, v), args.runs, not args.no_bench)
                                       for v in VARIANTS}

    if not args.report_only:
        for setup in args.setups:
            for v in VARIANTS:
                try:
                    train(setup, v, prof, work, args)
                except Exception:  # one failed run must not lose the others' table
                    traceback.print_exc()
            collect()
            write(result, args.out, stem)
    collect()
    write(result, args.out, stem)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
