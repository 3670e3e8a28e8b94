"""Data-set layer: every loader on small files written here in the real on-disk formats,
the failure modes a user will meet (bad magic, truncation, wrong WAV format, malicious
pickle, missing folder), the MFCC front end, and synth-kws end to end when espeak-ng exists."""
from __future__ import annotations

import gzip
import hashlib
import math
import os
import pickle
import shutil
import struct
import wave
from pathlib import Path

import numpy as np
import pytest
import torch

from reds.data import load
from reds.data.cifar10 import MEAN as C_MEAN, STD as C_STD, featurize as cifar_featurize, load_cifar10
from reds.data.files import IDX_IMAGES_MAGIC, IDX_LABELS_MAGIC, holdout_split, read_idx, read_wav
from reds.data.fmnist import DEFAULT_DIR, MEAN, STD, load_fmnist
from reds.data.mfcc import mel_filterbank, mfcc, num_frames
from reds.data.speech_commands import CLASSES as KWS_CLASSES, load_speech_commands
from reds.errors import RedsError


def snapshot(folder: Path) -> dict[str, tuple[int, str]]:
    """(mtime, content hash) of every file, to show a failing loader modified nothing."""
    return {str(p.relative_to(folder)): (p.stat().st_mtime_ns, hashlib.sha1(p.read_bytes()).hexdigest())
            for p in sorted(folder.rglob("*")) if p.is_file()}


def one_line(e: pytest.ExceptionInfo) -> str:
    msg = str(e.value)
    assert "\n" not in msg
    return msg


# ---------------------------------------------------------------- IDX / Fashion-MNIST

def idx_bytes(arr: np.ndarray, magic: int) -> bytes:
    header = struct.pack(">I", magic) + struct.pack(f">{arr.ndim}I", *arr.shape)
    return header + arr.astype(np.uint8).tobytes()


def write_fmnist(folder: Path, gz: bool, n_train: int = 50, n_test: int = 20, seed: int = 0):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    data = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, n, dtype=np.uint8)
        for kind, arr, magic in (("images-idx3", images, IDX_IMAGES_MAGIC),
                                 ("labels-idx1", labels, IDX_LABELS_MAGIC)):
            name = f"{prefix}-{kind}-ubyte"
            blob = idx_bytes(arr, magic)
            if gz:
                (folder / f"{name}.gz").write_bytes(gzip.compress(blob))
            else:
                (folder / name).write_bytes(blob)
        data[prefix] = (images, labels)
    return data


@pytest.mark.parametrize("gz", [True, False])
def test_fmnist_loads_gz_and_raw(tmp_path, gz):
    data = write_fmnist(tmp_path, gz)
    d = load_fmnist(str(tmp_path), val_fraction=0.2, seed=3)
    assert d.input_shape == (1, 28, 28) and d.num_classes == 10
    assert (d.size("train"), d.size("val"), d.size("test")) == (40, 10, 20)
    for s in d.splits.values():
        assert s.x.dtype == torch.uint8 and s.x.shape[1:] == (1, 28, 28) and s.y.dtype == torch.int64
    # Features undo to the original pixels, and each keeps its own label.
    images, labels = data["train"]
    tr, va = holdout_split(50, 0.2, 3)
    x, _ = next(d.batches("train", 40))
    pixels = (x * STD + MEAN) * 255
    assert torch.allclose(pixels.squeeze(1), torch.from_numpy(images[tr.numpy()]).float(), atol=1e-3)
    assert torch.equal(d.splits["val"].y, torch.from_numpy(labels[va.numpy()]).long())
    assert torch.equal(d.splits["test"].y, torch.from_numpy(data["t10k"][1]).long())
    x, y = next(d.batches("train", 16, shuffle=True))
    assert x.shape == (16, 1, 28, 28) and y.shape == (16,)


def test_fmnist_split_is_seeded():
    a, b = holdout_split(100, 0.1, 0), holdout_split(100, 0.1, 0)
    c = holdout_split(100, 0.1, 1)
    assert torch.equal(a[1], b[1]) and not torch.equal(a[1], c[1])
    assert sorted(torch.cat(a).tolist()) == list(range(100)) and len(a[1]) == 10
    with pytest.raises(RedsError, match="val_fraction"):
        holdout_split(10, 1.0, 0)


