"""What a submodel may use besides MACs (weight bytes, arena bytes) and each group's width range."""
from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import RedsError


@dataclass
class Limits:
    weight_bytes: int | None = None
    arena_bytes: int | None = None
    min_units: dict[str, int] = field(default_factory=dict)  # overrides Group.min_units



def width_range(g, limits: Limits, lower=None, upper=None) -> tuple[int, int]:
    lo = max(1, min(g.units, limits.min_units.get(g.name, g.min_units)))
    hi = g.units
    if lower:
        lo = max(lo, lower[g.name])
    if upper:
        hi = min(hi, upper[g.name])
    if lo > hi:
        raise RedsError(f"group {g.name}: minimum width {lo} exceeds {hi}; lower --min-units")
    return lo, hi
