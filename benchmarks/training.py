"""Training speed: this trainer against an older commit's, side by side on this machine, and
the nested network against a plain PyTorch model of the same widths.

    python benchmarks/training.py                       # against the commit before the speed work
    python benchmarks/training.py --baseline <commit>   # against any commit

The old commit is checked out into a temporary git worktree and run by the same harness,
alternately with the new one (best of --repeats), in this interpreter's environment:
 - samples per second of one pretraining epoch (full width) and of one fine-tuning epoch
   (four submodels per step), each with its per-epoch validation;
 - the wall time of one whole `reds train` with each version's default flags;
 - one training step of NestedNet against reds.nn.plain's nn.Sequential of the same
   widths (the cost of slicing weights at run time; goal <= 1.2x).
Writes results/training.{json,md}.
"""
from __future__ import annotations

import argparse
import datetime
import json
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from machine import describe as describe_machine  # noqa: E402
from publish import publish  # noqa: E402
from reds.family import atomic_write  # noqa: E402
from reds.tables import markdown as md_table  # noqa: E402

BASELINE = "fa4f660"  # the last commit before the training-speed work (issue 12)

# Runs in a fresh interpreter with one source tree first on sys.path; prints one JSON line.
HARNESS = r"""
import inspect, json, sys, tempfile, time
sys.path.insert(0, sys.argv[1])
import torch
from reds.nn.nested import NestedNet
from reds.train.trainer import TrainConfig, Trainer, submodel_weights
arch, dataset, limit, batch = sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
cfg = TrainConfig(arch=arch, dataset=dataset, limit_train=limit, batch_size=batch, epochs=1, finetune_epochs=1)
t = Trainer(cfg, tempfile.mkdtemp(), progress=False, log=lambda m: None)
spec = t.spec
full = spec.full_widths()
widths = [{g: max(2, round(u * f)) for g, u in full.items()} for f in (0.5, 0.7, 0.85, 1.0)]
torch.manual_seed(0)
net = NestedNet(spec, num_bn=1)
opt = torch.optim.Adam(net.parameters(), lr=1e-3)
bounded = "limit" in inspect.signature(t._accuracy).parameters
t._fixed("val")  # featurised once, before the clock starts

def epoch(ws, phase):
    t0 = time.perf_counter()
    t._epoch(net, opt, phase, 0, ws, submodel_weights(spec, ws), 1, 1e-3)
    train = time.perf_counter() - t0
    t0 = time.perf_counter()
    for k, w in enumerate(ws):
        t._accuracy(net, "val", w, k, cfg.val_per_epoch) if bounded else t._accuracy(net, "val", w, k)
    return {"train_s": train, "val_s": time.perf_counter() - t0,
            "samples_per_s": t.ds.size("train") / (train + time.perf_counter() - t0)}

out = {"pretrain": epoch([full], "pretrain")}
net.set_num_bn(len(widths))
out["finetune"] = epoch(widths, "finetune")
print(json.dumps(out))
"""

WHOLE = r"""
import sys
sys.path.insert(0, sys.argv[1])
from reds.cli import main
sys.exit(main(sys.argv[2:]))
"""

OVERHEAD = r"""
import json, sys, time
sys.path.insert(0, sys.argv[1])
import torch
import torch.nn.functional as F
from reds.ir.archs import build_spec
from reds.nn.nested import NestedNet
from reds.nn.plain import plain_model
arch, dataset, batch = sys.argv[2], sys.argv[3], int(sys.argv[4])
spec = build_spec(arch, dataset=dataset)
torch.manual_seed(0)
net = NestedNet(spec)
x = torch.randn(batch, *spec.input_shape).contiguous(memory_format=torch.channels_last)
y = torch.randint(0, spec.num_classes, (batch,))
rows = []
for f in (1.0, 0.5):
    w = {g: max(2, round(u * f)) for g, u in spec.full_widths().items()}
    plain = plain_model(net, w)
    runs = {"nested": (lambda: net(x, w), torch.optim.Adam(net.parameters(), lr=1e-3)),
            "plain": (lambda: plain(x), torch.optim.Adam(plain.parameters(), lr=1e-3))}
    best = {name: float("inf") for name in runs}
    for rep in range(6):  # alternately, so a noisy neighbour slows both alike
        for name, (fwd, opt) in runs.items():
            t0 = time.perf_counter()
            for _ in range(10):
                opt.zero_grad(set_to_none=True)
                F.cross_entropy(fwd(), y).backward()
                opt.step()
            if rep:  # the first round warms up
                best[name] = min(best[name], (time.perf_counter() - t0) / 10)
    rows.append({"width": f, "nested_ms": best["nested"] * 1e3, "plain_ms": best["plain"] * 1e3,
                 "ratio": best["nested"] / best["plain"]})
print(json.dumps(rows))
"""


