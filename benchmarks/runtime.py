"""Runtime speed: the reds C runtime against onnxruntime, TFLite Micro and LiteRT, per submodel.

    python benchmarks/runtime.py                       # dnn-s, cnn-s, dscnn-s at full width
    python benchmarks/runtime.py --archs dnn-s --no-qemu

For each architecture a family is made with random weights (tests/families.make_family:
seeded weights, calibrated batch norm, nested widths for budgets 25/50/75/100 %; no data,
no training: speed does not depend on what the weights learned), at full width, and
exported as C, ONNX and TFLite (float32). On this machine, on one seeded input shared by
all of them, every submodel runs in:

- reds: the C runtime (firmware/), built for the host with the host board's flags
  (boards/host/Makefile, `make flags`: -O2 -march=native), timed in C (clock_gettime
  around reds_run); with --compare-cflags, a second build of the same runtime with other
  flags (e.g. the old `-std=c99 -O2`) runs in the same rounds as `reds-base`;
- onnxruntime (1 intra-op and 1 inter-op thread, sequential, all graph optimisations);
- TFLite Micro (the `tflite-micro` Python package: the reference float kernels of the
  microcontroller interpreter);
- LiteRT (`ai-edge-litert`, 1 thread, its default XNNPACK delegate);

each time per inference being the median of N runs after a warm-up, in interleaved rounds
(the median of the rounds' medians), with the ratio to reds (> 1: reds is faster). The
Python runtimes are timed around their Python calls (set input, invoke, read output), so
their figures include the binding's per-call overhead; reds is timed inside C. Outputs
are checked against reds (max |diff|).

Where qemu-system-arm is installed, each family is also run by `reds bench --board
qemu-m4` (reds.bench.bench): cycles per submodel (retired instructions under QEMU icount),
cycles per MAC, the latency ratio of each submodel to the full model against its MAC
ratio, and every ordered switch, beside REDS's 38 us switch on an Arduino Nano 33 BLE
(64 MHz: 2,432 cycles).

Writes benchmarks/results/runtime.{json,md} with the command, the date and the machine.
"""
from __future__ import annotations

import argparse
import datetime
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import numpy as np  # noqa: E402

from machine import describe as describe_machine  # noqa: E402
from reds.build import firmware  # noqa: E402
from reds.build.boards import get_board  # noqa: E402
from publish import publish  # noqa: E402
from reds.family import open as open_family  # noqa: E402
from reds.tables import markdown as md_table  # noqa: E402

BUDGETS = (0.25, 0.5, 0.75, 1.0)
REDS_SWITCH_US = 38.0
NANO_HZ = 64_000_000
RUNTIMES = ("reds", "onnxruntime", "tflite-micro", "litert")


def host_cflags(cc: str) -> list[str]:
    """The host board's compile flags (boards/host/Makefile `make flags`: what `reds build
    --board host` compiles with), without its warnings and include folder."""
    r = subprocess.run(["make", "-s", "-f", str(ROOT / "boards" / "host" / "Makefile"), "flags", f"CC={cc}"],
                       capture_output=True, text=True, check=True)
    return [f for f in r.stdout.split() if f not in ("-Wall", "-Wextra", "-I.")]

