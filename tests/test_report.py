"""`reds report`: plots and a markdown summary of a family and of its bench.

- On a small random family without accuracy or bench: no accuracy.png (no placeholder), a
  README.md that embeds it and says how to add the bench.
- With test/scratch accuracies, a data set REDS published figures for, and a bench report
  (made here in the `reds bench --json` format, of this very family): accuracy.png,
  latency.png, switch.png, each a valid PNG of sensible size, README.md embedding all
  three with the family's table, the published curve and the switch beside REDS's 38 us.
- Running again over a previous report replaces it.
- Bad input (no family, a bench of another family, a folder of other files as --out):
  one line `reds: error: ...`, exit 2, nothing written.
"""
from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from families import make_family
from reds.cli import main
from reds.family import open as open_family

PNG = b"\x89PNG\r\n\x1a\n"


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG, f"{path.name} is not a PNG"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def check_png(path: Path) -> None:
    assert path.is_file() and path.stat().st_size > 10_000, path
    w, h = png_size(path)
    assert 500 <= w <= 2500 and 350 <= h <= 1500, (path.name, w, h)


@pytest.fixture
def family(tmp_path) -> Path:
    return make_family(tmp_path, "dnn-s", 0.25, (0.25, 0.5, 0.75, 1.0))


def with_accuracy(family: Path) -> Path:
    p = family / "family.json"
    d = json.loads(p.read_text())
    d["dataset"] = "speech-commands"  # REDS published DNN-S on Google Speech Commands
    for s, acc in zip(d["submodels"], (70.0, 78.0, 82.0, 84.0)):
        s["accuracy"], s["val_accuracy"] = acc, acc + 0.5
    d["submodels"][0]["scratch_accuracy"] = 71.0
    p.write_text(json.dumps(d, indent=2))
    return family


def fake_bench(family: Path, path: Path, clock_hz: int = 25_000_000) -> Path:
    """A bench report in `reds bench --json`'s format, for this family."""
    subs = json.loads((family / "family.json").read_text())["submodels"]
    rows = [{"index": k, "budget": s["budget"], "macs": s["macs"], "cycles_median": 5 * s["macs"] + 300,
             "cycles_min": 5 * s["macs"] + 290, "cycles_max": 5 * s["macs"] + 320,
             "us_median": (5 * s["macs"] + 300) / clock_hz * 1e6, "cycles_per_mac": 5 + 300 / s["macs"],
             "max_abs_diff": 1e-7, "argmax_match": True, "outputs": ""} for k, s in enumerate(subs)]
    K = len(subs)
    pairs = [{"from": a, "to": b, "cycles": 6 + (a + b) % 2} for a in range(K) for b in range(K) if a != b]
    report = {"format": "reds-bench", "version": 1, "family": str(family), "family_hash": open_family(family).hash,
              "arch": "dnn-s", "device": "reds-test", "board": "qemu-m4", "port": "socket://127.0.0.1:1",
              "timer": "systick-icount", "cycle": "instruction", "clock_hz": clock_hz,
              "timer_overhead_cycles": 29, "runs": 5, "seed": 0, "tolerance": 1e-4, "submodels": rows,
              "switch": {"median": 6.5, "max": 7, "min": 6, "pairs": pairs},
              "cycles_per_mac_spread_pct": 3.0, "outputs_match": True}
    path.write_text(json.dumps(report, indent=2))
    return path


def test_report_without_bench(family, tmp_path, capsys):
    out = tmp_path / "report"
    assert main(["report", str(family), "--out", str(out)]) == 0
    assert str(out) in capsys.readouterr().out
    assert not (out / "accuracy.png").exists()  # nothing to plot: no placeholder picture
    assert not (out / "latency.png").exists() and not (out / "switch.png").exists()
    readme = (out / "README.md").read_text()
    assert "run `reds eval FAMILY`" in readme and "accuracy.png" not in readme
    assert "reds bench" in readme  # says how to add latency and switch
    assert "4,963" in readme or "| 25% |" in readme
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".report.")]  # no staging left


def test_report_with_bench_and_accuracy(family, tmp_path):
    with_accuracy(family)
    bench = fake_bench(family, tmp_path / "bench.json")
    out = tmp_path / "report"
    assert main(["report", str(family), "--out", str(out), "--bench", str(bench)]) == 0
    for name in ("accuracy.png", "latency.png", "switch.png"):
        check_png(out / name)
    readme = (out / "README.md").read_text()
    for name in ("accuracy.png", "latency.png", "switch.png"):
        assert f"]({name})" in readme
    assert "REDS published" in readme and "83.52" in readme and "64.42" in readme
    assert "84.00" in readme and "71.00" in readme  # test and scratch accuracy
    assert "950 cycles" in readme and "2,432" in readme  # 38 us at 25 MHz and at 64 MHz
    data = json.loads((out / "report.json").read_text())
    assert data["format"] == "reds-report"
    assert data["published"]["accuracy"][-1] == 83.52
    lat = data["bench"]["submodels"]
    assert lat[-1]["deviation_pct"] == pytest.approx(0.0)
    assert lat[0]["deviation_pct"] > 0  # the constant 300 cycles weigh more in the small submodel
    assert data["bench"]["reds_switch_cycles_at_board_clock"] == pytest.approx(950)

    # again, over the previous report: replaced whole
    (out / "stale.txt").write_text("old")
    assert main(["report", str(family), "--out", str(out)]) == 0
    assert not (out / "stale.txt").exists() and not (out / "latency.png").exists()
    check_png(out / "accuracy.png")


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("reds: error: "), err
    return err[0]


def test_bad_family_dir(tmp_path, capsys):
    out = tmp_path / "report"
    assert main(["report", str(tmp_path / "nope"), "--out", str(out)]) == 2
    assert "no such family folder" in _one_error_line(capsys)
    (tmp_path / "notfam").mkdir()
    (tmp_path / "notfam" / "family.json").write_text("{not json")
    assert main(["report", str(tmp_path / "notfam"), "--out", str(out)]) == 2
    assert "family.json" in _one_error_line(capsys)
    assert not out.exists()


def test_bad_bench_and_out(family, tmp_path, capsys):
    other = make_family(tmp_path, "dnn-s", 0.25, (0.25, 0.5, 0.75, 1.0), seed=1, name="other")
    bench = fake_bench(other, tmp_path / "other.json")
    out = tmp_path / "report"
    assert main(["report", str(family), "--out", str(out), "--bench", str(bench)]) == 2
    assert "not" in _one_error_line(capsys)
    assert main(["report", str(family), "--out", str(out), "--bench", str(tmp_path / "missing.json")]) == 2
    assert "no such bench report" in _one_error_line(capsys)
    (tmp_path / "garbage.json").write_text("[1, 2]")
    assert main(["report", str(family), "--out", str(out), "--bench", str(tmp_path / "garbage.json")]) == 2
    assert "not a reds bench report" in _one_error_line(capsys)
    assert not out.exists()

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    assert main(["report", str(family), "--out", str(mine)]) == 2
    assert "not empty" in _one_error_line(capsys)
    assert [p.name for p in mine.iterdir()] == ["notes.txt"]