# Importance from 25 minibatches against 100 (REDS's, and the default), on a network
# pretrained for one epoch: rank agreement per group and the widths the knapsack then picks.
IMPORTANCE = r"""
import json, sys, tempfile
sys.path.insert(0, sys.argv[1])
import torch
from reds.nn.importance import scores
from reds.nn.nested import NestedNet
from reds.nn.permute import order_by_importance
from reds.search.knapsack import Limits, solve
from reds.train.trainer import TrainConfig, Trainer
arch, dataset, limit, batch = sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
cfg = TrainConfig(arch=arch, dataset=dataset, limit_train=limit, batch_size=batch, epochs=1, finetune_epochs=1)
t = Trainer(cfg, tempfile.mkdtemp(), progress=False, log=lambda m: None)
torch.manual_seed(0)
net = NestedNet(t.spec)
t._epoch(net, torch.optim.Adam(net.parameters(), lr=1e-3), "pretrain", 0, [t.spec.full_widths()], [1.0], 1, 1e-3)
t._calibrate(net, t.spec.full_widths(), 0)
gen = torch.Generator().manual_seed(0)
batches = list(t.ds.batches("train", 64, shuffle=True, generator=gen))
batches = (batches * 100)[:100]
out = {}
for n in (25, 100):
    sc = scores(net, "grad", batches[:n])
    perm = order_by_importance(sc)
    norm = {g: s[perm[g]] / s.sum() for g, s in sc.items()}
    sols = solve(t.spec, norm, [0.25, 0.5, 0.75, 1.0], "bottom-up", Limits(None, None, {}), 30.0, 0)
    out[n] = {"scores": {g: s.tolist() for g, s in sc.items()}, "widths": [s.widths for s in sols]}
def spearman(a, b):
    ra, rb = (torch.tensor(v).argsort().argsort().double() for v in (a, b))
    ra, rb = ra - ra.mean(), rb - rb.mean()
    return float((ra * rb).sum() / (ra.norm() * rb.norm()))
rho = {g: spearman(out[25]["scores"][g], out[100]["scores"][g]) for g in out[25]["scores"]}
same = sum(a == b for a, b in zip(out[25]["widths"], out[100]["widths"]))
print(json.dumps({"spearman": rho, "same_widths": same, "budgets": 4, "widths_25": out[25]["widths"],
                  "widths_100": out[100]["widths"]}))
"""


