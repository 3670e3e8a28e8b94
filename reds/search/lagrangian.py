"""Lagrangian domain filtering of the knapsack's widths (see `knapsack`'s docstring).

The sequential IR makes every two-group cost term join neighbouring groups, so width
vectors form a chain and `max value - lam * MACs - mu * params` is an exact max-plus
dynamic program. Its max-marginals bound every (group, width); widths below a feasible
incumbent cannot be optimal and leave the CP-SAT domains.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..ir.cost import BYTES_PER_FLOAT, spec_terms
from ..ir.spec import Spec
from .limits import Limits, width_range


@dataclass
class Filtered:
    """Result of `lagrangian_domains`: the widths that may still be optimal."""

    order: list[str]  # groups along the chain
    widths: list[np.ndarray]  # candidate widths per group (before filtering)
    history: list  # (offset, max-marginals) per multiplier tried
    incumbent: dict[str, int]  # the best feasible width vector known
    value: float  # its value
    bound: float  # Lagrangian upper bound on the objective
    domains: dict[str, list[int]] = field(default_factory=dict)

    def refilter(self, incumbent: dict[str, int], value: float) -> None:
        """Keep the widths whose bound, under every multiplier tried, reaches `value`."""
        self.incumbent, self.value = incumbent, value
        for k, g in enumerate(self.order):
            keep = np.ones(len(self.widths[k]), bool)
            for offset, mm in self.history:
                keep &= mm[k] + offset >= value - (1e-9 * (abs(value) + abs(offset)) + 1e-6)
            keep |= self.widths[k] == incumbent[g]
            self.domains[g] = [int(x) for x in self.widths[k][keep]]


def _chain(spec: Spec):
    """Groups in production order, or None if some two-group cost term does not join
    neighbours in that order (the sequential IR never does that; kept as a guard)."""
    if spec.skips:  # a residual's kept outputs join groups far apart in the chain
        return None
    order = []
    for layer in spec.layers:
        if isinstance(layer.out_ch, str) and layer.out_ch not in order:
            order.append(layer.out_ch)
    if sorted(order) != sorted(spec.group_names):
        return None
    pos = {g: i for i, g in enumerate(order)}
    for lt in spec_terms(spec):
        for t in (*lt.macs, *lt.params):
            if len(t.groups) == 2 and abs(pos[t.groups[0]] - pos[t.groups[1]]) != 1:
                return None
        ks = [pos[g] for t in (lt.act_in, lt.act_out) for g in t.groups]  # one arena constraint
        if ks and max(ks) - min(ks) > 1:
            return None
    return order, pos


def lagrangian_domains(spec: Spec, tables, limits: Limits, target: int, lower=None, upper=None,
                        iters: int = 50) -> Filtered | None:
    """Filter each group's widths with the Lagrangian relaxation of the MAC budget (and of
    the weight limit, when there is one).

    For multipliers lam, mu >= 0 and any feasible w,
        value(w) <= value(w) - lam * (MACs(w) - target) - mu * (params(w) - max_params),
    and the right side's maximum over w with w_g = i (a max-marginal: one forward and one
    backward max-plus pass over the chain of groups; arena limits enter as hard unit/pair
    constraints) bounds every feasible solution with w_g = i. A width whose bound, for any
    multipliers tried, is below a feasible incumbent cannot be optimal and is dropped.
    Returns None when the spec is not a chain or nothing feasible is found."""
    ch = _chain(spec)
    if ch is None:
        return None
    order, pos = ch
    n = len(order)
    ranges = [width_range(spec.group(g), limits, lower, upper) for g in order]
    W = [np.arange(lo, hi + 1, dtype=np.float64) for lo, hi in ranges]
    V = [np.asarray(tables[g][lo:hi + 1], dtype=np.float64) for g, (lo, hi) in zip(order, ranges)]
    outer = [np.outer(W[k], W[k + 1]) for k in range(n - 1)]

    def coefficients(term_list):
        const, unary, pair = 0, np.zeros(n), np.zeros(max(n - 1, 0))
        for t in term_list:
            if len(t.groups) == 0:
                const += t.coef
            elif len(t.groups) == 1:
                unary[pos[t.groups[0]]] += t.coef
            else:
                pair[min(pos[g] for g in t.groups)] += t.coef
        return const, unary, pair

    terms = spec_terms(spec)
    mconst, mu_, mp = coefficients([t for lt in terms for t in lt.macs])
    wconst, wu, wp = coefficients([t for lt in terms for t in lt.params])
    budget = target - mconst  # MACs left for the width-dependent terms
    wbudget = None if limits.weight_bytes is None else limits.weight_bytes // BYTES_PER_FLOAT - wconst
    # Arena limits: each non-in-place layer bounds one group, or two neighbouring ones.
    ok_u = [np.ones(len(w), bool) for w in W]
    ok_p = [np.ones((len(W[k]), len(W[k + 1])), bool) for k in range(n - 1)]
    if limits.arena_bytes is not None:
        for layer, lt in zip(spec.layers, terms):
            if layer.in_place:
                continue
            c, u, _ = coefficients([lt.act_in, lt.act_out])
            ks = sorted({pos[g] for t in (lt.act_in, lt.act_out) for g in t.groups})
            if not ks:
                if BYTES_PER_FLOAT * c > limits.arena_bytes:
                    return None
            elif len(ks) == 1:
                k = ks[0]
                ok_u[k] &= BYTES_PER_FLOAT * (c + u[k] * W[k]) <= limits.arena_bytes
            else:
                k = ks[0]
                ok_p[k] &= BYTES_PER_FLOAT * (c + u[k] * W[k][:, None] + u[k + 1] * W[k + 1][None, :]) \
                    <= limits.arena_bytes
    U0 = [np.where(ok_u[k], V[k], -np.inf) for k in range(n)]
    P0 = [np.where(ok_p[k], 0.0, -np.inf) for k in range(n - 1)]

    def poly(idx, const, unary, pair):
        w = [W[k][idx[k]] for k in range(n)]
        return const + sum(unary[k] * w[k] for k in range(n)) + sum(pair[k] * w[k] * w[k + 1] for k in range(n - 1))

    def fits(idx):
        return poly(idx, 0, mu_, mp) <= budget and (wbudget is None or poly(idx, 0, wu, wp) <= wbudget)

    history = []  # (offset, max-marginals): value of w_g = i is at most mm[g][i] + offset

    def dp(lam, mu):
        """Best vector of value - lam * MACs - mu * params; records its max-marginals."""
        U = [U0[k] - (lam * mu_[k] + mu * wu[k]) * W[k] for k in range(n)]
        P = [P0[k] - (lam * mp[k] + mu * wp[k]) * outer[k] for k in range(n - 1)]
        F, arg = [U[0]], []
        for k in range(n - 1):
            M = F[-1][:, None] + P[k]
            arg.append(M.shape[0] - 1 - M[::-1].argmax(0))  # ties: the wider unit count
            F.append(U[k + 1] + M.max(0))
        if not np.isfinite(F[-1].max()):
            return None
        B = [None] * n
        B[-1] = U[-1]
        for k in reversed(range(n - 1)):
            B[k] = U[k] + (P[k] + B[k + 1][None, :]).max(1)
        with np.errstate(invalid="ignore"):
            mm = [np.where(np.isfinite(U[k]), F[k] + B[k] - U[k], -np.inf) for k in range(n)]
        history.append((lam * budget + (mu * wbudget if mu else 0.0), mm))
        idx = [0] * n
        idx[-1] = len(F[-1]) - 1 - int(F[-1][::-1].argmax())
        for k in reversed(range(n - 1)):
            idx[k] = int(arg[k][idx[k + 1]])
        return idx

    incumbent, lb = None, -np.inf

    def consider(idx):
        nonlocal incumbent, lb
        if idx is not None and fits(idx):
            val = float(sum(V[k][idx[k]] for k in range(n)))
            if val > lb:
                incumbent, lb = idx, val

    def lam_search(mu, steps):
        """Bisect the MAC multiplier; returns the MAC-feasible vector at the final one."""
        idx = dp(0.0, mu)
        if idx is None or poly(idx, 0, mu_, mp) <= budget:
            consider(idx)
            return idx
        hi = max(float(V[k][-1]) for k in range(n)) / max(budget, 1)
        for _ in range(60):
            idx = dp(hi, mu)
            if poly(idx, 0, mu_, mp) <= budget:
                break
            hi *= 4
        else:
            return None
        consider(idx)
        lo = 0.0
        for _ in range(steps):
            lam = 0.5 * (lo + hi)
            trial = dp(lam, mu)
            if poly(trial, 0, mu_, mp) <= budget:
                hi, idx = lam, trial
                consider(idx)
            else:
                lo = lam
        return idx

    idx = lam_search(0.0, iters)
    if idx is None:
        return None
    if wbudget is not None and poly(idx, 0, wu, wp) > wbudget:
        # the weight limit binds too: bisect its multiplier, re-bisecting lam each time
        mu_hi = max(float(V[k][-1]) for k in range(n)) / max(wbudget, 1)
        for _ in range(30):
            idx = lam_search(mu_hi, iters // 2)
            if idx is not None and poly(idx, 0, wu, wp) <= wbudget:
                break
            mu_hi *= 4
        mu_lo = 0.0
        for _ in range(iters // 2):
            mid = 0.5 * (mu_lo + mu_hi)
            idx = lam_search(mid, iters // 2)
            if idx is not None and poly(idx, 0, wu, wp) <= wbudget:
                mu_hi = mid
            else:
                mu_lo = mid
    if incumbent is None:  # start from the narrowest vector when it fits
        narrow = [0] * n
        if all(ok_u[k][0] for k in range(n)) and all(ok_p[k][0, 0] for k in range(n - 1)) and fits(narrow):
            incumbent = narrow
        else:
            return None
    incumbent = _fill(incumbent, W, V, ok_u, ok_p, fits, lambda idx: poly(idx, 0, mu_, mp))
    best = {g: int(W[k][incumbent[k]]) for k, g in enumerate(order)}
    out = Filtered(order, W, history, best, 0.0, min(float(mm[-1].max()) + off for off, mm in history))
    out.refilter(best, float(sum(V[k][incumbent[k]] for k in range(n))))
    return out


def _fill(idx, W, V, ok_u, ok_p, fits, macs):
    """Greedily widen a feasible vector (best value gained per MAC added) while it fits."""
    n, idx = len(W), list(idx)
    while True:
        best, pick, base = -1.0, None, macs(idx)
        for k in range(n):
            j = idx[k] + 1
            if j >= len(W[k]) or not ok_u[k][j]:
                continue
            if (k and not ok_p[k - 1][idx[k - 1], j]) or (k < n - 1 and not ok_p[k][j, idx[k + 1]]):
                continue
            trial = idx[:k] + [j] + idx[k + 1:]
            if not fits(trial):
                continue
            gain = (V[k][j] - V[k][idx[k]]) / max(macs(trial) - base, 1e-9)
            if gain > best:
                best, pick = gain, trial
        if pick is None:
            return idx
        idx = pick
