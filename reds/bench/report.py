"""`reds report`: plots and a markdown summary of a family (and of its bench, if given).

    reds report FAMILY --out REPORT_DIR [--bench BENCH_JSON]

Writes into REPORT_DIR (staged in a hidden sibling folder, renamed in whole when done, so
a failure leaves REPORT_DIR as it was):

- `accuracy.png`: test accuracy (and the scratch baseline, where trained) of every
  submodel against its MACs as % of the full model's MACs, beside REDS's published curve
  (arXiv 2311.13349, bottom-up knapsack) when the (architecture, data set) pair has one.
- `latency.png` (with --bench): each submodel's median cycles on the board (and
  microseconds at the board clock) against its MACs, with the line through the origin
  and the full model that a latency proportional to MACs would follow.
- `switch.png` (with --bench): the cycles of every ordered switch k -> k' on the board,
  beside REDS's 38 us switch (Arduino Nano 33 BLE) converted to cycles at the board clock.
- `README.md` embedding the plots and tabulating the family, and `report.json` (the data
  behind the plots). REPORT_DIR may be absent, empty or a previous report; anything else
  is refused.
"""
from __future__ import annotations

import datetime
import json
from pathlib import Path

from .. import staging
from ..errors import RedsError
from ..family import OpenFamily
from ..ir.cost import cost

FORMAT = "reds-report"
VERSION = 1
DATA = "report.json"

# REDS (arXiv 2311.13349), test accuracy % at 100 / 75 / 50 / 25 % of the MACs, bottom-up
# knapsack; keyed by (reds arch, reds data set). "approx": read from a figure, not a table.
PUBLISHED = {
    ("dscnn-s-img", "fmnist"): {1.0: 91.60, 0.75: 91.51, 0.5: 90.75, 0.25: 89.22},
    ("dscnn-s-img", "cifar10"): {1.0: 81.07, 0.75: 80.17, 0.5: 76.72, 0.25: 68.66},
    ("dnn-s", "speech-commands"): {1.0: 83.52, 0.75: 82.29, 0.5: 78.36, 0.25: 64.42},
    ("dnn-l", "speech-commands"): {1.0: 86.46, 0.75: 86.38, 0.5: 85.62, 0.25: 82.61},
    ("cnn-s", "speech-commands"): {1.0: 91.60, 0.75: 90.63, 0.5: 88.39, 0.25: 79.52},
    ("cnn-l", "speech-commands"): {1.0: 92.83, 0.75: 92.74, 0.5: 91.95, 0.25: 90.24},
    ("dscnn-s", "speech-commands"): {1.0: 93.3, 0.75: 93.1, 0.5: 92.1, 0.25: 89.6},
    ("dscnn-l", "speech-commands"): {1.0: 94.5, 0.75: 94.3, 0.5: 94.2, 0.25: 93.2},
}
APPROX = {("dscnn-s", "speech-commands"), ("dscnn-l", "speech-commands")}
# REDS published scratch baseline at 25 % (same widths trained alone).
PUBLISHED_SCRATCH = {("dnn-s", "speech-commands"): 69.77, ("dnn-l", "speech-commands"): 84.22,
                     ("cnn-s", "speech-commands"): 82.57, ("cnn-l", "speech-commands"): 90.98}
REDS_SWITCH_US = 38.0  # REDS's adaptation time, Arduino Nano 33 BLE Sense (64 MHz), TFLite Micro
NANO_HZ = 64_000_000

FONT = {"font.size": 12, "axes.titlesize": 13, "axes.labelsize": 12, "legend.fontsize": 10,
        "xtick.labelsize": 11, "ytick.labelsize": 11}
COLORS = {"reds": "#1f77b4", "scratch": "#ff7f0e", "published": "#7f7f7f", "pscratch": "#bcbd22",
          "line": "#d62728"}


# ---- inputs ------------------------------------------------------------------------------------
def _full_macs(family: OpenFamily) -> int:
    return cost(family.spec, family.spec.full_widths()).macs


