"""The knapsack with elastic depth (reds.search.depth) against brute force, its nesting in
depth and width on real networks, block importance, and `reds train --depth on`.

Brute force enumerates every depth mask and every width vector of a tiny spec with two
skippable depthwise-separable blocks, values them with the definition (kept groups' tables,
a skipped block's own groups at full value, minus the block's value), checks MACs with the
cost model, and conditions on the solver's previous submodel as `test_knapsack` does.
Objectives are compared, not widths."""
from __future__ import annotations

import itertools
import random

import pytest
import torch

from reds import family as fam_io
from reds.cli import main
from reds.errors import RedsError
from reds.ir.archs import build_spec
from reds.ir.cost import cost
from reds.ir.spec import BatchNorm, Conv2d, Dense, DepthwiseConv2d, Flatten, Group, ReLU, Spec
from reds.nn.importance import block_scores
from reds.nn.nested import NestedNet
from reds.search import depth
from reds.search.knapsack import target_macs, value_scale, value_tables
from tests.families import RESIDUAL


def tiny_ds(rng: random.Random) -> Spec:
    """conv (a) -> DS block (dw on a, pw to b) -> DS block (dw on b, pw to c) -> dense."""
    n = rng.randint(3, 4)
    groups = (Group("a", n, 1), Group("b", n, 1), Group("c", n, 1))
    ops = [Conv2d("conv", "a", (3, 3), (1, 1), "same"), BatchNorm("bn0"), ReLU("r0")]
    for i, (src, dst) in enumerate((("a", "b"), ("b", "c"))):
        ops += [DepthwiseConv2d(f"dw{i}", (3, 3)), BatchNorm(f"bdw{i}"), ReLU(f"rdw{i}"),
                Conv2d(f"pw{i}", dst, (1, 1)), BatchNorm(f"bpw{i}"), ReLU(f"rpw{i}")]
    ops += [Flatten("flatten"), Dense("out", 3)]
    return Spec("tinyds", (1, rng.randint(3, 5), rng.randint(3, 5)), 3, groups, tuple(ops))


def _random_scores(spec, rng):
    return {g.name: torch.tensor(sorted((rng.random() for _ in range(g.units)), reverse=True), dtype=torch.float64)
            for g in spec.groups}


def _value(spec, tables, bvalue, w):
    skipped = [b for b in spec.blocks if w[b.name] == 0]
    dead = {g for b in skipped for g in b.dead}
    return (sum(tables[g][-1] if g in dead else tables[g][w[g]] for g in spec.group_names)
            - sum(bvalue[b.name] for b in skipped))


def _all_vectors(spec):
    for mask in itertools.product((0, 1), repeat=len(spec.blocks)):
        for ws in itertools.product(*(range(1, g.units + 1) for g in spec.groups)):
            w = dict(zip(spec.group_names, ws))
            w.update({b.name: v for b, v in zip(spec.blocks, mask)})
            try:
                yield spec.check_widths(w)
            except ValueError:  # a skipped block's alias not at its input's width
                continue


def _nested(a, b, spec):
    """a may come before b: b runs every block a runs, and no group is narrower."""
    return all(b[g] >= a[g] for g in spec.group_names) and all(b[x.name] >= a[x.name] for x in spec.blocks)


@pytest.mark.parametrize("mode", depth.MODES)
@pytest.mark.parametrize("seed", range(4))
def test_depth_knapsack_matches_brute_force(mode, seed):
    rng = random.Random(seed)
    spec = tiny_ds(rng)
    assert [b.name for b in spec.blocks] == ["skip_dw0", "skip_dw1"]
    scores = _random_scores(spec, rng)
    budgets = [0.15, 0.4, 0.7, 1.0]
    # one set of block values for all budgets, or one per budget
    bscores = ({b.name: rng.random() * 0.6 for b in spec.blocks} if seed % 2 else
               [{b.name: rng.random() * 0.6 for b in spec.blocks} for _ in budgets])
    sols = depth.solve(spec, scores, bscores, budgets, mode, time_limit=20)
    tables, scale = value_tables(spec, scores), value_scale(spec, scores)
    per_budget = bscores if isinstance(bscores, list) else [bscores] * len(budgets)
    full = cost(spec, spec.full_widths()).macs
    vectors = [(w, cost(spec, w).macs) for w in _all_vectors(spec)]
    order = range(len(budgets)) if mode == "bottom-up" else reversed(range(len(budgets)))
    prev = None
    for k in order:
        s = sols[k]
        target = target_macs(full, budgets[k])
        bvalue = {b: max(1, round(v * scale)) for b, v in per_budget[k].items()}
        assert s.status == "OPTIMAL"
        assert spec.check_widths(s.widths) == s.widths and set(s.widths) == set(spec.group_names) | {
            b.name for b in spec.blocks}
        assert s.macs == cost(spec, s.widths).macs <= target
        assert s.objective == _value(spec, tables, bvalue, s.widths)
        best = max(_value(spec, tables, bvalue, w) for w, m in vectors if m <= target and (
            prev is None or (_nested(prev, w, spec) if mode == "bottom-up" else _nested(w, prev, spec))))
        assert s.objective == best, (k, s.widths)
        prev = s.widths


