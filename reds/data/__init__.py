"""Data sets. `load(name, data_dir, ...)` verifies the files and returns a `Dataset`.

Every loader fails with one `RedsError` line naming the bad file and the fix."""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch only when a data set is loaded: `reds --help` stays fast
    from .base import Dataset

DATASETS = ("fmnist", "cifar10", "speech-commands", "synth-kws")


def load(name: str, data_dir: str | None = None, *, kws_stride_ms: int = 20,
         val_fraction: float = 0.1, seed: int = 0) -> Dataset:
    """Load a data set by name.

    kws_stride_ms: MFCC frame stride for the keyword-spotting sets (20 -> 49x10, 40 -> 25x10).
    val_fraction: for sets without a published validation split, the share of the training
    set held out (deterministically from `seed`) as validation; never the test set.
    """
    from ..errors import RedsError

    if name == "fmnist":
        from .fmnist import load_fmnist
        return load_fmnist(data_dir, val_fraction=val_fraction, seed=seed)
    if name == "cifar10":
        from .cifar10 import load_cifar10
        return load_cifar10(data_dir, val_fraction=val_fraction, seed=seed)
    if name in ("speech-commands", "synth-kws"):
        from .speech_commands import load_speech_commands
        return load_speech_commands(data_dir, name=name, stride_ms=kws_stride_ms)
    raise RedsError(f"unknown dataset '{name}'; choose one of: {', '.join(DATASETS)}")


__all__ = ["DATASETS", "Dataset", "Split", "load"]
