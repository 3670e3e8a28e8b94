"""The trainer: pretrain, score, permute, solve, fine-tune all submodels, recalibrate.

Phases, each checkpointed (`DIR/checkpoint.pt`, written atomically at every epoch end):
  pretrain (full network) -> search (importance, permutation, knapsack) ->
  finetune (all submodels on shared weights, private batch norms) -> [bn: batch norm
  alone, recipe `reds`] -> calibrate + evaluate -> family.json + weights.safetensors ->
  [scratch baseline, then family.json again with its accuracies].
Every epoch's data order comes from (seed, phase, epoch) and every learning rate from
(phase, step), so `--resume` after a kill at any point continues to the same result as
an uninterrupted run, on this machine or another (the device is not part of the config).
"""
from __future__ import annotations

import json
import math
import queue
import sys
import threading
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
from ..ir.inputs import InputNorm, MfccFrontEnd
from ..ir.cost import cost
from ..nn.importance import block_scores
from ..nn.importance import scores as importance_scores
from ..nn.nested import NestedNet
from ..nn.permute import order_by_importance, permute_all
from ..search.depth import MODES as DEPTH_MODES
from ..search.depth import solve as solve_depth
from ..search.knapsack import Limits, solve
from .devices import cpus, pick_device, set_threads
from .recipes import RECIPES, Recipe

CHECKPOINT = "checkpoint.pt"
BLOCK_BATCHES = 20  # minibatches a block's loss increase (and the groups' it is scaled by) is measured on
BN_RATE = 0.25  # batch-norm-only tuning runs at this share of the fine-tuning rate (REDS's middle stage)
METRICS = "metrics.jsonl"
# settings added since checkpoints were first written, at their defaults: older checkpoints resume
NEW_SETTINGS = {"words": None, "image_size": None, "init": None, "loss": "ce", "temperature": 0.1, "head_epochs": 2,
                "depth": "off", "block_importance": "loss", "layer_drop": 0.0}
LOSSES = ("ce", "supcon")
DEPTHS = ("off", "on")
BLOCK_IMPORTANCE = ("loss", "none")


