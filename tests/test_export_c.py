"""C export + firmware runtime, against PyTorch, for every architecture and both layouts.

- Each family is exported in both layouts, compiled with the runtime (the kernels the
  boards ship) and tests/c/harness.c
  (`cc -std=c99 -pedantic -Wall -Wextra -Werror -Wdouble-promotion -Wfloat-conversion
  -O2`) and run: every submodel within 1e-4 of PyTorch (NestedNet, eval, its own BN
  state) with the same argmax. The two layouts give bit-identical outputs (the kernels
  visit the inputs in the same order; only the addresses differ).
- The runtime's cost tables equal the family's manifest.
- Cross-compiled for Cortex-M4F: the object's arena and weight arrays have exactly the
  sizes the manifest declares, and the weight arrays add up to the largest submodel's
  weight bytes plus the other submodels' folded batch norms (minus absorbed biases).
- The weight arrays read back bit for bit, placed by the index formulas of
  firmware/README.md (implemented here independently of the exporter).
- Kernels not used by any architecture (max pool, valid padding, strided depthwise,
  odd pads) run on a custom spec.
- Bad input: one error line, exit 2, OUT untouched.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from csources import ARM_CC, CC, CFLAGS, KERNELS, LDLIBS, M4, ROOT, kernels_id, runtime
from families import RESIDUAL, arch_id, make_family, make_net, shared_family
from reds.cli import main
from reds.errors import RedsError
from reds.export import c as cexport, export
from reds.export.c import lower as clower
from reds.export.c.literals import c_float
from reds.export.source import Source
from reds.family import Family, Submodel, load, open as open_family
from reds.ir.archs import ARCHS, build_spec
from reds.ir.inputs import InputNorm
from reds.ir.cost import cost
from reds.ir.spec import (AvgPool, BatchNorm, Conv2d, Dense, DepthwiseConv2d, Flatten, Group, LeakyReLU, MaxPool, ReLU,
                          Spec)
from reds.nn.plain import bn_scale_shift

HARNESS = ROOT / "tests" / "c" / "harness.c"
ARM_NM = shutil.which("arm-none-eabi-nm")
ATOL = 1e-4
ALL = [*ARCHS, RESIDUAL]
WIDTH = {a: 0.25 for a in ALL} | {"dscnn-l": 0.125, "dnn-l": 0.125}  # small and fast

# Under pytest-xdist (-n 2 on 2 cores) two intra-op threads per worker oversubscribe the
# cores: small convolutions run ~10x slower. One thread per worker process.
torch.set_num_threads(1)

needs_cc = pytest.mark.skipif(CC is None, reason="needs a C compiler (apt-get install gcc)")


def compile_run(out: Path, x: np.ndarray, name: str = "reds_model", kernels="cortex_m") -> tuple[dict, dict]:
    """Build the harness against the export in `out`, feed it x; return (costs, outputs)."""
    exe = out / f"harness-{kernels_id(kernels)}"
    srcs, incs = runtime(kernels)
    cmd = [CC, *CFLAGS, *incs, f"-I{out}", f"-DREDS_HARNESS_MODEL={name}", str(HARNESS),
           str(out / f"{name}.c"), *srcs, "-o", str(exe), *LDLIBS]
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([str(exe)], input=np.ascontiguousarray(x, dtype="<f4").tobytes(), capture_output=True)
    assert r.returncode == 0, r.stderr.decode()
    costs, outs = {}, {}
    for line in r.stdout.decode().splitlines():
        f = line.split()
        if f[0] == "cost":
            costs[int(f[1])] = (int(f[2]), int(f[3]), int(f[4]), float(f[5]))
        elif f[0] == "out":
            outs.setdefault(int(f[1]), []).append(np.array([float(v) for v in f[3:]], dtype=np.float32))
    return costs, {k: np.stack(v) for k, v in outs.items()}


def reference(family_dir: Path, x: np.ndarray) -> dict[int, np.ndarray]:
    """PyTorch's logits for raw inputs x (the family's input normalisation first)."""
    f = open_family(family_dir)
    with torch.no_grad():
        t = torch.from_numpy(x)
        return {k: f.logits(t, k).numpy() for k in range(len(f.submodels))}


def check_against_pytorch(family_dir: Path, out_root: Path, x: np.ndarray) -> float:
    fam, net = load(family_dir)
    ref = reference(family_dir, x)
    results = {}
    for layout in ("nested", "rowmajor"):
        out = out_root / layout
        export(open_family(family_dir), "c", out, layout=layout)
        costs, outs = compile_run(out, x)
        for k, s in enumerate(fam.submodels):
            assert costs[k] == (s.macs, s.weight_bytes, s.arena_bytes, float(np.float32(s.budget)))
        results[layout] = outs
    worst = 0.0
    for k in range(len(fam.submodels)):
        assert np.array_equal(results["nested"][k], results["rowmajor"][k]), f"submodel {k}: layouts differ"
        got = results["nested"][k]
        diff = float(np.abs(got - ref[k]).max())
        assert diff <= ATOL, f"submodel {k}: max |C - PyTorch| = {diff:.3g}"
        assert (got.argmax(1) == ref[k].argmax(1)).all(), f"submodel {k}: argmax differs"
        worst = max(worst, diff)
    return worst


@needs_cc
@pytest.mark.parametrize("arch", ALL, ids=arch_id)
def test_c_matches_pytorch(arch, tmp_path, tmp_path_factory):
    d = shared_family(tmp_path_factory, arch, WIDTH[arch])
    fam, _ = load(d)
    x = np.random.default_rng(0).normal(size=(6, *fam.input_shape)).astype(np.float32)
    worst = check_against_pytorch(d, tmp_path, x)
    print(f"{arch}: max |C - PyTorch| = {worst:.3g}")


@needs_cc
def test_c_fmnist_real_inputs(tmp_path, tmp_path_factory):
    from reds.data import load as load_data
    try:
        ds = load_data("fmnist")
    except RedsError as e:
        pytest.skip(f"Fashion-MNIST not available ({e})")
    x = next(ds.batches("test", 24))[0].numpy()
    d = shared_family(tmp_path_factory, "dscnn-s-img", WIDTH["dscnn-s-img"])
    worst = check_against_pytorch(d, tmp_path, x)
    print(f"dscnn-s-img on Fashion-MNIST: max |C - PyTorch| = {worst:.3g}")


@needs_cc
@pytest.mark.parametrize("arch, axis", [("dscnn-s", "width"), ("mobilenetv1-025", "channel")])
def test_c_normalises_raw_inputs(arch, axis, tmp_path):
    """A family that records its input normalisation takes raw features: the runtime
    standardises them (per MFCC coefficient, per image channel) as PyTorch's data did."""
    shape = build_spec(arch).input_shape
    n = shape[2] if axis == "width" else shape[0]
    rng = np.random.default_rng(5)
    norm = {"axis": axis, "mean": rng.normal(0, 5, n).tolist(), "std": rng.uniform(0.5, 4, n).tolist()}
    d = make_family(tmp_path, arch, WIDTH[arch], input_norm=norm)
    raw = InputNorm.from_json(norm).invert(rng.normal(size=(4, *shape)).astype(np.float32))
    worst = check_against_pytorch(d, tmp_path / "out", raw)
    # the normalisation is not a no-op: the raw inputs alone give other logits
    fam, net = load(d)
    with torch.no_grad():
        plain = net(torch.from_numpy(raw), fam.submodels[-1].widths, bn=len(fam.submodels) - 1).numpy()
    assert np.abs(plain - reference(d, raw)[len(fam.submodels) - 1]).max() > 100 * max(worst, 1e-6)


