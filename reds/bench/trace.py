"""Replay a resource trace against a board: `reds bench FAMILY ... --trace FILE`.

A trace is a CSV file with the header `time_s,budget` (lines starting with '#' are
comments). `budget` is the time one inference may take at that moment, as a **fraction of
the full (largest) submodel's measured cost on this board**: 1.0 means the full model just
fits, 0.4 means 40 % of its cycles are left (a co-running task took the rest, or the
battery policy slowed the duty cycle). A fraction keeps one trace meaningful on every
board; the replay turns it into a deadline in cycles (and microseconds at the board's
clock).

The replay, after the bench has measured every submodel:
1. sends each submodel's measured cost (the max of its timed runs, cycles) to the board
   with `cost K C%`;
2. for every step, sends `deadline C%`: the board makes the largest submodel whose cost
   fits active and reports the cycles the pick and switch took; if none fits, the step is
   recorded as k = -1 (nothing runs, the deadline is missed, no accuracy is delivered);
3. times one inference of the chosen submodel (`loop 1%`): deadline met if its cycles are
   at most the step's deadline;
4. looks up the accuracy the chosen submodel delivers (family.json's per-submodel test
   accuracy, if the family was evaluated).
It writes `trace.csv` (one row per step), `trace.json` (the steps and a summary) and
`trace.png` (budget, chosen submodel's cost and accuracy over time).
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

from .. import staging
from ..device.link import DeviceError, Link, find, ints
from ..errors import RedsError
from ..family import OpenFamily

DATA, FORMAT = "trace.json", "reds-trace"  # the replay's folder is recognised by its trace.json
COLUMNS = ("time_s", "budget", "deadline_cycles", "deadline_us", "k", "cost_cycles", "switch_cycles",
           "infer_cycles", "infer_us", "deadline_met", "accuracy")


def read_trace(path) -> list[tuple[float, float]]:
    """[(time_s, budget)], validated: numbers, time non-decreasing, budget >= 0."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise RedsError(f"cannot read trace {path}: {e.strerror or e}") from None
    rows = [l for l in text.splitlines() if l.strip() and not l.lstrip().startswith("#")]
    if not rows or [c.strip() for c in rows[0].split(",")] != ["time_s", "budget"]:
        raise RedsError(f"{path}: a trace is a CSV file with the header 'time_s,budget' "
                        "(budget: fraction of the full model's measured cost)")
    steps = []
    for n, line in enumerate(rows[1:], 2):
        parts = [c.strip() for c in line.split(",")]
        try:
            t, b = float(parts[0]), float(parts[1])
            if len(parts) != 2:
                raise ValueError
        except (ValueError, IndexError):
            raise RedsError(f"{path}: line {n} is not 'time_s,budget': {line!r}") from None
        if not (b >= 0 and b == b and t == t) or (steps and t < steps[-1][0]):
            raise RedsError(f"{path}: line {n}: budget must be >= 0 and time must not go back: {line!r}")
        steps.append((t, b))
    if not steps:
        raise RedsError(f"{path}: the trace has no steps")
    return steps


def choose(costs: list[int], deadline: int) -> int:
    """The largest submodel whose cost fits the deadline, -1 if none."""
    fit = [k for k, c in enumerate(costs) if 0 < c <= deadline]
    return max(fit) if fit else -1


