"""Data sets. `load(name, data_dir, ...)` verifies the files and returns a `Dataset`.

Every loader fails with one `RedsError` line naming the bad file and the fix."""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch only when a data set is loaded: `reds --help` stays fast
    from .base import Dataset

from ..ir.archs import FROM_DATA, KWS  # KWS take `words`; FROM_DATA: shape and classes from the files

DATASETS = ("fmnist", "cifar10", "speech-commands", "synth-kws", *FROM_DATA)


def load(name: str, data_dir: str | None = None, *, kws_stride_ms: int = 20,
         val_fraction: float = 0.1, seed: int = 0, words: str | list[str] | None = None,
         image_size: str | tuple[int, int] | list[int] | None = None) -> Dataset:
    """Load a data set by name.

    kws_stride_ms: MFCC frame stride for the keyword-spotting sets and WAV folders
    (20 -> 49x10, 40 -> 25x10).
    val_fraction: for sets without a published validation split, the share of the training
    set held out (deterministically from `seed`) as validation; never the test set.
    words: speech-commands / synth-kws only: the keywords (comma-separated or a list;
    default REDS's ten); the classes are silence, unknown, then these.
    image_size: folder of images only: (H, W) or "HxW" to resize to (default: the first
    training image's size).
    """
    from ..errors import RedsError

    if name not in DATASETS:
        raise RedsError(f"unknown dataset '{name}'; choose one of: {', '.join(DATASETS)}")
    if words is not None and name not in KWS:
        raise RedsError(f"--words applies to {' and '.join(KWS)} only, not to {name}")
    if image_size is not None and name != "folder":
        raise RedsError(f"--image-size applies to the folder data set (of images) only, not to {name}")
    if name == "fmnist":
        from .fmnist import load_fmnist
        return load_fmnist(data_dir, val_fraction=val_fraction, seed=seed)
    if name == "cifar10":
        from .cifar10 import load_cifar10
        return load_cifar10(data_dir, val_fraction=val_fraction, seed=seed)
    if name in KWS:
        from .speech_commands import load_speech_commands
        return load_speech_commands(data_dir, name=name, stride_ms=kws_stride_ms, words=words)
    if name == "folder":
        from .folder import load_folder
        return load_folder(data_dir, kws_stride_ms=kws_stride_ms, image_size=image_size, seed=seed)
    from .npz import load_npz
    return load_npz(data_dir, val_fraction=val_fraction, seed=seed)


__all__ = ["DATASETS", "FROM_DATA", "KWS", "Dataset", "Split", "load"]
