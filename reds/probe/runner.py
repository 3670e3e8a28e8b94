"""`reds probe`: what each submodel of a family gives up, and how its representations degrade.

    reds probe FAMILY [--seeds FAMILY2 ...] --out DIR [--limit N] [--baselines one-shot,gradual]

Per submodel (and per magnitude-pruned network of the same size, when asked for):
accuracy and per-class accuracy; PIEs (`pies`) against the full submodel, or with
`--seeds`, the modal prediction of each size over the families against the modal
prediction of their full submodels; the Q-score of the penultimate representation
(`qscore`); prediction depth from k-NN probes at every block's output (`depth`, `points`).
The metrics read the first N test examples (`--limit`); the k-NN probes are fitted on a
seeded draw of training examples. `report` writes probe.json, probe.md and the plots.

The baselines prune the family's full submodel (its weights and batch norm), or `--from`
pretrained weights, to each smaller submodel's number of conv/dense weights (`pruning`),
then fine-tune on the training examples the family was trained on (the same seeded draw,
batch size, fine-tuning rate and augmentation its `family.json` records).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from ..data.base import Split
from ..errors import RedsError
from ..family import OpenFamily
from ..family import open as open_family
from ..train.trainer import family_data
from ..nn.nested import NestedNet
from . import depth as depth_mod
from .pies import modal, pies
from .points import block_outputs, representations
from .pruning import METHODS, effective_cost, kept_weights, prune
from .qscore import q_score, q_score_normalised

FORMAT = "reds-probe"
VERSION = 1


@dataclass
class ProbeConfig:
    limit: int | None = 2000  # test examples scored (None: all)
    train_samples: int = 5000  # training examples the k-NN probes are fitted on
    k: int = depth_mod.K
    baselines: list[str] = field(default_factory=list)  # "one-shot", "gradual"
    prune_epochs: int = 1
    init: str | None = None  # --from: pretrained weights to prune instead of the full submodel
    data_dir: str | None = None
    seed: int = 0
    batch_size: int = 500  # inference batches


@dataclass
class Model:
    name: str
    kind: str  # "reds", "one-shot", "gradual"
    budget: float
    net: NestedNet
    widths: dict | None
    bn: int
    cost: dict


def _same_arch(main: OpenFamily, other: OpenFamily) -> None:
    a, b = main.spec, other.spec
    if (a.ops, a.groups, a.input_shape, a.num_classes) != (b.ops, b.groups, b.input_shape, b.num_classes):
        raise RedsError(f"{other.dir}: a {other.manifest.arch} family at width {other.manifest.width_mult:g}, but "
                        f"{main.dir} is {main.manifest.arch} at width {main.manifest.width_mult:g}; --seeds takes "
                        "families of the same architecture trained with other seeds")
    if [s.budget for s in main.submodels] != [s.budget for s in other.submodels]:
        raise RedsError(f"{other.dir}: budgets {[s.budget for s in other.submodels]} differ from {main.dir}'s "
                        f"{[s.budget for s in main.submodels]}; --seeds takes families trained with the same budgets")
    if main.manifest.dataset != other.manifest.dataset or main.manifest.classes != other.manifest.classes:
        raise RedsError(f"{other.dir}: trained on {other.manifest.dataset}, {main.dir} on {main.manifest.dataset} "
                        "(or other classes); --seeds takes families of one data set")


def _draw(split: Split, n: int | None, seed: int) -> Split:
    """The trainer's draw of n examples (`Trainer._limit`: seeded permutation, sorted)."""
    if n is None or n >= len(split):
        return split
    idx = torch.randperm(len(split), generator=torch.Generator().manual_seed(seed))[:n].sort().values
    return Split(split.x[idx], split.y[idx])


def _pretrained(fam: OpenFamily, init: str | None) -> NestedNet:
    """The network the baselines prune: `init`, or the family's full submodel (its batch norm)."""
    spec = fam.spec
    net = NestedNet(spec, num_bn=1)
    if init:
        from ..nn.fx_import import read_init
        net.load_state_dict(read_init(init, spec))
    else:
        state = fam.net.state_dict()
        full = len(fam.submodels) - 1
        own = net.state_dict()
        for key in own:
            parts = key.split(".")
            if key in state:
                own[key] = state[key]
            else:  # layers.<bn>.0.<stat> <- layers.<bn>.<full>.<stat>
                own[key] = state[".".join(parts[:2] + [str(full)] + parts[3:])]
        net.load_state_dict(own)
    return net.eval()


