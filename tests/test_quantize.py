"""reds.quant: post-training int8 quantization of a nested family, and its integer reference.

Tolerance: on inputs it was not calibrated on, every submodel's dequantized int8 logits
agree with the float family's (PyTorch) in argmax on >= 90 % of 64 inputs, and differ by
at most 5 % of the float logits' range (max - min over the batch) anywhere."""
from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
import torch

from families import make_family, random_inputs
from reds import quant
from reds.errors import RedsError
from reds.family import open as open_family
from reds.quant import ops

ARCHS = ("dscnn-s", "cnn-s", "dnn-s", "dscnn-s-img")  # dscnn-s-img: leaky ReLU
TOLERANCE = 0.05  # of the float logits' range



@pytest.fixture(scope="module", params=ARCHS)
def quantized(request, tmp_path_factory):
    tmp = tmp_path_factory.mktemp(f"q-{request.param}")
    src = make_family(tmp, request.param, 0.25)
    fam = open_family(src)
    qf = quant.quantize(src, tmp / "int8", random_inputs(fam.spec.input_shape, 256, 1))
    return src, tmp / "int8", fam, qf


def _agree(fam, qf, x):
    for k in range(len(fam.submodels)):
        with torch.no_grad():
            ref = fam.logits(torch.from_numpy(x), k).numpy()
        q = qf.run(x, k)
        assert q.shape == ref.shape and q.min() >= -128 and q.max() <= 127
        got = qf.logits(x, k)
        assert got.dtype == np.float32
        agree = float((ref.argmax(1) == got.argmax(1)).mean())
        assert agree >= 0.9, f"submodel {k}: argmax agreement {agree:.2f}"
        err, span = float(np.abs(got - ref).max()), float(ref.max() - ref.min())
        assert err <= TOLERANCE * span, f"submodel {k}: max error {err:.4f}, logit range {span:.4f}"


def test_int8_logits_agree_with_float(quantized):
    _, _, fam, qf = quantized
    _agree(fam, qf, random_inputs(fam.spec.input_shape, 64, 2))  # not the calibration inputs


def test_raw_inputs_and_negative_batch_norm_scales(tmp_path):
    """A family with an input normalisation (the int8 input step quantizes raw features)
    and batch norms of negative scale (the sign goes into the multiplier)."""
    from reds.family import save
    from reds.ir.inputs import InputNorm

    rng = np.random.default_rng(7)
    norm = {"axis": "width", "mean": rng.normal(0, 5, 10).tolist(), "std": rng.uniform(0.5, 4, 10).tolist()}
    src = make_family(tmp_path, "dscnn-s", 0.25, input_norm=norm)
    fam = open_family(src)
    net = fam.net
    with torch.no_grad():
        for name, states in net.layers.items():
            if name.startswith("bn"):
                for st in states:
                    st.weight[::2] *= -1  # every other channel: a negative scale
    save(src, fam.manifest, net)
    fam = open_family(src)
    raw = InputNorm.from_json(norm).invert
    calib = raw(random_inputs(fam.spec.input_shape, 256, 1))
    qf = quant.quantize(src, tmp_path / "int8", calib)
    assert any((p.mult < 0).any() for s in qf.steps for p in s.params)
    assert qf.inputs[0].qa.shape == (10,)
    _agree(fam, qf, raw(random_inputs(fam.spec.input_shape, 64, 2)))


def test_reopened_family_runs_the_same(quantized):
    _, out, fam, qf = quantized
    again = quant.open(out)
    x = random_inputs(fam.spec.input_shape, 4, 3)
    for k in range(len(fam.submodels)):
        np.testing.assert_array_equal(again.run(x, k), qf.run(x, k))
    doc = json.loads((out / "int8.json").read_text())
    assert doc["dtype"] == "int8" and doc["submodels"] == len(fam.submodels)
    assert (out / "family.json").read_bytes() == (quantized[0] / "family.json").read_bytes()
    assert (out / "weights.safetensors").is_file()


def test_weights_are_one_shared_int8_array(quantized):
    _, out, fam, qf = quantized
    weighted = [s for s in qf.steps if s.kind in ("conv2d", "depthwise_conv2d", "dense")]
    assert weighted
    with np.load(out / "int8.npz") as data:
        assert sorted(n for n in data.files if n.endswith(".weight")) == sorted(f"{s.name}.weight" for s in weighted)
        for s in weighted:
            full = fam.net.layers[s.name].weight
            assert data[f"{s.name}.weight"].dtype == np.int8 and data[f"{s.name}.weight"].shape == tuple(full.shape)
            assert s.w_scale.shape == (full.shape[0],)
            # symmetric: the largest |w| of each full row is 127 (or the row is all zero)
            m = np.abs(s.weight.reshape(len(s.weight), -1).astype(int)).max(axis=1)
            assert set(m.tolist()) <= {0, 127}
    for s in weighted:  # per submodel: tables for its own channels, no weights of its own
        couts = [len(p.mult) for p in s.params]
        assert couts == sorted(couts) and all(len(p.bias) == c for p, c in zip(s.params, couts))
        assert all(not hasattr(p, "weight") for p in s.params)


