"""The nested knapsack (CP-SAT) against brute force, and its guarantees on real networks.

Brute force enumerates every width vector of tiny specs (dense groups of 3-6 units, and a
conv -> depthwise -> pointwise -> dense chain), scores them with the same integer value
tables (`value_tables`) and the same MAC target rule (`target_macs`), and checks limits
with the cost model (`reds.ir.cost.cost`), independently of the solver's formulation:

- bottom-up: submodel k must be the best vector of budget k among those >= the solver's
  own submodel k-1 (conditioning on the solver's previous choice keeps the check exact
  when ties let it pick any of several optima); top-down likewise with <=;
- joint: the summed value must equal the best over all nested chains, found by dynamic
  programming over the feasible sets (cross-checked against a plain enumeration of all
  chains on the smallest instances).

Objectives are compared, not widths (equal-value vectors may differ).
"""
from __future__ import annotations

import itertools
import random

import pytest
import torch

from reds.errors import RedsError
from reds.ir.archs import build_spec
from reds.ir.cost import cost
from reds.ir.spec import AvgPool, BatchNorm, Conv2d, Dense, DepthwiseConv2d, Flatten, Group, MaxPool, ReLU, Spec
from reds.search.knapsack import MODES, VALUE_SCALE, Limits, solve, target_macs, value_tables
from reds.search.lagrangian import lagrangian_domains


# ---------------------------------------------------------------------------------------
# tiny instances
# ---------------------------------------------------------------------------------------
def tiny_mlp(rng: random.Random) -> Spec:
    n = rng.choice([2, 3])
    groups = tuple(Group(f"h{i}", rng.randint(3, 6), rng.choice([1, 1, 2])) for i in range(n))
    ops = [Flatten("flatten")]
    for g in groups:
        ops += [Dense(g.name, g.name, bias=rng.random() < 0.7), ReLU(f"relu_{g.name}")]
    ops.append(Dense("out", 3))
    return Spec("mlp", (rng.choice([1, 2]), 2, 3), 3, groups, tuple(ops))


def tiny_conv(rng: random.Random) -> Spec:
    """conv (group a) -> depthwise on a -> pointwise (group b) -> [pool] -> dense (group c)."""
    groups = (Group("a", rng.randint(3, 5), rng.choice([1, 2])), Group("b", rng.randint(3, 5), 1),
              Group("c", rng.randint(3, 5), 1))
    ops = [Conv2d("conv", "a", (3, 3), (1, 1), rng.choice(["same", "valid"])), BatchNorm("bn0"), ReLU("r0"),
           DepthwiseConv2d("dw", (3, 3), (2, 2), "same"), BatchNorm("bn1"), ReLU("r1"),
           Conv2d("pw", "b", (1, 1), bias=False), BatchNorm("bn2"), ReLU("r2")]
    if rng.random() < 0.5:
        ops.append(MaxPool("mp", (2, 2)))
    else:
        ops.append(AvgPool("ap", (2, 2), (1, 1)))
    ops += [Flatten("flatten"), Dense("fc", "c"), ReLU("r3"), Dense("out", 4)]
    return Spec("convchain", (rng.choice([1, 2]), 8, 7), 4, groups, tuple(ops))


def descending_scores(spec: Spec, rng: random.Random) -> dict[str, torch.Tensor]:
    out = {}
    for g in spec.groups:
        s = sorted((rng.random() ** rng.choice([1, 3]) for _ in range(g.units)), reverse=True)
        if rng.random() < 0.2:  # a unit of zero importance (ties in value)
            s[-1] = 0.0
        out[g.name] = torch.tensor(s, dtype=torch.float64)
    return out


def instance(seed: int):
    rng = random.Random(seed)
    spec = (tiny_mlp if seed % 2 == 0 else tiny_conv)(rng)
    scores = descending_scores(spec, rng)
    full = cost(spec, spec.full_widths())
    least = cost(spec, {g.name: g.min_units for g in spec.groups})
    # Budgets above what the narrowest network needs (tiny nets have large fixed costs),
    # except seed 17: a smallest budget nothing fits.
    floor = least.macs / full.macs
    if seed == 17:
        budgets = [round(floor * 0.9, 4), 0.8, 1.0]
    elif seed % 3 == 0 and floor < 0.3:
        budgets = [0.3, 0.6, 1.0]
    else:
        budgets = sorted({round(rng.uniform(floor, 1.0), 3) for _ in range(3)} | {1.0})[-3:]
    limits = Limits()
    # memory limits between the narrowest and the full network's needs: feasible, and binding
    if seed % 4 == 1:
        limits.weight_bytes = int(least.weight_bytes + (full.weight_bytes - least.weight_bytes) * rng.uniform(0.2, 0.7))
    if seed % 4 == 2:
        limits.arena_bytes = int(least.arena_bytes + (full.arena_bytes - least.arena_bytes) * rng.uniform(0.2, 0.7))
    if seed % 5 == 3:
        g = rng.choice(spec.groups)
        limits.min_units = {g.name: rng.randint(2, 3)}
    if seed == 19:  # a memory limit nothing fits
        limits.weight_bytes = least.weight_bytes - 4
    return spec, scores, budgets, limits


