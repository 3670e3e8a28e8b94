"""Pick every submodel's widths: a nested knapsack over unit groups, solved with CP-SAT.

One integer width per group and submodel. Value: the summed importance of the kept
prefix of each group (units are sorted by importance, so that is a table lookup).
Cost: the exact MACs of the width vector, a sum of monomials bilinear in neighbouring
widths (see `cost.py`), at most `budget * full MACs`. Optional limits on weight bytes
(a board's flash) and peak activation bytes (its RAM). A minimum width per group, and
nesting: width_g(k) <= width_g(k+1) for every group and consecutive budgets.

Modes:
- `bottom-up` (REDS): smallest budget first; each solution is a lower bound for the next.
- `top-down`: largest budget first; each solution is an upper bound for the next.
- `joint`: all budgets in one model, maximising the summed value.

Lagrangian domain filtering (`lagrangian=True`, the default): the sequential IR makes
every two-group cost term join neighbouring groups, so the width vectors form a chain and
`max value - lam * MACs` is an exact dynamic program for any multiplier lam >= 0. Its
max-marginals bound the best value of every (group, width) under the budget; a width whose
bound is below a known feasible solution cannot be optimal and leaves the CP-SAT domain.
CP-SAT's own relaxation of the bilinear MAC products (McCormick over the full box) is weak:
on DS-CNN-L at 25 % it left a 13 % gap after a minute; on the filtered box it proves
optimality in seconds. The filter keeps every optimal solution. `joint` filters each
budget's widths against the better of the bottom-up and top-down families (its start).
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass

import torch
from ortools.sat.python import cp_model

from ..errors import RedsError
from ..ir.cost import BYTES_PER_FLOAT, skip_terms, spec_terms
from ..ir.spec import Spec
from . import MODES
from .lagrangian import Filtered, lagrangian_domains
from .limits import Limits, width_range

VALUE_SCALE = 10**7  # importance is scaled so all groups together are worth this much


@dataclass
class Solution:
    budget: float
    widths: dict[str, int]
    status: str
    objective: int
    bound: int  # the solver's proven upper bound on the objective (= objective when OPTIMAL)
    seconds: float
    macs: int
    target_macs: int

    def as_dict(self) -> dict:
        return {"budget": self.budget, "widths": self.widths, "status": self.status,
                "objective": self.objective, "bound": self.bound, "seconds": round(self.seconds, 4),
                "macs": self.macs, "target_macs": self.target_macs}


def value_tables(spec: Spec, scores: dict[str, torch.Tensor]) -> dict[str, list[int]]:
    """table[g][w] = integer value of keeping the first w units of group g.

    Scores must already be in the units' (permuted) order; negative scores count as 0.
    Every unit is worth at least 1 (of VALUE_SCALE), however small its score: a worthless
    unit would tie with dropping it, and the solver could drop units that fit (even at
    100 %: dead units score exactly 0). The tables stay concave."""
    scale = value_scale(spec, scores)
    tables = {}
    for g in spec.groups:
        s = torch.clamp(scores[g.name].double(), min=0) * scale
        prefix = torch.cumsum(torch.clamp(torch.round(s), min=1).long(), 0).tolist()
        tables[g.name] = [0] + prefix
    return tables


def value_scale(spec: Spec, scores: dict[str, torch.Tensor]) -> float:
    """Table units per unit of score: all groups together are worth VALUE_SCALE."""
    total = sum(float(torch.clamp(scores[g.name], min=0).sum()) for g in spec.groups) or 1.0
    return VALUE_SCALE / total


class _Model:
    """A CP-SAT model with one width vector per MAC target of `targets`."""

    def __init__(self, spec: Spec, tables, targets: list[int], limits: Limits, lower=None, upper=None,
                 domains: list[dict[str, list[int]]] | None = None, hint: list[dict[str, int]] | None = None):
        """targets: the most MACs each width vector may have; domains: per target, the
        widths each group may take (filtered, see `lagrangian_domains`); hint: per target,
        a feasible width vector to start from."""
        self.spec, self.m = spec, cp_model.CpModel()
        self.w: list[dict[str, cp_model.IntVar]] = []
        bounds: dict[str, tuple[int, int]] = {}
        terms = spec_terms(spec)
        objective = []
        for k, target in enumerate(targets):
            wk = {}
            for g in spec.groups:
                lo, hi = width_range(g, limits, lower, upper)
                if domains is not None:
                    vals = [v for v in domains[k][g.name] if lo <= v <= hi]
                    lo, hi = vals[0], vals[-1]
                    wk[g.name] = self.m.NewIntVarFromDomain(cp_model.Domain.FromValues(vals), f"w{k}_{g.name}")
                else:
                    wk[g.name] = self.m.NewIntVar(lo, hi, f"w{k}_{g.name}")
                if hint is not None:
                    self.m.AddHint(wk[g.name], hint[k][g.name])
                bounds[g.name] = (lo, hi)
                v = self.m.NewIntVar(0, tables[g.name][-1], f"v{k}_{g.name}")
                if hint is not None:  # a complete hint: CP-SAT starts from a feasible solution
                    self.m.AddHint(v, tables[g.name][hint[k][g.name]])
                # The table is concave (prefix sums of descending scores), so its tangents
                # bound it exactly at every integer width, and the LP relaxation sees them.
                tab = tables[g.name]
                for i in range(lo, hi):
                    self.m.Add(v <= tab[i] + (tab[i + 1] - tab[i]) * (wk[g.name] - i))
                self.m.Add(v <= tab[hi])
                objective.append(v)
            self.w.append(wk)
            products: dict[tuple[str, ...], cp_model.IntVar] = {}

            def expr(term_list):
                out = 0
                for t in term_list:
                    if len(t.groups) == 0:
                        out += t.coef
                    elif len(t.groups) == 1:
                        out += t.coef * wk[t.groups[0]]
                    else:
                        key = tuple(sorted(t.groups))
                        if key not in products:
                            (alo, ahi), (blo, bhi) = (bounds[x] for x in key)
                            p = self.m.NewIntVar(alo * blo, ahi * bhi, f"p{k}_{'_'.join(key)}")
                            self.m.AddMultiplicationEquality(p, [wk[x] for x in key])
                            if hint is not None:
                                self.m.AddHint(p, hint[k][key[0]] * hint[k][key[1]])
                            products[key] = p
                        out += t.coef * products[key]
                return out

            self.m.Add(expr([t for lt in terms for t in lt.macs]) <= target)
            if limits.weight_bytes is not None:
                self.m.Add(BYTES_PER_FLOAT * expr([t for lt in terms for t in lt.params]) <= limits.weight_bytes)
            if limits.arena_bytes is not None:
                # the cost model's arena: the largest in + out of a layer, plus the largest
                # total of outputs kept for residual adds (no adds: that total is 0)
                kept = {t for t in skip_terms(spec) if t} or {()}
                for layer, lt in zip(spec.layers, terms):
                    if not layer.in_place:
                        for live in kept:
                            self.m.Add(BYTES_PER_FLOAT * expr([lt.act_in, lt.act_out, *live]) <= limits.arena_bytes)
        for k in range(len(targets) - 1):
            for g in spec.groups:
                self.m.Add(self.w[k][g.name] <= self.w[k + 1][g.name])
        self.m.Maximize(sum(objective))

    def solve(self, time_limit: float, seed: int, workers: int):
        solver = cp_model.CpSolver()
        solver.parameters.max_time_in_seconds = time_limit
        solver.parameters.random_seed = seed
        # A small portfolio proves optimality far sooner than one worker. When the optimum
        # is unique (the usual case: importance is real-valued) the result is the same on
        # every run; a timed-out search reports FEASIBLE and its gap to the bound.
        solver.parameters.num_workers = workers
        t0 = time.perf_counter()
        status = solver.Solve(self.m)
        seconds = time.perf_counter() - t0
        name = solver.StatusName(status)
        if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
            return name, None, 0, seconds
        widths = [{g: int(solver.Value(v)) for g, v in wk.items()} for wk in self.w]
        return name, widths, int(solver.BestObjectiveBound()), seconds


def target_macs(full_macs: int, budget: float) -> int:
    return int(full_macs * budget + 1e-9)


def check_budgets(budgets) -> list[float]:
    """The budgets in ascending order, or a RedsError saying what is wrong with them."""
    budgets = sorted(float(b) for b in budgets)
    if not budgets or budgets[0] <= 0 or budgets[-1] > 1.0 or len(set(budgets)) != len(budgets):
        raise RedsError("budgets must be distinct fractions of the full MACs in (0, 1], e.g. 0.25,0.5,0.75,1.0")
    return budgets


def no_submodel(budget: float, target: int, status: str, time_limit: float) -> RedsError:
    """The error for a budget the solver found no submodel for."""
    if status == "UNKNOWN":
        return RedsError(f"the solver found no submodel for budget {budget:g} within the time limit "
                         f"({time_limit:g} s); raise the time limit")
    return RedsError(f"no submodel fits budget {budget:g} ({target:,} MACs; solver: {status}); "
                     "raise the budget, lower --min-units or relax the memory limits")


def _macs_of(spec: Spec, widths) -> int:
    return sum(t.value(widths) for lt in spec_terms(spec) for t in lt.macs)


def _value(tables, widths) -> int:
    return sum(tables[g][w] for g, w in widths.items())


def _solve_filtered(spec, tables, target, limits, nest, filt: Filtered, deadline, seed, workers):
    """CP-SAT on the filtered widths, in rounds of doubling length: while a round finds a
    better solution, filter again with its value (the domains shrink fast as the incumbent
    nears the optimum); a round without improvement, or the eighth, gets all the time left."""
    last = False
    status, best, widths = "FEASIBLE", None, None
    first = max(0.5, 0.02 * (deadline - time.perf_counter()))
    for r in range(8):
        left = deadline - time.perf_counter()
        if left <= 0.05:
            break
        slice_ = left if last or r == 7 else min(left, first * 2**r)
        model = _Model(spec, tables, [target], limits, **nest, domains=[filt.domains], hint=[filt.incumbent])
        status, widths, bound, _ = model.solve(slice_, seed, workers)
        if widths is not None:
            best = bound if best is None else min(best, bound)
        if status == "OPTIMAL" or last:
            break
        if widths is not None and _value(tables, widths[0]) > filt.value:
            filt.refilter(widths[0], _value(tables, widths[0]))
        else:
            last = True
    if status == "OPTIMAL" and _value(tables, widths[0]) >= filt.value:
        return status, widths[0], _value(tables, widths[0])
    # Timed out: the best of CP-SAT's solution and the incumbent; the bound of any round is
    # valid (the filtered widths cannot beat the incumbent), and so is the Lagrangian one.
    if widths is not None and _value(tables, widths[0]) > filt.value:
        filt.refilter(widths[0], _value(tables, widths[0]))
    lagrangian = math.floor(filt.bound + 1e-9 * abs(filt.bound) + 1e-6)
    bound = min(lagrangian, best) if best is not None else lagrangian
    value = _value(tables, filt.incumbent)
    return ("OPTIMAL" if value >= bound else "FEASIBLE"), filt.incumbent, max(bound, value)


def solve(spec: Spec, scores: dict[str, torch.Tensor], budgets: list[float], mode: str = "bottom-up",
          limits: Limits | None = None, time_limit: float = 30.0, seed: int = 0,
          workers: int | None = None, lagrangian: bool = True) -> list[Solution]:
    """Solve the nested knapsack; returns one Solution per budget, in ascending budget order.

    lagrangian: filter the widths of bottom-up and top-down solves first (see the module
    docstring); False gives CP-SAT the full box (slow to prove on large networks)."""
    if mode not in MODES:
        raise RedsError(f"unknown knapsack mode '{mode}'; choose one of: {', '.join(MODES)}")
    budgets = check_budgets(budgets)
    limits = limits or Limits()
    workers = workers or max(2, min(8, os.cpu_count() or 2))
    tables = value_tables(spec, scores)
    full = _macs_of(spec, spec.full_widths())
    out: list[Solution | None] = [None] * len(budgets)

    def record(k, status, widths, bound, seconds):
        out[k] = Solution(budgets[k], widths, status, _value(tables, widths), bound, seconds,
                          _macs_of(spec, widths), target_macs(full, budgets[k]))

    def fail(k, status):
        raise no_submodel(budgets[k], target_macs(full, budgets[k]), status, time_limit)

    if mode == "joint":
        t0 = time.perf_counter()
        extra, start, filts = {}, None, []
        if lagrangian:
            # The sequential modes' families are feasible here: the better one is CP-SAT's
            # start and a lower bound L. Relaxing nesting, submodel k of any family worth
            # >= L is worth >= L - sum of the other budgets' Lagrangian bounds, which
            # filters its widths like a single budget's.
            share = 0.25 * time_limit / (2 * len(budgets))
            fams = []
            for m in ("bottom-up", "top-down"):
                try:
                    fams.append([s.widths for s in solve(spec, scores, budgets, m, limits, share, seed, workers)])
                except RedsError:
                    pass
            if fams:
                start = max(fams, key=lambda f: sum(_value(tables, w) for w in f))
                extra["hint"] = start
                filts = [lagrangian_domains(spec, tables, limits, target_macs(full, b)) for b in budgets]
                if all(filts):
                    lb, ub = sum(_value(tables, w) for w in start), sum(f.bound for f in filts)
                    for k, f in enumerate(filts):
                        f.refilter(start[k], lb - (ub - f.bound))
                    extra["domains"] = [f.domains for f in filts]
        model = _Model(spec, tables, [target_macs(full, b) for b in budgets], limits, **extra)
        status, widths, bound, _ = model.solve(max(0.1, t0 + time_limit - time.perf_counter()), seed, workers)
        if start is not None:
            # Relaxing nesting, the budgets' Lagrangian bounds add up to a bound too.
            cands = [bound] if widths is not None else []
            if filts and all(filts):
                cands.append(math.floor(sum(f.bound for f in filts) * (1 + 1e-9) + 1e-6))
            total = sum(_value(tables, w) for w in start)
            if widths is None or sum(_value(tables, w) for w in widths) < total:
                widths = start  # CP-SAT stopped before matching its start: keep the start
            else:
                total = sum(_value(tables, w) for w in widths)
            bound = max(total, min(cands, default=len(budgets) * sum(t[-1] for t in tables.values())))
            status = "OPTIMAL" if total >= bound else "FEASIBLE"
        if widths is None:
            fail(0, status)
        seconds = time.perf_counter() - t0
        for k, w in enumerate(widths):
            # one model for all budgets: the bound and the time belong to the whole family
            record(k, status, w, bound, seconds)
        return out
    order = range(len(budgets)) if mode == "bottom-up" else reversed(range(len(budgets)))
    prev = None
    for k in order:
        nest = {"lower": prev} if mode == "bottom-up" else {"upper": prev}
        t0 = time.perf_counter()
        status, widths, best = solve_target(spec, tables, target_macs(full, budgets[k]), limits, nest,
                                            t0 + time_limit, seed, workers, lagrangian)
        if widths is None:
            fail(k, status)
        record(k, status, widths, best, time.perf_counter() - t0)
        prev = widths
    return out


def solve_target(spec: Spec, tables, target: int, limits: Limits, nest: dict, deadline: float, seed: int,
                 workers: int, lagrangian: bool = True, filt: Filtered | None = None):
    """The best widths of at most `target` MACs within `nest`'s bounds ({"lower": widths} or
    {"upper": widths}), by `deadline` (a `time.perf_counter()` time); `filt`: its Lagrangian
    filter when already computed. Returns (status, widths or None, proven bound)."""
    if filt is None and lagrangian:
        filt = lagrangian_domains(spec, tables, limits, target, **nest)
    if filt is None:
        model = _Model(spec, tables, [target], limits, **nest)
        status, ws, best, _ = model.solve(max(0.1, deadline - time.perf_counter()), seed, workers)
        return status, (ws[0] if ws else None), best
    return _solve_filtered(spec, tables, target, limits, nest, filt, deadline, seed, workers)