def test_relu_clamp_and_per_submodel_calibration(quantized):
    _, _, fam, qf = quantized
    for s in qf.steps:
        for p in s.params:
            assert -128 <= p.zy <= 127 and p.sy > 0
            if s.act == "relu":
                assert p.lo == max(p.zy, -128)
    # each submodel has its own output scale (calibrated alone)
    assert len({o.s for o in qf.outputs}) == len(qf.outputs)


def test_a_float_family_is_refused_by_open(quantized):
    src = quantized[0]
    with pytest.raises(RedsError, match="float family"):
        quant.open(src)


def test_bad_calibration_inputs_leave_no_out_dir(quantized, tmp_path):
    src, _, fam, _ = quantized
    out = tmp_path / "out"
    for bad in (np.zeros((4, 3, 2, 1), np.float32), np.zeros((0, *fam.spec.input_shape), np.float32),
                np.full((2, *fam.spec.input_shape), np.nan, np.float32)):
        with pytest.raises(RedsError, match="calibration inputs"):
            quant.quantize(src, out, bad)
        assert not out.exists()
    assert list(tmp_path.iterdir()) == []


def test_a_failed_write_leaves_no_out_dir(quantized, tmp_path, monkeypatch):
    src, _, fam, _ = quantized

    def boom(*a, **k):
        raise OSError("disk full")
    monkeypatch.setattr(np, "savez", boom)
    out = tmp_path / "out"
    with pytest.raises(OSError, match="disk full"):
        quant.quantize(src, out, random_inputs(fam.spec.input_shape, 8, 4))
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_unsupported_architectures_are_refused(tmp_path):
    from families import RESIDUAL

    src = make_family(tmp_path, RESIDUAL, 0.25)
    fam = open_family(src)
    with pytest.raises(RedsError, match="int8 does not support"):
        quant.quantize(src, tmp_path / "out", random_inputs(fam.spec.input_shape, 4, 0))
    assert not (tmp_path / "out").exists()
    deep = make_family(tmp_path, "dscnn-s", 0.25, depth=True)
    with pytest.raises(RedsError, match="skip blocks"):
        quant.quantize(deep, tmp_path / "out", random_inputs(open_family(deep).spec.input_shape, 4, 0))
    assert not (tmp_path / "out").exists()


def test_the_weight_scale_is_symmetric_per_channel():
    from reds.quant.fold import quantize_weight

    w = np.array([[[0.5, -1.0]], [[0.0, 0.0]], [[0.25, 0.1]]])
    q, s = quantize_weight(w)
    assert q.dtype == np.int8 and q.shape == w.shape
    np.testing.assert_allclose(s, [1.0 / 127, 1.0, 0.25 / 127], rtol=1e-6)
    assert q[0, 0].tolist() == [64, -127] and q[1].tolist() == [[0, 0]] and q[2, 0, 0] == 127
    assert ops.INT8_MIN not in q


def test_out_dir_may_be_an_earlier_int8_family_but_not_a_foreign_folder(quantized, tmp_path):
    src, _, fam, _ = quantized
    out = tmp_path / "out"
    quant.quantize(src, out, random_inputs(fam.spec.input_shape, 8, 5))
    again = quant.quantize(src, out, random_inputs(fam.spec.input_shape, 16, 6))  # replaces the earlier output
    assert again.meta["calibration"]["samples"] == 16
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(RedsError, match="not empty"):
        quant.quantize(src, foreign, random_inputs(fam.spec.input_shape, 8, 5))
    assert [p.name for p in foreign.iterdir()] == ["notes.txt"]
    with pytest.raises(RedsError, match="is the family"):
        quant.quantize(src, src, random_inputs(fam.spec.input_shape, 8, 5))


