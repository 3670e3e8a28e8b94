"""The argument parser of `reds`: every command, its flags and their defaults.

Choices come from the registries (architectures, data sets, export formats, layouts,
boards, runtimes), never from a copy of them.
"""
from __future__ import annotations

import argparse

from .. import __version__

EPILOG = """examples:
  reds data synth-kws --out data/synth-kws          # a spoken-word data set, offline
  reds arch dscnn-s                                 # layers, groups, MACs
  reds train --arch dscnn-s --dataset synth-kws --data-dir data/synth-kws --out runs/ds
  reds info runs/ds                                 # the family: widths, MACs, accuracy
"""


class DefaultsFormatter(argparse.HelpFormatter):
    """Every flag says its default, or that it has none: "(default: X)", "(required)",
    "(off unless given)" or "(default: none)", unless its help already says it."""

    def _get_help_string(self, action):
        text = action.help or ""
        if not action.option_strings or action.default is argparse.SUPPRESS or "default" in text:
            return text
        if action.required:
            tail = "(required)"
        elif isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):
            tail = "(off unless given)"
        elif action.default is None:
            tail = "(default: none)"
        else:
            tail = "(default: %(default)s)"
        return f"{text} {tail}".strip()


class TopFormatter(DefaultsFormatter, argparse.RawDescriptionHelpFormatter):
    """`reds --help`: the examples keep their lines."""


def _items(text: str) -> list[str]:
    """The non-empty items of a comma-separated list, stripped."""
    return [t.strip() for t in text.split(",") if t.strip()]


def _budgets(text: str) -> list[float]:
    """Fractions (0.25,0.5,1) or percentages written with % (25%,50%,100%); a bare number
    above 1 is refused rather than guessed at."""
    hint = "e.g. 0.25,0.5,0.75,1.0 or 25%,50%,75%,100%"
    vals = []
    for t in _items(text):
        try:
            vals.append(float(t[:-1]) / 100 if t.endswith("%") else float(t))
        except ValueError:
            raise argparse.ArgumentTypeError(f"budgets are comma-separated fractions or percentages ({hint}); "
                                             f"got {t!r}") from None
        if vals[-1] > 1 and not t.endswith("%"):
            raise argparse.ArgumentTypeError(f"budget {t} is above 1: write a fraction (0.25) or a percentage with "
                                             f"% (25%); {hint}")
    if not vals or any(not 0 < v <= 1 for v in vals) or len(set(vals)) != len(vals):
        raise argparse.ArgumentTypeError(f"budgets must be distinct and in (0, 1] (or (0 %, 100 %]), {hint}")
    return sorted(vals)


def _positive(kind):
    def parse(text):
        try:
            v = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}")
        if v <= 0:
            raise argparse.ArgumentTypeError(f"must be positive, got {text}")
        return v
    return parse


def _nonneg_int(text):
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}")
    if v < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return v


def _probability(text):
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a probability, got {text!r}")
    if not 0 <= v < 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {text}")
    return v


def _words(text: str) -> list[str]:
    """Comma-separated keywords (checked further when the data set is read)."""
    words = _items(text)
    if not words:
        raise argparse.ArgumentTypeError(f"expected comma-separated keywords, e.g. yes,no,stop; got {text!r}")
    return words


def _image_size(text: str) -> list[int]:
    """HxW (e.g. 32x32, 28x40) or one number for a square: the folder loader's own check."""
    from ..data.folder import parse_image_size
    from ..errors import RedsError

    try:
        return list(parse_image_size(text))
    except RedsError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _input_shape(text: str) -> list[int]:
    """C,H,W: channels, height, width of one input."""
    try:
        shape = [int(t) for t in text.replace("x", ",").split(",")]
    except ValueError:
        shape = []
    if len(shape) != 3 or min(shape) <= 0:
        raise argparse.ArgumentTypeError(f"expected C,H,W (channels, height, width), e.g. 3,32,32; got {text!r}")
    return shape


