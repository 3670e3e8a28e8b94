"""The trainer: pretrain, score, permute, solve, fine-tune all submodels, recalibrate.

Phases, each checkpointed (`DIR/checkpoint.pt`, written atomically at every epoch end):
  pretrain (full network) -> search (importance, permutation, knapsack) ->
  finetune (all submodels on shared weights, private batch norms) -> calibrate + evaluate
  -> [scratch baseline] -> family.json + weights.safetensors.
Every epoch's data order comes from (seed, phase, epoch), so `--resume` after a kill at
any point continues to the same result as an uninterrupted run.
"""
from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from .. import data as datasets
from ..data.base import Split
from .. import family as fam_io
from ..errors import RedsError
from ..ir.archs import build_spec, get_arch
from ..ir.cost import cost
from ..nn.importance import scores as importance_scores
from ..nn.nested import NestedNet
from ..nn.permute import order_by_importance, permute_all
from ..search.knapsack import Limits, solve

CHECKPOINT = "checkpoint.pt"
METRICS = "metrics.jsonl"
PHASES = ("pretrain", "search", "finetune", "done")


@dataclass
class TrainConfig:
    arch: str
    dataset: str
    data_dir: str | None = None
    budgets: list[float] = field(default_factory=lambda: [0.25, 0.5, 0.75, 1.0])
    knapsack: str = "bottom-up"
    importance: str = "grad"
    importance_batches: int = 100  # REDS sums the gradient over 100 minibatches
    # "group": each group's scores sum to 1, so the knapsack weighs the share of each layer's
    # importance kept (raw gradient scores differ by orders of magnitude between layers, and
    # REDS's raw sum ("none") can starve a whole layer down to 2 units)
    importance_norm: str = "group"
    epochs: int = 10  # pretraining epochs of the full network
    finetune_epochs: int = 10
    batch_size: int = 64
    lr: float = 1e-3
    finetune_lr: float = 5e-4
    distill: bool = False  # sandwich rule with in-place distillation from the largest submodel
    baseline: str | None = None  # "scratch": train each submodel's widths alone
    baseline_budgets: list[float] | None = None  # only these budgets' baselines (None: all)
    limit_train: int | None = None
    limit_eval: int | None = None
    calib_samples: int = 2000
    width_mult: float = 1.0
    seed: int = 0
    time_limit: float = 30.0  # seconds per knapsack solve
    weight_bytes: int | None = None
    arena_bytes: int | None = None
    min_units: int | None = None