TIMER_C = r"""
#define _POSIX_C_SOURCE 199309L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "reds.h"
extern reds_model_t REDS_HARNESS_MODEL;

static double now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* argv: input file, warm-up runs, min runs, max runs, seconds per submodel.
 * Prints per submodel "time k n median_ns min_ns" and "out k y0 y1 ...". */
int main(int argc, char **argv)
{
    reds_model_t *m = &REDS_HARNESS_MODEL;
    const uint32_t isz = reds_input_size(m), osz = reds_output_size(m);
    unsigned k, K = reds_num_submodels(m);
    float *in = malloc(isz * sizeof(float));
    FILE *f;
    long warm, lo, hi, i, n;
    double budget, *t;

    if (argc != 6 || in == NULL)
        return 2;
    f = fopen(argv[1], "rb");
    if (f == NULL || fread(in, sizeof(float), isz, f) != isz)
        return 3;
    fclose(f);
    warm = atol(argv[2]); lo = atol(argv[3]); hi = atol(argv[4]); budget = atof(argv[5]) * 1e9;
    t = malloc((size_t)hi * sizeof(double));
    if (t == NULL)
        return 2;
    for (k = 0; k < K; ++k) {
        const float *y = NULL;
        double start;
        reds_select(m, k);
        for (i = 0; i < warm; ++i)
            y = reds_run(m, in);
        start = now_ns();
        for (n = 0; n < hi && (n < lo || now_ns() - start < budget); ++n) {
            double a = now_ns();
            y = reds_run(m, in);
            t[n] = now_ns() - a;
        }
        qsort(t, (size_t)n, sizeof(double), cmp);
        printf("time %u %ld %.1f %.1f\n", k, n, n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]), t[0]);
        printf("out %u", k);
        for (i = 0; i < (long)osz; ++i)
            printf(" %.9g", (double)y[i]);
        printf("\n");
    }
    free(t);
    free(in);
    return 0;
}
"""


# ---- runners: each returns {k: (median_s, runs, outputs)} for one round ------------------------
def _time_calls(call, warmup: int, min_runs: int, max_runs: int, seconds: float):
    for _ in range(warmup):
        y = call()
    ts = []
    start = time.perf_counter()
    while len(ts) < max_runs and (len(ts) < min_runs or time.perf_counter() - start < seconds):
        a = time.perf_counter_ns()
        y = call()
        ts.append(time.perf_counter_ns() - a)
    return statistics.median(ts) * 1e-9, len(ts), np.asarray(y, dtype=np.float64).reshape(-1)


class CRunner:
    def __init__(self, c_dir: Path, work: Path, x: np.ndarray, cc: str, cflags: list[str], tag: str = ""):
        src = work / "timer.c"
        src.write_text(TIMER_C)
        self.exe = work / f"reds_timer{tag}"
        kernels = get_board("host").kernels  # what reds builds for this computer
        cmd = [cc, *cflags, *(f"-I{d}" for d in firmware.include_dirs(kernels)), f"-I{c_dir}",
               "-DREDS_HARNESS_MODEL=reds_model", str(src), str(c_dir / "reds_model.c"),
               *map(str, firmware.sources(kernels, protocol=False)), "-o", str(self.exe), "-lm"]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode:
            raise SystemExit(f"compiling the reds timer failed:\n{r.stderr}")
        self.input = work / "input.f32"
        self.input.write_bytes(np.ascontiguousarray(x, dtype="<f4").tobytes())

    def round(self, K, warmup, min_runs, max_runs, seconds):
        r = subprocess.run([str(self.exe), str(self.input), str(warmup), str(min_runs), str(max_runs), str(seconds)],
                           capture_output=True, text=True, check=True)
        res, outs = {}, {}
        for line in r.stdout.splitlines():
            f = line.split()
            if f[0] == "time":
                res[int(f[1])] = (float(f[3]) * 1e-9, int(f[2]))
            elif f[0] == "out":
                outs[int(f[1])] = np.array([float(v) for v in f[2:]])
        return {k: (res[k][0], res[k][1], outs[k]) for k in range(K)}


class OrtRunner:
    def __init__(self, onnx_dir: Path, K: int, x: np.ndarray):
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.sess = [ort.InferenceSession(str(onnx_dir / f"submodel_{k}.onnx"), so,
                                          providers=["CPUExecutionProvider"]) for k in range(K)]
        self.x = x[None]

    def round(self, K, warmup, min_runs, max_runs, seconds):
        out = {}
        for k, s in enumerate(self.sess):
            name = s.get_inputs()[0].name
            out[k] = _time_calls(lambda: s.run(None, {name: self.x})[0], warmup, min_runs, max_runs, seconds)
        return out


