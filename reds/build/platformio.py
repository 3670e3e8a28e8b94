"""Build kind `platformio` (board nano33ble): a PlatformIO project, compiled, for `reds flash`.

`platformio.ini` (platform and Arduino core pinned), `src/` (the sketch
`firmware/examples/<sketch>/<sketch>.ino` as `main.cpp`, the model, `reds_config.h`) and the
runtime as the library `lib/reds/` (the board's kernels picked, flat). Then `pio run`
compiles it there (never `-t upload`: `reds flash` uploads). Without PlatformIO, or when it
cannot download the platform, the build says so in one line and keeps the project.
If arm-none-eabi-gcc is installed, the runtime and the model are also compiled here with the
board's CPU flags, so their flash and RAM are known whether or not PlatformIO runs; the
Arduino core's share (board.json's `core_flash_bytes`, `core_ram_bytes`) is added.
"""
from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

from ..errors import RedsError
from ..sources import firmware_dir
from . import firmware
from .boards import Board
from .fit import check_image, precheck, reserved
from .job import CONFIG, Job, config_header, copy, headline, pct
from .stamp import BuildResult, read_stamp
from .tools import LOG, elf_size, failed, run, write_log

KIND = "platformio"
DEFAULT_SKETCH = "SerialBenchmark"
# what PlatformIO prints when it cannot fetch the platform, its toolchain or the core
DOWNLOAD_FAILED = re.compile(
    r"HTTPClientError|Could not resolve host|Name or service not known|Temporary failure in name resolution|"
    r"Max retries exceeded|Failed to establish a new connection|ConnectTimeout|Network is unreachable|"
    r"UnknownPackageError|Could not find the package", re.I)
NOT_COMPILED = "not compiled by PlatformIO"
# what reds build and reds flash both say when PlatformIO is missing or cannot download
INSTALL = "pip install platformio; it downloads the nordicnrf52 platform and the Arduino mbed core on first use"
NO_DOWNLOAD = "could not download the nordicnrf52 platform, its toolchain or the Arduino mbed core (no internet?)"


def pio_command() -> str | None:
    """`pio` on PATH, or next to this Python (pip install platformio into reds's virtualenv)."""
    here = Path(sys.executable).parent / "pio"
    return shutil.which("pio") or shutil.which("platformio") or (str(here) if here.is_file() else None)


def compile_command(pio: str, project: Path) -> list[str]:
    """What `reds build` runs: compile only (`reds flash` adds `-t upload`)."""
    return [pio, "run", "-d", str(project)]


def sketch(b: Board) -> Path:
    """The board's program: an example sketch of the library (one implementation for both)."""
    name = (b.raw.get("platformio") or {}).get("sketch", DEFAULT_SKETCH)
    path = firmware_dir() / "examples" / name / f"{name}.ino"
    if not path.is_file():
        raise RedsError(f"board '{b.name}': its sketch {name} is not in firmware/examples/ ({path} is missing)")
    return path


def settings(board) -> list:
    return [firmware.CFLAGS]


def write_project(job: Job, model: Path) -> Path:
    """platformio.ini, src/ (main.cpp: the sketch, reds_config.h, the model), lib/reds/ (the runtime)."""
    b, out, name = job.board, job.dir, job.name
    shutil.copy2(b.folder / "platformio.ini", out / "platformio.ini")
    src = out / "src"
    copy([model / f"{name}.c", model / f"{name}.h"], src)
    shutil.copy2(sketch(b), src / "main.cpp")  # the .ino is plain C++ (it includes Arduino.h, declares before use)
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


def pio_compile(out: Path) -> str:
    """`pio run` in the project: '' when it compiled, else the one line that says why not
    (PlatformIO missing, or its downloads). A compile error is a failed build."""
    pio = pio_command()
    if pio is None:
        return f"{NOT_COMPILED}: it is not installed ({INSTALL})"
    log = [(out / LOG).read_text()] if (out / LOG).is_file() else []
    try:
        r = run(compile_command(pio, out), log)
    except OSError as e:
        return f"{NOT_COMPILED}: cannot run {pio}: {e}"
    write_log(out, log)
    if r.returncode == 0:
        return ""
    text = r.stdout + r.stderr
    if DOWNLOAD_FAILED.search(text):
        return f"{NOT_COMPILED}: it {NO_DOWNLOAD}; connect once and run reds build again (later runs use its cache)"
    raise failed("pio run (compiling the sketch)", text, out)


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
    if sizes is not None:
        check_image(b, text + data + cf, data + bss + cr, about="with the Arduino core")
    why = pio_compile(out)
    compiled = f"compiled by PlatformIO ({b.raw.get('platformio', {}).get('env', b.name)})" if not why else why
    res = job.result(out / "platformio.ini", text, data, bss, flash_used=text + data + cf, ram_used=data + bss + cr,
                     kind=KIND, note=f"{note}; {compiled}")
    return job.finish(res, compiled=not why)


def stale(out: Path) -> bool:
    """An up-to-date project that PlatformIO did not compile is built again once it is installed."""
    stamp = read_stamp(out)
    return bool(stamp) and stamp.get("compiled") is False and pio_command() is not None


def summary(res: BuildResult) -> str:
    sizes_note, _, status = res.note.partition("; ")
    lines = [headline(res)]
    if res.text or res.data or res.bss:
        lines += [f"  text {res.text:,} B  data {res.data:,} B  bss {res.bss:,} B ({sizes_note})",
                  f"  flash about {res.flash_used:,} of {res.flash_bytes:,} B ({pct(res.flash_used, res.flash_bytes)})  "
                  f"RAM about {res.ram_used:,} of {res.ram_bytes:,} B ({pct(res.ram_used, res.ram_bytes)})"]
    else:
        lines.append(f"  {sizes_note}")
    if status:
        lines.append(f"  {status}")
    lines.append(f"  PlatformIO project in {res.out}; upload: reds flash {res.out} [--port /dev/ttyACM0]")
    return "\n".join(lines)
