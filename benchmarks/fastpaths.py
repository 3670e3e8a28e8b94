"""Instructions per MAC of the float kernels' fast paths, per layer kind, on the virtual M4.

Builds dscnn-s, dscnn-s-img and mobilenetv1-025 at width 1.0 with seeded random weights
(tests/families.py `make_family`), runs `reds bench FAMILY --board qemu-m4 --profile` on
each (qemu-m4 counts instructions deterministically) and sums, per family and layer kind,
the full submodel's instructions and MACs:

  first conv        the conv on the network input (1-3 channels)
  pointwise         1x1 convs
  dw3x3 s1          depthwise 3x3 stride 1 on maps larger than 2x2
  dw3x3 s1 small    depthwise 3x3 stride 1 on 2x2 and 1x1 maps
  dw3x3 s2          depthwise 3x3 stride 2

    .venv/bin/python benchmarks/fastpaths.py --label after

merges the measurement of the current tree under `label` into
benchmarks/results/fastpaths.json and rewrites fastpaths.md (one column per label).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

FAMILIES = ("dscnn-s", "dscnn-s-img", "mobilenetv1-025")
KINDS = ("first conv", "pointwise", "dw3x3 s1", "dw3x3 s1 small", "dw3x3 s2")


def kinds(arch: str) -> dict[str, str]:
    """layer name -> kind, from the architecture's spec at width 1.0."""
    from reds.ir.archs import build_spec
    from reds.ir.spec import Conv2d, DepthwiseConv2d

    spec = build_spec(arch, width_mult=1.0)
    out, first = {}, True
    for layer in spec.layers:
        op = layer.op
        if isinstance(op, Conv2d):
            out[layer.name] = "first conv" if first else ("pointwise" if tuple(op.kernel) == (1, 1) else "conv")
            first = False
        elif isinstance(op, DepthwiseConv2d) and tuple(op.kernel) == (3, 3):
            out[layer.name] = "dw3x3 s2" if tuple(op.stride) == (2, 2) else "dw3x3 s1"
    return out


def sum_by_kind(rows: list[dict], kind: dict[str, str]) -> dict[str, list[int]]:
    """A profile's rows (reds bench --profile) -> {layer kind: [instructions, MACs]}."""
    acc: dict[str, list[int]] = {}
    for row in rows:
        k = kind.get(row["name"])
        if k is None or not row["macs"]:
            continue
        if k == "dw3x3 s1" and row["shape"][1] * row["shape"][2] <= 4:
            k = "dw3x3 s1 small"
        a = acc.setdefault(k, [0, 0])
        a[0] += row["cycles"]
        a[1] += row["macs"]
    return acc


def measure(tmp: Path) -> dict:
    from families import make_family

    res = {}
    for arch in FAMILIES:
        fam = make_family(tmp, arch, 1.0)
        js = tmp / f"{arch}.json"
        subprocess.run([sys.executable, "-m", "reds", "bench", str(fam), "--board", "qemu-m4", "--profile", "--runs",
                        "1", "--build", str(tmp / f"build-{arch}"), "--json", str(js)], check=True,
                       stdout=subprocess.DEVNULL)
        prof = json.loads(js.read_text())["profile"]["submodels"][-1]  # the full submodel
        acc = sum_by_kind(prof["layers"], kinds(arch))
        res[arch] = {"run_instructions": prof["run_cycles"],
                     "kinds": {k: {"instructions": v[0], "macs": v[1], "per_mac": round(v[0] / v[1], 3)}
                               for k, v in acc.items()}}
    return res


def write_md(data: dict, path: Path) -> None:
    labels = list(data["labels"])
    lines = ["# Fast paths: instructions per MAC on the virtual M4 (qemu-m4), full submodel, width 1.0", "",
             "Made by `.venv/bin/python benchmarks/fastpaths.py --label LABEL` (families from "
             "tests/families.py, seeded random weights); " + "; ".join(f"{k}: {v}" for k, v in
                                                                       data["notes"].items()), "",
             "| family | layer kind | " + " | ".join(labels) + " |",
             "|---|---|" + "---|" * len(labels)]
    for arch in FAMILIES:
        for k in KINDS + ("total instructions",):
            cells = []
            for lab in labels:
                r = data["labels"][lab].get(arch, {})
                if k == "total instructions":
                    cells.append(f"{r['run_instructions']:,}" if r else "-")
                else:
                    v = r.get("kinds", {}).get(k)
                    cells.append(f"{v['per_mac']:.2f}" if v else "-")
            if any(c != "-" for c in cells):
                lines.append(f"| {arch} | {k} | " + " | ".join(cells) + " |")
    path.write_text("\n".join(lines) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--label", required=True, help="column name for this tree's measurement (before, after, ...)")
    ap.add_argument("--note", default="", help="what this tree is (a commit, a change)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "fastpaths")
    a = ap.parse_args()
    js = a.out.with_suffix(".json")
    data = json.loads(js.read_text()) if js.exists() else {"labels": {}, "notes": {}}
    with tempfile.TemporaryDirectory() as tmp:
        data["labels"][a.label] = measure(Path(tmp))
    data["notes"][a.label] = a.note or a.label
    js.write_text(json.dumps(data, indent=1) + "\n")
    write_md(data, a.out.with_suffix(".md"))
    print(a.out.with_suffix(".md").read_text())


if __name__ == "__main__":
    main()
