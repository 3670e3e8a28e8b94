"""`reds import-model`: a PyTorch nn.Module traced with torch.fx into an architecture file and
NestedNet weights computes exactly what the module does (MobileNetV2-style residual block
included, and after permuting every unit group); unsupported ops are refused naming the op
and its source line; the command writes both files and `reds train --init` starts from them."""
from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from reds import family as fam_io
from reds.cli import main
from reds.errors import RedsError
from reds.ir import archfile
from reds.ir.archfile import to_spec
from reds.nn.fx_import import file_text, import_module
from reds.nn.nested import NestedNet
from reds.nn.permute import permute_group

HERE = Path(__file__).read_text().splitlines()


def line_of(marker: str) -> str:
    """'test_import_model.py:N' of the line holding `marker` (a comment) in this file."""
    hits = [i + 1 for i, text in enumerate(HERE) if text.rstrip().endswith(f"# {marker}")]
    assert len(hits) == 1, marker
    return f"test_import_model.py:{hits[0]}"


def randomise(module: nn.Module, seed: int = 0) -> nn.Module:
    """Random weights and non-trivial batch-norm statistics (a trained model's, not an init's)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                if m.affine:
                    m.weight.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                    m.bias.copy_(torch.randn(m.num_features, generator=g) * 0.3)
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.5)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.num_batches_tracked.fill_(7)
    return module.eval()


def imported_net(module, shape, **kw):
    doc, state, notes = import_module(module, shape, **kw)
    spec = to_spec(doc, shape, state[f"layers.{doc['ops'][-1]['name']}.weight"].shape[0])
    net = NestedNet(spec)
    net.load_state_dict(state)  # strict: exactly NestedNet's names and shapes
    return doc, spec, net.eval(), notes


def max_diff(a: nn.Module, b: nn.Module, x) -> float:
    with torch.no_grad():
        return float((a(x) - b(x)).abs().max())


# ---------------------------------------------------------------- (a) MobileNetV2-style
class InvertedResidual(nn.Module):
    def __init__(self, c: int, expand: int):
        super().__init__()
        e = c * expand
        self.expand = nn.Conv2d(c, e, 1, bias=False)
        self.expand_bn = nn.BatchNorm2d(e)
        self.dw = nn.Conv2d(e, e, 3, padding=1, groups=e, bias=False)
        self.dw_bn = nn.BatchNorm2d(e, eps=1e-3)
        self.project = nn.Conv2d(e, c, 1, bias=False)
        self.project_bn = nn.BatchNorm2d(c)

    def forward(self, x):
        h = F.relu(self.expand_bn(self.expand(x)))
        h = torch.relu(self.dw_bn(self.dw(h)))
        return x + self.project_bn(self.project(h))


class MobileNetV2ish(nn.Module):
    def __init__(self, classes: int = 5):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, stride=2, padding=1, bias=False)
        self.stem_bn = nn.BatchNorm2d(8)
        self.act = nn.ReLU(inplace=True)
        self.block = InvertedResidual(8, 3)
        self.dropout = nn.Dropout(0.2)
        self.classifier = nn.Linear(8, classes)

    def forward(self, x):
        x = self.act(self.stem_bn(self.stem(x)))
        x = self.block(x)
        x = x.mean((2, 3))  # global average pool and flatten in one
        return self.classifier(self.dropout(x))


def test_mobilenetv2_block_imports_exactly_and_permutes_function_preserving():
    torch.manual_seed(0)
    module = randomise(MobileNetV2ish())
    shape = (3, 12, 12)  # stride 2 with padding 1 on an even size: PyTorch's own pads, exactly
    doc, spec, net, notes = imported_net(module, shape)
    x = torch.randn(4, *shape)
    assert max_diff(net, module, x) < 1e-5
    kinds = [op["op"] for op in doc["ops"]]
    assert kinds == ["conv2d", "batch_norm", "relu", "conv2d", "batch_norm", "relu", "depthwise_conv2d",
                     "batch_norm", "relu", "conv2d", "batch_norm", "add", "avg_pool", "flatten", "dense"]
    assert doc["ops"][0]["padding"] == [1, 1, 1, 1]  # stride 2: explicit, as PyTorch pads
    assert doc["ops"][6]["padding"] == "same"  # stride 1, 3x3, padding 1: 'same' on any size
    assert doc["ops"][7]["eps"] == 1e-3
    add = doc["ops"][11]
    assert add["from"] == "act"  # the block's input: the stem's (in-place) ReLU
    assert doc["ops"][-1]["out"] == "classes"
    assert any("nn.Dropout" in n and "dropped" in n for n in notes)
    # the add ties the stem's group and the project conv's into one: 3 convs, 2 groups
    convs = [l for l in spec.layers if l.kind == "conv2d"]
    assert len(spec.groups) == 2 < len(convs)
    assert spec.group_names == ["stem", "block_expand"]
    by = {l.name: l for l in spec.layers}
    assert by["block_project"].out_ch == by["stem"].out_ch == "stem"
    assert by["block_dw"].out_ch == "block_expand"
    # every group permuted at random: the same function
    g = torch.Generator().manual_seed(1)
    for group in spec.groups:
        permute_group(net, group.name, torch.randperm(group.units, generator=g))
    assert max_diff(net, module, x) < 1e-5
    # the file text reads back to the same document
    assert archfile.check(json.loads(file_text(doc))) == doc


def test_strided_padding_imports_on_any_input_size():
    """A stride-2 conv with padding 1 keeps PyTorch's symmetric pads: one architecture file
    computes what the module computes on odd and even inputs alike (TensorFlow's 'same'
    would pad the bottom only on even sizes)."""
    module = randomise(MobileNetV2ish())
    doc, _, _ = import_module(module)  # no input shape needed
    for shape in [(3, 12, 12), (3, 13, 13), (3, 16, 11)]:
        spec = archfile.to_spec(doc, shape, 5)
        net = NestedNet(spec).eval()
        net.load_state_dict(import_module(module).state_dict)
        assert max_diff(net, module, torch.randn(2, *shape)) < 1e-5, shape


# ---------------------------------------------------------------- (b) a plain CNN
class PlainCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 3)
        self.bn1 = nn.BatchNorm2d(6)
        self.relu = nn.ReLU()
        self.pool = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(6, 10, 3, padding=1)
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(10, 4)

    def forward(self, x):
        x = self.pool(self.relu(self.bn1(self.conv1(x))))
        x = F.relu(self.conv2(x))
        return self.fc(self.flatten(self.gap(x)))


def test_plain_cnn_imports_and_matches_without_an_input_shape():
    torch.manual_seed(2)
    module = randomise(PlainCNN())
    doc, state, notes = import_module(module)  # stride 1 everywhere: no shape needed
    assert [op["op"] for op in doc["ops"]] == ["conv2d", "batch_norm", "relu", "max_pool", "conv2d", "relu",
                                               "avg_pool", "flatten", "dense"]
    assert doc["ops"][0]["padding"] == "valid" and doc["ops"][4]["padding"] == "same" and not notes
    assert state["layers.bn1.0.num_batches_tracked"] == 7
    for shape in ((1, 12, 12), (1, 9, 14)):
        spec = to_spec(doc, shape, 4)
        net = NestedNet(spec)
        net.load_state_dict(state)
        assert max_diff(net.eval(), module, torch.randn(3, *shape)) < 1e-5
    assert len(spec.groups) == 2


class Variants(nn.Module):
    """Other spellings: view(x.size(0), -1), F.adaptive_avg_pool2d, leaky ReLU, torch.add,
    x += y, an average pool with a kernel, BatchNorm1d after a dense, dense then dense."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(2, 4, 3, padding=1)
        self.c2 = nn.Conv2d(4, 4, 3, padding=1)
        self.c3 = nn.Conv2d(4, 4, 1)
        self.bn = nn.BatchNorm2d(4, affine=False)
        self.avg = nn.AvgPool2d(2)
        self.fc1 = nn.Linear(4 * 4 * 4, 12)
        self.bn1d = nn.BatchNorm1d(12)
        self.fc2 = nn.Linear(12, 3)
        self.identity = nn.Identity()

    def forward(self, x):
        x = F.leaky_relu(self.c1(x), 0.2)
        y = nn.functional.relu(self.c2(x))
        x = torch.add(x, y)
        z = self.bn(self.c3(x))
        z += x
        z = self.avg(self.identity(z))
        z = z.view(z.size(0), -1)
        z = F.relu(self.bn1d(self.fc1(z)))
        return self.fc2(F.dropout(z, 0.1, self.training))


