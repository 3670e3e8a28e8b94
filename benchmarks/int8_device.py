"""int8 vs float on the boards: instructions per MAC per layer kind on the virtual M4, the
switch, flash and RAM, and whether dscnn-l fits the Nano 33 BLE.

    .venv/bin/python benchmarks/int8_device.py

1. dscnn-s, dscnn-s-img, mobilenetv1-025 and dnn-s at width 1.0 (seeded random weights,
   tests/families.py `make_family`), quantized by reds.quant.quantize (calibrated on 256
   seeded inputs): `reds bench FAMILY --board qemu-m4 --profile` of the float family and
   of the int8 one, side by side. qemu-m4 counts instructions deterministically. Per
   layer kind (fastpaths.py's kinds, and dense), the full submodel's instructions per
   MAC; the whole run's; the int8 switch (every ordered pair); the image's flash and RAM.
   The int8 outputs equal the integer reference's bit for bit (bench's tolerance 0).
2. dscnn-l at width 1.0, float and int8: `reds build --board nano33ble` (the runtime and
   model compiled with arm-none-eabi-gcc for the nRF52840, plus the Arduino core's
   reserve): the float family is refused before exporting, the int8 one is sized.
   PlatformIO's own compile needs its downloads: not run here.
Writes benchmarks/results/int8-device.{json,md}. Targets (issue 13): pointwise and dense
int8 <= 1.0 instruction per MAC, whole DS-CNN-S <= 1.5, switch <= 64 cycles for every pair,
dscnn-l int8 fits the Nano with its Arduino core.
"""
from __future__ import annotations

import datetime
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from fastpaths import kinds, sum_by_kind  # noqa: E402
from machine import describe  # noqa: E402

FAMILIES = ("dscnn-s", "dscnn-s-img", "mobilenetv1-025", "dnn-s")
KINDS = ("first conv", "pointwise", "dw3x3 s1", "dw3x3 s1 small", "dw3x3 s2", "dense")
CALIB = 256


def _bench(fam: Path, build: Path, js: Path) -> dict:
    subprocess.run([sys.executable, "-m", "reds", "bench", str(fam), "--board", "qemu-m4", "--profile", "--runs", "1",
                    "--build", str(build), "--json", str(js)], check=True, stdout=subprocess.DEVNULL)
    return json.loads(js.read_text())


def _per_kind(arch: str, rep: dict) -> dict:
    from reds.ir.archs import build_spec

    kind = kinds(arch)
    kind.update({l.name: "dense" for l in build_spec(arch, width_mult=1.0).layers if l.kind == "dense"})
    prof = rep["profile"]["submodels"][-1]  # the full submodel
    acc = sum_by_kind(prof["layers"], kind)
    full = rep["submodels"][-1]
    return {"run_instructions": prof["run_cycles"], "macs": full["macs"],
            "per_mac": round(prof["run_cycles"] / full["macs"], 3),
            "kinds": {k: round(v[0] / v[1], 3) for k, v in acc.items()},
            "switch_max": rep["switch"]["max"], "switch_min": rep["switch"]["min"],
            "outputs_match": rep["outputs_match"], "reference": rep.get("reference", "pytorch"),
            "flash_used": rep["build"]["flash_used"], "ram_used": rep["build"]["ram_used"]}


def measure_qemu(tmp: Path) -> dict:
    import numpy as np

    from families import make_family
    from reds import quant
    from reds.family import open as open_family

    res = {}
    for arch in FAMILIES:
        src = make_family(tmp, arch, 1.0)
        x = np.random.default_rng(0).standard_normal((CALIB, *open_family(src).spec.input_shape)).astype(np.float32)
        q8 = tmp / f"{arch}-int8"
        quant.quantize(src, q8, x)
        res[arch] = {"float": _per_kind(arch, _bench(src, tmp / f"b-{arch}", tmp / f"{arch}.json")),
                     "int8": _per_kind(arch, _bench(q8, tmp / f"b8-{arch}", tmp / f"{arch}-8.json"))}
        print(arch, json.dumps(res[arch]), flush=True)
    return res