def test_idx_reader_handles_gzip_by_content(tmp_path):
    arr = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    p = tmp_path / "images.idx"  # gzipped, though the name does not say so
    p.write_bytes(gzip.compress(idx_bytes(arr, IDX_IMAGES_MAGIC)))
    assert np.array_equal(read_idx(p, IDX_IMAGES_MAGIC, "fix"), arr)


def test_fmnist_wrong_magic_names_file_and_touches_nothing(tmp_path):
    write_fmnist(tmp_path, gz=False)
    bad = tmp_path / "train-labels-idx1-ubyte"
    bad.write_bytes(idx_bytes(np.zeros((50, 1, 1), np.uint8), IDX_IMAGES_MAGIC))
    before = snapshot(tmp_path)
    with pytest.raises(RedsError) as e:
        load_fmnist(str(tmp_path), 0.1, 0)
    msg = one_line(e)
    assert str(bad) in msg and "magic" in msg and "apt-get install dataset-fashion-mnist" in msg
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("gz", [True, False])
def test_fmnist_truncated_file(tmp_path, gz):
    write_fmnist(tmp_path, gz)
    name = "train-images-idx3-ubyte" + (".gz" if gz else "")
    p = tmp_path / name
    p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2])
    before = snapshot(tmp_path)
    with pytest.raises(RedsError) as e:
        load_fmnist(str(tmp_path), 0.1, 0)
    msg = one_line(e)
    assert str(p) in msg and "truncated" in msg and "re-download" in msg
    assert snapshot(tmp_path) == before


def test_fmnist_label_count_mismatch(tmp_path):
    write_fmnist(tmp_path, gz=False)
    p = tmp_path / "t10k-labels-idx1-ubyte"
    p.write_bytes(idx_bytes(np.zeros(19, np.uint8), IDX_LABELS_MAGIC))
    with pytest.raises(RedsError, match="19 labels for 20 images"):
        load_fmnist(str(tmp_path), 0.1, 0)


def test_fmnist_missing_folder_and_file(tmp_path):
    with pytest.raises(RedsError) as e:
        load_fmnist(str(tmp_path / "nope"), 0.1, 0)
    assert str(tmp_path / "nope") in one_line(e) and "not found" in str(e.value)
    write_fmnist(tmp_path, gz=True)
    (tmp_path / "t10k-images-idx3-ubyte.gz").unlink()
    with pytest.raises(RedsError) as e:
        load("fmnist", str(tmp_path))
    assert "t10k-images-idx3-ubyte" in one_line(e)


@pytest.mark.skipif(not Path(DEFAULT_DIR).is_dir(),
                    reason=f"{DEFAULT_DIR} absent (apt-get install dataset-fashion-mnist)")
def test_real_fashion_mnist_default_folder():
    d = load("fmnist")  # no data_dir: the Debian package's folder
    assert d.size("train") + d.size("val") == 60000 and d.size("val") == 6000 and d.size("test") == 10000
    assert d.splits["test"].x.shape == (10000, 1, 28, 28) and d.splits["test"].x.dtype == torch.uint8
    x, _ = next(d.batches("train", 60000))  # features: normalised by the published mean and std
    assert abs(float(x.mean())) < 0.05 and abs(float(x.std()) - 1) < 0.05
    assert torch.bincount(d.splits["test"].y).tolist() == [1000] * 10


# ---------------------------------------------------------------- CIFAR-10