# ---------------------------------------------------------------------------------------
# brute force
# ---------------------------------------------------------------------------------------
def min_width(spec: Spec, limits: Limits, g: Group) -> int:
    return max(1, min(g.units, limits.min_units.get(g.name, g.min_units)))


def feasible_vectors(spec: Spec, tables, limits: Limits, budget: float) -> dict[tuple[int, ...], int]:
    """Every width vector (in spec.groups order) that fits `budget` and the limits -> value."""
    full_macs = cost(spec, spec.full_widths()).macs
    target = target_macs(full_macs, budget)
    names = spec.group_names
    out = {}
    for v in itertools.product(*(range(min_width(spec, limits, g), g.units + 1) for g in spec.groups)):
        w = dict(zip(names, v))
        c = cost(spec, w)
        if c.macs > target:
            continue
        if limits.weight_bytes is not None and c.weight_bytes > limits.weight_bytes:
            continue
        if limits.arena_bytes is not None and c.arena_bytes > limits.arena_bytes:
            continue
        out[v] = sum(tables[g][x] for g, x in w.items())
    return out


def leq(u, v) -> bool:
    return all(a <= b for a, b in zip(u, v))


def best_chain_dp(sets: list[dict]) -> int | None:
    """Max summed value over chains v_0 <= v_1 <= ... with v_k in sets[k]."""
    best = dict(sets[0])
    for k in range(1, len(sets)):
        nxt = {}
        for v, val in sets[k].items():
            prev = [b for u, b in best.items() if leq(u, v)]
            if prev:
                nxt[v] = val + max(prev)
        best = nxt
    return max(best.values()) if best else None


def best_chain_enumerated(sets: list[dict]) -> int | None:
    vals = [sum(s[v] for s, v in zip(sets, chain)) for chain in itertools.product(*(list(s) for s in sets))
            if all(leq(a, b) for a, b in zip(chain, chain[1:]))]
    return max(vals) if vals else None


def check_solution_basics(spec, scores, budgets, limits, sols):
    tables = value_tables(spec, scores)
    full_macs = cost(spec, spec.full_widths()).macs
    assert [s.budget for s in sols] == sorted(budgets)
    for s in sols:
        c = cost(spec, s.widths)
        assert s.macs == c.macs <= s.target_macs == target_macs(full_macs, s.budget)
        assert s.objective == sum(tables[g][w] for g, w in s.widths.items())
        assert s.objective <= s.bound
        for g in spec.groups:
            assert min_width(spec, limits, g) <= s.widths[g.name] <= g.units
        if limits.weight_bytes is not None:
            assert c.weight_bytes <= limits.weight_bytes
        if limits.arena_bytes is not None:
            assert c.arena_bytes <= limits.arena_bytes
    for a, b in zip(sols, sols[1:]):
        assert all(a.widths[g] <= b.widths[g] for g in spec.group_names), (a.widths, b.widths)


# ---------------------------------------------------------------------------------------
# knapsack == brute force
# ---------------------------------------------------------------------------------------
SEEDS = range(20)


def test_brute_force_helpers_agree():
    """The chain DP used for `joint` equals plain enumeration of all chains."""
    for seed in range(6):
        rng = random.Random(100 + seed)
        spec = Spec("t", (1, 2, 2), 2, (Group("x", 3), Group("y", rng.randint(2, 3))),
                    (Flatten("f"), Dense("x", "x"), Dense("y", "y"), Dense("o", 2)))
        tables = value_tables(spec, descending_scores(spec, rng))
        sets = [feasible_vectors(spec, tables, Limits(), b) for b in (0.3, 0.6, 1.0)]
        assert best_chain_dp(sets) == best_chain_enumerated(sets)


