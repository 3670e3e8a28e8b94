"""The update methods, nested: LoRA, DoRA, GaLore, bottleneck adapters, bn-head, full.

Every method adapts all submodels of a family at once and keeps them nested: whatever it
adds is a full-width tensor whose prefix submodel k reads, exactly as it reads the prefix
of the shared weights, so one adapter serves every submodel.

- lora: every conv2d (pointwise included) and dense layer W (rows = output units, columns
  = input units x kernel, the layout of `weight.flatten(1)`) gets W + B A with A (r x
  columns, random) and B (rows x r, zero). Submodel k uses B[:rows_k] A[:, :cols_k], the
  prefix slice of the full delta B A; it runs as a side path, conv(x, A) (r filters of the
  layer's kernel) then a 1x1 B, so the frozen W needs no weight gradient.
- dora: LoRA's direction and a learned magnitude per output unit: W' = m * V / ||V||,
  V = W + B A, the norm over the *full* row (all input units of the full model), m starting
  at ||W||; submodel k reads the prefix of W' (the merge writes W' itself).
- galore: every weight trains; the Adam state of each conv2d / dense weight lives in a
  rank-r projection of its gradient (GaLore: P from the gradient's SVD every `gap` steps,
  update P N(P^T G)); biases, batch norms and depthwise weights get plain Adam.
- adapter: a residual bottleneck h = y + U relu(D y) (1x1 convs C -> r -> C, U zero) on
  the output of every conv2d (the end of each block's pointwise conv), nested on its
  channels: D[:, :c], U[:c].
- bn-head: every submodel's batch-norm scale and shift and the classifier layer.
- full: every weight, plain Adam.
- bn-stats: nothing trains; only the batch-norm statistics are recomputed on the new data
  (the reference every other method starts from: all of them recompute them at the end).

Depthwise convs keep their weights under lora, dora and adapter (9 values per channel:
a rank-r factor of a C x 9 matrix saves nothing worth its cost); galore and full train
them directly. In the new-classes task the classifier is new, so it trains in full under
every method (no LoRA on it).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import RedsError
from ..ir.spec import BatchNorm, Conv2d, Dense, DepthwiseConv2d, Spec
from ..nn.nested import NestedNet
from . import MERGEABLE, METHODS, RANKED  # noqa: F401 (the registries)

# Adam's learning rate per method: the low-rank and head methods move few values and take
# the larger step usual for them; whole-weight methods the smaller one
DEFAULT_LR = {"lora": 3e-3, "dora": 3e-3, "adapter": 3e-3, "bn-head": 3e-3, "galore": 1e-3, "full": 1e-3,
              "bn-stats": 0.0}
GALORE_GAP = 50  # steps between GaLore's subspace updates (its paper: 200 on far longer runs)


def check_method(method: str) -> None:
    if method not in METHODS:
        raise RedsError(f"unknown method '{method}'; choose one of: {', '.join(METHODS)}")


def head_name(spec: Spec) -> str:
    return spec.layers[-1].name


def lora_layers(spec: Spec, new_head: bool = False) -> list:
    """conv2d and dense layers (not depthwise); the classifier too unless it is new."""
    head = head_name(spec)
    return [l for l in spec.layers if isinstance(l.op, (Conv2d, Dense)) and not (new_head and l.name == head)]


def adapter_layers(spec: Spec) -> list:
    """conv2d layers whose output is a unit group (the adapter is nested on its channels)."""
    return [l for l in spec.layers if isinstance(l.op, Conv2d) and isinstance(l.out_ch, str)]


def matrix_shape(spec: Spec, layer) -> tuple[int, int]:
    """(rows, columns) of a conv2d / dense weight as the matrix `weight.flatten(1)`."""
    shape = spec.param_shapes(layer)["weight"]
    return shape[0], math.prod(shape[1:])


def check_rank(spec: Spec, method: str, rank: int, new_head: bool = False) -> None:
    """rank must be at least 1 and at most the smallest size it factors (one line otherwise)."""
    if method not in RANKED:
        return
    if rank <= 0:
        raise RedsError(f"--rank must be at least 1, got {rank}")
    full = spec.full_widths()
    if method == "adapter":
        sizes = [(l.name, spec.size(l.out_ch, full), "channels") for l in adapter_layers(spec)]
    else:
        layers = lora_layers(spec, new_head) if method != "galore" else lora_layers(spec)
        sizes = [(l.name, min(matrix_shape(spec, l)), "x".join(map(str, matrix_shape(spec, l))))
                 for l in layers]
    if not sizes:
        raise RedsError(f"{spec.name} has no layer {method} applies to")
    name, size, what = min(sizes, key=lambda s: s[1])
    if rank > size:
        raise RedsError(f"--rank {rank} exceeds layer {name} ({what}): at most {size} for {spec.name}")


class LoRA(nn.Module):
    """B A on one layer: A (r, *weight.shape[1:]) = r filters of the layer's kernel, B (rows, r).
    dora: also m, the magnitude of each output unit (rows), starting at ||W||."""

    def __init__(self, weight: torch.Tensor, rank: int, dora: bool, gen: torch.Generator | None = None):
        super().__init__()
        a = torch.empty(rank, *weight.shape[1:])
        bound = 1 / math.sqrt(a[0].numel())  # kaiming-uniform(a=sqrt(5)), as LoRA initialises A
        a.uniform_(-bound, bound, generator=gen)
        self.A = nn.Parameter(a)
        self.B = nn.Parameter(torch.zeros(weight.shape[0], rank))
        self.rank = rank
        self.dora = dora
        if dora:
            self.m = nn.Parameter(weight.detach().flatten(1).norm(dim=1).clone())

    def delta(self) -> torch.Tensor:
        """The full-width B A in the weight's shape."""
        return (self.B @ self.A.flatten(1)).view(self.B.shape[0], *self.A.shape[1:])

    def factor(self, weight: torch.Tensor) -> torch.Tensor:
        """DoRA's m / ||W + B A|| per output unit, the norm over the full row."""
        v = weight.flatten(1) + self.B @ self.A.flatten(1)
        return self.m / v.norm(dim=1).clamp(min=1e-12)

    def merged(self, weight: torch.Tensor) -> torch.Tensor:
        w = weight + self.delta()
        if self.dora:
            w = self.factor(weight).view(-1, *[1] * (w.dim() - 1)) * w
        return w


