"""TFLite export, for every architecture: each `submodel_<k>.tflite` equals PyTorch.

Checked with two independent executors of the same files: LiteRT (`ai-edge-litert`, or
`tflite-runtime`) and TensorFlow Lite Micro's reference kernels (`tflite-micro`), each
within 1e-4 of NestedNet (eval, widths of submodel k, its own BN state), same argmax.
Needs the optional extra `tflite` (`pip install '.[tflite]'` in the source tree); without it these tests skip,
and the export fails with one line naming the extra (tested here without the extra).
Conversion takes seconds per graph, so these families have two submodels.
"""
from __future__ import annotations

import builtins
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from families import RESIDUAL, arch_id, make_family, shared_family
from reds import DISTRIBUTION
from reds.cli import main
from reds.errors import RedsError
from reds.export import export
from reds.export.tflite import EXTRA
from reds.family import load, open as open_family
from reds.ir.archs import ARCHS

torch.set_num_threads(1)  # one intra-op thread per xdist worker (see test_export_c.py)

ATOL = 1e-4
ALL = [*ARCHS, RESIDUAL]
WIDTH = {a: 0.25 for a in ALL} | {"dscnn-l": 0.125, "dnn-l": 0.125}
BUDGETS = (0.4, 1.0)


def _has(module: str) -> bool:
    try:
        __import__(module)
        return True
    except Exception:
        return False


needs_extra = pytest.mark.skipif(
    not _has("litert_torch"), reason=EXTRA)


def tflm_run(path, x: np.ndarray, arena_size: int) -> np.ndarray:
    import tflite_micro

    it = tflite_micro.runtime.Interpreter.from_file(str(path), arena_size=arena_size)
    out = []
    for sample in x:
        it.set_input(sample[None], 0)
        it.invoke()
        out.append(it.get_output(0)[0].copy())
    return np.stack(out)


# every architecture, and one family whose graphs start with its input normalisation
NORMALISED = "dscnn-s+norm"


@needs_extra
@pytest.mark.parametrize("arch", [*ALL, NORMALISED], ids=arch_id)
def test_tflite_matches_pytorch(arch, tmp_path, tmp_path_factory):
    if arch == NORMALISED:
        rng = np.random.default_rng(5)
        norm = {"axis": "width", "mean": rng.normal(0, 5, 10).tolist(), "std": rng.uniform(0.5, 4, 10).tolist()}
        d = make_family(tmp_path, "dscnn-s", WIDTH["dscnn-s"], budgets=BUDGETS, input_norm=norm)
    else:
        d = shared_family(tmp_path_factory, arch, WIDTH[arch], budgets=BUDGETS)
    fam, net = load(d)
    out = tmp_path / "tflite"
    m = export(open_family(d), "tflite", out)
    assert m["files"] == [f"submodel_{k}.tflite" for k in range(len(fam.submodels))]
    assert json.loads((out / "manifest.json").read_text())["family_hash"] == open_family(d).hash
    x = np.random.default_rng(0).normal(size=(4, *fam.input_shape)).astype(np.float32)
    print(f"{arch}: " + ", ".join(check_tflite(d, out, x)))


def check_tflite(d: Path, out: Path, x: np.ndarray) -> list[str]:
    """Every submodel's file in `out`, run by each TFLite interpreter installed (the test skips
    without one) on x (made raw features of the family's range), against PyTorch: within
    ATOL, same argmax. Returns one "who[k] diff" per run."""
    from reds.export.tflite import interpreter_class, run_tflite

    fam, _ = load(d)
    litert = interpreter_class()
    have_tflm = _has("tflite_micro")
    if litert is None and not have_tflm:
        pytest.skip("no TFLite interpreter: pip install ai-edge-litert tflite-micro")
    report = []
    opened = open_family(d)
    if opened.input_norm is not None:  # raw features in, of the family's own range
        x = opened.input_norm.invert(x)
    for k, s in enumerate(fam.submodels):
        with torch.no_grad():
            ref = opened.logits(torch.from_numpy(x), k).numpy()
        path = out / f"submodel_{k}.tflite"
        runs = {}
        if litert is not None:
            runs["litert"] = run_tflite(path, x, litert)
        if have_tflm:  # activations, the model's transposes and bookkeeping: a generous arena
            runs["tflm"] = tflm_run(path, x, arena_size=8 * s.arena_bytes + (64 << 10))
        for who, got in runs.items():
            diff = float(np.abs(got - ref).max())
            assert diff <= ATOL, f"submodel {k}: max |{who} - PyTorch| = {diff:.3g}"
            assert (got.argmax(1) == ref.argmax(1)).all(), f"submodel {k}: {who} argmax differs"
            report.append(f"{who}[{k}] {diff:.2g}")
    return report


def test_missing_extra_is_one_clear_line(tmp_path, tmp_path_factory, monkeypatch, capsys):
    real_import = builtins.__import__

    def no_litert(name, *args, **kwargs):
        if name == "litert_torch" or name.startswith("litert_torch."):
            raise ImportError("No module named 'litert_torch'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_litert)
    d = shared_family(tmp_path_factory, "dnn-s", WIDTH["dnn-s"], budgets=BUDGETS)
    out = tmp_path / "out"
    with pytest.raises(RedsError, match=r"pip install litert-torch ai-edge-litert"):
        export(open_family(d), "tflite", out)
    assert main(["export", str(d), "--format", "tflite", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"reds: error: {EXTRA}"]
    assert not out.exists()


def test_install_hint_names_what_installs():
    """The packages the hint names are the project's own tflite extra, under its distribution
    name (`reds` on the package index is another project)."""
    import tomllib

    meta = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())["project"]
    extra = {re.split(r"[<>=!~\[ ]", r)[0] for r in meta["optional-dependencies"]["tflite"]}
    named = set(re.search(r"pip install ([\w\- ]+?) \(", EXTRA).group(1).split())
    assert named <= extra and meta["name"] == DISTRIBUTION != "reds" and DISTRIBUTION in EXTRA
