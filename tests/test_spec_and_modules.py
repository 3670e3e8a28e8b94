"""Spec IR, nested modules, cost model and permutation, on every architecture.

- A NestedNet at any width vector computes exactly (bit for bit) what `plain_model`, built
  from standard torch layers with sliced weights, computes.
- Permuting a unit group (alone, or all of them) leaves the function unchanged, in every
  batch-norm state; permuting only a group's producer (not its consumers) does not:
  the negative control that shows the permutation check can fail.
- The cost model agrees with independent counts taken on `plain_model`: MACs with
  torch's FlopCounterMode, params from the modules' tensors, arena bytes from forward hooks.
- Full-size MACs match REDS's published numbers.
- The spec rejects malformed networks.
"""
from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from reds.ir.archs import ARCHS, build_spec
from reds.ir.cost import cost
from reds.ir.spec import AvgPool, BatchNorm, Conv2d, Dense, DepthwiseConv2d, Flatten, Group, MaxPool, ReLU, Spec
from reds.nn.nested import NestedNet
from reds.nn.permute import permute_all, permute_group
from reds.nn.plain import Residual, plain_model

# a residual network from an architecture file: its adds tie groups across blocks
RESIDUAL = str(Path(__file__).resolve().parent.parent / "examples" / "mobilenetv2-tiny.yaml")
ALL = list(ARCHS) + [RESIDUAL]
# Full width as well for all: the largest (dscnn-l, 28 M MACs) runs a batch of 2 in well
# under a second on CPU. width 0.25 keeps groups small (>= 4 units) and the tests fast.
SIZES = [(a, wm) for a in ALL for wm in (0.25, 1.0)]
SMALL = [(a, 0.25) for a in ALL]
# The cheap ones also get their permutations checked at full width.
PERM_SIZES = SMALL + [(a, 1.0) for a in ("dnn-s", "cnn-s", "dscnn-s", "dscnn-s-img", "mobilenetv1-025", RESIDUAL)]

ANCHORS = {  # full-size MACs at the default data sets (REDS, tables 1-2 / MLPerf Tiny)
    "dnn-l": 494_424, "cnn-s": 2.50e6, "cnn-l": 12.64e6, "dscnn-s": 2.66e6, "dscnn-l": 28.3e6,
}


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """These nets are tiny: one intra-op thread per xdist worker avoids oversubscribing
    the cores (which made some tests 20x slower on 2 cores)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _ids(p):
    return f"{Path(p[0]).stem}@{p[1]:g}"


def _randomize_bn(net: NestedNet, gen: torch.Generator) -> None:
    """Random BN affine parameters in every state, so BN is not the identity. Shifts are
    kept small: large ones would swamp the input signal in deep nets (MobileNet has 27 BNs)
    and leave an input-independent output that any permutation check passes trivially."""
    with torch.no_grad():
        for layer in net.spec.layers:
            if isinstance(layer.op, BatchNorm):
                for s in net.layers[layer.name]:
                    s.weight.copy_(torch.rand(s.weight.shape, generator=gen) + 0.5)
                    s.bias.copy_(0.2 * torch.randn(s.bias.shape, generator=gen))


def make_net(arch: str, wm: float, num_bn: int = 1, seed: int = 0, dtype=torch.float32):
    """A NestedNet with random BN affine params and non-trivial running statistics in
    every BN state (two train-mode forwards per state), in eval mode."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    spec = build_spec(arch, width_mult=wm)
    net = NestedNet(spec, num_bn=num_bn).to(dtype)
    _randomize_bn(net, gen)
    # Cumulative averages: the running statistics become the (two-batch) data statistics,
    # so eval-mode BN normalises and the signal survives deep nets.
    net.bn_momentum = None
    net.train()
    with torch.no_grad():
        for k in range(num_bn):
            for _ in range(2):
                net((torch.randn(8, *spec.input_shape, generator=gen) * 2 + 0.5).to(dtype), bn=k)
    net.eval()
    for layer in spec.layers:  # the statistics did move away from (0, 1)
        if isinstance(layer.op, BatchNorm):
            for s in net.layers[layer.name]:
                assert s.num_batches_tracked.item() == 2
                assert s.running_mean.abs().sum() > 0
    x = (torch.randn(3, *spec.input_shape, generator=gen) * 2 + 0.5).to(dtype)
    with torch.no_grad():  # healthy: the output depends on the input, in every BN state
        for k in range(num_bn):
            y = net(x, bn=k)
            assert (y.std(0) > 1e-3 * y.abs().max()).any(), f"{arch}@{wm:g}: output does not depend on the input"
    return spec, net, x


def random_widths(spec: Spec, rng: random.Random) -> dict[str, int]:
    return {g.name: rng.randint(1, g.units) for g in spec.groups}


