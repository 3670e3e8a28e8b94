"""The runtimes `reds serve` runs a family's submodels with: onnxruntime and TFLite, each
on the family's export (written to a temporary folder by `reds.export`)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from typing import TYPE_CHECKING

from ..errors import RedsError
from ..export import export
from ..quant import is_int8

if TYPE_CHECKING:
    from ..family import OpenFamily


class OnnxRunner:

    def __init__(self, folder: Path, files: list[str]):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        self.sessions = [ort.InferenceSession(str(folder / f), opts, providers=["CPUExecutionProvider"])
                         for f in files]
        self.inp = [s.get_inputs()[0].name for s in self.sessions]

    def run(self, k: int, x: np.ndarray) -> np.ndarray:
        return self.sessions[k].run(None, {self.inp[k]: x})[0][0]


class TfliteRunner:

    def __init__(self, folder: Path, files: list[str]):
        from ..export.tflite import interpreter_class

        cls = interpreter_class()
        if cls is None:
            raise RedsError("no TFLite interpreter: pip install ai-edge-litert (or tflite-runtime with numpy<2)")
        self.its = []
        for f in files:
            it = cls(model_path=str(folder / f))
            it.allocate_tensors()
            self.its.append((it, it.get_input_details()[0]["index"], it.get_output_details()[0]["index"]))

    def run(self, k: int, x: np.ndarray) -> np.ndarray:
        it, i, o = self.its[k]
        it.set_tensor(i, x)
        it.invoke()
        return it.get_tensor(o)[0]


RUNNERS = {"onnxruntime": OnnxRunner, "tflite": TfliteRunner}


def make_runner(family: OpenFamily, runtime: str, tmp: Path):
    fmt = "onnx" if runtime == "onnxruntime" else "tflite"
    if fmt == "tflite" and is_int8(family.dir):
        raise RedsError(f"{family.dir}: is an int8 family; its int8 .tflite files take int8 inputs and need its "
                        "training data to calibrate: serve it with --runtime onnxruntime (int8 QDQ graphs) or c")
    m = export(family, fmt, tmp / fmt)  # an int8 family: its int8 graphs, float in and out
    return RUNNERS[runtime](tmp / fmt, m["files"])
