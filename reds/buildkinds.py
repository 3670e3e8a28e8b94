"""The build kinds of `reds build` besides bare metal (see build.py):

- `make` (board rpi): a self-contained folder -- the board's `main.c` and `Makefile`, the
  runtime (`firmware/`), the exported model and `reds_config.h` -- built with `make`
  natively, or with `make CC=aarch64-linux-gnu-gcc` (static) for `--cross`. The folder can
  be copied to a Pi and built there with `make`.
- `platformio` (board nano33ble): a PlatformIO project -- `platformio.ini`, `src/main.cpp`,
  the model and `reds_config.h` in `src/`, the runtime as the library `lib/reds/`. It is
  built and uploaded by `reds flash` (PlatformIO downloads the platform on first use).
  Here, if arm-none-eabi-gcc is installed, the runtime and the model are compiled with the
  board's CPU flags, so their flash and RAM are known before PlatformIO runs; the Arduino
  core's share (board.json's `core_flash_bytes`, `core_ram_bytes`) is added.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

from .boards import Board, firmware_dir
from .errors import RedsError

FIRMWARE_FILES = ("reds.h", "reds_runtime.c", "reds_kernels.c", "reds_protocol.h", "reds_protocol.c")
CONFIG = "reds_config.h"


def config_header(name: str) -> str:
    return (f"/* Written by reds build: the exported model this program serves. */\n"
            f"#ifndef REDS_CONFIG_H\n#define REDS_CONFIG_H\n"
            f"#define REDS_MODEL {name}\n#define REDS_MODEL_HEADER \"{name}.h\"\n"
            f"#define REDS_INPUT_FLOATS {name.upper()}_INPUT_SIZE\n#endif\n")


def _export_model(family_dir: Path, out: Path, layout: str, name: str, cmd: str) -> Path:
    from .build import MODEL_DIR
    from .export import export

    model = out / MODEL_DIR
    export(family_dir, "c", model, layout=layout, name=name, command=cmd)
    return model


def _copy(files, dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    for f in files:
        shutil.copy2(f, dest / Path(f).name)


def _tool_missing(tool: str, packages) -> str | None:
    if shutil.which(tool) is None:
        pkgs = " ".join(packages)
        return f"{tool} not found: install {pkgs} (Debian/Ubuntu: apt-get install {pkgs})"
    return None


# ---- make (rpi) ---------------------------------------------------------------------------------
def rpi_tools(board: Board, cross: bool) -> tuple[str, str]:
    tc = board.toolchain
    cc = tc.get("cross_cc" if cross else "cc", "cc")
    size = tc.get("cross_size" if cross else "size", "size")
    pkgs = tc.get("cross_packages" if cross else "packages", [])
    for tool in (cc, "make", size):
        why = _tool_missing(tool, pkgs)
        if why:
            raise RedsError(why)
    if cross:
        lib = subprocess.run([cc, "-print-file-name=libc.a"], capture_output=True, text=True).stdout.strip()
        if not os.path.isabs(lib):
            raise RedsError(f"{cc} has no static C library for the cross build: install libc6-dev-arm64-cross "
                            f"(apt-get install libc6-dev-arm64-cross)")
    return cc, size


def build_make(family_dir: Path, b: Board, out: Path, *, layout: str, name: str, fhash: str, key: str, cmd: str,
               cross: bool):
    from .build import LOG, BuildResult, _first_error, _run, _write_log, elf_size, finish_stamp, precheck, start_stamp

    cc, size = rpi_tools(b, cross)
    precheck(family_dir, b)
    prog = out / b.raw.get("program", "reds-rpi")
    prog.unlink(missing_ok=True)
    start_stamp(out)
    model = _export_model(family_dir, out, layout, name, cmd)
    fw = firmware_dir()
    _copy([fw / f for f in FIRMWARE_FILES] + [b.folder / s for s in b.sources] + [model / f"{name}.c", model / f"{name}.h"],
          out)
    (out / CONFIG).write_text(config_header(name))
    log: list[str] = []
    r = _run(["make", "-C", str(out), f"CC={cc}", f"PROG={prog.name}"], log)
    _write_log(out, log)
    if r.returncode != 0 or not prog.is_file():
        raise RedsError(f"building {prog.name} failed: {_first_error(r.stdout + r.stderr)} (full log: {out / LOG})")
    text, data, bss = elf_size(size, prog)
    res = BuildResult(board=b.name, out=str(out), elf=str(prog), model=name, family_hash=fhash, layout=layout,
                      text=text, data=data, bss=bss, flash_used=text + data, ram_used=data + bss,
                      flash_bytes=b.flash_bytes, ram_bytes=b.ram_bytes, stack_bytes=0, key=key, kind="make",
                      note=f"{'aarch64 static (cross)' if cross else 'native'} build with {cc}")
    finish_stamp(out, res, cmd, family_dir, cross=cross)
    return res


# ---- platformio (nano33ble) -----------------------------------------------------------------------
def core_limited(b: Board) -> Board:
    """The board with the Arduino core's flash and RAM taken off: what the model and runtime may use."""
    cf, cr = int(b.raw.get("core_flash_bytes", 0)), int(b.raw.get("core_ram_bytes", 0))
    return replace(b, flash_bytes=b.flash_bytes - cf, ram_bytes=b.ram_bytes - cr,
                   raw={**b.raw, "limited": True})


