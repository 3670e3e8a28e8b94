"""`reds adapt`: update every submodel of a deployed family together on new data.

One step = every submodel's forward and backward on the same minibatch, its loss weighted
as in training (REDS's alpha_k), the gradients accumulated (one submodel's activations live
at a time), then one optimizer step. Batch norms run on batch statistics while adapting and
are recalibrated per submodel on the new training data at the end, for every method.
Accuracy per submodel is measured on the new data's test split before and after
(new-classes: on the old classes' and the new classes' test samples apart, argmax over all).

The output: a normal family (the update merged into the shared weights: `reds export`,
`reds build` and `reds bench` take it unchanged) and `adapt.json` (the report); with
`--keep-delta` also `delta.safetensors`, what a device holding the old family needs: the
low-rank factors and the tensors that changed (batch-norm statistics at least). Adapters
are a nonlinear branch: they are only ever a delta (no family.json).
"""
from __future__ import annotations

import hashlib
import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from .. import data as datasets
from .. import family as fam_io
from ..data.base import Split
from ..errors import RedsError
from ..ir.cost import cost
from ..ir.inputs import InputNorm
from ..nn.nested import NestedNet
from ..train.trainer import hash_seed, reload_settings, submodel_weights
from . import shifts
from .methods import DEFAULT_LR, MERGEABLE, AdaptedNet, check_method, check_rank, head_name, optimizer

REPORT = "adapt.json"
DELTA = "delta.safetensors"
DELTA_FORMAT = "reds-delta"


@dataclass
class AdaptConfig:
    method: str
    rank: int = 4
    task: str = "shift"
    dataset: str | None = None  # default: the family's
    data_dir: str | None = None  # default: the family's
    shift: str | None = None  # e.g. "rotate=30,noise=0.1"
    epochs: int = 1
    batch_size: int = 64
    lr: float | None = None  # default: DEFAULT_LR[method]
    limit_train: int | None = 2000
    limit_eval: int | None = 2000
    calib_samples: int = 1000
    seed: int = 0
    keep_delta: bool = False

    def __post_init__(self):
        check_method(self.method)
        if self.task not in shifts.TASKS:
            raise RedsError(f"unknown task '{self.task}'; choose one of: {', '.join(shifts.TASKS)}")
        if self.lr is None:
            self.lr = DEFAULT_LR[self.method]


class Task:
    """The new data, ready: features normalised as the family normalises its input."""

    def __init__(self, family: fam_io.OpenFamily, cfg: AdaptConfig):
        man = family.manifest
        name = cfg.dataset or man.dataset
        data_dir = cfg.data_dir or (man.training.get("data_dir") if name == man.dataset else None)
        kw = reload_settings(family)
        if name != man.dataset:
            kw = {"kws_stride_ms": kw["kws_stride_ms"], "seed": kw["seed"]}
        self.ds = ds = datasets.load(name, data_dir, **kw)
        if list(ds.input_shape) != list(man.input_shape):
            raise RedsError(f"data set {name} gives inputs {tuple(ds.input_shape)}, but the family expects "
                            f"{tuple(man.input_shape)}")
        gen = torch.Generator().manual_seed(cfg.seed)
        for split, n in (("train", cfg.limit_train), ("test", cfg.limit_eval)):
            s = ds.splits[split]
            if n is not None and n < len(s):
                idx = torch.randperm(len(s), generator=gen)[:n].sort().values
                ds.splits[split] = Split(s.x[idx], s.y[idx])
        self.old_classes = man.num_classes
        self.shift = None
        if cfg.task == "shift":
            if ds.num_classes != man.num_classes or (man.classes and list(ds.classes) != list(man.classes)):
                raise RedsError(f"data set {name} has {ds.num_classes} classes ({', '.join(ds.classes[:6])}...), the "
                                f"family {man.num_classes}: --task shift needs the family's classes (new classes: "
                                "--task new-classes)")
            self.shift = shifts.shift(ds, cfg.shift, hash_seed(cfg.seed, "shift", 0))
        else:
            if cfg.shift:
                raise RedsError("--shift applies to --task shift only")
            shifts.new_classes(ds, list(man.classes), man.num_classes)
        self.classes = list(ds.classes)
        self.num_classes = len(self.classes)
        fam_norm, data_norm = family.input_norm, InputNorm.from_info(ds.info, ds.input_shape)
        self.convert = (None if fam_norm is None or data_norm is None or fam_norm == data_norm
                        else (data_norm, fam_norm))
        self.cfg = cfg
        self.test = [self._features(x, y) for x, y in ds.batches("test", 500)]

    def _features(self, x, y):
        if self.convert is not None:
            data_norm, fam_norm = self.convert
            x = fam_norm.apply(data_norm.invert(x))
        return x, y

    def train_batches(self, epoch: int, limit: int | None = None):
        gen = torch.Generator().manual_seed(hash_seed(self.cfg.seed, "adapt", epoch))
        for x, y in self.ds.batches("train", self.cfg.batch_size, shuffle=True, generator=gen, limit=limit):
            yield self._features(x, y)