def probe(family_dir, seeds=(), cfg: ProbeConfig | None = None, log=None) -> tuple[dict, dict]:
    """All the numbers (probe.json) and what the report draws from (test inputs, PIE masks)."""
    cfg = cfg or ProbeConfig()
    log = log or (lambda msg: None)
    bad = [b for b in cfg.baselines if b not in METHODS]
    if bad:
        raise RedsError(f"unknown baseline {bad[0]!r}; choose from {', '.join(METHODS)}")
    fam = open_family(family_dir).verify()
    others = [open_family(d).verify() for d in seeds]
    for o in others:
        _same_arch(fam, o)
    m, spec = fam.manifest, fam.spec
    ds = family_data(fam, cfg.data_dir)
    nc = ds.num_classes
    test = ds.splits["test"]
    n_test = len(test) if cfg.limit is None else min(cfg.limit, len(test))
    ds.splits["probe-test"] = Split(test.x[:n_test], test.y[:n_test])
    ds.splits["probe-train"] = _draw(ds.splits["train"], cfg.train_samples, cfg.seed)
    test_x = [x for x, _ in ds.batches("probe-test", cfg.batch_size)]
    train_x = [x for x, _ in ds.batches("probe-train", cfg.batch_size)]
    y, train_y = ds.splits["probe-test"].y, ds.splits["probe-train"].y
    points = block_outputs(spec)
    log(f"probing {m.arch} on {m.dataset}: {n_test} test examples, k-NN probes (k = {cfg.k}) at {len(points)} "
        f"points fitted on {len(train_y)} training examples")

    models = [Model(f"reds {s.budget:.0%}", "reds", s.budget, fam.net, s.widths, k,
                    {"macs": s.macs, "params": s.params, "weights": kept_weights(spec, s.widths)})
              for k, s in enumerate(fam.submodels)]
    if cfg.baselines:
        models += _baselines(fam, ds, cfg, log)

    @torch.no_grad()
    def preds(f: OpenFamily, k: int) -> torch.Tensor:
        f.net.eval()
        return torch.cat([f.net(x, f.submodels[k].widths, bn=k).argmax(1) for x in test_x])

    full = len(fam.submodels) - 1
    seed_preds = [[preds(o, k) for k in range(len(o.submodels))] for o in others]
    reference = modal([preds(fam, full)] + [p[full] for p in seed_preds], nc)  # the dense prediction
    rows, masks = [], {}
    for mod in models:
        logits, reps = representations(mod.net, test_x, mod.widths, mod.bn, points)
        _, train_reps = representations(mod.net, train_x, mod.widths, mod.bn, points)
        pred = logits.argmax(1)
        probes = torch.stack([depth_mod.knn_predict(train_reps[p], train_y, reps[p], nc, cfg.k) for p in points])
        mine = [pred] + ([p[mod.bn] for p in seed_preds] if mod.kind == "reds" else [])
        pie = pies(mine, reference, nc)
        masks[mod.name] = pie
        pen = reps[points[-1]]
        rows.append(_row(mod, pred, y, pie, reference, q_score(pen), q_score_normalised(pen),
                         depth_mod.prediction_depth(probes, pred), probes, points, nc))
        log(f"  {mod.name}: accuracy {rows[-1]['accuracy']:.2f} %, PIEs {rows[-1]['pies']['count']}, "
            f"Q-score (normalised) {rows[-1]['q_score_normalised']['mean']:.3f}, "
            f"prediction depth {rows[-1]['depth']['mean']:.2f}")
    result = {
        "format": FORMAT, "version": VERSION, "family": str(fam.dir), "arch": m.arch, "dataset": m.dataset,
        "width_mult": m.width_mult, "classes": list(ds.classes), "seeds": [str(o.dir) for o in others],
        "loss": m.training.get("loss", "ce"),
        "settings": {k: v for k, v in asdict(cfg).items() if k != "data_dir"},
        "test_examples": n_test, "train_examples": len(train_y), "points": points, "penultimate": points[-1],
        "pie_definition": ("modal prediction over the families' submodels of each size vs. the modal prediction of "
                           "their full submodels" if others else "the submodel's prediction vs. the full submodel's"),
        "models": rows,
    }
    return result, {"test": ds.splits["probe-test"], "inputs": torch.cat(test_x), "pies": masks,
                    "audio": ds.info.get("kind") == "audio"}


