"""A hostile user's families: every command that reads a family refuses each one cleanly.

A corpus of damaged families (written here from one small good family: malformed and
hostile JSON, wrong types, numbers the cost model contradicts, strings aimed at the
generated C, damaged and foreign weights, missing files and folders) is run through
`info`, `eval`, `export --format c`, `export --format onnx`, `build`, `bench` and `report`,
each writing into a folder that already holds a good output. For every run: exit code 2,
exactly one line `reds: error: ...` on stderr, no traceback, and the output folder
byte-identical afterwards. The test prints the counts (cases tried, refused cleanly,
tracebacks, outputs modified).
"""
from __future__ import annotations

import copy
import errno
import json
import os
import shutil
import traceback
from pathlib import Path

import pytest

from families import make_family
from reds.build.boards import get_board
from reds.build.tools import missing_toolchain
from reds.cli import main
from reds.device.emulator import check_emulator
from reds.errors import RedsError
from reds.export.c.literals import c_comment
from reds.family import open as open_family, save


def edit(fn):
    """A damage that rewrites family.json: fn(d) changes the decoded manifest in place."""
    def damage(fam: Path):
        d = json.loads((fam / "family.json").read_text())
        fn(d)
        (fam / "family.json").write_text(json.dumps(d))
    return damage


def text(s: str):
    def damage(fam: Path):
        (fam / "family.json").write_text(s)
    return damage


def raw(fn):
    def damage(fam: Path):
        fn(fam)
    return damage


def sub(k, key, value):
    return edit(lambda d: d["submodels"][k].__setitem__(key, value))


def width(k, value, group="fc1"):
    return edit(lambda d: d["submodels"][k]["widths"].__setitem__(group, value))


def flip_weight_bit(fam: Path):
    w = bytearray((fam / "weights.safetensors").read_bytes())
    w[-5] ^= 0x10  # inside the last tensor's data
    (fam / "weights.safetensors").write_bytes(bytes(w))


def truncate(name, keep):
    def damage(fam: Path):
        p = fam / name
        p.write_bytes(p.read_bytes()[:keep(len(p.read_bytes()))])
    return damage