def _methods(text: str) -> list[str]:
    """Comma-separated magnitude-pruning baselines."""
    from ..probe.pruning import METHODS

    names = _items(text)
    bad = [n for n in names if n not in METHODS]
    if not names or bad:
        raise argparse.ArgumentTypeError(f"expected some of {','.join(METHODS)}, got {text!r}")
    return names


WORDS_HELP = ("comma-separated keywords replacing REDS's ten (speech-commands, synth-kws): the classes become "
              "silence, unknown, these; every other word folder counts as unknown (default: REDS's ten, or "
              "those a synth-kws folder was made with)")
IMAGE_SIZE_HELP = "folder of images: resize every image to HxW (default: the first training image's size)"
DATA_DIR_HELP = ("data set folder, or the .npz file for npz (fmnist defaults to the Debian package's folder; "
                 "folder and npz: README 'Your own data')")


def _arch(text: str) -> str:
    """A built-in architecture's name, or the path of an architecture file (read later)."""
    from ..ir.archs import ARCHS, is_file

    if text in ARCHS or is_file(text):
        return text
    raise argparse.ArgumentTypeError(f"unknown architecture '{text}'; choose one of: {', '.join(ARCHS)}, "
                                     "or an architecture file (.json, .yaml)")


def build_parser() -> argparse.ArgumentParser:
    from ..build.boards import list_boards
    from ..data import DATASETS
    from ..device.serve import RUNTIMES
    from ..export import FORMATS, abi
    from ..ir.archs import ARCHS
    from ..nn import METHODS
    from ..search import MODES
    from ..train import DEVICES, RECIPES

    layouts = list(abi.layout_names())
    boards = list_boards()

    p = argparse.ArgumentParser(
        prog="reds", formatter_class=TopFormatter, epilog=EPILOG,
        description="reds: one network, a family of nested submodels, switched at run time in microseconds.")
    p.add_argument("-V", "--version", action="version", version=f"reds {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    a = sub.add_parser("arch", help="show an architecture: layers, unit groups, MACs, params",
                       description="Print an architecture's layers, unit groups (inferred from how the layers "
                                   "connect), full MACs and parameters. NAME is a built-in architecture or an "
                                   "architecture file (JSON or YAML; the schema: docs/architecture-files.md).")
    a.add_argument("name", type=_arch, metavar="NAME|FILE", help=f"one of: {', '.join(ARCHS)}; or a .json/.yaml file")
    a.add_argument("--dataset", choices=DATASETS, help="data set whose input shape and classes to use "
                   "(default: the architecture's own)")
    a.add_argument("--width", type=float, default=1.0, help="scale every group's units (default 1.0)")
    a.add_argument("--data-dir", help="read the input shape and classes from this data (needed for the folder "
                   "and npz data sets, whose shape only their files know)")
    a.add_argument("--words", type=_words, help=WORDS_HELP)
    a.add_argument("--image-size", type=_image_size, metavar="HxW", help=IMAGE_SIZE_HELP)
    a.add_argument("--json", action="store_true", help="print JSON (top-level macs, params, groups)")

    d = sub.add_parser("data", help="make a data set", description="Make a data set on disk.")
    dsub = d.add_subparsers(dest="what", metavar="DATASET", required=True)
    s = dsub.add_parser("synth-kws", help="spoken keywords synthesised with espeak-ng, in the Speech Commands layout",
                        description="Write a real spoken-word data set with espeak-ng (8 English accents, voice "
                                    "variants, pitch, speed, amplitude, plus background noise) in exactly the "
                                    "Google Speech Commands v2 layout, so `--dataset synth-kws` reads it.")
    s.add_argument("--out", required=True, help="folder to create")
    s.add_argument("--per-word", type=_positive(int), default=120, help="utterances per keyword (default 120)")
    s.add_argument("--seed", type=int, default=0, help="seed of the voices, words and noise drawn")
    s.add_argument("--jobs", type=_positive(int), help="worker processes (default: all cores)")
    s.add_argument("--words", type=_words, help="comma-separated keywords to speak instead of REDS's ten (any words "
                   "espeak-ng can say; the unknown words are REDS's ten others less these; default: REDS's ten)")

    t = sub.add_parser("train", help="train a family of nested submodels",
                       formatter_class=DefaultsFormatter,
                       description="Pretrain the full network, score and permute its units, pick each "
                                   "submodel's widths with a knapsack (OR-Tools CP-SAT, exact MACs), fine-tune "
                                   "all submodels together and write the family to --out.")
    t.add_argument("--arch", required=True, type=_arch, metavar="ARCH|FILE",
                   help=", ".join(ARCHS) + "; or an architecture file (.json, .yaml: docs/architecture-files.md)")
    t.add_argument("--dataset", required=True, choices=DATASETS, help="the data set (see --data-dir)")
    t.add_argument("--data-dir", help=DATA_DIR_HELP)
    t.add_argument("--words", type=_words, help=WORDS_HELP)
    t.add_argument("--image-size", type=_image_size, metavar="HxW", help=IMAGE_SIZE_HELP)
    t.add_argument("--out", required=True, help="output folder (family.json, weights.safetensors, metrics.jsonl)")
    t.add_argument("--budgets", type=_budgets, default=[0.25, 0.5, 0.75, 1.0],
                   help="MAC budgets as fractions of the full model")
    t.add_argument("--knapsack", choices=MODES, default="bottom-up",
                   help="order of the budgets: bottom-up (REDS: smallest first), top-down, or joint (all at once)")
    t.add_argument("--depth", choices=["off", "on"], default="off",
                   help="on: the knapsack may also skip whole blocks (depthwise-separable and residual ones, or an "
                        "architecture file's 'skippable'), nested in depth as in width; bottom-up or top-down only")
    t.add_argument("--block-importance", choices=["loss", "none"], default="loss",
                   help="--depth on: a block's value, loss (the loss increase when it alone is skipped, on the scale "
                        "of unit importance) or none (skipping is free: an ablation)")
    t.add_argument("--layer-drop", type=_probability, default=0.0, metavar="P",
                   help="stochastic depth in pretraining: skip each skippable block with probability P per batch, "
                        "so the network learns to run without it (for --depth on)")
    t.add_argument("--importance", choices=METHODS, default="grad",
                   help="unit score: grad (REDS: |W x gradient|), l1 (|W|) or random")
    t.add_argument("--importance-batches", type=_positive(int), default=100,
                   help="minibatches the grad score sums over (REDS's 100: seconds, and fewer change the widths)")
    t.add_argument("--importance-norm", choices=["group", "none"], default="group",
                   help="group: weigh the share of each group's importance kept; none: REDS's raw sum")
    t.add_argument("--epochs", type=_nonneg_int, default=10, help="pretraining epochs (full network)")
    t.add_argument("--finetune-epochs", type=_nonneg_int, default=10, help="joint fine-tuning epochs")
    t.add_argument("--recipe", choices=list(RECIPES), default="default",
                   help="; ".join(f"{r.name}: {r.help}" for r in RECIPES.values()))
    by_recipe = ", ".join(f"{r.name} {{}}" for r in RECIPES.values())
    t.add_argument("--batch-size", type=_positive(int),
                   help="samples per minibatch (default: the recipe's: "
                        + by_recipe.format(*(r.batch_size for r in RECIPES.values())) + ")")
    t.add_argument("--lr", type=_positive(float), help="Adam's peak learning rate of pretraining (default: the "
                   "recipe's: " + by_recipe.format(*(f"{r.lr:g}" for r in RECIPES.values())) + ")")
    t.add_argument("--finetune-lr", type=_positive(float), help="Adam's peak learning rate of fine-tuning (default: "
                   "the recipe's: " + by_recipe.format(*(f"{r.finetune_lr:g}" for r in RECIPES.values())) + ")")
    t.add_argument("--no-augment", dest="augment", action="store_false",
                   help="train without the data set's augmentation (images: flip, rotation, crop; "
                        "speech: time shift, background noise)")
    t.add_argument("--val-per-epoch", type=_positive(int), default=2000,
                   help="validation samples scored after each epoch (the family records all of them)")
    t.add_argument("--device", choices=DEVICES, default="auto",
                   help="auto: the GPU when PyTorch sees one (bfloat16 autocast), else the CPU")
    t.add_argument("--threads", type=_positive(int),
                   help="CPU threads (default: PyTorch's, at most the CPUs this process may use)")
    t.add_argument("--distill", action="store_true",
                   help="sandwich rule: smaller submodels learn from the largest one's outputs")
    t.add_argument("--baseline", choices=["scratch"], help="also train each submodel's widths alone")
    t.add_argument("--loss", choices=["ce", "supcon"], default="ce",
                   help="pretraining loss: ce (cross-entropy) or supcon (supervised contrastive on the penultimate "
                        "layer, Khosla et al. 2020, then a linear head on the frozen network); fine-tuning is "
                        "cross-entropy either way")
    t.add_argument("--temperature", type=_positive(float), default=0.1, help="--loss supcon: the temperature")
    t.add_argument("--head-epochs", type=_positive(int), default=2,
                   help="--loss supcon: epochs of the linear head after contrastive pretraining")
    t.add_argument("--limit-train", type=_positive(int), help="use only N training samples")
    t.add_argument("--limit-eval", type=_positive(int), help="use only N validation and N test samples")
    t.add_argument("--width", type=_positive(float), default=1.0, help="scale every group's units")
    t.add_argument("--min-units", type=_positive(int), help="minimum units per group (default 2)")
    t.add_argument("--flash", type=_positive(int), metavar="BYTES", help="limit on each submodel's weight bytes")
    t.add_argument("--ram", type=_positive(int), metavar="BYTES", help="limit on each submodel's activation arena")
    t.add_argument("--time-limit", type=_positive(float), default=30.0, help="seconds per knapsack solve")
    t.add_argument("--seed", type=int, default=0, help="seed of initialisation, data order and splits")
    t.add_argument("--init", metavar="WEIGHTS", help="start from these weights instead of a random initialisation "
                   "(the .safetensors of `reds import-model`; its tensor names and shapes must match the architecture "
                   "at this --width)")
    t.add_argument("--resume", action="store_true", help="continue an interrupted run in --out")
    t.add_argument("--quiet", action="store_true", help="no progress bars")

    e = sub.add_parser("eval", help="test accuracy of every submodel, written back to family.json",
                       formatter_class=DefaultsFormatter,
                       description="Measure every submodel's accuracy on the test split of the family's data set "
                                   "and write it into family.json (what `reds info` and `reds report` show). "
                                   "An int8 family (reds quantize's output): float and int8 accuracy per "
                                   "submodel, the int8 one from the integer reference, written into int8.json.")
    e.add_argument("family", help="family folder")
    e.add_argument("--data-dir", help="data set folder (default: the one the family was trained on)")
    e.add_argument("--limit", type=_positive(int), help="use only N test samples")

    qz = sub.add_parser("quantize", help="int8 post-training quantization of a family, float vs int8 accuracy",
                        formatter_class=DefaultsFormatter,
                        description="Quantize a float family to int8 (docs/int8.md): weights symmetric per output "
                                    "channel, shared by every submodel; activations per tensor, calibrated per "
                                    "submodel on --calib training samples; each batch norm folds into its "
                                    "submodel's int32 biases and multipliers. --out gets a copy of the family plus "
                                    "int8.json and int8.npz (written whole or not at all). Then prints every "
                                    "submodel's float and int8 test accuracy (the int8 one from the reds integer "
                                    "reference, the definition the C kernels match bit for bit), recorded in "
                                    "int8.json. The int8 family is a family: reds info, eval, export (c, onnx), "
                                    "build and bench take it. Int8 TFLite is not there yet. --qat N fine-tunes first "
                                    "(quantization-aware: the int8 family then holds the tuned float weights).")
    qz.add_argument("family", help="float family folder")
    qz.add_argument("--out", required=True, help="the int8 family's folder")
    qz.add_argument("--data-dir", help="data set folder (default: the one the family was trained on)")
    qz.add_argument("--calib", type=_positive(int), default=512, help="training samples to calibrate on")
    qz.add_argument("--limit", type=_positive(int), default=500, help="test samples to compare accuracy on")
    qz.add_argument("--qat", type=_positive(int), metavar="N",
                    help="first fine-tune all submodels together for N passes over the training data with int8 "
                         "fake-quantized weights and activations (quantization-aware; slow on a CPU)")
    qz.add_argument("--qat-limit", type=_positive(int), metavar="M", help="with --qat: at most M training samples a pass")

    i = sub.add_parser("info", help="show a family: widths, MACs, memory, accuracy",
                       formatter_class=DefaultsFormatter,
                       description="Print one row per submodel k (the k of `select K%` on a board): budget, widths "
                                   "per unit group, MACs, params, weight and arena bytes, accuracy. The weights are "
                                   "checked against the sha256 the manifest records.")
    i.add_argument("family", help="family folder")
    i.add_argument("--json", action="store_true", help="print the manifest as JSON")

    x = sub.add_parser("export", help="export a family: C source for the firmware runtime, ONNX, TFLite",
                       description="Export every submodel of a family into --out (written whole or not at all; "
                                   "an existing --out must be empty or a previous export). c: <name>.h/.c for "
                                   "firmware/ (shared weights, widths table, per-submodel folded batch norm); "
                                   "onnx / tflite: one file per submodel. Each writes manifest.json. An int8 "
                                   "family (reds quantize) exports as int8: c (int8 weights, per-submodel "
                                   "requantization), onnx (QDQ graphs checked against the integer reference) and "
                                   "tflite (fully int8 files by litert-torch's PT2E quantization, calibrated on the "
                                   "training samples reds quantize used: it reads the family's data, see --data-dir; "
                                   "checked in LiteRT and TFLite Micro against the integer reference).")
    x.add_argument("family", help="family folder")
    x.add_argument("--format", required=True, choices=list(FORMATS),
                   help="; ".join(f"{f.name}: {f.help}" for f in FORMATS.values()))
    x.add_argument("--out", required=True, help="output folder")
    x.add_argument("--layout", choices=layouts, default=abi.DEFAULT_LAYOUT,
                   help="C weight order (default nested: each submodel's weights are one contiguous prefix)")
    x.add_argument("--name", default="reds_model", help="C: file names and the model's symbol (default reds_model)")
    x.add_argument("--data-dir", help="int8 family as tflite: the data set folder to calibrate on (default: the one "
                                      "the family was trained on)")

    bd = sub.add_parser("build", help="compile a family into firmware for a board",
                        formatter_class=DefaultsFormatter,
                        description="Export the family as C into --out, compile it with the runtime (firmware/) "
                                    "and the board's port (boards/BOARD/), link, and print text/data/bss against "
                                    "the board's flash and RAM. Refuses, in one line, a family that does not fit. nano33ble: a "
                                    "PlatformIO project that `pio run` compiles (never uploads: reds flash does).")
    bd.add_argument("family", help="family folder")
    bd.add_argument("--board", default="qemu-m4", choices=boards, help="board (its folder under boards/)")
    bd.add_argument("--out", required=True, help="build folder (firmware.elf, model/, build.json)")
    bd.add_argument("--layout", choices=layouts, default=abi.DEFAULT_LAYOUT, help="C weight order")
    bd.add_argument("--force", action="store_true", help="rebuild even if --out is up to date")
    bd.add_argument("--flash", type=_positive(int), metavar="BYTES",
                    help="check against less flash than the board has (the part you will ship on)")
    bd.add_argument("--ram", type=_positive(int), metavar="BYTES", help="check against less RAM than the board has")
    bd.add_argument("--cross", action="store_true",
                    help="rpi: cross-compile for a 64-bit Pi with aarch64-linux-gnu-gcc (static)")

    fl = sub.add_parser("flash", help="upload a `reds build` PlatformIO project (nano33ble)",
                        description="Run `pio run -t upload` in a build folder made by `reds build --board "
                                    "nano33ble` (which compiled it: `pio run`, no upload). Needs PlatformIO (pip "
                                    "install platformio), which downloads the pinned nordicnrf52 platform, its "
                                    "toolchain and the Arduino mbed core on first use.")
    fl.add_argument("build", help="build folder (holds platformio.ini)")
    fl.add_argument("--port", help="upload port, e.g. /dev/ttyACM0 (default: PlatformIO finds the board)")

    sv = sub.add_parser("serve", help="serve the reds protocol from this computer (C harness, onnxruntime, TFLite)",
                        formatter_class=DefaultsFormatter,
                        description="Serve a family over the reds serial protocol, run by the C runtime (the rpi "
                                    "harness, built natively), onnxruntime or TFLite (ai-edge-litert, else "
                                    "tflite-runtime), timed with the host's nanosecond clock: `reds bench --port` "
                                    "then compares runtimes on one machine (e.g. a Raspberry Pi).")
    sv.add_argument("family", help="family folder")
    sv.add_argument("--runtime", choices=list(RUNTIMES), default="onnxruntime",
                    help="c: the Pi harness built natively; onnxruntime or tflite: the family's export")
    sv.add_argument("--port", default="pty", help="where to serve: pty (create one, print its path), a serial "
                    "device, '-' (stdin/stdout), or tcp:[HOST:]PORT")
    sv.add_argument("--build", metavar="DIR", help="--runtime c: build folder (default: a cached build under ~/.cache/reds)")

    bn = sub.add_parser("bench", help="time every submodel and switch on a board, check outputs against PyTorch",
                        formatter_class=DefaultsFormatter,
                        description="On a virtual board: build if needed, start the emulator, time every submodel "
                                    "(cycles min/median/max, us, cycles per MAC) and every switch k -> k' on the "
                                    "device, and compare every submodel's outputs with PyTorch. With --port: the "
                                    "same against any board that speaks the reds protocol.")
    bn.add_argument("family", help="family folder")
    bn.add_argument("--board", default="qemu-m4", choices=boards, help="board (its folder under boards/)")
    bn.add_argument("--port", help="serial port or URL of a board running this family's firmware "
                    "(/dev/ttyACM0, socket://host:port); skips build and emulator")
    bn.add_argument("--runs", type=_positive(int), default=20, help="timed inferences per submodel")
    bn.add_argument("--json", metavar="OUT", help="also write the report as JSON")
    bn.add_argument("--build", metavar="DIR", help="build folder: pass the --out of your `reds build` "
                    "(default: a cached build under ~/.cache/reds, made if needed)")
    bn.add_argument("--layout", choices=layouts, default=abi.DEFAULT_LAYOUT, help="C weight order")
    bn.add_argument("--seed", type=int, default=0, help="seed of the random input")
    bn.add_argument("--audio", metavar="WAV", help="feed this clip (16 kHz mono 16-bit) through the device's MFCC "
                    "front end instead of features, and time the front end apart (families trained on audio)")
    bn.add_argument("--profile", action="store_true", help="then, per submodel, a table of each layer's cycles "
                    "on the device (its timer read after every step), output shape, MACs, cycles per MAC and "
                    "share of the run (also in the --json report)")
    bn.add_argument("--timeout", type=_positive(float), default=10.0, help="seconds to wait for a reply")
    bn.add_argument("--trace", metavar="CSV", help="also replay a resource trace (CSV time_s,budget; budget = "
                    "fraction of the full model's measured cycles): per step the largest submodel that fits, "
                    "its switch cycles, an inference against the deadline, the accuracy delivered")
    bn.add_argument("--trace-out", metavar="DIR", help="where the replay writes trace.csv, trace.json, trace.png "
                    "(default: FAMILY/trace-<CSV name>)")
    rp = sub.add_parser("report", help="plots and a markdown summary of a family (and of its bench)",
                        description="Write PNG plots (accuracy vs MACs beside REDS's published curve; with --bench: "
                                    "latency vs MACs and switch cycles beside REDS's 38 us) and a README.md that "
                                    "embeds them and tabulates the family into --out (written whole or not at all).")
    rp.add_argument("family", help="family folder")
    rp.add_argument("--out", required=True, help="report folder (absent, empty, or a previous report)")
    rp.add_argument("--bench", metavar="BENCH_JSON", help="a `reds bench --json` report of this family")
    pr = sub.add_parser("probe", help="what each submodel gives up: PIEs, Q-score, prediction depth (+ pruning baselines)",
                        description="Per submodel of FAMILY: accuracy per class, pruning-identified exemplars (PIEs: "
                                    "test examples on which it disagrees with the full submodel; with --seeds, the "
                                    "modal predictions over several families), the Q-score of the penultimate "
                                    "representation and the prediction depth from k-NN probes at every block's "
                                    "output; with --baselines, the same for global magnitude pruning to each "
                                    "submodel's number of weights. Writes probe.json, probe.md, plots against MACs "
                                    "and the PIEs (image grids, or WAVs for speech) into --out (whole or not at all).")
    pr.add_argument("family", help="family folder")
    pr.add_argument("--seeds", nargs="+", default=[], metavar="FAMILY",
                    help="families of the same architecture and budgets trained with other seeds (modal-prediction "
                         "PIEs)")
    pr.add_argument("--out", required=True, help="probe folder (absent, empty, or a previous probe)")
    pr.add_argument("--limit", type=_positive(int), default=2000, help="test examples scored")
    pr.add_argument("--train-samples", type=_positive(int), default=5000,
                    help="training examples the k-NN probes are fitted on")
    pr.add_argument("--k", type=_positive(int), default=30, help="neighbours of the k-NN probes (Baldock et al.: 30)")
    pr.add_argument("--baselines", type=_methods, default=[], metavar="METHODS",
                    help="comma-separated magnitude-pruning baselines: one-shot, gradual (default: none)")
    pr.add_argument("--prune-epochs", type=_nonneg_int, default=1, help="fine-tuning epochs of each pruned network")
    pr.add_argument("--from", dest="init", metavar="WEIGHTS", help="prune these pretrained weights (a .safetensors "
                    "of this architecture, as `reds train --init` reads) instead of the family's full submodel")
    pr.add_argument("--data-dir", help="data set folder (default: the one the family was trained on)")
    pr.add_argument("--seed", type=int, default=0, help="seed of the k-NN training draw and of the pruning runs")
    pr.add_argument("--quiet", action="store_true", help="no progress lines")
    im = sub.add_parser("import-model", help="turn a PyTorch nn.Module into an architecture file and weights",
                        description="Trace a PyTorch model with torch.fx into an architecture file (--out) and its "
                                    "weights (the same name, .safetensors), ready for `reds train --arch FILE --init "
                                    "WEIGHTS`. SOURCE is FILE.py:CLASS (the class is built with no arguments). "
                                    "Supported layers: README 'Import your own PyTorch model'; anything else is "
                                    "refused naming the layer and its source line.")
    im.add_argument("source", metavar="FILE.py:CLASS", help="the Python file and the nn.Module class in it")
    im.add_argument("--out", required=True, metavar="ARCH.json", help="architecture file to write (weights go "
                    "beside it as ARCH.safetensors)")
    im.add_argument("--weights", help="a state dict to load into the model first: a torch.save'd dict of tensors "
                    "(read with weights_only=True) or a .safetensors file (default: the weights the class builds)")
    im.add_argument("--input-shape", type=_input_shape, metavar="C,H,W", help="one input's shape: checks the weight "
                    "shapes and reports the MACs (any input size imports: PyTorch's padding is kept exactly)")
    im.add_argument("--name", help="the architecture's name (default: the class name)")
    _adapt_parsers(sub)
    for parser in list(_parsers(p))[1:]:  # every command's --help says each flag's default
        parser.formatter_class = DefaultsFormatter
    return p