# ---- the command line ----------------------------------------------------------------------
def test_reds_quantize_on_a_trained_family(tmp_path, capsys):
    """`reds quantize`: an int8 family from a trained one (calibrated on its training data),
    opened by reds.quant; a table of float and int8 test accuracy per submodel, int8 within a
    few points of float (tiny data, one epoch: the benchmark holds the 1-point target); a
    missing family is one line and writes nothing."""
    from reds.cli import main
    from reds.train import TrainConfig, Trainer

    rng = np.random.default_rng(0)

    def make(n):  # a bright quadrant per class
        y = np.arange(n) % 4
        x = rng.integers(0, 60, (n, 28, 28)).astype(np.uint8)
        for i, c in enumerate(y):
            r, q = divmod(int(c), 2)
            x[i, 14 * r:14 * r + 14, 14 * q:14 * q + 14] += 150
        return x, y

    (xtr, ytr), (xte, yte) = make(96), make(64)
    data = tmp_path / "quad.npz"
    np.savez(data, x_train=xtr, y_train=ytr, x_test=xte, y_test=yte)
    fam = tmp_path / "fam"
    cfg = TrainConfig(arch="dscnn-s-img", dataset="npz", data_dir=str(data), epochs=2, finetune_epochs=1,
                      batch_size=16, importance_batches=2, width_mult=0.25, budgets=[0.5, 1.0], val_per_epoch=16)
    Trainer(cfg, fam, progress=False, log=lambda m: None).run()
    capsys.readouterr()
    out = tmp_path / "q8"
    assert main(["quantize", str(fam), "--out", str(out), "--calib", "64"]) == 0
    text = capsys.readouterr().out
    rows = [l.split() for l in text.splitlines() if l.strip()[:1].isdigit()]
    assert [r[0] for r in rows] == ["0", "1"], text
    for r in rows:
        fa, qa = float(r[2]), float(r[3])
        assert fa > 25.0 and abs(qa - fa) <= 10.0, text  # better than chance; int8 tracks float
    import reds.quant as quant
    assert len(quant.open(out).inputs) == 2
    assert main(["quantize", str(tmp_path / "nothing"), "--out", str(tmp_path / "q2")]) == 2
    assert not (tmp_path / "q2").exists()
    capsys.readouterr()

    # the int8 family is a family: info shows its bytes and the recorded accuracy, eval re-measures it
    assert main(["info", str(out)]) == 0
    info = capsys.readouterr().out
    table = info[info.index("int8 family"):]
    for r in rows:
        assert f"{float(r[2]):.2f}" in table and f"{float(r[3]):.2f}" in table, info
    assert main(["info", str(out), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    subs = doc["int8"]["submodels"]
    assert [round(s["int8_acc"], 2) for s in subs] == [float(r[3]) for r in rows]
    assert all(0 < s["weight_bytes"] < f["weight_bytes"] for s, f in zip(subs, doc["submodels"]))
    assert main(["eval", str(out), "--limit", "32"]) == 0
    text = capsys.readouterr().out
    assert "32 test samples" in text and "int8: the reds integer reference" in text
    assert all(a["samples"] == 32 for a in json.loads((out / "int8.json").read_text())["accuracy"])
    # exports: C, ONNX and TFLite are int8; the TFLite export calibrates on the family's data,
    # and data it cannot read is one line, writing nothing
    assert main(["export", str(out), "--format", "onnx", "--out", str(tmp_path / "onnx")]) == 0
    m = json.loads((tmp_path / "onnx" / "manifest.json").read_text())
    assert m["dtype"] == "int8" and all(s["file"].endswith(".int8.onnx") for s in m["submodels"])
    assert all(s["check"]["argmax_agreement"] >= 0.9 for s in m["submodels"])
    capsys.readouterr()
    assert main(["export", str(out), "--format", "tflite", "--out", str(tmp_path / "tfl"),
                 "--data-dir", str(tmp_path / "missing.npz")]) == 2
    err = capsys.readouterr().err
    assert "int8 TFLite calibrates on the family's training data" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "tfl").exists()
    if importlib.util.find_spec("litert_torch") is not None:  # the tflite extra
        assert main(["export", str(out), "--format", "tflite", "--out", str(tmp_path / "tfl")]) == 0
        text = capsys.readouterr().out
        m = json.loads((tmp_path / "tfl" / "manifest.json").read_text())
        assert m["dtype"] == "int8" and [s["file"] for s in m["submodels"]] == [
            "submodel_0.int8.tflite", "submodel_1.int8.tflite"]
        assert "argmax agrees with the int8 reference" in text, text
        for s in m["submodels"]:  # its own calibration inputs: the file and reds agree
            assert all(s["check"][rt]["argmax_agreement"] >= 0.9 for rt in ("litert", "tflite-micro")), s

    # --qat: the float weights fine-tuned first (all submodels, int8 fake-quantized); the int8
    # family holds the tuned weights (a new sha256, float accuracies cleared), the source is untouched
    from reds.family import read_manifest

    before = (fam / "weights.safetensors").read_bytes()
    q2 = tmp_path / "q8-qat"
    assert main(["quantize", str(fam), "--out", str(q2), "--calib", "32", "--limit", "32", "--qat", "1",
                 "--qat-limit", "48"]) == 0
    text = capsys.readouterr().out
    assert "qat epoch 1/1: loss" in text, text
    assert (fam / "weights.safetensors").read_bytes() == before
    src_m, tuned = read_manifest(fam), read_manifest(q2)
    assert tuned.weights_sha256 != src_m.weights_sha256 and all(s.accuracy is None for s in tuned.submodels)
    assert quant.open(q2).meta["qat"] == {"epochs": 1, "samples_per_epoch": 48}
    name = open_family(fam).spec.layers[0].name
    assert not torch.equal(open_family(q2).net.layers[name].weight, open_family(fam).net.layers[name].weight)
    qrows = [l.split() for l in text.splitlines() if l.strip()[:1].isdigit()]
    assert [r[0] for r in qrows] == ["0", "1"] and all(float(r[3]) > 25.0 for r in qrows), text