def write_cifar(folder: Path, n: int = 4, protocol: int = 2, seed: int = 0):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    batches = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        d = {b"batch_label": name.encode(), b"labels": rng.integers(0, 10, n).tolist(),
             b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), b"filenames": [b"x.png"] * n}
        (folder / name).write_bytes(pickle.dumps(d, protocol=protocol))
        batches[name] = d
    meta = {b"label_names": [c.encode() for c in ["airplane", "automobile", "bird", "cat", "deer", "dog",
                                                   "frog", "horse", "ship", "truck"]],
            b"num_cases_per_batch": n, b"num_vis": 3072}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=protocol))
    return batches


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_cifar_loads(tmp_path, protocol):
    batches = write_cifar(tmp_path / "cifar-10-batches-py", protocol=protocol)
    d = load("cifar10", str(tmp_path), val_fraction=0.25, seed=0)  # parent folder is accepted too
    assert d.classes[0] == "airplane" and d.input_shape == (3, 32, 32)
    assert (d.size("train"), d.size("val"), d.size("test")) == (15, 5, 4)
    test = batches["test_batch"]
    assert torch.equal(d.splits["test"].x, torch.from_numpy(test[b"data"].reshape(4, 3, 32, 32)))
    assert d.splits["test"].y.tolist() == test[b"labels"]
    x, y = next(d.batches("test", 4))
    mean, std = torch.tensor(C_MEAN).view(1, 3, 1, 1), torch.tensor(C_STD).view(1, 3, 1, 1)
    assert x.dtype == torch.float32
    assert torch.allclose(x * std + mean, d.splits["test"].x.float() / 255, atol=1e-6)
    xa, _ = next(d.batches("train", 8, shuffle=True, augment=True))
    assert xa.shape == (8, 3, 32, 32) and torch.isfinite(xa).all()


def _crops(image: torch.Tensor, pad: int = 2) -> list[torch.Tensor]:
    """Every pad + crop of one (C, H, W) image and of its mirror."""
    h, w = image.shape[1:]
    out = []
    for im in (image, image.flip(2)):
        padded = torch.nn.functional.pad(im, (pad, pad, pad, pad))
        out += [padded[:, dy:dy + h, dx:dx + w] for dy in range(2 * pad + 1) for dx in range(2 * pad + 1)]
    return out


def test_cifar_augmentation_is_reds_recipe():
    """About 70 % of the images are a 2-pixel padded crop of the original or of its mirror
    (exactly); the rest are rotated as well, so they match no crop."""
    raw = torch.randint(0, 256, (200, 3, 32, 32), dtype=torch.uint8)
    out = cifar_featurize(raw, True, torch.Generator().manual_seed(1))
    again = cifar_featurize(raw, True, torch.Generator().manual_seed(1))
    assert torch.equal(out, again)
    mean, std = torch.tensor(C_MEAN).view(1, 3, 1, 1), torch.tensor(C_STD).view(1, 3, 1, 1)
    pixels = ((out * std + mean) * 255).round().to(torch.uint8)
    plain = sum(any(torch.equal(pixels[i], c) for c in _crops(raw[i])) for i in range(len(raw)))
    assert 0.55 * len(raw) < plain < 0.85 * len(raw)


def test_rotation_is_small():
    """A rotation-invariant image (a smooth blob) stays a crop of itself within interpolation
    error; rotations beyond 0.2 rad of a bar would not."""
    from reds.data.augment import images
    r = torch.linspace(-1, 1, 28)
    blob = torch.exp(-(r[None, :] ** 2 + r[:, None] ** 2) * 4)[None]  # (1, 28, 28)
    out = images(blob.expand(64, 1, 28, 28).clone(), torch.Generator().manual_seed(0))
    for o in out:
        assert min(float((o - c).abs().max()) for c in _crops(blob)) < 0.02
    bar = torch.zeros(1, 28, 28)
    bar[:, 13:15, 2:26] = 1.0
    out = images(bar.expand(300, 1, 28, 28).clone(), torch.Generator().manual_seed(0))
    # the bar's ends move by at most 12 * sin(0.2) = 2.4 pixels off its row
    rows = (out.sum(3) > 0.05).squeeze(1)  # (N, 28): rows the bar touches
    spread = rows.float().sum(1)
    assert spread.max() <= 2 + 2 * 3 + 2 and (spread > 2).float().mean() > 0.15


def test_cifar_corrupt_batch(tmp_path):
    write_cifar(tmp_path)
    p = tmp_path / "data_batch_3"
    p.write_bytes(p.read_bytes()[:100])
    before = snapshot(tmp_path)
    with pytest.raises(RedsError) as e:
        load_cifar10(str(tmp_path))
    assert str(p) in one_line(e) and "corrupt or truncated" in str(e.value)
    assert snapshot(tmp_path) == before