def read_bench(path, family: OpenFamily) -> dict:
    """A `reds bench --json` report of this family, or a RedsError naming what is wrong."""
    fam, family_dir = family.manifest, family.dir
    p = Path(path)
    try:
        b = json.loads(p.read_text())
    except FileNotFoundError:
        raise RedsError(f"{p}: no such bench report; make one with `reds bench FAMILY --json {p}`") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise RedsError(f"{p}: not a readable JSON bench report ({e})") from None
    if not isinstance(b, dict) or b.get("format") != "reds-bench":
        raise RedsError(f"{p}: not a reds bench report (no \"format\": \"reds-bench\"); "
                        "make one with `reds bench FAMILY --json OUT`")
    try:
        rows = b["submodels"]
        macs = [int(r["macs"]) for r in rows]
        [float(r["cycles_median"]) for r in rows]
        b["switch"]["pairs"]
    except (KeyError, TypeError, ValueError) as e:
        raise RedsError(f"{p}: bench report has missing or malformed fields ({e})") from None
    if b.get("family_hash") and b["family_hash"] != family.hash:
        raise RedsError(f"{p}: bench report is of family {str(b['family_hash'])[:12]}, not {family_dir} "
                        f"({family.hash[:12]}); bench this family first")
    if macs != [s.macs for s in fam.submodels]:
        raise RedsError(f"{p}: the bench's submodels (MACs {macs}) differ from {family_dir}'s manifest")
    return b


def collect(family: OpenFamily, bench_path=None) -> dict:
    """Everything the report shows, as JSON-able data."""
    fam, family_dir = family.manifest, family.dir
    bench = read_bench(bench_path, family) if bench_path else None
    full = _full_macs(family)
    key = (fam.arch, fam.dataset)
    groups = [g["name"] for g in fam.groups]
    subs = []
    for k, s in enumerate(fam.submodels):
        row = {"index": k, "budget": s.budget, "widths": [s.widths[g] for g in groups], "macs": s.macs,
               "macs_pct": 100.0 * s.macs / full, "params": s.params, "weight_bytes": s.weight_bytes,
               "arena_bytes": s.arena_bytes, "accuracy": s.accuracy, "val_accuracy": s.val_accuracy,
               "scratch_accuracy": s.scratch_accuracy,
               "published": PUBLISHED.get(key, {}).get(round(s.budget, 2))}
        subs.append(row)
    # names, not paths: a report is shared, and where its inputs lay is nobody's business
    t = fam.training
    d = {"format": FORMAT, "version": VERSION, "family": Path(family_dir).name, "arch": fam.arch,
         "dataset": fam.dataset, "width_mult": fam.width_mult, "groups": groups, "full_macs": full,
         "num_classes": fam.num_classes,
         "training": {k: t.get(k) for k in ("epochs", "finetune_epochs", "train_samples", "recipe") if k in t},
         "knapsack": {k: fam.knapsack.get(k) for k in ("mode", "solver", "status", "seconds") if k in fam.knapsack},
         "submodels": subs, "date": datetime.date.today().isoformat(),
         "published": ({"budgets_pct": sorted(100 * b for b in PUBLISHED[key]),
                        "accuracy": [PUBLISHED[key][b] for b in sorted(PUBLISHED[key])],
                        "approximate": key in APPROX, "scratch_25": PUBLISHED_SCRATCH.get(key),
                        "source": "REDS, arXiv 2311.13349, bottom-up knapsack, test set"}
                       if key in PUBLISHED else None)}
    if bench is not None:
        hz = int(bench.get("clock_hz") or 0)
        rows = bench["submodels"]
        big = max(rows, key=lambda r: r["macs"])
        per_mac = big["cycles_median"] / big["macs"] if big["macs"] else None
        lat = []
        for r in rows:
            ratio_c = r["cycles_median"] / big["cycles_median"] if big["cycles_median"] else None
            ratio_m = r["macs"] / big["macs"] if big["macs"] else None
            lat.append({"index": r["index"], "budget": r["budget"], "macs": r["macs"],
                        "cycles_median": r["cycles_median"], "cycles_min": r.get("cycles_min"),
                        "cycles_max": r.get("cycles_max"),
                        "us_median": r["cycles_median"] / hz * 1e6 if hz else None,
                        "cycles_per_mac": r["cycles_median"] / r["macs"] if r["macs"] else None,
                        "latency_ratio": ratio_c, "macs_ratio": ratio_m,
                        "deviation_pct": 100.0 * (ratio_c / ratio_m - 1.0) if ratio_c and ratio_m else None})
        sw = bench["switch"]
        d["bench"] = {
            "source": Path(bench_path).name, "board": bench.get("board"), "device": bench.get("device"),
            "clock_hz": hz, "cycle": bench.get("cycle"), "cycle_note": bench.get("cycle_note"),
            "runs": bench.get("runs"), "outputs_match": bench.get("outputs_match"),
            "cycles_per_mac_full": per_mac, "submodels": lat,
            "switch": {"median": sw.get("median"), "min": sw.get("min"), "max": sw.get("max"),
                       "pairs": [{"from": int(p["from"]), "to": int(p["to"]), "cycles": p["cycles"]}
                                 for p in sw["pairs"]]},
            "reds_switch_us": REDS_SWITCH_US,
            "reds_switch_cycles_at_board_clock": REDS_SWITCH_US * 1e-6 * hz if hz else None,
            "reds_switch_cycles_nano": REDS_SWITCH_US * 1e-6 * NANO_HZ,
        }
    return d