class Adapter(nn.Module):
    """h = y + U relu(D y) on C channels; D (r, C), U (C, r) zero: the identity at first."""

    def __init__(self, channels: int, rank: int, gen: torch.Generator | None = None):
        super().__init__()
        d = torch.empty(rank, channels)
        bound = 1 / math.sqrt(channels)
        d.uniform_(-bound, bound, generator=gen)
        self.D = nn.Parameter(d)
        self.U = nn.Parameter(torch.zeros(channels, rank))

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        c = y.shape[1]
        h = F.relu(F.conv2d(y, self.D[:, :c, None, None]))
        return y + F.conv2d(h, self.U[:c, :, None, None])


class AdaptedNet(nn.Module):
    """A NestedNet with one method's additions; `self(x, widths, bn=k)` runs submodel k as
    NestedNet does, through the adapters where there are some."""

    def __init__(self, net: NestedNet, method: str, rank: int = 4, new_head: bool = False, seed: int = 0):
        super().__init__()
        check_method(method)
        spec = net.spec
        check_rank(spec, method, rank, new_head)
        self.net, self.method, self.rank, self.new_head = net, method, rank, new_head
        gen = torch.Generator().manual_seed(seed)
        self.lora = nn.ModuleDict()
        self.adapters = nn.ModuleDict()
        if method in ("lora", "dora"):
            for l in lora_layers(spec, new_head):
                self.lora[l.name] = LoRA(net.layers[l.name].weight, rank, method == "dora", gen)
        if method == "adapter":
            full = spec.full_widths()
            for l in adapter_layers(spec):
                self.adapters[l.name] = Adapter(spec.size(l.out_ch, full), rank, gen)
        for p in self.parameters():
            p.requires_grad_(False)
        for p in self.trainable():
            p.requires_grad_(True)

    # ---- which values train -----------------------------------------------------------
    def trainable(self) -> list[nn.Parameter]:
        net, spec, m = self.net, self.net.spec, self.method
        head = net.layers[head_name(spec)]
        if m in ("full", "galore"):
            return list(net.parameters())
        out: list[nn.Parameter] = []
        if m == "bn-head":
            out += [p for s in net.bn_states() for p in (s.weight, s.bias)]
            out += list(head.parameters())
            return out
        out += list(self.lora.parameters()) + list(self.adapters.parameters())
        if self.new_head:
            out += list(head.parameters())
        return out

    def matrices(self) -> set[int]:
        """ids of the weights GaLore projects (conv2d and dense weights)."""
        return {id(self.net.layers[l.name].weight) for l in lora_layers(self.net.spec)}

    # ---- forward ------------------------------------------------------------------------
    @property
    def spec(self) -> Spec:
        return self.net.spec

    def forward(self, x: torch.Tensor, widths: dict[str, int] | None = None, bn: int = 0) -> torch.Tensor:
        # NestedNet's layer loop (its residual adds and in-place rules) over this class's `_run`:
        # it reads only `spec` and `_run` of its self
        return NestedNet.forward(self, x, widths, bn)

    def _run(self, layer, x, widths, bn, inplace: bool = True):
        """One layer as NestedNet runs it, LoRA / DoRA where there is one, then its adapter."""
        if layer.name in self.lora:
            x = self._lora(layer, x, widths)
        else:
            x = self.net._run(layer, x, widths, bn, inplace=inplace)
        if layer.name in self.adapters:
            x = self.adapters[layer.name](x)
        return x

    def _lora(self, layer, x, widths):
        spec, op = self.net.spec, layer.op
        p, ad = self.net.layers[layer.name], self.lora[layer.name]
        cin, cout = spec.size(layer.in_ch, widths), spec.size(layer.out_ch, widths)
        if isinstance(op, Conv2d):
            t, b, l, r = layer.pads
            pad = (t, l)
            if t != b or l != r:
                x, pad = F.pad(x, (l, r, t, b)), 0
            y = F.conv2d(x, p.weight[:cout, :cin], None, op.stride, pad)
            z = F.conv2d(x, ad.A[:, :cin], None, op.stride, pad)
            y = y + F.conv2d(z, ad.B[:cout, :, None, None])
            shape = (1, -1, 1, 1)
        else:
            n = cin * layer.in_spatial
            y = F.linear(x, p.weight[:cout, :n]) + F.linear(F.linear(x, ad.A[:, :n]), ad.B[:cout])
            shape = (1, -1)
        if ad.dora:
            y = y * ad.factor(p.weight)[:cout].view(shape)
        if op.bias:
            y = y + p.bias[:cout].view(shape)
        return y

    # ---- merge --------------------------------------------------------------------------
    @torch.no_grad()
    def merged(self) -> NestedNet:
        """A plain NestedNet with every LoRA / DoRA update written into the shared weights."""
        if self.method == "adapter":
            raise RedsError("adapters are a nonlinear branch: they cannot be merged into the weights; "
                            "pass --keep-delta to write them as a delta file")
        out = NestedNet(self.net.spec, num_bn=self.net.num_bn)
        out.load_state_dict(self.net.state_dict())
        for name, ad in self.lora.items():
            out.layers[name].weight.copy_(ad.merged(self.net.layers[name].weight))
        return out.eval()


