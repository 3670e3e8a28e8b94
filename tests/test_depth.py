"""Elastic depth in the spec, the nested modules, the plain models and the cost model: a
submodel that skips a block is exactly the shallower network built plainly."""
from __future__ import annotations

import pytest
import torch

from reds.errors import RedsError
from reds.ir import archfile
from reds.ir.archs import build_spec
from reds.ir.cost import cost
from reds.nn.nested import NestedNet
from reds.nn.plain import plain_model
from tests.families import RESIDUAL

CASES = [("dscnn-s", (1, 49, 10)), ("dscnn-s-img", (1, 28, 28)), (RESIDUAL, (3, 32, 32))]


def _skip(spec, widths, names):
    w = dict(widths)
    for b in spec.blocks:
        if b.name in names:
            w[b.name] = 0
            if b.alias:
                w[b.alias] = w[b.in_group]
    return w


def test_ds_and_residual_blocks_are_inferred():
    ds = build_spec("dscnn-s", (1, 49, 10), 12)
    assert [b.name for b in ds.blocks] == ["skip_dw1", "skip_dw2", "skip_dw3", "skip_dw4"]
    assert all(b.alias == b.out_group != b.in_group for b in ds.blocks)
    res = build_spec(RESIDUAL, (3, 32, 32), 10)
    assert res.blocks and all(b.alias is None and b.in_group == b.out_group for b in res.blocks)
    assert build_spec("cnn-s", (1, 49, 10), 12).blocks == ()  # no block keeps its input's shape


@pytest.mark.parametrize("arch,shape", CASES, ids=lambda v: str(v).split("/")[-1])
def test_skipping_is_exact_against_the_shallower_network(arch, shape):
    torch.manual_seed(0)
    spec = build_spec(arch, shape, 5, width_mult=0.25)
    net = NestedNet(spec).eval()
    x = torch.randn(3, *shape)
    for names in ([spec.blocks[0].name], [b.name for b in spec.blocks[1:]]):
        w = _skip(spec, spec.full_widths(), names)
        shallow = spec.shallow(w)
        ref = NestedNet(shallow).eval()
        ref.load_state_dict({k: v for k, v in net.state_dict().items() if k.split(".")[1] in ref.layers})
        ws = {g: w[g] for g in shallow.group_names}
        with torch.no_grad():
            y = net(x, w)
            assert torch.equal(y, ref(x, ws))
            assert torch.equal(y, plain_model(net, w)(x))
            assert not torch.equal(y, net(x, spec.full_widths()))  # the skip changed something
        assert cost(spec, w).as_dict() == cost(shallow, ws).as_dict()
        assert cost(spec, w).macs < cost(spec, spec.full_widths()).macs


def test_a_skipped_block_needs_its_alias_at_the_input_width():
    spec = build_spec("dscnn-s", (1, 49, 10), 12, width_mult=0.5)
    w = spec.full_widths()
    w["g1"] = w["g0"] - 1
    w["skip_dw2"] = 0  # reads g1, writes g2: g2 must then be g1's width
    with pytest.raises(ValueError, match="g2 must have the width of g1"):
        spec.check_widths(w)
    with pytest.raises(ValueError, match="1 .runs. or 0"):
        spec.check_widths({**spec.full_widths(), "skip_dw2": 2})


def test_an_architecture_file_names_its_blocks(tmp_path):
    doc = archfile.check({"format": "reds-arch", "version": 1, "name": "t", "ops": [
        {"op": "conv2d", "name": "c0", "out": 8, "kernel": 3, "padding": "same"},
        {"op": "relu", "name": "r0"},
        {"op": "conv2d", "name": "c1", "out": 8, "kernel": 3, "padding": "same"},
        {"op": "relu", "name": "r1"},
        {"op": "flatten", "name": "f"}, {"op": "dense", "name": "d", "out": "classes"}],
        "skippable": [{"name": "mid", "first": "c1", "last": "r1"}]})
    spec = archfile.to_spec(doc, (1, 6, 6), 3)
    assert [(b.name, b.start, b.stop, b.alias) for b in spec.blocks] == [("mid", 2, 3, "c1")]
    bad = dict(doc, skippable=[{"name": "x", "first": "c0", "last": "r1"}])  # reads the input's channels
    with pytest.raises(RedsError, match="must read and write unit groups"):
        archfile.to_spec(bad, (1, 6, 6), 3)
    with pytest.raises(RedsError, match="mapping of exactly name, first and last"):
        archfile.check(dict(doc, skippable=[{"name": "x"}]))