# ---------------------------------------------------------------------------------------
# nested == plain, exactly
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("arch_wm", SIZES, ids=_ids)
def test_nested_equals_plain_exactly(arch_wm):
    arch, wm = arch_wm
    spec, net, x = make_net(arch, wm, num_bn=2)
    rng = random.Random(f"{arch}@{wm}")
    vectors = [spec.full_widths()] + [random_widths(spec, rng) for _ in range(3)]
    vectors.append({g.name: 1 for g in spec.groups})  # the narrowest possible
    with torch.no_grad():
        for w in vectors:
            for bn in (0, 1):
                y = net(x, w, bn=bn)
                ref = plain_model(net, w, bn=bn)(x)
                assert y.shape == (x.shape[0], spec.num_classes)
                assert torch.equal(y, ref), (arch, wm, w, bn, (y - ref).abs().max().item())
        # The two BN states really differ (else bn=1 would test nothing new).
        full = spec.full_widths()
        has_bn = any(isinstance(l.op, BatchNorm) for l in spec.layers)
        assert torch.equal(net(x, full, bn=0), net(x, full, bn=1)) != has_bn
        # Folded BN (the exporters' form) computes the same, to rounding.
        w = vectors[1]
        torch.testing.assert_close(plain_model(net, w, bn=1, fold_bn=True)(x), net(x, w, bn=1),
                                   atol=1e-4, rtol=1e-4)


# ---------------------------------------------------------------------------------------
# permutation
#
# Run in float64: function preservation is exact math, and in float32 a summation-order
# change through MobileNet's 27 normalising layers alone reaches ~2e-5. In float64 the
# error is ~1e-13, so atol 1e-5 (relative to the output scale) leaves a wide margin while
# any real mistake (the negative control) moves outputs by O(0.1).
# ---------------------------------------------------------------------------------------
F64 = torch.float64
def _outputs(net, x, widths=None):
    with torch.no_grad():
        return [net(x, widths, bn=k) for k in range(net.num_bn)]


def _assert_same(before, after, msg):
    for k, (a, b) in enumerate(zip(before, after)):
        scale = max(1.0, a.abs().max().item())
        assert torch.allclose(a, b, atol=1e-5 * scale, rtol=1e-5), (msg, k, (a - b).abs().max().item())


@pytest.mark.parametrize("arch_wm", PERM_SIZES, ids=_ids)
def test_permutation_preserves_function(arch_wm):
    arch, wm = arch_wm
    spec, net, x = make_net(arch, wm, num_bn=2, seed=1, dtype=F64)
    gen = torch.Generator().manual_seed(7)
    before = _outputs(net, x)
    for g in spec.groups:  # every group on its own
        perm = torch.randperm(g.units, generator=gen)
        permute_group(net, g.name, perm)
        _assert_same(before, _outputs(net, x), f"{arch}: group {g.name}")
        permute_group(net, g.name, torch.argsort(perm))  # and back: weights restored exactly
    # all groups at once
    state = {k: v.clone() for k, v in net.state_dict().items()}
    perms = {g.name: torch.randperm(g.units, generator=gen) for g in spec.groups}
    permute_all(net, perms)
    _assert_same(before, _outputs(net, x), f"{arch}: all groups")
    changed = sum(not torch.equal(state[k], v) for k, v in net.state_dict().items())
    assert changed > 0, "the permutation moved no weights: the check proves nothing"


def _permute_producer_only(net: NestedNet, group: str, perm: torch.Tensor) -> None:
    """Reorder only the rows (and bias) of the conv/dense layer that produces `group`,
    leaving its batch norms, depthwise channels and consumers alone: a broken permutation."""
    with torch.no_grad():
        for layer in net.spec.layers:
            if isinstance(layer.op, (Conv2d, Dense)) and layer.out_ch == group:
                p = net.layers[layer.name]
                p.weight.copy_(p.weight[perm])
                if layer.op.bias:
                    p.bias.copy_(p.bias[perm])
                return
    raise AssertionError(f"no producer for {group}")


@pytest.mark.parametrize("arch", ["dnn-s", "cnn-s", "dscnn-s", "mobilenetv1-025"])
def test_negative_control_producer_only_permutation_changes_outputs(arch):
    spec, net, x = make_net(arch, 0.25, num_bn=2, seed=2, dtype=F64)
    before = _outputs(net, x)
    for g in spec.groups:
        state = {k: v.clone() for k, v in net.state_dict().items()}
        perm = torch.roll(torch.arange(g.units), 1)  # no fixed points
        _permute_producer_only(net, g.name, perm)
        after = _outputs(net, x)
        assert any(not torch.allclose(a, b, atol=1e-5) for a, b in zip(before, after)), \
            f"{arch}: a producer-only permutation of {g.name} left outputs unchanged"
        net.load_state_dict(state)
        # The same permutation done properly is invisible.
        permute_group(net, g.name, perm)
        _assert_same(before, _outputs(net, x), f"{arch}: group {g.name}")
        net.load_state_dict(state)


