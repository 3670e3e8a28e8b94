"""Updating a deployed family: accuracy after adaptation vs trainable values vs update FLOPs
vs peak training memory, per method and rank, per submodel (the table of Slamanig, Corti,
Saukh, arXiv 2507.23536, for a nested family; FLOPs counted with depthwise convs right).

    python benchmarks/adapt.py --profile quick                      # dscnn-s-img on Fashion-MNIST: minutes on 2 cores
    python benchmarks/adapt.py --profile quick --dataset synth-kws  # dscnn-s on synth-kws: minutes on 2 cores
    python benchmarks/adapt.py                                      # full: the committed full-width family
    python benchmarks/adapt.py --profile quick --report-only        # redraw the plot and table from results/

Two setups (`--dataset`). fmnist: a dscnn-s-img family on Fashion-MNIST shifted (`reds
adapt`'s default image shift: rotated 30 +- 5 degrees, contrast 0.6 towards grey, noise
0.1); quick trains its own small family first (width 0.5 on 3,000 images, 2 + 2 epochs),
full adapts benchmarks/runs/accuracy-full/default (the full-width family of
benchmarks/accuracy.py, committed). synth-kws: a dscnn-s keyword-spotting family on synth-kws
clips shifted by `reds adapt`'s default audio shift (white noise 10 dB below each clip's
level); both profiles make their synth-kws data set first (espeak-ng and sox) and train
their own family (quick: 200 utterances per keyword, width 0.5, 12 + 12 epochs; full: 400
per keyword, full width, 10 + 10 epochs). The same shift on the training samples used to
adapt and on the test samples scored. Every run is `reds.adapt.adapt.adapt` (the code of
`reds adapt`) into runs/adapt-[synth-kws-]<profile>/<run>/; a run with its adapt.json is not
redone, so an interrupted benchmark continues where it stopped.
"""
from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import shlex
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from machine import describe as describe_machine  # noqa: E402
from publish import publish  # noqa: E402
from reds.family import atomic_write  # noqa: E402
from reds.tables import markdown as md_table  # noqa: E402

RANKS = [1, 2, 4, 8]
SETUPS = {
    "fmnist": {
        "arch": "dscnn-s-img", "title": "dscnn-s-img on shifted Fashion-MNIST", "samples": "images",
        "work": "adapt", "shift": "rotate=30 (+-5), contrast=0.6, noise=0.1 (reds adapt's default)",
        "profiles": {
            "quick": {"base": None, "width": 0.5, "base_train": 3000, "base_epochs": 2, "adapt_train": 1000,
                      "adapt_eval": 2000, "epochs": 1, "ranks": RANKS},
            "full": {"base": "benchmarks/runs/accuracy-full/default", "width": 1.0, "base_train": None,
                     "base_epochs": None, "adapt_train": 5000, "adapt_eval": 10000, "epochs": 3, "ranks": RANKS},
        }},
    "synth-kws": {
        "arch": "dscnn-s", "title": "dscnn-s on synth-kws with added noise", "samples": "clips",
        "work": "adapt-synth-kws", "shift": "white noise at snr=10 dB below each clip's level (reds adapt's default)",
        "profiles": {
            "quick": {"base": None, "per_word": 200, "width": 0.5, "base_train": None, "base_epochs": 12,
                      "adapt_train": None, "adapt_eval": None, "epochs": 3, "ranks": RANKS},
            "full": {"base": None, "per_word": 400, "width": 1.0, "base_train": None, "base_epochs": 10,
                     "adapt_train": None, "adapt_eval": None, "epochs": 3, "ranks": RANKS},
        }},
}
RANKED = ["lora", "dora", "galore", "adapter"]
UNRANKED = ["bn-stats", "bn-head", "full"]


def runs(prof) -> list[tuple[str, int]]:
    return [(m, 0) for m in UNRANKED] + [(m, r) for m in RANKED for r in prof["ranks"]]


def run_name(method, rank) -> str:
    return method if not rank else f"{method}-r{rank}"