def test_cifar_wrong_shape(tmp_path):
    write_cifar(tmp_path)
    p = tmp_path / "test_batch"
    p.write_bytes(pickle.dumps({b"data": np.zeros((4, 100), np.uint8), b"labels": [0] * 4}))
    with pytest.raises(RedsError) as e:
        load_cifar10(str(tmp_path))
    assert str(p) in one_line(e) and "(N, 3072)" in str(e.value)


class Evil:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_cifar_malicious_pickle_is_refused(tmp_path):
    write_cifar(tmp_path)
    marker = tmp_path / "pwned"
    p = tmp_path / "data_batch_1"
    p.write_bytes(pickle.dumps({b"data": Evil(marker), b"labels": []}))
    with pytest.raises(RedsError) as e:
        load_cifar10(str(tmp_path))
    msg = one_line(e)
    assert str(p) in msg and "refusing" in msg and "system" in msg
    assert not marker.exists()


def test_cifar_needs_a_folder(tmp_path):
    with pytest.raises(RedsError, match="--data-dir"):
        load("cifar10")
    with pytest.raises(RedsError) as e:
        load("cifar10", str(tmp_path / "missing"))
    assert str(tmp_path / "missing") in one_line(e)


# ---------------------------------------------------------------- MFCC

def numpy_mfcc(audio: np.ndarray, stride: int) -> np.ndarray:
    """Independent reference: frame by frame, TensorFlow's filterbank algorithm
    (band mapper + weights), DCT-II written out."""
    n_fft, win, n_mels = 1024, 640, 40
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(win) / win)
    mel = lambda f: 1127.0 * np.log(1 + f / 700.0)  # noqa: E731
    centers = mel(20.0) + (mel(4000.0) - mel(20.0)) / (n_mels + 1) * np.arange(1, n_mels + 2)
    out = []
    for start in range(0, len(audio) - win + 1, stride):
        spec = np.abs(np.fft.rfft(audio[start:start + win] * window, n_fft))
        energies = np.zeros(n_mels)
        for k, s in enumerate(spec):
            f = k * 16000 / n_fft
            if not 20.0 <= f <= 4000.0:
                continue
            m = mel(f)
            c = np.searchsorted(centers, m, side="left") - 1  # band: centers[c] < m <= centers[c+1]
            if c + 1 > n_mels:
                continue
            lower = centers[c] if c >= 0 else mel(20.0)
            w = (centers[c + 1] - m) / (centers[c + 1] - lower)
            if c >= 0:
                energies[c] += w * s
            if c + 1 < n_mels:
                energies[c + 1] += (1 - w) * s
        logmel = np.log(energies + 1e-6)
        n = np.arange(n_mels)
        coeffs = [np.sqrt((1 if k == 0 else 2) / n_mels)
                  * np.sum(logmel * np.cos(np.pi / n_mels * (n + 0.5) * k)) for k in range(10)]
        out.append(coeffs)
    return np.array(out)


@pytest.mark.parametrize("stride_ms, frames", [(20, 49), (40, 25)])
def test_mfcc_shape_and_reference(stride_ms, frames):
    rng = np.random.default_rng(0)
    audio = rng.uniform(-0.5, 0.5, (2, 16000)).astype(np.float32)
    out = mfcc(torch.from_numpy(audio), stride_ms)
    assert out.shape == (2, 1, frames, 10) and out.dtype == torch.float32 and num_frames(stride_ms) == frames
    ref = numpy_mfcc(audio[1].astype(np.float64), stride_ms * 16)
    assert np.allclose(out[1, 0].numpy(), ref, rtol=1e-3, atol=1e-3)


def test_mfcc_tone_lands_in_its_mel_band():
    fb = mel_filterbank()
    for hz in (300.0, 1000.0, 3000.0):
        tone = torch.sin(2 * math.pi * hz * torch.arange(16000) / 16000)[None]
        frames = tone.unfold(-1, 640, 320) * torch.hann_window(640, periodic=True)
        mel = torch.fft.rfft(frames, n=1024)[..., : fb.shape[0]].abs() @ fb
        peak = int(mel.mean(1).argmax())
        assert int(fb[round(hz * 1024 / 16000)].argmax()) in (peak - 1, peak, peak + 1)
    # And the cepstrum tells a low tone from a high one.
    lo = mfcc(torch.sin(2 * math.pi * 300 * torch.arange(16000) / 16000)[None])
    hi = mfcc(torch.sin(2 * math.pi * 3000 * torch.arange(16000) / 16000)[None])
    assert (lo[0, 0, :, 1].mean() - hi[0, 0, :, 1].mean()).abs() > 1.0