# bottom-up and top-down run with and without the Lagrangian width filter (joint has none)
MODE_VARIANTS = [("bottom-up", True), ("bottom-up", False), ("top-down", True), ("top-down", False),
                 ("joint", True)]


@pytest.mark.parametrize("mode, lagrangian", MODE_VARIANTS, ids=[f"{m}-{'lag' if l else 'plain'}" for m, l in MODE_VARIANTS])
@pytest.mark.parametrize("seed", SEEDS)
def test_knapsack_equals_brute_force(seed, mode, lagrangian):
    spec, scores, budgets, limits = instance(seed)
    tables = value_tables(spec, scores)
    sets = [feasible_vectors(spec, tables, limits, b) for b in budgets]
    names = spec.group_names
    if not sets[0]:  # nothing fits the smallest budget: the solver must say so
        with pytest.raises(RedsError, match="no submodel fits"):
            solve(spec, scores, budgets, mode, limits, time_limit=20, workers=2, lagrangian=lagrangian)
        return
    sols = solve(spec, scores, budgets, mode, limits, time_limit=20, workers=2, lagrangian=lagrangian)
    check_solution_basics(spec, scores, budgets, limits, sols)
    for s in sols:
        assert s.status == "OPTIMAL", s
    vec = [tuple(s.widths[g] for g in names) for s in sols]
    if mode == "bottom-up":
        for k, s in enumerate(sols):
            cands = [val for v, val in sets[k].items() if k == 0 or leq(vec[k - 1], v)]
            assert s.objective == max(cands), (k, s)
            assert s.bound == s.objective
    elif mode == "top-down":
        last = len(sols) - 1
        for k in reversed(range(len(sols))):
            cands = [val for v, val in sets[k].items() if k == last or leq(v, vec[k + 1])]
            assert sols[k].objective == max(cands), (k, sols[k])
    else:
        assert sum(s.objective for s in sols) == best_chain_dp(sets)
        assert sols[0].bound == sum(s.objective for s in sols)  # the family's bound
    # The largest budget alone: no mode can beat the unconstrained optimum there, and
    # bottom-up/joint may fall below it only through nesting.
    assert sols[-1].objective <= max(sets[-1].values())
    if mode == "top-down":
        assert sols[-1].objective == max(sets[-1].values())
        assert sols[0].objective <= max(sets[0].values())


@pytest.mark.parametrize("seed", SEEDS)
def test_lagrangian_filter_keeps_every_optimum(seed):
    """The width filter in front of CP-SAT: its incumbent is feasible, its bound is >= the
    brute-force optimum, and every optimal vector survives the filter (so CP-SAT on the
    filtered box finds the true optimum). Checked with nesting bounds too."""
    spec, scores, budgets, limits = instance(seed)
    tables = value_tables(spec, scores)
    names = spec.group_names
    full_macs = cost(spec, spec.full_widths()).macs
    pruned_any = False
    for budget in budgets:
        feas = feasible_vectors(spec, tables, limits, budget)
        for nest in ({}, {"lower": {g.name: min_width(spec, limits, g) + 1 for g in spec.groups}},
                     {"upper": {g.name: g.units - 1 for g in spec.groups}}):
            lo = nest.get("lower", {})
            up = nest.get("upper", {})
            cands = {v: val for v, val in feas.items()
                     if all(lo.get(g, 0) <= x <= up.get(g, 10**9) for g, x in zip(names, v))}
            try:
                f = lagrangian_domains(spec, tables, limits, target_macs(full_macs, budget), **nest)
            except RedsError:  # a nesting bound above a group's size
                continue
            if not cands:
                assert f is None or f.incumbent is None
                continue
            best = max(cands.values())
            if f is None:
                continue
            inc = tuple(f.incumbent[g] for g in names)
            assert inc in cands, "the incumbent is not feasible"
            assert f.bound >= best - 1e-6
            for v, val in cands.items():
                if val == best:
                    assert all(x in f.domains[g] for g, x in zip(names, v)), (v, f.domains)
            rng = {g.name: range(max(min_width(spec, limits, g), lo.get(g.name, 0)), min(g.units, up.get(g.name, g.units)) + 1)
                   for g in spec.groups}
            assert all(set(f.domains[g]) <= set(rng[g]) for g in names)
            pruned_any |= any(len(f.domains[g]) < len(rng[g]) for g in names)
    if seed in (0, 1):  # the filter does something on these instances (not vacuous)
        assert pruned_any


