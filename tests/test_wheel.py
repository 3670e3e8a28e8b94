"""The wheel carries everything `reds build` and `reds bench` need.

The project's wheel is built from a copy of this tree, installed (not editable) into a
new virtual environment outside the checkout, and its `reds` builds a family for the
virtual Cortex-M4 and benches it there. The new environment takes reds from the wheel
only; its dependencies (torch, onnx, ...) are the test environment's, reached through a
path file, so the test needs no network. It checks that the C sources came from the
installed package, not from this checkout.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

from families import make_family
from reds import DISTRIBUTION
from reds.build.boards import get_board
from reds.build.tools import missing_toolchain
from reds.device.emulator import check_emulator
from reds.errors import RedsError

ROOT = Path(__file__).resolve().parents[1]
# what a copy of the tree leaves out: at its top, environments and outputs; anywhere, caches
SKIP_TOP = {".git", ".venv", "build", "runs", "data", "out", ".pytest_cache", ".hypothesis"}
SKIP_ANY = {"__pycache__", "_c"}


def _ignore(folder, names):
    top = Path(folder) == ROOT
    return [n for n in names if n in SKIP_ANY or n.endswith(".egg-info") or (top and n in SKIP_TOP)]


def _needs_board():
    board = get_board("qemu-m4")
    why = missing_toolchain(board)
    if why:
        pytest.skip(why)
    try:
        check_emulator(board)
    except RedsError as e:
        pytest.skip(str(e))


@pytest.fixture(scope="module")
def wheel_env(tmp_path_factory):
    _needs_board()
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    shutil.copytree(ROOT, src, ignore=_ignore)
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                        str(tmp / "dist"), str(src)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    wheels = list((tmp / "dist").glob("*.whl"))
    assert [w.name.split("-")[0] for w in wheels] == [DISTRIBUTION.replace("-", "_")]
    env = tmp / "venv"
    venv.create(env, with_pip=False)
    py = env / "bin" / "python"
    site = Path(subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    # the wheel's files, unpacked as pip would (pip is not in the new venv: no network, no cache)
    r = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--target",
                        str(site), "--no-compile", str(wheels[0])], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    deps = sysconfig.get_paths()["purelib"]  # torch, onnx, ... of this environment
    (site / "zz-test-deps.pth").write_text(deps + "\n")
    (env / "bin" / "reds").write_text(f"#!{py}\nimport sys\nfrom reds.cli import main\nsys.exit(main())\n")
    (env / "bin" / "reds").chmod(0o755)
    shutil.rmtree(src)  # nothing of the checkout is left to fall back on
    return env, site


def test_installed_package_has_its_c_sources(wheel_env, tmp_path):
    env, site = wheel_env
    r = subprocess.run([str(env / "bin" / "python"), "-c", "import reds, reds.sources as s; "
                        "print(reds.__file__); print(s.c_root())"], capture_output=True, text=True, cwd=tmp_path,
                       env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    assert r.returncode == 0, r.stderr
    pkg, c_root = r.stdout.split()
    assert Path(pkg).is_relative_to(site) and Path(c_root) == site / "reds" / "_c"
    assert (Path(c_root) / "firmware" / "src" / "kernels" / "reference" / "conv2d_f32.c").is_file()
    assert (Path(c_root) / "boards" / "qemu-m4" / "board.json").is_file()


def test_installed_reds_builds_and_benches(wheel_env, tmp_path):
    env, _ = wheel_env
    fam = make_family(tmp_path, "dscnn-s", 0.25)
    run_env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    reds = str(env / "bin" / "reds")
    r = subprocess.run([reds, "build", str(fam), "--board", "qemu-m4", "--out", str(tmp_path / "b")],
                       capture_output=True, text=True, cwd=tmp_path, env=run_env, timeout=600)
    assert r.returncode == 0, r.stderr
    assert "built" in r.stdout and (tmp_path / "b" / "firmware.elf").is_file()
    r = subprocess.run([reds, "bench", str(fam), "--build", str(tmp_path / "b"), "--runs", "2", "--json",
                        str(tmp_path / "bench.json")], capture_output=True, text=True, cwd=tmp_path, env=run_env,
                       timeout=600)
    assert r.returncode == 0, r.stderr
    rep = json.loads((tmp_path / "bench.json").read_text())
    assert rep["outputs_match"] and rep["board"] == "qemu-m4" and len(rep["submodels"]) == 3
