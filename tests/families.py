"""Families for tests, built directly (no data, no training), reusable by any test module.

`make_family(tmp_path, arch, width_mult, budgets)` writes a real family folder
(`family.json` + `weights.safetensors`, through `reds.family.save`) whose network has
seeded random weights, one batch-norm state per submodel with *calibrated* running
statistics (so activations keep unit scale through deep nets and outputs depend on the
input) and random affine parameters, and nested width vectors that shrink each group by
its own factor (so no two groups share a width by accident). With `depth=True` smaller
submodels also skip more of the spec's skippable blocks (`depth_widths`).
"""
from __future__ import annotations

import math
from pathlib import Path

import torch

from reds.family import Family, Submodel, save
from reds.ir.archs import build_spec, get_arch
from reds.ir.cost import cost
from reds.ir.spec import BatchNorm, Spec
from reds.nn.nested import NestedNet

BUDGETS = (0.25, 0.5, 1.0)
# A residual network from an architecture file (its adds tie groups across blocks): the
# export and runtime tests run it with the built-in architectures.
RESIDUAL = str(Path(__file__).resolve().parent.parent / "examples" / "mobilenetv2-tiny.yaml")


def arch_id(arch: str) -> str:
    return Path(arch).stem
VAR_FLOOR = 0.1


def nested_widths(spec: Spec, budgets, gen: torch.Generator) -> list[dict[str, int]]:
    """One width vector per budget (ascending), nested, the largest at full width when
    the last budget is 1. Each group shrinks as budget**(0.5 * f) with its own f."""
    factors = {g.name: 0.6 + 0.8 * float(torch.rand((), generator=gen)) for g in spec.groups}
    out = []
    for b in sorted(budgets):
        w = {}
        for g in spec.groups:
            u = math.ceil(g.units * b ** (0.5 * factors[g.name]))
            w[g.name] = max(min(g.min_units, g.units), min(g.units, u))
        if out:  # nested even where ceil and clamping tie
            w = {k: max(v, out[-1][k]) for k, v in w.items()}
        out.append(w)
    return out


def depth_widths(spec: Spec, widths: list[dict[str, int]]) -> list[dict[str, int]]:
    """`widths` (ascending, nested) with nested depth: of K submodels, submodel k skips the
    first ceil(B (K-1-k) / K) of the B skippable blocks (the largest skips none, and a block
    that runs in submodel k runs in every larger one). A skipped block's alias group takes
    its input group's width; the widths stay nested."""
    K, B = len(widths), len(spec.blocks)
    out = []
    for k, w in enumerate(widths):
        skip = {b.name for b in spec.blocks[:math.ceil(B * (K - 1 - k) / K)]}
        w = {g: max(v, out[-1][g]) for g, v in w.items()} if out else dict(w)
        for b in spec.blocks:  # in order: a block's input group may be the alias of the one before
            if b.name in skip:
                w[b.name] = 0
                if b.alias:
                    w[b.alias] = w[b.in_group]
        out.append(w)
    return out


def make_net(spec: Spec, widths: list[dict[str, int]], seed: int = 0) -> NestedNet:
    """A NestedNet with seeded weights and one calibrated, randomised BN state per width vector."""
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    net = NestedNet(spec, num_bn=len(widths))
    with torch.no_grad():  # He scale for hidden layers (PyTorch's default init shrinks the signal 3x per layer)
        for layer in spec.layers[:-1]:
            if layer.name in net.layers and not isinstance(layer.op, BatchNorm):
                net.layers[layer.name].weight.mul_(6 ** 0.5)
    net.bn_momentum = None  # cumulative average: the statistics of the calibration batches
    net.train()
    with torch.no_grad():
        for k, w in enumerate(widths):
            net(torch.randn(24, *spec.input_shape, generator=gen), w, bn=k)
        for layer in spec.layers:
            if isinstance(layer.op, BatchNorm):
                for s in net.layers[layer.name]:
                    # A channel of near-zero variance (MobileNet's last depthwise conv sees a
                    # 1x1 map: weight * x) makes BN a 50x amplifier of rounding noise, beyond
                    # what two float32 implementations agree on; trained nets avoid it.
                    s.running_var.clamp_(min=VAR_FLOOR)
                    s.weight.copy_(torch.rand(s.weight.shape, generator=gen) + 0.5)
                    s.bias.copy_(0.2 * torch.randn(s.bias.shape, generator=gen))
    return net.eval()


def make_family(tmp_path, arch: str, width_mult: float = 0.25, budgets=BUDGETS, seed: int = 0,
                name: str | None = None, input_norm: dict | None = None, frontend: dict | None = None,
                depth: bool = False) -> Path:
    """Write a family of `arch` at `width_mult` with one submodel per budget; return its folder.
    input_norm, frontend: the family's input normalisation and front end (reds.ir.inputs),
    recorded as training would. depth: smaller submodels skip more blocks (depth_widths)."""
    spec = build_spec(arch, width_mult=width_mult)
    gen = torch.Generator().manual_seed(seed + 1)
    widths = nested_widths(spec, budgets, gen)
    if depth:
        if not spec.blocks:
            raise ValueError(f"{spec.name} has no skippable blocks")
        widths = depth_widths(spec, widths)
    net = make_net(spec, widths, seed)
    subs = []
    for b, w in zip(sorted(budgets), widths):
        c = cost(spec, w)
        subs.append(Submodel(budget=b, widths=w, macs=c.macs, params=c.params,
                             weight_bytes=c.weight_bytes, arena_bytes=c.arena_bytes))
    a = get_arch(arch)  # a built-in name, or an architecture file
    fam = Family(arch=a.name, architecture=a.doc, dataset=a.default_dataset, input_shape=list(spec.input_shape),
                 num_classes=spec.num_classes,
                 groups=[{"name": g.name, "units": g.units} for g in spec.groups],
                 submodels=subs, knapsack={"mode": "test"}, training={"seed": seed},
                 width_mult=width_mult, input_norm=input_norm, frontend=frontend)
    out = Path(tmp_path) / (name or f"family-{a.name}@{width_mult:g}" + ("-depth" if depth else ""))
    save(out, fam, net)
    return out


_SHARED: dict[tuple, Path] = {}


def shared_family(tmp_path_factory, arch: str, width_mult: float = 0.25, budgets=BUDGETS, seed: int = 0,
                  depth: bool = False) -> Path:
    """`make_family` once per test process and arguments: for tests that only read it."""
    key = (arch, width_mult, tuple(budgets), seed, depth)
    if key not in _SHARED:
        _SHARED[key] = make_family(tmp_path_factory.mktemp("family"), arch, width_mult, budgets, seed, depth=depth)
    return _SHARED[key]


def random_inputs(shape, n: int, seed: int, spread: float = 1.0):
    """n seeded standard-normal inputs of `shape` (C, H, W) as float32 numpy, times `spread`
    (the int8 tests' calibration and check inputs)."""
    return spread * torch.randn(n, *shape, generator=torch.Generator().manual_seed(seed)).numpy()
