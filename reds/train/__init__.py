"""Training a family: pretrain, importance, permutation, knapsack, joint fine-tuning, and
the test accuracy of every submodel (`evaluate`). `recipes` (the schedules) and `devices`
import no torch, so the command line lists them quickly; the trainer loads on first use."""
from .devices import DEVICES
from .recipes import RECIPES, Recipe

_TRAINER = ("TrainConfig", "Trainer", "evaluate", "submodel_weights")


def __getattr__(name):
    if name in _TRAINER:
        from . import trainer
        return getattr(trainer, name)
    raise AttributeError(name)


__all__ = ["DEVICES", "RECIPES", "Recipe", *_TRAINER]