def test_modes_trade_off_as_expected():
    """On one instance: bottom-up is optimal at the smallest budget, top-down at the
    largest, and joint has the best sum (each is exact, so these follow)."""
    for seed in range(8):
        spec, scores, budgets, limits = instance(seed)
        tables = value_tables(spec, scores)
        if not feasible_vectors(spec, tables, limits, budgets[0]):
            continue
        res = {m: solve(spec, scores, budgets, m, limits, time_limit=20, workers=2) for m in MODES}
        total = {m: sum(s.objective for s in r) for m, r in res.items()}
        assert total["joint"] >= max(total.values())
        assert res["bottom-up"][0].objective >= max(r[0].objective for r in res.values())
        assert res["top-down"][-1].objective >= max(r[-1].objective for r in res.values())


# ---------------------------------------------------------------------------------------
# value tables
# ---------------------------------------------------------------------------------------
def test_value_tables_are_concave_prefix_sums():
    spec = build_spec("dscnn-s", width_mult=0.25)
    rng = random.Random(3)
    scores = descending_scores(spec, rng)
    scores["g1"][-2:] = -1.0  # negative importance counts as zero: the minimum unit value, 1
    t = value_tables(spec, scores)
    total = 0
    for g in spec.groups:
        tab = t[g.name]
        assert len(tab) == g.units + 1 and tab[0] == 0
        d = [b - a for a, b in zip(tab, tab[1:])]
        assert all(x >= 0 for x in d) and all(x >= y for x, y in zip(d, d[1:])), g.name
        total += tab[-1]
    assert abs(total - VALUE_SCALE) <= len(spec.groups) * max(g.units for g in spec.groups)
    assert t["g1"][-1] == t["g1"][-3] + 2


def test_tiny_and_zero_scores_still_count():
    """A unit whose score rounds to 0 of VALUE_SCALE (or is 0: a dead unit) is still worth
    1: at 100 % every mode keeps the full network instead of an arbitrary tie."""
    spec = build_spec("dscnn-s", width_mult=0.5)
    gen = torch.Generator().manual_seed(0)
    scores = {g.name: torch.sort(torch.rand(g.units, dtype=torch.float64, generator=gen) ** 8,
                                 descending=True).values for g in spec.groups}
    scores["g1"][-3:] = 1e-12
    scores["g2"][-2:] = 0.0
    t = value_tables(spec, scores)
    assert all(b - a >= 1 for a, b in zip(t["g1"], t["g1"][1:]))
    for mode in MODES:
        sols = solve(spec, scores, [0.5, 1.0], mode, time_limit=10, workers=2)
        assert sols[-1].widths == spec.full_widths(), mode


# ---------------------------------------------------------------------------------------
# real architectures: nesting and targets in every mode
# ---------------------------------------------------------------------------------------
def seeded_scores(spec: Spec, seed: int = 0) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return {g.name: torch.sort(torch.rand(g.units, generator=gen, dtype=torch.float64), descending=True).values
            for g in spec.groups}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("arch, wm", [("dnn-s", 0.25), ("dnn-s", 0.5), ("dscnn-s", 0.25), ("dscnn-s", 0.5)])
def test_nesting_and_targets_on_real_archs(arch, wm, mode):
    spec = build_spec(arch, width_mult=wm)
    scores = seeded_scores(spec)
    budgets = [0.25, 0.5, 0.75, 1.0]
    sols = solve(spec, scores, budgets, mode, time_limit=5 if mode == "joint" else 10, workers=2)
    check_solution_basics(spec, scores, budgets, Limits(), sols)
    for s in sols:
        assert s.status in ("OPTIMAL", "FEASIBLE")
        assert s.widths[spec.group_names[0]] >= 2  # REDS's minimum of two units
    assert sols[-1].widths == spec.full_widths()  # at 100 % nothing needs dropping
    # every submodel uses a sizeable share of its budget (not REDS's far-below-target)
    for s in sols:
        assert s.macs >= 0.8 * s.target_macs, s


@pytest.mark.parametrize("arch, wm", [("dnn-s", 0.5), ("dscnn-s", 0.25), ("cnn-s", 0.5)])
def test_filter_matches_plain_cp_sat_on_real_archs(arch, wm):
    """With and without the Lagrangian width filter, CP-SAT proves the same optimum."""
    spec = build_spec(arch, width_mult=wm)
    scores = seeded_scores(spec, 2)
    for budget in (0.25, 0.6):
        a, = solve(spec, scores, [budget], time_limit=30, workers=2)
        b, = solve(spec, scores, [budget], time_limit=30, workers=2, lagrangian=False)
        assert a.status == b.status == "OPTIMAL"
        assert a.objective == b.objective == a.bound