@pytest.mark.parametrize("arch,shape", [("dscnn-s", (1, 49, 10)), ("dscnn-l", (1, 49, 10)),
                                        ("mobilenetv1-025", (3, 96, 96))])
def test_real_networks_nest_in_depth_and_width_and_solve_optimal(arch, shape):
    spec = build_spec(arch, shape, 12, width_mult=0.5)
    rng = random.Random(1)
    scores = _random_scores(spec, rng)
    bscores = {b.name: rng.random() * 0.3 for b in spec.blocks}
    for mode in depth.MODES:
        sols = depth.solve(spec, scores, bscores, [0.1, 0.25, 0.5, 1.0], mode, time_limit=20)
        assert all(s.status == "OPTIMAL" for s in sols), [(s.budget, s.status) for s in sols]
        assert all(s.macs <= s.target_macs for s in sols)
        for a, b in zip(sols, sols[1:]):
            assert _nested(a.widths, b.widths, spec)
            # per layer: runs in submodel k => runs in k + 1
            assert all(y or not x for x, y in zip(spec.runs(a.widths), spec.runs(b.widths)))
        assert not spec.skipped(sols[-1].widths)  # 100 %: nothing skipped


def test_depth_knapsack_refusals():
    spec = build_spec("dscnn-s", (1, 49, 10), 12, width_mult=0.25)
    scores = _random_scores(spec, random.Random(0))
    bscores = {b.name: 0.1 for b in spec.blocks}
    with pytest.raises(RedsError, match="not 'joint'"):
        depth.solve(spec, scores, bscores, [0.5, 1.0], "joint")
    with pytest.raises(RedsError, match="no value for the block"):
        depth.solve(spec, scores, {}, [0.5, 1.0])
    with pytest.raises(RedsError, match="1 sets of block values for 2 budgets"):
        depth.solve(spec, scores, [bscores], [0.5, 1.0])
    cnn = build_spec("cnn-s", (1, 49, 10), 12, width_mult=0.25)
    with pytest.raises(RedsError, match="no skippable blocks"):
        depth.solve(cnn, _random_scores(cnn, random.Random(0)), {}, [0.5, 1.0])