@torch.no_grad()
def accuracy(model, task: Task, widths, k) -> dict:
    """Test accuracy (%) of submodel k; new-classes: also on the old and the new classes apart."""
    model.eval()
    hit = torch.zeros(2, dtype=torch.long)
    n = torch.zeros(2, dtype=torch.long)
    for x, y in task.test:
        logits = model(x, widths, bn=k)
        ok = logits.argmax(1) == y
        new = (y >= task.old_classes).long()
        hit.index_add_(0, new, ok.long())
        n.index_add_(0, new, torch.ones_like(new))
    out = {"accuracy": round(100.0 * float(hit.sum()) / max(int(n.sum()), 1), 3)}
    if task.num_classes > task.old_classes:
        out["old"] = round(100.0 * float(hit[0]) / max(int(n[0]), 1), 3)
        out["new"] = round(100.0 * float(hit[1]) / max(int(n[1]), 1), 3) if n[1] else None
    return out


def grown(family: fam_io.OpenFamily, num_classes: int) -> tuple[fam_io.Family, NestedNet]:
    """The family's manifest and network with a classifier for num_classes (old rows kept)."""
    man = family.manifest
    new_man = fam_io.Family(**{**{k: getattr(man, k) for k in man.__dataclass_fields__}, "num_classes": num_classes})
    spec = new_man.spec()
    net = NestedNet(spec, num_bn=len(man.submodels))
    old = family.net.state_dict()
    head = head_name(spec)
    with torch.no_grad():
        for key, t in net.state_dict().items():
            if key.startswith(f"layers.{head}."):
                t[:old[key].shape[0]] = old[key]  # new rows keep PyTorch's initialisation
            else:
                t.copy_(old[key])
    return new_man, net


@torch.no_grad()
def calibrate(model: AdaptedNet, task: Task, widths, k: int, samples: int) -> None:
    net = model.net
    if not any(l.kind == "batch_norm" for l in net.spec.layers):
        return
    model.train()
    net.reset_bn_stats(k)
    momentum, net.bn_momentum = net.bn_momentum, None
    for x, _ in task.train_batches(10_000 + k, limit=samples):
        model(x, widths, bn=k)
    net.bn_momentum = momentum
    model.eval()


def train(model: AdaptedNet, task: Task, widths: list[dict], cfg: AdaptConfig, log=None) -> list[float]:
    """cfg.epochs over the new training data; returns the mean loss per epoch."""
    opt = optimizer(model, cfg.lr)
    if opt is None:
        return []
    alphas = submodel_weights(model.net.spec, widths)
    losses = []
    for epoch in range(cfg.epochs):
        model.train()
        total, count = 0.0, 0
        for x, y in task.train_batches(epoch):
            opt.zero_grad(set_to_none=True)
            step = 0.0
            for k in reversed(range(len(widths))):  # one submodel's graph at a time
                loss = alphas[k] * F.cross_entropy(model(x, widths[k], bn=k), y)
                loss.backward()
                step += float(loss.detach())
            opt.step()
            total += step * len(y)
            count += len(y)
        losses.append(total / max(count, 1))
        if log:
            log(f"adapt epoch {epoch + 1}/{cfg.epochs}: loss {losses[-1]:.4f}")
    return losses


def _state(model: AdaptedNet) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.net.state_dict().items()}


