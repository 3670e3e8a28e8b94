"""Fashion-MNIST from the four IDX files (as published, or as Debian's dataset-fashion-mnist
installs them, gzipped or not). Images stay uint8 in memory (47 MB); `featurize` applies
REDS's augmentation (flip, rotation, pad + crop) when training, then normalises."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from . import augment
from .base import Dataset, Split
from .files import (IDX_IMAGES_MAGIC, IDX_LABELS_MAGIC, file_error, find_file, holdout_split, read_idx,
                    require_dir)

DEFAULT_DIR = "/usr/share/datasets/fashion-mnist"
CLASSES = ["t-shirt/top", "trouser", "pullover", "dress", "coat",
           "sandal", "shirt", "sneaker", "bag", "ankle boot"]
# Mean and std of the 60000 training images scaled to [0, 1].
MEAN, STD = 0.2860, 0.3530
URL = "https://github.com/zalandoresearch/fashion-mnist"
APT = "apt-get install dataset-fashion-mnist"
FIX = f"re-download it from {URL} or run: {APT}"  # for a bad file
WHERE = f"put the four IDX files from {URL} there, or run: {APT}"  # for a missing folder or file


def _read_pair(folder: Path, prefix: str) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 28, 28) and labels (N,) of one published split, checked against each other."""
    img_path = find_file(folder, (f"{prefix}-images-idx3-ubyte.gz", f"{prefix}-images-idx3-ubyte"), WHERE)
    lbl_path = find_file(folder, (f"{prefix}-labels-idx1-ubyte.gz", f"{prefix}-labels-idx1-ubyte"), WHERE)
    images = read_idx(img_path, IDX_IMAGES_MAGIC, FIX)
    labels = read_idx(lbl_path, IDX_LABELS_MAGIC, FIX)
    if images.shape[1:] != (28, 28):
        raise file_error(img_path, f"images are {images.shape[1]}x{images.shape[2]}, expected 28x28", FIX)
    if len(images) != len(labels):
        raise file_error(lbl_path, f"{len(labels)} labels for {len(images)} images in {img_path.name}", FIX)
    if labels.size and labels.max() >= len(CLASSES):
        raise file_error(lbl_path, f"label {labels.max()} out of range 0..{len(CLASSES) - 1}", FIX)
    return images, labels


def _raw(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(images.copy()).unsqueeze(1)  # copy: the IDX buffer is read-only


def featurize(raw: torch.Tensor, augment_: bool, generator: torch.Generator) -> torch.Tensor:
    """uint8 (B, 1, 28, 28) -> normalised float32, augmented first when training."""
    x = raw.float().div_(255.0)
    if augment_:
        x = augment.images(x, generator)
    return x.sub_(MEAN).div_(STD)


def load_fmnist(data_dir: str | None, val_fraction: float = 0.1, seed: int = 0) -> Dataset:
    """Fashion-MNIST: train/val carved from the 60000 training images with `seed`, test = 10000."""
    folder = require_dir(data_dir or DEFAULT_DIR, WHERE)
    train_x, train_y = _read_pair(folder, "train")
    test_x, test_y = _read_pair(folder, "t10k")
    tr, va = holdout_split(len(train_y), val_fraction, seed)
    x, y = _raw(train_x), torch.from_numpy(train_y.astype(np.int64))
    splits = {
        "train": Split(x[tr], y[tr]),
        "val": Split(x[va], y[va]),
        "test": Split(_raw(test_x), torch.from_numpy(test_y.astype(np.int64))),
    }
    return Dataset(name="fmnist", input_shape=(1, 28, 28), classes=list(CLASSES), splits=splits,
                   featurize=featurize,
                   info={"data_dir": str(folder), "normalize": {"mean": MEAN, "std": STD},
                         "augment": augment.DESCRIPTION,
                         "val_fraction": val_fraction, "seed": seed})