def _baselines(fam: OpenFamily, ds, cfg: ProbeConfig, log) -> list[Model]:
    """Magnitude-pruned copies of the pretrained network, one per smaller submodel and method."""
    from ..train.trainer import hash_seed

    t = fam.manifest.training
    base = _pretrained(fam, cfg.init)
    ds.splits["prune-train"] = _draw(ds.splits["train"], t.get("limit_train"), t.get("seed", 0))
    batch = int(t.get("batch_size") or 128)
    lr = float(t.get("finetune_lr") or 1e-3)
    augment = bool(t.get("augment", True))
    steps = math.ceil(ds.size("prune-train") / batch)

    def batches_for(epoch):
        gen = torch.Generator().manual_seed(hash_seed(cfg.seed, "prune", epoch))
        return ds.batches("prune-train", batch, shuffle=True, augment=augment, generator=gen)

    calib = [x for x, _ in ds.batches("prune-train", batch, shuffle=True, limit=2000,
                                      generator=torch.Generator().manual_seed(hash_seed(cfg.seed, "calibrate", 0)))]
    out = []
    for method in cfg.baselines:
        for s in fam.submodels[:-1]:
            keep = kept_weights(fam.spec, s.widths)
            log(f"magnitude pruning ({method}) to {keep:,} weights (the {s.budget:.0%} submodel's), "
                f"{cfg.prune_epochs} epoch(s) of fine-tuning")
            torch.manual_seed(hash_seed(cfg.seed, method, int(round(s.budget * 1000))))
            net, masks = prune(base, keep, method, cfg.prune_epochs, lr, batches_for, steps, calib, log)
            out.append(Model(f"{method} {s.budget:.0%}", method, s.budget, net, None, 0, effective_cost(net, masks)))
    return out


def _stats(v: torch.Tensor, y: torch.Tensor, nc: int, digits: int = 4) -> dict:
    v = v.double()
    per = [round(float(v[y == c].mean()), digits) if bool((y == c).any()) else None for c in range(nc)]
    return {"mean": round(float(v.mean()), digits) if len(v) else None,
            "median": round(float(v.median()), digits) if len(v) else None, "per_class": per}


def _row(mod: Model, pred, y, pie, reference, q, qn, dep, probes, points, nc) -> dict:
    correct = pred == y
    per_class = [round(100.0 * float(correct[y == c].float().mean()), 2) if bool((y == c).any()) else None
                 for c in range(nc)]
    L = len(points)
    idx = torch.nonzero(pie).flatten()
    return {
        "name": mod.name, "kind": mod.kind, "budget": mod.budget, **mod.cost,
        "accuracy": round(100.0 * float(correct.float().mean()), 3), "per_class_accuracy": per_class,
        "pies": {"count": int(pie.sum()), "fraction": round(float(pie.float().mean()), 5),
                 "per_class": [int((pie & (y == c)).sum()) for c in range(nc)],
                 "accuracy_model": round(100.0 * float(correct[pie].float().mean()), 2) if len(idx) else None,
                 "accuracy_reference": round(100.0 * float((reference == y)[pie].float().mean()), 2)
                 if len(idx) else None,
                 "indices": idx.tolist()},
        "q_score": _stats(q, y, nc, 6), "q_score_normalised": _stats(qn, y, nc),
        "depth": {**_stats(dep.double(), y, nc, 3), "of": L,
                  "histogram": torch.bincount(dep, minlength=L + 1).tolist()},
        "probe_accuracy": {p: round(100.0 * float((probes[i] == y).float().mean()), 2) for i, p in enumerate(points)},
    }


def run(family_dir, out, seeds=(), cfg: ProbeConfig | None = None, log=None) -> dict:
    """Probe, then write the report into `out` (whole or not at all)."""
    from .report import write

    out = Path(out)
    from ..staging import check_out
    check_out(out, "probe.json", FORMAT, "probe")  # before the (slow) data and probes
    result, extra = probe(family_dir, seeds, cfg, log)
    write(out, result, extra)
    return result
