"""CIFAR-10 from the "python version" batches (`cifar-10-batches-py/`).

Those batches are pickles, and unpickling runs whatever code the file names; a data folder
is not trusted code. So the unpickler here can only rebuild dicts, lists, bytes, strings and
numpy arrays, and refuses every other global with a one-line error.

Images stay uint8 (N, 3, 32, 32) in memory (150 MB instead of 600 MB as float32); `featurize`
applies REDS's image augmentation (flip, rotation, pad + crop) when training, then
per-channel normalization.
"""
from __future__ import annotations

import codecs
import importlib
import pickle
from pathlib import Path

import numpy as np
import torch

from ..errors import RedsError
from . import augment
from .base import Dataset, Split
from .files import file_error, holdout_split, require_dir

CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
# Per-channel mean and std of the 50000 training images scaled to [0, 1].
MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2470, 0.2435, 0.2616)
URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
FIX = f"re-download {URL} and extract it"
WHERE = f"pass --data-dir with the cifar-10-batches-py folder extracted from {URL}"
TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))


def _latin1_encode(text: str, encoding: str = "latin1") -> bytes:
    """Protocol-2 pickles written by Python 3 store bytes as _codecs.encode(str, 'latin1')."""
    if encoding != "latin1":
        raise pickle.UnpicklingError(f"_codecs.encode with encoding {encoding!r}")
    return codecs.encode(text, "latin1")


def _numpy(submodule: str, name: str):
    """numpy.core.* (numpy 1, and old pickles) and numpy._core.* (numpy 2) are the same thing;
    try the private spelling first so numpy 2 does not warn about numpy.core."""
    for mod in (f"numpy._core.{submodule}", f"numpy.core.{submodule}"):
        try:
            return getattr(importlib.import_module(mod), name)
        except (ImportError, AttributeError):
            continue
    raise pickle.UnpicklingError(f"numpy.{submodule}.{name} not available in this numpy")


class Refused(pickle.UnpicklingError):
    """The pickle asked for a global outside the allow-list."""


class SafeUnpickler(pickle.Unpickler):
    """Unpickler for plain data + numpy arrays; anything else raises UnpicklingError."""

    _NUMPY = {("multiarray", "_reconstruct"), ("multiarray", "scalar"), ("numeric", "_frombuffer")}

    def find_class(self, module: str, name: str):
        if (module, name) == ("_codecs", "encode"):
            return _latin1_encode
        if module == "numpy" and name in ("ndarray", "dtype"):
            return getattr(np, name)
        parts = module.split(".")
        if (len(parts) == 3 and parts[0] == "numpy" and parts[1] in ("core", "_core")
                and (parts[2], name) in self._NUMPY):
            return _numpy(parts[2], name)
        raise Refused(f"refusing to load {module}.{name}")


def _unpickle(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            obj = SafeUnpickler(f, encoding="bytes").load()
    except FileNotFoundError:
        raise file_error(path, "not found", FIX) from None
    except Refused as e:
        raise file_error(path, f"{e} (only plain data and numpy arrays are allowed;"
                               " not a CIFAR-10 batch, possibly malicious)", FIX) from None
    except Exception as e:  # any malformed pickle surfaces as some exception from pickle/numpy
        raise file_error(path, f"corrupt or truncated pickle ({type(e).__name__}: {e})", FIX) from None
    if not isinstance(obj, dict):
        raise file_error(path, f"holds a {type(obj).__name__}, expected a dict", FIX)
    return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in obj.items()}


def _read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 (N, 3, 32, 32), labels int64 (N,)) of one batch file, checked."""
    d = _unpickle(path)
    data, labels = d.get("data"), d.get("labels")
    if not isinstance(data, np.ndarray) or labels is None:
        raise file_error(path, "missing 'data' array or 'labels'", FIX)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise file_error(path, f"'data' is {data.dtype} {data.shape}, expected uint8 (N, 3072)", FIX)
    try:
        labels = np.asarray(labels, dtype=np.int64)
    except (TypeError, ValueError):
        raise file_error(path, "'labels' is not a list of integers", FIX) from None
    if labels.shape != (len(data),):
        raise file_error(path, f"{labels.size} labels for {len(data)} images", FIX)
    if labels.size and (labels.min() < 0 or labels.max() >= len(CLASSES)):
        raise file_error(path, f"labels outside 0..{len(CLASSES) - 1}", FIX)
    return data.reshape(-1, 3, 32, 32), labels


def _class_names(folder: Path) -> list[str]:
    """Names from batches.meta when present (and sane), else the standard ten."""
    path = folder / "batches.meta"
    if not path.is_file():
        return list(CLASSES)
    names = _unpickle(path).get("label_names")
    if not isinstance(names, list) or len(names) != len(CLASSES):
        raise file_error(path, "'label_names' is not a list of 10 names", FIX)
    return [n.decode() if isinstance(n, bytes) else str(n) for n in names]


def _resolve(data_dir: str | None) -> Path:
    if not data_dir:
        raise RedsError(f"cifar10 has no default folder; {WHERE}")
    folder = require_dir(data_dir, WHERE)
    inner = folder / "cifar-10-batches-py"
    return inner if not (folder / "test_batch").exists() and inner.is_dir() else folder


def _stack(folder: Path, names: tuple[str, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    parts = [_read_batch(folder / n) for n in names]
    x = np.concatenate([p[0] for p in parts])
    y = np.concatenate([p[1] for p in parts])
    return torch.from_numpy(x), torch.from_numpy(y)


def featurize(raw: torch.Tensor, augment_: bool, generator: torch.Generator) -> torch.Tensor:
    """uint8 (B, 3, 32, 32) -> normalized float32, augmented first when training."""
    x = raw.float() / 255.0
    if augment_:
        x = augment.images(x, generator)
    mean = torch.tensor(MEAN).view(1, 3, 1, 1)
    std = torch.tensor(STD).view(1, 3, 1, 1)
    return (x - mean) / std


def load_cifar10(data_dir: str | None, val_fraction: float = 0.1, seed: int = 0) -> Dataset:
    """CIFAR-10: train/val carved from the 50000 training images with `seed`, test = 10000."""
    folder = _resolve(data_dir)
    classes = _class_names(folder)
    x, y = _stack(folder, TRAIN_FILES)
    test_x, test_y = _stack(folder, ("test_batch",))
    tr, va = holdout_split(len(y), val_fraction, seed)
    splits = {"train": Split(x[tr], y[tr]), "val": Split(x[va], y[va]), "test": Split(test_x, test_y)}
    return Dataset(name="cifar10", input_shape=(3, 32, 32), classes=classes, splits=splits,
                   featurize=featurize,
                   info={"data_dir": str(folder), "normalize": {"mean": MEAN, "std": STD},
                         "augment": augment.DESCRIPTION,
                         "val_fraction": val_fraction, "seed": seed})
