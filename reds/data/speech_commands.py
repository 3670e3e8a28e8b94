"""Keyword spotting on the Google Speech Commands v2 layout (and synth-kws, which copies it).

Layout: one folder per word of 1 s, 16 kHz, mono, 16-bit WAVs; `_background_noise_/` with
long noise recordings; `validation_list.txt` and `testing_list.txt` naming `word/file.wav`
(everything else is training). The 12 classes follow REDS / Hello Edge / the TensorFlow
speech example: silence, unknown, then ten keywords (`words=` replaces the ten: every other
word folder then counts as unknown). As in that example, each split gets
unknown and silence examples amounting to 10% of its keyword examples each: unknown drawn
(seeded) from the other words, silence made of 1 s background-noise crops (seeded per split).

Waveforms are kept as int16 (N, 16000) so that `featurize` can augment them (time shift,
background noise) before computing MFCCs, batch by batch.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from ..errors import RedsError
from .base import Dataset, Split
from .files import file_error, read_wav, reading_bar, require_dir
from .mfcc import CLIP_SAMPLES, N_MFCC, SAMPLE_RATE, mfcc, num_frames, one_second

SILENCE, UNKNOWN = "_silence_", "_unknown_"
WORDS = ["yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go"]
CLASSES = [SILENCE, UNKNOWN, *WORDS]
NOISE_DIR = "_background_noise_"
SPLITS = ("train", "val", "test")
EXTRA_FRACTION = 0.10  # unknown and silence, each, relative to a split's keyword examples
TIME_SHIFT = SAMPLE_RATE // 10  # +-100 ms
NOISE_PROB, NOISE_MAX = 0.8, 0.1
GSC_URL = "http://download.tensorflow.org/data/speech_commands_v0.02.tar.gz"


def _hint(name: str, folder: str | Path) -> str:
    if name == "synth-kws":
        if Path(folder).exists():  # `reds data` writes only into an absent or empty folder
            return f"re-create it: remove {folder}, then run `reds data synth-kws --out {folder}`"
        return f"for synth-kws run `reds data synth-kws --out {folder}`"
    return f"for speech-commands download {GSC_URL} and extract it into {folder}"


def parse_words(words: str | list[str] | tuple[str, ...] | None) -> list[str] | None:
    """Keywords from `--words a,b,c` (or a list), checked; None stays None (REDS's ten).

    A keyword is a word folder's name, so it may not be empty, start with `_` or `.`
    (reserved for `_silence_`, `_unknown_`, `_background_noise_` and hidden folders),
    hold a path separator, or repeat."""
    if words is None:
        return None
    items = [w.strip() for w in (words.split(",") if isinstance(words, str) else words)]
    items = [w for w in items if w]
    if not items:
        raise RedsError("--words needs at least one keyword, e.g. --words yes,no,stop")
    for w in items:
        if w.startswith(("_", ".")) or "/" in w or "\\" in w:
            raise RedsError(f"keyword {w!r} cannot be a word folder's name (no leading _ or ., no / or \\)")
    dup = sorted({w for w in items if items.count(w) > 1})
    if dup:
        raise RedsError(f"--words names {', '.join(dup)} more than once")
    return items


def _read_list(path: Path, fix: str) -> set[str]:
    if not path.is_file():
        raise file_error(path, "not found", fix)
    text = path.read_text(encoding="utf-8", errors="replace")
    return {line.strip().replace("\\", "/") for line in text.splitlines() if line.strip()}


def check_stride(stride_ms) -> None:
    if int(stride_ms) != stride_ms or stride_ms <= 0:
        raise RedsError(f"MFCC stride must be a positive number of milliseconds, got {stride_ms}")


def read_clips(paths: list[Path], fix: str, bar) -> np.ndarray:
    """(len(paths), 16000) int16: each WAV read, checked and zero-padded or cut to 1 s."""
    x = np.empty((len(paths), CLIP_SAMPLES), dtype=np.int16)
    for j, path in enumerate(paths):
        x[j] = one_second(read_wav(path, fix))
        bar.update()
    return x


class NoiseBank:
    """All background clips of at least 1 s, concatenated, from which random 1 s crops are
    drawn in one vectorized gather (a crop never spans two clips)."""

    def __init__(self, clips: list[np.ndarray]):
        clips = [c for c in clips if len(c) >= CLIP_SAMPLES]
        lengths = torch.tensor([len(c) for c in clips], dtype=torch.int64)
        self.audio = torch.from_numpy(np.concatenate(clips)) if clips else torch.zeros(0, dtype=torch.int16)
        self.first = torch.cumsum(lengths, 0) - lengths  # where each clip starts in `audio`
        self.count = lengths - CLIP_SAMPLES + 1  # valid crop starts per clip
        self.cum = torch.cumsum(self.count, 0)

    def __bool__(self) -> bool:
        return len(self.count) > 0

    def crops(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """(n, 16000) int16 crops, uniform over all valid start positions."""
        u = torch.randint(0, int(self.cum[-1]), (n,), generator=generator)
        clip = torch.searchsorted(self.cum, u, right=True)
        start = self.first[clip] + u - (self.cum[clip] - self.count[clip])
        return self.audio[start[:, None] + torch.arange(CLIP_SAMPLES)]


def _augment(x: torch.Tensor, noise: NoiseBank, g: torch.Generator) -> torch.Tensor:
    """Random time shift (+-100 ms, zero fill) and, with p=0.8, background noise x U(0, 0.1)."""
    b = x.shape[0]
    shift = torch.randint(-TIME_SHIFT, TIME_SHIFT + 1, (b, 1), generator=g)
    src = torch.arange(CLIP_SAMPLES)[None, :] - shift
    inside = (src >= 0) & (src < CLIP_SAMPLES)
    x = torch.gather(x, 1, src.clamp(0, CLIP_SAMPLES - 1)) * inside
    if noise:
        volume = torch.rand(b, 1, generator=g) * NOISE_MAX * (torch.rand(b, 1, generator=g) < NOISE_PROB)
        x = x + volume * noise.crops(b, g).float() / 32768.0
    return x.clamp(-1.0, 1.0)


class Featurizer:
    """`Dataset.featurize` for keyword spotting: int16 (B, 16000) -> MFCC (B, 1, frames, 10),
    augmented first when training. A class rather than a closure so that it pickles."""

    def __init__(self, stride_ms: int, noise: NoiseBank):
        self.stride_ms, self.noise = stride_ms, noise
        # Per-coefficient standardisation (coefficient 0 spans tens of units, the others
        # about one); fitted on the training split by `fit_normalisation`.
        self.mean = torch.zeros(N_MFCC)
        self.std = torch.ones(N_MFCC)

    def fit_normalisation(self, raw: torch.Tensor) -> None:
        f = mfcc(raw.float() / 32768.0, self.stride_ms)
        self.mean = f.mean((0, 1, 2))
        self.std = f.std((0, 1, 2)).clamp(min=1e-3)

    def __call__(self, raw: torch.Tensor, augment: bool, generator: torch.Generator) -> torch.Tensor:
        x = raw.float() / 32768.0
        if augment:
            x = _augment(x, self.noise, generator)
        return (mfcc(x, self.stride_ms) - self.mean) / self.std


def fitted_featurizer(stride_ms: int, noise: NoiseBank, train: torch.Tensor, seed: int) -> Featurizer:
    """A Featurizer standardised on (a seeded 4000 of) the training waveforms."""
    featurizer = Featurizer(stride_ms, noise)
    featurizer.fit_normalisation(train[torch.randperm(len(train), generator=torch.Generator().manual_seed(seed))[:4000]])
    return featurizer


def audio_info(featurizer: Featurizer, noise_files: list[Path]) -> dict:
    """What a keyword-spotting Dataset's `info` records of its features."""
    mean, std = featurizer.mean.tolist(), featurizer.std.tolist()
    return {"kind": "audio", "stride_ms": featurizer.stride_ms, "mfcc_mean": mean, "mfcc_std": std,
            "normalize": {"mean": mean, "std": std, "axis": "coefficient"},
            "noise_files": [p.name for p in noise_files]}


def _scan(folder: Path, fix: str, keywords: list[str], chosen: bool) -> dict[str, list[str]]:
    """word -> sorted WAV file names, for every word folder (not `_background_noise_`).

    `chosen`: the keywords were asked for by name (`--words`), so each must have its folder
    with WAVs; REDS's ten need only be present in part (a subset of Speech Commands)."""
    words = {}
    for d in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith((".", "_"))):
        words[d.name] = sorted(f.name for f in d.iterdir() if f.suffix.lower() == ".wav")
    if chosen:
        for w in keywords:
            if not words.get(w):
                have = ", ".join(words) or "none"
                what = "holds no WAV files" if w in words else "has no folder"
                raise RedsError(f"keyword {w!r} {what} in {folder} (word folders: {have}); "
                                f"choose --words among the word folders, or add {folder / w}")
    elif not any(words.get(w) for w in keywords):
        raise RedsError(f"no keyword WAVs ({', '.join(keywords)}) found in {folder}; {fix}")
    return words


