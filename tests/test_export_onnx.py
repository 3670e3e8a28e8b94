"""ONNX export, for every architecture: one checked graph per submodel, equal to PyTorch.

Each `submodel_<k>.onnx` passes `onnx.checker.check_model(full_check=True)`, carries the
family's hash, and run by onnxruntime on a batch (the batch axis is dynamic) gives the
outputs of NestedNet (eval, widths of submodel k, its own BN state) within 1e-5.

The one qualification: float32 itself. Two correct float32 implementations differ by
their rounding, and in a deep normalising net (MobileNetV1: 27 batch norms) rounding
grows to ~1e-5 relative at the logits: there PyTorch float32 is itself ~2e-5 away from
the float64 result. So the bound is max(1e-5, 2 x PyTorch's own float32 error), measured
per submodel against float64; for every other architecture that is 1e-5.
"""
from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch

from families import RESIDUAL, arch_id, make_family, shared_family
from reds.errors import RedsError
from reds.export import export
from reds.export.onnx import run_onnx
from reds.family import load, open as open_family
from reds.ir.archs import ARCHS, build_spec
from reds.ir.inputs import InputNorm

torch.set_num_threads(1)  # one intra-op thread per xdist worker (see test_export_c.py)

ATOL = 1e-5
ALL = [*ARCHS, RESIDUAL]
WIDTH = {a: 0.25 for a in ALL} | {"dscnn-l": 0.125, "dnn-l": 0.125}


def check_onnx(family_dir, out, x: np.ndarray) -> list[float]:
    import onnx

    fam, net = load(family_dir)
    net64 = copy.deepcopy(net).double()
    m = json.loads((out / "manifest.json").read_text())
    norm = open_family(family_dir).input_norm  # the graphs take raw features
    xin = torch.from_numpy(x) if norm is None else norm.apply(torch.from_numpy(x).double())
    diffs = []
    for k, s in enumerate(fam.submodels):
        path = out / f"submodel_{k}.onnx"
        model = onnx.load(str(path))
        onnx.checker.check_model(model, full_check=True)
        props = {p.key: p.value for p in model.metadata_props}
        assert props["reds_family_hash"] == open_family(family_dir).hash and props["reds_submodel"] == str(k)
        assert model.opset_import[0].version == 17
        got = run_onnx(path, x)
        with torch.no_grad():
            ref = net(xin.float(), s.widths, bn=k).numpy()
            exact = net64(xin.double(), s.widths, bn=k).numpy()
        tol = max(ATOL, 2 * float(np.abs(ref - exact).max()))
        diff = float(np.abs(got - ref).max())
        assert diff <= tol, f"submodel {k}: max |onnxruntime - PyTorch| = {diff:.3g} > {tol:.3g}"
        assert (got.argmax(1) == ref.argmax(1)).all()
        assert m["submodels"][k]["file"] == path.name and m["submodels"][k]["macs"] == s.macs
        diffs.append(diff)
    return diffs


@pytest.mark.parametrize("arch", ALL, ids=arch_id)
def test_onnx_matches_pytorch(arch, tmp_path, tmp_path_factory):
    d = shared_family(tmp_path_factory, arch, WIDTH[arch])
    fam, _ = load(d)
    out = tmp_path / "onnx"
    m = export(open_family(d), "onnx", out)
    assert sorted(p.name for p in out.iterdir()) == sorted(m["files"] + ["manifest.json"])
    assert m["files"] == [f"submodel_{k}.onnx" for k in range(len(fam.submodels))]
    assert [s["budget"] for s in m["submodels"]] == [s.budget for s in fam.submodels]
    assert m["family_hash"] == open_family(d).hash and m["export_format"] == "onnx"
    x = np.random.default_rng(0).normal(size=(8, *fam.input_shape)).astype(np.float32)
    diffs = check_onnx(d, out, x)
    print(f"{arch}: max |onnxruntime - PyTorch| per submodel: " + ", ".join(f"{v:.2g}" for v in diffs))


@pytest.mark.parametrize("arch, axis", [("dscnn-s", "width"), ("mobilenetv1-025", "channel")])
def test_onnx_normalises_raw_inputs(arch, axis, tmp_path):
    """The graphs of a family with an input normalisation start with it: raw features in."""
    shape = build_spec(arch).input_shape
    n = shape[2] if axis == "width" else shape[0]
    rng = np.random.default_rng(5)
    norm = {"axis": axis, "mean": rng.normal(0, 5, n).tolist(), "std": rng.uniform(0.5, 4, n).tolist()}
    d = make_family(tmp_path, arch, WIDTH[arch], input_norm=norm)
    export(open_family(d), "onnx", tmp_path / "onnx")
    raw = InputNorm.from_json(norm).invert(rng.normal(size=(4, *shape)).astype(np.float32))
    check_onnx(d, tmp_path / "onnx", raw)
    fam, net = load(d)
    with torch.no_grad():  # not a no-op: the raw inputs alone give other logits
        plain = net(torch.from_numpy(raw), fam.submodels[0].widths, bn=0).numpy()
    assert np.abs(plain - run_onnx(tmp_path / "onnx" / "submodel_0.onnx", raw)).max() > 1e-2


def test_onnx_fmnist_real_inputs(tmp_path, tmp_path_factory):
    from reds.data import load as load_data
    try:
        ds = load_data("fmnist")
    except RedsError as e:
        pytest.skip(f"Fashion-MNIST not available ({e})")
    d = shared_family(tmp_path_factory, "dscnn-s-img", WIDTH["dscnn-s-img"])
    export(open_family(d), "onnx", tmp_path / "onnx")
    diffs = check_onnx(d, tmp_path / "onnx", next(ds.batches("test", 64))[0].numpy())
    print("dscnn-s-img on Fashion-MNIST: " + ", ".join(f"{v:.2g}" for v in diffs))