def write_platformio_project(b: Board, out: Path, model: Path, name: str) -> None:
    """platformio.ini, src/ (main.cpp, reds_config.h, the model), lib/reds/ (the runtime)."""
    shutil.copy2(b.folder / "platformio.ini", out / "platformio.ini")
    src = out / "src"
    _copy([b.folder / "src" / "main.cpp", model / f"{name}.c", model / f"{name}.h"], src)
    (src / CONFIG).write_text(config_header(name))
    lib = out / "lib" / "reds"
    _copy([firmware_dir() / f for f in FIRMWARE_FILES], lib)
    shutil.copy2(b.folder / "library.json", lib / "library.json")


def object_sizes(b: Board, out: Path, sources: list[Path], includes: list[Path]) -> tuple[int, int, int] | None:
    """text, data, bss of the sources compiled with the board's CPU flags (None without the toolchain)."""
    from .build import CFLAGS, LOG, _first_error, _run, _write_log, elf_size

    tc = b.toolchain
    if any(shutil.which(t or "") is None for t in (tc.get("cc"), tc.get("size"))):
        return None
    objdir = out / "obj"
    objdir.mkdir(exist_ok=True)
    log: list[str] = []
    total = [0, 0, 0]
    for s in sources:
        o = objdir / (s.stem + ".o")
        r = _run([tc["cc"], *b.cflags, *CFLAGS, *[f"-I{i}" for i in includes], "-c", str(s), "-o", str(o)], log)
        if r.returncode != 0:
            _write_log(out, log)
            raise RedsError(f"compiling {s.name} failed: {_first_error(r.stderr)} (full log: {out / LOG})")
        for i, v in enumerate(elf_size(tc["size"], o)):
            total[i] += v
    _write_log(out, log)
    return tuple(total)


def build_platformio(family_dir: Path, b: Board, out: Path, *, layout: str, name: str, fhash: str, key: str,
                     cmd: str, cross: bool):
    from .build import BuildResult, describe, finish_stamp, precheck, start_stamp

    app = core_limited(b)
    precheck(family_dir, app)
    start_stamp(out)
    model = _export_model(family_dir, out, layout, name, cmd)
    write_platformio_project(b, out, model, name)
    lib = out / "lib" / "reds"
    sizes = object_sizes(b, out, [lib / f for f in FIRMWARE_FILES if f.endswith(".c")] + [out / "src" / f"{name}.c"],
                         [lib, out / "src"])
    cf, cr = b.flash_bytes - app.flash_bytes, b.ram_bytes - app.ram_bytes
    if sizes is None:
        text = data = bss = 0
        note = "sizes unknown here (no arm-none-eabi-gcc); PlatformIO prints them when it builds"
    else:
        text, data, bss = sizes
        note = (f"runtime + model compiled with {b.toolchain['cc']} (before linking), plus the Arduino core's "
                f"~{cf // 1024} KB flash and ~{cr // 1024} KB RAM")
    res = BuildResult(board=b.name, out=str(out), elf=str(out / "platformio.ini"), model=name, family_hash=fhash,
                      layout=layout, text=text, data=data, bss=bss, flash_used=text + data + cf,
                      ram_used=data + bss + cr, flash_bytes=b.flash_bytes, ram_bytes=b.ram_bytes,
                      stack_bytes=0, key=key, kind="platformio", note=note)
    if sizes is not None:
        for what, used, have in (("flash", res.flash_used, b.flash_bytes), ("RAM", res.ram_used, b.ram_bytes)):
            if used > have:
                raise RedsError(f"the firmware does not fit {describe(b)}: it needs about {used:,} B of {what} with "
                                f"the Arduino core, the board has {have:,} B (over by {used - have:,} B)")
    finish_stamp(out, res, cmd, family_dir)
    return res


def summary(res) -> str:
    def pct(a, b):
        return f"{100.0 * a / b:.1f} %" if b else "?"
    head = f"{'built' if res.rebuilt else 'up to date:'} {res.elf} for {res.board} (model {res.model}, " \
           f"layout {res.layout}, family {res.family_hash[:12]})"
    if res.kind == "make":
        return (f"{head}\n  {res.note}; text {res.text:,} B  data {res.data:,} B  bss {res.bss:,} B\n"
                f"  run it: ./{Path(res.elf).name} (a pty; or a serial device, '-' for stdin/stdout, tcp:PORT)")
    lines = [head]
    if res.text or res.data or res.bss:
        lines += [f"  text {res.text:,} B  data {res.data:,} B  bss {res.bss:,} B ({res.note})",
                  f"  flash about {res.flash_used:,} of {res.flash_bytes:,} B ({pct(res.flash_used, res.flash_bytes)})  "
                  f"RAM about {res.ram_used:,} of {res.ram_bytes:,} B ({pct(res.ram_used, res.ram_bytes)})"]
    else:
        lines.append(f"  {res.note}")
    lines.append(f"  PlatformIO project in {res.out}; build and upload: reds flash {res.out} [--port /dev/ttyACM0]")
    return "\n".join(lines)


# build kind -> function (build.build dispatches here)
KINDS = {"make": build_make, "platformio": build_platformio}
