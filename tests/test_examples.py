"""The examples run as their READMEs say: examples/own-model/ goes from a PyTorch module
and a folder of PNGs to a family benched on the virtual Cortex-M4, through the CLI.

Checked: the import infers the residual's shared group and keeps PyTorch's strided pads;
the trained family learns (its largest submodel beats chance on held-out images); its
ONNX export reads raw pixels and matches PyTorch; on QEMU every submodel's outputs match
PyTorch and switching costs a few cycles (skipped, naming the packages, without QEMU).
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from reds.build.boards import get_board
from reds.build.tools import missing_toolchain
from reds.cli import main
from reds.export.onnx import run_onnx
from reds.family import open as open_family

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "own-model"
HAVE_QEMU = shutil.which("qemu-system-arm") is not None and not missing_toolchain(get_board("qemu-m4"))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("own-model")
    r = subprocess.run([sys.executable, str(EXAMPLE / "make_shapes.py"), str(tmp / "shapes"), "--per-class", "80"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    arch = tmp / "tiny-resnet.json"
    assert main(["import-model", f"{EXAMPLE / 'model.py'}:TinyResNet", "--out", str(arch),
                 "--input-shape", "1,32,32"]) == 0
    fam = tmp / "tiny"
    assert main(["train", "--arch", str(arch), "--dataset", "folder", "--data-dir", str(tmp / "shapes"),
                 "--out", str(fam), "--budgets", "0.25,0.5,1.0", "--epochs", "8", "--finetune-epochs", "2",
                 "--threads", "1", "--quiet"]) == 0
    return tmp, arch, fam


def test_import_infers_the_residual_group(trained):
    _, arch, _ = trained
    doc = json.loads(arch.read_text())
    ops = {op["name"]: op for op in doc["ops"]}
    assert [op["op"] for op in doc["ops"]].count("add") == 1
    assert ops["stem"]["padding"] == [1, 1, 1, 1] and ops["stem"]["stride"] == [2, 2]
    spec = open_family(trained[2]).spec
    assert spec.group_names == ["stem", "conv1"]  # conv2 joined the stem's group through the add
    assert {l.name: l.out_ch for l in spec.layers}["conv2"] == "stem"


def test_the_family_learns_and_records_its_input(trained):
    f = open_family(trained[2])
    subs = f.submodels
    assert [s.budget for s in subs] == [0.25, 0.5, 1.0]
    assert subs[-1].accuracy > 40.0, [s.accuracy for s in subs]  # 4 classes: chance is 25 %
    norm = f.input_norm
    assert norm is not None and norm.axis == "channel" and len(norm.mean) == 1


def test_onnx_reads_raw_pixels(trained, tmp_path):
    tmp, _, fam = trained
    assert main(["export", str(fam), "--format", "onnx", "--out", str(tmp_path / "onnx")]) == 0
    f = open_family(fam)
    pixels = np.random.default_rng(0).random((3, 1, 32, 32)).astype(np.float32)  # raw: [0, 1]
    for k in range(len(f.submodels)):
        with torch.no_grad():
            ref = f.logits(torch.from_numpy(pixels), k).numpy()
        got = run_onnx(tmp_path / "onnx" / f"submodel_{k}.onnx", pixels)
        assert np.abs(got - ref).max() < 1e-4


@pytest.mark.skipif(not HAVE_QEMU, reason="needs qemu-system-arm gcc-arm-none-eabi libnewlib-arm-none-eabi")
def test_bench_on_the_virtual_board(trained, tmp_path):
    _, _, fam = trained
    out = tmp_path / "bench.json"
    assert main(["bench", str(fam), "--board", "qemu-m4", "--build", str(tmp_path / "m4"), "--runs", "2",
                 "--json", str(out)]) == 0
    rep = json.loads(out.read_text())
    assert rep["outputs_match"]
    assert [r["macs"] for r in rep["submodels"]] == [s.macs for s in open_family(fam).submodels]
    assert all(r["argmax_match"] for r in rep["submodels"])
