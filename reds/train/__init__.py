"""Training a family: pretrain, importance, permutation, knapsack, joint fine-tuning, and
the test accuracy of every submodel (`evaluate`)."""
from .trainer import TrainConfig, Trainer, evaluate, submodel_weights

__all__ = ["TrainConfig", "Trainer", "evaluate", "submodel_weights"]
