"""Build kind `gcc-bare-metal` (board qemu-m4): an ELF compiled and linked here.

The runtime (`firmware/`, the board's kernels), the board's port (`boards/<board>/`) and
the exported model are compiled with the board's CPU flags and linked with its linker
script; `size` measures text / data / bss against the board's flash and RAM. The
linker's own overflow error becomes the same one-line refusal.
"""
from __future__ import annotations

import os
import re
import sys
from concurrent.futures import ThreadPoolExecutor

from tqdm import tqdm

from . import firmware
from .fit import check_image, overflow_error, precheck
from .job import Job, headline, pct
from .stamp import BuildResult
from .tools import check_toolchain, elf_size, failed, run, write_log

KIND = "gcc-bare-metal"
ELF = "firmware.elf"
LDFLAGS = ("-nostartfiles", "--specs=nano.specs", "-Wl,--gc-sections")
LIBS = ("-lm",)


def settings(board) -> list:
    return [firmware.CFLAGS, LDFLAGS, LIBS]


def defines(board, name: str) -> list[str]:
    frac = board.cycles_per_tick()
    return [f"-DREDS_MODEL={name}", f'-DREDS_MODEL_HEADER="{name}.h"', f"-DREDS_INPUT_FLOATS={name.upper()}_INPUT_SIZE",
            f"-DBOARD_CYCLES_NUM={frac.numerator}u", f"-DBOARD_CYCLES_DEN={frac.denominator}u"]


def build(job: Job) -> BuildResult:
    b, out, name = job.board, job.dir, job.name
    check_toolchain(b)
    precheck(job.family, b)
    model = job.export_model()

    cc, size = b.toolchain["cc"], b.toolchain["size"]
    srcs = [b.folder / s for s in b.sources] + firmware.sources(b.kernels) + [model / f"{name}.c"]
    incs = firmware.include_dirs(b.kernels) + [b.folder, model]
    flags = [*b.cflags, *firmware.CFLAGS, *(f"-I{i}" for i in incs), *defines(b, name)]
    objdir = out / "obj"
    objdir.mkdir(exist_ok=True)
    logs: list[list[str]] = [[] for _ in srcs]
    objs = [objdir / (s.stem + ".o") for s in srcs]
    with ThreadPoolExecutor(max_workers=max(1, os.cpu_count() or 1)) as pool:
        jobs = pool.map(lambda i: run([cc, *flags, "-c", str(srcs[i]), "-o", str(objs[i])], logs[i]),
                        range(len(srcs)))
        results = list(tqdm(jobs, total=len(srcs), desc=f"compiling for {b.name}", unit="file", leave=False,
                            file=sys.stderr, disable=None))
    log = [line for entry in logs for line in entry]
    bad = [(s, r) for s, r in zip(srcs, results) if r.returncode != 0]
    if bad:
        write_log(out, log)
        s, r = bad[0]
        raise failed(f"compiling {s.name}", r.stderr, out)
    elf = out / ELF
    r = run([cc, *b.cflags, *LDFLAGS, "-T", str(b.folder / b.linker_script), f"-Wl,-Map={out / 'firmware.map'}",
             *map(str, objs), *LIBS, "-o", str(elf)], log)
    write_log(out, log)
    if r.returncode != 0:
        m = re.search(r"region `(\w+)' overflowed by (\d+) bytes", r.stderr)
        raise overflow_error(int(m.group(2)), m.group(1), b) if m else failed("linking", r.stderr, out)
    res = job.result(elf, *elf_size(size, elf), stack_bytes=b.stack_bytes, kind=KIND)
    check_image(b, res.flash_used, res.ram_used)
    return job.finish(res)


def summary(res: BuildResult) -> str:
    return (f"{headline(res)}\n"
            f"  text {res.text:,} B  data {res.data:,} B  bss {res.bss:,} B\n"
            f"  flash {res.flash_used:,} of {res.flash_bytes:,} B ({pct(res.flash_used, res.flash_bytes)})  "
            f"RAM {res.ram_used:,} of {res.ram_bytes:,} B ({pct(res.ram_used, res.ram_bytes)}, "
            f"{res.stack_bytes:,} B of it stack)")