class TraceJob:
    """A trace to replay on a link once the bench has measured the submodels."""

    def __init__(self, trace, out_dir=None, family_dir=None):
        """out_dir: where the replay's files go (default: FAMILY/trace-<CSV name>, beside the
        family's default build folder; else trace-<CSV name> here)."""
        self.path = Path(trace)
        self.steps = read_trace(self.path)
        default = (Path(family_dir) if family_dir else Path()) / f"trace-{self.path.stem}"
        self.out = staging.check_out(Path(out_dir) if out_dir else default, DATA, FORMAT, "trace replay")
        self.result: dict | None = None

    def run(self, link: Link, family: OpenFamily, report: dict) -> dict:
        fam = family.manifest
        costs = [int(r["cycles_max"]) for r in report["submodels"]]
        acc = [s.accuracy for s in fam.submodels]
        clock = int(report.get("clock_hz") or 0)
        on_device = True
        for k, c in enumerate(costs):
            try:
                link.check(f"cost {k} {c}")
            except DeviceError as e:  # firmware older than the `cost` command: pick on the host
                if e.reason != "unknown-command":
                    raise
                on_device = False
                break
        full = costs[-1]
        rows = []
        for t, b in self.steps:
            deadline = min(int(b * full), 0xFFFFFFFF)
            want = choose(costs, deadline)
            if on_device:
                lines = link.command(f"deadline {deadline}")
                if any(l == "m-error-no-submodel-fits" for l in lines):
                    k, sw = -1, None
                else:
                    f = ints(find(lines, "m-deadline"))
                    k, sw = f["k"], f["cycles"]
            else:
                k = want
                sw = link.select(k) if k >= 0 else None
            if k != want:
                raise RedsError(f"the board chose submodel {k} for a deadline of {deadline} cycles; the largest that "
                                f"fits its measured costs {costs} is {want}")
            cyc = link.loop(1, timeout=60.0)["median"] if k >= 0 else None
            rows.append({
                "time_s": t, "budget": b, "deadline_cycles": deadline,
                "deadline_us": deadline / clock * 1e6 if clock else None, "k": k,
                "cost_cycles": costs[k] if k >= 0 else None, "switch_cycles": sw, "infer_cycles": cyc,
                "infer_us": cyc / clock * 1e6 if (clock and cyc is not None) else None,
                "deadline_met": bool(cyc is not None and cyc <= deadline),
                "accuracy": (acc[k] if k >= 0 else 0.0) if any(a is not None for a in acc) else None,
            })
        met = [r["deadline_met"] for r in rows]
        sws = [r["switch_cycles"] for r in rows if r["switch_cycles"] is not None]
        accs = [r["accuracy"] for r in rows if r["accuracy"] is not None]
        summary = {
            "trace": str(self.path), "out": str(self.out), "steps": len(rows), "budget_unit":
                "fraction of the full submodel's measured cost (cycles_max)",
            "pick": "on the device (cost/deadline commands)" if on_device else "on the host (select)",
            "costs_cycles": costs, "clock_hz": clock, "cycle": report.get("cycle"),
            "deadlines_met": sum(met), "deadlines_missed": len(met) - sum(met),
            "no_fit_steps": sum(r["k"] < 0 for r in rows),
            "switches": sum(1 for a, b in zip(rows, rows[1:]) if a["k"] != b["k"]),
            "switch_cycles_max": max(sws) if sws else None,
            "switch_cycles_median": sorted(sws)[len(sws) // 2] if sws else None,
            "mean_accuracy": sum(accs) / len(accs) if accs else None,
        }
        self.write(rows, summary, report)
        self.result = summary
        return summary

    def write(self, rows: list[dict], summary: dict, report: dict) -> None:
        with staging.staged(self.out, DATA, FORMAT, "trace replay") as tmp:
            self._write(tmp, rows, summary, report)

    def _write(self, folder: Path, rows: list[dict], summary: dict, report: dict) -> None:
        with open(folder / "trace.csv", "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=COLUMNS)
            w.writeheader()
            for r in rows:
                w.writerow({k: ("" if r[k] is None else r[k]) for k in COLUMNS})
        doc = {"format": FORMAT, "version": 1, "board": report.get("board"), "port": report.get("port"),
               "family_hash": report.get("family_hash"), "arch": report.get("arch"), **summary, "rows": rows}
        (folder / DATA).write_text(json.dumps(doc, indent=2) + "\n")
        plot(rows, summary, folder / "trace.png", f"{report.get('arch')} on {report.get('board')}")

    def summary(self) -> str:
        s = self.result
        if not s:
            return "trace: not replayed"
        acc = f", mean accuracy delivered {s['mean_accuracy']:.2f} %" if s["mean_accuracy"] is not None else ""
        return (f"trace {s['trace']}: {s['steps']} steps, {s['switches']} switches (max {s['switch_cycles_max']} "
                f"cycles), deadlines met {s['deadlines_met']}/{s['steps']}, nothing fit at {s['no_fit_steps']} "
                f"steps{acc}; pick {s['pick']}\n  written: {s['out']}/trace.csv, trace.json, trace.png")


def plot(rows: list[dict], summary: dict, path: Path, title: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    clock = summary["clock_hz"]
    scale, unit = (1e6 / clock, "µs") if clock else (1.0, summary.get("cycle") or "cycles")
    if clock and max(r["deadline_cycles"] for r in rows) * scale > 10_000:
        scale, unit = scale / 1000, "ms"
    t = [r["time_s"] for r in rows]
    has_acc = any(r["accuracy"] is not None for r in rows)
    fig, (ax1, ax2) = plt.subplots(2, 1, sharex=True, figsize=(10, 6.5), gridspec_kw={"height_ratios": [3, 2]})
    ax1.step(t, [r["deadline_cycles"] * scale for r in rows], where="post", color="tab:gray", lw=2,
             label="budget (deadline per inference)")
    ax1.step(t, [(r["cost_cycles"] or 0) * scale for r in rows], where="post", color="tab:blue", lw=1.8,
             label="chosen submodel's measured cost")
    ax1.plot(t, [(r["infer_cycles"] or 0) * scale for r in rows], ".", color="tab:green", ms=5,
             label="measured inference at the step")
    miss = [(r["time_s"], (r["infer_cycles"] or 0) * scale) for r in rows if not r["deadline_met"]]
    if miss:
        ax1.plot(*zip(*miss), "x", color="tab:red", ms=8, mew=2, label="deadline missed / nothing fits")
    ax1.set_ylabel(f"time per inference ({unit})")
    ax1.set_ylim(bottom=0)
    ax1.grid(alpha=0.3)
    ax1.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2, fontsize=9, frameon=False)
    fig.suptitle(f"trace replay: {title}; {summary['deadlines_met']}/{summary['steps']} deadlines met, "
                 f"{summary['switches']} switches", fontsize=11)
    if has_acc:
        ax2.step(t, [r["accuracy"] for r in rows], where="post", color="tab:purple", lw=1.8)
        ax2.set_ylabel("accuracy delivered (%)")
    else:
        ax2.step(t, [r["k"] for r in rows], where="post", color="tab:purple", lw=1.8)
        ax2.set_ylabel("submodel k (no accuracy\nin family.json)")
        ax2.yaxis.get_major_locator().set_params(integer=True)
    ax2.set_xlabel("time (s)")
    ax2.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