def measure_nano(tmp: Path) -> dict:
    import numpy as np

    from families import make_family
    from reds import quant
    from reds.build import build
    from reds.errors import RedsError
    from reds.family import open as open_family
    from reds.build import platformio

    platformio.pio_command = lambda: None  # sizes from arm-none-eabi-gcc; PlatformIO's downloads are not run here

    src = make_family(tmp, "dscnn-l", 1.0)
    fam = open_family(src)
    x = np.random.default_rng(0).standard_normal((CALIB, *fam.spec.input_shape)).astype(np.float32)
    quant.quantize(src, tmp / "dscnn-l-int8", x)
    out = {"float_weight_bytes": fam.submodels[-1].weight_bytes, "float_arena_bytes": fam.submodels[-1].arena_bytes}
    for dtype, d in (("float", src), ("int8", tmp / "dscnn-l-int8")):
        try:
            r = build(open_family(d), "nano33ble", tmp / f"nano-{dtype}")
            note = r.note.split("; not compiled")[0] + "; PlatformIO's own compile not run by this benchmark"
            out[dtype] = {"fits": True, "flash_used": r.flash_used, "flash_bytes": r.flash_bytes,
                          "ram_used": r.ram_used, "ram_bytes": r.ram_bytes, "note": note}
        except RedsError as e:
            out[dtype] = {"fits": False, "refused": str(e).replace(str(tmp), "TMP")}
    return out


def write_md(res: dict, path: Path) -> None:
    q, n = res["qemu"], res["nano"]
    lines = ["# int8 vs float on the boards", "",
             f"`{res['command']}` ({res['date']}, {res['machine']}). Width 1.0, seeded random weights; int8 "
             f"calibrated on {CALIB} seeded inputs. Instructions on qemu-m4 (deterministic), the full submodel.", "",
             "## Instructions per MAC, per layer kind (float / int8)", "",
             "| family | " + " | ".join(KINDS) + " | whole run | int8 switch (max) | int8 outputs |",
             "|---|" + "---|" * (len(KINDS) + 3)]
    for arch, r in q.items():
        cells = []
        for k in KINDS:
            f, i = r["float"]["kinds"].get(k), r["int8"]["kinds"].get(k)
            cells.append("-" if f is None and i is None else f"{f:.2f} / {i:.2f}")
        ok = "bit-exact" if r["int8"]["outputs_match"] and r["int8"]["reference"] == "int8" else "MISMATCH"
        lines.append(f"| {arch} | " + " | ".join(cells) + f" | {r['float']['per_mac']:.2f} / {r['int8']['per_mac']:.2f}"
                     f" | {r['int8']['switch_max']} | {ok} |")
    lines += ["", "## Image sizes on qemu-m4 (flash / RAM, bytes)", "", "| family | float | int8 |", "|---|---|---|"]
    for arch, r in q.items():
        lines.append(f"| {arch} | {r['float']['flash_used']:,} / {r['float']['ram_used']:,} | "
                     f"{r['int8']['flash_used']:,} / {r['int8']['ram_used']:,} |")
    lines += ["", "## dscnn-l on the Nano 33 BLE (`reds build --board nano33ble`, with the Arduino core's reserve)", ""]
    for dtype in ("float", "int8"):
        d = n[dtype]
        if d["fits"]:
            lines.append(f"- {dtype}: fits: flash about {d['flash_used']:,} of {d['flash_bytes']:,} B, RAM about "
                         f"{d['ram_used']:,} of {d['ram_bytes']:,} B ({d['note']})")
        else:
            lines.append(f"- {dtype}: refused: {d['refused']}")
    lines += ["", "Targets: pointwise and dense int8 <= 1.0 instruction per MAC, whole DS-CNN-S <= 1.5; switch <= 64 "
              "cycles; dscnn-l int8 fits the Nano."]
    path.write_text("\n".join(lines) + "\n")


def main() -> None:
    res = {"command": ".venv/bin/python benchmarks/int8_device.py", "date": datetime.date.today().isoformat(),
           "machine": describe()}
    with tempfile.TemporaryDirectory() as tmp:
        res["nano"] = measure_nano(Path(tmp))
        res["qemu"] = measure_qemu(Path(tmp))
    out = ROOT / "benchmarks" / "results" / "int8-device"
    out.with_suffix(".json").write_text(json.dumps(res, indent=1) + "\n")
    write_md(res, out.with_suffix(".md"))
    print(out.with_suffix(".md").read_text())


if __name__ == "__main__":
    main()