def test_other_spellings_import_and_match():
    torch.manual_seed(3)
    module = randomise(Variants())
    doc, spec, net, notes = imported_net(module, (2, 8, 8))
    assert max_diff(net, module, torch.randn(5, 2, 8, 8)) < 1e-5
    kinds = [op["op"] for op in doc["ops"]]
    assert kinds == ["conv2d", "leaky_relu", "conv2d", "relu", "add", "conv2d", "batch_norm", "add", "avg_pool",
                     "flatten", "dense", "batch_norm", "relu", "dense"]
    assert doc["ops"][1]["slope"] == 0.2
    assert [op["from"] for op in doc["ops"] if op["op"] == "add"] == ["leaky_relu", "add"]
    assert any("affine=False" in n for n in notes) and any("F.dropout" in n for n in notes)
    # both adds tie c1, c2 and c3 into one group; fc1 reads its 4 x 16 flattened inputs
    assert spec.group_names == ["c1", "fc1"]
    g = torch.Generator().manual_seed(4)
    for group in spec.groups:
        permute_group(net, group.name, torch.randperm(group.units, generator=g))
    assert max_diff(net, module, torch.randn(5, 2, 8, 8)) < 1e-5


# ---------------------------------------------------------------- (c) refused, with the op and its line
class WithGELU(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3)
        self.act = nn.GELU()
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        x = self.act(self.conv(x))  # GELU
        return self.fc(x.mean((2, 3)))