def _adapt_parsers(sub) -> None:
    """`reds adapt` and `reds profile` (method, rank and task are checked by the command: one line)."""
    from ..adapt import METHODS, RANKED, TASKS

    ad = sub.add_parser("adapt", help="update every submodel of a family on new data (LoRA, DoRA, GaLore, adapters, "
                        "bn-head, full)",
                        description="Adapt all submodels of FAMILY together on new data, keeping them nested (one "
                                    "adapter serves every submodel: each reads its prefix), recalibrate their batch "
                                    "norms, and write to --out the family with the update merged into its shared "
                                    "weights (what export, build and bench take) and adapt.json (accuracy per "
                                    "submodel before and after); --keep-delta also writes delta.safetensors.")
    ad.add_argument("family", help="family folder")
    ad.add_argument("--method", required=True, help="one of: " + ", ".join(METHODS))
    ad.add_argument("--rank", type=int, default=4, help=f"rank of {', '.join(RANKED)} (at most the smallest "
                    "layer's size)")
    ad.add_argument("--task", default="shift", help="shift (the data changed; --shift says how) or new-classes (the "
                    "data adds classes: a new classifier for old + new, old classes kept); one of: " + ", ".join(TASKS))
    ad.add_argument("--dataset", help="the new data set (default: the family's)")
    ad.add_argument("--data-dir", help="its folder or .npz (default: the family's data)")
    ad.add_argument("--shift", help="the shift, key=value,...: images rotate=30,noise=0.1,contrast=0.6 (degrees, "
                    "[0,1] units, factor); audio snr=10 (dB); arrays noise=0.5 (default: those)")
    ad.add_argument("--epochs", type=_positive(int), default=1, help="passes over the new training data")
    ad.add_argument("--batch-size", type=_positive(int), default=64, help="samples per step")
    ad.add_argument("--lr", type=_positive(float), help="Adam's learning rate (default: 3e-3 for lora, dora, adapter "
                    "and bn-head; 1e-3 for galore and full)")
    ad.add_argument("--limit-train", type=_positive(int), default=2000, help="new training samples used")
    ad.add_argument("--limit-eval", type=_positive(int), default=2000, help="test samples scored")
    ad.add_argument("--seed", type=int, default=0, help="seed of the shift, the data order and the factors")
    ad.add_argument("--keep-delta", action="store_true", help="also write the update as delta.safetensors (the "
                    "low-rank factors and the tensors that changed) and report its size")
    ad.add_argument("--out", required=True, help="output folder (absent, empty, or an earlier adapt output)")
    ad.add_argument("--threads", type=_positive(int), help="CPU threads (default: PyTorch's)")

    pf = sub.add_parser("profile", help="cost of an adaptation step per method and rank: FLOPs and memory",
                        description="Per method and rank on FAMILY: trainable values, training FLOPs per sample "
                                    "(forward, backward to inputs, backward to weights, elementwise, optimizer), "
                                    "counted per op from the spec and widths (depthwise convs right), and training "
                                    "memory (parameters, gradients, optimizer state: exact; activations: measured "
                                    "with autograd's saved-tensor hooks at --batch-size). --check compares the "
                                    "counts with torch's FlopCounterMode.")
    pf.add_argument("family", help="family folder")
    pf.add_argument("--method", default=",".join(METHODS), help="comma-separated methods (of: "
                    + ", ".join(METHODS) + "; default: all)")
    pf.add_argument("--rank", default="4", help="comma-separated ranks, e.g. 1,2,4,8")
    pf.add_argument("--task", default="shift", help="shift, or new-classes (with --classes)")
    pf.add_argument("--classes", type=_positive(int), help="new-classes: the classes after (default: the family's)")
    pf.add_argument("--batch-size", type=_positive(int), default=64, help="samples per step")
    pf.add_argument("--check", action="store_true", help="cross-check every count with torch's FlopCounterMode")
    pf.add_argument("--json", metavar="OUT", help="also write every count (per op, per submodel) as JSON")


def _parsers(p: argparse.ArgumentParser):
    """p and every (sub)command parser below it."""
    yield p
    for action in p._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                yield from _parsers(child)


