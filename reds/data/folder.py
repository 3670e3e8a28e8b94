"""`--dataset folder`: your own data as one folder per class.

    DIR/<class>/<file>          (classes = the sorted folder names)
    DIR/train/<class>/<file>    and DIR/test/<class>/<file>  (optionally DIR/val/<class>/...)

Folders whose name starts with `.` or `_` are not classes (`_background_noise_/` with long
WAVs, if present, serves as noise for augmentation, as in Speech Commands); hidden files
and files of other types are skipped; subfolders of a class folder are not read.

Every file is either a WAV or a PNG/JPEG image, never a mix:
- WAV (keyword spotting): mono 16-bit 16 kHz, cut or zero-padded to 1 s, features = the
  same MFCC front end as Speech Commands (`kws_stride_ms`), standardised per coefficient
  with the training split's statistics; augmented in training by time shift (and noise
  when `_background_noise_/` exists).
- images (vision): grayscale if every image is, else RGB (alpha dropped); resized
  (bilinear) to `image_size` (H, W), or to the first training image's size; kept as uint8;
  features = pixels in [0, 1], REDS's augmentation in training (flip, rotation, pad + crop),
  then standardised per channel with the training split's statistics.

Splits: with `train/` and `test/`, those (validation = `val/` if present, else a seeded
10 % of each training class); without, a seeded 10 % of each class is the test set and
another 10 % validation. Validation never overlaps training; the test set is only scored.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..errors import RedsError
from . import augment
from .base import Dataset, Split
from .files import file_error, read_wav, reading_bar, require_dir

AUDIO = (".wav",)
IMAGES = (".png", ".jpg", ".jpeg")
GRAY_MODES = {"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"}
HELD_OUT = 0.10  # of each class: test (without test/), and validation (without val/)
FIX = ("a folder data set holds one folder per class, each of 16 kHz mono 16-bit WAVs or of PNG/JPEG images "
       "(README: 'Your own data')")


def _classes(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith((".", "_")))


def _files(class_dir: Path) -> list[Path]:
    """The WAV and image files of one class folder, sorted; an empty folder is an error."""
    files = sorted(f for f in class_dir.iterdir()
                   if f.is_file() and not f.name.startswith(".") and f.suffix.lower() in AUDIO + IMAGES)
    if not files:
        raise file_error(class_dir, "holds no WAV, PNG or JPEG files", f"add some or remove the folder; {FIX}")
    return files


def _scan(folder: Path) -> tuple[list[str], dict[str, list[tuple[Path, int]]], bool]:
    """(classes, split -> [(file, label)], whether the test split came from the folder)."""
    presplit = (folder / "train").is_dir() and (folder / "test").is_dir()
    roots = {s: folder / s for s in ("train", "val", "test") if (folder / s).is_dir()} if presplit \
        else {"all": folder}
    class_dirs = _classes(roots.get("train", folder))
    classes = [d.name for d in class_dirs]
    if len(classes) < 2:
        where = roots.get("train", folder)
        raise RedsError(f"{where}: {len(classes)} class folder(s) ({', '.join(classes) or 'none'}); "
                        f"a data set needs at least 2; {FIX}")
    items = {}
    for split, root in roots.items():
        dirs = class_dirs if root == roots.get("train", folder) else _classes(root)
        extra = [d.name for d in dirs if d.name not in classes]
        if extra:
            raise RedsError(f"{root / extra[0]}: class {extra[0]!r} is not among the training classes "
                            f"({', '.join(classes)}); every class of {root} must also be in {roots['train']}")
        items[split] = [(f, classes.index(d.name)) for d in dirs for f in _files(d)]
    return classes, items, presplit


def _holdout(items: list[tuple[Path, int]], n_classes: int, share: float, seed: int, salt: int, what: str
             ) -> tuple[list, list]:
    """(kept, held out): a seeded `share` of each class (at least one file) held out."""
    kept, held = [], []
    for c in range(n_classes):
        mine = [it for it in items if it[1] == c]
        if not mine:
            continue
        if len(mine) < 2:
            raise file_error(mine[0][0].parent, f"only {len(mine)} file; a class needs at least 2 here (one to "
                             f"train on, one for {what})", FIX)
        n = max(1, int(round(len(mine) * share)))
        pick = set(np.random.default_rng([seed, salt, c]).permutation(len(mine))[:n].tolist())
        held += [it for i, it in enumerate(mine) if i in pick]
        kept += [it for i, it in enumerate(mine) if i not in pick]
    return kept, held


def _splits(items: dict[str, list], n_classes: int, seed: int) -> dict[str, list[tuple[Path, int]]]:
    if "all" in items:
        for c in range(n_classes):
            mine = [f for f, k in items["all"] if k == c]
            if len(mine) < 3:
                raise file_error(mine[0].parent, f"only {len(mine)} file(s); a class needs at least 3 (one each "
                                 "to train on, validate and test), or put train/ and test/ folders in the data set",
                                 FIX)
        rest, test = _holdout(items["all"], n_classes, HELD_OUT, seed, 0, "validation and test")
        train, val = _holdout(rest, n_classes, HELD_OUT, seed, 1, "validation and test")
        return {"train": train, "val": val, "test": test}
    if "val" in items:
        return {s: items[s] for s in ("train", "val", "test")}
    train, val = _holdout(items["train"], n_classes, HELD_OUT, seed, 1, "validation")
    return {"train": train, "val": val, "test": items["test"]}


def _kind(items: dict[str, list]) -> str:
    files = [f for split in items.values() for f, _ in split]
    audio = [f for f in files if f.suffix.lower() in AUDIO]
    images = [f for f in files if f.suffix.lower() not in AUDIO]
    if audio and images:
        odd, other = (images[0], audio[0]) if len(images) <= len(audio) else (audio[0], images[0])
        raise file_error(odd, f"{'a WAV file' if odd in audio else 'an image'} among "
                              f"{'images' if odd in audio else 'WAV files'} (e.g. {other})",
                         "keep one kind per data set: all WAV or all PNG/JPEG")
    return "audio" if audio else "image"


# ---------------------------------------------------------------------------- audio

def _load_audio(folder: Path, name: str, classes: list[str], splits: dict, stride_ms: int, seed: int) -> Dataset:
    from .mfcc import N_MFCC, num_frames
    from .speech_commands import NOISE_DIR, NoiseBank, audio_info, check_stride, fitted_featurizer, read_clips

    check_stride(stride_ms)
    noise_files = sorted((folder / NOISE_DIR).glob("*.wav")) if (folder / NOISE_DIR).is_dir() else []
    noise = NoiseBank([read_wav(p, FIX) for p in noise_files])
    bar = reading_bar(sum(len(v) for v in splits.values()), folder, "wav")
    out = {split: Split(torch.from_numpy(read_clips([f for f, _ in items], FIX, bar)),
                        torch.tensor([c for _, c in items], dtype=torch.int64))
           for split, items in splits.items()}
    bar.close()
    featurizer = fitted_featurizer(stride_ms, noise, out["train"].x, seed)
    return Dataset(
        name=name, input_shape=(1, num_frames(stride_ms), N_MFCC), classes=classes, splits=out,
        featurize=featurizer, info=audio_info(featurizer, noise_files))


# ---------------------------------------------------------------------------- images

class ImageFeaturizer:
    """uint8 (B, C, H, W) -> float32 in [0, 1], augmented when training, then standardised
    per channel. A class rather than a closure so that it pickles."""

    def __init__(self, mean: torch.Tensor, std: torch.Tensor):
        self.mean, self.std = mean.view(1, -1, 1, 1), std.view(1, -1, 1, 1)

    def __call__(self, raw: torch.Tensor, augment_: bool, generator: torch.Generator) -> torch.Tensor:
        x = raw.float().div_(255.0)
        if augment_:
            x = augment.images(x, generator)
        return (x - self.mean) / self.std


def _open(path: Path):
    from PIL import Image, UnidentifiedImageError

    try:
        img = Image.open(path)
        return img, img.mode, img.size  # the header only: decoding waits for _pixels
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise file_error(path, f"not a readable image ({e})", f"replace or remove it; {FIX}") from None


def _pixels(path: Path, gray: bool, size: tuple[int, int]) -> np.ndarray:
    """(C, H, W) uint8 of one image in the data set's mode and size."""
    from PIL import Image

    resample = getattr(Image, "Resampling", Image).BILINEAR
    img, mode, _ = _open(path)
    try:
        with img:
            img.load()
            if mode.startswith("I;16"):  # 16-bit grayscale: keep the high byte
                img = Image.fromarray((np.asarray(img, dtype=np.uint16) >> 8).astype(np.uint8), "L")
            img = img.convert("L" if gray else "RGB")
            if img.size != (size[1], size[0]):
                img = img.resize((size[1], size[0]), resample)
            a = np.asarray(img, dtype=np.uint8)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise file_error(path, f"not a readable image ({e})", f"replace or remove it; {FIX}") from None
    return a[None] if gray else a.transpose(2, 0, 1)


