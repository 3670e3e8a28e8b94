"""Benchmark the nested knapsack (CP-SAT) on every architecture at REDS's full sizes.

For each architecture (default data set), each budget set (25/50/75/100 % and ten budgets
10..100 %) and each mode (bottom-up, top-down, joint) it runs `reds.search.knapsack.solve` and
records, per submodel: status, seconds, objective, proven bound, MACs, MAC target and
MACs/target. Importance scores are a training-free, seeded proxy: L1 scores of a seeded
random-init NestedNet, with every group permuted into descending order (what the trainer
feeds the knapsack after `order_by_importance`).

    python benchmarks/knapsack.py [--out benchmarks/results/knapsack.json] [--time-limit S]
                                  [--archs dnn-s cnn-s ...] [--modes ...] [--sets 4 10]

Writes the JSON and a markdown table next to it (same name, .md), both atomically
(temp file + rename) and after every solve, so an interrupted run leaves valid partial
results. Progress goes to stderr.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shlex
import sys
import time
from pathlib import Path

import torch

from machine import describe as describe_machine  # noqa: E402
from reds.ir.archs import ARCHS, build_spec
from reds.errors import RedsError
from reds.nn.importance import scores as importance_scores
from reds.search import depth
from reds.search.knapsack import MODES, solve
from reds.nn.nested import NestedNet
from reds.nn.permute import order_by_importance, permute_all

# elastic depth (`reds train --depth on`): the knapsack also picks which blocks run; only
# for architectures with skippable blocks
DEPTH_MODES = tuple(f"{m}+depth" for m in depth.MODES)
BUDGET_SETS = {
    "4": [0.25, 0.5, 0.75, 1.0],
    "10": [round(0.1 * i, 1) for i in range(1, 11)],
}

# REDS (arXiv 2311.13349) reports its knapsack search times with Gurobi.
PUBLISHED = [
    ("DS-CNN-S, 25 % budget, Fashion-MNIST", "19 min"),
    ("DS-CNN-S, 25 % budget, CIFAR-10", "90 min"),
    ("DS-CNN-L, per solve", ">= 3 h"),
]


def proxy_scores(spec, seed: int, method: str = "l1") -> dict[str, torch.Tensor]:
    """Importance of a seeded random-init net, units permuted into descending order.

    l1: sum |W| of each unit's incoming weights (nearly flat on a random init: easy for
    the solver). random: seeded uniform scores (steeper, uneven groups: a harder case)."""
    torch.manual_seed(seed)
    net = NestedNet(spec)
    sc = importance_scores(net, method, seed=seed)
    perms = order_by_importance(sc)
    permute_all(net, perms)
    s = importance_scores(net, "l1") if method == "l1" else {g: v[perms[g]] for g, v in sc.items()}
    for g, v in s.items():
        assert torch.all(v[:-1] >= v[1:]), f"scores of {g} are not in descending order"
    return s


def proxy_block_scores(spec, scores, seed: int) -> dict[str, float]:
    """A training-free block value (the trainer measures a loss increase): a seeded uniform
    share, up to the mean group's total score, so some blocks are cheap to skip and some dear."""
    gen = torch.Generator().manual_seed(seed)
    mean = sum(float(v.sum()) for v in scores.values()) / len(scores)
    return {b.name: float(torch.rand((), generator=gen)) * mean for b in spec.blocks}


def atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def gap(objective: int, bound: int) -> float:
    return 0.0 if bound <= 0 else (bound - objective) / bound


