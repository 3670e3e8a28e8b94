"""Trace replay (`reds bench FAMILY --trace CSV`) on the virtual board qemu-m4, and the
trace files: the report (trace.csv, trace.json) and the plot are written; at every step
the board chose, by its stored measured costs, the largest submodel that fits the budget
and never one over it."""
from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
from test_qemu_board import needs_qemu

from families import shared_family
from reds.bench.trace import choose, read_trace
from reds.errors import RedsError

ROOT = Path(__file__).resolve().parents[1]
TRACES = ROOT / "benchmarks" / "traces"


def test_example_traces_and_bad_ones(tmp_path):
    for name in ("battery_drain.csv", "periodic_corunner.csv"):
        steps = read_trace(TRACES / name)
        assert len(steps) > 20 and all(b >= 0 for _, b in steps)
        assert min(b for _, b in steps) < 0.5 and max(b for _, b in steps) == 1.0
    bad = tmp_path / "bad.csv"
    for text, msg in [("t,b\n0,1\n", "header"), ("time_s,budget\n0,x\n", "line 2"),
                      ("time_s,budget\n1,1\n0,1\n", "time must not go back"), ("time_s,budget\n", "no steps")]:
        bad.write_text(text)
        with pytest.raises(RedsError, match=msg):
            read_trace(bad)
    assert choose([100, 200, 300], 250) == 1 and choose([100, 200, 300], 99) == -1 and choose([100, 200, 300], 300) == 2


@needs_qemu
def test_trace_replay_on_the_virtual_board(tmp_path_factory, tmp_path, capsys):
    from reds.cli import main

    src = shared_family(tmp_path_factory, "dscnn-s", 0.25)
    fam = tmp_path / "fam"  # a copy with per-submodel accuracy, as `reds eval` writes it
    shutil.copytree(src, fam)
    doc = json.loads((fam / "family.json").read_text())
    for s, a in zip(doc["submodels"], (71.5, 80.25, 88.0)):
        s["accuracy"] = a
    (fam / "family.json").write_text(json.dumps(doc, indent=2))
    trace = tmp_path / "t.csv"
    # below the smallest, between every pair, exactly the full model, above it
    trace.write_text("# test\ntime_s,budget\n0,1.0\n1,0.05\n2,0.45\n3,0.7\n4,0.99\n5,1.5\n6,0.3\n")
    out = tmp_path / "out"
    rc = main(["bench", str(fam), "--board", "qemu-m4", "--build", str(tmp_path_factory.mktemp("tq") / "b"),
               "--runs", "3", "--trace", str(trace), "--trace-out", str(out)])
    text = capsys.readouterr().out
    assert rc == 0, text
    assert "deadlines met" in text and "trace.png" in text
    doc = json.loads((out / "trace.json").read_text())
    costs = doc["costs_cycles"]
    assert doc["board"] == "qemu-m4" and doc["pick"].startswith("on the device") and costs == sorted(costs)
    rows = list(csv.DictReader(open(out / "trace.csv")))
    assert len(rows) == len(doc["rows"]) == 7
    for r in doc["rows"]:
        k, deadline = r["k"], r["deadline_cycles"]
        fit = [j for j, c in enumerate(costs) if c <= deadline]
        assert k == (max(fit) if fit else -1)  # the largest that fits
        if k >= 0:
            assert costs[k] <= deadline and r["cost_cycles"] == costs[k]  # never over the budget
            assert r["switch_cycles"] <= 200 and r["infer_cycles"] > 0
            assert r["deadline_met"] == (r["infer_cycles"] <= deadline)
        else:
            assert not r["deadline_met"] and r["infer_cycles"] is None
    ks = [r["k"] for r in doc["rows"]]
    assert ks[0] == 2 and ks[1] == -1 and ks[5] == 2  # full fits at 1.0; nothing at 5 %
    # instruction counts are deterministic: a step whose deadline has room over the cost meets it
    assert all(r["deadline_met"] for r in doc["rows"] if r["k"] >= 0 and r["deadline_cycles"] >= r["cost_cycles"] + 100)
    assert [r["accuracy"] for r in doc["rows"]] == [(71.5, 80.25, 88.0)[k] if k >= 0 else 0.0 for k in ks]
    assert doc["mean_accuracy"] == pytest.approx(sum(r["accuracy"] for r in doc["rows"]) / 7)
    png = (out / "trace.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000
