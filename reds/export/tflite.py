"""TFLite export: one float32 `.tflite` per submodel (`submodel_<k>.tflite`), BN folded.

Each file is `plain_model(net, widths, bn=k, fold_bn=True)` converted by `litert-torch`
(PyTorch -> TFLite without TensorFlow; the optional extra `tflite`), for a batch of
one NCHW input, as the C runtime takes it. When a TFLite interpreter is installed
(`ai-edge-litert`, or the older `tflite-runtime`), every file is run once against PyTorch
before the export counts as done; the manifest records that difference.
"""
from __future__ import annotations

import os
import sys
import tempfile
import warnings
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

from .. import DISTRIBUTION
from ..errors import RedsError
from ..nn.plain import plain_model, with_input_norm
from .source import Source, check_ops, steps

SUPPORTED = {"conv2d", "depthwise_conv2d", "dense", "batch_norm", "relu", "leaky_relu", "avg_pool",
             "max_pool", "flatten", "add"}
EXTRA = (f"TFLite export needs litert-torch: pip install litert-torch ai-edge-litert (or, in reds's source "
         f"tree, pip install '.[tflite]': the tflite extra of {DISTRIBUTION})")
SELF_CHECK_ATOL = 1e-4
CHECK_SEED = 0


def require_converter():
    try:
        with _silenced():  # torchao's "Failed to load ..." lines on import
            import litert_torch
    except ImportError:
        raise RedsError(EXTRA) from None
    except Exception as e:  # installed but broken (e.g. a torch it was not built for)
        raise RedsError(f"{EXTRA} (litert_torch failed to import: {type(e).__name__}: {e})") from None
    return litert_torch


def interpreter_class():
    """The TFLite interpreter class of ai-edge-litert, else tflite-runtime, else None."""
    try:
        from ai_edge_litert.interpreter import Interpreter
        return Interpreter
    except ImportError:
        pass
    try:
        from tflite_runtime.interpreter import Interpreter
        return Interpreter
    except ImportError:
        return None


def run_tflite(path: str | Path, x: np.ndarray, interpreter=None) -> np.ndarray:
    """Run a single-input model on each sample of x (the files take a batch of one)."""
    cls = interpreter or interpreter_class()
    it = cls(model_path=str(path))
    it.allocate_tensors()
    i, o = it.get_input_details()[0]["index"], it.get_output_details()[0]["index"]
    out = []
    for sample in x.astype(np.float32):
        it.set_tensor(i, sample[None])
        it.invoke()
        out.append(it.get_tensor(o)[0].copy())
    return np.stack(out)


@contextmanager
def _silenced(log: list[str] | None = None):
    """Send what is written to fds 1 and 2 (the converter's Python progress lines and its
    C++ logs alike) to a file; its lines go to `log`, if given."""
    with tempfile.TemporaryFile(mode="w+b") as f:
        _flush()
        saved = [os.dup(1), os.dup(2)]
        try:
            os.dup2(f.fileno(), 1)
            os.dup2(f.fileno(), 2)
            yield
        finally:
            _flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
            if log is not None:
                f.seek(0)
                log += f.read().decode(errors="replace").strip().splitlines()


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (AttributeError, OSError, ValueError):
            pass


def convert(litert_torch, module: torch.nn.Module, input_shape, path: Path) -> None:
    log: list[str] = []
    try:
        with _silenced(log), warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch.export internals, not ours
            litert_torch.convert(module, (torch.zeros(1, *input_shape),)).export(str(path))
    except Exception as e:
        tail = " | ".join(log[-5:])
        raise RedsError(f"TFLite conversion failed: {type(e).__name__}: {e}" + (f" ({tail})" if tail else "")) from e


def write(src: Source, folder: Path) -> dict:
    """One file per submodel into `folder`; {"files": [...], "checks": [one per submodel]}."""
    check_ops(src.spec, "tflite", SUPPORTED)
    litert_torch = require_converter()
    interp = interpreter_class()
    files, checks = [], []
    x = src.check_inputs(4, CHECK_SEED)
    for k, sub in enumerate(steps(src.family.submodels, "converting to TFLite")):
        module = with_input_norm(plain_model(src.net, sub.widths, bn=k, fold_bn=True), src.opened.input_norm)
        name = f"submodel_{k}.tflite"
        convert(litert_torch, module, src.spec.input_shape, folder / name)
        check = {"runtime": None}
        if interp is not None:
            with torch.no_grad():
                ref = src.opened.logits(x, k).numpy()
            with _silenced():  # "INFO: Created TensorFlow Lite XNNPACK delegate"
                got = run_tflite(folder / name, x.numpy(), interp)
            diff = float(np.abs(got - ref).max())
            if not diff <= SELF_CHECK_ATOL:
                raise RedsError(f"TFLite submodel {k} differs from PyTorch by {diff:.3g} (> {SELF_CHECK_ATOL:g}); "
                                "this is a bug in reds, please report it")
            check = {"runtime": interp.__module__.split(".")[0], "max_abs_diff": diff, "seed": CHECK_SEED}
        files.append(name)
        checks.append(check)
    return {"files": files, "checks": checks}
