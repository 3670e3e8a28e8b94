"""Import a PyTorch model: torch.fx traces an nn.Module into an architecture document.

`import_module(module, input_shape=None)` returns `Imported(doc, state_dict, notes)`: the
architecture document (`reds.ir.archfile`), the module's weights under NestedNet's
state-dict names (`layers.<op>.weight` / `.bias`; batch norms as submodel 0,
`layers.<bn>.0.running_mean`, ...) and notes on what was dropped (dropout).

What it reads: nn.Conv2d (groups 1, or depthwise: groups = in = out channels), nn.Linear,
nn.BatchNorm2d / BatchNorm1d, nn.ReLU / F.relu / torch.relu, nn.LeakyReLU / F.leaky_relu,
nn.AvgPool2d, nn.AdaptiveAvgPool2d(1) / F.adaptive_avg_pool2d(x, 1), x.mean((2, 3)),
nn.MaxPool2d, flattening (nn.Flatten, torch.flatten(x, 1), x.view(x.size(0), -1)),
nn.Dropout and nn.Identity (dropped), and residual adds `x + f(x)`. The network must be a
chain of layers whose only side paths are skips into an add, ending in nn.Linear (its
outputs become the classes). Anything else is refused with one RedsError line naming the
op and the line of the model's source where it sits.

PyTorch pads symmetrically: a conv's padding becomes 'valid' (none), 'same' (stride 1,
odd kernel, padding (k-1)/2: the same values on every input size) or the explicit pads
[top, bottom, left, right] the architecture schema takes, so any zero padding imports.

`read_init(path, spec)` reads such weights back for `reds train --init`, checking every
name and shape against the architecture.
"""
from __future__ import annotations

import hashlib
import operator
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import fx, nn

from ..errors import RedsError

SUPPORTED = ("nn.Conv2d (groups 1 or depthwise), nn.Linear, nn.BatchNorm2d/1d, nn.ReLU, nn.LeakyReLU, "
             "nn.AvgPool2d, nn.AdaptiveAvgPool2d(1), x.mean((2, 3)), nn.MaxPool2d, nn.Flatten, nn.Dropout, "
             "nn.Identity and residual adds x + f(x)")
TORCH_DIR = os.path.dirname(torch.__file__)
DROPOUTS = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.FeatureAlphaDropout)
F_DROPOUTS = (F.dropout, F.dropout1d, F.dropout2d, F.dropout3d, F.alpha_dropout, F.feature_alpha_dropout)
LEAVES = (nn.Conv2d, nn.Linear, nn.BatchNorm1d, nn.BatchNorm2d, nn.ReLU, nn.LeakyReLU, nn.AvgPool2d,
          nn.AdaptiveAvgPool2d, nn.MaxPool2d, nn.Flatten, nn.Identity) + DROPOUTS
KNOWN_FUNCTIONS = (getattr, operator.getitem, operator.add, operator.iadd, torch.add, F.relu, F.relu_, torch.relu,
                   torch.relu_, F.leaky_relu, F.leaky_relu_, F.adaptive_avg_pool2d, F.avg_pool2d, F.max_pool2d,
                   torch.flatten, torch.reshape, torch.mean) + F_DROPOUTS
KNOWN_METHODS = {"size", "contiguous", "clone", "relu", "relu_", "add", "add_", "flatten", "view", "reshape", "mean"}
# an op's ModuleDict key must not shadow an nn.Module attribute
RESERVED = set(dir(nn.ModuleDict()))


class ModelImportError(RedsError):
    pass


class Imported(NamedTuple):
    doc: dict  # the checked architecture document
    state_dict: dict[str, torch.Tensor]  # NestedNet's names, batch norms as submodel 0
    notes: list[str]  # what was dropped or changed, one line each


@dataclass
class _Val:
    """A tensor of the traced network. In-place ops change the object (every alias sees it)."""

    op: str | None  # the op producing it (None: the network's input)
    pos: int  # how many ops the chain held when it was produced
    flat: bool = False
    hw: tuple[int, int] | None = None  # spatial size, when the input shape is known
    spatial: int | None = None  # flat: entries per channel (1 after a dense or a global pool)


class _Tracer(fx.Tracer):
    """Records each node's source line; the layers reds reads are leaves even when subclassed
    (unless the subclass has its own forward)."""

    record_stack_traces = True

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        for base in LEAVES:
            if isinstance(m, base) and type(m).forward is base.forward:
                return True
        return super().is_leaf_module(m, qualname)


def _source_line(text: str | None) -> str | None:
    """'file.py:N' of the innermost frame outside torch in a recorded stack trace."""
    best = None
    for f, line in re.findall(r'File "([^"]+)", line (\d+)', text or ""):
        if not os.path.abspath(f).startswith(TORCH_DIR):
            best = f"{os.path.basename(f)}:{line}"
    return best


def _pair(v) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1]))


def _fn_name(fn) -> str:
    name = getattr(fn, "__name__", None) or repr(fn)
    symbols = {"add": "+", "iadd": "+=", "sub": "-", "mul": "*", "truediv": "/", "matmul": "@", "getitem": "[]",
               "neg": "-x", "pow": "**", "floordiv": "//"}
    if getattr(operator, name, None) is fn:
        return f"operator.{name} ({symbols[name]})" if name in symbols else f"operator.{name}"
    if getattr(F, name, None) is fn:
        return f"F.{name}"
    if getattr(torch, name, None) is fn:
        return f"torch.{name}"
    if name == "fn" and fn is F.max_pool2d:
        return "F.max_pool2d"
    return f"{getattr(fn, '__module__', None) or 'builtins'}.{name}"