CASES = {
    # the file itself
    "empty": text(""),
    "truncated": raw(lambda f: (f / "family.json").write_text((f / "family.json").read_text()[:200])),
    "binary": raw(lambda f: (f / "family.json").write_bytes(bytes(range(256)) * 8)),
    "deeply-nested": text('{"format": "reds-family", "version": 2, "x": ' + "[" * 100000 + "]" * 100000 + "}"),
    "huge": edit(lambda d: d.__setitem__("knapsack", {"pad": "x" * 3_000_000})),
    "a-list": text("[1, 2, 3]"),
    "nan-budget": raw(lambda f: (f / "family.json").write_text(
        (f / "family.json").read_text().replace('"budget": 0.25', '"budget": NaN', 1))),
    "not-a-family": edit(lambda d: d.__setitem__("format", "something-else")),
    "newer-version": edit(lambda d: d.__setitem__("version", 99)),
    "version-as-text": edit(lambda d: d.__setitem__("version", "2")),
    "version-true": edit(lambda d: d.__setitem__("version", True)),
    "unknown-field": edit(lambda d: d.__setitem__("surprise", 1)),
    # the architecture and its groups
    "no-arch": edit(lambda d: d.pop("arch")),
    "unknown-arch": edit(lambda d: d.__setitem__("arch", "resnet-1000")),
    "arch-number": edit(lambda d: d.__setitem__("arch", 7)),
    "groups-as-text": edit(lambda d: d.__setitem__("groups", "fc1,fc2,fc3")),
    "groups-wrong-units": edit(lambda d: d["groups"][0].__setitem__("units", 999)),
    "input-shape-2d": edit(lambda d: d.__setitem__("input_shape", [25, 10])),
    "input-shape-negative": edit(lambda d: d.__setitem__("input_shape", [1, -25, 10])),
    "num-classes-zero": edit(lambda d: d.__setitem__("num_classes", 0)),
    "num-classes-other": edit(lambda d: d.__setitem__("num_classes", 13)),
    "width-mult-zero": edit(lambda d: d.__setitem__("width_mult", 0)),
    "width-mult-two": edit(lambda d: d.__setitem__("width_mult", 2.0)),
    # submodels and widths
    "no-submodels": edit(lambda d: d.__setitem__("submodels", [])),
    "submodels-object": edit(lambda d: d.__setitem__("submodels", {"0": 1})),
    "submodel-a-list": edit(lambda d: d["submodels"].__setitem__(0, [1, 2])),
    "width-text": width(0, "18"),
    "width-null": width(0, None),
    "width-fraction": width(0, 18.5),
    "width-true": width(0, True),
    "width-zero": width(0, 0),
    "width-too-wide": width(0, 10_000),
    "widths-missing-group": edit(lambda d: d["submodels"][0]["widths"].pop("fc2")),
    "widths-extra-group": width(0, 3, group="fc9"),
    "not-nested": edit(lambda d: d["submodels"][0]["widths"].__setitem__("fc1", d["submodels"][-1]["widths"]["fc1"])
                       or d["submodels"][-1]["widths"].__setitem__("fc1", 2)),
    "budget-negative": sub(0, "budget", -0.25),
    "budget-zero": sub(0, "budget", 0),
    "budget-above-one": sub(-1, "budget", 1.5),
    "budget-text": sub(0, "budget", "25%"),
    "duplicate-submodel": edit(lambda d: d["submodels"].insert(1, copy.deepcopy(d["submodels"][0]))),
    "arena-bytes-4": sub(-1, "arena_bytes", 4),
    "macs-wrong": sub(0, "macs", 1),
    "weight-bytes-1": sub(-1, "weight_bytes", 1),
    "params-wrong": sub(1, "params", 12),
    "macs-float": edit(lambda d: d["submodels"][0].__setitem__("macs", float(d["submodels"][0]["macs"]))),
    "accuracy-150": sub(0, "accuracy", 150.0),
    "missing-macs": edit(lambda d: d["submodels"][0].pop("macs")),
    # text aimed at generated files
    "dataset-injects-c": edit(lambda d: d.__setitem__("dataset", "x */\n#error injected\n/*")),
    "dataset-huge": edit(lambda d: d.__setitem__("dataset", "y" * 10_000)),
    "classes-not-text": edit(lambda d: d.__setitem__("classes", [1] * d["num_classes"])),
    "classes-wrong-count": edit(lambda d: d.__setitem__("classes", ["a", "b"])),
    "training-not-object": edit(lambda d: d.__setitem__("training", [])),
    "data-dir-number": edit(lambda d: d["training"].__setitem__("data_dir", 5)),
    # the weights
    "sha-malformed": edit(lambda d: d.__setitem__("weights_sha256", "not-a-hash")),
    "sha-missing": edit(lambda d: d.pop("weights_sha256")),
    "sha-of-other-file": edit(lambda d: d.__setitem__("weights_sha256", "0" * 64)),
    "weights-bit-flip": raw(flip_weight_bit),
    "weights-truncated": truncate("weights.safetensors", lambda n: n // 2),
    "weights-empty": truncate("weights.safetensors", lambda n: 0),
    "weights-missing": raw(lambda f: (f / "weights.safetensors").unlink()),
    "weights-a-folder": raw(lambda f: ((f / "weights.safetensors").unlink(), (f / "weights.safetensors").mkdir())),
    "weights-of-another-family": raw(lambda f: None),  # filled in by the fixture (needs the other family)
    # files and folders
    "manifest-missing": raw(lambda f: (f / "family.json").unlink()),
    "manifest-a-folder": raw(lambda f: ((f / "family.json").unlink(), (f / "family.json").mkdir())),
    "family-missing": raw(lambda f: shutil.rmtree(f)),
    "family-a-file": raw(lambda f: (shutil.rmtree(f), f.write_text("not a folder"))),
}


def snapshot(folder: Path) -> dict[str, bytes]:
    if not folder.exists():
        return {}
    if folder.is_file():
        return {"": folder.read_bytes()}
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A good family, another one, and a good output of every command, to damage and guard."""
    root = tmp_path_factory.mktemp("hostile")
    good = make_family(root, "dnn-s", 0.25, budgets=(0.25, 0.5, 1.0), name="good")
    other = make_family(root, "dnn-s", 0.5, budgets=(0.25, 0.5, 1.0), name="other", seed=3)
    outs = {"c": root / "out-c", "onnx": root / "out-onnx", "report": root / "out-report"}
    assert main(["export", str(good), "--format", "c", "--out", str(outs["c"])]) == 0
    assert main(["export", str(good), "--format", "onnx", "--out", str(outs["onnx"])]) == 0
    assert main(["report", str(good), "--out", str(outs["report"])]) == 0
    board = get_board("qemu-m4")
    can_build = missing_toolchain(board) is None
    try:
        check_emulator(board)
        can_bench = can_build
    except RedsError:
        can_bench = False
    if can_build:
        outs["build"] = root / "out-build"
        assert main(["build", str(good), "--board", "qemu-m4", "--out", str(outs["build"])]) == 0
    return root, good, other, outs, can_build, can_bench


def commands(fam: Path, outs: dict, root: Path, can_build: bool, can_bench: bool) -> dict[str, tuple[list, Path]]:
    cmds = {
        "info": (["info", str(fam)], None),
        "eval": (["eval", str(fam), "--data-dir", str(root / "no-data")], None),
        "export-c": (["export", str(fam), "--format", "c", "--out", str(outs["c"])], outs["c"]),
        "export-onnx": (["export", str(fam), "--format", "onnx", "--out", str(outs["onnx"])], outs["onnx"]),
        "report": (["report", str(fam), "--out", str(outs["report"])], outs["report"]),
    }
    if can_build:
        cmds["build"] = (["build", str(fam), "--board", "qemu-m4", "--out", str(outs["build"])], outs["build"])
    if can_bench:
        cmds["bench"] = (["bench", str(fam), "--build", str(outs["build"]), "--runs", "1"], outs["build"])
    return cmds


def test_corpus_is_refused_cleanly(world, tmp_path, capsys):
    root, good, other, outs, can_build, can_bench = world
    before = {k: snapshot(v) for k, v in outs.items()}
    tried = clean = 0
    tracebacks, modified, accepted, messy = [], [], [], []
    for name, damage in CASES.items():
        fam = tmp_path / name
        shutil.copytree(good, fam)
        if name == "weights-of-another-family":  # foreign weights, the sha updated to match them
            shutil.copy(other / "weights.safetensors", fam / "weights.safetensors")
            d = json.loads((fam / "family.json").read_text())
            d["weights_sha256"] = json.loads((other / "family.json").read_text())["weights_sha256"]
            (fam / "family.json").write_text(json.dumps(d))
        else:
            damage(fam)
        for cmd, (argv, out) in commands(fam, outs, root, can_build, can_bench).items():
            tried += 1
            capsys.readouterr()
            try:
                rc = main(argv)
            except BaseException:  # noqa: BLE001 (what a user would see as a traceback)
                tracebacks.append(f"{name} / {cmd}: {traceback.format_exc().splitlines()[-1]}")
                rc = None
            err = capsys.readouterr().err.strip().splitlines()
            if rc is not None:
                if rc == 0:
                    accepted.append(f"{name} / {cmd}")
                elif rc != 2 or len(err) != 1 or not err[0].startswith("reds: error:") or "Traceback" in err[0]:
                    messy.append(f"{name} / {cmd}: rc {rc}, {err[:3]}")
                else:
                    clean += 1
            if out is not None:
                key = [k for k, v in outs.items() if v == out][0]
                if snapshot(out) != before[key]:
                    modified.append(f"{name} / {cmd}")
                    shutil.rmtree(out, ignore_errors=True)  # put the good output back for the next case
                    for rel, data in before[key].items():
                        (out / rel).parent.mkdir(parents=True, exist_ok=True)
                        (out / rel).write_bytes(data)
    print(f"\nhostile corpus: {len(CASES)} families x {tried // len(CASES)} commands = {tried} runs; "
          f"refused cleanly {clean}, tracebacks {len(tracebacks)}, accepted {len(accepted)}, "
          f"messy refusals {len(messy)}, outputs modified {len(modified)}")
    assert not tracebacks, tracebacks
    assert not accepted, accepted
    assert not messy, messy
    assert not modified, modified
    assert clean == tried


def test_the_good_family_is_accepted_by_every_command(world, capsys):
    """The control: the same commands on the undamaged family succeed (eval but for its data)."""
    root, good, _, outs, can_build, can_bench = world
    for cmd, (argv, _) in commands(good, outs, root, can_build, can_bench).items():
        rc = main(argv)
        err = capsys.readouterr().err
        if cmd == "eval":
            assert rc == 2 and "no-data" in err  # the family is fine; its data set is not there
        else:
            assert rc == 0, (cmd, err)


def test_text_reaching_c_is_escaped():
    for hostile in ["x */ #error injected /*", "a\n#error b", "??/", "*??/\n/", "données ✓", "*/*/", "/**/"]:
        inside = c_comment(hostile)
        assert "*/" not in inside and "/*" not in inside and "??" not in inside and "\n" not in inside
        assert all(0x20 <= ord(ch) <= 0x7E for ch in inside)


def test_a_printable_injection_stays_inside_its_comment(world, tmp_path, capsys):
    """A dataset name the schema allows (printable) but aimed at C: the export compiles, and
    the text sits inside the provenance comment."""
    root, good, *_ = world
    fam = tmp_path / "fam"
    shutil.copytree(good, fam)
    edit(lambda d: d.__setitem__("dataset", "x */ #error injected /*"))(fam)
    out = tmp_path / "weird */ out"
    assert main(["export", str(fam), "--format", "c", "--out", str(out)]) == 0, capsys.readouterr().err
    header = (out / "reds_model.h").read_text()
    assert "#error injected" in header and "x * / #error injected / *" in header
    assert "\n#error" not in header


@pytest.mark.parametrize("cmd", ["export", "report", "build", "train"])
def test_out_that_is_a_file_is_one_line(world, tmp_path, capsys, cmd):
    root, good, *_ = world
    out = tmp_path / "a-file"
    out.write_text("mine")
    argv = {"export": ["export", str(good), "--format", "c", "--out", str(out)],
            "report": ["report", str(good), "--out", str(out)],
            "build": ["build", str(good), "--board", "host", "--out", str(out)],
            "train": ["train", "--arch", "dnn-s", "--dataset", "synth-kws", "--data-dir", str(root / "no-data"),
                      "--out", str(out)]}[cmd]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("reds: error:") and "a-file" in err[0], err
    assert out.read_text() == "mine"


@pytest.mark.parametrize("err, hint", [(errno.ENOSPC, "free some space"), (errno.EROFS, "writable folder"),
                                       (errno.EACCES, "permissions")])
def test_os_errors_are_one_line_and_lose_nothing(world, tmp_path, monkeypatch, capsys, err, hint):
    """The disk fills up (or is read-only, or not ours) in the middle of an export: one line
    naming the path and what to do, exit 2, the previous export untouched."""
    root, good, _, outs, *_ = world
    out = tmp_path / "c"
    shutil.copytree(outs["c"], out)
    before = snapshot(out)
    import reds.export.c as cexport

    def full(src, folder, layout, name):
        raise OSError(err, os.strerror(err), str(folder / f"{name}.c"))
    monkeypatch.setattr(cexport, "write", full)
    assert main(["export", str(good), "--format", "c", "--out", str(out)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("reds: error:") and ".c:" in lines[0] and hint in lines[0]
    assert snapshot(out) == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".c.")]  # no staged folder left


def test_leftovers_of_killed_runs_are_cleaned(world, tmp_path):
    root, good, *_ = world
    fam = tmp_path / "fam"
    shutil.copytree(good, fam)
    stale = [fam / ".weights.safetensors.k1ll3d", fam / ".family.json.k1ll3d"]
    for p in stale:
        p.write_bytes(b"half a file")
    f = open_family(fam)
    save(fam, f.manifest, f.net)  # the next write of the same files
    assert not any(p.exists() for p in stale)
    out = tmp_path / "c"
    (tmp_path / ".c.tmp-deadbeef").mkdir()
    (tmp_path / ".c.old-deadbeef").mkdir()
    assert main(["export", str(fam), "--format", "c", "--out", str(out)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c", "fam"]
