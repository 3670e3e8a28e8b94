"""`reds adapt` and `reds profile`: the methods keep a family nested and merge exactly,
the FLOP counter matches hand counts (and torch's counter where torch is right), and the
command line writes a loadable family or refuses bad input in one line."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from families import make_family
from reds import family as fam_io
from reds.adapt import METHODS
from reds.adapt import profile as prof
from reds.adapt.adapt import apply_delta
from reds.adapt.methods import Adapter, AdaptedNet, GaLoreAdam, optimizer
from reds.cli import main
from reds.nn.nested import NestedNet

ARCH = "dscnn-s-img"  # depthwise, pointwise, dense: every kind of layer the methods treat


@pytest.fixture(scope="module")
def fam_dir(tmp_path_factory):
    return make_family(tmp_path_factory.mktemp("adapt"), ARCH, width_mult=0.25, seed=1)


@pytest.fixture(scope="module")
def fam(fam_dir):
    return fam_io.open(fam_dir)


def _copy(net: NestedNet) -> NestedNet:
    out = NestedNet(net.spec, num_bn=net.num_bn)
    out.load_state_dict(net.state_dict())
    return out


def _x(fam, n=8, seed=0):
    return torch.randn(n, *fam.spec.input_shape, generator=torch.Generator().manual_seed(seed))


def _step(model, fam, steps=1):
    """A few optimizer steps on random data over every submodel, as `reds adapt` steps."""
    opt = optimizer(model, 1e-2)
    y = torch.arange(8) % fam.spec.num_classes
    for i in range(steps):
        model.train()
        opt.zero_grad()
        for k, s in enumerate(fam.submodels):
            F.cross_entropy(model(_x(fam, seed=i), s.widths, bn=k), y).backward()
        opt.step()
    return model.eval()


def test_lora_with_zero_b_changes_nothing(fam):
    for method in ("lora", "dora", "adapter"):
        model = AdaptedNet(_copy(fam.net), method, rank=3).eval()
        x = _x(fam)
        with torch.no_grad():
            for k, s in enumerate(fam.submodels):
                torch.testing.assert_close(model(x, s.widths, bn=k), fam.net(x, s.widths, bn=k), atol=1e-5, rtol=0)


@pytest.mark.parametrize("method", ["lora", "dora"])
def test_merged_family_equals_the_adapted_model_in_every_submodel(fam, method):
    model = _step(AdaptedNet(_copy(fam.net), method, rank=2), fam, steps=2)
    assert any(float(ad.B.detach().abs().max()) > 0 for ad in model.lora.values())
    merged = model.merged()
    x = _x(fam, seed=5)
    with torch.no_grad():
        for k, s in enumerate(fam.submodels):
            torch.testing.assert_close(merged(x, s.widths, bn=k), model(x, s.widths, bn=k), atol=1e-5, rtol=0)


def test_one_adapter_serves_every_submodel_as_a_prefix(fam):
    """Submodel k's adapted layer = the prefix slice of the full adapted weight W + B A, and
    its bottleneck adapter = the full adapter on its channels padded with zeros, sliced."""
    model = _step(AdaptedNet(_copy(fam.net), "lora", rank=2), fam)
    spec = fam.spec
    layer = next(l for l in spec.layers if l.name == "pw1")
    ad, p = model.lora["pw1"], model.net.layers["pw1"]
    full = p.weight + ad.delta()
    for s in fam.submodels:
        cin, cout = spec.size(layer.in_ch, s.widths), spec.size(layer.out_ch, s.widths)
        x = torch.randn(2, cin, *layer.in_hw)
        with torch.no_grad():
            got = model._lora(layer, x, s.widths)
            want = F.conv2d(x, full[:cout, :cin], p.bias[:cout])
            torch.testing.assert_close(got, want, atol=1e-5, rtol=0)
            sliced = (ad.B[:cout] @ ad.A[:, :cin].flatten(1)).view(cout, cin, 1, 1)
            torch.testing.assert_close(ad.delta()[:cout, :cin], sliced, atol=1e-7, rtol=0)
    a = Adapter(16, 3)
    with torch.no_grad():
        a.U.normal_()
        y = torch.randn(2, 16, 5, 5)
        for c in (4, 9, 16):
            pad = torch.cat([y[:, :c], torch.zeros(2, 16 - c, 5, 5)], 1)
            torch.testing.assert_close(a(y[:, :c]), a(pad)[:, :c], atol=1e-6, rtol=0)


def test_bn_head_leaves_conv_weights_bit_identical(fam):
    before = {k: v.clone() for k, v in fam.net.state_dict().items()}
    model = _step(AdaptedNet(_copy(fam.net), "bn-head", rank=1), fam)
    after = model.net.state_dict()
    head = fam.spec.layers[-1].name
    for l in fam.spec.layers:
        if l.kind in ("conv2d", "depthwise_conv2d"):
            assert torch.equal(after[f"layers.{l.name}.weight"], before[f"layers.{l.name}.weight"])
            assert torch.equal(after[f"layers.{l.name}.bias"], before[f"layers.{l.name}.bias"])
    assert not torch.equal(after[f"layers.{head}.weight"], before[f"layers.{head}.weight"])
    assert not torch.equal(after["layers.bn0.0.weight"], before["layers.bn0.0.weight"])


def test_dora_magnitude_and_direction_reproduce_the_weight_at_init(fam):
    model = AdaptedNet(_copy(fam.net), "dora", rank=2)
    for name, ad in model.lora.items():
        w = model.net.layers[name].weight
        torch.testing.assert_close(ad.m, w.flatten(1).norm(dim=1))
        direction = w.flatten(1) / w.flatten(1).norm(dim=1, keepdim=True)
        torch.testing.assert_close((ad.m[:, None] * direction).view_as(w), w, atol=1e-6, rtol=0)
        torch.testing.assert_close(ad.merged(w), w, atol=1e-6, rtol=0)


def test_galore_update_has_the_stated_rank():
    torch.manual_seed(0)
    w = torch.nn.Parameter(torch.randn(12, 20))
    other = torch.nn.Parameter(torch.randn(5))
    for rank in (1, 3):
        opt = GaLoreAdam([w, other], {id(w)}, rank, lr=0.1)
        w.grad, other.grad = torch.randn(12, 20), torch.randn(5)
        before = w.detach().clone()
        opt.step()
        step = w.detach() - before
        assert int(torch.linalg.matrix_rank(step)) == rank
        assert opt.state[w]["m"].shape == (rank, 20) and opt.state[other]["m"].shape == (5,)


def test_flop_counter_matches_hand_counts_and_torch(fam):
    spec = fam.spec
    w = fam.submodels[1].widths
    model = AdaptedNet(_copy(fam.net), "full", rank=1)
    rows = {r["name"]: r for r in prof.count(model, w, 1)["ops"]}
    # depthwise dw1: 14 x 14 outputs, 3 x 3 kernel, one filter per channel of g0
    c = w["g0"]
    assert (rows["dw1"]["fwd"], rows["dw1"]["bwd_in"], rows["dw1"]["bwd_w"]) == (2 * 196 * 9 * c,) * 3
    # pointwise pw1: g0 -> g1 on 14 x 14
    assert (rows["pw1"]["fwd"], rows["pw1"]["bwd_in"], rows["pw1"]["bwd_w"]) == (2 * 196 * w["g0"] * w["g1"],) * 3
    # dense logits: g4 channels x (2 x 10) positions -> 10 classes
    n = w["g4"] * 20 * 10
    assert (rows["logits"]["fwd"], rows["logits"]["bwd_in"], rows["logits"]["bwd_w"]) == (2 * n,) * 3
    # the first layer's input gradient is never needed
    assert rows["conv0"]["bwd_in"] == 0 and rows["conv0"]["bwd_w"] == rows["conv0"]["fwd"]
    # lora: frozen weights, no weight gradient for them; its side path counted
    lora = {r["name"]: r for r in prof.count(AdaptedNet(_copy(fam.net), "lora", rank=2), w, 1)["ops"]}
    assert lora["dw1"]["bwd_w"] == 0 and lora["pw1"]["bwd_w"] == 2 * 196 * 2 * (w["g0"] + w["g1"])
    # torch's counter agrees on every non-depthwise op; on depthwise it counts the weight
    # gradient as a dense conv
    for method in ("full", "lora", "dora", "adapter", "bn-head"):
        chk = prof.crosscheck(AdaptedNet(_copy(fam.net), method, rank=2), w, 1)
        assert chk["agree"], (method, chk)
    chk = prof.crosscheck(model, w, 1)
    assert chk["depthwise_overcount"] > 2


def test_profile_memory_parts(fam):
    widths = [s.widths for s in fam.submodels]
    full = prof.profile(AdaptedNet(_copy(fam.net), "full", rank=1), widths, batch=4)
    lora = prof.profile(AdaptedNet(_copy(fam.net), "lora", rank=1), widths, batch=4)
    stats = prof.profile(AdaptedNet(_copy(fam.net), "bn-stats", rank=1), widths, batch=4)
    values = sum(p.numel() for p in fam.net.parameters())
    assert full["trainable_values"] == values and full["memory"]["gradients"] == 4 * values
    assert full["memory"]["optimizer"] == 8 * values
    assert lora["memory"]["gradients"] < full["memory"]["gradients"] / 5
    assert stats["memory"]["activations"] == 0 and stats["flops_per_sample"]["backward_weights"] == 0
    assert full["memory"]["activations"] > 0
    assert lora["flops_per_sample"]["backward_weights"] < full["flops_per_sample"]["backward_weights"]


# ---- the command line -----------------------------------------------------------------------------
def _npz(path, classes=10, shape=(28, 28), n=240, seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % classes
    x = rng.integers(0, 255, (n, *shape)).astype(np.uint8)
    x[np.arange(n), y % shape[0], :] = 255  # a learnable pattern per class
    np.savez(path, x_train=x, y_train=y, x_test=x[:80], y_test=y[:80])
    return path


def test_cli_adapt_writes_a_loadable_family_and_a_delta(fam_dir, tmp_path, capsys):
    data = _npz(tmp_path / "d.npz")
    out = tmp_path / "out"
    rc = main(["adapt", str(fam_dir), "--method", "lora", "--rank", "2", "--dataset", "npz", "--data-dir", str(data),
               "--limit-train", "160", "--limit-eval", "80", "--keep-delta", "--out", str(out)])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "family written" in printed and "delta written" in printed
    new = fam_io.open(out).verify()
    report = json.loads((out / "adapt.json").read_text())
    assert report["merge_max_abs_diff"] < 1e-4
    assert [s.accuracy for s in new.submodels] == [s["after"]["accuracy"] for s in report["submodels"]]
    assert report["delta"]["bytes"] == (out / "delta.safetensors").stat().st_size
    # the old family + the delta give the new family's weights
    rebuilt = apply_delta(fam_io.open(fam_dir), out / "delta.safetensors").merged().state_dict()
    for k, v in new.net.state_dict().items():
        torch.testing.assert_close(rebuilt[k], v, atol=1e-6, rtol=0)
    # profile reads the family it wrote
    assert main(["profile", str(out), "--method", "lora,bn-head,full", "--rank", "1,2", "--check"]) == 0
    text = capsys.readouterr().out
    assert "lora" in text and " NO " not in text


def test_cli_new_classes_and_adapters(fam_dir, tmp_path, capsys):
    data = _npz(tmp_path / "d12.npz", classes=12)
    out = tmp_path / "nc"
    assert main(["adapt", str(fam_dir), "--method", "bn-head", "--task", "new-classes", "--dataset", "npz",
                 "--data-dir", str(data), "--limit-train", "120", "--out", str(out)]) == 0
    new = fam_io.open(out).verify()
    assert new.manifest.num_classes == 12 and new.spec.num_classes == 12
    report = json.loads((out / "adapt.json").read_text())
    assert {"old", "new"} <= set(report["submodels"][0]["after"])
    old_head = fam_io.open(fam_dir).net.state_dict()
    # bn-head trains the new head; the convolutions keep their weights
    assert torch.equal(new.net.state_dict()["layers.pw1.weight"], old_head["layers.pw1.weight"])
    out2 = tmp_path / "ad"
    assert main(["adapt", str(fam_dir), "--method", "adapter", "--rank", "2", "--dataset", "npz", "--data-dir",
                 str(_npz(tmp_path / "d.npz")), "--limit-train", "80", "--keep-delta", "--out", str(out2)]) == 0
    assert (out2 / "delta.safetensors").exists() and not (out2 / "family.json").exists()
    model = apply_delta(fam_io.open(fam_dir), out2 / "delta.safetensors")
    assert any(float(a.U.detach().abs().max()) > 0 for a in model.adapters.values())
    capsys.readouterr()


@pytest.mark.parametrize("argv,words", [
    (["--method", "lorax"], "unknown method 'lorax'"),
    (["--method", "lora", "--rank", "0"], "--rank must be at least 1"),
    (["--method", "lora", "--rank", "50"], "exceeds layer"),
    (["--method", "adapter"], "--keep-delta"),
    (["--method", "lora", "--task", "nope"], "unknown task"),
    (["--method", "lora", "--shift", "snr=3"], "does not apply"),
    (["--method", "lora", "--small"], "input shape"),
])
def test_cli_bad_input_gets_one_line(fam_dir, tmp_path, capsys, argv, words):
    small = "--small" in argv
    argv = [a for a in argv if a != "--small"]
    data = _npz(tmp_path / "d.npz", shape=(20, 20) if small else (28, 28), n=40)
    rc = main(["adapt", str(fam_dir), *argv, "--dataset", "npz", "--data-dir", str(data), "--out",
               str(tmp_path / "o")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and err.startswith("reds: error:"), err
    assert (words if words != "input shape" else "family expects") in err


def test_profile_bad_input_gets_one_line(fam_dir, capsys):
    for argv in (["--method", "nope"], ["--rank", "x"], ["--method", "lora", "--rank", "0"]):
        assert main(["profile", str(fam_dir), *argv]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and err.startswith("reds: error:"), err


def test_methods_registry_is_the_cli_choices():
    assert set(METHODS) == {"lora", "dora", "galore", "adapter", "bn-head", "full", "bn-stats"}


def _clips(n=4, seed=0, amplitude=3000.0):
    """n one-second 16 kHz clips: a tone with a slow envelope, then half a second of near silence."""
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(16000) / 16000.0
    f0 = 200 + 600 * torch.rand(n, 1, generator=g)
    env = torch.where(t < 0.5, torch.sin(torch.pi * t / 0.5), torch.full_like(t, 0.01))
    return (amplitude * env * torch.sin(2 * torch.pi * f0 * t)).round().to(torch.int16)


def _audio_set(x):
    from reds.data.base import Dataset, Split

    y = torch.zeros(len(x), dtype=torch.long)
    return Dataset("clips", (1, 49, 10), ["a"], {"train": Split(x.clone(), y), "test": Split(x.clone(), y)},
                   info={"kind": "audio"})


def test_audio_shift_is_white_noise_at_the_snr_it_claims_and_stays_int16():
    from reds.adapt import shifts

    x = _clips()
    for snr in (0.0, 10.0, 20.0):
        ds = _audio_set(x)
        done = shifts.shift(ds, f"snr={snr}", seed=3)
        assert done == {"kind": "audio", "snr": snr, "seed": 3}
        for split in ("train", "test"):
            y = ds.splits[split].x
            assert y.dtype == torch.int16 and y.shape == x.shape
            noise = y.double() - x.double()
            measured = 10 * torch.log10(x.double().pow(2).sum(1) / noise.pow(2).sum(1))  # per clip
            assert torch.allclose(measured, torch.full_like(measured, snr), atol=0.15), (snr, measured)
            assert abs(float(noise.mean())) < 0.05 * float(noise.std())  # zero mean
        assert not torch.equal(ds.splits["train"].x, ds.splits["test"].x)  # each split its own draw

    # deterministic from the seed, and another seed another draw
    a, b, c = _audio_set(x), _audio_set(x), _audio_set(x)
    shifts.shift(a, "snr=10", seed=7)
    shifts.shift(b, "snr=10", seed=7)
    shifts.shift(c, "snr=10", seed=8)
    assert torch.equal(a.splits["train"].x, b.splits["train"].x) and torch.equal(a.splits["test"].x, b.splits["test"].x)
    assert not torch.equal(a.splits["train"].x, c.splits["train"].x)

    # a full-scale clip saturates at the int16 rails instead of wrapping around
    loud = torch.full((2, 16000), 32767, dtype=torch.int16)
    loud[1] = -32768
    ds = _audio_set(loud)
    shifts.shift(ds, "snr=20", seed=0)  # noise std ~3,277
    y = ds.splits["train"].x
    assert y.dtype == torch.int16
    assert int(y[0].max()) == 32767 and int(y[0].min()) > 0
    assert int(y[1].min()) == -32768 and int(y[1].max()) < 0
