"""Training a family: pretrain, importance, permutation, knapsack, joint fine-tuning, and
the test accuracy of every submodel (`evaluate`). `recipes` (the schedules) imports no
torch, so the command line can list them quickly; the trainer loads on first use."""
from .recipes import RECIPES, Recipe

_TRAINER = ("DEVICES", "TrainConfig", "Trainer", "evaluate", "submodel_weights")


def __getattr__(name):
    if name in _TRAINER:
        from . import trainer
        return getattr(trainer, name)
    raise AttributeError(name)


__all__ = ["RECIPES", "Recipe", *_TRAINER]