# ---------------------------------------------------------------- Speech Commands layout

def write_wav(path: Path, samples: np.ndarray, rate: int = 16000, channels: int = 1, width: int = 2):
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(samples.astype("<i2" if width == 2 else np.uint8).tobytes())


VAL_LIST = ("yes/spk0_nohash_0.wav", "no/spk0_nohash_5.wav", "cat/spk0_nohash_0.wav")
TEST_LIST = ("yes/spk1_nohash_1.wav", "no/spk1_nohash_6.wav", "dog/spk1_nohash_1.wav")


def write_kws_tree(root: Path) -> dict[str, int]:
    """Two keywords, two unknown words, constant-valued clips so each file is recognizable;
    returns relative path -> its constant value."""
    values, v = {}, 100
    for word, n in (("yes", 10), ("no", 10), ("cat", 6), ("dog", 6)):
        for i in range(n):
            rel = f"{word}/spk{i % 5}_nohash_{i}.wav"
            length = 16000 if i % 3 else 12000  # some short clips, padded by the loader
            write_wav(root / rel, np.full(length, v, np.int16))
            values[rel] = v
            v += 1
    rng = np.random.default_rng(0)
    write_wav(root / "_background_noise_" / "white.wav", rng.integers(-3000, 3000, 40000).astype(np.int16))
    write_wav(root / "_background_noise_" / "short.wav", np.zeros(8000, np.int16))  # < 1 s: ignored
    (root / "_background_noise_" / "README.md").write_text("noise\n")
    (root / "validation_list.txt").write_text("".join(f + "\n" for f in VAL_LIST))
    (root / "testing_list.txt").write_text("".join(f + "\n" for f in TEST_LIST))
    return values


def files_in(d, split: str, values: dict[str, int]) -> dict[str, int]:
    """relative path -> label of the non-silence clips of a split (recognized by their value)."""
    by_value = {v: rel for rel, v in values.items()}
    s = d.splits[split]
    return {by_value[int(row[0])]: int(y) for row, y in zip(s.x, s.y) if y != 0}


@pytest.mark.parametrize("stride_ms, frames", [(20, 49), (40, 25)])
def test_speech_commands_tree(tmp_path, stride_ms, frames):
    values = write_kws_tree(tmp_path)
    d = load("speech-commands", str(tmp_path), kws_stride_ms=stride_ms)
    assert d.classes == KWS_CLASSES and d.num_classes == 12 and d.classes[:2] == ["_silence_", "_unknown_"]
    assert d.input_shape == (1, frames, 10)
    # train: 16 keyword clips + ceil(1.6)=2 unknown + 2 silence; val/test: 2 + 1 + 1 each.
    assert (d.size("train"), d.size("val"), d.size("test")) == (20, 4, 4)
    for split, listed in (("val", VAL_LIST), ("test", TEST_LIST)):
        s = d.splits[split]
        assert s.x.dtype == torch.int16 and s.x.shape[1] == 16000
        assert set(files_in(d, split, values)) == set(listed)
        assert s.y.tolist().count(0) == 1  # one silence clip, made of background noise
    train = files_in(d, "train", values)
    assert train.keys().isdisjoint(VAL_LIST + TEST_LIST)
    for rel, label in train.items():
        word = rel.split("/")[0]
        assert label == (KWS_CLASSES.index(word) if word in ("yes", "no") else 1)
    short = d.splits["train"].x[d.splits["train"].x[:, 0] == values["yes/spk3_nohash_3.wav"]][0]
    assert (short[:12000] == values["yes/spk3_nohash_3.wav"]).all() and (short[12000:] == 0).all()
    for augment in (False, True):
        x, y = next(d.batches("train", 8, shuffle=True, augment=augment))
        assert x.shape == (8, 1, frames, 10) and x.dtype == torch.float32 and torch.isfinite(x).all()


