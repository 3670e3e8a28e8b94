"""Architecture files: the built-in ones reproduce today's networks exactly, groups are
inferred from how layers connect (an add ties its inputs), bad files are refused in one
line naming the file and the op, and a family keeps its architecture document."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

from reds.errors import RedsError
from reds.ir import archfile
from reds.ir.archs import ARCHS, build_spec, dataset_shape, get_arch
from reds.ir.cost import cost
from reds.nn.nested import NestedNet

sys.path.insert(0, str(Path(__file__).parent))
from reference_archs import BUILDERS  # noqa: E402

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "mobilenetv2-tiny.yaml"


@pytest.mark.parametrize("name", list(ARCHS))
def test_builtin_file_equals_todays_network(name):
    a = ARCHS[name]
    shape, classes = dataset_shape(name, a.default_dataset)
    ref = BUILDERS[name](shape, classes)
    spec = build_spec(name)
    assert spec.ops == ref.ops and spec.groups == ref.groups
    assert cost(spec, spec.full_widths()) == cost(ref, ref.full_widths())
    torch.manual_seed(0)
    net_ref = NestedNet(ref).eval()
    net = NestedNet(spec).eval()
    net.load_state_dict(net_ref.state_dict())  # same names, same shapes
    x = torch.randn(2, *shape)
    with torch.no_grad():
        assert torch.equal(net(x), net_ref(x))


def _doc(ops, **top):
    return {"format": "reds-arch", "version": 1, "name": "t", "ops": ops, **top}


CONV = {"op": "conv2d", "name": "c1", "out": 8, "kernel": 3, "padding": "same"}
HEAD = [{"op": "avg_pool", "name": "pool"}, {"op": "flatten", "name": "flat"},
        {"op": "dense", "name": "fc", "out": "classes"}]


def test_groups_are_inferred_and_adds_tie_them():
    ops = [CONV, {"op": "relu", "name": "r1"},
           {"op": "conv2d", "name": "c2", "out": 8, "kernel": 1},
           {"op": "add", "name": "a1", "from": "r1"},
           {"op": "conv2d", "name": "c3", "out": 6, "kernel": 1, "min_units": 3}, *HEAD]
    spec = archfile.to_spec(archfile.check(_doc(ops)), (1, 8, 8), 4)
    assert [(g.name, g.units, g.min_units) for g in spec.groups] == [("c1", 8, 2), ("c3", 6, 3)]
    assert spec.layers[2].out_ch == "c1"  # c2 produces c1's group: the add joined them
    assert spec.skips[0][0].name == "r1" and spec.skips[0][1].name == "a1"


def test_an_add_joined_to_the_input_keeps_full_width():
    ops = [{"op": "conv2d", "name": "c1", "out": 3, "kernel": 1}, {"op": "add", "name": "a", "from": "c1"},
           {"op": "conv2d", "name": "c2", "out": 3, "kernel": 1}, {"op": "add", "name": "b", "from": "a"}, *HEAD]
    # c1 is joined with c2 only; nothing ties to the 3 input channels: one group
    spec = archfile.to_spec(archfile.check(_doc(ops)), (3, 4, 4), 2)
    assert [g.name for g in spec.groups] == ["c1"]
    ops = [{"op": "relu", "name": "r"}, {"op": "conv2d", "name": "c1", "out": 3, "kernel": 1},
           {"op": "add", "name": "a", "from": "r"}, *HEAD]
    spec = archfile.to_spec(archfile.check(_doc(ops)), (3, 4, 4), 2)
    assert spec.groups == () and spec.layers[1].out_ch == 3  # fixed: the input's channels


@pytest.mark.parametrize("ops, match", [
    ([{"op": "gelu", "name": "g"}], r"ops\[0\] \(g\): unsupported op 'gelu'"),
    ([{"op": "conv2d", "name": "c"}], r"conv2d needs out, kernel"),
    ([{**CONV, "dilation": 2}], r"unknown key\(s\) dilation"),
    ([{**CONV, "kernel": [3]}], r"kernel must be"),
    ([{**CONV, "padding": "full"}], r"padding must be"),
    ([{**CONV, "name": "1x"}], r"must be an identifier"),
    ([CONV, {"op": "add", "name": "a", "from": "nope"}, *HEAD], r"adds 'nope', which is not an earlier op"),
    ([CONV, {"op": "conv2d", "name": "c2", "out": 4, "kernel": 1}, {"op": "add", "name": "a", "from": "c1"}, *HEAD],
     r"adds tensors of 8 and 4 channels"),
    ([CONV, {"op": "conv2d", "name": "c2", "out": 8, "kernel": 3, "stride": 2, "padding": "same"},
      {"op": "add", "name": "a", "from": "c1"}, *HEAD], r"to a tensor of another shape"),
    ([CONV, {"op": "relu", "name": "r"}, {"op": "conv2d", "name": "c2", "out": 8, "kernel": 1},
      {"op": "add", "name": "a", "from": "c1"}, {"op": "add", "name": "b", "from": "r"}, *HEAD], r"must nest"),
    ([CONV], r"the last layer must be a dense layer"),
])
def test_bad_architectures_are_refused(ops, match):
    with pytest.raises(RedsError, match=match):
        archfile.to_spec(archfile.check(_doc(ops)), (1, 8, 8), 3)


def test_bad_files_name_the_file(tmp_path):
    p = tmp_path / "a.json"
    p.write_text('{"format": "reds-arch", "version": 1,\n "name": "x" "ops": []}')
    with pytest.raises(RedsError, match=rf"{p}: not valid JSON \(line 2"):
        archfile.load(p)
    y = tmp_path / "a.yaml"
    y.write_text("format: reds-arch\nops: [\n  {op: relu\n")
    with pytest.raises(RedsError, match=rf"{y}: not valid YAML at line"):
        archfile.load(y)
    y.write_text("format: something-else\n")
    with pytest.raises(RedsError, match="not a reds architecture file"):
        archfile.load(y)
    with pytest.raises(RedsError, match="architecture file not found"):
        get_arch(str(tmp_path / "missing.json"))
    with pytest.raises(RedsError, match="unknown architecture 'dscnn-xl'"):
        get_arch("dscnn-xl")


def test_json_and_yaml_read_the_same(tmp_path):
    doc = archfile.load(EXAMPLE)
    p = tmp_path / "same.json"
    p.write_text(archfile.dumps(doc))
    assert archfile.load(p) == doc
    assert json.loads(p.read_text())["ops"] == doc["ops"]


def test_a_family_keeps_its_architecture(tmp_path):
    """A family of a file's network opens (spec, weights) after the file is gone."""
    from reds import family as fam_io
    from tests.families import make_family

    arch = tmp_path / "net.yaml"
    arch.write_text(EXAMPLE.read_text())
    fam_dir = make_family(tmp_path, str(arch), 0.5)
    arch.unlink()
    f = fam_io.open(fam_dir)
    assert f.manifest.version == 3 and f.manifest.architecture["name"] == "mobilenetv2-tiny"
    assert f.spec.skips and f.net is not None
    d = json.loads((fam_dir / "family.json").read_text())
    d["architecture"]["ops"][11]["from"] = "nothing"  # a tampered document is refused
    (fam_dir / "family.json").write_text(json.dumps(d))
    with pytest.raises(RedsError, match="adds 'nothing'"):
        fam_io.open(fam_dir)