def _module_name(m: nn.Module) -> str:
    t = type(m)
    return f"nn.{t.__name__}" if t.__module__.startswith("torch.nn") else f"{t.__module__}.{t.__qualname__}"


def _same_equals(n: int | None, k: int, s: int, p: int) -> bool | None:
    """Whether symmetric padding p equals TensorFlow's 'same' on a size-n dimension (None:
    it depends on n, which is unknown)."""
    if s == 1:
        return k % 2 == 1 and p == (k - 1) // 2
    if n is None:
        return None
    out = -(-n // s)
    total = max((out - 1) * s + k - n, 0)
    return total // 2 == p and (n + 2 * p - k) // s + 1 == out


def _arg(node: fx.Node, i: int, name: str, default=None):
    if len(node.args) > i:
        return node.args[i]
    return node.kwargs.get(name, default)


class _Importer:
    def __init__(self, root: nn.Module, graph: fx.Graph, input_shape):
        self.root, self.graph = root, graph
        self.shape = tuple(int(v) for v in input_shape) if input_shape is not None else None
        self.ops: list[dict] = []
        self.state: dict[str, torch.Tensor] = {}
        self.notes: list[str] = []
        self.vals: dict[fx.Node, _Val] = {}
        self.scalars: dict[fx.Node, str] = {}  # "shape" (a tensor's size()) or "batch" (its size(0))
        self.names: set[str] = set()
        self.weighted: dict[str, str] = {}  # module qualname -> op name: each layer's weights used once
        self.adds: list[tuple[int, int]] = []  # (source index, add index)
        self.add_sources: set[str] = set()
        self.fixed: set[fx.Node] = set()  # forward's arguments after the input, fixed at their defaults

    # ---- helpers --------------------------------------------------------------------
    def where(self, node: fx.Node) -> str:
        return _source_line(node.stack_trace) or type(self.root).__name__

    def what(self, node: fx.Node) -> str:
        if node.op == "call_module":
            return f"{_module_name(self.root.get_submodule(node.target))} (self.{node.target})"
        if node.op == "call_function":
            return _fn_name(node.target)
        if node.op == "call_method":
            return f"Tensor.{node.target}"
        return f"{node.op} {node.target}"

    def refuse(self, node: fx.Node, why: str):
        raise ModelImportError(f"{self.where(node)}: {self.what(node)} {why}")

    def unsupported(self, node: fx.Node, hint: str = ""):
        self.refuse(node, f"is not supported{hint}; reds imports {SUPPORTED}")

    def name(self, base: str) -> str:
        n = re.sub(r"\W", "_", base, flags=re.ASCII).strip("_") or "op"
        if not n[0].isalpha():
            n = "op_" + n
        n, i = n[:60], 1
        cand = n
        while cand in self.names or cand in RESERVED:
            cand, i = f"{n}_{i}", i + 1
        self.names.add(cand)
        return cand

    def tensor(self, node: fx.Node, arg) -> _Val:
        if isinstance(arg, fx.Node) and arg in self.vals:
            return self.vals[arg]
        self.refuse(node, f"needs a tensor of the network, got {arg!r}")

    def current(self, node: fx.Node, v: _Val) -> _Val:
        """v must be the output of the op just before: the chain."""
        if v.pos != len(self.ops):
            src = f"the output of {v.op}" if v.op else "the network's input"
            self.refuse(node, f"reads {src}, not the output of the layer just before it ({self.ops[-1]['name']}): "
                              "reds imports a chain of layers whose only side paths are skips into a residual "
                              "add (x + f(x)), not branches with layers on both sides")
        return v

    def emit(self, node: fx.Node, v: _Val, op: dict, name: str | None = None, **after) -> _Val:
        op = {"op": op.pop("op"), "name": self.name(name or node.name), **op}
        self.ops.append(op)
        return _Val(op["name"], len(self.ops), **{"flat": v.flat, "hw": v.hw, "spatial": v.spatial, **after})

    def set(self, node: fx.Node, new: _Val, inplace_of: _Val | None = None) -> None:
        if inplace_of is not None:  # the input tensor itself now holds the result
            inplace_of.__dict__.update(new.__dict__)
            new = inplace_of
        self.vals[node] = new

    def weights_once(self, node: fx.Node, op_name: str) -> None:
        if node.target in self.weighted:
            self.refuse(node, f"is called a second time (first as {self.weighted[node.target]}): reds gives every "
                              "layer its own weights; use one module per call")
        self.weighted[node.target] = op_name

    # ---- the graph ------------------------------------------------------------------
    def run(self) -> None:
        placeholders = [n for n in self.graph.nodes if n.op == "placeholder"]
        inputs = [n for n in placeholders if not n.args]  # the others are arguments fixed at their defaults
        if len(inputs) != 1:
            raise ModelImportError(f"{type(self.root).__name__}.forward takes {len(inputs)} inputs "
                                   f"({', '.join(n.target for n in inputs)}); reds imports networks of one input")
        for node in self.graph.nodes:  # fx's checks that those arguments keep their values
            if node in placeholders[1:] or (node.op == "call_function" and node.target in (operator.eq, torch._assert)
                                            and all(a in self.fixed for a in node.all_input_nodes)):
                self.fixed.add(node)
        self.scan()
        for node in self.graph.nodes:
            if node in self.fixed:
                continue
            if node.op == "placeholder":
                hw = self.shape[1:] if self.shape else None
                self.vals[node] = _Val(None, 0, hw=hw)
            elif node.op == "output":
                self.output(node)
            elif node.op == "call_module":
                self.module(node, self.root.get_submodule(node.target))
            elif node.op == "call_function":
                self.function(node)
            else:
                self.method(node)

    def scan(self) -> None:
        """Every op of the graph is one reds reads, before its structure is looked at (a
        concatenation is refused as such, not as the branch before it)."""
        for node in self.graph.nodes:
            if node in self.fixed:
                continue
            if node.op == "get_attr":
                self.refuse(node, "uses a parameter or buffer directly (not through a layer); reds imports layers, "
                                  "not free tensors")
            elif node.op == "call_module":
                m = self.root.get_submodule(node.target)
                if isinstance(m, (nn.ReLU6, nn.Hardtanh)):
                    self.refuse(node, "is not supported: ReLU6 (a clipped ReLU) is not one of reds's activations; "
                                      "use nn.ReLU (or nn.LeakyReLU) and fine-tune after importing")
                if not isinstance(m, LEAVES):
                    self.unsupported(node)
            elif node.op == "call_function":
                fn = node.target
                if fn in (F.relu6, F.hardtanh, F.hardtanh_):
                    self.refuse(node, "is not supported: ReLU6 (a clipped ReLU) is not one of reds's activations; "
                                      "use F.relu (or F.leaky_relu) and fine-tune after importing")
                if fn in (torch.cat, torch.concat, torch.stack):
                    self.refuse(node, "is not supported: reds's networks are a chain of layers with residual adds, "
                                      "no concatenation")
                if not any(fn is k for k in KNOWN_FUNCTIONS):
                    self.unsupported(node)
            elif node.op == "call_method" and node.target not in KNOWN_METHODS:
                self.unsupported(node)

    def output(self, node: fx.Node) -> None:
        out = node.args[0]
        if not isinstance(out, fx.Node) or out not in self.vals:
            raise ModelImportError(f"{type(self.root).__name__}.forward returns {type(out).__name__}; reds needs "
                                   "one tensor, the logits")
        v = self.vals[out]
        if not self.ops or v.pos != len(self.ops) or self.ops[-1]["op"] != "dense":
            last = self.ops[-1]["op"] if self.ops else "its input"
            raise ModelImportError(f"{self.where(out)}: the network ends in {last}; reds's last layer is a dense "
                                   "layer (nn.Linear) with one output per class, its logits")
        self.ops[-1]["out"] = "classes"

    # ---- modules ----------------------------------------------------------------------
    def module(self, node: fx.Node, m: nn.Module) -> None:
        if isinstance(m, DROPOUTS):
            self.notes.append(f"{self.where(node)}: dropped {_module_name(m)} (self.{node.target}): it does nothing "
                              "at inference")
            self.vals[node] = self.tensor(node, node.args[0])
            return
        if isinstance(m, (nn.Identity,)):
            self.vals[node] = self.tensor(node, node.args[0])
            return
        if not isinstance(m, LEAVES) or len(node.args) != 1 or node.kwargs:
            self.unsupported(node)
        v = self.current(node, self.tensor(node, node.args[0]))
        if isinstance(m, nn.Conv2d):
            self.set(node, self.conv(node, m, v))
        elif isinstance(m, nn.Linear):
            self.set(node, self.dense(node, m, v))
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            self.set(node, self.batch_norm(node, m, v))
        elif isinstance(m, nn.LeakyReLU):
            new = self.emit(node, v, {"op": "leaky_relu", "slope": float(m.negative_slope)})
            self.set(node, new, v if m.inplace else None)
        elif isinstance(m, nn.ReLU):
            self.set(node, self.emit(node, v, {"op": "relu"}), v if m.inplace else None)
        elif isinstance(m, nn.AdaptiveAvgPool2d):
            size = m.output_size
            if (tuple(size) if isinstance(size, (tuple, list)) else (size, size)) != (1, 1):
                self.refuse(node, f"with output size {m.output_size} is not supported; reds's average pool is "
                                  "global with output size 1, or has a kernel (nn.AvgPool2d)")
            self.set(node, self.global_pool(node, v))
        elif isinstance(m, (nn.AvgPool2d, nn.MaxPool2d)):
            self.set(node, self.pool(node, v, isinstance(m, nn.MaxPool2d), m.kernel_size, m.stride, m.padding,
                                     getattr(m, "dilation", 1), m.ceil_mode,
                                     getattr(m, "divisor_override", None), getattr(m, "return_indices", False)))
        elif isinstance(m, nn.Flatten):
            if m.start_dim != 1 or m.end_dim != -1:
                self.refuse(node, f"flattens dims {m.start_dim}..{m.end_dim}; reds flattens everything but the "
                                  "batch (start_dim=1, end_dim=-1)")
            self.set(node, self.flatten(node, v))
        else:
            self.unsupported(node)

    def conv(self, node, m: nn.Conv2d, v: _Val) -> _Val:
        if v.flat:
            self.refuse(node, "reads a flat tensor; a conv needs a spatial one")
        if _pair(m.dilation) != (1, 1):
            self.refuse(node, f"has dilation {m.dilation}; reds's convs have dilation 1")
        if m.padding_mode != "zeros":
            self.refuse(node, f"pads with '{m.padding_mode}'; reds's convs pad with zeros")
        k, s = _pair(m.kernel_size), _pair(m.stride)
        if m.groups == 1:
            kind = "conv2d"
        elif m.groups == m.in_channels == m.out_channels:
            kind = "depthwise_conv2d"
        else:
            self.refuse(node, f"has groups={m.groups} with {m.in_channels} -> {m.out_channels} channels; reds's "
                              "convs have groups 1, or are depthwise (groups = in = out channels)")
        padding = self.padding(node, m, v.hw, k, s)
        hw = None
        if v.hw is not None:
            if padding == "same":
                hw = tuple(-(-n // si) for n, si in zip(v.hw, s))
            else:
                pads = (0, 0, 0, 0) if padding == "valid" else padding
                hw = ((v.hw[0] + pads[0] + pads[1] - k[0]) // s[0] + 1, (v.hw[1] + pads[2] + pads[3] - k[1]) // s[1] + 1)
            if min(hw) < 1:
                self.refuse(node, f"has a {k[0]}x{k[1]} kernel, larger than its {v.hw[0]}x{v.hw[1]} input")
        op = {"op": kind, **({"out": int(m.out_channels)} if kind == "conv2d" else {}), "kernel": list(k),
              "stride": list(s), "padding": padding, "bias": m.bias is not None}
        new = self.emit(node, v, op, hw=hw)
        self.weights_once(node, new.op)
        self.state[f"layers.{new.op}.weight"] = m.weight
        if m.bias is not None:
            self.state[f"layers.{new.op}.bias"] = m.bias
        return new

    def padding(self, node, m: nn.Conv2d, hw, k, s):
        """'valid', 'same' where it is exactly PyTorch's padding, else PyTorch's own zero pads
        (top, bottom, left, right): the same values on any input size."""
        if isinstance(m.padding, str):
            return m.padding  # PyTorch's 'same' (stride 1) puts the extra pad at the end, as TensorFlow's
        p = _pair(m.padding)
        if p == (0, 0):
            return "valid"
        if all(s[i] == 1 and _same_equals(None, k[i], 1, p[i]) for i in range(2)):
            return "same"
        return [p[0], p[0], p[1], p[1]]

    def dense(self, node, m: nn.Linear, v: _Val) -> _Val:
        if not v.flat:
            self.refuse(node, "reads a spatial tensor; flatten it first (torch.flatten(x, 1) or nn.Flatten())")
        new = self.emit(node, v, {"op": "dense", "out": int(m.out_features), "bias": m.bias is not None},
                        hw=(1, 1), spatial=1)
        self.weights_once(node, new.op)
        self.state[f"layers.{new.op}.weight"] = m.weight
        if m.bias is not None:
            self.state[f"layers.{new.op}.bias"] = m.bias
        return new

    def batch_norm(self, node, m, v: _Val) -> _Val:
        if not m.track_running_stats or m.running_mean is None:
            self.refuse(node, "has track_running_stats=False (it normalises with each batch's own statistics); "
                              "reds's batch norms keep running statistics")
        if isinstance(m, nn.BatchNorm2d) and v.flat:
            self.refuse(node, "reads a flat tensor; use nn.BatchNorm1d after a flatten")
        if isinstance(m, nn.BatchNorm1d):
            if not v.flat:
                self.refuse(node, "reads a spatial tensor; use nn.BatchNorm2d")
            if v.spatial != 1:
                self.refuse(node, "normalises a flattened C x H x W tensor feature by feature; reds's batch norm is "
                                  "per channel: put it after a dense layer or a global pool"
                                  + ("" if v.spatial else " (or pass --input-shape C,H,W if H x W is 1 x 1)"))
        new = self.emit(node, v, {"op": "batch_norm", "eps": float(m.eps)})
        self.weights_once(node, new.op)
        c = m.num_features
        pre = f"layers.{new.op}.0."
        if m.affine:
            self.state[pre + "weight"], self.state[pre + "bias"] = m.weight, m.bias
        else:
            self.state[pre + "weight"], self.state[pre + "bias"] = torch.ones(c), torch.zeros(c)
            self.notes.append(f"{self.where(node)}: {self.what(node)} has affine=False: imported with weight 1 and "
                              "bias 0 (trainable in reds)")
        self.state[pre + "running_mean"], self.state[pre + "running_var"] = m.running_mean, m.running_var
        self.state[pre + "num_batches_tracked"] = (m.num_batches_tracked if m.num_batches_tracked is not None
                                                   else torch.zeros((), dtype=torch.long))
        return new

    def global_pool(self, node, v: _Val, keepdim: bool = True) -> _Val:
        if v.flat:
            self.refuse(node, "reads a flat tensor; a pool needs a spatial one")
        new = self.emit(node, v, {"op": "avg_pool"}, hw=(1, 1))
        if not keepdim:
            new = self.emit(node, new, {"op": "flatten"}, name=new.op + "_flatten", flat=True, spatial=1)
        return new

    def pool(self, node, v: _Val, is_max: bool, kernel, stride, padding, dilation, ceil_mode, divisor,
             indices) -> _Val:
        if v.flat:
            self.refuse(node, "reads a flat tensor; a pool needs a spatial one")
        k = _pair(kernel)
        s = k if stride is None or (isinstance(stride, (list, tuple)) and not stride) else _pair(stride)
        if _pair(padding) != (0, 0):
            self.refuse(node, f"pads by {padding}; reds's pools do not pad")
        if _pair(dilation) != (1, 1):
            self.refuse(node, f"has dilation {dilation}; reds's pools have dilation 1")
        if divisor is not None or indices:
            self.refuse(node, "with divisor_override or return_indices is not supported")
        if ceil_mode and (v.hw is None or any((n - ki) % si for n, ki, si in zip(v.hw, k, s))):
            self.refuse(node, "has ceil_mode=True, which rounds the output size up; reds's pools round down"
                        + ("" if v.hw else " (the same for some input sizes: pass --input-shape C,H,W)"))
        hw = None
        if v.hw is not None:
            hw = tuple((n - ki) // si + 1 for n, ki, si in zip(v.hw, k, s))
            if min(hw) < 1:
                self.refuse(node, f"has a {k[0]}x{k[1]} kernel, larger than its {v.hw[0]}x{v.hw[1]} input")
        return self.emit(node, v, {"op": "max_pool" if is_max else "avg_pool", "kernel": list(k), "stride": list(s)},
                         hw=hw)

    def flatten(self, node, v: _Val) -> _Val:
        if v.flat:  # already (N, F): nothing to do
            return v
        spatial = v.hw[0] * v.hw[1] if v.hw is not None else None
        return self.emit(node, v, {"op": "flatten"}, flat=True, spatial=spatial)

    # ---- functions and methods ----------------------------------------------------------
    def function(self, node: fx.Node) -> None:
        fn = node.target
        if fn is getattr and len(node.args) == 2 and node.args[1] == "shape" and node.args[0] in self.vals:
            self.scalars[node] = "shape"
        elif (fn is operator.getitem and isinstance(node.args[0], fx.Node)
              and self.scalars.get(node.args[0]) == "shape"):
            self.scalars[node] = "batch" if node.args[1] == 0 else "other"
        elif fn in (operator.add, torch.add):
            if _arg(node, 2, "alpha", 1) != 1:
                self.refuse(node, "with alpha != 1 is not supported")
            self.add(node, node.args[0], node.args[1], inplace=False)
        elif fn is operator.iadd:
            self.add(node, node.args[0], node.args[1], inplace=True)
        elif fn in (F.relu, torch.relu, torch.relu_, F.relu_):
            v = self.current(node, self.tensor(node, node.args[0]))
            inplace = fn in (torch.relu_, F.relu_) or bool(_arg(node, 1, "inplace", False))
            self.set(node, self.emit(node, v, {"op": "relu"}), v if inplace else None)
        elif fn in (F.leaky_relu, F.leaky_relu_):
            v = self.current(node, self.tensor(node, node.args[0]))
            inplace = fn is not F.leaky_relu or bool(_arg(node, 2, "inplace", False))
            new = self.emit(node, v, {"op": "leaky_relu", "slope": float(_arg(node, 1, "negative_slope", 0.01))})
            self.set(node, new, v if inplace else None)
        elif fn in F_DROPOUTS:
            self.notes.append(f"{self.where(node)}: dropped {self.what(node)}: it does nothing at inference")
            self.vals[node] = self.tensor(node, node.args[0])
        elif fn is F.adaptive_avg_pool2d:
            size = _arg(node, 1, "output_size")
            if size not in (1, (1, 1), [1, 1]):
                self.refuse(node, f"with output size {size} is not supported; reds's global average pool has "
                                  "output size 1")
            self.set(node, self.global_pool(node, self.current(node, self.tensor(node, node.args[0]))))
        elif fn in (F.avg_pool2d, F.max_pool2d):
            v = self.current(node, self.tensor(node, node.args[0]))
            is_max = fn is F.max_pool2d
            names = (["kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices"] if is_max
                     else ["kernel_size", "stride", "padding", "ceil_mode", "count_include_pad", "divisor_override"])
            a = {n: _arg(node, i + 1, n) for i, n in enumerate(names)}
            if not isinstance(a["kernel_size"], (int, tuple, list)):
                self.refuse(node, "needs a constant kernel size")
            self.set(node, self.pool(node, v, is_max, a["kernel_size"], a["stride"], a["padding"] or 0,
                                     a.get("dilation") or 1, bool(a["ceil_mode"]), a.get("divisor_override"),
                                     bool(a.get("return_indices"))))
        elif fn is torch.flatten:
            self.flatten_call(node, _arg(node, 1, "start_dim", 0), _arg(node, 2, "end_dim", -1))
        elif fn is torch.reshape:
            self.view(node, _arg(node, 1, "shape"))
        elif fn is torch.mean:
            self.mean(node, _arg(node, 1, "dim"), _arg(node, 2, "keepdim", False))
        else:
            self.unsupported(node)

    def method(self, node: fx.Node) -> None:
        name = node.target
        if node.args and isinstance(node.args[0], fx.Node) and node.args[0] in self.scalars:
            self.unsupported(node)
        if name == "size":
            dim = _arg(node, 1, "dim")
            self.scalars[node] = "shape" if dim is None else "batch" if dim == 0 else "other"
        elif name in ("contiguous", "clone"):
            self.vals[node] = self.tensor(node, node.args[0])
        elif name in ("relu", "relu_"):
            v = self.current(node, self.tensor(node, node.args[0]))
            self.set(node, self.emit(node, v, {"op": "relu"}), v if name == "relu_" else None)
        elif name in ("add", "add_"):
            if _arg(node, 2, "alpha", 1) != 1:
                self.refuse(node, "with alpha != 1 is not supported")
            self.add(node, node.args[0], _arg(node, 1, "other"), inplace=name == "add_")
        elif name == "flatten":
            self.flatten_call(node, _arg(node, 1, "start_dim", 0), _arg(node, 2, "end_dim", -1))
        elif name in ("view", "reshape"):
            shape = node.args[1:] if len(node.args) > 2 else _arg(node, 1, "shape")
            self.view(node, shape)
        elif name == "mean":
            self.mean(node, _arg(node, 1, "dim"), _arg(node, 2, "keepdim", False))
        else:
            self.unsupported(node)

    def add(self, node, a, b, inplace: bool) -> None:
        if not (isinstance(a, fx.Node) and a in self.vals and isinstance(b, fx.Node) and b in self.vals):
            self.refuse(node, "adds a constant or a non-tensor; reds's adds are residual: x + f(x) of two tensors")
        va, vb = self.vals[a], self.vals[b]
        if va is vb or va.pos == vb.pos:
            self.refuse(node, "adds a tensor to itself; reds's adds are residual: x + f(x)")
        n = len(self.ops)
        if n not in (va.pos, vb.pos):
            self.current(node, va)
        cur, other = (va, vb) if va.pos == n else (vb, va)
        if other.op is None:
            self.refuse(node, "adds the network's input; a residual add in reds starts at a layer's output")
        src = [o["name"] for o in self.ops].index(other.op)
        if other.op in self.add_sources:
            self.refuse(node, f"adds the output of {other.op} a second time; reds allows one add per skip source")
        for s0, a0 in self.adds:
            if s0 < src < a0:
                self.refuse(node, f"starts its skip at {other.op}, inside the skip of an earlier add that ended "
                                  "later: residual connections must nest")
        new = self.emit(node, cur, {"op": "add", "from": other.op})
        self.adds.append((src, len(self.ops) - 1))
        self.add_sources.add(other.op)
        self.set(node, new, va if inplace else None)

    def flatten_call(self, node, start, end) -> None:
        if start != 1 or end != -1:
            self.refuse(node, f"flattens dims {start}..{end}; reds flattens everything but the batch "
                              "(torch.flatten(x, 1))")
        self.set(node, self.flatten(node, self.current(node, self.tensor(node, node.args[0]))))

    def view(self, node, shape) -> None:
        v = self.current(node, self.tensor(node, node.args[0]))
        shape = list(shape) if isinstance(shape, (list, tuple)) else [shape]
        ok = len(shape) == 2 and (
            (self.scalars.get(shape[0]) == "batch" and shape[1] == -1)
            or (shape[0] == -1 and isinstance(shape[1], int) and shape[1] > 0))
        if not ok:
            self.refuse(node, f"to {tuple(self.scalars.get(s, s) for s in shape)} is not supported; reds reshapes "
                              "only to flatten: x.view(x.size(0), -1)")
        self.set(node, self.flatten(node, v))

    def mean(self, node, dim, keepdim) -> None:
        v = self.current(node, self.tensor(node, node.args[0]))
        dims = {d % 4 for d in dim} if isinstance(dim, (list, tuple)) and all(isinstance(d, int) for d in dim) \
            else None
        if dims != {2, 3} or v.flat:
            self.refuse(node, f"over dims {dim} is not supported; reds's global average pool is x.mean((2, 3))")
        self.set(node, self.global_pool(node, v, keepdim=bool(keepdim)))


def trace(module: nn.Module) -> fx.Graph:
    """The module's fx graph, or one line saying why it cannot be traced (and where)."""
    import inspect

    try:  # arguments after the input that have defaults keep them (forward(x, features=False))
        params = list(inspect.signature(module.forward).parameters.values())[1:]
    except (TypeError, ValueError):
        params = []
    concrete = {q.name: q.default for q in params if q.default is not q.empty}
    try:
        return _Tracer().trace(module, concrete_args=concrete or None)
    except Exception as e:  # noqa: BLE001 -- data-dependent control flow, unsupported Python, ...
        import traceback

        at = None
        for frame in traceback.extract_tb(e.__traceback__):
            if not os.path.abspath(frame.filename).startswith(TORCH_DIR) and \
                    not os.path.abspath(frame.filename).startswith(os.path.dirname(__file__)):
                at = f"{os.path.basename(frame.filename)}:{frame.lineno}"
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise ModelImportError(f"{at + ': ' if at else ''}{type(module).__name__} cannot be traced by torch.fx "
                               f"({type(e).__name__}: {first}); reds imports forward()s without data-dependent "
                               "control flow (no `if` or loop on a tensor's values)") from None


def _doc_name(text: str) -> str:
    n = re.sub(r"[^A-Za-z0-9_.@-]", "-", text).strip("-_.@") or "imported"
    if not n[0].isalnum():
        n = "m" + n
    return n[:64]


def import_module(module: nn.Module, input_shape=None, name: str | None = None) -> Imported:
    """The architecture document and NestedNet weights of `module` (traced in eval mode).

    input_shape (C, H, W): needed to map strided padded convs to 'same', and checked: the
    document's spec for it must give exactly the module's weight shapes."""
    from ..ir import archfile

    was = module.training
    module.eval()
    try:
        graph = trace(module)
        imp = _Importer(module, graph, input_shape)
        imp.run()
    finally:
        module.train(was)
    cls = type(module).__name__
    doc = {"format": archfile.FORMAT, "version": archfile.VERSION, "name": _doc_name(name or cls),
           "description": f"{cls}, imported by reds import-model"
           + (f" for input {','.join(str(v) for v in input_shape)}" if input_shape is not None else ""),
           "ops": imp.ops}
    try:
        doc = archfile.check(doc, doc["name"])
    except RedsError as e:
        raise ModelImportError(f"{cls}: the imported document is not valid ({e})") from None
    state = {}
    for k, t in imp.state.items():
        t = t.detach().to("cpu")
        state[k] = (t.float() if t.is_floating_point() else t).clone().contiguous()
    if input_shape is not None:
        check_shapes(doc, state, input_shape, f"{cls} with input {','.join(str(v) for v in input_shape)}")
    return Imported(doc, state, imp.notes)


def num_classes(doc: dict, state: dict) -> int:
    """The out features of the last dense layer."""
    return int(state[f"layers.{doc['ops'][-1]['name']}.weight"].shape[0])


def check_shapes(doc: dict, state: dict, input_shape, where: str):
    """The Spec of `doc` for this input, if its NestedNet has exactly `state`'s names and shapes."""
    from ..ir.archfile import to_spec
    from .nested import NestedNet

    spec = to_spec(doc, tuple(int(v) for v in input_shape), num_classes(doc, state), where)
    _compare(NestedNet(spec, num_bn=1).state_dict(), state, where)
    return spec


def _compare(expected: dict, got: dict, where: str, owner: str = "the architecture", needs: str = "needs") -> None:
    """RedsError unless `got` has exactly `expected`'s tensor names and shapes."""
    for k, t in expected.items():
        if k not in got:
            raise RedsError(f"{where}: has no tensor {k}, which {owner} {needs} ({list(t.shape)})")
        if tuple(got[k].shape) != tuple(t.shape):
            raise RedsError(f"{where}: tensor {k} has shape {list(got[k].shape)}, but {owner} {needs} "
                            f"{list(t.shape)}")
    extra = sorted(set(got) - set(expected))
    if extra:
        raise RedsError(f"{where}: tensor {extra[0]} has no place in {owner}"
                        + (f" ({len(extra) - 1} more)" if len(extra) > 1 else ""))


def sha256(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_init(path, spec) -> dict[str, torch.Tensor]:
    """`reds train --init`: a safetensors file whose names and shapes are exactly those of
    NestedNet(spec) with one batch-norm state (what `reds import-model` writes)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from .nested import NestedNet

    p = Path(path)
    if not p.is_file():
        raise RedsError(f"{p}: initial weights not found")
    try:
        got = load_file(str(p))
    except (SafetensorError, OSError, ValueError) as e:
        raise RedsError(f"{p}: not a readable safetensors file ({e}); --init reads what `reds import-model` "
                        "writes") from None
    expected = NestedNet(spec, num_bn=1).state_dict()
    _compare(expected, got, f"{p} (--init)")
    return {k: got[k].to(expected[k].dtype) for k in expected}


KEY_ORDER = ("op", "name", "out", "kernel", "stride", "padding", "bias", "eps", "slope", "from")


def file_text(doc: dict) -> str:
    """The architecture file of an imported document: one op per line, without the keys that
    hold their defaults' None (it reads back to the same document)."""
    from ..ir.archfile import dumps

    ops = [{k: op[k] for k in sorted(op, key=lambda k: KEY_ORDER.index(k) if k in KEY_ORDER else 99)
            if op[k] is not None} for op in doc["ops"]]
    head = {k: doc[k] for k in ("format", "version", "name", "description") if k in doc}
    return dumps({**head, "ops": ops})


# ---- the command: a Python file's class, optional weights, two files out ------------------
def load_source(source: str) -> nn.Module:
    """FILE.py:CLASS -> the module, built with no arguments (one line for each way it fails)."""
    import importlib.util
    import inspect
    import sys
    import traceback

    if ":" not in source or source.endswith(":"):
        if Path(source).suffix.lower() in (".pt", ".pth", ".ts", ".ptl"):
            raise RedsError(f"{source}: TorchScript and pickled models are not supported; give the Python source "
                            "of the model as FILE.py:CLASS (and its weights with --weights)")
        raise RedsError(f"{source}: expected FILE.py:CLASS, e.g. models/net.py:Net")
    path, cls_name = source.rsplit(":", 1)
    p = Path(path)
    if not p.is_file():
        raise RedsError(f"{p}: file not found (SOURCE is FILE.py:CLASS)")
    name = "reds_import_" + hashlib.sha256(str(p.resolve()).encode()).hexdigest()[:12]
    spec = importlib.util.spec_from_file_location(name, p)
    if spec is None or spec.loader is None:
        raise RedsError(f"{p}: not a Python file that can be imported")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod  # dataclasses and pickling look the module up
    sys.path.insert(0, str(p.resolve().parent))  # its own imports of files beside it
    try:
        spec.loader.exec_module(mod)
    except Exception as e:  # noqa: BLE001 -- the user's code; one line with where it failed
        frames = [f for f in traceback.extract_tb(e.__traceback__) if Path(f.filename).name == p.name]
        at = f" at line {frames[-1].lineno}" if frames else ""
        raise RedsError(f"{p}: importing it raised {type(e).__name__}{at}: {_first_line(e)}") from None
    finally:
        sys.path.remove(str(p.resolve().parent))
    cls = getattr(mod, cls_name, None)
    if cls is None:
        found = sorted(k for k, v in vars(mod).items() if isinstance(v, type) and issubclass(v, nn.Module)
                       and v.__module__ == name)
        raise RedsError(f"{p}: no class {cls_name}" + (f"; its nn.Module classes: {', '.join(found)}" if found
                                                       else "; it defines no nn.Module class"))
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise RedsError(f"{p}: {cls_name} is not an nn.Module class")
    try:
        params = inspect.signature(cls).parameters.values()
    except (TypeError, ValueError):
        params = []
    needed = [q.name for q in params if q.default is q.empty and q.kind in (q.POSITIONAL_ONLY, q.POSITIONAL_OR_KEYWORD,
                                                                             q.KEYWORD_ONLY)]
    if needed:
        raise RedsError(f"{p}: {cls_name}() needs arguments ({', '.join(needed)}); reds builds it with none: give "
                        "them defaults, or add a subclass that passes them")
    try:
        module = cls()
    except Exception as e:  # noqa: BLE001 -- the user's code: one line
        raise RedsError(f"{p}: {cls_name}() raised {type(e).__name__}: {_first_line(e)}") from None
    return module


def _first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0]


def load_weights(module: nn.Module, path) -> None:
    """Load a state dict file (torch.save'd tensors, weights_only; or safetensors) into module."""
    p = Path(path)
    if not p.is_file():
        raise RedsError(f"{p}: weights file not found")
    if p.suffix.lower() == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            sd = load_file(str(p))
        except (SafetensorError, OSError, ValueError) as e:
            raise RedsError(f"{p}: not a readable safetensors file ({_first_line(e)})") from None
    else:
        import pickle

        try:
            sd = torch.load(p, map_location="cpu", weights_only=True)
        except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError) as e:
            raise RedsError(f"{p}: cannot be read as tensors with weights_only=True ({_first_line(e)[:160]}); "
                            "save the model's state dict: torch.save(model.state_dict(), FILE)") from None
    if isinstance(sd, dict) and isinstance(sd.get("state_dict"), dict):
        sd = sd["state_dict"]
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise RedsError(f"{p}: not a state dict (a dict of tensors); save it with "
                        "torch.save(model.state_dict(), FILE)")
    _compare(module.state_dict(), sd, str(p), type(module).__name__, "holds")
    module.load_state_dict(sd)


def import_files(source: str, out, weights=None, input_shape=None, name: str | None = None) -> dict:
    """`reds import-model`: write OUT (the architecture) and OUT's .safetensors (the weights)."""
    from safetensors.torch import save_file

    from ..staging import atomic_write
    from ..ir.cost import cost

    out = Path(out)
    if out.suffix.lower() != ".json":
        raise RedsError(f"{out}: the architecture file must end in .json")
    module = load_source(source)
    if weights:
        load_weights(module, weights)
    imp = import_module(module, input_shape, name=name)
    summary = {"arch": str(out), "weights": str(out.with_suffix(".safetensors")), "name": imp.doc["name"],
               "ops": len(imp.doc["ops"]), "notes": imp.notes, "tensors": len(imp.state_dict),
               "params": sum(t.numel() for k, t in imp.state_dict.items() if not k.endswith("num_batches_tracked")),
               "num_classes": num_classes(imp.doc, imp.state_dict), "from_weights": str(weights) if weights else None,
               "kinds": {}}
    for op in imp.doc["ops"]:
        summary["kinds"][op["op"]] = summary["kinds"].get(op["op"], 0) + 1
    if input_shape is not None:
        spec = check_shapes(imp.doc, imp.state_dict, input_shape, imp.doc["name"])
        summary["groups"] = [g.name for g in spec.groups]
        summary["macs"] = cost(spec, spec.full_widths()).macs
    out.parent.mkdir(parents=True, exist_ok=True)
    text = file_text(imp.doc)
    atomic_write(Path(summary["weights"]), lambda p: save_file(imp.state_dict, str(p),
                                                               metadata={"format": "reds-init", "arch": imp.doc["name"]}))
    atomic_write(out, lambda p: p.write_text(text))
    return summary