@dataclass
class TrainConfig:
    arch: str
    dataset: str
    data_dir: str | None = None
    words: list[str] | None = None  # speech-commands / synth-kws: the keywords (None: REDS's ten)
    image_size: list[int] | None = None  # folder of images: [H, W] (None: the first image's size)
    budgets: list[float] = field(default_factory=lambda: [0.25, 0.5, 0.75, 1.0])
    knapsack: str = "bottom-up"
    # elastic depth: "on" lets the knapsack skip whole blocks as well (search/depth.py)
    depth: str = "off"
    # what a block is worth to the knapsack: "loss" (measured: the loss increase when it is
    # skipped) or "none" (nothing: a block is skipped whenever the MACs it frees buy more
    # unit importance; an ablation)
    block_importance: str = "loss"
    # stochastic depth in pretraining: each skippable block is skipped with this probability
    # per batch, so the network learns to run without it (Huang et al. 2016)
    layer_drop: float = 0.0
    importance: str = "grad"
    # REDS sums the gradient over 100 minibatches: a few seconds of a run, and 25 already pick
    # other widths (benchmarks/README.md, "Training speed")
    importance_batches: int = 100
    # "group": each group's scores sum to 1, so the knapsack weighs the share of each layer's
    # importance kept (raw gradient scores differ by orders of magnitude between layers, and
    # REDS's raw sum ("none") can starve a whole layer down to 2 units)
    importance_norm: str = "group"
    epochs: int = 10  # pretraining epochs of the full network
    finetune_epochs: int = 10
    recipe: str = "default"  # see recipes.py; batch_size, lr and finetune_lr default to the recipe's
    batch_size: int | None = None
    lr: float | None = None
    finetune_lr: float | None = None
    augment: bool = True  # the data set's training augmentation
    val_per_epoch: int | None = 2000  # validation samples scored after each epoch (all of them at the end)
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
    init: str | None = None  # weights to start from (a .safetensors of `reds import-model`)
    # pretraining loss: "ce" (cross-entropy) or "supcon" (supervised contrastive on the
    # penultimate layer, then `head_epochs` of a linear head on the frozen network; supcon.py)
    loss: str = "ce"
    temperature: float = 0.1  # supcon only
    head_epochs: int = 2  # supcon only

    def __post_init__(self) -> None:
        if self.recipe not in RECIPES:
            raise RedsError(f"unknown recipe '{self.recipe}'; choose one of: {', '.join(RECIPES)}")
        r = RECIPES[self.recipe]
        if self.depth not in DEPTHS:
            raise RedsError(f"depth must be one of: {', '.join(DEPTHS)}; got '{self.depth}'")
        if self.block_importance not in BLOCK_IMPORTANCE:
            raise RedsError(f"block importance must be one of: {', '.join(BLOCK_IMPORTANCE)}; "
                            f"got '{self.block_importance}'")
        if not 0.0 <= self.layer_drop < 1.0:
            raise RedsError(f"the layer drop must be a probability in [0, 1), got {self.layer_drop}")
        if self.depth == "on" and self.knapsack not in DEPTH_MODES:
            raise RedsError(f"--depth on runs the {' or '.join(DEPTH_MODES)} knapsack, not {self.knapsack}")
        if self.loss not in LOSSES:
            raise RedsError(f"unknown loss '{self.loss}'; choose one of: {', '.join(LOSSES)}")
        if not self.temperature > 0:
            raise RedsError(f"the temperature must be positive, got {self.temperature}")
        if self.words is not None:
            from ..data.speech_commands import parse_words
            self.words = parse_words(self.words)
        if self.image_size is not None:
            from ..data.folder import parse_image_size
            self.image_size = list(parse_image_size(self.image_size))
        self.batch_size = self.batch_size or r.batch_size
        self.lr = self.lr or r.lr
        self.finetune_lr = self.finetune_lr or r.finetune_lr

    @property
    def schedule(self) -> Recipe:
        return RECIPES[self.recipe]