def test_permute_group_rejects_non_permutations():
    spec, net, _ = make_net("dnn-s", 0.25)
    n = spec.group("fc1").units
    with pytest.raises(ValueError):
        permute_group(net, "fc1", torch.zeros(n, dtype=torch.long))
    with pytest.raises(ValueError):
        permute_group(net, "fc1", torch.arange(n - 1))


# ---------------------------------------------------------------------------------------
# cost model
# ---------------------------------------------------------------------------------------
def test_full_macs_match_reds():
    def full(arch):
        s = build_spec(arch)
        return cost(s, s.full_widths()).macs

    assert full("dnn-s") == 79_200
    for arch, anchor in ANCHORS.items():
        assert abs(full(arch) - anchor) <= 0.03 * anchor, (arch, full(arch), anchor)


def _independent_costs(model: nn.Sequential, input_shape) -> tuple[int, int, int]:
    """(MACs, params, arena bytes) of a plain model, counted without the cost model.

    MACs: FlopCounterMode counts 2 flops per multiply-accumulate of conv and mm/addmm
    (bias adds, pooling, batch norm and activations are not counted, which is the cost
    model's convention too), so MACs = flops / 2 at batch 1.
    Params: numel of every conv/linear weight and bias, plus 2 per batch-norm channel
    (scale and shift after folding; running statistics are not parameters).
    Arena: float32, two live buffers: max over non-in-place layers (conv, linear, pools)
    of input numel + output numel, and at least the network input. A ZeroPad2d is treated
    as part of the conv that follows it (the cost model and the runtimes pad inside the
    conv), so pad modules are not layers of their own and that conv's input is the
    *unpadded* tensor, i.e. the pad's input. Symmetric pads sit inside nn.Conv2d, whose
    hook input is already unpadded."""
    x = torch.randn(1, *input_shape)
    with FlopCounterMode(display=False) as fc, torch.no_grad():
        model(x)
    macs2 = fc.get_total_flops()
    assert macs2 % 2 == 0
    # only conv and matmul ops were counted (no pooling, batch norm or elementwise ops)
    counted = {str(op).split(".")[1] for op in fc.get_flop_counts()["Global"]}
    assert counted <= {"convolution", "addmm", "mm"}, counted
    params = 0
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            params += m.weight.numel() + (m.bias.numel() if m.bias is not None else 0)
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            params += 2 * m.num_features
    live = [x.numel()]
    pending = {}
    mods = list(model.layers if isinstance(model, Residual) else model)
    adds = model.adds if isinstance(model, Residual) else {}
    sizes = {}  # module index -> numel of its output

    def pad_hook(m, inp, out):
        pending["in"] = inp[0].numel()

    def hook(m, inp, out):
        n_in = pending.pop("in", None) if isinstance(m, nn.Conv2d) else None
        live.append((n_in if n_in is not None else inp[0].numel()) + out.numel())

    def size_hook(i):
        return lambda m, inp, out: sizes.__setitem__(i, out.numel())

    handles = []
    for i, m in enumerate(mods):
        handles.append(m.register_forward_hook(size_hook(i)))
        if isinstance(m, nn.ZeroPad2d):
            handles.append(m.register_forward_hook(pad_hook))
        elif isinstance(m, (nn.Conv2d, nn.Linear, nn.AvgPool2d, nn.MaxPool2d)):
            handles.append(m.register_forward_hook(hook))
        else:  # everything else in these models runs in place (an add: an Identity here)
            assert isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d, nn.ReLU, nn.LeakyReLU, nn.Flatten, nn.Identity)), m
    with torch.no_grad():
        model(x)
    for h in handles:
        h.remove()
    assert not pending, "a ZeroPad2d not followed by a conv"
    # outputs kept for a residual add: live from the module after their source to the add
    kept = [sum(sizes[s] for a, s in adds.items() if s < i <= a) for i in range(len(mods))]
    return macs2 // 2, params, 4 * (max(live) + max(kept, default=0))