# ---------------------------------------------------------------------------------------
# Cortex-M4F cross-compile: declared sizes are the real ones
# ---------------------------------------------------------------------------------------
def expected_array_bytes(fam: Family, spec: Spec) -> int:
    """Largest submodel's weight bytes (cost model) + the other submodels' folded batch
    norms - the conv/dense biases folded into them, counted independently of the exporter."""
    big = fam.submodels[-1].widths
    total = fam.submodels[-1].weight_bytes
    for a, b in zip(spec.layers, spec.layers[1:]):
        if isinstance(b.op, BatchNorm) and isinstance(a.op, (Conv2d, DepthwiseConv2d, Dense)) and a.op.bias:
            total -= 4 * spec.size(a.out_ch, big)
    for layer in spec.layers:
        if isinstance(layer.op, BatchNorm):
            total += sum(8 * spec.size(layer.in_ch, s.widths) for s in fam.submodels[:-1])
    return total


@pytest.mark.skipif(ARM_CC is None or ARM_NM is None,
                    reason="needs arm-none-eabi-gcc (apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi)")
@pytest.mark.parametrize("arch", ALL, ids=arch_id)
def test_cortex_m4_build_and_sizes(arch, tmp_path, tmp_path_factory):
    d = shared_family(tmp_path_factory, arch, WIDTH[arch])
    fam, net = load(d)
    out = tmp_path / "c"
    export(open_family(d), "c", out)
    objs = []
    srcs, incs = runtime("cortex_m")
    for src in [out / "reds_model.c", *map(Path, srcs)]:
        obj = tmp_path / (src.stem + ".o")
        r = subprocess.run([ARM_CC, *CFLAGS, *M4, "-c", *incs, f"-I{out}", str(src), "-o", str(obj)],
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        objs.append(obj)
    nm = subprocess.run([ARM_NM, "-S", str(objs[0])], capture_output=True, text=True, check=True).stdout
    sizes = {}
    for line in nm.splitlines():
        f = line.split()
        if len(f) == 4:
            sizes[f[3]] = (int(f[1], 16), f[2])
    largest = fam.submodels[-1]
    manifest = json.loads((out / "manifest.json").read_text())
    assert sizes["arena"] == (largest.arena_bytes, "b")  # zero-initialised RAM, not flash
    assert manifest["c"]["arena_bytes"] == largest.arena_bytes
    arrays = {n: s for n, (s, kind) in sizes.items() if re.search(r"_(weight|bias|scale|shift)$", n)}
    assert all(sizes[n][1] == "r" for n in arrays)  # in flash
    assert sum(arrays.values()) == manifest["c"]["weight_array_bytes"] == expected_array_bytes(fam, net.spec)
    tables = sum(sizes[n][0] for n in ("widths", "macs", "weight_bytes", "arena_bytes", "budgets"))
    tables += sum(s for n, (s, kind) in sizes.items() if re.search(r"_(segs|groups|groups_at|at)$", n))
    assert tables == manifest["c"]["table_bytes"]
    assert manifest["c"]["overhead_bytes"] == sum(arrays.values()) + tables - largest.weight_bytes
    header = (out / "reds_model.h").read_text()
    assert f"#define REDS_MODEL_ARENA_BYTES {largest.arena_bytes}u" in header
    assert f"#define REDS_MODEL_WEIGHT_BYTES {sum(arrays.values())}u" in header


# ---------------------------------------------------------------------------------------
# weights read back bit for bit
# ---------------------------------------------------------------------------------------
ARRAY_RE = re.compile(r"static const float (\w+)\[[^\]]*\] = \{(?:\s*/\*.*?\*/)?(.*?)\};", re.S)


def parse_arrays(text: str) -> dict[str, np.ndarray]:
    out = {}
    for name, body in ARRAY_RE.findall(text):
        vals = [v.strip() for v in body.split(",") if v.strip()]
        assert all(v.endswith("f") for v in vals)
        out[name] = np.array([float(v[:-1]) for v in vals], dtype=np.float64).astype(np.float32)
    return out


def nested_offsets(outs: list[int], ins: list[int]) -> np.ndarray:
    """firmware/README.md: the offset (in units of E) of every entry (o, i), as [O, I]."""
    O, I = np.asarray(outs), np.asarray(ins)
    o, i = np.meshgrid(np.arange(O[-1]), np.arange(I[-1]), indexing="ij")
    so = np.searchsorted(O, o, side="right")  # row shell: the first submodel with o < O_s
    si = np.searchsorted(I, i, side="right")
    s = np.maximum(so, si)
    O0, I0 = np.concatenate([[0], O])[s], np.concatenate([[0], I])[s]  # O_{s-1}, I_{s-1}
    return np.where(so == s, o * I[s] + i, O0 * I0 + o * (I[s] - I0) + (i - I0))


def expected_weight(w: np.ndarray, outs: list[int], ins: list[int], layout: str) -> np.ndarray:
    O, I, E = outs[-1], ins[-1], w.shape[2]
    if layout == "rowmajor":
        return w[:O, :I].reshape(-1)
    offs = nested_offsets(outs, ins)
    for o, i in zip(outs, ins):  # each submodel's block is exactly a prefix
        assert np.array_equal(np.sort(offs[:o, :i].reshape(-1)), np.arange(o * i))
    off = offs.reshape(-1)
    flat = np.empty((O * I, E), dtype=np.float32)
    flat[off] = w[:O, :I].reshape(O * I, E)
    return flat.reshape(-1)


def bits(a: np.ndarray) -> np.ndarray:
    return np.asarray(a, dtype=np.float32).view(np.uint32)


@pytest.mark.parametrize("arch", ["dnn-s", "cnn-s", "dscnn-s", "mobilenetv1-025"])
@pytest.mark.parametrize("layout", ["nested", "rowmajor"])
def test_weights_read_back_bit_exact(arch, layout, tmp_path, tmp_path_factory):
    d = shared_family(tmp_path_factory, arch, WIDTH[arch], budgets=(0.2, 0.45, 0.7, 1.0))
    fam, net = load(d)
    spec = net.spec
    export(open_family(d), "c", tmp_path / "c", layout=layout)
    arrays = parse_arrays((tmp_path / "c" / "reds_model.c").read_text())
    widths = [s.widths for s in fam.submodels]
    seen = set()
    for li, layer in enumerate(spec.layers):
        op = layer.op
        outs = [spec.size(layer.out_ch, w) for w in widths]
        ins = [spec.size(layer.in_ch, w) for w in widths]
        p = net.layers[layer.name] if layer.name in net.layers else None
        nxt = spec.layers[li + 1] if li + 1 < len(spec.layers) else None
        if isinstance(op, (Conv2d, Dense)):
            t = p.weight.detach().numpy()
            w = t.reshape(t.shape[0], -1, layer.in_spatial if isinstance(op, Dense) else op.kernel[0] * op.kernel[1])
            want = expected_weight(w, outs, ins, layout)
            assert np.array_equal(bits(arrays[f"{layer.name}_weight"]), bits(want)), layer.name
            seen.add(f"{layer.name}_weight")
        if isinstance(op, DepthwiseConv2d):
            want = p.weight.detach().numpy()[:outs[-1]].reshape(-1)
            assert np.array_equal(bits(arrays[f"{layer.name}_weight"]), bits(want)), layer.name
            seen.add(f"{layer.name}_weight")
        if isinstance(op, (Conv2d, Dense, DepthwiseConv2d)) and op.bias and not (nxt and isinstance(nxt.op, BatchNorm)):
            assert np.array_equal(bits(arrays[f"{layer.name}_bias"]), bits(p.bias.detach().numpy()[:outs[-1]]))
            seen.add(f"{layer.name}_bias")
        if isinstance(op, BatchNorm):
            prev = spec.layers[li - 1]
            absorbs = isinstance(prev.op, (Conv2d, Dense, DepthwiseConv2d)) and prev.op.bias
            scales, shifts = [], []
            for k, c in enumerate(outs):
                s, t = bn_scale_shift(net.layers[layer.name][k], c, op.eps)
                if absorbs:
                    t = s * net.layers[prev.name].bias.detach()[:c] + t
                scales.append(s.numpy())
                shifts.append(t.numpy())
            assert np.array_equal(bits(arrays[f"{layer.name}_scale"]), bits(np.concatenate(scales))), layer.name
            assert np.array_equal(bits(arrays[f"{layer.name}_shift"]), bits(np.concatenate(shifts))), layer.name
            seen |= {f"{layer.name}_scale", f"{layer.name}_shift"}
    assert np.array_equal(arrays.pop("budgets"), np.array([s.budget for s in fam.submodels], dtype=np.float32))
    assert seen == set(arrays)  # no array unaccounted for


def test_c_float_literals_round_trip():
    rng = np.random.default_rng(0)
    vals = np.concatenate([rng.normal(size=2000).astype(np.float32) * np.float32(10.0) ** rng.integers(-30, 30, 2000),
                           np.array([0.0, -0.0, 1.0, -2.0, 1e-45, 3.4028235e38, 1.1754944e-38], dtype=np.float32)])
    text = [c_float(v) for v in vals]
    assert all(re.fullmatch(r"-?[0-9.]+(e[-+][0-9]+)?f", t) and ("." in t or "e" in t) for t in text)
    back = np.array([float(t[:-1]) for t in text]).astype(np.float32)
    assert np.array_equal(bits(back), bits(vals))
    with pytest.raises(RedsError, match="non-finite"):
        c_float(float("nan"))


# ---------------------------------------------------------------------------------------
# kernels no architecture uses, on a custom spec
# ---------------------------------------------------------------------------------------
def custom_source(tmp_path) -> Source:
    spec = Spec("custom", (2, 13, 11), 5,
                (Group("a", 6), Group("b", 5), Group("c", 7)),
                (Conv2d("c1", "a", (3, 2), (2, 1), "valid"), LeakyReLU("lr1", 0.2),
                 MaxPool("mp", (2, 2)),
                 DepthwiseConv2d("dw", (3, 3), (2, 2), "same", bias=False), BatchNorm("bn1"), ReLU("r1"),
                 Conv2d("c2", "b", (2, 3), (1, 1), "same"), ReLU("r2"),
                 AvgPool("ap", (2, 2), (1, 1)), MaxPool("mp2", (1, 2), (1, 1)),
                 Flatten("fl"), Dense("d1", "c", bias=False), BatchNorm("bn2"), LeakyReLU("lr2", 0.05),
                 Dense("out", 5)))
    widths = [{"a": 2, "b": 3, "c": 3}, {"a": 4, "b": 3, "c": 5}, {"a": 6, "b": 5, "c": 7}]
    net = make_net(spec, widths, seed=3)
    subs = []
    for b, w in zip((0.3, 0.6, 1.0), widths):
        c = cost(spec, w)
        subs.append(Submodel(b, w, c.macs, c.params, c.weight_bytes, c.arena_bytes))
    fam = Family("custom", "none", list(spec.input_shape), 5, [{"name": g.name, "units": g.units} for g in spec.groups],
                 subs, {}, {})
    return Source(Opened(fam, spec, net, tmp_path), "test")


class Opened:
    """An opened family of a spec no architecture name builds (reds.family.OpenFamily's fields)."""

    def __init__(self, manifest, spec, net, folder):
        self.manifest, self.spec, self.net, self.dir, self.hash = manifest, spec, net, folder, "0" * 64
        self.submodels = manifest.submodels
        self.input_norm = None


@needs_cc
@pytest.mark.parametrize("kernels", KERNELS, ids=kernels_id)
@pytest.mark.parametrize("layout", ["nested", "rowmajor"])
def test_kernels_on_custom_spec(layout, kernels, tmp_path):
    src = custom_source(tmp_path)
    out = tmp_path / "c"
    out.mkdir()
    cexport.write(src, out, layout, "custom_model")
    x = np.random.default_rng(1).normal(size=(5, *src.spec.input_shape)).astype(np.float32)
    costs, outs = compile_run(out, x, "custom_model", kernels)
    with torch.no_grad():
        ref = [src.net(torch.from_numpy(x), s.widths, bn=k).numpy() for k, s in enumerate(src.family.submodels)]
    for k, s in enumerate(src.family.submodels):
        assert costs[k][2] == s.arena_bytes
        diff = float(np.abs(outs[k] - ref[k]).max())
        assert diff <= ATOL, (k, diff)
        assert np.abs(ref[k]).max() > 0.1  # a real signal, not all zeros


# ---------------------------------------------------------------------------------------
# bad input
# ---------------------------------------------------------------------------------------
def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_corrupt_family_leaves_out_untouched(tmp_path, capsys):
    d = make_family(tmp_path, "dnn-s", 0.25)
    out = tmp_path / "out"
    assert main(["export", str(d), "--format", "c", "--out", str(out)]) == 0
    before = snapshot(out)
    (d / "family.json").write_text("{ not json")
    assert main(["export", str(d), "--format", "c", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("reds: error:") and "family.json" in err[0]
    assert snapshot(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["out", d.name])  # no staging folder left


def test_foreign_and_truncated_families(tmp_path, capsys):
    d = make_family(tmp_path, "dnn-s", 0.25)
    doc = json.loads((d / "family.json").read_text())
    (d / "family.json").write_text(json.dumps({**doc, "format": "something-else"}))
    assert main(["export", str(d), "--format", "onnx", "--out", str(tmp_path / "o")]) == 2
    assert "not a reds family" in capsys.readouterr().err
    (d / "family.json").write_text(json.dumps(doc))
    w = (d / "weights.safetensors").read_bytes()
    (d / "weights.safetensors").write_bytes(w[: len(w) // 2])
    assert main(["export", str(d), "--format", "c", "--out", str(tmp_path / "o")]) == 2
    assert "weights.safetensors" in capsys.readouterr().err
    assert main(["export", str(tmp_path / "nope"), "--format", "c", "--out", str(tmp_path / "o")]) == 2
    assert not (tmp_path / "o").exists()


def test_unknown_format_and_bad_flags(tmp_path, tmp_path_factory, capsys):
    d = shared_family(tmp_path_factory, "dnn-s", WIDTH["dnn-s"])
    with pytest.raises(SystemExit) as e:
        main(["export", str(d), "--format", "coreml", "--out", str(tmp_path / "o")])
    assert e.value.code == 2
    with pytest.raises(RedsError, match="unknown export format"):
        export(open_family(d), "coreml", tmp_path / "o")
    with pytest.raises(RedsError, match="unknown layout"):
        export(open_family(d), "c", tmp_path / "o", layout="colmajor")
    assert main(["export", str(d), "--format", "c", "--out", str(tmp_path / "o"), "--name", "9lives"]) == 2
    assert "--name" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_refuses_foreign_out_and_replaces_previous_export(tmp_path, tmp_path_factory, capsys):
    d = shared_family(tmp_path_factory, "dnn-s", WIDTH["dnn-s"])
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    assert main(["export", str(d), "--format", "c", "--out", str(mine)]) == 2
    assert "not empty" in capsys.readouterr().err
    assert snapshot(mine) == {"notes.txt": b"keep me"}
    out = tmp_path / "out"
    export(open_family(d), "c", out, name="first")
    export(open_family(d), "c", out, name="second")  # a previous export is replaced whole
    assert sorted(snapshot(out)) == ["manifest.json", "second.c", "second.h"]
    m = json.loads((out / "manifest.json").read_text())
    assert m["format"] == "reds-export" and m["export_format"] == "c" and len(m["family_hash"]) == 64
    assert m["command"].startswith("reds export ") and "--name second" in m["command"]
    src = (out / "second.c").read_text()
    assert m["family_hash"] in src and m["command"] in src and "reds 0." in src


def test_op_a_format_cannot_express(tmp_path, tmp_path_factory, monkeypatch):
    d = shared_family(tmp_path_factory, "dscnn-s", WIDTH["dscnn-s"])
    out = tmp_path / "out"
    export(open_family(d), "c", out)
    before = snapshot(out)
    monkeypatch.setattr(clower, "SUPPORTED", clower.SUPPORTED - {"depthwise_conv2d"})
    with pytest.raises(RedsError, match=r"cannot express layer dw1 \(depthwise_conv2d\)"):
        export(open_family(d), "c", out)
    assert snapshot(out) == before
