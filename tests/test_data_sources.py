"""Bring-your-own data: a folder of class folders (WAVs or images), an .npz of arrays, and
custom keywords (`--words`) for the Speech Commands layout. Each loads with the right
classes, shapes and disjoint splits, trains a tiny family end to end, and every bad input
stops with one line naming the file."""
from __future__ import annotations

import json
import wave
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from reds import family as fam_io
from reds.cli import main
from reds.data import load
from reds.errors import RedsError
from reds.ir.archs import build_spec, dataset_shape
from reds.train import TrainConfig, Trainer, evaluate

from conftest import needs_kws_tools

WORDS5 = ["alpha", "bravo", "charlie", "delta", "echo"]


def one_line(e: pytest.ExceptionInfo) -> str:
    msg = str(e.value)
    assert "\n" not in msg, msg
    return msg


def write_wav(path: Path, samples: np.ndarray, channels: int = 1):
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(samples.astype("<i2").tobytes())


def tone(k: int, i: int, n: int = 16000) -> np.ndarray:
    """Class k: a chirp around its own pitch; file i: its own offset, loudness, length."""
    rng = np.random.default_rng([k, i])
    n = n - 2000 * (i % 3)  # some short clips: padded to 1 s by the loader
    t = np.arange(n) / 16000
    f0 = 300.0 * (k + 1)
    wave_ = np.sin(2 * np.pi * (f0 + 200 * t) * t) * (0.3 + 0.1 * (i % 4))
    return (wave_ * 32767 * 0.8 + rng.normal(0, 300, n)).clip(-32768, 32767).astype(np.int16)


def wav_folder(root: Path, classes=WORDS5, per_class: int = 10) -> Path:
    for k, c in enumerate(classes):
        for i in range(per_class):
            write_wav(root / c / f"{c}_{i}.wav", tone(k, i))
    (root / ".hidden").mkdir(parents=True)
    write_wav(root / ".hidden" / "x.wav", tone(0, 0))
    (root / "_notes").mkdir()
    (root / "_notes" / "readme.txt").write_text("not a class\n")
    return root


