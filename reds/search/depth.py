"""The nested knapsack with elastic depth: per budget, the widths and which skippable blocks run.

A depth mask (the blocks that run) turns the network into a plain shallower one
(`Spec.shallow`): its groups are the kept ones, and a skipped block's output group
(`alias`) takes its input group's width. For a fixed mask, the best widths are the
width-only knapsack on that shallower network (`knapsack.solve_target`, Lagrangian filter
and CP-SAT). The value of a submodel with mask m is

    sum of the kept groups' tables at their widths
  + the full value of each skipped block's own groups
  - the value of each skipped block (the loss its skip costs, put on the unit-importance
    scale at this budget: `reds.nn.importance.block_scores`).

So skipping a block trades the block's measured value for the MACs it frees, and keeping
it runs its groups at whatever widths the knapsack gives them.

Nesting in depth: bottom-up, a block that runs in submodel k runs in every larger one, so
budget k may only switch blocks on; top-down, only off. Nesting in width holds for every
group, the blocks' own groups included: a skipped block's groups keep their bound (bottom-
up: the previous submodel's width; top-down: the smallest width) and an alias group merged
into its input group bounds that group (bottom-up: from below by both; top-down: from
above by both).

Every nested mask is a candidate (at most 2^blocks; 8 blocks for MobileNet-v1). Masks are
searched in order of their Lagrangian bound; a mask whose bound cannot beat the best
submodel found is pruned, so CP-SAT runs on a few. A budget is OPTIMAL when every mask was
solved OPTIMAL or pruned.
"""
from __future__ import annotations

import itertools
import math
import os
import time

import torch

from ..errors import RedsError
from ..ir.cost import cost
from ..ir.spec import Spec
from .knapsack import Solution, check_budgets, no_submodel, solve_target, target_macs, value_scale, value_tables
from .lagrangian import lagrangian_domains
from .limits import Limits, width_range

MODES = ("bottom-up", "top-down")  # joint mode has no depth (nesting in depth is sequential)
RANK_ITERS = 8  # bisection steps of the Lagrangian multiplier when ranking masks


def solve(spec: Spec, scores: dict[str, torch.Tensor], block_scores, budgets: list[float],
          mode: str = "bottom-up", limits: Limits | None = None, time_limit: float = 30.0, seed: int = 0,
          workers: int | None = None, lagrangian: bool = True) -> list[Solution]:
    """Like `knapsack.solve`, choosing which of `spec.blocks` run as well: one Solution per
    budget, ascending; each widths dict names every group and every block (1 runs, 0 skipped).

    block_scores: each block's value in the units of `scores` ({block: value}), or one such
    dict per budget in ascending order (`reds.nn.importance.block_scores` measures them)."""
    if mode not in MODES:
        raise RedsError(f"the knapsack with depth runs {' or '.join(MODES)}, not '{mode}'")
    if not spec.blocks:
        raise RedsError(f"{spec.name} has no skippable blocks; train it with --depth off")
    budgets = check_budgets(budgets)
    per_budget = list(block_scores) if isinstance(block_scores, (list, tuple)) else [block_scores] * len(budgets)
    if len(per_budget) != len(budgets):
        raise RedsError(f"{len(per_budget)} sets of block values for {len(budgets)} budgets")
    missing = sorted({b.name for bs in per_budget for b in spec.blocks if b.name not in bs})
    if missing:
        raise RedsError(f"no value for the block(s) {', '.join(missing)}")
    limits = limits or Limits()
    workers = workers or max(2, min(8, os.cpu_count() or 2))
    tables = value_tables(spec, scores)
    scale = value_scale(spec, scores)
    full = cost(spec, spec.full_widths()).macs
    shallow: dict[tuple[int, ...], Spec] = {}
    out: list[Solution | None] = [None] * len(budgets)
    order = range(len(budgets)) if mode == "bottom-up" else reversed(range(len(budgets)))
    prev = None
    for k in order:
        t0 = time.perf_counter()
        # every block is worth at least 1: skipping one is never free
        bvalue = {b.name: max(1, round(float(per_budget[k][b.name]) * scale)) for b in spec.blocks}
        target = target_macs(full, budgets[k])
        status, widths, bound = _solve_budget(spec, tables, bvalue, target, limits, mode, prev, shallow,
                                              t0 + time_limit, seed, workers, lagrangian)
        if widths is None:
            raise no_submodel(budgets[k], target, status, time_limit)
        out[k] = Solution(budgets[k], widths, status, _submodel_value(spec, tables, bvalue, widths), bound,
                          time.perf_counter() - t0, cost(spec, widths).macs, target)
        prev = widths
    return out


def _submodel_value(spec: Spec, tables, bvalue: dict[str, int], widths: dict) -> int:
    """The knapsack's value of a full width vector (groups and block entries)."""
    skipped = spec.skipped(widths)
    dead = {g for b in skipped for g in b.dead}
    return (sum(tables[g.name][-1 if g.name in dead else widths[g.name]] for g in spec.groups)
            - sum(bvalue[b.name] for b in skipped))


def _masks(spec: Spec, mode: str, prev: dict | None):
    """Every depth mask nested with `prev` (a tuple of 0/1 per block, 1: runs)."""
    free = [i for i, b in enumerate(spec.blocks)
            if prev is None or prev[b.name] == (0 if mode == "bottom-up" else 1)]
    base = [1 if prev is None else prev[b.name] for b in spec.blocks]
    for bits in itertools.product((1, 0), repeat=len(free)):
        mask = list(base)
        for i, v in zip(free, bits):
            mask[i] = v
        yield tuple(mask)