# ---- GaLore -------------------------------------------------------------------------------
class GaLoreAdam(torch.optim.Optimizer):
    """Adam whose state for the weights in `projected` (ids) lives in a rank-r projection of
    the gradient (Zhao et al., GaLore): G (m x n, the weight as weight.flatten(1)) -> R = P^T G
    (r x n, P the top-r left singular vectors of G, m <= n; else G Q, Q the right ones),
    Adam's moments on R, and the update P N(R) (rank r at most). P is recomputed every `gap`
    steps; every other tensor gets plain Adam."""

    def __init__(self, params, projected: set[int], rank: int, lr: float = 1e-3, betas=(0.9, 0.999),
                 eps: float = 1e-8, gap: int = GALORE_GAP, scale: float = 1.0):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps))
        self.projected, self.rank, self.gap, self.scale = projected, rank, gap, scale

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            b1, b2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                st = self.state[p]
                st["step"] = st.get("step", 0) + 1
                t = st["step"]
                g = p.grad
                low = id(p) in self.projected and min(p.shape[0], p[0].numel()) > self.rank
                if low:
                    g2 = g.reshape(p.shape[0], -1)
                    left = g2.shape[0] <= g2.shape[1]
                    if "P" not in st or (t - 1) % self.gap == 0:
                        u, _, vh = torch.linalg.svd(g2, full_matrices=False)
                        st["P"] = (u[:, :self.rank] if left else vh[:self.rank].T).contiguous()
                    P = st["P"]
                    g = P.T @ g2 if left else g2 @ P
                if "m" not in st:
                    st["m"], st["v"] = torch.zeros_like(g), torch.zeros_like(g)
                m, v = st["m"], st["v"]
                m.mul_(b1).add_(g, alpha=1 - b1)
                v.mul_(b2).addcmul_(g, g, value=1 - b2)
                n = (m / (1 - b1 ** t)) / ((v / (1 - b2 ** t)).sqrt() + group["eps"])
                if low:
                    n = (st["P"] @ n if left else n @ st["P"].T).view_as(p) * self.scale
                p.add_(n, alpha=-group["lr"])


def optimizer(model: AdaptedNet, lr: float):
    params = model.trainable()
    if not params:
        return None
    if model.method == "galore":
        return GaLoreAdam(params, model.matrices(), model.rank, lr=lr)
    return torch.optim.Adam(params, lr=lr)


def is_batch_norm(spec: Spec, name: str) -> bool:
    return any(l.name == name and isinstance(l.op, BatchNorm) for l in spec.layers)


def depthwise_names(spec: Spec) -> list[str]:
    return [l.name for l in spec.layers if isinstance(l.op, DepthwiseConv2d)]
