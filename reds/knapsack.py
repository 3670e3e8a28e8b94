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
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

import torch
from ortools.sat.python import cp_model

from .cost import BYTES_PER_FLOAT, spec_terms
from .errors import RedsError
from .spec import Spec

MODES = ("bottom-up", "top-down", "joint")
VALUE_SCALE = 10**7  # importance is scaled so all groups together are worth this much


@dataclass
class Limits:
    weight_bytes: int | None = None
    arena_bytes: int | None = None
    min_units: dict[str, int] = field(default_factory=dict)  # overrides Group.min_units


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

    Scores must already be in the units' (permuted) order; negative scores count as 0."""
    total = sum(float(torch.clamp(scores[g.name], min=0).sum()) for g in spec.groups) or 1.0
    tables = {}
    for g in spec.groups:
        s = torch.clamp(scores[g.name].double(), min=0) * (VALUE_SCALE / total)
        prefix = torch.cumsum(torch.round(s).long(), 0).tolist()
        tables[g.name] = [0] + prefix
    return tables


class _Model:
    """A CP-SAT model with one width vector per budget of `budgets`."""

    def __init__(self, spec: Spec, tables, budgets, limits: Limits, lower=None, upper=None):
        self.spec, self.m = spec, cp_model.CpModel()
        self.full_macs = _macs_of(spec, spec.full_widths())
        self.w: list[dict[str, cp_model.IntVar]] = []
        bounds: dict[str, tuple[int, int]] = {}
        terms = spec_terms(spec)
        objective = []
        for k, budget in enumerate(budgets):
            wk = {}
            for g in spec.groups:
                lo = max(1, min(g.units, limits.min_units.get(g.name, g.min_units)))
                hi = g.units
                if lower:
                    lo = max(lo, lower[g.name])
                if upper:
                    hi = min(hi, upper[g.name])
                if lo > hi:
                    raise RedsError(f"group {g.name}: minimum width {lo} exceeds {hi}; lower --min-units")
                wk[g.name] = self.m.NewIntVar(lo, hi, f"w{k}_{g.name}")
                bounds[g.name] = (lo, hi)
                v = self.m.NewIntVar(0, tables[g.name][-1], f"v{k}_{g.name}")
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
                            products[key] = p
                        out += t.coef * products[key]
                return out

            self.m.Add(expr([t for lt in terms for t in lt.macs]) <= target_macs(self.full_macs, budget))
            if limits.weight_bytes is not None:
                self.m.Add(BYTES_PER_FLOAT * expr([t for lt in terms for t in lt.params]) <= limits.weight_bytes)
            if limits.arena_bytes is not None:
                for layer, lt in zip(spec.layers, terms):
                    if not layer.in_place:
                        self.m.Add(BYTES_PER_FLOAT * expr([lt.act_in, lt.act_out]) <= limits.arena_bytes)
        for k in range(len(budgets) - 1):
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


def _macs_of(spec: Spec, widths) -> int:
    return sum(t.value(widths) for lt in spec_terms(spec) for t in lt.macs)


def _value(tables, widths) -> int:
    return sum(tables[g][w] for g, w in widths.items())


def solve(spec: Spec, scores: dict[str, torch.Tensor], budgets: list[float], mode: str = "bottom-up",
          limits: Limits | None = None, time_limit: float = 30.0, seed: int = 0,
          workers: int | None = None) -> list[Solution]:
    """Solve the nested knapsack; returns one Solution per budget, in ascending budget order."""
    if mode not in MODES:
        raise RedsError(f"unknown knapsack mode '{mode}'; choose one of: {', '.join(MODES)}")
    budgets = sorted(float(b) for b in budgets)
    if not budgets or budgets[0] <= 0 or budgets[-1] > 1.0 or len(set(budgets)) != len(budgets):
        raise RedsError("budgets must be distinct fractions of the full MACs in (0, 1], e.g. 0.25,0.5,0.75,1.0")
    limits = limits or Limits()
    workers = workers or max(2, min(8, os.cpu_count() or 2))
    tables = value_tables(spec, scores)
    full = _macs_of(spec, spec.full_widths())
    out: list[Solution | None] = [None] * len(budgets)

    def record(k, status, widths, bound, seconds):
        out[k] = Solution(budgets[k], widths, status, _value(tables, widths), bound, seconds,
                          _macs_of(spec, widths), target_macs(full, budgets[k]))

    def fail(k, status):
        raise RedsError(
            f"no submodel fits budget {budgets[k]:g} ({target_macs(full, budgets[k]):,} MACs; solver: {status}); "
            "raise the budget, lower --min-units or relax the memory limits")

    if mode == "joint":
        status, widths, bound, seconds = _Model(spec, tables, budgets, limits).solve(time_limit, seed, workers)
        if widths is None:
            fail(0, status)
        for k, w in enumerate(widths):
            # one model for all budgets: the bound and the time belong to the whole family
            record(k, status, w, bound, seconds)
        return out
    order = range(len(budgets)) if mode == "bottom-up" else reversed(range(len(budgets)))
    prev = None
    for k in order:
        nest = {"lower": prev} if mode == "bottom-up" else {"upper": prev}
        model = _Model(spec, tables, [budgets[k]], limits, **nest)
        status, widths, best, seconds = model.solve(time_limit, seed, workers)
        if widths is None:
            fail(k, status)
        record(k, status, widths[0], best, seconds)
        prev = widths[0]
    return out