@pytest.mark.parametrize("mode", MODES)
def test_tiny_time_limit_still_gives_valid_nested_solutions(mode):
    """When CP-SAT gets no time at all, the filter's incumbents (and for joint, the best
    sequential family) come back: feasible, nested, with a valid bound."""
    spec = build_spec("dscnn-s", width_mult=0.5)
    scores = seeded_scores(spec, 3)
    budgets = [0.25, 0.5, 0.75, 1.0]
    sols = solve(spec, scores, budgets, mode, time_limit=0.01, workers=2)
    check_solution_basics(spec, scores, budgets, Limits(), sols)
    for s in sols:
        assert s.status in ("OPTIMAL", "FEASIBLE")
    if mode == "joint":
        assert sols[0].bound >= sum(s.objective for s in sols)
    # 100 %: the full network, and the filter proves it optimal without CP-SAT
    assert sols[-1].widths == spec.full_widths()


# ---------------------------------------------------------------------------------------
# limits and errors
# ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def dscnn():
    spec = build_spec("dscnn-s", width_mult=0.5)
    return spec, seeded_scores(spec, 1), cost(spec, spec.full_widths())


@pytest.mark.parametrize("mode", MODES)
def test_weight_limit_respected(dscnn, mode):
    spec, scores, full = dscnn
    limit = int(0.4 * full.weight_bytes)
    sols = solve(spec, scores, [0.25, 0.5, 1.0], mode, Limits(weight_bytes=limit),
                 time_limit=5 if mode == "joint" else 10, workers=2)
    check_solution_basics(spec, scores, [0.25, 0.5, 1.0], Limits(weight_bytes=limit), sols)
    for s in sols:
        assert cost(spec, s.widths).weight_bytes <= limit
    # the limit binds: without it the largest submodel is the full network
    assert sols[-1].widths != spec.full_widths()


@pytest.mark.parametrize("mode", MODES)
def test_arena_limit_respected(dscnn, mode):
    spec, scores, full = dscnn
    limit = int(0.5 * full.arena_bytes)
    sols = solve(spec, scores, [0.25, 0.5, 1.0], mode, Limits(arena_bytes=limit),
                 time_limit=5 if mode == "joint" else 10, workers=2)
    for s in sols:
        assert cost(spec, s.widths).arena_bytes <= limit
    assert sols[-1].widths != spec.full_widths()


def test_min_units_respected(dscnn):
    spec, scores, _ = dscnn
    mins = {g.name: 5 for g in spec.groups}
    for mode in MODES:
        sols = solve(spec, scores, [0.1, 0.3], mode, Limits(min_units=mins), time_limit=5, workers=2)
        for s in sols:
            assert all(s.widths[g] >= 5 for g in mins), s.widths


def test_budget_nothing_fits(dscnn):
    spec, scores, _ = dscnn
    for mode in MODES:
        with pytest.raises(RedsError, match=r"no submodel fits budget 0.0001 .*MACs"):
            solve(spec, scores, [0.0001, 0.5], mode, time_limit=10, workers=2)
    # a memory limit below what the narrowest submodel needs
    with pytest.raises(RedsError, match="no submodel fits"):
        solve(spec, scores, [0.5], limits=Limits(weight_bytes=100), time_limit=10, workers=2)


def test_min_units_above_group_size_is_clamped_or_reported(dscnn):
    spec, scores, _ = dscnn
    # min_units larger than the group is clamped to the group size (width = full)
    g = spec.groups[0]
    sols = solve(spec, scores, [1.0], limits=Limits(min_units={g.name: g.units + 10}), time_limit=10, workers=2)
    assert sols[0].widths[g.name] == g.units


@pytest.mark.parametrize("budgets", [[0.0], [0.0, 0.5], [0.5, 1.2], [0.5, 0.5], [], [-0.1, 0.5], [1.0001]])
def test_bad_budgets(dscnn, budgets):
    spec, scores, _ = dscnn
    with pytest.raises(RedsError, match="budgets must be"):
        solve(spec, scores, budgets, time_limit=5, workers=2)


def test_unknown_mode(dscnn):
    spec, scores, _ = dscnn
    with pytest.raises(RedsError, match="unknown knapsack mode"):
        solve(spec, scores, [0.5], mode="greedy")
