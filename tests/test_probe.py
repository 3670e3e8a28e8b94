"""`reds probe` and its baselines on small cases whose answer is known: PIEs, Q-score,
prediction depth, k-NN probes, magnitude pruning and its cubic schedule, the supervised
contrastive loss and `reds train --loss supcon`; then the command end to end on a tiny
family (and a speech one: its PIEs as WAVs), and bad input refused in one line."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from reds.cli import main
from reds.errors import RedsError
from reds.ir.archs import build_spec
from reds.nn.nested import NestedNet
from reds.probe.depth import knn_predict, prediction_depth
from reds.probe.pies import modal, pies
from reds.probe.points import block_outputs
from reds.probe.pruning import (apply_masks, cubic, effective_cost, kept_weights, magnitude_masks, prunable,
                                prune)
from reds.probe.qscore import q_score, q_score_normalised
from reds.train import TrainConfig, Trainer
from reds.train.supcon import supcon_loss

from families import RESIDUAL


# ---- PIEs ---------------------------------------------------------------------------------------
def test_a_submodel_identical_to_the_full_model_has_no_pies():
    pred = torch.tensor([0, 3, 1, 1, 2])
    assert not pies(pred, pred.clone(), 4).any()
    assert pies(torch.tensor([0, 3, 2, 1, 2]), pred, 4).tolist() == [False, False, True, False, False]


def test_modal_prediction_over_seeds():
    seeds = [torch.tensor([0, 1, 2, 3]), torch.tensor([0, 2, 2, 1]), torch.tensor([1, 2, 0, 2])]
    # per example: {0,0,1} -> 0; {1,2,2} -> 2; {2,2,0} -> 2; {3,1,2}: a three-way tie -> lowest, 1
    assert modal(seeds, 4).tolist() == [0, 2, 2, 1]
    dense = [torch.tensor([0, 2, 0, 1])] * 3
    assert pies(seeds, dense, 4).tolist() == [False, False, True, False]


# ---- Q-score ------------------------------------------------------------------------------------
def test_one_hot_representation_has_the_maximal_q_score():
    d, n = 16, 64
    y = torch.arange(n) % d
    one_hot = torch.nn.functional.one_hot(y, d).float()
    assert torch.allclose(q_score_normalised(one_hot), torch.ones(n, dtype=torch.float64))
    assert torch.allclose(q_score(one_hot), torch.full((n,), math.sqrt(d - 1), dtype=torch.float64))
    # a dense random representation (256 features): low, near sqrt(2 ln d / d)
    dense = torch.randn(n, 256, generator=torch.Generator().manual_seed(0)).abs() + 1.0
    qn = q_score_normalised(dense)
    assert (qn < 0.5).all() and (qn > 0).all() and qn.mean() < 0.3
    # nothing beats a one-hot: random vectors of every kind score at most 1
    anything = torch.randn(1000, d, generator=torch.Generator().manual_seed(1)) ** 3
    assert (q_score_normalised(anything) <= 1 + 1e-12).all()
    # Q is the paper's max z-score over the L1 norm: a 10x larger representation scores 10x less
    assert torch.allclose(q_score(10 * dense), q_score(dense) / 10)
    assert torch.allclose(q_score_normalised(10 * dense), qn)
    assert q_score(torch.zeros(2, d)).tolist() == [0.0, 0.0]


# ---- prediction depth and k-NN probes -----------------------------------------------------------
def test_prediction_depth():
    final = torch.tensor([1, 1, 1, 1, 1])
    probes = torch.tensor([  # 4 probe points (rows) x 5 examples
        [1, 0, 0, 1, 0],
        [1, 0, 1, 0, 0],
        [1, 1, 1, 1, 0],
        [1, 1, 1, 1, 0],
    ])
    # example 0: the first probe is right and no later one changes it -> 0; example 4: even
    # the last probe disagrees -> L = 4; example 3: right at 0, wrong at 1, settled from 2 -> 2
    assert prediction_depth(probes, final).tolist() == [0, 2, 1, 2, 4]


def test_knn_probe_on_a_separable_toy_set():
    g = torch.Generator().manual_seed(0)
    centers = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    ytr = torch.arange(90) % 3
    xtr = centers[ytr] + torch.randn(90, 2, generator=g)
    yte = torch.arange(30) % 3
    xte = centers[yte] + torch.randn(30, 2, generator=g)
    assert knn_predict(xtr, ytr, xte, 3, k=30).tolist() == yte.tolist()
    # k above the training set: every vote counts, the majority class wins (ties: lowest)
    assert knn_predict(xtr[:5], ytr[:5], xte[:2], 3, k=30).tolist() == [0, 0]


def test_probe_points_are_block_outputs_then_the_penultimate_layer():
    spec = build_spec("dscnn-s-img", dataset="fmnist", width_mult=0.25)
    pts = block_outputs(spec)
    assert pts[0] == "act0" and pts[-1] == spec.penultimate == "flatten" and len(pts) == 10
    res = build_spec(RESIDUAL, dataset="cifar10")
    pts = block_outputs(res)
    adds = [l.name for l in res.layers if l.kind == "add"]
    assert adds and set(adds) <= set(pts) and pts[-1] == res.penultimate
    # an activation feeding an add is not a probe point (the add is)
    names = [l.name for l in res.layers]
    assert all(names[names.index(a) - 1] not in pts for a in adds)


def test_features_match_forward():
    spec = build_spec(RESIDUAL, dataset="cifar10")
    torch.manual_seed(0)
    net = NestedNet(spec).eval()
    x = torch.randn(3, *spec.input_shape)
    at = block_outputs(spec)
    with torch.no_grad():
        logits, feats = net.features(x, at=at)
        assert torch.equal(logits, net(x))
        # a kept output is what the layer gave: rerun the prefix up to it
        relu = next(p for p in at if p.startswith("act") or "relu" in p)
        assert torch.equal(feats[relu], net.features(x, at=[relu])[1][relu])
    assert set(feats) == set(at)
    with pytest.raises(KeyError):
        net.features(x, at=["nope"])


# ---- magnitude pruning --------------------------------------------------------------------------
def small_net(seed=0):
    spec = build_spec("dscnn-s-img", dataset="fmnist", width_mult=0.25)
    torch.manual_seed(seed)
    return NestedNet(spec)


def test_magnitude_pruning_keeps_exactly_the_largest_weights():
    net = small_net()
    total = sum(net.layers[n].weight.numel() for n in prunable(net.spec))
    assert kept_weights(net.spec, net.spec.full_widths()) == total
    keep = 1234
    masks = magnitude_masks(net, keep)
    assert sum(int(m.sum()) for m in masks.values()) == keep
    w = torch.cat([net.layers[n].weight.detach().abs().flatten() for n in masks])
    m = torch.cat([masks[n].flatten() for n in masks])
    assert w[m].min() >= w[~m].max()
    apply_masks(net, masks)
    c = effective_cost(net, masks)
    assert c["weights"] == keep and c["sparsity"] == round(1 - keep / total, 6)
    assert sum(int((net.layers[n].weight != 0).sum()) for n in masks) == keep
    # ties keep the earlier weight; `within` never revives a pruned weight
    net2 = small_net()
    with torch.no_grad():
        for n in prunable(net2.spec):
            net2.layers[n].weight.fill_(1.0)
    first = magnitude_masks(net2, 10)
    assert torch.cat([first[n].flatten() for n in first]).nonzero().flatten().tolist() == list(range(10))
    inner = magnitude_masks(net2, 5, within=first)
    assert all(bool((inner[n] <= first[n]).all()) for n in first)


def test_cubic_schedule():
    assert cubic(0, 100, 0.8) == 0.0
    assert cubic(100, 100, 0.8) == pytest.approx(0.8) and cubic(150, 100, 0.8) == pytest.approx(0.8)
    assert cubic(50, 100, 0.8) == pytest.approx(0.8 * (1 - 0.5 ** 3))  # 0.7
    assert cubic(25, 100, 0.8) == pytest.approx(0.8 - 0.8 * 0.75 ** 3)
    assert cubic(10, 100, 0.8, initial=0.2, begin=20) == 0.2
    vals = [cubic(t, 100, 0.9) for t in range(101)]
    assert all(a <= b for a, b in zip(vals, vals[1:]))
    assert vals[10] - vals[0] > vals[100] - vals[90]  # fast first, slow at the end


@pytest.mark.parametrize("method", ["one-shot", "gradual"])
def test_pruning_runs_end_at_the_exact_size_and_stay_pruned(method):
    base = small_net()
    g = torch.Generator().manual_seed(0)
    data = [(torch.randn(8, 1, 28, 28, generator=g), torch.randint(0, 10, (8,), generator=g)) for _ in range(25)]
    keep = 900
    net, masks = prune(base, keep, method, 1, 1e-3, lambda e: iter(data), len(data), [x for x, _ in data[:3]])
    nonzero = sum(int((net.layers[n].weight != 0).sum()) for n in prunable(net.spec))
    assert nonzero == keep == sum(int(m.sum()) for m in masks.values())
    assert not torch.equal(net.layers["logits"].bias, base.layers["logits"].bias)  # it was fine-tuned
    assert all(net.layers[n].weight[~masks[n]].abs().max() == 0 for n in masks)


# ---- supervised contrastive loss ----------------------------------------------------------------
def test_supcon_loss_against_a_hand_computed_value():
    # four unit vectors at right angles, classes {0, 1} and {2, 3}: every anchor has one
    # positive at dot product 0, one negative at 0 and one at -1, so with tau = 1
    # L = -log(e^0 / (e^0 + e^0 + e^-1)) = log(2 + 1/e)
    z = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]])
    y = torch.tensor([0, 0, 1, 1])
    assert float(supcon_loss(z, y, 1.0)) == pytest.approx(math.log(2 + math.exp(-1)), rel=1e-6)
    assert float(supcon_loss(3 * z, y, 1.0)) == pytest.approx(math.log(2 + math.exp(-1)), rel=1e-6)  # normalised
    # tau = 0.5: the dot products double
    assert float(supcon_loss(z, y, 0.5)) == pytest.approx(math.log(2 + math.exp(-2)), rel=1e-6)
    assert float(supcon_loss(z, torch.tensor([0, 1, 2, 3]), 1.0)) == 0.0  # no positives


# ---- end to end ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """64 training and 48 test 28x28 images of 4 classes (a bright quadrant each)."""
    rng = np.random.default_rng(0)
    path = tmp_path_factory.mktemp("npz") / "quad.npz"

    def make(n):
        y = np.arange(n) % 4
        x = rng.integers(0, 60, (n, 28, 28)).astype(np.uint8)
        for i, c in enumerate(y):
            r, q = divmod(int(c), 2)
            x[i, 14 * r:14 * r + 14, 14 * q:14 * q + 14] += 150
        return x, y

    xtr, ytr = make(64)
    xte, yte = make(48)
    np.savez(path, x_train=xtr, y_train=ytr, x_test=xte, y_test=yte)
    return path


def tiny(data, out, **kw):
    cfg = TrainConfig(**{**dict(arch="dscnn-s-img", dataset="npz", data_dir=str(data), epochs=1, finetune_epochs=1,
                                batch_size=16, importance_batches=2, width_mult=0.25, budgets=[0.5, 1.0],
                                val_per_epoch=16), **kw})
    Trainer(cfg, out, progress=False, log=lambda m: None).run()
    return out


@pytest.fixture(scope="module")
def family(images, tmp_path_factory):
    return tiny(images, tmp_path_factory.mktemp("fam") / "f0")


def test_supcon_training_pretrains_contrastively_then_a_linear_head(images, tmp_path):
    out = tiny(images, tmp_path / "sc", loss="supcon", temperature=0.2, head_epochs=1)
    phases = [json.loads(l)["phase"] for l in (out / "metrics.jsonl").read_text().splitlines()]
    assert phases == ["pretrain", "head", "search", "finetune"]
    fam = json.loads((out / "family.json").read_text())
    assert fam["training"]["loss"] == "supcon" and fam["training"]["temperature"] == 0.2
    with pytest.raises(RedsError, match="unknown loss"):
        TrainConfig(arch="dnn-s", dataset="npz", loss="triplet")


class Killed(Exception):
    pass


def test_supcon_run_killed_in_its_head_phase_resumes_to_the_same_family(images, tmp_path, monkeypatch):
    from reds import family as fam_io

    kw = dict(loss="supcon", head_epochs=2)
    ref = tiny(images, tmp_path / "ref", **kw)
    real, calls = Trainer._metric, {"n": 0}

    def dying(self, **row):
        real(self, **row)
        calls["n"] += 1
        if calls["n"] == 2:  # after the head's first epoch (and its checkpoint)
            raise Killed()

    monkeypatch.setattr(Trainer, "_metric", dying)
    with pytest.raises(Killed):
        tiny(images, tmp_path / "run", **kw)
    monkeypatch.setattr(Trainer, "_metric", real)
    cfg = TrainConfig(arch="dscnn-s-img", dataset="npz", data_dir=str(images), epochs=1, finetune_epochs=1,
                      batch_size=16, importance_batches=2, width_mult=0.25, budgets=[0.5, 1.0], val_per_epoch=16, **kw)
    Trainer(cfg, tmp_path / "run", progress=False, log=lambda m: None).run(resume=True)
    rows = [json.loads(l) for l in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [(r["phase"], r.get("epoch")) for r in rows] == [("pretrain", 1), ("head", 1), ("head", 2), ("search", None),
                                                            ("finetune", 1)]
    got, want = fam_io.load(tmp_path / "run")[1].state_dict(), fam_io.load(ref)[1].state_dict()
    for k, v in want.items():
        torch.testing.assert_close(got[k], v, rtol=0, atol=1e-6, msg=k)


def test_cli_probe_end_to_end(family, images, tmp_path, capsys):
    seed1 = tiny(images, tmp_path / "f1", seed=1)
    out = tmp_path / "probe"
    rc = main(["probe", str(family), "--out", str(out), "--limit", "40", "--train-samples", "64", "--quiet",
               "--baselines", "one-shot,gradual", "--prune-epochs", "1"])
    assert rc == 0
    for f in ("probe.json", "probe.md", "accuracy.png", "pies.png", "qscore.png", "depth.png"):
        assert (out / f).is_file(), f
    r = json.loads((out / "probe.json").read_text())
    assert r["format"] == "reds-probe" and r["test_examples"] == 40
    assert r["train_examples"] == 58  # the 64 less the validation share (10 %) npz holds out
    names = [m["name"] for m in r["models"]]
    assert names == ["reds 50%", "reds 100%", "one-shot 50%", "gradual 50%"]
    full = r["models"][1]
    assert full["pies"]["count"] == 0 and full["pies"]["indices"] == []
    L = len(r["points"])
    for m in r["models"]:
        assert 0 <= m["depth"]["mean"] <= L and sum(m["depth"]["histogram"]) == 40
        assert 0 <= m["q_score_normalised"]["mean"] <= 1
        assert len(m["per_class_accuracy"]) == 4 and sum(m["pies"]["per_class"]) == m["pies"]["count"]
    # the baselines keep exactly the weights of the submodel they stand beside
    assert r["models"][2]["weights"] == r["models"][3]["weights"] == r["models"][0]["weights"]
    small = r["models"][0]
    if small["pies"]["count"]:
        assert (out / "pies-reds-50.png").is_file()
    assert "| reds 50% |" in (out / "probe.md").read_text()
    assert "probe written to" in capsys.readouterr().out

    # several seeds: the modal-prediction PIEs; a second probe replaces the first
    assert main(["probe", str(family), "--seeds", str(seed1), str(family), "--out", str(out), "--limit", "40",
                 "--train-samples", "32", "--quiet"]) == 0
    r = json.loads((out / "probe.json").read_text())
    assert "modal" in r["pie_definition"] and len(r["seeds"]) == 2 and len(r["models"]) == 2
    assert r["models"][1]["pies"]["count"] == 0


def test_speech_pies_are_written_as_wavs(synth_kws, tmp_path):
    fam = tmp_path / "kws"
    cfg = TrainConfig(arch="dnn-s", dataset="synth-kws", data_dir=str(synth_kws), epochs=1, finetune_epochs=1,
                      batch_size=32, importance_batches=2, width_mult=0.25, budgets=[0.25, 1.0], augment=False)
    Trainer(cfg, fam, progress=False, log=lambda m: None).run()
    out = tmp_path / "probe"
    assert main(["probe", str(fam), "--out", str(out), "--limit", "60", "--train-samples", "64", "--quiet"]) == 0
    r = json.loads((out / "probe.json").read_text())
    n = r["models"][0]["pies"]["count"]
    listed = (out / "pies-reds-25.txt").read_text().splitlines() if n else []
    assert len(listed) == min(n, 48)
    for line in listed:
        import wave
        with wave.open(str(out / line.split("\t")[0])) as w:
            assert w.getframerate() == 16000 and w.getnframes() == 16000


def test_bad_input_gets_one_line(family, images, tmp_path, capsys):
    assert main(["probe", str(tmp_path / "nothing"), "--out", str(tmp_path / "p")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("reds: error:") and "no such family folder" in err and "\n" not in err
    wide = tiny(images, tmp_path / "wide", width_mult=0.5)
    assert main(["probe", str(family), "--seeds", str(wide), "--out", str(tmp_path / "p"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "same architecture" in err and "\n" not in err
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep")
    assert main(["probe", str(family), "--out", str(mine), "--quiet"]) == 2
    assert "holds no reds probe" in capsys.readouterr().err
    assert (mine / "notes.txt").read_text() == "keep"
    with pytest.raises(SystemExit):
        main(["probe", str(family), "--out", str(tmp_path / "p"), "--baselines", "random"])