class Trainer:
    def __init__(self, cfg: TrainConfig, out_dir: str | Path, *, progress: bool | None = None, log=None):
        self.cfg, self.out = cfg, Path(out_dir)
        self.progress = progress
        self.log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
        if self.out.exists() and not self.out.is_dir():  # before the (slow) data set
            raise RedsError(f"{self.out}: exists and is not a folder; choose another --out")
        arch = get_arch(cfg.arch)
        self.ds = datasets.load(cfg.dataset, cfg.data_dir, kws_stride_ms=arch.kws_stride_ms, seed=cfg.seed)
        self._limit()
        self.spec = build_spec(cfg.arch, self.ds.input_shape, self.ds.num_classes, width_mult=cfg.width_mult)
        self._eval_cache: dict[str, list] = {}
        self.rows: list[str] = []  # metrics.jsonl lines up to now (kept in the checkpoint)

    # ---- data ---------------------------------------------------------------------
    def _limit(self):
        gen = torch.Generator().manual_seed(self.cfg.seed)
        for split, n in (("train", self.cfg.limit_train), ("val", self.cfg.limit_eval), ("test", self.cfg.limit_eval)):
            s = self.ds.splits[split]
            if n is not None and n < len(s):
                idx = torch.randperm(len(s), generator=gen)[:n].sort().values
                self.ds.splits[split] = Split(s.x[idx], s.y[idx])

    def _train_batches(self, phase: str, epoch: int, augment: bool = True):
        gen = torch.Generator().manual_seed(hash_seed(self.cfg.seed, phase, epoch))
        return self.ds.batches("train", self.cfg.batch_size, shuffle=True, augment=augment, generator=gen)

    def _fixed(self, split: str) -> list:
        """Featurised once: evaluation sees the same inputs every time."""
        if split not in self._eval_cache:
            self._eval_cache[split] = list(self.ds.batches(split, 500))
        return self._eval_cache[split]

    def _bar(self, it, total, desc):
        return tqdm(it, total=total, desc=desc, leave=False, disable=True if self.progress is False else None,
                    file=sys.stderr, dynamic_ncols=True)

    # ---- checkpoints --------------------------------------------------------------
    def _save_ckpt(self, state: dict) -> None:
        fam_io.atomic_write(self.out / CHECKPOINT, lambda p: torch.save(state, p))

    def _load_ckpt(self) -> dict | None:
        path = self.out / CHECKPOINT
        if not path.exists():
            return None
        try:
            return torch.load(path, weights_only=True)
        except Exception as e:  # any corruption: say which file and what to do
            raise RedsError(f"{path}: unreadable checkpoint ({type(e).__name__}); delete it to start over") from None

    def _metric(self, **row) -> None:
        self.rows.append(json.dumps(row))
        with open(self.out / METRICS, "a") as f:
            f.write(self.rows[-1] + "\n")

    # ---- the run ------------------------------------------------------------------
    def run(self, resume: bool = False) -> fam_io.Family:
        cfg = self.cfg
        self.out.mkdir(parents=True, exist_ok=True)
        ck = self._load_ckpt() if resume else None
        if ck is None:
            finished = (self.out / fam_io.MANIFEST).exists() and not (self.out / CHECKPOINT).exists()
            if resume and finished:
                raise RedsError(f"{self.out} holds a finished family: there is nothing to resume (see it with "
                                f"`reds info {self.out}`, or train into another --out)")
            if (self.out / CHECKPOINT).exists() or (self.out / fam_io.MANIFEST).exists():
                raise RedsError(f"{self.out} already holds a training run; pass --resume to continue it "
                                "or choose another --out")
            (self.out / METRICS).unlink(missing_ok=True)
            if resume:
                self.log(f"no checkpoint in {self.out}: starting a new run")
        elif ck["config"] != _jsonable(asdict(cfg)):
            raise RedsError(f"{self.out}: the checkpoint was made with other settings; "
                            "resume with the same flags or choose another --out")
        torch.manual_seed(cfg.seed)
        t_start = time.time()
        elapsed = ck["elapsed"] if ck else 0.0
        net = NestedNet(self.spec, num_bn=1)
        phase, epoch, search = "pretrain", 0, None
        opt_state = None
        if ck:
            phase, epoch, search = ck["phase"], ck["epoch"], ck.get("search")
            if phase != "pretrain":
                net.set_num_bn(len(cfg.budgets))
            net.load_state_dict(ck["model"])
            opt_state = ck.get("optimizer")
            # rows written after the checkpoint belong to work that is redone now
            self.rows = list(ck["metrics"])
            text = "".join(r + "\n" for r in self.rows)
            fam_io.atomic_write(self.out / METRICS, lambda p: p.write_text(text))
            self.log(f"resuming at {phase}, epoch {epoch}")

        def checkpoint(phase_, epoch_, opt):
            self._save_ckpt({"phase": phase_, "epoch": epoch_, "search": search, "model": net.state_dict(),
                             "optimizer": opt.state_dict() if opt else None, "config": _jsonable(asdict(cfg)),
                             "elapsed": elapsed + time.time() - t_start, "metrics": list(self.rows)})

        if phase == "pretrain":
            opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
            if opt_state:
                opt.load_state_dict(opt_state)
            t_phase, first = time.time(), epoch
            while epoch < cfg.epochs:
                loss = self._epoch(net, opt, "pretrain", epoch, [self.spec.full_widths()], [1.0], cfg.epochs, cfg.lr)
                acc = self._accuracy(net, "val", self.spec.full_widths(), 0)
                self._metric(phase="pretrain", epoch=epoch + 1, loss=loss, val_accuracy=[acc])
                left = (time.time() - t_phase) / (epoch + 1 - first) * (cfg.epochs - epoch - 1)
                self.log(f"pretrain {epoch + 1}/{cfg.epochs}: loss {loss:.4f}, val {acc:.2f} % "
                         f"(pretraining done in about {_duration(left)})")
                epoch += 1
                checkpoint("pretrain", epoch, opt)
            phase, epoch, opt_state = "search", 0, None

        if phase == "search":
            search = self._search(net)
            net.set_num_bn(len(cfg.budgets))
            phase, epoch = "finetune", 0
            checkpoint("finetune", 0, None)

        widths = [s["widths"] for s in search["solutions"]]
        if phase == "finetune":
            alphas = submodel_weights(self.spec, widths)
            opt = torch.optim.Adam(net.parameters(), lr=cfg.finetune_lr)
            if opt_state:
                opt.load_state_dict(opt_state)
            t_phase, first = time.time(), epoch
            while epoch < cfg.finetune_epochs:
                loss = self._epoch(net, opt, "finetune", epoch, widths, alphas, cfg.finetune_epochs, cfg.finetune_lr)
                accs = [self._accuracy(net, "val", w, k) for k, w in enumerate(widths)]
                self._metric(phase="finetune", epoch=epoch + 1, loss=loss, val_accuracy=accs)
                left = (time.time() - t_phase) / (epoch + 1 - first) * (cfg.finetune_epochs - epoch - 1)
                self.log(f"finetune {epoch + 1}/{cfg.finetune_epochs}: loss {loss:.4f}, val "
                         + " / ".join(f"{a:.2f}" for a in accs) + f" % (fine-tuning done in about {_duration(left)})")
                epoch += 1
                checkpoint("finetune", epoch, opt)
            phase = "done"

        for k, w in enumerate(self._bar(widths, len(widths), "recalibrating batch norms")):
            self._calibrate(net, w, k)
        family = self._family(net, search, widths, elapsed + time.time() - t_start)
        if cfg.baseline == "scratch":
            for k, (s, w) in enumerate(zip(family.submodels, widths)):
                if cfg.baseline_budgets is None or any(abs(s.budget - b) < 1e-9 for b in cfg.baseline_budgets):
                    s.scratch_accuracy = self._scratch(w, k)
        fam_io.save(self.out, family, net)
        (self.out / CHECKPOINT).unlink(missing_ok=True)
        return family

    # ---- pieces -------------------------------------------------------------------
    def _epoch(self, net, opt, phase, epoch, widths, alphas, total_epochs, base_lr) -> float:
        """One epoch over the training set; every batch trains every submodel (one step)."""
        cfg = self.cfg
        # cosine decay over the phase, set per epoch so a resumed run uses the same rates
        lr = base_lr * 0.5 * (1 + math.cos(math.pi * epoch / max(1, total_epochs)))
        for g in opt.param_groups:
            g["lr"] = lr
        net.train()
        n_batches = math.ceil(self.ds.size("train") / cfg.batch_size)
        total, count = 0.0, 0
        bar = self._bar(self._train_batches(phase, epoch), n_batches, f"{phase} {epoch + 1}/{total_epochs}")
        largest = len(widths) - 1
        for x, y in bar:
            opt.zero_grad(set_to_none=True)
            loss = 0.0
            teacher = None
            for k in reversed(range(len(widths))):  # largest first: it is the distillation teacher
                logits = net(x, widths[k], bn=k)
                if cfg.distill and k != largest:
                    loss_k = F.kl_div(F.log_softmax(logits, 1), teacher, reduction="batchmean")
                else:
                    loss_k = F.cross_entropy(logits, y)
                if k == largest:
                    teacher = F.softmax(logits.detach(), 1)
                loss = loss + alphas[k] * loss_k
            loss.backward()
            opt.step()
            total += loss.item() * len(y)
            count += len(y)
            bar.set_postfix(loss=f"{total / count:.4f}")
        return total / max(count, 1)

    @torch.no_grad()
    def _accuracy(self, net, split, widths, k) -> float:
        net.eval()
        correct = n = 0
        for x, y in self._fixed(split):
            correct += int((net(x, widths, bn=k).argmax(1) == y).sum())
            n += len(y)
        return 100.0 * correct / max(n, 1)

    @torch.no_grad()
    def _calibrate(self, net, widths, k) -> None:
        """Recompute submodel k's batch-norm statistics as exact averages over training data."""
        if not any(l.kind == "batch_norm" for l in self.spec.layers):
            return
        net.train()
        net.reset_bn_stats(k)
        net.bn_momentum = None
        gen = torch.Generator().manual_seed(hash_seed(self.cfg.seed, "calibrate", k))
        for x, _ in self.ds.batches("train", self.cfg.batch_size, shuffle=True, generator=gen,
                                    limit=self.cfg.calib_samples):
            net(x, widths, bn=k)
        net.bn_momentum = 0.1
        net.eval()

    def _search(self, net) -> dict:
        cfg = self.cfg
        t0 = time.time()
        gen = torch.Generator().manual_seed(hash_seed(cfg.seed, "importance", 0))
        batches = None
        if cfg.importance == "grad":
            it = self.ds.batches("train", cfg.batch_size, shuffle=True, generator=gen)
            batches = self._bar((b for _, b in zip(range(cfg.importance_batches), it)), cfg.importance_batches,
                                "importance (grad)")
        sc = importance_scores(net, cfg.importance, batches, seed=cfg.seed)
        perms = order_by_importance(sc)
        permute_all(net, perms)
        sorted_scores = {g: s[perms[g]] for g, s in sc.items()}
        if cfg.importance_norm == "group":
            sorted_scores = {g: s / s.sum().clamp(min=1e-30) for g, s in sorted_scores.items()}
        limits = Limits(cfg.weight_bytes, cfg.arena_bytes,
                        {g.name: cfg.min_units for g in self.spec.groups} if cfg.min_units else {})
        self.log(f"importance ({cfg.importance}) in {time.time() - t0:.1f} s; solving the knapsack ({cfg.knapsack}, "
                 f"{len(cfg.budgets)} budgets, at most {cfg.time_limit:g} s per solve; usually seconds)")
        sols = solve(self.spec, sorted_scores, cfg.budgets, cfg.knapsack, limits, cfg.time_limit, cfg.seed)
        for s in sols:
            self.log(f"  budget {s.budget:.0%}: {s.status} in {s.seconds:.2f} s, "
                     f"MACs {s.macs:,} = {s.macs / s.target_macs:.1%} of target")
        self._metric(phase="search", seconds=time.time() - t0, solutions=[s.as_dict() for s in sols])
        return {"solutions": [s.as_dict() for s in sols], "seconds": time.time() - t0}

    def _family(self, net, search, widths, seconds) -> fam_io.Family:
        cfg = self.cfg
        subs = []
        for k, (w, sol) in enumerate(self._bar(list(zip(widths, search["solutions"])), len(widths),
                                               "testing submodels")):
            c = cost(self.spec, w)
            subs.append(fam_io.Submodel(
                budget=sol["budget"], widths=w, macs=c.macs, params=c.params, weight_bytes=c.weight_bytes,
                arena_bytes=c.arena_bytes, accuracy=round(self._accuracy(net, "test", w, k), 3),
                val_accuracy=round(self._accuracy(net, "val", w, k), 3)))
        sols = search["solutions"]
        statuses = {s["status"] for s in sols}
        return fam_io.Family(
            arch=cfg.arch, dataset=cfg.dataset, input_shape=list(self.spec.input_shape),
            num_classes=self.spec.num_classes,
            groups=[{"name": g.name, "units": g.units} for g in self.spec.groups],
            submodels=subs, width_mult=cfg.width_mult, classes=list(self.ds.classes),
            knapsack={"mode": cfg.knapsack, "solver": "ortools-cp-sat",
                      "status": "OPTIMAL" if statuses == {"OPTIMAL"} else "/".join(sorted(statuses)),
                      "seconds": round(sum(s["seconds"] for s in sols) if cfg.knapsack != "joint"
                                       else sols[0]["seconds"], 3),
                      "solutions": sols},
            training={**_jsonable(asdict(cfg)), "seconds": round(seconds, 1),
                      # absolute: `reds eval` finds the data from any folder
                      "data_dir": str(Path(cfg.data_dir).resolve()) if cfg.data_dir else None,
                      "train_samples": self.ds.size("train"), "val_samples": self.ds.size("val"),
                      "test_samples": self.ds.size("test"), "importance_seconds": round(search["seconds"], 2)},
        )

    def _scratch(self, widths, k) -> float:
        """The same widths trained alone from scratch, for the same total epochs."""
        cfg = self.cfg
        torch.manual_seed(hash_seed(cfg.seed, "scratch", k))
        net = NestedNet(self.spec, num_bn=1)
        opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
        epochs = cfg.epochs + cfg.finetune_epochs
        for e in range(epochs):
            loss = self._epoch(net, opt, f"scratch{k}", e, [widths], [1.0], epochs, cfg.lr)
        self._calibrate(net, widths, 0)
        acc = self._accuracy(net, "test", widths, 0)
        self.log(f"scratch baseline, submodel {k}: test {acc:.2f} % (final loss {loss:.4f})")
        return round(acc, 3)