@pytest.mark.parametrize("arch_wm", SIZES, ids=_ids)
def test_cost_model_matches_independent_counts(arch_wm):
    arch, wm = arch_wm
    spec = build_spec(arch, width_mult=wm)
    net = NestedNet(spec)
    rng = random.Random(sum(map(ord, arch)) + int(wm * 100))
    vectors = [spec.full_widths(), {g.name: 1 for g in spec.groups}]
    vectors += [random_widths(spec, rng) for _ in range(4)]
    for w in vectors:
        c = cost(spec, w)
        macs, params, arena = _independent_costs(plain_model(net, w), spec.input_shape)
        assert (c.macs, c.params, c.arena_bytes) == (macs, params, arena), (arch, w)
        assert c.weight_bytes == 4 * params
        assert sum(l.macs for l in c.layers) == c.macs


def test_pooling_and_padding_costs_on_a_hand_spec():
    """A spec with a MaxPool, an asymmetric 'same' pad and a stride-2 depthwise conv,
    checked against numbers worked out by hand."""
    spec = Spec("hand", (2, 6, 6), 3, (Group("a", 4), Group("b", 5)), (
        Conv2d("c1", "a", (2, 2), (1, 1), "same"),  # pads (0, 1, 0, 1): 2x6x6 -> 4x6x6
        MaxPool("mp"),  # 4x3x3
        DepthwiseConv2d("dw", (3, 3), (2, 2), "same"),  # 4x2x2
        BatchNorm("bn"), ReLU("r"),
        Conv2d("pw", "b", (1, 1), bias=False),  # 5x2x2
        AvgPool("gap"), Flatten("f"), Dense("fc", 3),
    ))
    c = cost(spec, spec.full_widths())
    assert c.macs == 36 * 4 * 2 * 4 + 4 * 4 * 9 + 4 * 4 * 5 + 5 * 3
    assert c.params == (32 + 4) + (36 + 4) + 8 + 20 + (15 + 3)
    # c1: in 72 + out 144 = 216 floats, the largest
    assert c.arena_bytes == 4 * 216
    net = NestedNet(spec)
    for w in (spec.full_widths(), {"a": 3, "b": 2}):
        c = cost(spec, w)
        assert (c.macs, c.params, c.arena_bytes) == _independent_costs(plain_model(net, w), spec.input_shape)


# ---------------------------------------------------------------------------------------
# spec validation
# ---------------------------------------------------------------------------------------
def _spec(groups, ops, shape=(1, 4, 4), classes=3):
    return Spec("t", shape, classes, tuple(groups), tuple(ops))


def test_valid_tiny_spec_builds():
    s = _spec([Group("h", 5)], [Flatten("f"), Dense("fc", "h"), ReLU("r"), Dense("out", 3)])
    assert [l.name for l in s.layers] == ["f", "fc", "r", "out"]
    assert s.layers[1].in_spatial == 16


@pytest.mark.parametrize("groups, ops, match", [
    ([Group("h", 5)], [Dense("fc", "h"), Flatten("f"), Dense("out", 3)], "Flatten"),
    ([Group("h", 5)], [Conv2d("c", "h", (1, 1)), Dense("out", 3)], "Flatten"),
    ([Group("h", 5)], [Flatten("f"), Dense("fc", "nope"), Dense("out", 3)], "unknown group"),
    ([Group("h", 5)], [Conv2d("c", "h", (1, 1)), DepthwiseConv2d("dw", (3, 3)),
                       Conv2d("c2", "h", (1, 1)), Flatten("f"), Dense("out", 3)], "produced twice"),
    ([Group("h", 5), Group("h", 4)], [Flatten("f"), Dense("fc", "h"), Dense("out", 3)], "duplicate"),
    ([Group("h", 5), Group("u", 4)], [Flatten("f"), Dense("fc", "h"), Dense("out", 3)], "never produced"),
    ([Group("h", 5)], [Flatten("f"), Dense("fc", "h"), Dense("out", 4)], "last layer"),
    ([Group("h", 5)], [Conv2d("c", "h", (5, 5)), Flatten("f"), Dense("out", 3)], "kernel larger"),
    ([Group("h", 5)], [Flatten("f"), Dense("fc", "h"), Dense("fc", 3)], "repeated"),
    ([Group("h", 5)], [Flatten("f"), Conv2d("c", "h", (1, 1)), Dense("out", 3)], "spatial"),
])
def test_spec_validation_errors(groups, ops, match):
    with pytest.raises(ValueError, match=match):
        _spec(groups, ops)


def test_check_widths_errors():
    s = build_spec("dnn-s", width_mult=0.25)
    w = s.full_widths()
    with pytest.raises(ValueError):
        s.check_widths({**w, "fc1": 0})
    with pytest.raises(ValueError):
        s.check_widths({**w, "fc1": s.group("fc1").units + 1})
    with pytest.raises(ValueError):
        s.check_widths({k: v for k, v in w.items() if k != "fc2"})
    with pytest.raises(ValueError):
        s.check_widths({**w, "extra": 1})
