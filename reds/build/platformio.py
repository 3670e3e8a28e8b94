"""Build kind `platformio` (board nano33ble): a PlatformIO project for `reds flash`.

`platformio.ini`, `src/` (the board's `main.cpp`, the model, `reds_config.h`) and the
runtime as the library `lib/reds/` (the board's kernels picked, flat). PlatformIO builds
and uploads it (`reds flash`; it downloads the platform on first use). Here, if
arm-none-eabi-gcc is installed, the runtime and the model are compiled with the board's
CPU flags, so their flash and RAM are known before PlatformIO runs; the Arduino core's
share (board.json's `core_flash_bytes`, `core_ram_bytes`) is added.
"""
from __future__ import annotations

import shutil
from pathlib import Path

from . import firmware
from .boards import Board
from .fit import check_image, precheck, reserved
from .job import CONFIG, Job, config_header, copy, headline, pct
from .stamp import BuildResult
from .tools import elf_size, failed, run, write_log

KIND = "platformio"


def settings(board) -> list:
    return [firmware.CFLAGS]


def write_project(job: Job, model: Path) -> Path:
    """platformio.ini, src/ (main.cpp, reds_config.h, the model), lib/reds/ (the runtime)."""
    b, out, name = job.board, job.dir, job.name
    shutil.copy2(b.folder / "platformio.ini", out / "platformio.ini")
    src = out / "src"
    copy([b.folder / "src" / "main.cpp", model / f"{name}.c", model / f"{name}.h"], src)
    (src / CONFIG).write_text(config_header(name))
    lib = out / "lib" / "reds"
    copy([*firmware.sources(b.kernels), *firmware.headers(b.kernels)], lib)
    shutil.copy2(b.folder / "library.json", lib / "library.json")
    return lib


def object_sizes(b: Board, out: Path, sources: list[Path], includes: list[Path]) -> tuple[int, int, int] | None:
    """text, data, bss of the sources compiled with the board's CPU flags (None without the toolchain)."""
    tc = b.toolchain
    if any(shutil.which(t or "") is None for t in (tc.get("cc"), tc.get("size"))):
        return None
    objdir = out / "obj"
    objdir.mkdir(exist_ok=True)
    log: list[str] = []
    total = [0, 0, 0]
    for s in sources:
        o = objdir / (s.stem + ".o")
        r = run([tc["cc"], *b.cflags, *firmware.CFLAGS, *[f"-I{i}" for i in includes], "-c", str(s), "-o", str(o)],
                log)
        if r.returncode != 0:
            write_log(out, log)
            raise failed(f"compiling {s.name}", r.stderr, out)
        for i, v in enumerate(elf_size(tc["size"], o)):
            total[i] += v
    write_log(out, log)
    return tuple(total)


def build(job: Job) -> BuildResult:
    b, out = job.board, job.dir
    cf, cr = int(b.raw.get("core_flash_bytes", 0)), int(b.raw.get("core_ram_bytes", 0))
    precheck(job.family, reserved(b, cf, cr))
    model = job.export_model()
    lib = write_project(job, model)
    sizes = object_sizes(b, out, sorted(lib.glob("*.c")) + [out / "src" / f"{job.name}.c"], [lib, out / "src"])
    if sizes is None:
        text = data = bss = 0
        note = "sizes unknown here (no arm-none-eabi-gcc); PlatformIO prints them when it builds"
    else:
        text, data, bss = sizes
        note = (f"runtime + model compiled with {b.toolchain['cc']} (before linking), plus the Arduino core's "
                f"~{cf // 1024} KB flash and ~{cr // 1024} KB RAM")
    res = job.result(out / "platformio.ini", text, data, bss, flash_used=text + data + cf, ram_used=data + bss + cr,
                     kind=KIND, note=note)
    if sizes is not None:
        check_image(b, res.flash_used, res.ram_used, about="with the Arduino core")
    return job.finish(res)


def summary(res: BuildResult) -> str:
    lines = [headline(res)]
    if res.text or res.data or res.bss:
        lines += [f"  text {res.text:,} B  data {res.data:,} B  bss {res.bss:,} B ({res.note})",
                  f"  flash about {res.flash_used:,} of {res.flash_bytes:,} B ({pct(res.flash_used, res.flash_bytes)})  "
                  f"RAM about {res.ram_used:,} of {res.ram_bytes:,} B ({pct(res.ram_used, res.ram_bytes)})"]
    else:
        lines.append(f"  {res.note}")
    lines.append(f"  PlatformIO project in {res.out}; build and upload: reds flash {res.out} [--port /dev/ttyACM0]")
    return "\n".join(lines)