def stem_of(dataset: str, profile: str) -> str:
    return f"adapt-{SETUPS[dataset]['arch']}-{dataset}" + ("" if profile == "full" else f"-{profile}")


def data_dir(args, prof, work: Path) -> str | None:
    """The data set's folder: --data-dir, or (synth-kws) one made in the work folder."""
    if args.data_dir or args.dataset != "synth-kws":
        return args.data_dir
    from reds.data.synth_kws import generate

    out = work / "data"
    s = generate(out, per_word=prof["per_word"], seed=0, progress=False)
    if s["created"]:
        print(f"made synth-kws ({s['utterances']:,} utterances, {s['seconds']:.0f} s) in {out}", flush=True)
    return str(out)


def base_family(args, prof, work: Path, data: str | None) -> Path:
    if prof["base"]:
        return HERE.parent / prof["base"]
    from reds.family import MANIFEST
    from reds.train import TrainConfig, Trainer

    folder = work / "base"
    if (folder / MANIFEST).exists() and not (folder / "checkpoint.pt").exists():
        return folder
    cfg = TrainConfig(arch=SETUPS[args.dataset]["arch"], dataset=args.dataset, data_dir=data,
                      epochs=prof["base_epochs"], finetune_epochs=prof["base_epochs"], limit_train=prof["base_train"],
                      limit_eval=2000, width_mult=prof["width"], seed=args.seed)
    Trainer(cfg, folder, progress=False).run(resume=True)
    return folder


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--profile", choices=["quick", "full"], default="full")
    p.add_argument("--dataset", choices=list(SETUPS), default="fmnist",
                   help="fmnist: dscnn-s-img, image shift; synth-kws: dscnn-s, noise at an SNR")
    p.add_argument("--data-dir", help="the data set's folder (default fmnist: the Debian package's; synth-kws: "
                                      "made in the work folder)")
    p.add_argument("--work", type=Path, help="runs (default: runs/adapt-PROFILE, runs/adapt-synth-kws-PROFILE)")
    p.add_argument("--out", type=Path, default=HERE / "results")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--report-only", action="store_true",
                   help="only redraw the plot and rewrite the markdown from results/<stem>.json (no training)")
    args = p.parse_args(argv)
    setup = SETUPS[args.dataset]
    prof = setup["profiles"][args.profile]
    stem = stem_of(args.dataset, args.profile)
    if args.report_only:
        path = args.out / f"{stem}.json"
        if not path.exists():
            sys.exit(f"{path} does not exist: run the benchmark without --report-only first")
        result = json.loads(path.read_text())
        plot(result, args.out / result["plot"])
        publish(args.out, stem, result, markdown)
        return 0
    work = args.work or HERE.parent / "runs" / f"{setup['work']}-{args.profile}"
    given = argv if argv is not None else sys.argv[1:]
    command = "python benchmarks/adapt.py " + shlex.join(given)

    from reds import family as fam_io
    from reds.adapt import profile as profiler
    from reds.adapt.adapt import REPORT, AdaptConfig, adapt

    data = data_dir(args, prof, work)
    base_dir = base_family(args, prof, work, data)
    base = fam_io.open(base_dir)
    widths = [s.widths for s in base.submodels]
    results = []
    for method, rank in runs(prof):
        name = run_name(method, rank)
        folder = work / name
        if not (folder / REPORT).exists():
            print(f"== {name}", flush=True)
            cfg = AdaptConfig(method=method, rank=rank or 4, task="shift", data_dir=data,
                              epochs=prof["epochs"], batch_size=args.batch_size, limit_train=prof["adapt_train"],
                              limit_eval=prof["adapt_eval"], seed=args.seed, keep_delta=method in RANKED)
            adapt(base, cfg, folder, log=lambda m: print(m, flush=True))
        rep = json.loads((folder / REPORT).read_text())
        model = profiler.model_for(base.spec, len(widths), method, rank or 1)
        pr = profiler.profile(model, widths, args.batch_size)
        chk = profiler.crosscheck(model, widths[-1], len(widths) - 1)
        results.append({"run": name, "method": method, "rank": rank or None, "seconds": rep["seconds"],
                        "train_samples": rep["train_samples"], "test_samples": rep["test_samples"],
                        "trainable_values": pr["trainable_values"],
                        "delta_bytes": rep.get("delta", {}).get("bytes"),
                        "before": [s["before"]["accuracy"] for s in rep["submodels"]],
                        "after": [s["after"]["accuracy"] for s in rep["submodels"]],
                        "flops_per_sample": pr["flops_per_sample"], "memory": pr["memory"],
                        "flops_per_sample_per_submodel": [s["total"] for s in pr["submodels"]],
                        "crosscheck_full_submodel": chk})
    result = {"command": command, "date": datetime.date.today().isoformat(), "machine": describe_machine(),
              "profile": args.profile, "arch": setup["arch"], "dataset": args.dataset, "title": setup["title"],
              "samples": setup["samples"], **prof, "base_family": str(base_dir.relative_to(HERE.parent))
              if base_dir.is_relative_to(HERE.parent) else str(base_dir),
              "base_accuracy_clean": [s.accuracy for s in base.submodels],
              "budgets": [s.budget for s in base.submodels], "macs": [s.macs for s in base.submodels],
              "batch_size": args.batch_size, "shift": setup["shift"],
              "adapt_train_samples": results[0]["train_samples"], "adapt_test_samples": results[0]["test_samples"],
              "runs": results, "plot": f"{stem}.png"}
    args.out.mkdir(parents=True, exist_ok=True)
    plot(result, args.out / f"{stem}.png")
    publish(args.out, stem, result, markdown)
    return 0