class TflmRunner:
    def __init__(self, tfl_dir: Path, K: int, x: np.ndarray, arena: int):
        import tflite_micro

        self.its = [tflite_micro.runtime.Interpreter.from_file(str(tfl_dir / f"submodel_{k}.tflite"),
                                                               arena_size=arena) for k in range(K)]
        self.x = x[None]

    def round(self, K, warmup, min_runs, max_runs, seconds):
        out = {}
        for k, it in enumerate(self.its):
            def call(it=it):
                it.set_input(self.x, 0)
                it.invoke()
                return it.get_output(0)
            out[k] = _time_calls(call, warmup, min_runs, max_runs, seconds)
        return out


class LiteRTRunner:
    def __init__(self, tfl_dir: Path, K: int, x: np.ndarray):
        from ai_edge_litert.interpreter import Interpreter

        self.its = []
        for k in range(K):
            it = Interpreter(model_path=str(tfl_dir / f"submodel_{k}.tflite"), num_threads=1)
            it.allocate_tensors()
            self.its.append((it, it.get_input_details()[0]["index"], it.get_output_details()[0]["index"]))
        self.x = x[None]

    def round(self, K, warmup, min_runs, max_runs, seconds):
        out = {}
        for k, (it, i, o) in enumerate(self.its):
            def call(it=it, i=i, o=o):
                it.set_tensor(i, self.x)
                it.invoke()
                return it.get_tensor(o)
            out[k] = _time_calls(call, warmup, min_runs, max_runs, seconds)
        return out


# ---- one architecture -------------------------------------------------------------------------
def bench_arch(arch: str, width: float, work: Path, args, cc: str, log) -> dict:
    from families import make_family

    from reds.export import export
    from reds.export.tflite_int8 import tflm_arena
    from reds.family import read_manifest

    fam_dir = make_family(work, arch, width, BUDGETS, seed=args.seed, name=f"family-{arch}")
    fam = read_manifest(fam_dir)
    K = len(fam.submodels)
    t0 = time.time()
    export(open_family(fam_dir), "c", work / "c")
    export(open_family(fam_dir), "onnx", work / "onnx")
    export(open_family(fam_dir), "tflite", work / "tflite")
    log(f"  {arch}: exported C, ONNX, TFLite in {time.time() - t0:.0f} s")
    x = np.random.default_rng(args.seed).standard_normal(tuple(fam.input_shape)).astype(np.float32)
    arena = tflm_arena(max(s.arena_bytes for s in fam.submodels))
    runners = {"reds": CRunner(work / "c", work, x, cc, args.cflags), "onnxruntime": OrtRunner(work / "onnx", K, x),
               "tflite-micro": TflmRunner(work / "tflite", K, x, arena), "litert": LiteRTRunner(work / "tflite", K, x)}
    names = list(RUNTIMES)
    if args.compare_cflags is not None:  # the same runtime built with other flags, in the same rounds
        runners["reds-base"] = CRunner(work / "c", work, x, cc, args.compare_cflags, tag="-base")
        names.insert(1, "reds-base")
    meds = {r: {k: [] for k in range(K)} for r in names}
    runs = {r: {k: 0 for k in range(K)} for r in names}
    outs = {}
    for _ in range(args.rounds):  # interleaved, so a burst of load elsewhere hits every runtime alike
        for r in names:
            for k, (med, n, y) in runners[r].round(K, args.warmup, args.min_runs, args.max_runs,
                                                   args.seconds / args.rounds).items():
                meds[r][k].append(med)
                runs[r][k] += n
                outs[(r, k)] = y
    subs = []
    for k, s in enumerate(fam.submodels):
        row = {"index": k, "budget": s.budget, "macs": s.macs, "widths": s.widths, "runtimes": {}}
        ref = outs[("reds", k)]
        base = statistics.median(meds["reds"][k])
        for r in names:
            m = statistics.median(meds[r][k])
            row["runtimes"][r] = {"us": m * 1e6, "round_us": [v * 1e6 for v in meds[r][k]], "runs": runs[r][k],
                                  "ratio_to_reds": m / base,
                                  "max_abs_diff_vs_reds": float(np.max(np.abs(outs[(r, k)] - ref)))}
        subs.append(row)
    full = subs[-1]
    for row in subs:  # host proportionality (reds C runtime)
        lr = row["runtimes"]["reds"]["us"] / full["runtimes"]["reds"]["us"]
        mr = row["macs"] / full["macs"]
        row["host_reds_deviation_pct"] = 100 * (lr / mr - 1)
    res = {"arch": arch, "width_mult": width, "full_macs": full["macs"], "submodels": subs}
    if not args.no_qemu and shutil.which("qemu-system-arm") and shutil.which("arm-none-eabi-gcc"):
        res["qemu"] = qemu_bench(fam_dir, work, args.qemu_runs, log)
    return res


