"""Reading and checking the on-disk formats the loaders need (IDX, 16-bit WAV).

A damaged or misplaced file should stop a run before training starts, with one line that
names the file and says how to get a good copy, not with a numpy reshape error later on.
Nothing here writes to the data folder.
"""
from __future__ import annotations

import gzip
import struct
import sys
import wave
import zlib
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ..errors import RedsError

IDX_IMAGES_MAGIC = 0x00000803  # unsigned bytes, 3 dimensions
IDX_LABELS_MAGIC = 0x00000801  # unsigned bytes, 1 dimension


def file_error(path: str | Path, problem: str, fix: str) -> RedsError:
    """The one message shape for a bad file: `<file>: <what is wrong>; <fix>`."""
    return RedsError(f"{path}: {problem}; {fix}")


def require_dir(path: str | Path, fix_hint: str) -> Path:
    """Return `path` as a Path if it is an existing folder, else a RedsError with the fix."""
    p = Path(path).expanduser()
    if not p.exists():
        raise RedsError(f"dataset folder {p} not found; {fix_hint}")
    if not p.is_dir():
        raise RedsError(f"{p} is not a folder; {fix_hint}")
    return p


def find_file(folder: Path, names: tuple[str, ...], fix_hint: str) -> Path:
    """The first of `names` present in `folder` (e.g. a file with or without `.gz`)."""
    for name in names:
        if (folder / name).is_file():
            return folder / name
    raise RedsError(f"{folder / names[0]} not found (also tried {', '.join(names[1:]) or 'nothing else'});"
                    f" {fix_hint}")


def read_idx(path: str | Path, magic: int, fix_hint: str) -> np.ndarray:
    """Read an IDX file (gzipped or raw, decided by content, not by name) as uint8.

    Checks the magic number (0x803 images, 0x801 labels) and that the payload is exactly
    the size the header declares, so a truncated download is caught here.
    """
    path = Path(path)
    try:
        blob = path.read_bytes()
    except OSError as e:
        raise file_error(path, f"cannot read ({e.strerror})", fix_hint) from None
    if blob[:2] == b"\x1f\x8b":
        try:
            blob = gzip.decompress(blob)
        except (OSError, EOFError, zlib.error) as e:
            raise file_error(path, f"corrupt or truncated gzip data ({e})", fix_hint) from None
    if len(blob) < 4:
        raise file_error(path, f"too short for an IDX file ({len(blob)} bytes)", fix_hint)
    (found,) = struct.unpack(">I", blob[:4])
    if found != magic:
        raise file_error(path, f"not an IDX file of the expected kind (magic number 0x{found:08x},"
                               f" expected 0x{magic:08x})", fix_hint)
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(blob) < header:
        raise file_error(path, "truncated IDX header", fix_hint)
    dims = struct.unpack(f">{ndim}I", blob[4:header])
    want, have = int(np.prod(dims, dtype=np.int64)), len(blob) - header
    if have < want:
        raise file_error(path, f"truncated: header declares {want} bytes of data, file holds {have}",
                         fix_hint)
    if have > want:
        raise file_error(path, f"{have - want} unexpected bytes after the declared data", fix_hint)
    return np.frombuffer(blob, dtype=np.uint8, offset=header).reshape(dims)


def read_wav(path: str | Path, fix_hint: str, sample_rate: int = 16000) -> np.ndarray:
    """Read a mono 16-bit PCM WAV at `sample_rate` as int16 samples.

    Anything else (another rate, stereo, 8/24-bit, not RIFF, truncated) is refused rather
    than converted: the features assume exactly this format, as in Speech Commands.
    """
    path = Path(path)
    try:
        with wave.open(str(path), "rb") as w:
            rate, channels, width, n = w.getframerate(), w.getnchannels(), w.getsampwidth(), w.getnframes()
            frames = w.readframes(n)
    except (wave.Error, EOFError, struct.error) as e:
        raise file_error(path, f"not a readable WAV file ({e or 'truncated header'})", fix_hint) from None
    except OSError as e:
        raise file_error(path, f"cannot read ({e.strerror or e})", fix_hint) from None
    if (rate, channels, width) != (sample_rate, 1, 2):
        raise file_error(path, f"{rate} Hz, {channels} channel(s), {8 * width}-bit;"
                               f" expected {sample_rate} Hz mono 16-bit PCM", fix_hint)
    if n == 0:
        raise file_error(path, "holds no samples", fix_hint)
    if len(frames) != 2 * n:
        raise file_error(path, f"truncated: header declares {n} samples, file holds {len(frames) // 2}",
                         fix_hint)
    return np.frombuffer(frames, dtype="<i2").astype(np.int16)


def reading_bar(n: int, folder: Path, unit: str) -> tqdm:
    """The progress bar of reading a data set's `n` files (only on a terminal: disable=None)."""
    return tqdm(total=n, desc=f"reading {folder.name}", unit=unit, file=sys.stderr, disable=None, leave=False)


def holdout_split(n: int, val_fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(train_idx, val_idx): a seeded, sorted split of range(n) for sets without a
    published validation split. The test set is never touched."""
    if not 0.0 <= val_fraction < 1.0:
        raise RedsError(f"val_fraction must be in [0, 1), got {val_fraction}")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    n_val = int(round(n * val_fraction))
    return perm[n_val:].sort().values, perm[:n_val].sort().values