def run_one(spec, scores, arch, mode, set_name, budgets, args) -> dict:
    t0 = time.perf_counter()
    rec = {"arch": arch, "mode": mode, "budget_set": set_name, "budgets": budgets,
           "full_macs": None, "time_limit": args.time_limit}
    try:
        if mode in DEPTH_MODES:
            sols = depth.solve(spec, scores, proxy_block_scores(spec, scores, args.seed), budgets,
                               mode.removesuffix("+depth"), time_limit=args.time_limit, seed=args.seed,
                               workers=args.workers, lagrangian=not args.no_lagrangian)
        else:
            sols = solve(spec, scores, budgets, mode, time_limit=args.time_limit, seed=args.seed,
                         workers=args.workers, lagrangian=not args.no_lagrangian)
    except RedsError as e:
        rec.update(error=str(e), seconds=time.perf_counter() - t0, submodels=[])
        return rec
    rec["seconds"] = round(time.perf_counter() - t0, 3)
    rec["submodels"] = [{
        "budget": s.budget, "status": s.status, "seconds": round(s.seconds, 3),
        "objective": s.objective, "bound": s.bound, "gap": round(gap(s.objective, s.bound), 6),
        "macs": s.macs, "target": s.target_macs, "macs_over_target": round(s.macs / s.target_macs, 5),
        "widths": s.widths, "skipped": [b.name for b in spec.skipped(s.widths)],
    } for s in sols]
    rec["objective_sum"] = sum(s.objective for s in sols)
    return rec


def fmt_s(x: float) -> str:
    return f"{x:.2f}" if x < 100 else f"{x:.0f}"