def qemu_bench(fam_dir: Path, work: Path, runs: int, log) -> dict:
    from reds.bench.bench import bench

    t0 = time.time()
    rep = bench(open_family(fam_dir), "qemu-m4", runs=runs, build_dir=work / "build-qemu", log=lambda *a: None)
    hz = rep["clock_hz"]
    rows = rep["submodels"]
    full = max(rows, key=lambda r: r["macs"])
    out = []
    for r in rows:
        lr = r["cycles_median"] / full["cycles_median"]
        mr = r["macs"] / full["macs"]
        out.append({"index": r["index"], "budget": r["budget"], "macs": r["macs"], "cycles": r["cycles_median"],
                    "cycles_min": r["cycles_min"], "cycles_max": r["cycles_max"], "us": r["us_median"],
                    "cycles_per_mac": r["cycles_per_mac"], "latency_ratio": lr, "macs_ratio": mr,
                    "deviation_pct": 100 * (lr / mr - 1), "max_abs_diff_vs_pytorch": r["max_abs_diff"]})
    sw = rep["switch"]
    log(f"  qemu-m4 bench in {time.time() - t0:.0f} s")
    return {"board": rep["board"], "clock_hz": hz, "cycle": rep["cycle"], "cycle_note": rep.get("cycle_note"),
            "runs": runs, "outputs_match": rep["outputs_match"], "submodels": out,
            "switch": {"median": sw["median"], "min": sw["min"], "max": sw["max"], "pairs": len(sw["pairs"])},
            "reds_switch_cycles_at_board_clock": REDS_SWITCH_US * 1e-6 * hz,
            "reds_switch_cycles_nano_64mhz": REDS_SWITCH_US * 1e-6 * NANO_HZ,
            "flash_used": rep.get("build", {}).get("flash_used")}


# ---- output -------------------------------------------------------------------------------------
def _versions(cc: str) -> dict:
    from importlib.metadata import version

    v = {}
    for name in ("onnxruntime", "ai-edge-litert", "tflite-micro", "litert-torch", "numpy"):
        try:
            v[name] = version(name)
        except Exception:
            v[name] = None
    r = subprocess.run([cc, "--version"], capture_output=True, text=True)
    v["cc"] = r.stdout.splitlines()[0] if r.returncode == 0 and r.stdout else None
    return v


def _us(v: float) -> str:
    return f"{v:,.0f}" if v >= 100 else f"{v:,.1f}" if v >= 10 else f"{v:.2f}"


