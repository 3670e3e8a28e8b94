"""Accuracy per budget: reds's default recipe, REDS's recipe, distillation, the same widths
trained alone (scratch), and REDS's published figure.

    python benchmarks/accuracy.py                    # the full-length table (hours on a CPU)
    python benchmarks/accuracy.py --profile quick    # minutes: what `make bench` runs
    python benchmarks/accuracy.py --runs default     # only some runs

Every run is a `reds.train.Trainer` run (the same code as `reds train`) in
benchmarks/runs/accuracy-<profile>/<run>/, resumed from its checkpoint when there is one:
kill this script at any point, run it again (here or on another machine, `--device cuda`)
and it continues where it stopped. A finished run is not trained again. After every run
(finished or not) it writes results/accuracy-<arch>-<dataset>[-<profile>].{json,md} and a
plot; an unfinished run shows the phase and epoch it reached and its last validation
accuracies. Everything in the tables is measured here, except the column REDS
(ANCHORS: arXiv 2311.13349).
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import shlex
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as `reds` does: it runs beside other work

from machine import describe as describe_machine  # noqa: E402
from publish import publish  # noqa: E402
from reds.bench.report import PUBLISHED  # noqa: E402
from reds.family import MANIFEST, atomic_write, read_manifest  # noqa: E402
from reds.tables import markdown as md_table  # noqa: E402

# epochs of pretraining + fine-tuning; REDS fine-tunes 250 epochs (then 10 of batch norm)
PROFILES = {
    "full": {"epochs": 30, "finetune_epochs": 30, "reds_finetune_epochs": 250, "limit_train": None,
             "scratch_budgets": [0.25]},
    "quick": {"epochs": 3, "finetune_epochs": 3, "reds_finetune_epochs": 3, "limit_train": 10000,
              "scratch_budgets": [0.25]},
}
RUNS = {
    "default": "reds, default recipe (+ the scratch baseline)",
    "distill": "reds, default recipe + --distill",
    "reds": "reds --recipe reds (REDS's schedule)",
}


def config(run: str, args, prof: dict):
    from reds.train import TrainConfig

    kw = dict(arch=args.arch, dataset=args.dataset, data_dir=args.data_dir, epochs=prof["epochs"],
              finetune_epochs=prof["finetune_epochs"], limit_train=prof["limit_train"], seed=args.seed)
    if run == "default":
        kw.update(baseline="scratch", baseline_budgets=prof["scratch_budgets"])
    elif run == "distill":
        kw.update(distill=True)
    elif run == "reds":
        kw.update(recipe="reds", finetune_epochs=prof["reds_finetune_epochs"])
    return TrainConfig(**kw)


def progress(folder: Path) -> dict:
    """Where a run stands: its family once there is one (a run whose scratch baseline still
    trains has it too), and the last metrics row it wrote."""
    rows = []
    if (folder / "metrics.jsonl").exists():
        rows = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines() if line.strip()]
    last = rows[-1] if rows else None
    val = next((r["val_accuracy"] for r in reversed(rows) if r.get("val_accuracy")), None)
    running, family = (folder / "checkpoint.pt").exists(), (folder / MANIFEST).exists()
    out = {"status": "finished" if family and not running else "not started" if last is None else
           f"at {last['phase']}" + (f" epoch {last['epoch']}" if "epoch" in last else ""), "val_accuracy": val}
    if family:
        fam = read_manifest(folder)
        out.update(seconds=fam.training["seconds"], device=fam.training.get("device"),
                   train_samples=fam.training["train_samples"], test_samples=fam.training["test_samples"],
                   submodels=[{"budget": s.budget, "macs": s.macs, "accuracy": s.accuracy,
                               "scratch_accuracy": s.scratch_accuracy} for s in fam.submodels])
    return out


def parser(doc: str, profiles, work_help: str) -> argparse.ArgumentParser:
    """The arguments this benchmark shares with benchmarks/probe.py (a family per run)."""
    p = argparse.ArgumentParser(description=doc.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--arch", default="dscnn-s-img")
    p.add_argument("--dataset", default="fmnist")
    p.add_argument("--data-dir")
    p.add_argument("--profile", choices=list(profiles), default="full")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--threads", type=int)
    p.add_argument("--work", type=Path, help=work_help)
    p.add_argument("--out", type=Path, default=HERE / "results")
    p.add_argument("--seed", type=int, default=0)
    return p


def main(argv=None) -> int:
    p = parser(__doc__, PROFILES, "checkpoints and families (default: benchmarks/runs/accuracy-PROFILE)")
    p.add_argument("--runs", nargs="+", choices=list(RUNS), default=list(RUNS), help="which runs, in this order")
    p.add_argument("--report-only", action="store_true", help="write the table from the runs as they stand")
    args = p.parse_args(argv)
    prof = PROFILES[args.profile]
    work = args.work or HERE / "runs" / f"accuracy-{args.profile}"
    stem = f"accuracy-{args.arch}-{args.dataset}" + ("" if args.profile == "full" else f"-{args.profile}")
    # the table comes from the command that trains (--report-only only reads its runs)
    given = argv if argv is not None else sys.argv[1:]
    command = "python benchmarks/accuracy.py " + shlex.join(a for a in given if a != "--report-only")
    if args.report_only and not work.is_dir():
        raise SystemExit(f"{work}: no runs to report; run without --report-only first")
    if not args.report_only:
        from reds.train import Trainer

        for run in args.runs:
            folder = work / run
            if progress(folder)["status"] == "finished":  # else resumed, or started
                print(f"== {run}: finished before", flush=True)
                continue
            print(f"== {run}: {RUNS[run]}", flush=True)
            Trainer(config(run, args, prof), folder, device=args.device, threads=args.threads).run(resume=True)
            write(args, prof, work, stem, command)
    write(args, prof, work, stem, command)
    return 0


def write(args, prof, work: Path, stem: str, command: str) -> None:
    runs = {run: progress(work / run) for run in RUNS}
    published = PUBLISHED.get((args.arch, args.dataset), {})
    result = {
        "command": command, "date": datetime.date.today().isoformat(),
        "machine": describe_machine(),
        "arch": args.arch, "dataset": args.dataset, "profile": args.profile, **prof, "runs": runs,
        "reds_published": {str(k): v for k, v in published.items()}, "plot": f"{stem}.png",
    }
    args.out.mkdir(parents=True, exist_ok=True)
    plot(result, args.out / f"{stem}.png")
    publish(args.out, stem, result, markdown)


HEADERS = ["budget", "MACs", "reds (default) %", "reds --recipe reds %", "reds --distill %", "scratch %",
           "REDS published %", "best reds - REDS"]


def _f(v):
    return "-" if v is None else f"{v:.2f}"


def table_rows(r: dict) -> list[list[str]]:
    runs, published = r["runs"], r["reds_published"]
    base = next((v for v in runs.values() if "submodels" in v), None)
    if base is None:
        return []
    out = []
    for i in reversed(range(len(base["submodels"]))):
        s = base["submodels"][i]

        def acc(run, key="accuracy", i=i):
            v = runs[run]
            return _f(v["submodels"][i][key]) if "submodels" in v else "-"
        pub = published.get(str(round(s["budget"], 2)))
        best = max((runs[k]["submodels"][i]["accuracy"] for k in ("default", "distill", "reds")
                    if "submodels" in runs[k]), default=None)
        out.append([f"{s['budget']:.0%}", f"{s['macs']:,}", acc("default"), acc("reds"), acc("distill"),
                    acc("default", "scratch_accuracy"), _f(pub),
                    "-" if pub is None or best is None else f"{best - pub:+.2f}"])
    return out


def markdown(r: dict) -> str:
    head = (f"## Accuracy: {r['arch']} on {r['dataset']} ({r['profile']} length)\n\n"
            f"`{r['command'].strip()}` ({r['date']}, {r['machine']})\n\n")
    rows = table_rows(r)
    table = md_table(HEADERS, rows) if rows else "(no run has finished yet)"
    runs = []
    for name, v in r["runs"].items():
        epochs = (f"{r['epochs']} + {r['reds_finetune_epochs'] if name == 'reds' else r['finetune_epochs']}"
                  + (" + BN" if name == "reds" else ""))
        val = v.get("val_accuracy")
        status = v["status"] + ("" if v["status"] == "finished" or not val else
                                f" (last validation {' / '.join(f'{a:.2f}' for a in val)} %)")
        if "submodels" in v:
            runs.append([name, epochs, f"{v['train_samples']:,}", v.get("device") or "-",
                         f"{v['seconds'] / 60:.1f} min", status])
        else:
            runs.append([name, epochs, "-", "-", "-", status])
    runs_table = md_table(["run", "epochs (pretrain + fine-tune)", "train samples", "device", "wall time",
                           "status"], runs)
    return (head + table + "\n\n" + runs_table + "\n\nThe scratch column trains the smallest submodel's widths "
            "alone for pretraining + fine-tuning epochs. Test accuracy on the 10,000 test images; "
            "wall time is the family's (the scratch baseline trains after it).\n\n"
            + (f"![accuracy vs MACs](results/{r['plot']})\n" if rows else ""))


def plot(r: dict, path: Path) -> None:
    if not table_rows(r):
        return
    import matplotlib
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9.5, 4.8), dpi=120)
    styles = {"default": ("reds (default recipe)", "o-"), "reds": ("reds --recipe reds", "s-"),
              "distill": ("reds --distill", "^-")}
    for name, (label, style) in styles.items():
        v = r["runs"][name]
        if "submodels" in v:
            subs = v["submodels"]
            ax.plot([s["macs"] / 1e6 for s in subs], [s["accuracy"] for s in subs], style, label=label)
    base = next(v for v in r["runs"].values() if "submodels" in v)["submodels"]
    scratch = [(s["macs"] / 1e6, s["scratch_accuracy"]) for s in r["runs"]["default"].get("submodels", [])
               if s["scratch_accuracy"] is not None]
    if scratch:
        ax.plot(*zip(*scratch), "D", color="black", label="same widths trained alone")
    pub = [(s["macs"] / 1e6, r["reds_published"][str(round(s["budget"], 2))]) for s in base
           if str(round(s["budget"], 2)) in r["reds_published"]]
    if pub:
        ax.plot(*zip(*pub), "x--", color="#7f7f7f", label="REDS published")
    ax.set_xlabel("MACs (millions)")
    ax.set_ylabel("test accuracy (%)")
    samples = f"{r['limit_train']:,} samples" if r["limit_train"] else "all training samples"
    ax.set_title(f"{r['arch']} on {r['dataset']}: accuracy per submodel\n{r['profile']} length: "
                 f"{r['epochs']} + {r['finetune_epochs']} epochs (REDS's recipe {r['epochs']} + "
                 f"{r['reds_finetune_epochs']}) on {samples}", fontsize=11)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1), fontsize=9)  # outside: the curves span the plot
    fig.tight_layout()
    atomic_write(path, lambda p: fig.savefig(p, format="png"))
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
