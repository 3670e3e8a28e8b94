"""Training recipes: the optimiser settings and learning-rate schedules a run can follow.

`default` is reds's own: Adam with a cosine decay per step in both phases, batch 64. For
the same epochs it ends higher than `reds` (benchmarks/README.md, the accuracy tables run
both), because REDS's rate drops to 1e-5 after about a quarter of its steps and the rest
of the run barely moves.

`reds` is REDS's released schedule (its vision code): batch 128, Adam at 1e-3, 2.5e-4 and
1e-5, switching at steps 16,406 and 30,468 of 250 epochs of 469 steps (Fashion-MNIST at
batch 128). reds keeps those switches at the same share of the run, so a shorter run or
another data set follows the same shape; then batch norm alone is fine-tuned for 10 / 250
of the fine-tuning epochs. Keras's batch-norm momentum 0.99 is PyTorch's 0.01.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

REDS_STEPS_PER_EPOCH = 469  # ceil(60000 / 128)
REDS_EPOCHS = 250
REDS_SWITCHES = (16_406 / (REDS_EPOCHS * REDS_STEPS_PER_EPOCH), 30_468 / (REDS_EPOCHS * REDS_STEPS_PER_EPOCH))
REDS_RATES = (1e-3, 2.5e-4, 1e-5)
REDS_BN_EPOCHS = 10 / REDS_EPOCHS  # batch-norm-only fine-tuning, as a share of the fine-tuning epochs


@dataclass(frozen=True)
class Recipe:
    name: str
    help: str
    batch_size: int
    lr: float  # pretraining's peak rate
    finetune_lr: float
    schedule: str  # "cosine" or "reds-steps"
    bn_momentum: float
    bn_epochs: float = 0.0  # batch-norm-only epochs after fine-tuning, as a share of fine-tuning's

    def rate(self, base: float, step: int, total: int) -> float:
        """The learning rate at `step` of a phase of `total` steps (a pure function: resumable)."""
        done = step / max(1, total)
        if self.schedule == "cosine":
            return base * 0.5 * (1 + math.cos(math.pi * done))
        # REDS's piecewise-constant rates, scaled from its 1e-3 peak to `base`
        stage = sum(done >= s for s in REDS_SWITCHES)
        return base * REDS_RATES[stage] / REDS_RATES[0]

    def bn_only_epochs(self, finetune_epochs: int) -> int:
        return max(1, round(finetune_epochs * self.bn_epochs)) if self.bn_epochs and finetune_epochs else 0


RECIPES: dict[str, Recipe] = {r.name: r for r in [
    Recipe("default", "Adam, cosine decay per step, batch 64", 64, 1e-3, 5e-4, "cosine", 0.1),
    Recipe("reds", "REDS's schedule: Adam 1e-3, 2.5e-4, 1e-5 switching at 14 and 26 percent of the steps, batch 128, "
                   "BN momentum 0.01, then batch norm alone for 1/25 of the fine-tuning epochs",
           128, 1e-3, 1e-3, "reds-steps", 0.01, REDS_BN_EPOCHS),
]}