def markdown(meta: dict, records: list[dict]) -> str:
    lines = [
        "# Nested knapsack benchmark (CP-SAT)",
        "",
        f"- command: `{meta['command']}`",
        f"- date: {meta['date']}",
        f"- machine: {meta['machine']}; load average at start {meta['loadavg_start']}"
        + (f", at end {meta['loadavg_end']}" if meta.get("loadavg_end") else "")
        + " (a shared machine's load stretches the seconds)",
        f"- OR-Tools {meta['ortools']}, torch {meta['torch']}, CP-SAT workers {meta['workers']}, "
        f"time limit {meta['time_limit']:g} s per CP-SAT call, seed {meta['seed']}",
        f"- scores: {meta['scores']} importance of a seeded random-init network, permuted into descending "
        "order per group",
        f"- Lagrangian width filter: {'on' if meta['lagrangian'] else 'off (CP-SAT on the full width box)'}",
        "- bottom-up and top-down solve one CP-SAT model per budget; joint solves one model for the whole "
        "family (its seconds, status and bound belong to the family). Gap = (bound - objective) / bound of "
        "the worst submodel (0 when every solve is OPTIMAL). `+depth`: the knapsack also chooses which "
        "skippable blocks run (`reds train --depth on`; every nested depth mask searched, block values a "
        "seeded proxy), for the architectures that have skippable blocks.",
        "",
        "| arch | full MACs | budgets | mode | seconds | status | worst gap | MACs/target (min..max) |",
        "|---|---:|---|---|---:|---|---:|---|",
    ]
    for r in records:
        budgets = "25/50/75/100" if r["budget_set"] == "4" else "10..100 (10)"
        if r.get("error"):
            lines.append(f"| {r['arch']} | {r['full_macs']:,} | {budgets} | {r['mode']} | "
                         f"{fmt_s(r['seconds'])} | error: {r['error']} | | |")
            continue
        subs = r["submodels"]
        statuses = {}
        for s in subs:
            statuses[s["status"]] = statuses.get(s["status"], 0) + 1
        if r["mode"] == "joint":
            status = subs[0]["status"]
            worst = gap(r["objective_sum"], subs[0]["bound"])
        else:
            status = ", ".join(f"{n}x {k}" for k, n in sorted(statuses.items()))
            worst = max(s["gap"] for s in subs)
        ratios = [s["macs_over_target"] for s in subs]
        lines.append(f"| {r['arch']} | {r['full_macs']:,} | {budgets} | {r['mode']} | {fmt_s(r['seconds'])} | "
                     f"{status} | {worst:.2%} | {min(ratios):.4f}..{max(ratios):.4f} |")
    per = [r for r in records if not r.get("error") and r["mode"] != "joint"]
    if per:
        lines += ["", "## Per submodel (bottom-up and top-down)", "",
                  "| arch | mode | budget | status | seconds | gap | MACs | target | MACs/target | blocks skipped |",
                  "|---|---|---:|---|---:|---:|---:|---:|---:|---:|"]
        for r in per:
            for s in r["submodels"]:
                lines.append(f"| {r['arch']} | {r['mode']} | {s['budget']:.0%} | {s['status']} | "
                             f"{fmt_s(s['seconds'])} | {s['gap']:.2%} | {s['macs']:,} | {s['target']:,} | "
                             f"{s['macs_over_target']:.4f} | {len(s.get('skipped', []))} |")
    lines += ["", "## REDS's published search times (Gurobi), for comparison", "",
              "| setting | search time |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in PUBLISHED]
    total = sum(r["seconds"] for r in records)
    lines += ["", f"Total solver wall time of this run: {total:.0f} s over {len(records)} solves.", ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/knapsack.json"))
    ap.add_argument("--time-limit", type=float, default=60.0, help="seconds per CP-SAT call (default 60)")
    ap.add_argument("--archs", nargs="+", default=list(ARCHS), choices=list(ARCHS))
    ap.add_argument("--modes", nargs="+", default=[*MODES, *DEPTH_MODES], choices=[*MODES, *DEPTH_MODES])
    ap.add_argument("--sets", nargs="+", default=list(BUDGET_SETS), choices=list(BUDGET_SETS),
                    help="budget sets: 4 = 25/50/75/100 %%, 10 = 10..100 %% in steps of 10")
    ap.add_argument("--workers", type=int, default=None, help="CP-SAT workers (default: reds' choice)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--scores", choices=["l1", "random"], default="l1",
                    help="importance proxy on the random-init net (default l1)")
    ap.add_argument("--no-lagrangian", action="store_true",
                    help="give CP-SAT the full width box (reds.search.knapsack.solve(lagrangian=False))")
    args = ap.parse_args(argv)

    from ortools import __version__ as ortools_version
    from reds.ir.cost import cost

    workers = args.workers or max(2, min(8, os.cpu_count() or 2))
    args.workers = workers
    meta = {
        "command": " ".join(["python", *map(shlex.quote, [sys.argv[0], *(sys.argv[1:] if argv is None else argv)])]),
        "date": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "machine": describe_machine(), "cpu_count": os.cpu_count(), "processor": platform.processor(),
        "ortools": ortools_version, "torch": torch.__version__,
        "workers": workers, "time_limit": args.time_limit, "seed": args.seed,
        "scores": args.scores, "lagrangian": not args.no_lagrangian,
        "loadavg_start": [round(x, 2) for x in os.getloadavg()],
    }
    md_path = args.out.with_suffix(".md")
    records: list[dict] = []
    blocks = {a: bool(build_spec(a).blocks) for a in args.archs}
    jobs = [(a, s, m) for a in args.archs for s in args.sets for m in args.modes
            if m not in DEPTH_MODES or blocks[a]]
    cache: dict[str, tuple] = {}
    t_start = time.perf_counter()
    for i, (arch, set_name, mode) in enumerate(jobs, 1):
        if arch not in cache:
            spec = build_spec(arch)
            cache[arch] = (spec, proxy_scores(spec, args.seed, args.scores), cost(spec, spec.full_widths()).macs)
        spec, scores, full_macs = cache[arch]
        budgets = BUDGET_SETS[set_name]
        rec = run_one(spec, scores, arch, mode, set_name, budgets, args)
        rec["full_macs"] = full_macs
        records.append(rec)
        if rec.get("error"):
            summary = f"error: {rec['error']}"
        else:
            subs = rec["submodels"]
            st = {}
            for s in subs:
                st[s["status"]] = st.get(s["status"], 0) + 1
            summary = ", ".join(f"{n}x {k}" for k, n in st.items()) + \
                f"; worst MACs/target {min(s['macs_over_target'] for s in subs):.4f}"
        print(f"[{i}/{len(jobs)}] {arch} {len(budgets)} budgets {mode}: {rec['seconds']:.2f} s, {summary} "
              f"(elapsed {time.perf_counter() - t_start:.0f} s)", file=sys.stderr, flush=True)
        if i == len(jobs):
            meta["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
        atomic_write(args.out, json.dumps({"meta": meta, "results": records}, indent=1) + "\n")
        atomic_write(md_path, markdown(meta, records))
    print(f"wrote {args.out} and {md_path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