def _plan(words: dict[str, list[str]], val: set[str], test: set[str], seed: int, classes: list[str]):
    """split -> [(relative path, label)] of its keyword files plus its seeded share of
    unknown-word files; and split -> number of silence clips to make."""
    known = {s: [] for s in SPLITS}
    unknown = {s: [] for s in SPLITS}
    for word, files in words.items():
        for f in files:
            rel = f"{word}/{f}"
            split = "val" if rel in val else "test" if rel in test else "train"
            if word in classes:
                known[split].append((rel, classes.index(word)))
            else:
                unknown[split].append((rel, classes.index(UNKNOWN)))
    plan, n_silence = {}, {}
    for i, split in enumerate(SPLITS):
        extra = math.ceil(len(known[split]) * EXTRA_FRACTION)
        rng = np.random.default_rng([seed, i])
        pool = unknown[split]
        pick = sorted(rng.choice(len(pool), size=min(extra, len(pool)), replace=False).tolist())
        plan[split] = known[split] + [pool[j] for j in pick]
        n_silence[split] = extra
    return plan, n_silence


def manifest_words(folder: Path) -> list[str] | None:
    """The keywords a `reds data synth-kws --words` folder was made with (its manifest), if any."""
    import json

    try:
        words = json.loads((folder / "synth_kws.json").read_text()).get("words")
    except (OSError, ValueError, AttributeError):
        return None
    if isinstance(words, list) and words and all(isinstance(w, str) for w in words):
        return words
    return None


