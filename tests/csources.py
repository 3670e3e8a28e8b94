"""The C files and flags tests compile the runtime with, from the same picking rule as
`reds build` (reds.build.firmware): one kernel set at a time, reference or optimized."""
from __future__ import annotations

import shutil
from pathlib import Path

from reds.build import firmware

ROOT = Path(__file__).resolve().parents[1]
FIRMWARE = ROOT / "firmware"  # the library: library.properties, library.json, src/, examples/
RUNTIME = FIRMWARE / "src"  # the runtime's C sources
HOST = ROOT / "boards" / "host"
CC = shutil.which("cc") or shutil.which("gcc")
ARM_CC = shutil.which("arm-none-eabi-gcc")
# what emlearn and CMSIS-NN's tests compile generated C with
CFLAGS = ["-std=c99", "-pedantic", "-Wall", "-Wextra", "-Werror", "-Wdouble-promotion", "-Wfloat-conversion", "-O2"]
LDLIBS = ["-lm"]  # the MFCC front end's logf and sqrtf (link after the sources)
M4 = ["-mcpu=cortex-m4", "-mthumb", "-mfpu=fpv4-sp-d16", "-mfloat-abi=hard"]
# the kernel sets: None = reference only, else an optimized folder of firmware/src/kernels/
KERNELS = [None, *firmware.kernel_targets()]
SHIPPED = "cortex_m"  # what the boards compile (their board.json `kernels`)


def runtime(kernels: str | None = SHIPPED, protocol: bool = False) -> tuple[list[str], list[str]]:
    """(the runtime's C files, -I flags) for one kernel set."""
    srcs = [str(p) for p in firmware.sources(kernels, protocol=protocol)]
    return srcs, [f"-I{d}" for d in firmware.include_dirs(kernels)]


def kernels_id(kernels: str | None) -> str:
    return kernels or "reference"
