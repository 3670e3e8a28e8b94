"""What shrinking does to representations: `reds probe` on a cross-entropy and a SupCon
family, beside global magnitude pruning (one-shot and gradual) at each submodel's size.

    python benchmarks/probe.py --profile quick    # minutes on 2 cores: what `make bench` runs
    python benchmarks/probe.py                    # the full profile (hours on a CPU)

Every family is a `reds.train.Trainer` run (`reds train`, with `--loss supcon` for the
contrastive one) in benchmarks/runs/probe-<profile>/<run>/, resumed from its checkpoint
when there is one; every probe is `reds probe FAMILY --baselines one-shot,gradual` into
<run>-probe/, skipped when a probe with the same settings is there. Kill it at any point
and run it again: it continues. Writes results/probe-<arch>-<dataset>[-<profile>].{json,md,png}.
"""
from __future__ import annotations

import datetime
import json
import os
import shlex
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as `reds` does: it runs beside other work

from accuracy import parser  # noqa: E402
from machine import describe as describe_machine  # noqa: E402
from publish import publish  # noqa: E402
from reds.family import MANIFEST, atomic_write  # noqa: E402
from reds.tables import markdown as md_table  # noqa: E402

PROFILES = {
    "full": {"width_mult": 1.0, "limit_train": None, "epochs": 10, "finetune_epochs": 10, "head_epochs": 2,
             "limit": 10000, "train_samples": 10000, "prune_epochs": 5},
    "quick": {"width_mult": 0.5, "limit_train": 4000, "epochs": 2, "finetune_epochs": 2, "head_epochs": 1,
              "limit": 2000, "train_samples": 3000, "prune_epochs": 1},
}
RUNS = {"ce": "cross-entropy pretraining", "supcon": "supervised contrastive pretraining + linear head"}
BASELINES = ["one-shot", "gradual"]


def train(run: str, args, prof: dict, folder: Path) -> None:
    from reds.train import TrainConfig, Trainer

    if (folder / MANIFEST).exists() and not (folder / "checkpoint.pt").exists():
        print(f"== {run}: trained before", flush=True)
        return
    print(f"== {run}: {RUNS[run]}", flush=True)
    cfg = TrainConfig(arch=args.arch, dataset=args.dataset, data_dir=args.data_dir, epochs=prof["epochs"],
                      finetune_epochs=prof["finetune_epochs"], limit_train=prof["limit_train"],
                      width_mult=prof["width_mult"], seed=args.seed, loss=run, temperature=args.temperature,
                      head_epochs=prof["head_epochs"])
    Trainer(cfg, folder, device=args.device, threads=args.threads).run(resume=True)


def probe(run: str, args, prof: dict, family: Path, out: Path) -> dict:
    from reds.probe import ProbeConfig, run as probe_run

    cfg = ProbeConfig(limit=prof["limit"], train_samples=prof["train_samples"], baselines=BASELINES,
                      prune_epochs=prof["prune_epochs"], data_dir=args.data_dir, seed=args.seed)
    settings = {k: v for k, v in vars(cfg).items() if k != "data_dir"}
    if (out / "probe.json").exists():
        done = json.loads((out / "probe.json").read_text())
        if done.get("settings") == settings:
            print(f"== {run}: probed before", flush=True)
            return done
    print(f"== {run}: probing", flush=True)
    return probe_run(family, out, (), cfg, lambda m: print(m, flush=True))


def main(argv=None) -> int:
    p = parser(__doc__, PROFILES, "families and probes (default: benchmarks/runs/probe-PROFILE)")
    p.add_argument("--temperature", type=float, default=0.1)
    args = p.parse_args(argv)
    prof = PROFILES[args.profile]
    work = args.work or HERE / "runs" / f"probe-{args.profile}"
    stem = f"probe-{args.arch}-{args.dataset}" + ("" if args.profile == "full" else f"-{args.profile}")
    given = argv if argv is not None else sys.argv[1:]
    command = "python benchmarks/probe.py " + shlex.join(given)
    probes = {}
    for run in RUNS:
        train(run, args, prof, work / run)
        r = probe(run, args, prof, work / run, work / f"{run}-probe")
        fam = json.loads((work / run / MANIFEST).read_text())
        probes[run] = {"train_seconds": fam["training"]["seconds"], "device": fam["training"].get("device"),
                       "train_samples": fam["training"]["train_samples"],
                       "models": [{k: m[k] for k in ("name", "kind", "budget", "macs", "params", "weights",
                                                     "accuracy")}
                                  | {"pies": m["pies"]["count"], "pie_fraction": m["pies"]["fraction"],
                                     "pie_accuracy": m["pies"]["accuracy_model"],
                                     "pie_accuracy_full": m["pies"]["accuracy_reference"],
                                     "q_score_normalised": m["q_score_normalised"]["mean"],
                                     "q_score": m["q_score"]["mean"], "depth": m["depth"]["mean"],
                                     "depth_of": m["depth"]["of"]} for m in r["models"]],
                       "test_examples": r["test_examples"], "train_examples": r["train_examples"]}
    result = {"command": command, "date": datetime.date.today().isoformat(), "machine": describe_machine(),
              "arch": args.arch, "dataset": args.dataset, "profile": args.profile, **prof,
              "temperature": args.temperature, "runs": probes, "plot": f"{stem}.png"}
    args.out.mkdir(parents=True, exist_ok=True)
    plot(result, args.out / f"{stem}.png")
    publish(args.out, stem, result, markdown)
    return 0