class WithCat(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(1, 4, 3, padding=1)
        self.b = nn.Conv2d(1, 4, 3, padding=1)
        self.fc = nn.Linear(8, 2)

    def forward(self, x):
        x = torch.cat([self.a(x), self.b(x)], 1)  # CAT
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class WithReLU6(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3)
        self.act = nn.ReLU6(inplace=True)
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        x = self.conv(x)
        x = self.act(x)  # RELU6
        return self.fc(x.mean((2, 3)))


class TwoBranches(nn.Module):
    """A ResNet block with a downsampling shortcut: layers on both sides of the add."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.main = nn.Conv2d(4, 8, 3, padding=1)
        self.shortcut = nn.Conv2d(4, 8, 1)
        self.fc = nn.Linear(8, 2)

    def forward(self, x):
        x = self.conv(x)
        y = self.main(x)
        x = self.shortcut(x) + y  # SHORTCUT
        return self.fc(x.mean((2, 3)))


class DataDependent(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3)
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        x = self.conv(x)
        if x.sum() > 0:  # CONTROL
            x = -x
        return self.fc(x.mean((2, 3)))


class EndsInConv(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 3, 3)

    def forward(self, x):
        return self.conv(x).mean((2, 3))  # NO-DENSE


@pytest.mark.parametrize("cls, marker, words", [
    (WithGELU, "GELU", ["nn.GELU", "self.act", "not supported"]),
    (WithCat, "CAT", ["torch.cat", "concatenation"]),
    (WithReLU6, "RELU6", ["nn.ReLU6", "use nn.ReLU"]),
    (TwoBranches, "SHORTCUT", ["self.shortcut", "branches"]),
    (DataDependent, "CONTROL", ["cannot be traced", "control flow"]),
    (EndsInConv, "NO-DENSE", ["nn.Linear"]),
])
def test_unsupported_is_refused_naming_the_op_and_its_line(cls, marker, words):
    with pytest.raises(RedsError) as e:
        import_module(cls(), (1, 8, 8))
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(line_of(marker) + ":"), msg
    for w in words:
        assert w in msg, msg


# ---------------------------------------------------------------- (d) the command
MODEL_PY = '''
import torch
from torch import nn


class Tiny(nn.Module):
    """A small CNN with a residual add, for 3 x 8 x 8 inputs and 4 classes."""

    def __init__(self, width=8):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, width, 3, padding=1, bias=False), nn.BatchNorm2d(width),
                                      nn.ReLU())
        self.res = nn.Sequential(nn.Conv2d(width, width, 3, padding=1), nn.BatchNorm2d(width))
        self.head = nn.Linear(width, 4)

    def forward(self, x):
        x = self.features(x)
        x = torch.relu(x + self.res(x))
        return self.head(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


class NoBN(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(3, 6, 3, padding=1)
        self.c2 = nn.Conv2d(6, 6, 3, padding=1)
        self.fc = nn.Linear(6 * 4 * 4, 4)

    def forward(self, x):
        x = torch.relu(self.c1(x))
        x = x + torch.relu(self.c2(x))
        x = nn.functional.max_pool2d(x, 2)
        return self.fc(x.view(x.size(0), -1))


class NeedsArgs(nn.Module):
    def __init__(self, width):
        super().__init__()
'''


@pytest.fixture
def model_file(tmp_path):
    path = tmp_path / "models" / "tiny_model.py"
    path.parent.mkdir()
    path.write_text(textwrap.dedent(MODEL_PY))
    return path


def load_class(path: Path, name: str):
    from reds.nn.fx_import import load_source

    return load_source(f"{path}:{name}")


def test_cli_writes_architecture_and_weights(model_file, tmp_path, capsys):
    from safetensors.torch import load_file

    module = randomise(load_class(model_file, "Tiny"), seed=5)
    torch.save(module.state_dict(), tmp_path / "w.pt")
    arch = tmp_path / "out" / "tiny.json"
    rc = main(["import-model", f"{model_file}:Tiny", "--out", str(arch), "--weights", str(tmp_path / "w.pt"),
               "--input-shape", "3,8,8", "--name", "tiny-cnn"])
    printed = capsys.readouterr().out
    assert rc == 0, printed
    weights = arch.with_suffix(".safetensors")
    assert arch.is_file() and weights.is_file()
    assert "reds train --arch" in printed and f"--init {weights}" in printed and "MACs" in printed
    doc = archfile.load(arch)
    assert doc["name"] == "tiny-cnn"
    state = load_file(str(weights))
    net = NestedNet(to_spec(doc, (3, 8, 8), 4))
    net.load_state_dict(state)
    assert max_diff(net.eval(), module, torch.randn(2, 3, 8, 8)) < 1e-5
    assert not list(arch.parent.glob(".*"))  # written atomically: no temporary files left
    # `reds arch FILE` reads it (cifar10: 3 x 32 x 32, 10 classes)
    assert main(["arch", str(arch), "--dataset", "cifar10", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["macs"] > 0
    # the same weights as safetensors
    from safetensors.torch import save_file

    save_file(module.state_dict(), str(tmp_path / "w.safetensors"))
    assert main(["import-model", f"{model_file}:Tiny", "--out", str(tmp_path / "b.json"),
                 "--weights", str(tmp_path / "w.safetensors")]) == 0
    assert all(torch.equal(v, load_file(str(tmp_path / "b.safetensors"))[k]) for k, v in state.items())


@pytest.mark.parametrize("source, expect", [
    ("{dir}/missing.py:Tiny", "missing.py: file not found"),
    ("{file}:Nope", "no class Nope; its nn.Module classes: NeedsArgs, NoBN, Tiny"),
    ("{file}:NeedsArgs", "NeedsArgs() needs arguments (width)"),
    ("{dir}/model.pt", "TorchScript"),
    ("{file}:Tiny --weights {tmp}/bad.pt", "has no tensor features.0.weight"),
])
def test_cli_bad_source_is_one_line(model_file, tmp_path, capsys, source, expect):
    torch.save({"x": torch.zeros(1)}, tmp_path / "bad.pt")
    argv = source.format(dir=model_file.parent, file=model_file, tmp=tmp_path).split()
    assert main(["import-model", *argv, "--out", str(tmp_path / "a.json")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("reds: error:") and expect in err[0], err
    assert not (tmp_path / "a.json").exists()


# ---------------------------------------------------------------- `reds train --init`
def write_npz(path: Path) -> Path:
    rng = np.random.default_rng(0)
    np.savez(path, x_train=rng.integers(0, 256, (80, 8, 8, 3), dtype=np.uint8), y_train=rng.integers(0, 4, 80),
             x_test=rng.integers(0, 256, (20, 8, 8, 3), dtype=np.uint8), y_test=rng.integers(0, 4, 20))
    return path


TRAIN = ["--dataset", "npz", "--epochs", "0", "--limit-train", "64", "--limit-eval", "64", "--budgets", "0.5,1",
         "--batch-size", "16", "--importance-batches", "2", "--time-limit", "5", "--quiet"]


def test_train_starts_from_imported_weights(model_file, tmp_path, capsys):
    data = write_npz(tmp_path / "d.npz")
    module = randomise(load_class(model_file, "NoBN"), seed=6)
    torch.save(module.state_dict(), tmp_path / "w.pt")
    arch, init = tmp_path / "nobn.json", tmp_path / "nobn.safetensors"
    assert main(["import-model", f"{model_file}:NoBN", "--out", str(arch), "--weights", str(tmp_path / "w.pt"),
                 "--input-shape", "3,8,8"]) == 0
    # no pretraining, no fine-tuning and no batch norm: the family's full submodel is the
    # imported model, its units only permuted
    out = tmp_path / "fam0"
    assert main(["train", "--arch", str(arch), "--init", str(init), "--data-dir", str(data), "--out", str(out),
                 "--finetune-epochs", "0", *TRAIN]) == 0, capsys.readouterr().err
    fam, net = fam_io.load(out)
    x = torch.randn(3, 3, 8, 8)
    with torch.no_grad():
        assert float((net.eval()(x, fam.submodels[-1].widths, bn=len(fam.submodels) - 1) - module(x)).abs().max()) \
            < 1e-5
    assert fam.training["init"] == str(init.resolve())
    from reds.nn.fx_import import sha256
    assert fam.training["init_sha256"] == sha256(init)

    # one epoch of fine-tuning, batch norms included (the Tiny model)
    tiny = randomise(load_class(model_file, "Tiny"), seed=7)
    torch.save(tiny.state_dict(), tmp_path / "t.pt")
    arch, init = tmp_path / "tiny.json", tmp_path / "tiny.safetensors"
    assert main(["import-model", f"{model_file}:Tiny", "--out", str(arch), "--weights", str(tmp_path / "t.pt")]) == 0
    out = tmp_path / "fam1"
    assert main(["train", "--arch", str(arch), "--init", str(init), "--data-dir", str(data), "--out", str(out),
                 "--finetune-epochs", "1", *TRAIN]) == 0, capsys.readouterr().err
    fam, _ = fam_io.load(out)
    assert [s.budget for s in fam.submodels] == [0.5, 1.0] and fam.training["init_sha256"] == sha256(init)

    # other widths than the imported model's: one line naming the tensor
    capsys.readouterr()
    assert main(["train", "--arch", str(arch), "--init", str(init), "--data-dir", str(data),
                 "--out", str(tmp_path / "fam2"), "--width", "0.5", "--finetune-epochs", "1", *TRAIN]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "tiny.safetensors (--init): tensor layers.features_0.weight has shape [8, 3, 3, 3]" \
        in err[0] and "needs [4, 3, 3, 3]" in err[0], err
