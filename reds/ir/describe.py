"""A spec as JSON-able data with its full-width costs (what `reds arch` prints)."""
from __future__ import annotations

from .cost import cost
from .spec import Spec


def describe(spec: Spec) -> dict:
    full = spec.full_widths()
    c = cost(spec, full)
    return {
        "arch": spec.name,
        "input_shape": list(spec.input_shape),
        "num_classes": spec.num_classes,
        "macs": c.macs,
        "params": c.params,
        "weight_bytes": c.weight_bytes,
        "arena_bytes": c.arena_bytes,
        "groups": [{"name": g.name, "units": g.units, "min_units": g.min_units} for g in spec.groups],
        "layers": [
            {
                "name": l.name, "kind": l.kind,
                "in": [spec.size(l.in_ch, full), *l.in_hw], "out": [spec.size(l.out_ch, full), *l.out_hw],
                "in_group": l.in_ch if isinstance(l.in_ch, str) else None,
                "out_group": l.out_ch if isinstance(l.out_ch, str) else None,
                "macs": lc.macs, "params": lc.params,
            }
            for l, lc in zip(spec.layers, c.layers)
        ],
    }
