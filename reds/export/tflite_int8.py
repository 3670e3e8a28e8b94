"""Int8 TFLite export of an int8 family: one fully integer `.tflite` per submodel
(`submodel_<k>.int8.tflite`), by litert-torch's PT2E quantization.

Each submodel is `plain_model(net, widths, bn=k, fold_bn=True)` with every batch norm
merged into the conv or dense before it (`merged_bn`), quantized by PT2E (litert-torch's
PT2EQuantizer: symmetric per-channel int8 weights, int8 activations) and converted by
litert-torch. Two settings make it the same int8 model as reds's own, up to rounding:

- the activation observers are min/max ones (PT2E's default is a histogram), calibrated on
  the calibration inputs `reds quantize` used, submodel by submodel: so every activation
  gets reds's scale and zero point (`reds.quant.calibrate.qparams` is the same formula);
- leaky ReLU and average pooling are annotated as int8 ops (PT2E leaves them float:
  a DEQUANTIZE, a float op and a QUANTIZE in the middle of the graph). Every op of
  the file is then int8: CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED, LEAKY_RELU,
  AVERAGE_POOL_2D, MAX_POOL_2D, and layout ops (PAD, RESHAPE, TRANSPOSE).

It is not reds's integer model bit for bit: its int8 weights are the per-channel
quantization of each submodel's batch-norm-merged weights (reds's are shared by every
submodel, the batch norm in the multipliers), and a leaky ReLU is an op of its own with
an int8 input (reds requantizes it from int32). How far apart they are is measured and
recorded per runtime (`check`).

The input is int8 and takes the normalised features (the family's input normalisation is
not in the graph): q = floor(x_norm / scale + 1/2) + zero_point, clamped, with the input's
(scale, zero point) in the manifest (`input_quant`); `quantize_features` does it from raw
features, as reds's own input step does. The output is int8 logits (`output_quant`).

Every file is run, where the runtimes are installed, in LiteRT (`ai-edge-litert`, its
default delegate) and in TFLite Micro's interpreter (`tflite-micro`) on check inputs, and
compared with the reds integer reference: argmax agreement and the largest difference in
steps of reds's output scale, per runtime. A file whose outputs are not finite is refused.
"""
from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path

import numpy as np
import torch

from ..errors import RedsError
from ..nn.plain import merged_bn, plain_model
from .source import Source, check_ops, steps
from .tflite import _silenced, interpreter_class, require_converter

SUPPORTED = {"conv2d", "depthwise_conv2d", "dense", "batch_norm", "relu", "leaky_relu", "avg_pool",
             "max_pool", "flatten"}
CHECK_SAMPLES = 64
TFLM_ARENA_MIN = 1 << 20


def file_name(k: int) -> str:
    return f"submodel_{k}.int8.tflite"


