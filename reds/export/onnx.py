"""ONNX export: one graph per submodel (`submodel_<k>.onnx`), batch norm folded.

Each graph is `plain_model(net, widths, bn=k, fold_bn=True)` (standard layers, sliced
weights, batch norm as a per-channel Mul + Add) through PyTorch's TorchScript exporter
(opset 17, one self-contained file, dynamic batch axis). Every file passes
`onnx.checker.check_model(full_check=True)` and is run once with onnxruntime against
PyTorch before the export counts as done; the manifest records that difference.
"""
from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
import torch

from ..errors import RedsError
from ..nn.plain import plain_model, with_input_norm
from .source import Source, check_ops, steps

SUPPORTED = {"conv2d", "depthwise_conv2d", "dense", "batch_norm", "relu", "leaky_relu", "avg_pool",
             "max_pool", "flatten", "add"}
OPSET = 17
INPUT, OUTPUT = "input", "logits"
SELF_CHECK_ATOL = 1e-4  # onnxruntime vs PyTorch on one random batch, at export time
CHECK_SEED = 0


def to_onnx(module: torch.nn.Module, input_shape, metadata: dict[str, str]) -> bytes:
    import onnx

    x = torch.zeros(1, *input_shape)
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(module, (x,), buf, dynamo=False, opset_version=OPSET, external_data=False,
                          input_names=[INPUT], output_names=[OUTPUT],
                          dynamic_axes={INPUT: {0: "batch"}, OUTPUT: {0: "batch"}}, do_constant_folding=True)
    model = onnx.load_from_string(buf.getvalue())
    model.producer_name = "reds"
    onnx.helper.set_model_props(model, metadata)
    model.doc_string = metadata.get("provenance", "")
    onnx.checker.check_model(model, full_check=True)
    return model.SerializeToString()


def run_onnx(data: bytes | str | Path, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    sess = ort.InferenceSession(data if isinstance(data, bytes) else str(data), opts,
                                providers=["CPUExecutionProvider"])
    return sess.run([OUTPUT], {INPUT: x.astype(np.float32)})[0]


def write(src: Source, folder: Path) -> dict:
    """One file per submodel into `folder`; {"files": [...], "checks": [one per submodel]}."""
    check_ops(src.spec, "onnx", SUPPORTED)
    files, checks = [], []
    prov = "\n".join(src.provenance())
    x = src.check_inputs(4, CHECK_SEED)
    for k, sub in enumerate(steps(src.family.submodels, "exporting ONNX")):
        module = with_input_norm(plain_model(src.net, sub.widths, bn=k, fold_bn=True), src.opened.input_norm)
        meta = {"provenance": prov, "reds_family_hash": src.hash, "reds_submodel": str(k),
                "reds_budget": f"{sub.budget:g}", "reds_macs": str(sub.macs),
                "reds_widths": " ".join(f"{g}={w}" for g, w in sub.widths.items())}
        data = to_onnx(module, src.spec.input_shape, meta)
        with torch.no_grad():
            ref = src.opened.logits(x, k).numpy()
        diff = float(np.abs(run_onnx(data, x.numpy()) - ref).max())
        if not diff <= SELF_CHECK_ATOL:
            raise RedsError(f"ONNX submodel {k} differs from PyTorch by {diff:.3g} (> {SELF_CHECK_ATOL:g}); "
                            "this is a bug in reds, please report it")
        name = f"submodel_{k}.onnx"
        (folder / name).write_bytes(data)
        files.append(name)
        checks.append({"runtime": "onnxruntime", "max_abs_diff": diff, "seed": CHECK_SEED})
    return {"files": files, "checks": checks}