HEADERS = ["method", "rank", "trainable values", "update MFLOP / sample", "training MFLOP / sample",
           "peak training memory KiB", "of it activations KiB", "delta KiB"]


def table_rows(r: dict) -> list[list[str]]:
    rows = []
    for x in r["runs"]:
        f, m = x["flops_per_sample"], x["memory"]
        rows.append([x["method"], "-" if x["rank"] is None else str(x["rank"]), f"{x['trainable_values']:,}",
                     f"{f['update'] / 1e6:.2f}", f"{f['total'] / 1e6:.2f}", f"{m['peak'] / 1024:,.0f}",
                     f"{m['activations'] / 1024:,.0f}",
                     "-" if x["delta_bytes"] is None else f"{x['delta_bytes'] / 1024:.1f}"]
                    + [f"{b:.1f} -> {a:.1f}" for b, a in zip(x["before"], x["after"])])
    return rows


def headers(r: dict) -> list[str]:
    return HEADERS + [f"acc. {b:.0%} % (before -> after)" for b in r["budgets"]]


def _title(r: dict) -> str:
    return r.get("title", "dscnn-s-img on shifted Fashion-MNIST")  # results from before the synth-kws setup


def _count(r: dict, split: str) -> str:
    """How many samples were adapted on ("train") / scored ("test"); results from before
    these were recorded name only the limit."""
    n = r.get(f"adapt_{split}_samples") or r["adapt_train" if split == "train" else "adapt_eval"]
    return f"{n:,}"