def _solve_budget(spec, tables, bvalue, target, limits, mode, prev, shallow, deadline, seed, workers, lagrangian):
    """The best (mask, widths) for one budget: returns (status, full widths or None, bound)."""
    cands = []  # (upper bound, offset, mask, shallow spec, nest, filter)
    for mask in _masks(spec, mode, prev):
        entries = {b.name: v for b, v in zip(spec.blocks, mask)}
        sub = shallow.get(mask)
        if sub is None:
            sub = shallow[mask] = spec.shallow(entries)
        skipped = spec.skipped(entries)
        dead = {g for b in skipped for g in b.dead}
        offset = sum(tables[g][-1] for g in dead) - sum(bvalue[b.name] for b in skipped)
        try:
            nest = _nest(spec, sub, skipped, limits, mode, prev)
        except RedsError:  # the previous submodel's widths leave this mask no room
            continue
        # a quick filter ranks the masks (its bound is valid, if looser); a mask that is
        # solved gets the full one
        filt = lagrangian_domains(sub, tables, limits, target, **nest, iters=RANK_ITERS) if lagrangian else None
        if lagrangian and filt is None and not sub.skips:
            continue  # a chain the Lagrangian filter found nothing feasible for
        # the values are integers: round the Lagrangian bound down past its float error
        top = (math.floor(filt.bound + 1e-9 * abs(filt.bound) + 1e-6) if filt is not None
               else sum(tables[g.name][-1] for g in sub.groups))
        cands.append((top + offset, offset, mask, sub, nest, filt))
    if not cands:
        return "INFEASIBLE", None, 0
    cands.sort(key=lambda c: -c[0])  # stable: ties keep the enumeration order
    best, best_widths, open_bound, status = -math.inf, None, -math.inf, "OPTIMAL"
    for top, offset, mask, sub, nest, filt in cands:
        if top <= best:
            break  # this mask, and every later one, cannot beat the best found
        if time.perf_counter() >= deadline and best_widths is not None:
            open_bound, status = max(open_bound, top), "FEASIBLE"
            continue
        if filt is not None:
            filt = lagrangian_domains(sub, tables, limits, target, **nest)
        st, w, bound = solve_target(sub, tables, target, limits, nest, deadline, seed, workers, lagrangian, filt)
        if w is None:
            if st not in ("INFEASIBLE", "MODEL_INVALID"):
                open_bound, status = max(open_bound, top), "FEASIBLE"
            continue
        if st != "OPTIMAL":
            open_bound, status = max(open_bound, bound + offset), "FEASIBLE"
        value = sum(tables[g][v] for g, v in w.items()) + offset
        if value > best:
            best, best_widths = value, _full_widths(spec, mask, w, limits, mode, prev)
    if best_widths is None:
        return ("UNKNOWN" if status == "FEASIBLE" else "INFEASIBLE"), None, 0
    if open_bound <= best:
        status = "OPTIMAL"
    return status, best_widths, int(max(best, open_bound))


def _merged(spec: Spec, skipped) -> dict[str, str]:
    """Each group of the full spec -> the shallow spec's group that carries its width (an
    alias of a skipped block -> its input group's carrier; other groups -> themselves)."""
    rep = {g: g for g in spec.group_names}
    for b in skipped:  # in the spec's order: a block's input group may be the alias of the one before
        if b.alias:
            rep[b.alias] = rep[b.in_group]
    return rep


def _nest(spec: Spec, sub: Spec, skipped, limits: Limits, mode: str, prev: dict | None) -> dict:
    """The shallow spec's width bounds from the previous submodel (see the module docstring)."""
    if prev is None:
        return {}
    rep, dead = _merged(spec, skipped), {g for b in skipped for g in b.dead}
    pick = max if mode == "bottom-up" else min
    bound: dict[str, int] = {}
    for g in spec.group_names:
        if g in dead and rep[g] == g:
            continue  # a group made inside a skipped block: no width in the shallow spec
        r = rep[g]
        bound[r] = prev[g] if r not in bound else pick(bound[r], prev[g])
    for g in sub.groups:  # refuses a merged group whose bounds cross (RedsError)
        width_range(g, limits, **({"lower": bound} if mode == "bottom-up" else {"upper": bound}))
    return {"lower": bound} if mode == "bottom-up" else {"upper": bound}


def _full_widths(spec: Spec, mask, w: dict, limits: Limits, mode: str, prev: dict | None) -> dict:
    """The shallow solution `w` as a full width vector with block entries."""
    skipped = [b for b, v in zip(spec.blocks, mask) if v == 0]
    rep, dead = _merged(spec, skipped), {g for b in skipped for g in b.dead}
    out = {}
    for g in spec.groups:
        if g.name not in dead:
            out[g.name] = w[g.name]
        elif rep[g.name] != g.name:  # an alias: its input group's width
            out[g.name] = w[rep[g.name]]
        else:  # made inside a skipped block: the narrowest width nesting allows
            out[g.name] = width_range(g, limits, lower=prev if mode == "bottom-up" else None)[0]
    out.update({b.name: v for b, v in zip(spec.blocks, mask)})
    return spec.check_widths(out)