def delta_tensors(model: AdaptedNet, base: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """What a device holding the old family needs: the method's factors and every tensor of
    the family that changed (`set.` + its name)."""
    out = {}
    for name, ad in model.lora.items():
        out[f"lora.{name}.A"], out[f"lora.{name}.B"] = ad.A, ad.B
        if ad.dora:
            out[f"lora.{name}.m"] = ad.m
    for name, ad in model.adapters.items():
        out[f"adapter.{name}.D"], out[f"adapter.{name}.U"] = ad.D, ad.U
    for key, t in model.net.state_dict().items():
        if key not in base or base[key].shape != t.shape or not torch.equal(base[key], t):
            out[f"set.{key}"] = t
    return {k: v.detach().contiguous().clone() for k, v in out.items()}


def apply_delta(family: fam_io.OpenFamily, path: str | Path) -> AdaptedNet:
    """The adapted network from the old family and a delta file (`merged()` of it for a family)."""
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        meta = f.metadata() or {}
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    if meta.get("format") != DELTA_FORMAT:
        raise RedsError(f"{path}: not a reds delta file")
    if meta.get("base") != family.hash:
        raise RedsError(f"{path}: made for another family (base {meta.get('base', '?')[:12]}, this one "
                        f"{family.hash[:12]})")
    num_classes = int(meta["num_classes"])
    net = grown(family, num_classes)[1] if num_classes != family.manifest.num_classes else _copy(family.net)
    model = AdaptedNet(net, meta["method"], int(meta["rank"]), new_head=meta.get("new_head") == "1")
    with torch.no_grad():
        sd = net.state_dict()
        for k, t in tensors.items():
            kind, _, rest = k.partition(".")
            if kind == "set":
                sd[rest].copy_(t)
            else:
                layer, _, param = rest.rpartition(".")
                getattr((model.lora if kind == "lora" else model.adapters)[layer], param).copy_(t)
    return model.eval()


def _copy(net: NestedNet) -> NestedNet:
    out = NestedNet(net.spec, num_bn=net.num_bn)
    out.load_state_dict(net.state_dict())
    return out


def _out_dir(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise RedsError(f"{out}: exists and is not a folder; choose another --out")
    if out.is_dir() and any(out.iterdir()) and not (out / REPORT).exists():
        raise RedsError(f"{out} is not empty; choose a new --out (an earlier `reds adapt` output is replaced)")


def adapt(family: fam_io.OpenFamily, cfg: AdaptConfig, out_dir: str | Path, log=None) -> dict:
    """Adapt, evaluate, write the family (and delta); returns the report (also adapt.json)."""
    log = log or (lambda m: print(m, file=sys.stderr, flush=True))
    out = Path(out_dir)
    _out_dir(out)
    if cfg.method not in MERGEABLE and not cfg.keep_delta:
        raise RedsError(f"--method {cfg.method} adds a nonlinear branch that no family holds: pass --keep-delta "
                        "to write it as a delta file")
    t0 = time.time()
    torch.manual_seed(cfg.seed)
    new_head = cfg.task == "new-classes"
    check_rank(family.spec, cfg.method, cfg.rank, new_head)  # before the (slow) data set
    task = Task(family, cfg)
    widths = [s.widths for s in family.submodels]
    before = [accuracy(family.net, task, w, k) for k, w in enumerate(widths)]
    if new_head:
        man, net = grown(family, task.num_classes)
    else:
        man, net = family.manifest, _copy(family.net)
    base = {k: v.detach().clone() for k, v in net.state_dict().items()} if not new_head else family.net.state_dict()
    model = AdaptedNet(net, cfg.method, cfg.rank, new_head=new_head, seed=cfg.seed)
    trainable = sum(p.numel() for p in model.trainable())
    log(f"adapting {len(widths)} submodels with {cfg.method}" + (f" rank {cfg.rank}" if cfg.method in
        ("lora", "dora", "galore", "adapter") else "") + f": {trainable:,} trainable values, "
        f"{task.ds.size('train'):,} samples x {cfg.epochs} epoch(s), Adam lr {cfg.lr:g}")
    losses = train(model, task, widths, cfg, log)
    for k, w in enumerate(widths):
        calibrate(model, task, w, k, cfg.calib_samples)
    after = [accuracy(model, task, w, k) for k, w in enumerate(widths)]
    seconds = time.time() - t0

    out.mkdir(parents=True, exist_ok=True)
    report = {"method": cfg.method, "rank": cfg.rank if cfg.method in ("lora", "dora", "galore", "adapter") else None,
              "task": cfg.task, "config": asdict(cfg), "base_family": str(family.dir), "base_hash": family.hash,
              "dataset": task.ds.name, "shift": task.shift, "classes": task.classes,
              "train_samples": task.ds.size("train"), "test_samples": task.ds.size("test"),
              "trainable_values": trainable, "loss": losses, "seconds": round(seconds, 1),
              "submodels": [{"budget": s.budget, "widths": s.widths, "before": b, "after": a}
                            for s, b, a in zip(family.submodels, before, after)]}
    if cfg.method in MERGEABLE:
        merged = model.merged()
        diff = _merge_error(model, merged, task, widths)
        report["merge_max_abs_diff"] = diff
        subs = []
        for s, a in zip(family.submodels, after):
            c = cost(merged.spec, s.widths)
            subs.append(fam_io.Submodel(budget=s.budget, widths=s.widths, macs=c.macs, params=c.params,
                                        weight_bytes=c.weight_bytes, arena_bytes=c.arena_bytes,
                                        accuracy=a["accuracy"]))
        fam = fam_io.Family(**{**{k: getattr(man, k) for k in man.__dataclass_fields__},
                               "submodels": subs, "dataset": task.ds.name, "classes": task.classes,
                               "num_classes": task.num_classes,
                               "training": {**man.training, "adapted": _record(report)}})
        fam_io.save(out, fam, merged)
        report["family"] = str(out)
    if cfg.keep_delta:
        from safetensors.torch import save_file

        tensors = delta_tensors(model, base)
        meta = {"format": DELTA_FORMAT, "base": family.hash, "method": cfg.method, "rank": str(cfg.rank),
                "new_head": "1" if new_head else "0", "num_classes": str(task.num_classes)}
        fam_io.atomic_write(out / DELTA, lambda p: save_file(tensors, str(p), metadata=meta))
        report["delta"] = {"file": DELTA, "bytes": (out / DELTA).stat().st_size,
                           "values": sum(t.numel() for t in tensors.values()),
                           "tensors": len(tensors),
                           "family_weight_bytes": (family.dir / fam_io.WEIGHTS).stat().st_size,
                           "sha256": hashlib.sha256((out / DELTA).read_bytes()).hexdigest()}
    text = json.dumps(report, indent=2) + "\n"
    fam_io.atomic_write(out / REPORT, lambda p: p.write_text(text))
    return report


def _record(report: dict) -> dict:
    return {k: report[k] for k in ("method", "rank", "task", "dataset", "shift", "base_hash", "train_samples",
                                   "trainable_values", "seconds")}


@torch.no_grad()
def _merge_error(model: AdaptedNet, merged: NestedNet, task: Task, widths) -> float:
    """Largest |logit difference| between the adapted model and its merge, every submodel."""
    model.eval()
    x = task.test[0][0][:64]
    return max(float((model(x, w, bn=k) - merged(x, w, bn=k)).abs().max()) for k, w in enumerate(widths))


def summary(report: dict) -> str:
    from ..tables import render

    rows = []
    for k, s in enumerate(report["submodels"]):
        b, a = s["before"], s["after"]
        row = [str(k), f"{s['budget']:.0%}", f"{b['accuracy']:.2f}", f"{a['accuracy']:.2f}"]
        if "old" in a:
            row += [f"{b.get('old', b['accuracy']):.2f}", f"{a['old']:.2f}", "-" if a["new"] is None else
                    f"{a['new']:.2f}"]
        rows.append(row)
    head = ["k", "budget", "before %", "after %"]
    if report["submodels"] and "old" in report["submodels"][0]["after"]:
        head += ["old before %", "old after %", "new after %"]
    lines = [render(head, rows)]
    lines.append(f"{report['method']}" + (f" rank {report['rank']}" if report["rank"] else "")
                 + f" on {report['task']} ({report['dataset']}, {report['train_samples']:,} samples): "
                 f"{report['trainable_values']:,} trainable values, {report['seconds']:.0f} s")
    if "family" in report:
        lines.append(f"family written to {report['family']} (merged; max |adapted - merged| logit "
                     f"{report['merge_max_abs_diff']:.2g})")
    if "delta" in report:
        d = report["delta"]
        lines.append(f"delta written to {Path(report.get('family') or '.') / d['file'] if 'family' in report else d['file']}"
                     f": {d['bytes']:,} B ({d['values']:,} values in {d['tensors']} tensors; the family's weights "
                     f"are {d['family_weight_bytes']:,} B)")
    return "\n".join(lines)