def submodel_weights(spec, widths: list[dict]) -> list[float]:
    """REDS's loss weights: alpha_k = sqrt(P_k / P_full), normalised to sum to 1."""
    full = cost(spec, spec.full_widths()).params
    a = [math.sqrt(cost(spec, w).params / full) for w in widths]
    return [x / sum(a) for x in a]


def hash_seed(seed: int, phase: str, epoch: int) -> int:
    """A stable seed per (seed, phase, epoch); Python's hash() is salted per process."""
    import zlib
    return zlib.crc32(f"{seed}/{phase}/{epoch}".encode()) & 0x7FFFFFFF


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} min" if seconds < 5400 else \
        f"{seconds / 3600:.1f} h"


def _jsonable(d: dict) -> dict:
    return json.loads(json.dumps(d))


@torch.no_grad()
def evaluate(family: fam_io.OpenFamily, data_dir: str | None = None, limit: int | None = None,
             progress: bool | None = None) -> fam_io.Family:
    """Test accuracy of every submodel, written back to family.json."""
    fam, net = family.manifest, family.net
    ds = datasets.load(fam.dataset, data_dir or fam.training.get("data_dir"),
                       kws_stride_ms=get_arch(fam.arch).kws_stride_ms, seed=fam.training.get("seed", 0))
    if list(ds.input_shape) != list(fam.input_shape) or ds.num_classes != fam.num_classes:
        raise RedsError(f"data set {fam.dataset} gives inputs {ds.input_shape} x {ds.num_classes} classes, "
                        f"but the family expects {tuple(fam.input_shape)} x {fam.num_classes}")
    batches = list(ds.batches("test", 500, limit=limit))
    for k, s in enumerate(tqdm(fam.submodels, desc="evaluating", disable=True if progress is False else None,
                               file=sys.stderr, leave=False)):
        correct = n = 0
        for x, y in batches:
            correct += int((net(x, s.widths, bn=k).argmax(1) == y).sum())
            n += len(y)
        s.accuracy = round(100.0 * correct / max(n, 1), 3)
    fam_io.save_manifest(family.dir, fam)
    return fam