def load_speech_commands(data_dir: str | None, name: str = "speech-commands", stride_ms: int = 20,
                         *, seed: int = 0, words: str | list[str] | None = None) -> Dataset:
    """Load a Speech-Commands-layout folder as keyword spotting: silence, unknown, keywords.

    `stride_ms` sets the MFCC frame stride (20 -> input 1x49x10, 40 -> 1x25x10); `seed` fixes
    which unknown-word files and which noise crops make up each split. `words`: the keywords
    (default REDS's ten, or for synth-kws the words its manifest records); every other word
    folder counts as unknown. A keyword asked for by name must have its word folder.
    """
    if not data_dir:
        how = ("create one with `reds data synth-kws --out DIR`" if name == "synth-kws"
               else f"download {GSC_URL} and extract it into DIR")
        raise RedsError(f"{name} needs a folder: pass --data-dir DIR ({how})")
    check_stride(stride_ms)
    fix = _hint(name, data_dir)
    folder = require_dir(data_dir, fix)
    chosen = parse_words(words)
    keywords = chosen or (name == "synth-kws" and manifest_words(folder)) or list(WORDS)
    classes = [SILENCE, UNKNOWN, *keywords]
    val = _read_list(folder / "validation_list.txt", fix)
    test = _read_list(folder / "testing_list.txt", fix)
    noise_dir = require_dir(folder / NOISE_DIR, fix)
    noise_files = sorted(noise_dir.glob("*.wav"))
    noise = NoiseBank([read_wav(p, fix) for p in noise_files])
    if not noise:
        raise RedsError(f"{noise_dir} holds no WAV of at least 1 s; {fix}")

    plan, n_silence = _plan(_scan(folder, fix, keywords, chosen is not None), val, test, seed, classes)
    bar = reading_bar(sum(len(v) for v in plan.values()), folder, "wav")
    splits = {}
    for i, split in enumerate(SPLITS):
        items = plan[split]
        x = np.empty((len(items) + n_silence[split], CLIP_SAMPLES), dtype=np.int16)
        x[:len(items)] = read_clips([folder / rel for rel, _ in items], fix, bar)
        g = torch.Generator().manual_seed(len(SPLITS) * seed + i)
        volume = torch.rand(n_silence[split], 1, generator=g)
        x[len(items):] = (noise.crops(n_silence[split], g).float() * volume).round().to(torch.int16).numpy()
        y = [label for _, label in items] + [0] * n_silence[split]
        splits[split] = Split(torch.from_numpy(x), torch.tensor(y, dtype=torch.int64))
    bar.close()

    featurizer = fitted_featurizer(stride_ms, noise, splits["train"].x, seed)
    return Dataset(
        name=name, input_shape=(1, num_frames(stride_ms), N_MFCC), classes=classes,
        splits=splits, featurize=featurizer,
        info={"data_dir": str(folder), **audio_info(featurizer, noise_files), "seed": seed, "words": keywords,
              "counts": {s: np.bincount(splits[s].y.numpy(), minlength=len(classes)).tolist()
                         for s in SPLITS}})
