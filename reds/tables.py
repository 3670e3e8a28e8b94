"""Plain-text tables of an architecture and of a family, as the CLI prints them."""
from __future__ import annotations


def render(headers: list[str], rows: list[list], align: str | None = None) -> str:
    """A table with aligned columns; align is one 'l'/'r' per column (default: numbers right)."""
    cells = [[str(h) for h in headers]] + [["" if c is None else str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    if align is None:
        align = "".join("r" if rows and isinstance(rows[0][i], (int, float)) else "l" for i in range(len(headers)))
    def line(r):
        return "  ".join(c.rjust(w) if a == "r" else c.ljust(w) for c, w, a in zip(r, widths, align)).rstrip()
    sep = "  ".join("-" * w for w in widths)
    return "\n".join([line(cells[0]), sep] + [line(r) for r in cells[1:]])


def _kb(n: int) -> str:
    return f"{n / 1024:,.1f} KiB"


def arch_table(d: dict) -> str:
    """`reds arch`: layers, then groups, then totals (d from Spec.describe())."""
    layers = render(
        ["layer", "op", "in (CxHxW)", "out (CxHxW)", "group", "MACs", "params"],
        [[l["name"], l["kind"], "x".join(map(str, l["in"])), "x".join(map(str, l["out"])),
          l["out_group"] or "", f"{l['macs']:,}", f"{l['params']:,}"] for l in d["layers"]],
        "lllllrr")
    groups = render(["group", "units", "min"], [[g["name"], g["units"], g["min_units"]] for g in d["groups"]], "lrr")
    shape = "x".join(map(str, d["input_shape"]))
    return (f"{d['arch']}: input {shape}, {d['num_classes']} classes\n\n{layers}\n\n{groups}\n\n"
            f"MACs {d['macs']:,}   params {d['params']:,}   weights {_kb(d['weight_bytes'])}   "
            f"arena {_kb(d['arena_bytes'])}")


def family_table(fam) -> str:
    """`reds info`: one row per submodel."""
    full = max(s.macs for s in fam.submodels)
    groups = [g["name"] for g in fam.groups]
    has_scratch = any(s.scratch_accuracy is not None for s in fam.submodels)
    # elastic depth: the blocks each submodel skips (width entries 0 that name no group)
    skips = [[b for b, v in s.widths.items() if b not in groups and v == 0] for s in fam.submodels]
    has_skips = any(skips)
    headers = (["k", "budget", "widths (" + ",".join(groups) + ")"] + (["skips"] if has_skips else [])
               + ["MACs", "% full", "params", "weights", "arena", "val %", "test %"]
               + (["scratch %"] if has_scratch else []))
    rows = []
    for k, s in enumerate(fam.submodels):
        row = [k, f"{s.budget:.0%}", ",".join(str(s.widths[g]) for g in groups)]
        if has_skips:
            row.append(",".join(skips[k]) or "-")
        row += [f"{s.macs:,}", f"{100 * s.macs / full:.1f}", f"{s.params:,}", _kb(s.weight_bytes),
                _kb(s.arena_bytes), _pct(s.val_accuracy), _pct(s.accuracy)]
        if has_scratch:
            row.append(_pct(s.scratch_accuracy))
        rows.append(row)
    k = fam.knapsack
    head = (f"{fam.arch}{'' if fam.width_mult == 1 else f' (width x{fam.width_mult:g})'} on {fam.dataset}: "
            f"{len(fam.submodels)} nested submodels; knapsack {k.get('mode')} ({k.get('solver')}), "
            f"{k.get('status')}, {k.get('seconds', 0):.2f} s")
    norm = fam.input_norm
    if norm is not None:  # what every export does to the raw features first
        head += (f"\ninput: raw features, standardised per {'MFCC coefficient' if norm['axis'] == 'width' else 'channel'}"
                 f" ({len(norm['mean'])} mean/std pairs) inside every export")
    return head + "\n" + render(headers, rows, "rll" + ("l" if has_skips else "") + "rrrrrrr"
                                 + ("r" if has_scratch else ""))


def _pct(v) -> str:
    return "-" if v is None else f"{v:.2f}"


def markdown(headers: list[str], rows: list[list]) -> str:
    """The same table as GitHub markdown."""
    out = ["| " + " | ".join(map(str, headers)) + " |", "|" + "---|" * len(headers)]
    out += ["| " + " | ".join("" if c is None else str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)