def png_folder(root: Path, per_class: int = 8, color: bool = False) -> Path:
    """3 classes of 12x10 images (a bar at a class position), one class also at 16x16."""
    rng = np.random.default_rng(0)
    for k, c in enumerate(["circle", "line", "square"]):
        (root / c).mkdir(parents=True)
        for i in range(per_class):
            h, w = (16, 16) if (k == 2 and i % 2) else (12, 10)
            a = rng.integers(0, 40, (h, w), dtype=np.uint8)
            a[:, (k * w) // 3:(k * w) // 3 + 2] = 230
            img = Image.fromarray(a, "L")
            if color:
                img = img.convert("RGB")
            img.save(root / c / f"{i:02d}.png")
    return root


def paths_of(ds, split: str) -> set:
    """Rows of a split as bytes: to show the splits share no sample."""
    return {bytes(row.numpy().tobytes()) for row in ds.splits[split].x}


def tiny(dataset: str, data_dir, out: Path, **kw) -> fam_io.Family:
    cfg = TrainConfig(arch=kw.pop("arch", "dnn-s"), dataset=dataset, data_dir=str(data_dir), epochs=1,
                      finetune_epochs=1, batch_size=16, importance_batches=2, width_mult=0.25, seed=1,
                      budgets=[0.5, 1.0], time_limit=5.0, **kw)
    return Trainer(cfg, out, progress=False, log=lambda m: None).run()


# ---------------------------------------------------------------- folder of WAVs

def test_wav_folder_loads_with_its_classes_and_disjoint_splits(tmp_path):
    wav_folder(tmp_path)
    d = load("folder", str(tmp_path), kws_stride_ms=40)
    assert d.classes == sorted(WORDS5) and d.input_shape == (1, 25, 10)
    assert d.info["kind"] == "audio" and d.info["data_dir"] == str(tmp_path)
    assert d.info["normalize"]["axis"] == "coefficient" and len(d.info["mfcc_mean"]) == 10
    # 10 per class: 1 test, 1 validation, 8 training each
    assert (d.size("train"), d.size("val"), d.size("test")) == (40, 5, 5)
    assert d.info["counts"]["test"] == [1] * 5 and d.info["counts"]["val"] == [1] * 5
    tr, va, te = (paths_of(d, s) for s in ("train", "val", "test"))
    assert not (tr & va or tr & te or va & te)
    assert d.splits["train"].x.dtype == torch.int16 and d.splits["train"].x.shape[1] == 16000
    for augment in (False, True):
        x, y = next(d.batches("train", 8, shuffle=True, augment=augment))
        assert x.shape == (8, 1, 25, 10) and torch.isfinite(x).all()
    # normalised on the training split: about zero mean, unit spread per coefficient
    x = torch.cat([b for b, _ in d.batches("train", 100)])
    assert x.mean((0, 1, 2)).abs().max() < 0.05 and (x.std((0, 1, 2)) - 1).abs().max() < 0.05
    # seeded: the same split again, another with another seed
    again = load("folder", str(tmp_path), kws_stride_ms=40)
    assert torch.equal(again.splits["test"].x, d.splits["test"].x)
    other = load("folder", str(tmp_path), kws_stride_ms=40, seed=5)
    assert not torch.equal(other.splits["test"].x, d.splits["test"].x)


def test_wav_folder_with_train_and_test_folders(tmp_path):
    for split, n in (("train", 6), ("test", 2)):
        for k, c in enumerate(["down", "up"]):
            for i in range(n):
                write_wav(tmp_path / split / c / f"{i}.wav", tone(k, i + 10 * (split == "test")))
    d = load("folder", str(tmp_path))
    assert d.classes == ["down", "up"] and d.input_shape == (1, 49, 10)
    assert (d.size("train"), d.size("val"), d.size("test")) == (10, 2, 4)
    assert not paths_of(d, "train") & paths_of(d, "val")


def test_wav_folder_trains_end_to_end_and_evaluates(tmp_path):
    wav_folder(tmp_path / "data")
    fam = tiny("folder", tmp_path / "data", tmp_path / "fam")
    assert fam.classes == sorted(WORDS5) and fam.num_classes == 5 and list(fam.input_shape) == [1, 25, 10]
    assert fam.training["data_dir"] == str((tmp_path / "data").resolve())
    again = evaluate(fam_io.open(tmp_path / "fam"), progress=False)  # reloads what the family recorded
    assert [s.accuracy for s in again.submodels] == [s.accuracy for s in fam.submodels]


# ---------------------------------------------------------------- folder of images

def test_png_folder_resizes_to_the_first_image_and_normalises(tmp_path):
    png_folder(tmp_path)
    d = load("folder", str(tmp_path))
    assert d.classes == ["circle", "line", "square"] and d.input_shape == (1, 12, 10)
    assert d.info["kind"] == "image" and d.info["image_size"] == [12, 10] and d.info["resized_files"] == 4
    assert d.splits["train"].x.dtype == torch.uint8
    assert (d.size("train"), d.size("val"), d.size("test")) == (18, 3, 3)
    tr, va, te = (paths_of(d, s) for s in ("train", "val", "test"))
    assert not (tr & va or tr & te or va & te)
    norm = d.info["normalize"]
    assert norm["axis"] == "channel" and len(norm["mean"]) == 1
    x = torch.cat([b for b, _ in d.batches("train", 100)])
    assert abs(float(x.mean())) < 1e-4 and abs(float(x.std()) - 1) < 0.05
    x, _ = next(d.batches("train", 6, shuffle=True, augment=True))
    assert x.shape == (6, 1, 12, 10)

    sized = load("folder", str(tmp_path), image_size="8x9")
    assert sized.input_shape == (1, 8, 9) and sized.info["resized_files"] == 24
    rgb = png_folder(tmp_path / "rgb", color=True)
    Image.new("L", (10, 12), 7).save(rgb / "line" / "gray.png")  # one grayscale among RGB: all RGB
    assert load("folder", str(rgb)).input_shape == (3, 12, 10)


def test_png_folder_trains_end_to_end(tmp_path):
    png_folder(tmp_path / "data")
    fam = tiny("folder", tmp_path / "data", tmp_path / "fam")
    assert fam.classes == ["circle", "line", "square"] and list(fam.input_shape) == [1, 12, 10]
    assert fam.training["image_size"] == [12, 10]  # recorded though it came from the first image
    again = evaluate(fam_io.open(tmp_path / "fam"), progress=False)
    assert [s.accuracy for s in again.submodels] == [s.accuracy for s in fam.submodels]
    # another folder whose first image is 16x16 is resized to the family's size
    other = tmp_path / "other"
    for k, c in enumerate(["circle", "line", "square"]):
        (other / c).mkdir(parents=True)
        for i in range(3):
            Image.new("L", (16, 16), 40 * k + i).save(other / c / f"{i}.png")
    assert len(evaluate(fam_io.open(tmp_path / "fam"), data_dir=str(other), progress=False).submodels) == 2


# ---------------------------------------------------------------- npz

def write_npz(path: Path, **over):
    rng = np.random.default_rng(0)
    arrays = {"x_train": rng.integers(0, 256, (60, 8, 8, 3), dtype=np.uint8),
              "y_train": rng.integers(0, 4, 60), "x_test": rng.integers(0, 256, (20, 8, 8, 3), dtype=np.uint8),
              "y_test": rng.integers(0, 4, 20), "classes": np.array(["a", "b", "c", "d"])}
    arrays.update(over)
    np.savez(path, **{k: v for k, v in arrays.items() if v is not None})
    return path


def test_npz_loads_channels_last_and_normalises(tmp_path):
    f = write_npz(tmp_path / "d.npz")
    d = load("npz", str(f), seed=2)
    assert d.classes == ["a", "b", "c", "d"] and d.input_shape == (3, 8, 8) and d.info["layout"] == "NHWC"
    assert (d.size("train"), d.size("val"), d.size("test")) == (54, 6, 20)
    assert not paths_of(d, "train") & paths_of(d, "val")
    x = d.splits["train"].x
    assert x.mean((0, 2, 3)).abs().max() < 1e-4 and (x.std((0, 2, 3)) - 1).abs().max() < 0.05
    assert d.info["normalize"]["axis"] == "channel" and len(d.info["normalize"]["mean"]) == 3
    # (N, H, W) float without names, with its own validation split
    rng = np.random.default_rng(1)
    g = write_npz(tmp_path / "g.npz", x_train=rng.random((30, 5, 6)), y_train=np.arange(30) % 3,
                  x_test=rng.random((9, 5, 6)), y_test=np.arange(9) % 3, classes=None,
                  x_val=rng.random((6, 5, 6)), y_val=np.arange(6) % 3)
    d = load("npz", str(g))
    assert d.classes == ["0", "1", "2"] and d.input_shape == (1, 5, 6) and d.size("val") == 6
    # (N, C, H, W) stays so; (N, 3, 8, 3) is read channels-first
    h = write_npz(tmp_path / "h.npz", x_train=np.zeros((60, 3, 8, 3)), x_test=np.zeros((20, 3, 8, 3)))
    assert load("npz", str(h)).input_shape == (3, 8, 3)


def test_npz_trains_end_to_end(tmp_path):
    f = write_npz(tmp_path / "d.npz")
    fam = tiny("npz", f, tmp_path / "fam")
    assert fam.classes == ["a", "b", "c", "d"] and list(fam.input_shape) == [3, 8, 8]
    again = evaluate(fam_io.open(tmp_path / "fam"), progress=False)
    assert [s.accuracy for s in again.submodels] == [s.accuracy for s in fam.submodels]


# ---------------------------------------------------------------- bad inputs: one line naming the file

def test_corrupt_png_names_the_file(tmp_path):
    png_folder(tmp_path)
    bad = tmp_path / "line" / "03.png"
    bad.write_bytes(bad.read_bytes()[:60])  # truncated: the header reads, the pixels do not
    with pytest.raises(RedsError) as e:
        load("folder", str(tmp_path))
    assert str(bad) in one_line(e) and "not a readable image" in one_line(e)
    bad.write_bytes(b"not a png at all")
    with pytest.raises(RedsError) as e:
        load("folder", str(tmp_path))
    assert str(bad) in one_line(e)


def test_stereo_wav_names_the_file(tmp_path):
    wav_folder(tmp_path, per_class=3)
    bad = tmp_path / "bravo" / "bravo_1.wav"
    write_wav(bad, np.zeros(32000, np.int16), channels=2)
    with pytest.raises(RedsError) as e:
        load("folder", str(tmp_path))
    assert str(bad) in one_line(e) and "2 channel" in one_line(e)


def test_mixed_empty_and_single_class_folders(tmp_path):
    wav_folder(tmp_path, per_class=3)
    img = tmp_path / "echo" / "photo.png"
    Image.new("L", (4, 4)).save(img)
    with pytest.raises(RedsError) as e:
        load("folder", str(tmp_path))
    assert str(img) in one_line(e) and "WAV" in one_line(e)
    img.unlink()
    (tmp_path / "foxtrot").mkdir()
    with pytest.raises(RedsError) as e:
        load("folder", str(tmp_path))
    assert str(tmp_path / "foxtrot") in one_line(e) and "no WAV, PNG or JPEG" in one_line(e)
    one = tmp_path / "one"
    (one / "only").mkdir(parents=True)
    write_wav(one / "only" / "a.wav", tone(0, 0))
    with pytest.raises(RedsError) as e:
        load("folder", str(one))
    assert str(one) in one_line(e) and "at least 2" in one_line(e)
    with pytest.raises(RedsError) as e:
        load("folder", str(tmp_path / "nowhere"))
    assert str(tmp_path / "nowhere") in one_line(e)


@pytest.mark.parametrize("case, expect", [
    ("no_y_test", "array y_test missing"),
    ("label_range", "array y_test holds label 7, out of range 0..3"),
    ("negative", "array y_train holds label -1"),
    ("bad_shape", "array x_train has shape (60, 64)"),
    ("mismatch", "array x_test holds samples of shape"),
    ("count", "array y_train holds 59 labels"),
    ("float_labels", "array y_train has dtype float64"),
    ("only_x_val", "array y_val missing"),
    ("not_npz", "not a readable .npz file"),
    ("npy", "single .npy array"),
    ("objects", "array classes cannot be read without pickle"),
])
def test_bad_npz_names_file_and_array(tmp_path, case, expect):
    f = tmp_path / "d.npz"
    rng = np.random.default_rng(0)
    if case == "not_npz":
        f.write_bytes(b"PK\x03\x04 but nothing more")
    elif case == "npy":
        np.save(tmp_path / "d.npy", np.zeros(3))
        (tmp_path / "d.npy").rename(f)
    elif case == "objects":
        np.savez(f, x_train=np.zeros((4, 2, 2)), y_train=np.arange(4) % 2, x_test=np.zeros((2, 2, 2)),
                 y_test=np.arange(2), classes=np.array(["a", None], dtype=object))
    else:
        over = {"no_y_test": dict(y_test=None),
                "label_range": dict(y_test=np.full(20, 7)),
                "negative": dict(y_train=np.full(60, -1)),
                "bad_shape": dict(x_train=np.zeros((60, 64))),
                "mismatch": dict(x_test=np.zeros((20, 9, 9, 3))),
                "count": dict(y_train=rng.integers(0, 4, 59)),
                "float_labels": dict(y_train=np.zeros(60)),
                "only_x_val": dict(x_val=np.zeros((5, 8, 8, 3)))}[case]
        write_npz(f, **over)
    with pytest.raises(RedsError) as e:
        load("npz", str(f))
    msg = one_line(e)
    assert msg.startswith(f"{f}:") and expect in msg, msg


# ---------------------------------------------------------------- --words on the Speech Commands layout

def kws_tree(root: Path, words=WORDS5 + ["other1", "other2"], per_word: int = 6) -> Path:
    val, test = [], []
    for k, w in enumerate(words):
        for i in range(per_word):
            rel = f"{w}/spk{i}_nohash_0.wav"
            write_wav(root / rel, tone(k, i))
            (val if i == 0 else test if i == 1 else []).append(rel)
    write_wav(root / "_background_noise_" / "noise.wav",
              np.random.default_rng(0).integers(-2000, 2000, 48000).astype(np.int16))
    (root / "validation_list.txt").write_text("".join(r + "\n" for r in val))
    (root / "testing_list.txt").write_text("".join(r + "\n" for r in test))
    return root


def test_words_choose_the_keywords(tmp_path):
    kws_tree(tmp_path)
    d = load("speech-commands", str(tmp_path), words=",".join(WORDS5))
    assert d.classes == ["_silence_", "_unknown_", *WORDS5] and d.info["words"] == WORDS5
    assert d.info["normalize"]["axis"] == "coefficient"
    # train: 5 words x 4 files + ceil(2.0)=2 unknown + 2 silence; val/test: 5 + 1 + 1
    assert (d.size("train"), d.size("val"), d.size("test")) == (24, 7, 7)
    assert set(d.splits["train"].y.tolist()) == set(range(7))
    d = load("synth-kws", str(tmp_path), words=["bravo", "other1"])
    assert d.classes == ["_silence_", "_unknown_", "bravo", "other1"]
    with pytest.raises(RedsError) as e:
        load("speech-commands", str(tmp_path), words="alpha,zulu")
    assert "'zulu' has no folder" in one_line(e) and str(tmp_path) in one_line(e)
    for bad in ("", "alpha,alpha", "_silence_"):
        with pytest.raises(RedsError):
            load("speech-commands", str(tmp_path), words=bad)
    with pytest.raises(RedsError, match="--words applies to"):
        load("folder", str(tmp_path), words="alpha")


def test_synth_kws_manifest_words_are_the_default(tmp_path):
    kws_tree(tmp_path)
    (tmp_path / "synth_kws.json").write_text(json.dumps({"words": ["charlie", "delta"]}))
    assert load("synth-kws", str(tmp_path)).classes == ["_silence_", "_unknown_", "charlie", "delta"]
    assert load("synth-kws", str(tmp_path), words="echo").classes == ["_silence_", "_unknown_", "echo"]


def test_words_train_and_evaluate_through_the_cli(tmp_path, capsys):
    kws_tree(tmp_path / "kws")
    out = tmp_path / "fam"
    rc = main(["train", "--arch", "dnn-s", "--dataset", "speech-commands", "--data-dir", str(tmp_path / "kws"),
               "--words", ",".join(WORDS5[:3]), "--epochs", "1", "--finetune-epochs", "1", "--width", "0.25",
               "--budgets", "0.5,1", "--importance-batches", "2", "--batch-size", "16", "--time-limit", "5",
               "--quiet", "--out", str(out)])
    assert rc == 0, capsys.readouterr().err
    fam = fam_io.read_manifest(out)
    assert fam.classes == ["_silence_", "_unknown_", *WORDS5[:3]] and fam.training["words"] == WORDS5[:3]
    assert main(["eval", str(out)]) == 0  # reloads with the recorded words


# ---------------------------------------------------------------- the command line and shapes

def test_cli_trains_a_folder_and_arch_reads_its_shape(tmp_path, capsys):
    png_folder(tmp_path / "data")
    out = tmp_path / "fam"
    rc = main(["train", "--arch", "dnn-s", "--dataset", "folder", "--data-dir", str(tmp_path / "data"),
               "--image-size", "8x8", "--epochs", "1", "--finetune-epochs", "1", "--width", "0.25",
               "--budgets", "0.5,1", "--importance-batches", "2", "--batch-size", "16", "--time-limit", "5",
               "--quiet", "--out", str(out)])
    assert rc == 0, capsys.readouterr().err
    assert fam_io.read_manifest(out).input_shape == [1, 8, 8]
    capsys.readouterr()
    assert main(["arch", "dnn-s", "--dataset", "folder", "--data-dir", str(tmp_path / "data"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["input_shape"] == [1, 12, 10]
    assert main(["arch", "dnn-s", "--dataset", "folder"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--data-dir" in err
    with pytest.raises(RedsError, match="--data-dir"):
        dataset_shape("dnn-s", "npz")
    assert main(["train", "--arch", "dnn-s", "--dataset", "fmnist", "--image-size", "8x8", "--out",
                 str(tmp_path / "x")]) == 2
    assert "--image-size applies to the folder" in capsys.readouterr().err


def test_words_set_the_class_count_of_arch():
    assert dataset_shape("dscnn-s", "synth-kws", words=["a", "b", "c"]) == ((1, 49, 10), 5)
    assert build_spec("dnn-s", dataset="speech-commands", words="a,b").num_classes == 4


@needs_kws_tools
def test_synth_kws_generates_chosen_words(tmp_path):
    from reds.data.synth_kws import UNKNOWN_WORDS, generate

    out = tmp_path / "kws"
    summary = generate(out, per_word=2, seed=0, jobs=1, progress=False, words="zebra,cat")
    unknown = [w for w in UNKNOWN_WORDS if w != "cat"]
    assert summary["utterances"] == 2 * 2 + len(unknown)
    manifest = json.loads((out / "synth_kws.json").read_text())
    assert manifest["words"] == ["zebra", "cat"] and manifest["unknown_words"] == unknown
    assert sorted(p.name for p in out.iterdir() if p.is_dir() and not p.name.startswith("_")) == \
        sorted(["zebra", "cat", *unknown])
    assert load("synth-kws", str(out)).classes == ["_silence_", "_unknown_", "zebra", "cat"]
    with pytest.raises(RedsError, match="words=zebra,cat"):
        generate(out, per_word=2, seed=0, jobs=1, progress=False)
