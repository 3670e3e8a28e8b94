"""reds.export.onnx_int8: the QDQ int8 ONNX graphs of an int8 family, run in onnxruntime.

Tolerance (the module docstring says why): per submodel, on 64 random inputs not used for
calibration, argmax agreement with the integer reference (QuantFamily.run) >= 0.95 and the
dequantized ONNX output at most 2 quantization steps from the reference's int8 logits."""
from __future__ import annotations


import numpy as np
import onnx
import pytest
import torch

from families import make_family, random_inputs
from reds import quant
from reds.errors import RedsError
from reds.export import onnx_int8
from reds.family import open as open_family
from reds.quant import ops

ARCHS = ("dscnn-s", "cnn-s", "dscnn-s-img")  # dscnn-s-img: leaky ReLU
FUSED = {"dscnn-s": "QLinearConv", "cnn-s": "QGemm"}  # ReLU networks run as integer ops



@pytest.fixture(scope="module", params=ARCHS)
def exported(request, tmp_path_factory):
    tmp = tmp_path_factory.mktemp(f"o8-{request.param}")
    src = make_family(tmp, request.param, 0.25)
    fam = open_family(src)
    qf = quant.quantize(src, tmp / "int8", random_inputs(fam.spec.input_shape, 256, 1))
    out = tmp / "onnx"
    out.mkdir()
    x = random_inputs(fam.spec.input_shape, 64, 2)  # not the calibration inputs
    info = onnx_int8.write(qf, out, x)
    return request.param, qf, out, x, info, src


def _check(qf, k, path, x, steps=onnx_int8.MAX_STEPS):
    row = onnx_int8.agreement(qf, k, path, x)
    assert row["argmax_agreement"] >= onnx_int8.MIN_AGREEMENT == 0.95, (k, row)
    assert row["max_steps"] <= steps <= 4, (k, row)
    return row


def test_every_submodel_runs_in_onnxruntime_and_agrees_with_the_reference(exported):
    arch, qf, out, x, info, _ = exported
    K = len(qf.family.submodels)
    assert info["files"] == [f"submodel_{k}.int8.onnx" for k in range(K)]
    assert sorted(p.name for p in out.iterdir()) == sorted(info["files"])  # no temporary left
    for k, (name, row) in enumerate(zip(info["files"], info["checks"])):
        got = onnx_int8.run_onnx(out / name, x)
        assert got.dtype == np.float32 and got.shape == (len(x), qf.family.spec.num_classes)
        again = _check(qf, k, out / name, x)
        assert row == {**again, "seed": None, "graph": "qdq"}
        print(f"{arch} submodel {k}: argmax agreement {row['argmax_agreement']:.3f}, max {row['max_steps']:g} steps")


def test_the_graphs_are_qdq_and_onnxruntime_fuses_them(exported, tmp_path):
    import onnxruntime as ort

    arch, qf, out, x, info, _ = exported
    for k, name in enumerate(info["files"]):
        model = onnx.load(out / name)
        onnx.checker.check_model(model, full_check=True)
        assert {o.domain: o.version for o in model.opset_import}[""] >= 13
        ops_ = {n.op_type for n in model.graph.node}
        assert {"QuantizeLinear", "DequantizeLinear"} <= ops_
        dims = model.graph.input[0].type.tensor_type.shape.dim
        assert dims[0].dim_param == "batch" and [d.dim_value for d in dims[1:]] == list(qf.family.spec.input_shape)
        inits = {i.name: i for i in model.graph.initializer}
        biases = [n for n in model.graph.node if n.op_type == "DequantizeLinear" and n.input[0].split("_")[-2] == "b"]
        assert biases and all(inits[b.input[0]].data_type == onnx.TensorProto.INT32 for b in biases)
        for batch in (1, 3):  # a dynamic batch
            np.testing.assert_array_equal(onnx_int8.run_onnx(out / name, x[:batch]),
                                          onnx_int8.run_onnx(out / name, x)[:batch])
        if arch in FUSED:
            opts = ort.SessionOptions()
            opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
            opts.optimized_model_filepath = str(tmp_path / f"opt_{k}.onnx")
            ort.InferenceSession(str(out / name), opts, providers=["CPUExecutionProvider"])
            fused = {n.op_type for n in onnx.load(tmp_path / f"opt_{k}.onnx").graph.node}
            assert FUSED[arch] in fused and not fused & {"Conv", "Gemm", "MatMul"}, fused


def test_the_exact_graphs_are_the_integer_reference(exported, tmp_path):
    """exact=True: reds's own stores in ONNX ops; the output is the reference's int8 logits."""
    arch, qf, out, x, info, _ = exported
    exact = onnx_int8.write(qf, tmp_path, x, exact=True)
    for k, (name, row) in enumerate(zip(exact["files"], exact["checks"])):
        assert (row["argmax_agreement"], row["max_steps"]) == (1.0, 0.0), (arch, k, row)
        got = onnx_int8.run_onnx(tmp_path / name, x)
        out_q = qf.outputs[k]
        np.testing.assert_array_equal(np.rint(got / np.float32(out_q.s)).astype(np.int64) + out_q.z, qf.run(x, k))