class Trainer:
    def __init__(self, cfg: TrainConfig, out_dir: str | Path, *, progress: bool | None = None, log=None,
                 device: str = "auto", threads: int | None = None):
        self.cfg, self.out = cfg, Path(out_dir)
        self.progress = progress
        self.log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
        if self.out.exists() and not self.out.is_dir():  # before the (slow) data set
            raise RedsError(f"{self.out}: exists and is not a folder; choose another --out")
        self.device = pick_device(device)
        self.threads = set_threads(threads)
        if self.device.type == "cuda":  # seeded runs repeat on the same GPU
            torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
        self.arch = arch = get_arch(cfg.arch)  # a file is read once: the family keeps its document
        self.ds = datasets.load(cfg.dataset, cfg.data_dir, kws_stride_ms=arch.kws_stride_ms, seed=cfg.seed,
                                words=cfg.words, image_size=cfg.image_size)
        self._limit()
        if not cfg.augment:  # the same features every epoch: compute them once
            self.ds.precompute("train")
        self.spec = build_spec(arch, self.ds.input_shape, self.ds.num_classes, width_mult=cfg.width_mult)
        self.init = None  # --init: read and checked against the spec now, loaded when a run starts
        if cfg.init:
            from ..nn.fx_import import read_init
            self.init = read_init(cfg.init, self.spec)
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

    def _train_batches(self, phase: str, epoch: int):
        """This epoch's batches. When a core is free (training on the GPU, or --threads below
        the CPUs), a helper thread featurises and augments the next batches meanwhile
        (PyTorch's ops release the GIL); with every core busy it only costs (measured: -30 %
        samples/s on 2 cores), so then the batches are made in line."""
        gen = torch.Generator().manual_seed(hash_seed(self.cfg.seed, phase, epoch))
        it = self.ds.batches("train", self.cfg.batch_size, shuffle=True, augment=self.cfg.augment, generator=gen)
        if self.device.type == "cuda" or self.threads < cpus():
            it = prefetch(it)
        return (self._to_device(x, y) for x, y in it)

    def _to_device(self, x, y):
        if x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)

    def _fixed(self, split: str, limit: int | None = None) -> list:
        """Featurised once: evaluation sees the same inputs every time. `limit`: only the
        first batches, about that many samples (the split is already a random draw)."""
        if split not in self._eval_cache:
            self._eval_cache[split] = [self._to_device(x, y) for x, y in self.ds.batches(split, 500)]
        batches = self._eval_cache[split]
        return batches if limit is None else batches[:max(1, math.ceil(limit / 500))]

    def _bar(self, it, total, desc):
        return tqdm(it, total=total, desc=desc, leave=False, disable=True if self.progress is False else None,
                    file=sys.stderr, dynamic_ncols=True)

    # ---- checkpoints --------------------------------------------------------------
    def _save_ckpt(self, state: dict) -> None:
        state = {**state, "architecture": self.arch.doc}  # what --resume must find again
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
        elif {**NEW_SETTINGS, **ck["config"]} != _jsonable(asdict(cfg)):
            raise RedsError(f"{self.out}: the checkpoint was made with other settings; "
                            "resume with the same flags or choose another --out")
        elif ck.get("architecture", self.arch.doc) != self.arch.doc:
            raise RedsError(f"{self.out}: the checkpoint was made with another version of {cfg.arch}; "
                            "restore the file, or choose another --out")
        torch.manual_seed(cfg.seed)
        t_start = time.time()
        elapsed = ck["elapsed"] if ck else 0.0
        net = NestedNet(self.spec, num_bn=1)
        net.bn_momentum = cfg.schedule.bn_momentum
        if self.init is not None and not ck:
            net.load_state_dict(self.init)
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
            self.log(f"resuming at {phase}" + (f" (submodel {ck['scratch']['k']})" if phase == "scratch" else "")
                     + f", epoch {epoch}")
        net.to(self.device)
        self.log(f"training on {self._where()}: recipe {cfg.recipe}, batch {cfg.batch_size}, Adam at "
                 f"{cfg.lr:g} / {cfg.finetune_lr:g} ({cfg.schedule.schedule}), "
                 + ("augmented" if cfg.augment else "not augmented"))

        def checkpoint(phase_, epoch_, opt, scratch=None):
            self._save_ckpt({"phase": phase_, "epoch": epoch_, "search": search, "model": _cpu(net.state_dict()),
                             "optimizer": _cpu(opt.state_dict()) if opt else None,
                             "config": _jsonable(asdict(cfg)), "elapsed": elapsed + time.time() - t_start,
                             "metrics": list(self.rows), "scratch": scratch})

        def loop(name, params, widths, alphas, epochs, base_lr, report):
            """Epochs `epoch`..`epochs` of one phase, checkpointed after each."""
            nonlocal epoch
            opt = torch.optim.Adam(params, lr=base_lr)
            if opt_state:
                opt.load_state_dict(opt_state)
            t_phase, first = time.time(), epoch
            while epoch < epochs:
                loss, rate = self._epoch(net, opt, name, epoch, widths, alphas, epochs, base_lr)
                accs = [self._accuracy(net, "val", w, k, cfg.val_per_epoch)
                        for k, w in enumerate(widths)]
                self._metric(phase=name, epoch=epoch + 1, loss=loss, val_accuracy=accs,
                             samples_per_second=round(rate, 1))
                left = (time.time() - t_phase) / (epoch + 1 - first) * (epochs - epoch - 1)
                self.log(f"{name} {epoch + 1}/{epochs}: loss {loss:.4f}, val " + " / ".join(f"{a:.2f}" for a in accs)
                         + f" %, {rate:,.0f} samples/s ({report} done in about {_duration(left)})")
                epoch += 1
                checkpoint(name, epoch, opt)

        if phase == "pretrain":
            loop("pretrain", net.parameters(), [self.spec.full_widths()], [1.0], cfg.epochs, cfg.lr, "pretraining")
            phase, epoch, opt_state = "head" if cfg.loss == "supcon" else "search", 0, None

        if phase == "head":  # after contrastive pretraining: a linear head on the frozen network
            head = [p for name, p in net.named_parameters() if name.startswith(f"layers.{self.spec.layers[-1].name}.")]
            for p in net.parameters():
                p.requires_grad_(False)
            for p in head:
                p.requires_grad_(True)
            loop("head", head, [self.spec.full_widths()], [1.0], cfg.head_epochs, cfg.lr, "the linear head")
            for p in net.parameters():
                p.requires_grad_(True)
            phase, epoch, opt_state = "search", 0, None

        if phase == "search":
            search = self._search(net)
            net.set_num_bn(len(cfg.budgets))
            net.to(self.device)
            phase, epoch = "finetune", 0
            checkpoint("finetune", 0, None)

        widths = [s["widths"] for s in search["solutions"]]
        alphas = submodel_weights(self.spec, widths)
        if phase == "finetune":
            loop("finetune", net.parameters(), widths, alphas, cfg.finetune_epochs, cfg.finetune_lr, "fine-tuning")
            phase, epoch, opt_state = "bn", 0, None
            checkpoint("bn", 0, None)
        if phase == "bn":
            bn_epochs = cfg.schedule.bn_only_epochs(cfg.finetune_epochs)
            bn_params = [p for s in net.bn_states() for p in (s.weight, s.bias)]
            if bn_epochs and bn_params:
                for p in net.parameters():
                    p.requires_grad_(False)
                for p in bn_params:
                    p.requires_grad_(True)
                loop("bn", bn_params, widths, alphas, bn_epochs, cfg.finetune_lr * BN_RATE, "batch-norm tuning")
                for p in net.parameters():
                    p.requires_grad_(True)
            phase = "done"

        for k, w in enumerate(self._bar(widths, len(widths), "recalibrating batch norms")):
            self._calibrate(net, w, k)
        family = self._family(net, search, widths, elapsed + time.time() - t_start)
        if cfg.baseline == "scratch":  # checkpointed per epoch too: the "scratch" phase
            # the family is usable while its baseline trains (the checkpoint says it is not done)
            fam_io.save(self.out, family, net.cpu())
            scratch = ck.get("scratch") if ck and phase == "scratch" else None
            done = dict(scratch["done"]) if scratch else {}
            for k, (s, w) in enumerate(zip(family.submodels, widths)):
                if cfg.baseline_budgets is not None and all(abs(s.budget - b) > 1e-9 for b in cfg.baseline_budgets):
                    continue
                if str(k) not in done:
                    # resumed in this submodel's baseline: the checkpoint's epoch is the baseline's
                    state = dict(scratch, epoch=epoch) if scratch and scratch["k"] == k else None

                    def save(e, net_k, opt_k, k=k):
                        checkpoint("scratch", e, None, {"k": k, "model": _cpu(net_k.state_dict()),
                                                        "optimizer": _cpu(opt_k.state_dict()), "done": done})
                    done[str(k)] = self._scratch(w, k, state, save)
                s.scratch_accuracy = done[str(k)]
        fam_io.save(self.out, family, net.cpu())
        (self.out / CHECKPOINT).unlink(missing_ok=True)
        return family

    def _where(self) -> str:
        if self.device.type == "cuda":
            return f"{torch.cuda.get_device_name(self.device)} (CUDA, bfloat16 autocast)"
        return f"CPU, {self.threads} thread{'s' * (self.threads != 1)}"

    # ---- pieces -------------------------------------------------------------------
    def _epoch(self, net, opt, phase, epoch, widths, alphas, total_epochs, base_lr) -> tuple[float, float]:
        """One epoch over the training set; every batch trains every submodel (one step).
        Returns the mean loss and the samples per second."""
        cfg = self.cfg
        net.train()
        n_batches = math.ceil(self.ds.size("train") / cfg.batch_size)
        total, count, t0 = 0.0, 0, time.perf_counter()
        bar = self._bar(self._train_batches(phase, epoch), n_batches, f"{phase} {epoch + 1}/{total_epochs}")
        largest = len(widths) - 1
        cuda = self.device.type == "cuda"
        contrastive = cfg.loss == "supcon" and phase == "pretrain"
        if contrastive:
            from .supcon import supcon_loss
            pen = self.spec.penultimate
        drop = cfg.layer_drop if phase == "pretrain" else 0.0
        gen = torch.Generator().manual_seed(hash_seed(cfg.seed, "layer drop", epoch))  # resumes alike
        for i, (x, y) in enumerate(bar):
            # this step's widths: the phase's, with blocks dropped afresh from them
            step = [_drop_blocks(self.spec, widths[0], drop, gen)] if drop and self.spec.blocks else widths
            rate = cfg.schedule.rate(base_lr, epoch * n_batches + i, total_epochs * n_batches)
            for g in opt.param_groups:
                g["lr"] = rate
            opt.zero_grad(set_to_none=True)
            loss = 0.0
            teacher = None
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
                for k in reversed(range(len(step))):  # largest first: it is the distillation teacher
                    if contrastive:
                        z = net.features(x, step[k], bn=k, at=(pen,))[1][pen]
                        loss = loss + alphas[k] * supcon_loss(z.float(), y, cfg.temperature)
                        continue
                    logits = net(x, step[k], bn=k).float()
                    if cfg.distill and k != largest:
                        loss_k = F.kl_div(F.log_softmax(logits, 1), teacher, reduction="batchmean")
                    else:
                        loss_k = F.cross_entropy(logits, y)
                    if k == largest:
                        teacher = F.softmax(logits.detach(), 1)
                    loss = loss + alphas[k] * loss_k
            loss.backward()
            opt.step()
            total += loss.detach() * len(y)  # no .item() per step: the GPU keeps going
            count += len(y)
            if i % 20 == 0:
                bar.set_postfix(loss=f"{float(total) / count:.4f}")
        seconds = time.perf_counter() - t0
        return float(total) / max(count, 1), count / max(seconds, 1e-9)

    @torch.no_grad()
    def _accuracy(self, net, split, widths, k, limit: int | None = None) -> float:
        net.eval()
        correct = n = 0
        for x, y in self._fixed(split, limit):
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
            net(self._to_device(x, _)[0], widths, bn=k)
        net.bn_momentum = self.cfg.schedule.bn_momentum
        net.eval()

    def _search(self, net) -> dict:
        cfg = self.cfg
        t0 = time.time()
        # importance reads the network as it runs (running statistics): make them exact first
        # (with REDS's momentum 0.01 a short pretraining leaves them far from the data's)
        self._calibrate(net, self.spec.full_widths(), 0)
        gen = torch.Generator().manual_seed(hash_seed(cfg.seed, "importance", 0))
        batches = None
        if cfg.importance == "grad":
            it = self.ds.batches("train", cfg.batch_size, shuffle=True, generator=gen)
            batches = self._bar((self._to_device(*b) for _, b in zip(range(cfg.importance_batches), it)),
                                cfg.importance_batches, "importance (grad)")
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
        if cfg.depth == "on" and self.spec.blocks:
            if cfg.block_importance == "loss":
                # the width-only family first: its submodels put a skip's loss on the scale
                # of unit scores at each budget (block_scores)
                widths_only = solve(self.spec, sorted_scores, cfg.budgets, cfg.knapsack, limits, cfg.time_limit,
                                    cfg.seed)
                gen = torch.Generator().manual_seed(hash_seed(cfg.seed, "block importance", 0))
                it = self.ds.batches("train", cfg.batch_size, shuffle=True, generator=gen)
                batches = [self._to_device(*b) for _, b in zip(range(BLOCK_BATCHES), it)]
                blocks = block_scores(net, batches, sorted_scores, [s.widths for s in widths_only])
            else:
                blocks = [{b.name: 0.0 for b in self.spec.blocks} for _ in cfg.budgets]
            self.log(f"block importance ({'loss increase when skipped' if cfg.block_importance == 'loss' else 'none'})"
                     f" of {len(self.spec.blocks)} blocks; the knapsack chooses the depth as well")
            sols = solve_depth(self.spec, sorted_scores, blocks, cfg.budgets, cfg.knapsack, limits,
                               cfg.time_limit, cfg.seed)
        else:
            if cfg.depth == "on":
                self.log(f"note: {self.spec.name} has no skippable blocks; the knapsack chooses widths only")
            blocks = None
            sols = solve(self.spec, sorted_scores, cfg.budgets, cfg.knapsack, limits, cfg.time_limit, cfg.seed)
        for s in sols:
            skipped = ", ".join(b.name for b in self.spec.skipped(s.widths))
            self.log(f"  budget {s.budget:.0%}: {s.status} in {s.seconds:.2f} s, "
                     f"MACs {s.macs:,} = {s.macs / s.target_macs:.1%} of target"
                     + (f"; skips {skipped}" if skipped else ""))
        self._metric(phase="search", seconds=time.time() - t0, solutions=[s.as_dict() for s in sols],
                     **({"block_scores": blocks} if blocks is not None else {}))
        return {"solutions": [s.as_dict() for s in sols], "seconds": time.time() - t0, "block_scores": blocks}

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
            arch=self.arch.name, architecture=self.arch.doc, dataset=cfg.dataset, input_norm=self._input_norm(),
            frontend=MfccFrontEnd(self.ds.info["stride_ms"]).to_json() if self.ds.info.get("kind") == "audio" else None,
            input_shape=list(self.spec.input_shape),
            num_classes=self.spec.num_classes,
            groups=[{"name": g.name, "units": g.units} for g in self.spec.groups],
            submodels=subs, width_mult=cfg.width_mult, classes=list(self.ds.classes),
            knapsack={"mode": cfg.knapsack, "solver": "ortools-cp-sat",
                      "status": "OPTIMAL" if statuses == {"OPTIMAL"} else "/".join(sorted(statuses)),
                      "seconds": round(sum(s["seconds"] for s in sols) if cfg.knapsack != "joint"
                                       else sols[0]["seconds"], 3),
                      "solutions": sols,
                      **({"depth": "on", "block_scores": search["block_scores"]}
                         if search.get("block_scores") is not None else {})},
            training=self._training_record(seconds, search))

    def _input_norm(self) -> dict | None:
        norm = InputNorm.from_info(self.ds.info, self.spec.input_shape)
        return norm.to_json() if norm is not None else None

    def _training_record(self, seconds, search) -> dict:
        """The settings (all of TrainConfig) and what the run measured, under other names."""
        settings = _jsonable(asdict(self.cfg))
        measured = {"seconds": round(seconds, 1), "device": self._where(),
                    "train_samples": self.ds.size("train"), "val_samples": self.ds.size("val"),
                    "test_samples": self.ds.size("test"), "importance_seconds": round(search["seconds"], 2)}
        clash = set(settings) & set(measured)
        assert not clash, f"a training setting and a measured value share a name: {clash}"
        # absolute: `reds eval` finds the data from any folder
        data_dir = str(Path(self.cfg.data_dir).resolve()) if self.cfg.data_dir else None
        # what `evaluate` needs to reload the same data: a folder of images' size even when
        # it came from the first image
        image_size = self.ds.info.get("image_size", self.cfg.image_size)
        init = {}
        if self.cfg.init:  # the weights it started from, and which ones exactly
            from ..nn.fx_import import sha256
            init = {"init": str(Path(self.cfg.init).resolve()), "init_sha256": sha256(self.cfg.init)}
        return {**settings, **measured, "data_dir": data_dir, "image_size": image_size, **init}

    def _scratch(self, widths, k, state: dict | None, save) -> float:
        """The same widths trained alone from scratch, for the same total epochs; `state`
        resumes it, `save(epoch, net, opt)` checkpoints it after every epoch."""
        cfg = self.cfg
        torch.manual_seed(hash_seed(cfg.seed, "scratch", k))
        net = NestedNet(self.spec, num_bn=1)
        net.bn_momentum = cfg.schedule.bn_momentum
        start = 0
        if state:
            net.load_state_dict(state["model"])
        net.to(self.device)
        opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
        if state:
            opt.load_state_dict(state["optimizer"])
            start = state["epoch"]
        epochs = cfg.epochs + cfg.finetune_epochs
        loss = float("nan")
        for e in range(start, epochs):
            loss, _ = self._epoch(net, opt, f"scratch{k}", e, [widths], [1.0], epochs, cfg.lr)
            self._metric(phase="scratch", submodel=k, epoch=e + 1, loss=loss)
            self.log(f"scratch baseline, submodel {k}: epoch {e + 1}/{epochs}, loss {loss:.4f}")
            save(e + 1, net, opt)
        self._calibrate(net, widths, 0)
        acc = self._accuracy(net, "test", widths, 0)
        self.log(f"scratch baseline, submodel {k}: test {acc:.2f} % (final loss {loss:.4f})")
        return round(acc, 3)