def markdown(r: dict) -> str:
    names = r.get("runtimes", list(RUNTIMES))
    flags = " ".join(r.get("cflags", ["-std=c99", "-O2"]))
    base = " ".join(r["compare_cflags"]) if r.get("compare_cflags") is not None else None
    label = {"reds-base": f"reds `{base}` µs (ratio)", "onnxruntime": "onnxruntime µs (ratio)",
             "tflite-micro": "TFLite Micro µs (ratio)", "litert": "LiteRT µs (ratio)"}
    out = ["## Runtime speed: reds C runtime vs onnxruntime, TFLite Micro, LiteRT", "",
           f"`{r['command']}` ({r['date']}, {r['machine']}; {r['versions'].get('cc') or 'cc'} `{flags}`"
           + (f"; reds-base: the same runtime built with `{base}`, in the same rounds" if base else "") + ")", "",
           "Random-weight families (tests/families.make_family: seeded weights, calibrated batch norm, nested "
           f"widths for budgets {', '.join(f'{b:.0%}' for b in BUDGETS)}) at width x{r['width_mult']:g}: speed "
           "does not depend on training. Float32 everywhere. One seeded input, the same for every runtime. Time "
           f"per inference: the median of {r['rounds']} interleaved rounds' medians (each round: "
           f"{r['warmup']} warm-up runs, then at least {r['min_runs']} runs or {r['seconds'] / r['rounds']:.2f} s). "
           "reds is timed in C around `reds_run`; the others around their Python calls (set input, invoke, "
           "read output), so their figures include the binding's per-call overhead. onnxruntime: 1 intra-op + "
           "1 inter-op thread, all graph optimisations; LiteRT: `num_threads=1` (XNNPACK); TFLite Micro: the "
           "reference float kernels (single-threaded). Ratio = runtime / reds: above 1, reds is faster.", ""]
    for a in r["archs"]:
        rows = []
        for s in a["submodels"]:
            rt = s["runtimes"]
            rows.append([f"{s['budget']:.0%}", f"{s['macs']:,}", _us(rt["reds"]["us"])] +
                        [f"{_us(rt[n]['us'])} ({rt[n]['ratio_to_reds']:.2f}x)" for n in names[1:]] +
                        [f"{max(rt[n]['max_abs_diff_vs_reds'] for n in names[1:]):.1e}",
                         f"{s['host_reds_deviation_pct']:+.1f}"])
        out += [f"### {a['arch']} (full model {a['full_macs']:,} MACs)", "",
                md_table(["budget", "MACs", "reds µs", *(label[n] for n in names[1:]), "max |diff| vs reds",
                          "reds latency vs MACs %"], rows), ""]
    full = []
    for a in r["archs"]:
        rt = a["submodels"][-1]["runtimes"]
        f = f"{a['arch']} {rt['reds']['us'] / rt['onnxruntime']['us']:.2f}x"
        if "reds-base" in rt:
            f += f" (`{base}`: {rt['reds-base']['us'] / rt['onnxruntime']['us']:.2f}x)"
        full.append(f)
    out += ["Full width, reds time / onnxruntime time (above 1, onnxruntime is faster): " + "; ".join(full) + ".",
            "", "Last column: (latency ratio / MAC ratio - 1) of the reds runtime on this machine, each submodel "
            f"against the full model. reds runs its portable C99 float kernels (the host board's kernels, `{flags}`: "
            "what GCC's vectoriser makes of them); onnxruntime and LiteRT (XNNPACK) use hand-vectorised x86 "
            "kernels; TFLite Micro's reference kernels are scalar.", ""]
    odd = []
    for a in r["archs"]:
        for n in names:
            t = [s["runtimes"][n]["us"] for s in a["submodels"]]
            slower = [f"{s['budget']:.0%}" for s, v in zip(a["submodels"][:-1], t[:-1]) if v > t[-1]]
            if slower:
                odd.append(f"{n} on {a['arch']} ({', '.join(slower)} slower than 100 %)")
    if odd:
        out += ["Not monotonic in MACs: " + "; ".join(odd) + ". Smaller submodels have odd channel counts; "
                "optimised runtimes pick their fastest kernels for some widths only (or the machine was busy "
                "during a round: see round_us in runtime.json).", ""]
    q = [a for a in r["archs"] if a.get("qemu")]
    if not q:
        out += ["Virtual board: not measured (qemu-system-arm or arm-none-eabi-gcc not installed, or --no-qemu).", ""]
        return "\n".join(out)
    b0 = q[0]["qemu"]
    rows = []
    for a in q:
        qq = a["qemu"]
        for s in qq["submodels"]:
            rows.append([a["arch"], f"{s['budget']:.0%}", f"{s['macs']:,}", f"{s['cycles']:,}", _us(s["us"]),
                         f"{s['cycles_per_mac']:.2f}", f"{s['latency_ratio']:.3f}", f"{s['macs_ratio']:.3f}",
                         f"{s['deviation_pct']:+.1f}"])
    sw_rows = [[a["arch"], f"{a['qemu']['switch']['median']:g}", f"{a['qemu']['switch']['max']:g}",
                f"{a['qemu']['switch']['median'] / a['qemu']['clock_hz'] * 1e6:.2f}",
                f"{a['qemu']['reds_switch_cycles_at_board_clock']:,.0f}",
                f"{a['qemu']['reds_switch_cycles_nano_64mhz']:,.0f}",
                f"{a['qemu']['reds_switch_cycles_at_board_clock'] / a['qemu']['switch']['median']:,.0f}x"]
               for a in q]
    out += [f"### Virtual Cortex-M4 ({b0['board']}, `reds bench --board qemu-m4`, {b0['runs']} runs)", "",
            f"{b0['cycle_note']}." if b0.get("cycle_note") else "", "",
            md_table(["arch", "budget", "MACs", "cycles", f"µs at {b0['clock_hz'] / 1e6:g} MHz", "cycles/MAC",
                      "latency ratio", "MAC ratio", "deviation %"], rows), "",
            "Deviation: (latency ratio / MAC ratio - 1), both against the full model (target: within 10 %).", "",
            md_table(["arch", "switch median (cycles)", "switch max", "µs", "REDS 38 µs at this clock (cycles)",
                      "REDS 38 µs at 64 MHz, Nano 33 BLE (cycles)", "REDS / reds at the same clock"], sw_rows),
            "", f"Switch: every ordered pair k -> k' ({b0['switch']['pairs']} pairs), cycles of `reds_select` on the "
            "device. REDS's 38 µs is its measured adaptation time on an Arduino Nano 33 BLE Sense (TFLite Micro).",
            ""]
    return "\n".join(out)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--archs", default="dnn-s,cnn-s,dscnn-s", help="comma-separated architectures")
    p.add_argument("--width", type=float, default=1.0, help="width multiplier of the random families")
    p.add_argument("--rounds", type=int, default=5, help="interleaved rounds per runtime and submodel")
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--min-runs", type=int, default=15, help="at least this many timed runs per round")
    p.add_argument("--max-runs", type=int, default=3000)
    p.add_argument("--seconds", type=float, default=1.5, help="time budget per runtime and submodel (all rounds)")
    p.add_argument("--qemu-runs", type=int, default=5, help="runs per submodel on the virtual board (deterministic)")
    p.add_argument("--no-qemu", action="store_true", help="skip the virtual board")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--compare-cflags", type=shlex.split, default=None, metavar="FLAGS",
                   help="also time reds built with these flags (e.g. '-std=c99 -O2'), as reds-base, in the same rounds")
    p.add_argument("--out", type=Path, default=HERE / "results")
    args = p.parse_args(argv)

    import torch
    torch.set_num_threads(1)
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        raise SystemExit("needs a C compiler (apt-get install gcc)")
    args.cflags = host_cflags(cc)
    t0 = time.time()
    archs = []
    for arch in [a.strip() for a in args.archs.split(",") if a.strip()]:
        print(f"{arch} ...", flush=True)
        with tempfile.TemporaryDirectory(prefix="reds-runtime-") as tmp:
            archs.append(bench_arch(arch, args.width, Path(tmp), args, cc, print))
    result = {
        "command": "python benchmarks/runtime.py " + shlex.join(argv if argv is not None else sys.argv[1:]),
        "date": datetime.date.today().isoformat(), "machine": describe_machine(), "versions": _versions(cc),
        "cflags": args.cflags, "compare_cflags": args.compare_cflags,
        "runtimes": list(RUNTIMES[:1]) + (["reds-base"] if args.compare_cflags is not None else []) + list(RUNTIMES[1:]),
        "threads": {"onnxruntime": 1, "litert": 1, "tflite-micro": 1, "reds": 1},
        "width_mult": args.width, "budgets": list(BUDGETS), "rounds": args.rounds, "warmup": args.warmup,
        "min_runs": args.min_runs, "seconds": args.seconds, "wall_seconds": round(time.time() - t0, 1),
        "archs": archs,
    }
    publish(args.out, "runtime", result, markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