# ---- plots ------------------------------------------------------------------------------------
def _plt():
    import matplotlib
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    plt.rcParams.update(FONT)
    return plt


def _title(d) -> str:
    w = "" if d["width_mult"] == 1 else f" (width x{d['width_mult']:g})"
    return f"{d['arch']}{w} on {d['dataset']}"


def plot_accuracy(d: dict, path: Path) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 5.5), dpi=110)
    subs = d["submodels"]
    x = [s["macs_pct"] for s in subs]
    acc = [(s["macs_pct"], s["accuracy"]) for s in subs if s["accuracy"] is not None]
    scr = [(s["macs_pct"], s["scratch_accuracy"]) for s in subs if s["scratch_accuracy"] is not None]
    pub = d["published"]
    if acc:
        ax.plot(*zip(*acc), "o-", color=COLORS["reds"], lw=2, ms=8, label="reds, test accuracy (this family)")
        for px, py in acc:
            ax.annotate(f"{py:.1f}", (px, py), textcoords="offset points", xytext=(0, -18), ha="center",
                        fontsize=10, color=COLORS["reds"])
    if scr:
        ax.plot(*zip(*scr), "s--", color=COLORS["scratch"], lw=1.5, ms=8, label="same widths trained alone (scratch)")
    if pub:
        lab = "REDS published" + (" (approx., from a figure)" if pub["approximate"] else "") + \
              " at its budget % of MACs"
        ax.plot(pub["budgets_pct"], pub["accuracy"], "D:", color=COLORS["published"], lw=1.5, ms=7, label=lab)
        if pub.get("scratch_25") is not None:
            ax.plot([25], [pub["scratch_25"]], "x", color=COLORS["pscratch"], ms=10, mew=2.5,
                    label="REDS published scratch at 25 %")
    if not acc and not scr:
        ax.text(0.5, 0.5, "no test accuracy in family.json\n(run `reds eval FAMILY`)", transform=ax.transAxes,
                ha="center", va="center", fontsize=13, color="#555555",
                bbox={"boxstyle": "round", "fc": "#f4f4f4", "ec": "#cccccc"})
    ys = [v for _, v in acc + scr] + (list(pub["accuracy"]) if pub else [])
    if ys:
        lo, hi = min(ys), max(ys)
        pad = max(1.0, 0.12 * (hi - lo))
        ax.set_ylim(max(0.0, lo - pad), min(100.0, hi + pad) + (0.5 if hi + pad < 100 else 0))
    else:
        ax.set_ylim(0, 100)
    ax.set_xlim(0, 105)
    for xv in x:
        ax.axvline(xv, color="#dddddd", lw=0.8, zorder=0)
    chance = 100.0 / d["num_classes"] if d.get("num_classes") else None
    if chance is not None:  # drawn where the axis reaches it; always in the legend
        ax.axhline(chance, color="#999999", lw=1, ls="-.", zorder=0,
                   label=f"chance ({d['num_classes']} classes): {chance:.1f} %")
    ax.set_xlabel(f"MACs, % of the full model ({d['full_macs']:,} MACs)")
    ax.set_ylabel("test accuracy (%)")
    tr = d.get("training") or {}
    how = ""
    if tr.get("epochs") is not None:
        how = (f"\ntrained {tr['epochs']} + {tr.get('finetune_epochs', 0)} epochs"
               + (f" (recipe {tr['recipe']})" if tr.get("recipe") else "")
               + (f" on {tr['train_samples']:,} samples" if tr.get("train_samples") else "")
               + " (REDS fine-tunes 250 epochs)")
    ax.set_title(f"Accuracy vs MACs: {_title(d)}{how}", fontsize=12)
    ax.grid(True, alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="center right", fontsize=10)  # the curves run along the top and the bottom
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _scale(v: float) -> tuple[float, str]:
    """A divisor and its word for axis values up to v (1e6 -> 'million')."""
    for div, word in ((1e9, "billion "), (1e6, "million "), (1e3, "thousand ")):
        if v >= 2 * div:
            return div, word
    return 1.0, ""