def test_speech_commands_is_seeded(tmp_path):
    write_kws_tree(tmp_path)
    a = load_speech_commands(str(tmp_path), stride_ms=20, seed=0)
    b = load_speech_commands(str(tmp_path), stride_ms=20, seed=0)
    assert all(torch.equal(a.splits[s].x, b.splits[s].x) for s in ("train", "val", "test"))
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    x1, _ = next(a.batches("train", 20, shuffle=True, augment=True, generator=g1))
    x2, _ = next(b.batches("train", 20, shuffle=True, augment=True, generator=g2))
    assert torch.equal(x1, x2)


@pytest.mark.parametrize("damage, expect", [
    ("truncate", "truncated"),
    ("not_riff", "not a readable WAV"),
    ("rate", "44100 Hz"),
    ("stereo", "2 channel"),
    ("8bit", "8-bit"),
    ("empty", "holds no samples"),
])
def test_speech_commands_bad_wav_names_file(tmp_path, damage, expect):
    write_kws_tree(tmp_path)
    bad = tmp_path / "no" / "spk2_nohash_2.wav"
    if damage == "truncate":
        bad.write_bytes(bad.read_bytes()[:1000])
    elif damage == "not_riff":
        bad.write_bytes(b"ID3" + bytes(500))
    elif damage == "rate":
        write_wav(bad, np.zeros(44100, np.int16), rate=44100)
    elif damage == "stereo":
        write_wav(bad, np.zeros(32000, np.int16), channels=2)
    elif damage == "empty":
        write_wav(bad, np.zeros(0, np.int16))
    else:
        write_wav(bad, np.zeros(16000, np.uint8), width=1)
    before = snapshot(tmp_path)
    with pytest.raises(RedsError) as e:
        load("speech-commands", str(tmp_path))
    msg = one_line(e)
    assert str(bad) in msg and expect in msg and "speech_commands_v0.02.tar.gz" in msg
    assert snapshot(tmp_path) == before


def test_speech_commands_missing_pieces(tmp_path):
    missing = tmp_path / "kws"
    with pytest.raises(RedsError) as e:
        load("synth-kws", str(missing))
    hint = f"for synth-kws run `reds data synth-kws --out {missing}`"
    assert one_line(e) == f"dataset folder {missing} not found; {hint}"
    with pytest.raises(RedsError) as e:
        load("speech-commands", str(missing))
    assert "speech_commands_v0.02.tar.gz" in one_line(e)
    for name in ("synth-kws", "speech-commands"):
        with pytest.raises(RedsError, match="--data-dir"):
            load(name, None)
    write_kws_tree(tmp_path)
    (tmp_path / "testing_list.txt").unlink()
    with pytest.raises(RedsError) as e:
        load("speech-commands", str(tmp_path))
    assert str(tmp_path / "testing_list.txt") in one_line(e)


def test_bad_synth_kws_file_hint_is_a_command_that_works(tmp_path):
    """A bad file in an existing synth-kws folder: the hint says to remove the folder first
    (`reds data` refuses a folder that is not empty)."""
    write_kws_tree(tmp_path)
    (tmp_path / "no" / "spk2_nohash_2.wav").write_bytes(b"junk")
    with pytest.raises(RedsError) as e:
        load("synth-kws", str(tmp_path))
    assert f"remove {tmp_path}, then run `reds data synth-kws --out {tmp_path}`" in one_line(e)


def test_read_wav_roundtrip(tmp_path):
    samples = np.array([0, 1, -1, 32767, -32768], np.int16)
    write_wav(tmp_path / "a.wav", samples)
    assert np.array_equal(read_wav(tmp_path / "a.wav", "fix"), samples)


# ---------------------------------------------------------------- synth-kws

needs_tools = pytest.mark.skipif(
    shutil.which("espeak-ng") is None or shutil.which("sox") is None,
    reason="synth-kws needs the espeak-ng and sox packages (apt-get install espeak-ng sox)")


