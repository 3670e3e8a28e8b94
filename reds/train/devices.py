"""Where training runs: the device (`--device auto|cpu|cuda`) and the CPU threads.

torch is imported on first use, so the command line can list DEVICES quickly."""
from __future__ import annotations

import os

from ..errors import RedsError

DEVICES = ("auto", "cpu", "cuda")


def pick_device(name: str = "auto"):
    """A torch.device; `auto`: the GPU when PyTorch sees one, else the CPU."""
    import torch

    if name not in DEVICES:
        raise RedsError(f"unknown device '{name}'; choose one of: {', '.join(DEVICES)}")
    if name == "cuda" and not torch.cuda.is_available():
        build = "a CPU-only build" if torch.version.cuda is None else f"built for CUDA {torch.version.cuda}"
        raise RedsError(f"--device cuda: PyTorch sees no CUDA GPU (torch {torch.__version__}, {build}); "
                        "use --device cpu, or install a CUDA build of torch on a machine with a GPU")
    return torch.device("cuda" if name in ("auto", "cuda") and torch.cuda.is_available() else "cpu")


def cpus() -> int:
    """The CPUs this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def set_threads(threads: int | None) -> int:
    """Intra-op threads; by default PyTorch's choice (its physical cores) capped by the CPUs
    this process may run on (a container's or taskset's share). Returns the number set."""
    import torch

    if not threads:
        threads = max(1, min(torch.get_num_threads(), cpus()))
    torch.set_num_threads(threads)
    return threads
