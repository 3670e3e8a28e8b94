"""Int8 TFLite export of an int8 family (reds.export.tflite_int8): fully integer files that
LiteRT and TFLite Micro run, and how far they are from the reds integer reference.

Tolerance: per submodel, on 64 random inputs not used for calibration, each runtime's
argmax agrees with the reds integer reference (`QuantFamily.logits`) on >= 90 % of them,
and its logits are at most MAX_STEPS[arch] steps of reds's output scale apart. The files
are an independent quantization (PT2E: each submodel's batch-norm-merged weights
quantized per channel; reds's int8 weights are shared, the batch norm in the
multipliers), so they are not bit-exact; measured on these random families: cnn-s 0 to 2
steps, dscnn-s 8 to 10 (nine layers deep), dscnn-s-img (leaky ReLU, an op of its own in
TFLite, requantized from int32 in reds) 9 to 14 steps with 92 to 97 % argmax agreement
(16 to 31 steps on the trained Fashion-MNIST family's test set: benchmarks/int8_tflite.py).
"""
from __future__ import annotations

import json

import numpy as np
import pytest

from families import make_family, random_inputs
from reds import quant
from reds.errors import RedsError
from reds.export import export
from reds.family import open as open_family

pytest.importorskip("litert_torch", reason="the tflite extra (litert-torch) is not installed")

from reds.export import tflite_int8  # noqa: E402

MAX_STEPS = {"cnn-s": 4, "dscnn-s": 16, "dscnn-s-img": 24}
INTEGER_OPS = {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "LEAKY_RELU", "AVERAGE_POOL_2D", "MAX_POOL_2D",
               "PAD", "RESHAPE", "TRANSPOSE", "QUANTIZE"}  # QUANTIZE: int8 -> int8 (a pool's own scale)


@pytest.fixture(scope="module", params=list(MAX_STEPS))
def exported(request, tmp_path_factory):
    arch = request.param
    tmp = tmp_path_factory.mktemp(f"tfl8-{arch}")
    src = make_family(tmp, arch, 0.25, budgets=(0.5, 1.0))
    fam = open_family(src)
    calib = random_inputs(fam.spec.input_shape, 256, 1)
    qf = quant.quantize(src, tmp / "int8", calib)
    m = export(open_family(tmp / "int8"), "tflite", tmp / "tfl", calib=calib)
    return arch, qf, m, tmp / "tfl"


def test_files_are_integer_and_recorded(exported):
    """One int8 file per submodel, every op integer (no DEQUANTIZE/float op inside), int8 input
    and output with their scales in the manifest, and a check per runtime."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    arch, qf, m, folder = exported
    assert m["dtype"] == "int8" and m["export_format"] == "tflite"
    assert json.loads((folder / "manifest.json").read_text())["files"] == m["files"]
    for k, s in enumerate(m["submodels"]):
        assert s["file"] == f"submodel_{k}.int8.tflite"
        it = Interpreter(model_path=str(folder / s["file"]),
                         experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
        it.allocate_tensors()
        ops = {o["op_name"] for o in it._get_ops_details()}
        assert ops <= INTEGER_OPS, f"{arch} submodel {k}: not integer: {sorted(ops - INTEGER_OPS)}"
        tensors = {t["index"]: t for t in it.get_tensor_details()}
        for o in it._get_ops_details():
            for i in [*o["inputs"], *o["outputs"]]:
                if i >= 0:
                    assert tensors[i]["dtype"] in (np.int8, np.int32), (arch, k, o["op_name"], tensors[i]["dtype"])
        i, out = it.get_input_details()[0], it.get_output_details()[0]
        assert i["dtype"] == np.int8 and out["dtype"] == np.int8
        assert s["input_quant"]["scale"] == pytest.approx(i["quantization"][0])
        assert s["input_quant"]["zero_point"] == i["quantization"][1]
        assert s["output_quant"]["zero_point"] == out["quantization"][1]
        for rt in ("litert", "tflite-micro"):
            c = s["check"][rt]
            assert c["samples"] == tflite_int8.CHECK_SAMPLES and 0 <= c["argmax_agreement"] <= 1


@pytest.mark.parametrize("runtime", ["litert", "tflite-micro"])
def test_runtimes_agree_with_the_integer_reference(exported, runtime):
    arch, qf, m, folder = exported
    x = random_inputs(qf.family.spec.input_shape, 64, 2)  # not the calibration inputs
    for k, s in enumerate(m["submodels"]):
        q = s["input_quant"]
        got = tflite_int8.run(folder / s["file"], tflite_int8.quantize_features(qf, x, q["scale"], q["zero_point"]),
                              runtime)
        a = tflite_int8.agreement(got, qf.logits(x, k), qf.outputs[k].s)
        assert a["argmax_agreement"] >= 0.9, f"{arch} submodel {k} in {runtime}: {a}"
        assert a["max_steps"] <= MAX_STEPS[arch], f"{arch} submodel {k} in {runtime}: {a}"


def test_int8_tflite_needs_calibration_inputs(exported, tmp_path):
    _, qf, _, _ = exported
    with pytest.raises(RedsError, match="calibrates on the family's training data"):
        export(open_family(qf.family.dir), "tflite", tmp_path / "none")
    with pytest.raises(RedsError, match="calibration inputs must be"):
        export(open_family(qf.family.dir), "tflite", tmp_path / "bad", calib=np.zeros((3, 1, 2, 2), np.float32))
    assert not (tmp_path / "none").exists() and not (tmp_path / "bad").exists()


def test_serve_runners_of_an_int8_family(exported, tmp_path):
    """`reds serve`'s runners: onnxruntime runs the int8 family's QDQ graphs (float in, float
    out, near the integer reference); TFLite refuses it in one line (int8 inputs, data needed)."""
    from reds.device.runners import make_runner

    arch, qf, _, _ = exported
    fam = open_family(qf.family.dir)
    runner = make_runner(fam, "onnxruntime", tmp_path)
    x = random_inputs(fam.spec.input_shape, 8, 3)
    for k in range(len(fam.submodels)):
        got = np.stack([runner.run(k, x[i:i + 1]) for i in range(len(x))])
        a = tflite_int8.agreement(got, qf.logits(x, k), qf.outputs[k].s)
        assert a["max_steps"] <= 8, (arch, k, a)
    with pytest.raises(RedsError, match="serve it with --runtime onnxruntime"):
        make_runner(fam, "tflite", tmp_path / "t")