def _run(code: str, *argv, cwd=None) -> tuple[str, float]:
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-c", code, *map(str, argv)], capture_output=True, text=True, cwd=cwd)
    if r.returncode:
        raise SystemExit(f"benchmark harness failed:\n{r.stderr[-3000:]}")
    return r.stdout.strip().splitlines()[-1] if r.stdout.strip() else "", time.perf_counter() - t0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--baseline", default=BASELINE, help="the commit to compare against")
    p.add_argument("--arch", default="dscnn-s-img")
    p.add_argument("--dataset", default="fmnist")
    p.add_argument("--limit-train", type=int, default=6400, help="training samples per epoch")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--out", type=Path, default=HERE / "results")
    p.add_argument("--render", action="store_true", help="only rewrite training.md from training.json")
    args = p.parse_args(argv)
    if args.render:
        text = markdown(json.loads((args.out / "training.json").read_text()))
        atomic_write(args.out / "training.md", lambda p: p.write_text(text))
        print(text)
        return 0

    old = subprocess.run(["git", "rev-parse", "--short", args.baseline], cwd=ROOT, capture_output=True,
                         text=True)
    if old.returncode:
        raise SystemExit(f"{args.baseline}: not a commit of this repository ({old.stderr.strip()})")
    new_rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                             text=True).stdout.strip()
    results: dict = {"old": {}, "new": {}}
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp) / "old"
        subprocess.run(["git", "worktree", "add", "--detach", "-q", str(tree), args.baseline], cwd=ROOT, check=True)
        try:
            trees = {"old": tree, "new": ROOT}
            flags = ["--arch", args.arch, "--dataset", args.dataset, "--limit-train", str(args.limit_train),
                     "--epochs", "2", "--finetune-epochs", "2", "--quiet"]
            for rep in range(args.repeats):
                for name, root in trees.items():
                    print(f"== {name} ({rep + 1}/{args.repeats})", flush=True)
                    line, _ = _run(HARNESS, root, args.arch, args.dataset, args.limit_train, args.batch_size)
                    phases = json.loads(line)
                    _, whole = _run(WHOLE, root, "train", *flags, "--out", Path(tmp) / f"{name}{rep}")
                    best = results[name]
                    for ph, v in phases.items():
                        if ph not in best or v["samples_per_s"] > best[ph]["samples_per_s"]:
                            best[ph] = v
                    best["whole_s"] = min(best.get("whole_s", float("inf")), whole)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT)
    line, _ = _run(OVERHEAD, ROOT, args.arch, args.dataset, args.batch_size)
    imp, _ = _run(IMPORTANCE, ROOT, args.arch, args.dataset, args.limit_train, args.batch_size)
    result = {
        "command": "python benchmarks/training.py " + shlex.join(argv if argv is not None else sys.argv[1:]),
        "date": datetime.date.today().isoformat(),
        "machine": describe_machine(),
        "arch": args.arch, "dataset": args.dataset, "limit_train": args.limit_train,
        "batch_size": args.batch_size, "baseline_commit": old.stdout.strip(), "new_commit": new_rev,
        "whole_run_flags": " ".join(flags), **results, "overhead": json.loads(line),
        "importance": json.loads(imp),
    }
    publish(args.out, "training", result, markdown)
    return 0


def markdown(r: dict) -> str:
    imp = r["importance"]
    rows = []
    for ph in ("pretrain", "finetune"):
        o, n = r["old"][ph], r["new"][ph]
        rows.append([ph, f"{o['samples_per_s']:,.0f}", f"{n['samples_per_s']:,.0f}",
                     f"{n['samples_per_s'] / o['samples_per_s']:.2f}x",
                     f"{o['val_s']:.1f} / {n['val_s']:.1f}"])
    rows.append(["whole `reds train`", f"{r['old']['whole_s']:.0f} s", f"{r['new']['whole_s']:.0f} s",
                 f"{r['old']['whole_s'] / r['new']['whole_s']:.2f}x", "-"])
    over = md_table(["width", "NestedNet step, ms", "plain nn.Sequential step, ms", "nested / plain"],
                    [[f"{o['width']:g}", f"{o['nested_ms']:.1f}", f"{o['plain_ms']:.1f}", f"{o['ratio']:.2f}x"]
                     for o in r["overhead"]])
    return (f"## Training speed: {r['arch']} on {r['dataset']}\n\n"
            f"`{r['command'].strip()}` ({r['date']}, {r['machine']})\n\n"
            f"Commit {r['baseline_commit']} against {r['new_commit']}, alternately, best of the repeats; one epoch of "
            f"{r['limit_train']:,} samples at batch {r['batch_size']} (samples per second include the epoch's "
            f"validation; the newer trainer also augments the images). The whole run is "
            f"`reds train {r['whole_run_flags']}` with each commit's defaults.\n\n"
            + md_table(["phase", "old samples/s", "new samples/s", "speed-up", "validation s, old / new"], rows)
            + "\n\nThe nested network's weight slicing against a plain PyTorch model of the same widths "
              "(one training step, batch " + f"{r['batch_size']}, alternately, best of 5 x 10 steps; reds.nn.plain "
              "pads with a separate layer where the nested net pads inside the conv):\n\n" + over
            + "\n\nImportance from 25 minibatches against 100 (REDS's, `--importance-batches`' default), after "
              "one pretraining epoch: Spearman rank correlation of the unit scores per group "
            + ", ".join(f"{g} {v:.3f}" for g, v in imp["spearman"].items())
            + f"; the knapsack picks the same widths at {imp['same_widths']} of {imp['budgets']} budgets"
            + ("" if imp["same_widths"] == imp["budgets"] else
               " (25: " + "; ".join(",".join(str(v) for v in w.values()) for w in imp["widths_25"]) + " / 100: "
               + "; ".join(",".join(str(v) for v in w.values()) for w in imp["widths_100"]) + ")") + ".\n")


if __name__ == "__main__":
    sys.exit(main())