@needs_tools
def test_synth_kws_generate_and_load(tmp_path):
    from reds.data.synth_kws import UNKNOWN_WORDS, generate

    out = tmp_path / "kws"
    summary = generate(out, per_word=3, seed=0, progress=False)
    assert summary["created"] and summary["utterances"] == 10 * 3 + len(UNKNOWN_WORDS) * 1
    assert sorted(os.listdir(tmp_path)) == ["kws"]  # no temporary folder left beside it
    wavs = sorted(out.glob("*/*.wav"))
    assert len(wavs) == summary["utterances"] + 6
    for p in wavs:
        with wave.open(str(p)) as w:
            assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (16000, 1, 2)
            if p.parent.name != "_background_noise_":
                assert w.getnframes() == 16000
                assert np.abs(np.frombuffer(w.readframes(16000), "<i2")).max() > 500  # not silent
    # Speakers never straddle splits.
    listed = {"val": (out / "validation_list.txt").read_text().split(),
              "test": (out / "testing_list.txt").read_text().split()}
    spk = {s: {Path(r).name.split("_")[0] for r in rels} for s, rels in listed.items()}
    assert listed["val"] and listed["test"] and not spk["val"] & spk["test"]
    d = load("synth-kws", str(out), kws_stride_ms=40)
    assert d.name == "synth-kws" and d.classes == KWS_CLASSES and d.input_shape == (1, 25, 10)
    assert sum(d.size(s) for s in ("train", "val", "test")) >= 30
    x, _ = next(d.batches("train", 4, augment=True))
    assert x.shape == (4, 1, 25, 10)

    again = generate(out, per_word=3, seed=0, progress=False)
    assert not again["created"] and "already holds" in again["message"]
    with pytest.raises(RedsError, match="already holds a complete synth-kws data set"):
        generate(out, per_word=4, seed=0, progress=False)


@needs_tools
def test_synth_kws_same_seed_same_plan_and_cli_fallback(tmp_path):
    from reds.data import synth_kws

    voices = synth_kws.speakers()
    assert len(voices) >= 8
    assert synth_kws.plan(5, 7, voices) == synth_kws.plan(5, 7, voices)
    assert synth_kws.plan(5, 7, voices) != synth_kws.plan(5, 8, voices)
    job = synth_kws.plan(1, 0, voices)[0][0]
    speech, rate = synth_kws.speak_cli(job)
    assert rate == 22050 and speech.size > 2000
    clip = synth_kws.resample(speech, rate)
    assert abs(len(clip) - len(speech) * 16000 / 22050) <= 1


@needs_tools
def test_synth_kws_refuses_busy_folder_and_cleans_up(tmp_path, monkeypatch):
    from reds.data import synth_kws

    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    with pytest.raises(RedsError, match="not an empty folder"):
        synth_kws.generate(busy, per_word=1, progress=False)
    assert (busy / "notes.txt").read_text() == "mine"

    calls = []

    def flaky(job, root):
        calls.append(job)
        if len(calls) == 5:
            raise KeyboardInterrupt
        return real(job, root)

    real = synth_kws.synthesize
    monkeypatch.setattr(synth_kws, "synthesize", flaky)
    with pytest.raises(KeyboardInterrupt):
        synth_kws.generate(tmp_path / "kws", per_word=1, jobs=1, progress=False)
    assert sorted(os.listdir(tmp_path)) == ["busy"]  # nothing half-written


def test_synth_kws_without_tools(tmp_path, monkeypatch):
    from reds.data import synth_kws

    monkeypatch.setattr(synth_kws.shutil, "which", lambda tool: None)
    with pytest.raises(RedsError) as e:
        synth_kws.generate(tmp_path / "kws", per_word=1)
    assert one_line(e) == "espeak-ng not found; install it: apt-get install espeak-ng sox"


def test_one_espeak_engine_per_process():
    """libespeak-ng keeps one synth callback per process: a second engine would leave the
    first one's callback dangling (its next word crashed the process), so it is refused."""
    from reds.data import synth_kws as sk

    eng = sk.engine()
    if eng is None:
        pytest.skip("libespeak-ng not loadable here (synth-kws uses the espeak-ng program)")
    with pytest.raises(RuntimeError, match="already loaded"):
        sk.LibEspeak()
    assert sk.engine() is eng
    assert eng.speak({"word": "yes", "voice": "en", "pitch": 40, "speed": 150, "amplitude": 80})[0].size > 0