def test_the_input_step_is_quantize_input_exactly(exported):
    """The int8 input the graph makes equals ops.quantize_input's, element for element."""
    _, qf, out, x, info, _ = exported
    for k, name in enumerate(info["files"]):
        model = onnx.load(out / name)
        first_q = next(n for n in model.graph.node if n.op_type == "QuantizeLinear")
        model.graph.output.append(onnx.helper.make_tensor_value_info(first_q.output[0], onnx.TensorProto.INT8, None))
        wide = np.concatenate([x, 40 * x[:8]])  # far outside the calibrated range: saturation too
        got = onnx_int8.session(model.SerializeToString()).run([first_q.output[0]], {"input": wide})[0]
        want = ops.quantize_input(wide, qf.inputs[k].qa, qf.inputs[k].qb, qf.axis)
        np.testing.assert_array_equal(got.astype(np.int64), want)
        assert got.min() == -128 and got.max() == 127


def test_raw_inputs_and_negative_batch_norm_scales(tmp_path):
    """An input normalisation along the width and batch norms of negative scale (folded into
    the sign of the weights and bias)."""
    from reds.family import save
    from reds.ir.inputs import InputNorm

    rng = np.random.default_rng(7)
    norm = {"axis": "width", "mean": rng.normal(0, 5, 10).tolist(), "std": rng.uniform(0.5, 4, 10).tolist()}
    src = make_family(tmp_path, "dscnn-s", 0.25, input_norm=norm)
    fam = open_family(src)
    net = fam.net
    with torch.no_grad():
        for name, states in net.layers.items():
            if name.startswith("bn"):
                for st in states:
                    st.weight[::2] *= -1
    save(src, fam.manifest, net)
    fam = open_family(src)
    raw = InputNorm.from_json(norm).invert
    qf = quant.quantize(src, tmp_path / "int8", raw(random_inputs(fam.spec.input_shape, 256, 1)))
    assert any((p.mult < 0).any() for s in qf.steps for p in s.params)
    out = tmp_path / "onnx"
    out.mkdir()
    x = raw(random_inputs(fam.spec.input_shape, 64, 2))
    info = onnx_int8.write(qf, out, x)
    for k, name in enumerate(info["files"]):  # the module docstring says why this one is held to 4 steps, not 2
        _check(qf, k, out / name, x, onnx_int8.MAX_STEPS_DEEP)
    exact = onnx_int8.write(qf, out, x, exact=True)  # the same weights, biases and signs, reds's rounding
    assert [(r["argmax_agreement"], r["max_steps"]) for r in exact["checks"]] == [(1.0, 0.0)] * len(qf.inputs)
    assert onnx_int8.write(qf, tmp_path / "onnx")["checks"][0]["seed"] == onnx_int8.CHECK_SEED  # its own inputs


def test_absent_float_and_inconsistent_int8_families_are_refused(exported, tmp_path):
    _, qf, out, x, info, src = exported
    with pytest.raises(RedsError):
        quant.open(tmp_path / "nothing")
    with pytest.raises(RedsError, match="float family"):
        quant.open(src)
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(RedsError, match="not an int8 family"):
        onnx_int8.write(qf.family, dest)  # a float family, opened
    bad = quant.open(out.parent / "int8")
    step = next(s for s in bad.steps if s.kind == "conv2d")
    step.params[0].mult = step.params[0].mult[:-1]  # tables for one channel too few
    with pytest.raises(RedsError, match="quantize the family again"):
        onnx_int8.write(bad, dest)
    bad = quant.open(out.parent / "int8")
    bad.outputs[-1].s = float("nan")
    with pytest.raises(RedsError, match="output scale"):
        onnx_int8.write(bad, dest)
    assert list(dest.iterdir()) == []


def _copy(src, dest):
    import shutil

    shutil.copytree(src, dest)
    return dest


def test_corrupt_int8_families_are_refused(exported, tmp_path):
    _, qf, out, x, info, _ = exported
    garbled = _copy(out.parent / "int8", tmp_path / "garbled")
    (garbled / "int8.json").write_text("{not json")
    with pytest.raises(RedsError, match="unreadable"):
        quant.open(garbled)
    lacking = _copy(out.parent / "int8", tmp_path / "lacking")
    with np.load(lacking / "int8.npz") as data:
        arrays = {n: data[n] for n in data.files if not n.endswith(".weight")}
    np.savez(lacking / "int8.npz", **arrays)
    with pytest.raises(RedsError, match="lacks"):
        quant.open(lacking)


def test_a_truncated_int8_npz_is_refused(exported, tmp_path):
    _, _, out, _, _, _ = exported
    corrupt = _copy(out.parent / "int8", tmp_path / "corrupt")
    (corrupt / "int8.npz").write_bytes((corrupt / "int8.npz").read_bytes()[:100])
    with pytest.raises(RedsError, match="unreadable"):
        quant.open(corrupt)