def test_block_importance_is_zero_for_a_block_that_changes_nothing():
    torch.manual_seed(0)
    spec = build_spec(RESIDUAL, (1, 28, 28), 10, width_mult=0.5)
    net = NestedNet(spec).eval()
    first, second = spec.blocks
    # the first residual body ends in a batch norm: zero it, and the body adds exactly 0
    last_bn = max((l for l in spec.layers[first.start:first.stop + 1] if isinstance(l.op, BatchNorm)),
                  key=lambda l: l.index)
    with torch.no_grad():
        net.layers[last_bn.name][0].weight.zero_()
        net.layers[last_bn.name][0].bias.zero_()
    gen = torch.Generator().manual_seed(0)
    batches = [(torch.randn(8, 1, 28, 28, generator=gen), torch.randint(0, 10, (8,), generator=gen))
               for _ in range(3)]
    scores = {g.name: torch.linspace(1, 0.1, g.units, dtype=torch.float64) for g in spec.groups}
    before = {k: v.clone() for k, v in net.state_dict().items()}
    full = spec.full_widths()
    subs = [{g: max(1, n // 4) for g, n in full.items()}, {g: max(1, n // 2) for g, n in full.items()}, full]
    out = block_scores(net, batches, scores, subs)
    assert all(torch.equal(v, before[k]) for k, v in net.state_dict().items())  # statistics restored
    assert len(out) == 3 and all(set(o) == {first.name, second.name} for o in out)
    assert all(o[first.name] == 0.0 for o in out)
    assert all(o[second.name] > 0 for o in out)
    # on the unit-score scale: scaling every unit score scales a block's value alike
    doubled = block_scores(net, batches, {g: 2 * s for g, s in scores.items()}, subs)
    assert [d[second.name] for d in doubled] == pytest.approx([2 * o[second.name] for o in out])
    assert not net.training


def test_cli_train_depth_on_writes_a_family_that_skips_blocks(synth_kws, tmp_path, capsys):
    out = tmp_path / "fam"
    rc = main(["train", "--arch", "dscnn-s", "--dataset", "synth-kws", "--data-dir", str(synth_kws),
               "--limit-train", "600", "--limit-eval", "200", "--epochs", "1", "--finetune-epochs", "1",
               "--importance-batches", "3", "--width", "0.25", "--budgets", "0.1,0.5,1.0", "--depth", "on",
               "--quiet", "--out", str(out)])
    assert rc == 0
    fam, net = fam_io.load(out)  # the manifest checks nesting in depth and the alias widths
    spec = fam.spec()
    assert fam.knapsack["depth"] == "on"
    assert [set(v) for v in fam.knapsack["block_scores"]] == [{b.name for b in spec.blocks}] * len(fam.submodels)
    for s in fam.submodels:
        assert set(s.widths) == set(spec.group_names) | {b.name for b in spec.blocks}
        assert s.macs == cost(spec, s.widths).macs <= s.budget * fam.submodels[-1].macs
    text = capsys.readouterr().out
    # the family table names the skipped blocks when a submodel skips one
    assert ("skips" in text) == any(spec.skipped(s.widths) for s in fam.submodels)
    assert main(["train", "--arch", "dscnn-s", "--dataset", "synth-kws", "--data-dir", str(synth_kws),
                 "--depth", "on", "--knapsack", "joint", "--out", str(tmp_path / "x")]) != 0
    assert "--depth on runs the bottom-up or top-down knapsack" in capsys.readouterr().err


def test_depth_settings_are_checked():
    from reds.train import TrainConfig

    with pytest.raises(RedsError, match="depth must be one of: off, on"):
        TrainConfig(arch="dscnn-s", dataset="synth-kws", depth="yes")
    with pytest.raises(RedsError, match="block importance must be one of: loss, none"):
        TrainConfig(arch="dscnn-s", dataset="synth-kws", depth="on", block_importance="grad")
    with pytest.raises(RedsError, match="runs the bottom-up or top-down knapsack, not joint"):
        TrainConfig(arch="dscnn-s", dataset="synth-kws", depth="on", knapsack="joint")


def test_layer_drop_skips_blocks_at_its_rate_with_valid_widths():
    from reds.train.trainer import _drop_blocks

    spec = build_spec("dscnn-s", (1, 49, 10), 12, width_mult=0.25)
    full = spec.full_widths()
    gen = torch.Generator().manual_seed(0)
    draws = [_drop_blocks(spec, full, 0.25, gen) for _ in range(400)]
    for w in draws[:20]:
        assert spec.check_widths(w)  # a skipped block's alias is at its input's width
    rate = sum(len(spec.skipped(w)) for w in draws) / (400 * len(spec.blocks))
    assert 0.2 < rate < 0.3
    again = torch.Generator().manual_seed(0)
    assert [_drop_blocks(spec, full, 0.25, again) for _ in range(400)] == draws  # seeded: a resumed run repeats it
    assert all(not spec.skipped(_drop_blocks(spec, full, 0.0, gen)) for _ in range(20))


def test_layer_drop_setting_is_checked(capsys):
    from reds.train import TrainConfig

    with pytest.raises(RedsError, match=r"layer drop must be a probability in \[0, 1\)"):
        TrainConfig(arch="dscnn-s", dataset="synth-kws", layer_drop=1.0)
    with pytest.raises(SystemExit):
        main(["train", "--arch", "dscnn-s", "--dataset", "synth-kws", "--out", "x", "--layer-drop", "1.5"])
    assert "must be in [0, 1)" in capsys.readouterr().err


def test_pretraining_drops_blocks_afresh_every_batch(synth_kws, tmp_path, monkeypatch):
    """Each pretraining step skips each block with probability p, drawn from the full
    widths again (not from the last step's)."""
    from reds.train import TrainConfig, Trainer

    seen = []
    forward = NestedNet.forward

    def spy(self, x, widths=None, bn=0):
        if widths is not None and "skip_dw1" in widths and torch.is_grad_enabled():
            seen.append([widths[b.name] for b in self.spec.blocks])
        return forward(self, x, widths, bn)

    monkeypatch.setattr(NestedNet, "forward", spy)
    cfg = TrainConfig(arch="dscnn-s", dataset="synth-kws", data_dir=str(synth_kws), epochs=1, finetune_epochs=0,
                      batch_size=4, importance_batches=2, width_mult=0.25, limit_train=600, limit_eval=50,
                      layer_drop=0.25, seed=1)
    Trainer(cfg, tmp_path / "fam", progress=False, log=lambda m: None).run()
    draws = [v for row in seen for v in row]
    assert len(seen) >= 20
    assert 0.1 < draws.count(0) / len(draws) < 0.45
    assert any(a[i] == 0 and b[i] == 1 for a, b in zip(seen, seen[1:]) for i in range(len(a)))