def _time(us: float) -> str:
    return f"{us / 1e3:,.1f} ms" if us >= 10_000 else f"{us:,.1f} µs"


def plot_latency(d: dict, path: Path) -> None:
    plt = _plt()
    b = d["bench"]
    rows = b["submodels"]
    hz = b["clock_hz"]
    fig, ax = plt.subplots(figsize=(8.5, 5.8), dpi=110)
    top = max(r["macs"] for r in rows)
    cpm = b["cycles_per_mac_full"] or 0
    ymax = max([r["cycles_max"] or r["cycles_median"] for r in rows] + [top * 1.05 * cpm])
    xd, xw = _scale(top)
    yd, yw = _scale(ymax)
    macs = [r["macs"] / xd for r in rows]
    cyc = [r["cycles_median"] / yd for r in rows]
    if cpm:
        ax.plot([0, top * 1.05 / xd], [0, top * 1.05 * cpm / yd], "--", color=COLORS["line"], lw=1.5,
                label=f"proportional to MACs ({cpm:.2f} "
                      f"{'instructions' if b.get('cycle') == 'instruction' else 'cycles'}/MAC, through the full model)")
    err = [[(r["cycles_median"] - (r["cycles_min"] if r["cycles_min"] is not None else r["cycles_median"])) / yd
            for r in rows],
           [((r["cycles_max"] if r["cycles_max"] is not None else r["cycles_median"]) - r["cycles_median"]) / yd
            for r in rows]]
    ax.errorbar(macs, cyc, yerr=err, fmt="o", color=COLORS["reds"], ms=9, capsize=4,
                label=f"reds, median of {b['runs']} runs (bars: min-max)")
    for r, x, y in zip(rows, macs, cyc):
        dev = f", {r['deviation_pct']:+.1f} %" if r["deviation_pct"] is not None else ""
        us = f"\n{_time(r['us_median'])}" if r["us_median"] is not None else ""
        ax.annotate(f"{r['budget']:.0%} budget{dev}{us}", (x, y), textcoords="offset points", xytext=(9, -5),
                    ha="left", va="top", fontsize=10)
    ax.set_xlim(0, top * 1.22 / xd)
    ax.set_ylim(0, ymax * 1.15 / yd)
    unit = "instructions, QEMU icount" if b.get("cycle") == "instruction" else "cycles"
    ax.set_xlabel(f"MACs per inference{f' ({xw.strip()})' if xw else ''}")
    ax.set_ylabel(f"latency per inference ({yw}{unit})")
    if hz:
        ms = ymax / hz * 1e6 >= 10_000
        f = (1e3 if ms else 1e6) * yd / hz
        sec = ax.secondary_yaxis("right", functions=(lambda c: c * f, lambda t: t / f))
        sec.set_ylabel(f"{'ms' if ms else 'µs'} at {hz / 1e6:g} MHz")
    ax.set_title(f"Latency vs MACs on {b['board'] or 'the board'}: {_title(d)}\n"
                 f"(% = latency ratio / MAC ratio - 1, both vs the full model)", fontsize=12)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper left", fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_switch(d: dict, path: Path) -> None:
    import numpy as np

    plt = _plt()
    b = d["bench"]
    K = len(d["submodels"])
    pairs = b["switch"]["pairs"]
    fig, (hm, bars) = plt.subplots(1, 2, figsize=(12, 5.2), dpi=110, gridspec_kw={"width_ratios": [1.1, 1]})
    unit = "instructions (QEMU icount)" if b.get("cycle") == "instruction" else (b.get("cycle") or "cycles")
    same = bool(pairs) and len({p["cycles"] for p in pairs}) == 1
    grid = np.full((K, K), np.nan)
    for p in pairs:
        grid[p["from"], p["to"]] = p["cycles"]
    im = hm.imshow(grid, cmap="Blues", vmin=0, vmax=max(1, np.nanmax(grid) if pairs else 1) * 1.6)
    labels = [f"{k}\n({s['budget']:.0%})" for k, s in enumerate(d["submodels"])]
    hm.set_xticks(range(K), labels)
    hm.set_yticks(range(K), [l.replace("\n", " ") for l in labels])
    for i in range(K):
        for j in range(K):
            txt = "-" if i == j else f"{grid[i, j]:g}"
            hm.text(j, i, txt, ha="center", va="center", fontsize=11 if K <= 6 else 8)
    hm.set_xlabel("to submodel (budget)")
    hm.set_ylabel("from submodel (budget)")
    if same:  # one number says it all: every switch costs the same (one store)
        hm.set_title(f"every one of the {len(pairs)} switches k -> k' took {pairs[0]['cycles']:g} {unit}\n"
                     "(the same for every pair: a switch is one store)", fontsize=11)
    else:
        hm.set_title(f"reds switch k -> k' ({unit})")
        fig.colorbar(im, ax=hm, fraction=0.046, pad=0.04, label=unit)

    hz = b["clock_hz"]
    ref = b["reds_switch_cycles_at_board_clock"]
    short = "instructions" if b.get("cycle") == "instruction" else "cycles"
    names, vals, cols = [f"reds median\n({short})", f"reds max\n({short})"], \
        [b["switch"]["median"] or 0, b["switch"]["max"] or 0], [COLORS["reds"], COLORS["reds"]]
    if ref:
        names.append(f"REDS 38 µs\nat {hz / 1e6:g} MHz")
        vals.append(ref)
        cols.append(COLORS["published"])
    names.append("REDS 38 µs\non the Nano")
    vals.append(b["reds_switch_cycles_nano"])
    cols.append("#c7c7c7")
    pos = range(len(vals))
    bars.bar(pos, [max(v, 0.5) for v in vals], color=cols, edgecolor="#333333")
    bars.set_yscale("log")
    for p_, v in zip(pos, vals):
        bars.text(p_, max(v, 0.5) * 1.15, f"{v:,.0f}" if v >= 100 else f"{v:g}", ha="center", va="bottom",
                  fontsize=11)
    bars.set_xticks(list(pos), names, fontsize=10)
    bars.set_ylim(0.5, max(vals + [1]) * 6)
    bars.set_ylabel("per switch, log scale")
    if b.get("cycle") == "instruction":
        bars.text(0.5, -0.22, "reds: instructions on the virtual M4 (a real M4 takes at least a cycle each);\n"
                  "REDS: its measured 38 µs as cycles at this board's clock and at the Nano's 64 MHz", transform=bars.transAxes,
                  ha="center", va="top", fontsize=9, color="#555555")
    us = f" = {(b['switch']['median'] or 0) / hz * 1e6:.2f} µs" if hz else ""
    bars.set_title(f"reds median {b['switch']['median']:g} {short}{us}\nvs REDS (TFLite Micro, "
                   f"Arduino Nano 33 BLE)", fontsize=12)
    bars.grid(True, axis="y", alpha=0.3, which="both")
    fig.suptitle(f"Switch cost on {b['board'] or 'the board'}: {_title(d)}", fontsize=13)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


