"""`--dataset npz`: your own arrays in one NumPy `.npz` file.

Arrays: `x_train`, `y_train`, `x_test`, `y_test`; optional `x_val` + `y_val` (else a seeded
share of the training set is held out as validation) and `classes` (names, strings).

x: (N, H, W) -> one channel; (N, C, H, W); or (N, H, W, C), read as channels-last only when
its last dimension is 1 or 3 and its second is not (so (N, 3, 32, 3) is channels-first);
any integer or floating dtype. y: integer labels 0..K-1, K = len(classes) or, without
names, 1 + the largest training label. Features are standardised per channel with the
training set's mean and std (no augmentation: the arrays need not be images). The file is
read with allow_pickle=False: an object array is refused, no code runs.
"""
from __future__ import annotations

import zipfile
import zlib
from pathlib import Path

import numpy as np
import torch

from ..errors import RedsError
from .base import Dataset, Split
from .files import file_error, holdout_split

REQUIRED = ("x_train", "y_train", "x_test", "y_test")
FIX = ("an npz data set holds x_train, y_train, x_test, y_test (optional x_val, y_val, classes): "
       "write it with numpy.savez (README: 'Your own data')")


def _layout(x: np.ndarray) -> str:
    if x.ndim == 3:
        return "NHW"
    if x.shape[-1] in (1, 3) and x.shape[1] not in (1, 3):
        return "NHWC"
    return "NCHW"


def _array(z, path: Path, key: str) -> np.ndarray:
    try:
        return z[key]
    except ValueError as e:  # an object array under allow_pickle=False, or a bad header
        raise file_error(path, f"array {key} cannot be read without pickle ({e})",
                         "store plain numeric arrays (and classes as a string array)") from None
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as e:
        raise file_error(path, f"array {key} is damaged ({e})", FIX) from None


def _images(path: Path, key: str, x: np.ndarray) -> tuple[np.ndarray, str]:
    """(N, C, H, W) float32 of one x array, and the layout it was read in."""
    if x.ndim not in (3, 4):
        raise file_error(path, f"array {key} has shape {x.shape}; expected (N, H, W), (N, C, H, W) or (N, H, W, C)",
                         FIX)
    if not (np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating) or x.dtype == np.bool_):
        raise file_error(path, f"array {key} has dtype {x.dtype}; expected numbers", FIX)
    if x.shape[0] == 0 or 0 in x.shape[1:]:
        raise file_error(path, f"array {key} is empty (shape {x.shape})", FIX)
    layout = _layout(x)
    x = x.astype(np.float32)
    if layout == "NHW":
        x = x[:, None]
    elif layout == "NHWC":
        x = x.transpose(0, 3, 1, 2)
    if not np.isfinite(x).all():
        raise file_error(path, f"array {key} holds NaN or infinite values", FIX)
    return np.ascontiguousarray(x), layout


def _labels(path: Path, key: str, y: np.ndarray, n: int, xkey: str) -> np.ndarray:
    if y.ndim != 1:
        raise file_error(path, f"array {key} has shape {y.shape}; expected (N,) integer labels", FIX)
    if not np.issubdtype(y.dtype, np.integer):
        raise file_error(path, f"array {key} has dtype {y.dtype}; expected integer labels 0..K-1", FIX)
    if len(y) != n:
        raise file_error(path, f"array {key} holds {len(y)} labels for the {n} samples of {xkey}", FIX)
    if len(y) and y.min() < 0:
        raise file_error(path, f"array {key} holds label {y.min()}; labels are 0..K-1", FIX)
    return y.astype(np.int64)