def markdown(r: dict) -> str:
    chk = [x["crosscheck_full_submodel"] for x in r["runs"]]
    agree = all(c["agree"] for c in chk)
    over = [c["depthwise_overcount"] for c in chk if c["depthwise_overcount"] and c["depthwise_overcount"] > 1.01]
    samples = r.get("samples", "images")
    text = (f"## Updating a family: {_title(r)} ({r['profile']} profile)\n\n"
            f"`{r['command'].strip()}` ({r['date']}, {r['machine']})\n\n"
            f"Base family `{r['base_family']}` (clean test accuracy per budget "
            + ", ".join(f"{b:.0%} {a:.1f} %" for b, a in zip(r["budgets"], r["base_accuracy_clean"]) if a is not None)
            + f"); shift: {r['shift']}; every method adapts all {len(r['budgets'])} submodels together for "
            f"{r['epochs']} epoch(s) on {_count(r, 'train')} shifted training {samples}, then every submodel's "
            f"batch norms are recalibrated; accuracy on {_count(r, 'test')} "
            f"shifted test {samples}. FLOPs per sample of one "
            f"step over all submodels at batch {r['batch_size']} (update = everything but the forward convs and matmuls: backward, optimizer, and the elementwise work, "
            "forward included, so bn-stats, which only recomputes statistics, shows its batch norms' forward), "
            "counted per op with depthwise convs right; memory: parameters, gradients and optimizer state exact, "
            "activations measured (autograd's saved tensors, the largest submodel's graph).\n\n"
            + md_table(headers(r), table_rows(r)) + "\n\n"
            f"torch's FlopCounterMode {'agrees exactly' if agree else 'DISAGREES'} with these counts on every "
            "non-depthwise op of the full submodel in every run"
            + (f"; on depthwise convs whose weights train (galore, full) it counts "
               + (f"{min(over):.1f}x" if f"{min(over):.1f}" == f"{max(over):.1f}" else
                  f"{min(over):.1f}x to {max(over):.1f}x") + " the true FLOPs (the weight gradient as a dense conv)"
               if over else "") + ".\n\n"
            f"![accuracy vs cost](results/{r['plot']})\n")
    return text


def _count_axis(ax, largest: float) -> None:
    """Trainable values from 0 (bn-stats) to `largest`: linear below 10, logarithmic above,
    ticks 0, 10, 100, ... only (no negative side)."""
    import matplotlib.ticker as mt

    ax.set_xscale("symlog", linthresh=10, linscale=0.4)
    top = max(largest, 10) * 1.6
    powers = range(1, math.floor(math.log10(top)) + 1)
    ax.set_xlim(-3, top)  # 0 a little off the frame
    ax.xaxis.set_major_locator(mt.FixedLocator([0] + [10 ** e for e in powers]))
    ax.xaxis.set_major_formatter(mt.FuncFormatter(lambda v, _: "0" if v <= 0 else f"$10^{{{round(math.log10(v))}}}$"))
    ax.xaxis.set_minor_locator(mt.FixedLocator([m * 10 ** e for e in powers for m in range(2, 10)
                                                if m * 10 ** e < top]))


def plot(r: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    axes_of = [("trainable values", lambda x: x["trainable_values"]),
               ("update MFLOP / sample", lambda x: x["flops_per_sample"]["update"] / 1e6),
               ("peak training memory (MiB)", lambda x: x["memory"]["peak"] / 2 ** 20)]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.6), dpi=110)
    colors = {"lora": "C0", "dora": "C1", "galore": "C2", "adapter": "C3", "bn-head": "C4", "full": "C5",
              "bn-stats": "C7"}
    last = len(r["budgets"]) - 1
    for ax, (label, fx) in zip(axes, axes_of):
        for method in colors:
            xs = [x for x in r["runs"] if x["method"] == method]
            if not xs:
                continue
            for k, marker in ((last, "o-"), (0, "s--")):
                ax.plot([fx(x) for x in xs], [x["after"][k] for x in xs], marker, color=colors[method],
                        label=f"{method} ({r['budgets'][k]:.0%})", alpha=1.0 if k == last else 0.6)
        ax.axhline(r["runs"][0]["before"][last], color="grey", lw=0.8, ls=":")
        ax.set_xlabel(label)
        ax.set_ylabel("shifted test accuracy after (%)")
        ax.grid(alpha=0.3)
        if label.startswith("trainable"):
            _count_axis(ax, max(fx(x) for x in r["runs"]))
        else:
            ax.set_xlim(left=-0.03 * max(fx(x) for x in r["runs"]))
    axes[-1].legend(loc="upper left", bbox_to_anchor=(1.02, 1), fontsize=7)
    fig.suptitle(f"{_title(r)} ({r['profile']}): ranks {r['ranks']} along each line; "
                 "solid: full submodel, dashed: smallest; dotted: full submodel before", fontsize=10)
    fig.tight_layout()
    atomic_write(path, lambda p: fig.savefig(p, format="png"))
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
