"""What `reds probe` writes into its --out folder (staged, renamed in whole when done):

- `probe.json`: every number (per model: cost, accuracy per class, PIEs with their test
  indices, Q-score, prediction depth with its histogram, each k-NN probe's accuracy);
- `probe.md`: the tables;
- `accuracy.png`, `pies.png`, `qscore.png`, `depth.png`: each metric against MACs, one line
  per kind of model (the reds family, each magnitude-pruning baseline);
- the PIEs of each smaller reds submodel: `pies-<size>.png`, a grid of the first GRID of
  them (images), or `pies-<size>/NNNNN.wav` and `pies-<size>.txt` listing them (speech: the
  clips as 16 kHz WAVs, named by their test index).
"""
from __future__ import annotations

import json
import wave
from pathlib import Path

import torch

from .. import staging
from ..tables import markdown

GRID = 48  # PIEs drawn (or written as WAVs) per submodel
SAMPLE_RATE = 16000
COLORS = {"reds": "#1f77b4", "one-shot": "#d62728", "gradual": "#2ca02c"}
LABELS = {"reds": "reds (nested, structured)", "one-shot": "magnitude pruning, one-shot",
          "gradual": "magnitude pruning, gradual (cubic)"}


def slug(name: str) -> str:
    return name.replace(" ", "-").replace("%", "")


def tables(r: dict) -> str:
    head = ["model", "MACs", "params", "weights", "accuracy %", "PIEs", "PIE %", "accuracy on PIEs %",
            "Q-score (normalised)", "Q-score", "prediction depth"]
    rows = []
    for m in r["models"]:
        p = m["pies"]
        rows.append([m["name"], f"{m['macs']:,}", f"{m['params']:,}", f"{m['weights']:,}", f"{m['accuracy']:.2f}",
                     p["count"], f"{100 * p['fraction']:.2f}",
                     "-" if p["accuracy_model"] is None else f"{p['accuracy_model']:.1f}",
                     f"{m['q_score_normalised']['mean']:.3f}", f"{m['q_score']['mean']:.4g}",
                     f"{m['depth']['mean']:.2f} of {m['depth']['of']}"])
    classes = r["classes"]
    per = [[c] + [f"{m['per_class_accuracy'][i]:.1f} / {m['pies']['per_class'][i]} / "
                  f"{m['depth']['per_class'][i]:.2f}" if m['per_class_accuracy'][i] is not None else "-"
                  for m in r["models"]] for i, c in enumerate(classes)]
    probes = [[p] + [f"{m['probe_accuracy'][p]:.1f}" for m in r["models"]] for p in r["points"]]
    return (f"## Probe of {r['arch']} on {r['dataset']}\n\n"
            f"{r['test_examples']:,} test examples; k-NN probes (k = {r['settings']['k']}) fitted on "
            f"{r['train_examples']:,} training examples at {len(r['points'])} points; PIEs: "
            f"{r['pie_definition']}.\n\n" + markdown(head, rows) + "\n\n"
            "Per class: accuracy % / PIEs / mean prediction depth\n\n"
            + markdown(["class"] + [m["name"] for m in r["models"]], per) + "\n\n"
            "k-NN probe accuracy % at each point (the last: the penultimate representation)\n\n"
            + markdown(["point"] + [m["name"] for m in r["models"]], probes) + "\n")


def _plot(r: dict, path: Path, key, ylabel: str) -> None:
    import matplotlib
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    for kind in COLORS:
        ms = sorted((m for m in r["models"] if m["kind"] == kind), key=lambda m: m["macs"])
        if ms:
            ax.plot([m["macs"] / 1e6 for m in ms], [key(m) for m in ms], "o-", color=COLORS[kind], label=LABELS[kind])
    ax.set_xlabel("MACs (millions; pruning: MACs of its nonzero weights)")
    ax.set_ylabel(ylabel)
    ax.set_title(f"{r['arch']} on {r['dataset']}: {ylabel}", fontsize=11)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=9)
    fig.tight_layout()
    fig.savefig(path, format="png")
    plt.close(fig)


def _grid(inputs: torch.Tensor, idx: list[int], title: str, labels, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    n = len(idx)
    cols = min(8, n)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(1.5 * cols, 1.75 * rows + 0.6), dpi=100, squeeze=False)
    for a in axes.flat:
        a.axis("off")
    for a, i, lab in zip(axes.flat, idx, labels):
        img = inputs[i].float()
        img = (img - img.min()) / (img.max() - img.min()).clamp(min=1e-12)
        a.imshow(img[0] if img.shape[0] != 3 else img.permute(1, 2, 0), cmap="gray" if img.shape[0] != 3 else None)
        a.set_title(lab, fontsize=6)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, format="png")
    plt.close(fig)


def _wav(path: Path, clip: torch.Tensor) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE)
        w.writeframes(clip.to(torch.int16).numpy().tobytes())


def write(out: Path, r: dict, extra: dict) -> None:
    with staging.staged(out, "probe.json", r["format"], "probe") as tmp:
        files = {"data": "probe.json", "tables": "probe.md"}
        for name, key, label in (("accuracy", lambda m: m["accuracy"], "test accuracy (%)"),
                                 ("pies", lambda m: 100 * m["pies"]["fraction"], "PIEs (% of test examples)"),
                                 ("qscore", lambda m: m["q_score_normalised"]["mean"], "mean Q-score (normalised)"),
                                 ("depth", lambda m: m["depth"]["mean"], "mean prediction depth")):
            _plot(r, tmp / f"{name}.png", key, label)
            files[name] = f"{name}.png"
        classes, y = r["classes"], extra["test"].y
        full = next(m for m in reversed(r["models"]) if m["kind"] == "reds")
        for m in r["models"]:
            if m["kind"] != "reds" or m is full or not m["pies"]["count"]:
                continue
            idx = m["pies"]["indices"][:GRID]
            if extra["audio"] and extra["test"].x.dim() == 2:  # raw int16 clips
                folder = tmp / f"pies-{slug(m['name'])}"
                folder.mkdir()
                lines = []
                for i in idx:
                    _wav(folder / f"{i:05d}.wav", extra["test"].x[i])
                    lines.append(f"{folder.name}/{i:05d}.wav\t{classes[int(y[i])]}")
                (tmp / f"{folder.name}.txt").write_text("\n".join(lines) + "\n")
                files[f"pies {m['name']}"] = f"{folder.name}.txt"
            elif extra["inputs"].dim() == 4:
                labels = [f"#{i} {classes[int(y[i])]}"[:18] for i in idx]
                _grid(extra["inputs"], idx, f"PIEs of {m['name']} (first {len(idx)} of {m['pies']['count']}): "
                      "test index and true class", labels, tmp / f"pies-{slug(m['name'])}.png")
                files[f"pies {m['name']}"] = f"pies-{slug(m['name'])}.png"
        r["files"] = files
        (tmp / "probe.md").write_text(tables(r) + "\n" + "\n".join(
            f"![{k}]({v})" for k, v in files.items() if v.endswith(".png")) + "\n")
        (tmp / "probe.json").write_text(json.dumps(r, indent=1) + "\n")
