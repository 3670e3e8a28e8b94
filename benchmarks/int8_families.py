"""int8 accuracy beyond the committed family: trains dscnn-s, cnn-s and dscnn-l families, then
runs benchmarks/int8.py (float vs int8 per submodel) and benchmarks/int8_tflite.py (reds
int8 vs TFLite int8) on each.

    python benchmarks/int8_families.py [--archs dscnn-s cnn-s dscnn-l] [--no-tflite]

No Google Speech Commands or CIFAR-10 ships here, so the keyword spotters (dscnn-s,
dscnn-l) train on synth-kws (`reds data synth-kws --per-word 800 --seed 0`: espeak-ng
voices in the Speech Commands layout, about 13,000 clips) and cnn-s on Fashion-MNIST
(its input shape follows the data set: 1 x 28 x 28). Each family trains once into
runs/int8/<arch>/ (not committed: a family records its data folder's absolute path) with
the command below (one thread; resumable from its checkpoint),
short runs on a CPU, not REDS's recipe: the target is int8 against float of the same
family, not the float accuracy itself. All test samples are used.

Writes results/int8-<arch>-<dataset>.{json,md} and results/int8-tflite-<arch>-<dataset>.{json,md}.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
WORK = Path("benchmarks", "runs", "int8")  # relative to the repository (the families record their data folder)
KWS_DATA = WORK / "data" / "synth-kws-800"
SETUPS = {
    "dscnn-s": ["--dataset", "synth-kws", "--data-dir", str(KWS_DATA), "--epochs", "20", "--finetune-epochs", "6"],
    "cnn-s": ["--dataset", "fmnist", "--epochs", "8", "--finetune-epochs", "4"],
    "dscnn-l": ["--dataset", "synth-kws", "--data-dir", str(KWS_DATA), "--epochs", "12", "--finetune-epochs", "4"],
}
ALL_TEST = "1000000"


def run(cmd: list[str]) -> None:
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, cwd=ROOT)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--archs", nargs="+", choices=list(SETUPS), default=list(SETUPS))
    ap.add_argument("--no-tflite", action="store_true", help="skip benchmarks/int8_tflite.py")
    a = ap.parse_args()
    reds = [sys.executable, "-m", "reds"]
    if any("synth-kws" in SETUPS[arch] for arch in a.archs) and not (ROOT / KWS_DATA).is_dir():
        run([*reds, "data", "synth-kws", "--out", str(KWS_DATA), "--per-word", "800", "--seed", "0", "--jobs", "1"])
    for arch in a.archs:
        fam = WORK / arch
        if not (ROOT / fam / "family.json").is_file() or (ROOT / fam / "checkpoint.pt").is_file():
            run([*reds, "train", "--arch", arch, *SETUPS[arch], "--out", str(fam), "--threads", "1", "--resume",
                 "--quiet"])
        run([sys.executable, str(HERE / "int8.py"), "--family", str(fam), "--limit", ALL_TEST])
        if not a.no_tflite:
            run([sys.executable, str(HERE / "int8_tflite.py"), "--family", str(fam), "--limit", ALL_TEST])


if __name__ == "__main__":
    main()