def load_npz(data_dir: str | None, val_fraction: float = 0.1, seed: int = 0) -> Dataset:
    """Load an .npz of arrays (see the module's docstring)."""
    if not data_dir:
        raise RedsError(f"the npz data set needs its file: pass --data-dir FILE.npz; {FIX}")
    path = Path(data_dir).expanduser()
    if not path.exists():
        raise RedsError(f"{path} not found; {FIX}")
    if path.is_dir():
        raise file_error(path, "is a folder, not an .npz file", f"pass the file, or use --dataset folder; {FIX}")
    try:
        z = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise file_error(path, f"not a readable .npz file ({e})", FIX) from None
    if not isinstance(z, np.lib.npyio.NpzFile):
        raise file_error(path, "is a single .npy array, not an .npz archive of named arrays", FIX)
    with z:
        keys = set(z.files)
        missing = [k for k in REQUIRED if k not in keys]
        if missing:
            raise file_error(path, f"array {missing[0]} missing (found: {', '.join(sorted(keys)) or 'none'})", FIX)
        if ("x_val" in keys) != ("y_val" in keys):
            have, lack = ("x_val", "y_val") if "x_val" in keys else ("y_val", "x_val")
            raise file_error(path, f"array {lack} missing (given {have}: pass both or neither)", FIX)
        arrays = {k: _array(z, path, k) for k in (*REQUIRED, "x_val", "y_val", "classes") if k in keys}

    splits_in = ["train", "test"] + (["val"] if "x_val" in arrays else [])
    x, y, layouts = {}, {}, {}
    for s in splits_in:
        x[s], layouts[s] = _images(path, f"x_{s}", arrays[f"x_{s}"])
        y[s] = _labels(path, f"y_{s}", arrays[f"y_{s}"], len(x[s]), f"x_{s}")
        if x[s].shape[1:] != x["train"].shape[1:]:
            raise file_error(path, f"array x_{s} holds samples of shape {x[s].shape[1:]} (read as {layouts[s]}), "
                                   f"x_train of {x['train'].shape[1:]} (read as {layouts['train']})", FIX)
    if "classes" in arrays:
        names = arrays["classes"]
        if names.ndim != 1 or names.dtype.kind not in "US":
            raise file_error(path, f"array classes has shape {names.shape} and dtype {names.dtype}; "
                                   "expected a 1-D array of strings", FIX)
        classes = [n.decode(errors="replace") if isinstance(n, bytes) else str(n) for n in names.tolist()]
        if len(set(classes)) != len(classes):
            raise file_error(path, "array classes names a class more than once", FIX)
    else:
        classes = [str(k) for k in range(int(y["train"].max()) + 1)]
    if len(classes) < 2:
        raise file_error(path, f"{len(classes)} class(es); a data set needs at least 2", FIX)
    for s in splits_in:
        if len(y[s]) and y[s].max() >= len(classes):
            where = f"the {len(classes)} names in array classes" if "classes" in arrays else \
                "the labels of y_train"
            raise file_error(path, f"array y_{s} holds label {y[s].max()}, out of range 0..{len(classes) - 1} "
                                   f"({where})", FIX)

    if "val" not in x:
        tr, va = holdout_split(len(y["train"]), val_fraction, seed)
        xt, yt = x["train"], y["train"]
        x["train"], y["train"], x["val"], y["val"] = xt[tr.numpy()], yt[tr.numpy()], xt[va.numpy()], yt[va.numpy()]
    mean = x["train"].astype(np.float64).mean((0, 2, 3))
    std = x["train"].astype(np.float64).std((0, 2, 3))
    std = np.where(std > 1e-12 * np.maximum(1.0, np.abs(mean)), std, 1.0)
    m, sd = mean.astype(np.float32)[None, :, None, None], std.astype(np.float32)[None, :, None, None]
    splits = {s: Split(torch.from_numpy((x[s] - m) / sd), torch.from_numpy(y[s])) for s in ("train", "val", "test")}
    return Dataset(
        name="npz", input_shape=tuple(int(d) for d in x["train"].shape[1:]), classes=classes, splits=splits,
        info={"data_dir": str(path.resolve()), "kind": "array", "layout": layouts["train"],
              "normalize": {"mean": mean.tolist(), "std": std.tolist(), "axis": "channel"},
              "val": "x_val" if "x_val" in arrays else f"held out {val_fraction:.0%} of x_train",
              "val_fraction": val_fraction, "seed": seed,
              "counts": {s: np.bincount(splits[s].y.numpy(), minlength=len(classes)).tolist()
                         for s in ("train", "val", "test")}})