def prefetch(batches, depth: int = 2):
    """Iterate `batches` with a helper thread `depth` batches ahead; its errors surface here,
    and it stops when the consumer does."""
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def work():
        try:
            for b in batches:
                while not stop.is_set():
                    try:
                        q.put(b, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(done)
        except BaseException as e:  # handed to the consumer, which raises it
            q.put(e)

    t = threading.Thread(target=work, daemon=True, name="reds-batches")
    t.start()
    try:
        while True:
            item = q.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        t.join()


def _cpu(state):
    """A state dict (nested dicts and lists of tensors) on the CPU: checkpoints open anywhere."""
    if isinstance(state, torch.Tensor):
        return state.cpu()
    if isinstance(state, dict):
        return {k: _cpu(v) for k, v in state.items()}
    if isinstance(state, (list, tuple)):
        return type(state)(_cpu(v) for v in state)
    return state


def _drop_blocks(spec, widths: dict, p: float, gen: torch.Generator) -> dict:
    """`widths` with each skippable block skipped with probability p (its alias group at its
    input group's width, as a skip needs)."""
    w = dict(widths)
    for b, r in zip(spec.blocks, torch.rand(len(spec.blocks), generator=gen).tolist()):
        w[b.name] = int(r >= p)
        if not w[b.name] and b.alias:
            w[b.alias] = w[b.in_group]
    return w


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


def reload_settings(family: fam_io.OpenFamily) -> dict:
    """The `reds.data.load` settings that give back the data set a family was trained on
    (a folder of images records the size it was resized to, so that a separate test folder,
    `reds eval --data-dir`, whose first image differs gets the same size)."""
    t = family.manifest.training
    kw = {"kws_stride_ms": family.arch.kws_stride_ms, "seed": t.get("seed", 0)}
    if t.get("words") is not None:
        kw["words"] = t["words"]
    if family.manifest.dataset == "folder" and t.get("image_size") is not None:
        kw["image_size"] = t["image_size"]
    return kw


def family_data(family: fam_io.OpenFamily, data_dir: str | None = None):
    """The data set a family was trained on, reloaded as it recorded (or from `data_dir`),
    refused in one line if its inputs or classes are not the family's."""
    fam = family.manifest
    ds = datasets.load(fam.dataset, data_dir or fam.training.get("data_dir"), **reload_settings(family))
    if list(ds.input_shape) != list(fam.input_shape) or ds.num_classes != fam.num_classes:
        raise RedsError(f"data set {fam.dataset} gives inputs {ds.input_shape} x {ds.num_classes} classes, "
                        f"but the family expects {tuple(fam.input_shape)} x {fam.num_classes}")
    if fam.classes and list(ds.classes) != list(fam.classes):
        raise RedsError(f"data set {fam.dataset} has the classes {', '.join(ds.classes)}, but the family was "
                        f"trained on {', '.join(fam.classes)}; pass the family's data with --data-dir")
    return ds


@torch.no_grad()
def evaluate(family: fam_io.OpenFamily, data_dir: str | None = None, limit: int | None = None,
             progress: bool | None = None) -> fam_io.Family:
    """Test accuracy of every submodel, written back to family.json."""
    fam, net = family.manifest, family.net
    ds = family_data(family, data_dir)
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