HEADERS = ["pretraining", "model", "MACs", "weights", "accuracy %", "PIEs %", "accuracy on PIEs %",
           "full submodel on these PIEs %",
           "Q-score (normalised)", "prediction depth"]


def table_rows(r: dict) -> list[list[str]]:
    rows = []
    for run, v in r["runs"].items():
        for m in sorted(v["models"], key=lambda m: (m["kind"] != "reds", m["kind"], -m["budget"])):
            rows.append([run, m["name"], f"{m['macs']:,}", f"{m['weights']:,}", f"{m['accuracy']:.2f}",
                         f"{100 * m['pie_fraction']:.2f}",
                         "-" if m["pie_accuracy"] is None else f"{m['pie_accuracy']:.1f}",
                         "-" if m["pie_accuracy_full"] is None else f"{m['pie_accuracy_full']:.1f}",
                         f"{m['q_score_normalised']:.3f}", f"{m['depth']:.2f} / {m['depth_of']}"])
    return rows


def markdown(r: dict) -> str:
    v = next(iter(r["runs"].values()))
    samples = f"{r['limit_train']:,}" if r["limit_train"] else "all"
    return (f"## What shrinking does to representations: {r['arch']} on {r['dataset']} ({r['profile']} profile)\n\n"
            f"`{r['command'].strip()}` ({r['date']}, {r['machine']})\n\n"
            f"Families at width {r['width_mult']:g}, {r['epochs']} + {r['finetune_epochs']} epochs on {samples} "
            f"training samples (SupCon: temperature {r['temperature']:g}, then {r['head_epochs']} epoch(s) of a "
            f"linear head; fine-tuning is cross-entropy for both). Magnitude pruning keeps each smaller submodel's "
            f"number of conv/dense weights of the full submodel, fine-tuned {r['prune_epochs']} epoch(s) "
            f"(MACs: those of its nonzero weights). Metrics on the first {v['test_examples']:,} test images; k-NN "
            f"probes (k = 30) fitted on {v['train_examples']:,} training images; PIEs against the family's full "
            f"submodel; prediction depth: mean / number of probe points.\n\n"
            + md_table(HEADERS, table_rows(r)) + f"\n\n![probe metrics vs MACs](results/{r['plot']})\n")


def plot(r: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(11, 7.5), dpi=110)
    colors = {"reds": "#1f77b4", "one-shot": "#d62728", "gradual": "#2ca02c"}
    for ax, (key, label) in zip(axes.flat, (("accuracy", "test accuracy (%)"), ("pie_fraction", "PIEs (%)"),
                                            ("q_score_normalised", "mean Q-score (normalised)"),
                                            ("depth", "mean prediction depth"))):
        for run, style in (("ce", "o-"), ("supcon", "s--")):
            if run not in r["runs"]:
                continue
            for kind, color in colors.items():
                ms = sorted((m for m in r["runs"][run]["models"] if m["kind"] == kind), key=lambda m: m["macs"])
                if ms:
                    scale = 100 if key == "pie_fraction" else 1
                    ax.plot([m["macs"] / 1e6 for m in ms], [scale * m[key] for m in ms], style, color=color,
                            label=f"{kind}, {run}")
        ax.set_xlabel("MACs (millions)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes.flat[0].legend(fontsize=8)
    fig.suptitle(f"{r['arch']} on {r['dataset']}, {r['profile']} profile: reds vs magnitude pruning, CE vs SupCon",
                 fontsize=11)
    fig.tight_layout()
    atomic_write(path, lambda p: fig.savefig(p, format="png"))
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
