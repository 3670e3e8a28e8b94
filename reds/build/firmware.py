"""Which C files of `firmware/src/` a build compiles, and with which flags.

Kernels follow TFLite Micro's scheme: `firmware/src/kernels/reference/<op>_f32.c` holds the
plain loops; a board whose `kernels` names a folder (e.g. `cortex_m`) compiles that
folder's file of the same name instead, and the reference for every op it lacks.
"""
from __future__ import annotations

from pathlib import Path

from ..errors import RedsError
from ..sources import runtime_dir

# The runtime without its kernels: selection and the layer loop (float, and int8's), the
# weight index, the MFCC front end, the serial protocol and its number formatting.
CORE = ("reds_runtime.c", "reds_run_s8.c", "reds_weights.c", "reds_mfcc.c", "reds_protocol.c", "reds_format.c")
REFERENCE = "reference"
# -ffp-contract=fast: a*b + c compiles to one vfma.f32 (ISO C mode turns contraction off);
# the kernels' inner loops are multiply-adds, ~15 % fewer instructions.
CFLAGS = ("-O2", "-std=c99", "-ffp-contract=fast", "-Wall", "-Wextra", "-ffunction-sections", "-fdata-sections")


def kernel_dir(kernels: str) -> Path:
    return runtime_dir() / "kernels" / kernels


def kernel_targets() -> list[str]:
    """The optimized kernel folders there are (besides the reference)."""
    return sorted(p.name for p in (runtime_dir() / "kernels").iterdir() if p.is_dir() and p.name != REFERENCE)


def kernel_sources(kernels: str | None) -> list[Path]:
    """One file per op: the optimized one of `kernels` where it exists, else the reference."""
    ref = sorted(kernel_dir(REFERENCE).glob("*.c"))
    if kernels and not kernel_dir(kernels).is_dir():
        raise RedsError(f"kernels '{kernels}' (a board.json's `kernels`): there is no firmware/src/kernels/{kernels}/; "
                        f"choose one of: {', '.join(kernel_targets())}")
    opt = {p.name: p for p in kernel_dir(kernels).glob("*.c")} if kernels else {}
    unknown = set(opt) - {p.name for p in ref}
    if unknown:  # an optimized kernel must replace a reference one (same file and function names)
        raise RuntimeError(f"firmware/src/kernels/{kernels}: {sorted(unknown)} have no reference kernel")
    return [opt.get(p.name, p) for p in ref]


def sources(kernels: str | None, protocol: bool = True) -> list[Path]:
    """Every C file of the runtime for a board with `kernels` (without the protocol: only the
    runtime and its kernels, what an application that calls reds_run needs)."""
    core = [n for n in CORE if protocol or n not in ("reds_protocol.c", "reds_format.c")]
    return [runtime_dir() / n for n in core] + kernel_sources(kernels)


def headers(kernels: str | None) -> list[Path]:
    """The headers those files include: the public ones and the kernel folders' own (their
    names differ, so a build may copy them all into one flat folder)."""
    own = [*sorted(kernel_dir(REFERENCE).glob("*.h")), *(sorted(kernel_dir(kernels).glob("*.h")) if kernels else [])]
    return sorted(runtime_dir().glob("*.h")) + own


def include_dirs(kernels: str | None) -> list[Path]:
    return [runtime_dir()] + ([kernel_dir(kernels)] if kernels else [])
