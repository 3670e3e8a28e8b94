"""The trainer end to end on small real data: a valid nested family within budget, resume
after a kill gives the same result, and a bad family is refused with one clear line."""
from __future__ import annotations

import json
import time

import pytest
import torch

from reds import family as fam_io
from reds.cli import main
from reds.errors import RedsError
from reds.train import TrainConfig, Trainer, submodel_weights


def small_config(data_dir, **kw) -> TrainConfig:
    base = dict(arch="dnn-s", dataset="synth-kws", data_dir=str(data_dir), epochs=1, finetune_epochs=1,
                batch_size=32, importance_batches=3, width_mult=0.25, seed=3)
    base.update(kw)
    return TrainConfig(**base)


def test_cli_train_writes_a_valid_nested_family_within_budget(synth_kws, tmp_path, capsys):
    out = tmp_path / "fam"
    t0 = time.time()
    rc = main(["train", "--arch", "dnn-s", "--dataset", "synth-kws", "--data-dir", str(synth_kws),
               "--limit-train", "2000", "--epochs", "1", "--finetune-epochs", "1", "--quiet", "--out", str(out)])
    assert rc == 0
    assert time.time() - t0 < 180
    fam, net = fam_io.load(out)  # validates schema, nesting, tensor shapes
    assert [s.budget for s in fam.submodels] == [0.25, 0.5, 0.75, 1.0]
    spec = fam.spec()
    full = spec.full_widths()
    assert fam.submodels[-1].widths == full
    full_macs = fam.submodels[-1].macs
    for a, b in zip(fam.submodels, fam.submodels[1:]):
        assert all(a.widths[g] <= b.widths[g] for g in full)
    for s in fam.submodels:
        assert s.macs <= s.budget * full_macs  # the budget is never exceeded
        assert s.macs >= 0.9 * s.budget * full_macs  # and not left mostly unused
        assert 0 <= s.accuracy <= 100
    lines = (out / "metrics.jsonl").read_text().splitlines()
    phases = [json.loads(l)["phase"] for l in lines]
    assert phases == ["pretrain", "search", "finetune"]
    assert not (out / "checkpoint.pt").exists()
    printed = capsys.readouterr().out
    assert "25%" in printed and "100%" in printed

    # `reds info` reads it back; `reds eval` rewrites the accuracies in place
    assert main(["info", str(out), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["format"] == "reds-family" and len(info["submodels"]) == 4
    assert main(["eval", str(out), "--data-dir", str(synth_kws)]) == 0
    fam2 = fam_io.read_manifest(out)
    assert [s.accuracy for s in fam2.submodels] == [s.accuracy for s in fam.submodels]


class Killed(Exception):
    pass


ROWS = [("pretrain", 1), ("pretrain", 2), ("search", None), ("finetune", 1), ("finetune", 2)]
# REDS's recipe adds batch-norm-only tuning (1 epoch of 2 / 25); the scratch baseline of the
# smallest submodel trains 2 + 2 epochs
LONG = ROWS + [("bn", 1)] + [("scratch", e) for e in (1, 2, 3, 4)]


# A kill right after metrics row N: row 2 lands in pretraining (after epoch 1's checkpoint),
# row 4 in fine-tuning, row 6 in batch-norm tuning, row 8 in the scratch baseline.
@pytest.mark.parametrize("kill_at,recipe", [(2, "default"), (4, "default"), (6, "reds"), (8, "reds")])
def test_killed_run_resumes_to_the_same_family(synth_kws, tmp_path, monkeypatch, kill_at, recipe):
    extra = dict(recipe="reds", baseline="scratch", baseline_budgets=[0.25], arch="cnn-s") if recipe == "reds" else {}
    cfg = small_config(synth_kws, epochs=2, finetune_epochs=2, knapsack="top-down", **extra)
    ref = Trainer(cfg, tmp_path / "ref", progress=False, log=lambda m: None).run()
    ref_weights = fam_io.load(tmp_path / "ref")[1].state_dict()

    out = tmp_path / "run"
    calls = {"n": 0}
    real = Trainer._metric

    def dying_metric(self, **row):
        real(self, **row)
        calls["n"] += 1
        if calls["n"] == kill_at:
            raise Killed()

    monkeypatch.setattr(Trainer, "_metric", dying_metric)
    with pytest.raises(Killed):
        Trainer(cfg, out, progress=False, log=lambda m: None).run()
    monkeypatch.setattr(Trainer, "_metric", real)
    # killed in the scratch baseline, the family is there already; else not yet
    assert (out / "checkpoint.pt").exists() and (out / "family.json").exists() == (kill_at == 8)

    with pytest.raises(RedsError, match="--resume"):
        Trainer(cfg, out, progress=False, log=lambda m: None).run()
    other = small_config(synth_kws, epochs=2, finetune_epochs=2, knapsack="top-down", seed=4, **extra)
    with pytest.raises(RedsError, match="other settings"):
        Trainer(other, out, progress=False, log=lambda m: None).run(resume=True)

    fam = Trainer(cfg, out, progress=False, log=lambda m: None).run(resume=True)
    rows = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines()]
    assert [(r["phase"], r.get("epoch")) for r in rows] == (LONG if recipe == "reds" else ROWS)
    assert [s.widths for s in fam.submodels] == [s.widths for s in ref.submodels]
    assert [s.accuracy for s in fam.submodels] == [s.accuracy for s in ref.submodels]
    assert [s.scratch_accuracy for s in fam.submodels] == [s.scratch_accuracy for s in ref.submodels]
    weights = fam_io.load(out)[1].state_dict()
    for k, v in ref_weights.items():
        torch.testing.assert_close(weights[k], v, rtol=0, atol=1e-6, msg=k)


def test_scratch_baseline_and_distillation(synth_kws, tmp_path):
    cfg = small_config(synth_kws, budgets=[0.5, 1.0], baseline="scratch", distill=True,
                       knapsack="joint", importance="l1")
    fam = Trainer(cfg, tmp_path / "f", progress=False, log=lambda m: None).run()
    assert all(s.scratch_accuracy is not None for s in fam.submodels)
    assert fam.knapsack["mode"] == "joint" and fam.training["distill"] is True


def test_loss_weights_follow_reds():
    from reds.ir.archs import build_spec
    from reds.ir.cost import cost

    spec = build_spec("dnn-s")
    ws = [{g: u // 4 for g, u in spec.full_widths().items()}, spec.full_widths()]
    a = submodel_weights(spec, ws)
    assert sum(a) == pytest.approx(1.0)
    ratio = (cost(spec, ws[0]).params / cost(spec, ws[1]).params) ** 0.5
    assert a[0] / a[1] == pytest.approx(ratio)


@pytest.fixture
def tiny_family(tmp_path):
    from reds.ir.archs import build_spec
    from reds.ir.cost import cost
    from reds.nn.nested import NestedNet

    spec = build_spec("dnn-s", width_mult=0.1)
    net = NestedNet(spec, num_bn=2)
    ws = [{g: 3 for g in spec.group_names}, spec.full_widths()]
    subs = [fam_io.Submodel(b, w, **cost(spec, w).as_dict()) for b, w in zip((0.5, 1.0), ws)]
    fam = fam_io.Family("dnn-s", "synth-kws", list(spec.input_shape), spec.num_classes,
                        [{"name": g.name, "units": g.units} for g in spec.groups], subs,
                        {"mode": "bottom-up"}, {}, width_mult=0.1)
    fam_io.save(tmp_path / "fam", fam, net)
    return tmp_path / "fam"


@pytest.mark.parametrize("damage, message", [
    (lambda d: d.write_text("{not json"), "not valid JSON"),
    (lambda d: d.write_text(json.dumps({"format": "something-else", "version": 1})), "not a reds family"),
    (lambda d: d.write_text(json.dumps({**json.loads(d.read_text()), "version": 99})), "upgrade reds"),
    (lambda d: d.write_text(json.dumps({k: v for k, v in json.loads(d.read_text()).items() if k != "arch"})),
     "lacks arch"),
    (lambda d: d.write_text(json.dumps({**json.loads(d.read_text()),
                                        "submodels": json.loads(d.read_text())["submodels"][::-1]})),
     "budgets must increase"),
    (lambda d: d.unlink(), "missing"),
])
def test_bad_family_json_is_refused_in_one_line(tiny_family, capsys, damage, message):
    fam_io.load(tiny_family)  # intact: loads
    damage(tiny_family / "family.json")
    with pytest.raises(RedsError, match=message) as e:
        fam_io.load(tiny_family)
    assert "\n" not in str(e.value)
    assert main(["info", str(tiny_family)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("reds: error:") and "family.json" in err[0]


def test_truncated_weights_are_refused(tiny_family):
    w = tiny_family / "weights.safetensors"
    w.write_bytes(w.read_bytes()[:100])
    with pytest.raises(RedsError, match="weights.safetensors"):
        fam_io.load(tiny_family)


# ---------------------------------------------------------------- recipes, devices, data path

def test_reds_recipe_switches_at_reds_steps():
    """At REDS's own size (250 epochs of 469 steps) the scaled schedule switches exactly at
    steps 16,406 and 30,468; batch-norm tuning is 10 of 250 epochs."""
    from reds.train import RECIPES
    reds, total = RECIPES["reds"], 250 * 469
    assert [reds.rate(1e-3, s, total) for s in (0, 16_405, 16_406, 30_467, 30_468, total - 1)] == \
        pytest.approx([1e-3, 1e-3, 2.5e-4, 2.5e-4, 1e-5, 1e-5])
    assert reds.bn_only_epochs(250) == 10 and reds.bn_only_epochs(3) == 1 and reds.bn_only_epochs(0) == 0
    assert reds.batch_size == 128 and reds.bn_momentum == pytest.approx(0.01)  # Keras's 0.99
    cos = RECIPES["default"]
    assert cos.rate(5e-4, 0, 100) == pytest.approx(5e-4) and cos.rate(5e-4, 50, 100) == pytest.approx(2.5e-4)
    assert cos.bn_only_epochs(250) == 0
    # flags left unset take the recipe's values; given ones win
    assert TrainConfig(arch="dnn-s", dataset="synth-kws", recipe="reds").batch_size == 128
    assert TrainConfig(arch="dnn-s", dataset="synth-kws", recipe="reds", batch_size=32).batch_size == 32
    with pytest.raises(RedsError, match="unknown recipe"):
        TrainConfig(arch="dnn-s", dataset="synth-kws", recipe="fast")


def test_dscnn_s_img_is_reds_vision_network():
    """REDS's released Fashion-MNIST network: MACs counted by hand, 1,280 features into the
    classifier (a 2x10 map of 64 channels after the 13x5 stride-1 pool)."""
    from reds.ir.archs import build_spec
    from reds.ir.cost import cost
    spec = build_spec("dscnn-s-img", dataset="fmnist")
    pool, dense = spec.layers[-3], spec.layers[-1]
    assert pool.in_hw == (14, 14) and pool.out_hw == (2, 10)
    assert dense.in_spatial * 64 == 1280 and spec.param_shapes(dense)["weight"] == (10, 1280)
    conv0, dw, pw = 14 * 14 * 64 * 9, 14 * 14 * 64 * 9, 14 * 14 * 64 * 64
    assert cost(spec, spec.full_widths()).macs == conv0 + 4 * (dw + pw) + 1280 * 10
    assert all(l.op.eps == 1e-3 for l in spec.layers if l.kind == "batch_norm")


def test_cuda_without_a_gpu_is_one_clear_line(synth_kws, tmp_path, capsys):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    rc = main(["train", "--arch", "dnn-s", "--dataset", "synth-kws", "--data-dir", str(synth_kws),
               "--device", "cuda", "--out", str(tmp_path / "f")])
    err = capsys.readouterr().err
    assert rc != 0 and "sees no CUDA GPU" in err and "--device cpu" in err and "Traceback" not in err
    assert not (tmp_path / "f").exists()


def test_features_precomputed_once_without_augmentation(synth_kws):
    """Without augmentation the training features are computed once, and the batches are
    exactly those computed batch by batch."""
    from reds import data
    a = data.load("synth-kws", str(synth_kws))
    b = data.load("synth-kws", str(synth_kws))
    calls = {"n": 0}
    real = b.featurize

    def counted(x, augment, gen):
        calls["n"] += 1
        return real(x, augment, gen)
    b.featurize = counted
    b.precompute("train")
    n = calls["n"]
    for _ in range(2):  # two epochs: no featurising at all
        got = list(b.batches("train", 50, shuffle=True, generator=torch.Generator().manual_seed(1)))
    assert calls["n"] == n
    ref = list(a.batches("train", 50, shuffle=True, generator=torch.Generator().manual_seed(1)))
    assert len(got) == len(ref)
    for (x1, y1), (x2, y2) in zip(got, ref):
        assert torch.equal(y1, y2)
        torch.testing.assert_close(x1, x2, rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match="cannot be augmented"):
        next(b.batches("train", 8, augment=True))


def test_prefetch_keeps_order_raises_and_stops():
    import threading
    from reds.train.trainer import prefetch
    assert list(prefetch(iter(range(50)))) == list(range(50))

    def broken():
        yield 1
        raise OSError("disk gone")
    it = prefetch(broken())
    assert next(it) == 1
    with pytest.raises(OSError, match="disk gone"):
        next(it)
    it = prefetch(iter(range(10_000)))
    assert next(it) == 0
    it.close()  # the consumer stops early: the helper thread ends too
    assert not any(t.name == "reds-batches" for t in threading.enumerate())


def test_resume_refuses_an_architecture_file_that_changed(synth_kws, tmp_path, monkeypatch):
    """The checkpoint keeps the architecture document: a file edited between the kill and
    --resume is refused in one line (its weights would not fit, or silently mean another
    network); the file as it was resumes."""
    from reds.ir import archfile
    from reds.ir.archs import ARCHS

    doc = dict(ARCHS["dnn-s"].doc, name="my-dnn")
    arch = tmp_path / "my-dnn.json"
    arch.write_text(archfile.dumps(doc))
    cfg = small_config(synth_kws, arch=str(arch), epochs=2)
    out = tmp_path / "run"
    real = Trainer._metric

    calls = {"n": 0}

    def dying_metric(self, **row):  # killed at metrics row 2: after epoch 1's checkpoint
        real(self, **row)
        calls["n"] += 1
        if calls["n"] == 2:
            raise Killed()

    monkeypatch.setattr(Trainer, "_metric", dying_metric)
    with pytest.raises(Killed):
        Trainer(cfg, out, progress=False, log=lambda m: None).run()
    monkeypatch.setattr(Trainer, "_metric", real)
    assert (out / "checkpoint.pt").exists()
    edited = dict(doc, ops=[dict(op, out=100) if op.get("out") == 144 else op for op in doc["ops"]])
    arch.write_text(archfile.dumps(edited))
    with pytest.raises(RedsError, match="another version of .*my-dnn.json"):
        Trainer(cfg, out, progress=False, log=lambda m: None).run(resume=True)
    arch.write_text(archfile.dumps(doc))
    fam = Trainer(cfg, out, progress=False, log=lambda m: None).run(resume=True)
    assert fam.architecture == archfile.check(doc) and fam.arch == "my-dnn"