def _load_images(folder: Path, name: str, classes: list[str], splits: dict,
                 image_size: tuple[int, int] | None) -> Dataset:
    heads = {}
    for items in splits.values():
        for f, _ in items:
            img, mode, size = _open(f)
            img.close()
            heads[f] = (mode, size)
    gray = all(mode in GRAY_MODES for mode, _ in heads.values())
    if image_size is None:
        first = sorted(splits["train"], key=lambda it: (it[1], it[0]))[0][0]
        w, h = heads[first][1]
        image_size = (h, w)
    c = 1 if gray else 3
    bar = reading_bar(len(heads), folder, "image")
    out = {}
    for split, items in splits.items():
        x = np.empty((len(items), c, *image_size), dtype=np.uint8)
        for j, (f, _) in enumerate(items):
            x[j] = _pixels(f, gray, image_size)
            bar.update()
        out[split] = Split(torch.from_numpy(x), torch.tensor([k for _, k in items], dtype=torch.int64))
    bar.close()
    train = out["train"].x.double().div_(255.0)
    mean = train.mean((0, 2, 3)).float()
    std = train.std((0, 2, 3)).float().clamp(min=1e-3) if len(train) > 1 else torch.ones(c)
    resized = sum(1 for mode, (w, h) in heads.values() if (h, w) != tuple(image_size))
    return Dataset(
        name=name, input_shape=(c, *image_size), classes=classes, splits=out,
        featurize=ImageFeaturizer(mean, std),
        info={"kind": "image", "image_size": list(image_size), "color": "grayscale" if gray else "rgb",
              "resized_files": resized, "augment": augment.DESCRIPTION,
              "normalize": {"mean": mean.tolist(), "std": std.tolist(), "axis": "channel"}})