def quantize_features(qf, x_raw: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """Raw features [N, C, H, W] -> the int8 input of a file whose input is (scale, zero_point)."""
    from ..quant import ops
    from ..quant.reference import input_axis

    axis, in_scale, in_shift = input_axis(qf.family)
    qa, qb = ops.input_coefficients(in_scale, in_shift, scale, zero_point)
    return ops.quantize_input(x_raw, qa, qb, axis).astype(np.int8)


def _quantizer():
    """litert-torch's PT2E quantizer with min/max activation observers, and leaky ReLU and
    average pooling annotated as int8 ops."""
    from litert_torch.quantize import pt2e_quantizer as pq
    from torchao.quantization.pt2e.observer import MinMaxObserver
    from torchao.quantization.pt2e.quantizer import QuantizationAnnotation

    cfg = pq.get_symmetric_quantization_config(is_per_channel=True)
    act = dataclasses.replace(cfg.input_activation,
                              observer_or_fake_quant_ctr=MinMaxObserver.with_args(eps=2 ** -12))
    cfg = dataclasses.replace(cfg, input_activation=act, output_activation=act)
    own = (torch.ops.aten.leaky_relu.default, torch.ops.aten.avg_pool2d.default)

    class Quantizer(pq.PT2EQuantizer):
        def annotate(self, model):
            model = super().annotate(model)
            for n in model.graph.nodes:
                if n.op == "call_function" and n.target in own and "quantization_annotation" not in n.meta:
                    n.meta["quantization_annotation"] = QuantizationAnnotation(
                        input_qspec_map={n.args[0]: act}, output_qspec=act, _annotated=True)
            return model

    return Quantizer().set_global(cfg)


def convert(litert_torch, module: torch.nn.Module, calib_norm: torch.Tensor, path: Path) -> None:
    """PT2E-quantize `module` on the normalised calibration inputs and write it to `path`."""
    from litert_torch.quantize.quant_config import QuantConfig
    from torchao.quantization.pt2e import quantize_pt2e

    x0 = calib_norm[:1]
    log: list[str] = []
    try:
        with _silenced(log), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch.export and torchao internals, not ours
            quantizer = _quantizer()
            prepared = quantize_pt2e.prepare_pt2e(torch.export.export(module, (x0,)).module(), quantizer)
            with torch.no_grad():
                for i in range(len(calib_norm)):  # the exported graph takes a batch of one
                    prepared(calib_norm[i:i + 1])
            converted = quantize_pt2e.convert_pt2e(prepared, fold_quantize=False)
            litert_torch.convert(converted, (x0,), quant_config=QuantConfig(pt2e_quantizer=quantizer)).export(str(path))
    except Exception as e:
        tail = " | ".join(log[-5:])
        raise RedsError(f"int8 TFLite conversion failed: {type(e).__name__}: {e}" + (f" ({tail})" if tail else "")) from e


# ---- running a file: LiteRT and TFLite Micro, int8 in, float logits out -------------------------
def io_quant(path: Path, arena: int = TFLM_ARENA_MIN) -> tuple[tuple[float, int], tuple[float, int]]:
    """((input scale, zero point), (output scale, zero point)) of an int8 file."""
    it = _litert(path) if interpreter_class() is not None else None
    if it is not None:
        i, o = it.get_input_details()[0], it.get_output_details()[0]
        return _pair(i["quantization"]), _pair(o["quantization"])
    m = _tflm(path, arena)
    return (_pair_tflm(m.get_input_details(0)), _pair_tflm(m.get_output_details(0)))


def _pair(q) -> tuple[float, int]:
    return float(q[0]), int(q[1])


def _pair_tflm(d) -> tuple[float, int]:
    p = d["quantization_parameters"]
    return float(p["scales"][0]), int(p["zero_points"][0])


def _litert(path: Path):
    with _silenced():  # "INFO: Created TensorFlow Lite XNNPACK delegate"
        it = interpreter_class()(model_path=str(path), num_threads=1)
        it.allocate_tensors()
    return it


def _tflm(path: Path, arena: int):
    import tflite_micro

    return tflite_micro.runtime.Interpreter.from_file(str(path), arena_size=arena)


def has_tflm() -> bool:
    try:
        import tflite_micro  # noqa: F401
        return True
    except Exception:
        return False


def runtimes() -> list[str]:
    """The TFLite runtimes installed here: "litert" (or tflite-runtime), "tflite-micro"."""
    return (["litert"] if interpreter_class() is not None else []) + (["tflite-micro"] if has_tflm() else [])


def run(path: Path, xq: np.ndarray, runtime: str, arena: int = TFLM_ARENA_MIN) -> np.ndarray:
    """Run the int8 file on int8 inputs xq [N, C, H, W] in `runtime`; dequantized float logits."""
    out = []
    if runtime == "litert":
        it = _litert(path)
        i, o = it.get_input_details()[0]["index"], it.get_output_details()[0]
        so, zo = _pair(o["quantization"])
        for s in xq:
            it.set_tensor(i, s[None])
            it.invoke()
            out.append(it.get_tensor(o["index"])[0].copy())
    elif runtime == "tflite-micro":
        it = _tflm(path, arena)
        so, zo = _pair_tflm(it.get_output_details(0))
        for s in xq:
            it.set_input(s[None], 0)
            it.invoke()
            out.append(np.asarray(it.get_output(0))[0].copy())
    else:
        raise ValueError(runtime)
    q = np.stack(out).astype(np.int64)
    return ((q - zo) * so).astype(np.float32)


def agreement(got: np.ndarray, ref: np.ndarray, out_scale: float) -> dict:
    """Argmax agreement of two float logit arrays, and their largest difference in steps."""
    return {"argmax_agreement": float((got.argmax(1) == ref.argmax(1)).mean()),
            "max_steps": int(np.rint(np.abs(got - ref).max() / out_scale)), "samples": int(len(ref))}


def tflm_arena(arena_bytes: int) -> int:
    """TFLite Micro's arena for a family whose largest reds arena is `arena_bytes` (its
    interpreter keeps more than the tensors: room to spare)."""
    return max(TFLM_ARENA_MIN, 8 * arena_bytes + (256 << 10))


def write(src: Source, folder: Path, calib: np.ndarray) -> dict:
    """One int8 file per submodel into `folder`, calibrated on `calib` (float raw features, the
    samples `reds quantize` calibrated on); {"files": [...], "checks": [...], "io": [...]}."""
    qf = src.quant
    check_ops(src.spec, "int8 tflite", SUPPORTED)
    litert_torch = require_converter()
    calib = np.asarray(calib, dtype=np.float32)
    if calib.ndim != 4 or tuple(calib.shape[1:]) != tuple(src.spec.input_shape) or not len(calib):
        raise RedsError(f"int8 TFLite calibration inputs must be N x {' x '.join(map(str, src.spec.input_shape))} "
                        f"raw features, got shape {tuple(calib.shape)}")
    norm = src.opened.input_norm
    calib_t = torch.from_numpy(calib)
    calib_norm = norm.apply(calib_t) if norm is not None else calib_t
    x = calib[:CHECK_SAMPLES]
    have = runtimes()
    arena = tflm_arena(max(s.arena_bytes for s in src.family.submodels))
    files, checks, io = [], [], []
    for k, sub in enumerate(steps(src.family.submodels, "converting to int8 TFLite")):
        name = file_name(k)
        module = merged_bn(plain_model(src.net, sub.widths, bn=k, fold_bn=True))
        convert(litert_torch, module, calib_norm, folder / name)
        (si, zi), (so, zo) = io_quant(folder / name, arena)
        ref = qf.logits(x, k)
        xq = quantize_features(qf, x, si, zi)
        check = {}
        for rt in have:
            got = run(folder / name, xq, rt, arena)
            if not np.isfinite(got).all() or got.shape != ref.shape:
                raise RedsError(f"int8 TFLite submodel {k} gives {got.shape} outputs in {rt} (expected "
                                f"{ref.shape}, finite); this is a bug in reds, please report it")
            check[rt] = agreement(got, ref, qf.outputs[k].s)
        files.append(name)
        checks.append({"runtime": ", ".join(have) or None, "against": "reds int8 reference", **check})
        io.append({"input_quant": {"scale": si, "zero_point": zi, "features": "normalised"},
                   "output_quant": {"scale": so, "zero_point": zo}})
    return {"files": files, "checks": checks, "io": io}