# ---- markdown ---------------------------------------------------------------------------------
def _f(v, fmt="{:.2f}") -> str:
    return "-" if v is None else fmt.format(v)


def markdown(d: dict, files: dict[str, str]) -> str:
    from ..tables import markdown as md_table

    out = [f"# reds report: {_title(d)}", "",
           f"Family `{Path(d['family']).name}`, {len(d['submodels'])} nested submodels; full model "
           f"{d['full_macs']:,} MACs. Knapsack: " +
           (", ".join(f"{k} {v:.2f} s" if k == "seconds" and isinstance(v, (int, float)) else f"{k} {v}"
                      for k, v in d["knapsack"].items()) or "-") + f". Made {d['date']} by `reds report`.", ""]
    pub = d["published"]
    out += ["## Submodels", "",
            md_table(["k", "budget", "widths (" + ", ".join(d["groups"]) + ")", "MACs", "% of full MACs",
                      "params", "weights (KiB)", "arena (KiB)", "val %", "test %", "scratch %"] +
                     (["REDS published %"] if pub else []),
                     [[s["index"], f"{s['budget']:.0%}", ", ".join(map(str, s["widths"])), f"{s['macs']:,}",
                       f"{s['macs_pct']:.1f}", f"{s['params']:,}", f"{s['weight_bytes'] / 1024:,.1f}",
                       f"{s['arena_bytes'] / 1024:,.1f}", _f(s["val_accuracy"]), _f(s["accuracy"]),
                       _f(s["scratch_accuracy"])] + ([_f(s["published"])] if pub else [])
                      for s in d["submodels"]]), ""]
    out += ["## Accuracy vs MACs", "", f"![accuracy vs MACs]({files['accuracy']})" if "accuracy" in files else
            "No test accuracy in family.json: run `reds eval FAMILY`, then `reds report` again.", ""]
    if pub:
        out.append(f"Grey: {pub['source']}{' (approximate, read from a figure)' if pub['approximate'] else ''}, "
                   "plotted at its budget (REDS's real submodels land below their budget). x is the % of the full "
                   "model's MACs.")
    else:
        out.append(f"REDS published no figures for {d['arch']} on {d['dataset']}; x is the % of the full "
                   "model's MACs.")
    out.append("")
    b = d.get("bench")
    if b is None:
        out += ["## Latency and switch", "", "No bench report given: run `reds bench FAMILY --json BENCH.json`, "
                "then `reds report FAMILY --out DIR --bench BENCH.json`.", ""]
        return "\n".join(out)
    hz = b["clock_hz"]
    out += ["## Latency vs MACs", "",
            f"On {b['board']} ({b['device']}), median of {b['runs']} runs; µs at {hz / 1e6:g} MHz. "
            + (f"Note: {b['cycle_note']}." if b.get("cycle_note") else ""), "",
            f"![latency vs MACs]({files['latency']})", "",
            md_table(["k", "budget", "MACs", "cycles (median)", "µs", "cycles/MAC", "latency ratio",
                      "MAC ratio", "deviation %"],
                     [[r["index"], f"{r['budget']:.0%}", f"{r['macs']:,}", f"{r['cycles_median']:,}",
                       _f(r["us_median"], "{:,.1f}"), _f(r["cycles_per_mac"]), _f(r["latency_ratio"], "{:.3f}"),
                       _f(r["macs_ratio"], "{:.3f}"), _f(r["deviation_pct"], "{:+.1f}")] for r in b["submodels"]]),
            "", "Deviation: (latency ratio / MAC ratio - 1), both against the full model; 0 means latency "
            "exactly proportional to MACs.", ""]
    sw = b["switch"]
    ref = b["reds_switch_cycles_at_board_clock"]
    out += ["## Switch", "", f"![switch cycles]({files['switch']})", "",
            f"{len(sw['pairs'])} ordered switches k -> k': median {_f(sw['median'], '{:g}')}, min "
            f"{_f(sw['min'], '{:g}')}, max {_f(sw['max'], '{:g}')} cycles"
            + (f" ({sw['median'] / hz * 1e6:.2f} µs at {hz / 1e6:g} MHz)" if hz and sw["median"] is not None else "")
            + f". REDS's switch: {REDS_SWITCH_US:g} µs on an Arduino Nano 33 BLE Sense = "
            f"{b['reds_switch_cycles_nano']:,.0f} cycles at 64 MHz"
            + (f", {ref:,.0f} cycles at this board's {hz / 1e6:g} MHz" if ref else "")
            + (f"; reds is {ref / sw['median']:,.0f}x fewer cycles at the same clock" if ref and sw["median"] else "")
            + ".", ""]
    return "\n".join(out)


# ---- the folder ------------------------------------------------------------------------------
def report(family: OpenFamily, out_dir, bench=None) -> dict:
    """Write the report of `family` (and of the bench JSON `bench`) into `out_dir`;
    return its data, with "files" (name -> path inside out_dir)."""
    staging.check_out(out_dir, DATA, FORMAT, "report")
    d = collect(family, bench)
    with staging.staged(out_dir, DATA, FORMAT, "report") as tmp:
        files = {}
        if any(s["accuracy"] is not None or s["scratch_accuracy"] is not None for s in d["submodels"]):
            files["accuracy"] = "accuracy.png"  # no placeholder picture for a family never tested
            plot_accuracy(d, tmp / files["accuracy"])
        if "bench" in d:
            files["latency"] = "latency.png"
            files["switch"] = "switch.png"
            plot_latency(d, tmp / files["latency"])
            plot_switch(d, tmp / files["switch"])
        files["readme"] = "README.md"
        (tmp / "README.md").write_text(markdown(d, files))
        d["files"] = files
        (tmp / DATA).write_text(json.dumps(d, indent=2) + "\n")
    return d