def parse_image_size(value) -> tuple[int, int] | None:
    """(H, W) from None, "HxW", "N" (square) or a pair of positive integers."""
    if value is None:
        return None
    try:
        if isinstance(value, str):
            parts = value.lower().replace(" ", "").split("x")
            h, w = (int(parts[0]), int(parts[0])) if len(parts) == 1 else tuple(int(p) for p in parts)
        else:
            h, w = (int(v) for v in value)
    except (ValueError, TypeError):
        raise RedsError(f"image size must be HxW (e.g. 32x32) or one number, got {value!r}") from None
    if h <= 0 or w <= 0 or h > 4096 or w > 4096:
        raise RedsError(f"image size must be between 1x1 and 4096x4096, got {h}x{w}")
    return h, w


def load_folder(data_dir: str | None, *, kws_stride_ms: int = 20, image_size=None, seed: int = 0,
                name: str = "folder") -> Dataset:
    """Load a folder of class folders (WAVs or images, see the module's docstring)."""
    if not data_dir:
        raise RedsError(f"the folder data set needs its folder: pass --data-dir DIR; {FIX}")
    folder = require_dir(data_dir, FIX)
    size = parse_image_size(image_size)
    classes, items, presplit = _scan(folder)
    kind = _kind(items)
    if kind == "audio" and size is not None:
        raise RedsError(f"{folder} holds WAV files: --image-size applies to image folders only")
    splits = _splits(items, len(classes), seed)
    ds = (_load_audio(folder, name, classes, splits, kws_stride_ms, seed) if kind == "audio"
          else _load_images(folder, name, classes, splits, size))
    ds.info.update({"data_dir": str(folder), "seed": seed,
                    "splits": "train/test folders" if presplit else f"held out {HELD_OUT:.0%} test, "
                                                                      f"{HELD_OUT:.0%} validation per class",
                    "counts": {s: np.bincount(ds.splits[s].y.numpy(), minlength=len(classes)).tolist()
                               for s in ("train", "val", "test")}})
    return ds
