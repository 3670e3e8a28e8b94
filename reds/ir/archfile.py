"""Architecture files: a network as a list of ops in JSON or YAML; unit groups are inferred.

The schema (version 1; `docs/architecture-files.md` has it with examples):

    format: reds-arch            # required, exactly this
    version: 1
    name: my-cnn                 # letters, digits, - _ . @
    description: one line        # optional
    default_dataset: fmnist      # optional: what `reds arch` shows without --dataset
    kws_stride_ms: 20            # optional: MFCC stride on keyword-spotting data (20: 49x10)
    min_units: 2                 # optional: the fewest units any group keeps (default 2)
    skippable:                   # optional: the blocks a submodel may skip (elastic depth);
      - {name: b2, first: dw2, last: act_pw2}   # absent: inferred (see Spec.blocks), []: none
    ops:                         # in order; the input shape and classes come from the data
      - {op: conv2d, name: conv1, out: 32, kernel: [3, 3], stride: [1, 1], padding: same, bias: true}
      - {op: batch_norm, name: bn1, eps: 1.0e-5}
      - {op: relu, name: relu1}
      - {op: depthwise_conv2d, name: dw1, kernel: 3, stride: 2, padding: 1}   # or [h, w], [t, b, l, r]
      - {op: leaky_relu, name: act, slope: 0.3}
      - {op: avg_pool, name: pool}             # kernel absent: global average
      - {op: max_pool, name: mp, kernel: 2, stride: 2}
      - {op: add, name: add1, from: bn1}       # adds bn1's output to this op's input
      - {op: flatten, name: flatten}
      - {op: dense, name: logits, out: classes}

Groups are never written: every conv2d or dense with a number as `out` starts a group of
that many units, named after the op (or after `group:`, which only names it); depthwise
convs, batch norms, activations and pools keep the group of their input; an `add` joins
the groups of its two inputs into one (its name is the earlier one's). A group joined to
the input's channels or to the classes keeps its full width. `min_units` on a conv or
dense raises that group's minimum.

`load(path)` reads and checks a file (one RedsError line naming the file and the op for
anything wrong); `to_spec(doc, input_shape, num_classes)` builds the Spec.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

from ..errors import RedsError
from .spec import (Add, AvgPool, BatchNorm, Block, Conv2d, Dense, DepthwiseConv2d, Flatten, Group, LeakyReLU, MaxPool,
                   Op, ReLU, Spec)

FORMAT, VERSION = "reds-arch", 1
SUFFIXES = (".json", ".yaml", ".yml")
TOP_KEYS = {"format", "version", "name", "description", "default_dataset", "kws_stride_ms", "min_units", "ops",
            "skippable"}
# op -> (required keys, optional keys with defaults)
OPS: dict[str, tuple[dict, dict]] = {
    "conv2d": ({"out": None, "kernel": None},
               {"stride": 1, "padding": "valid", "bias": True, "group": None, "min_units": None}),
    "depthwise_conv2d": ({"kernel": None}, {"stride": 1, "padding": "same", "bias": True}),
    "dense": ({"out": None}, {"bias": True, "group": None, "min_units": None}),
    "batch_norm": ({}, {"eps": 1e-5}),
    "relu": ({}, {}),
    "leaky_relu": ({}, {"slope": 0.01}),
    "avg_pool": ({}, {"kernel": None, "stride": None}),
    "max_pool": ({}, {"kernel": 2, "stride": None}),
    "flatten": ({}, {}),
    "add": ({"from": None}, {}),
}
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")


class ArchError(RedsError):
    pass


def _pair(v, what: str) -> tuple[int, int]:
    if isinstance(v, bool):
        raise ArchError(f"{what} must be an integer or a pair of integers, got {v!r}")
    if isinstance(v, int):
        v = [v, v]
    if (not isinstance(v, (list, tuple)) or len(v) != 2
            or not all(isinstance(i, int) and not isinstance(i, bool) and i >= 1 for i in v)):
        raise ArchError(f"{what} must be a positive integer or a pair of them, got {v!r}")
    return int(v[0]), int(v[1])


def _pads(v, label: str) -> tuple[int, int, int, int]:
    """Explicit zero padding: p (all sides), [ph, pw] (PyTorch's), or [top, bottom, left, right]."""
    ok = lambda i: isinstance(i, int) and not isinstance(i, bool) and i >= 0  # noqa: E731
    if ok(v):
        return v, v, v, v
    if isinstance(v, (list, tuple)) and len(v) in (2, 4) and all(ok(i) for i in v):
        return (v[0], v[0], v[1], v[1]) if len(v) == 2 else tuple(v)
    raise ArchError(f"{label}: padding must be 'same', 'valid', a number of zeros, [h, w] or "
                    f"[top, bottom, left, right], got {v!r}")


def check(doc, where: str = "architecture") -> dict:
    """`doc` with every op's defaults filled in, or an ArchError naming what is wrong."""
    if not isinstance(doc, dict):
        raise ArchError(f"{where}: must be a mapping with format, version, name and ops")
    if doc.get("format") != FORMAT:
        raise ArchError(f"{where}: 'format' must be '{FORMAT}' (this is not a reds architecture file)")
    if doc.get("version") != VERSION:
        raise ArchError(f"{where}: version {doc.get('version')!r} is not supported (this reds reads {VERSION})")
    extra = set(doc) - TOP_KEYS
    if extra:
        raise ArchError(f"{where}: unknown key(s) {', '.join(sorted(extra))}; allowed: {', '.join(sorted(TOP_KEYS))}")
    name = doc.get("name")
    if not isinstance(name, str) or not NAME.match(name):
        raise ArchError(f"{where}: 'name' must be 1-64 letters, digits or - _ . @, got {name!r}")
    out = {"format": FORMAT, "version": VERSION, "name": name,
           "description": str(doc.get("description", "")), "min_units": doc.get("min_units", 2),
           "kws_stride_ms": doc.get("kws_stride_ms", 20)}
    for key in ("min_units", "kws_stride_ms"):
        v = out[key]
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ArchError(f"{where}: '{key}' must be a positive integer, got {v!r}")
    if "default_dataset" in doc:
        out["default_dataset"] = str(doc["default_dataset"])
    if "skippable" in doc:
        out["skippable"] = _skippable(doc["skippable"], where)
    ops = doc.get("ops")
    if not isinstance(ops, list) or not ops:
        raise ArchError(f"{where}: 'ops' must be a non-empty list")
    out["ops"] = []
    for i, op in enumerate(ops):
        if not isinstance(op, dict) or not isinstance(op.get("op"), str):
            raise ArchError(f"{where}: ops[{i}] must be a mapping with an 'op' (one of {', '.join(OPS)})")
        kind = op["op"]
        label = f"{where}: ops[{i}] ({op.get('name', kind)})"
        if kind not in OPS:
            raise ArchError(f"{label}: unsupported op '{kind}'; supported: {', '.join(OPS)}")
        required, optional = OPS[kind]
        missing = [k for k in required if k not in op]
        unknown = set(op) - {"op", "name"} - set(required) - set(optional)
        if missing:
            raise ArchError(f"{label}: {kind} needs {', '.join(missing)}")
        if unknown:
            raise ArchError(f"{label}: unknown key(s) {', '.join(sorted(unknown))} for {kind}")
        name = op.get("name")
        if not isinstance(name, str) or not name.isidentifier():
            raise ArchError(f"{label}: 'name' must be an identifier (letters, digits, _), got {name!r}")
        full = {"op": kind, "name": name, **optional, **{k: v for k, v in op.items() if k not in ("op", "name")}}
        _check_values(full, label)
        out["ops"].append(full)
    return out


def _skippable(blocks, where: str) -> list[dict]:
    """The `skippable` list: blocks {name, first, last} a submodel may skip (elastic depth)."""
    if not isinstance(blocks, list):
        raise ArchError(f"{where}: 'skippable' must be a list of {{name, first, last}} (an empty one: no block)")
    out = []
    for i, b in enumerate(blocks):
        if not isinstance(b, dict) or set(b) != {"name", "first", "last"}:
            raise ArchError(f"{where}: skippable[{i}] must be a mapping of exactly name, first and last")
        for key in ("name", "first", "last"):
            if not isinstance(b[key], str) or not b[key].isidentifier():
                raise ArchError(f"{where}: skippable[{i}]'s {key} must be an identifier, got {b[key]!r}")
        out.append(dict(b))
    return out


def _check_values(op: dict, label: str) -> None:
    for key in ("kernel", "stride"):
        if key in op and op[key] is not None:
            op[key] = list(_pair(op[key], f"{label}: {key}"))
    if "out" in op:
        v = op["out"]
        if v != "classes" and (not isinstance(v, int) or isinstance(v, bool) or v < 1):
            raise ArchError(f"{label}: 'out' must be a positive integer or 'classes', got {v!r}")
    if "padding" in op and op["padding"] not in ("same", "valid"):
        op["padding"] = list(_pads(op["padding"], label))
    for key in ("bias",):
        if key in op and not isinstance(op[key], bool):
            raise ArchError(f"{label}: '{key}' must be true or false")
    for key in ("eps", "slope"):
        if key in op and (not isinstance(op[key], (int, float)) or isinstance(op[key], bool) or op[key] < 0):
            raise ArchError(f"{label}: '{key}' must be a number >= 0")
    if op.get("min_units") is not None and (not isinstance(op["min_units"], int) or op["min_units"] < 1):
        raise ArchError(f"{label}: 'min_units' must be a positive integer")
    if op.get("group") is not None and (not isinstance(op["group"], str) or not op["group"].isidentifier()):
        raise ArchError(f"{label}: 'group' must be an identifier")
    if op["op"] == "add" and not isinstance(op["from"], str):
        raise ArchError(f"{label}: 'from' must name an earlier op")


def load(path: str | Path) -> dict:
    """Read an architecture file (JSON, or YAML by its suffix) and check it."""
    p = Path(path)
    try:
        text = p.read_text()
    except FileNotFoundError:
        raise RedsError(f"{p}: architecture file not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise RedsError(f"{p}: cannot read ({getattr(e, 'strerror', None) or e})") from None
    if p.suffix.lower() in (".yaml", ".yml"):
        import yaml

        try:
            doc = yaml.safe_load(text)
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            at = f" at line {mark.line + 1}" if mark is not None else ""
            raise RedsError(f"{p}: not valid YAML{at} ({getattr(e, 'problem', None) or e})") from None
    else:
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as e:
            raise RedsError(f"{p}: not valid JSON (line {e.lineno}: {e.msg})") from None
    return check(doc, str(p))


def dumps(doc: dict) -> str:
    """The file text of a checked document: JSON, one op per line."""
    head = {k: v for k, v in doc.items() if k != "ops"}
    lines = json.dumps(head, indent=2)[:-2] + ',\n  "ops": [\n'
    lines += ",\n".join("    " + json.dumps(op) for op in doc["ops"])
    return lines + "\n  ]\n}\n"


# ---- groups ---------------------------------------------------------------------------
class _Groups:
    """Union-find over channel dimensions: a group name, or a fixed size (an int)."""

    def __init__(self):
        self.parent: dict[str, str | int] = {}
        self.units: dict[str, int] = {}
        self.min_units: dict[str, int] = {}
        self.order: list[str] = []

    def new(self, name: str, units: int, min_units: int, label: str) -> str:
        if name in self.parent:
            raise ArchError(f"{label}: group name '{name}' is used twice")
        self.parent[name], self.units[name], self.min_units[name] = name, units, min_units
        self.order.append(name)
        return name

    def find(self, d):
        while isinstance(d, str) and self.parent[d] != d:
            d = self.parent[d]
        return d

    def join(self, a, b, label: str) -> None:
        a, b = self.find(a), self.find(b)
        if a == b:
            return
        size = lambda d: d if isinstance(d, int) else self.units[d]  # noqa: E731
        if size(a) != size(b):
            raise ArchError(f"{label}: adds tensors of {size(a)} and {size(b)} channels")
        if isinstance(a, int) or isinstance(b, int):  # joined to a fixed size: not prunable
            g, fixed = (b, a) if isinstance(a, int) else (a, b)
            self.parent[g] = fixed
            return
        first, second = sorted((a, b), key=self.order.index)
        self.parent[second] = first
        self.min_units[first] = max(self.min_units[first], self.min_units[second])


def to_spec(doc: dict, input_shape, num_classes: int, where: str | None = None) -> Spec:
    """The Spec of a checked architecture document for this input shape and class count."""
    where = where or doc["name"]
    groups = _Groups()
    dims: dict[str, str | int] = {}  # op name -> channel dim of its output
    ch: str | int = int(input_shape[0])
    for i, op in enumerate(doc["ops"]):
        label = f"{where}: ops[{i}] ({op['name']})"
        if op["op"] in ("conv2d", "dense"):
            if op["out"] == "classes":
                ch = int(num_classes)
            else:
                ch = groups.new(op["group"] or op["name"], op["out"], op["min_units"] or doc["min_units"], label)
        elif op["op"] == "add":
            if op["from"] not in dims:
                raise ArchError(f"{label}: adds '{op['from']}', which is not an earlier op")
            groups.join(dims[op["from"]], ch, label)
        dims[op["name"]] = ch

    def dim(d):
        return groups.find(d)

    built: list[Op] = []
    for op, (name, d) in zip(doc["ops"], dims.items()):
        kind = op["op"]
        k = tuple(op["kernel"]) if op.get("kernel") is not None else None
        s = tuple(op["stride"]) if op.get("stride") is not None else None
        pad = tuple(op["padding"]) if isinstance(op.get("padding"), list) else op.get("padding")
        if kind == "conv2d":
            built.append(Conv2d(name, dim(d), k, s, pad, op["bias"]))
        elif kind == "depthwise_conv2d":
            built.append(DepthwiseConv2d(name, k, s, pad, op["bias"]))
        elif kind == "dense":
            built.append(Dense(name, dim(d), op["bias"]))
        elif kind == "batch_norm":
            built.append(BatchNorm(name, float(op["eps"])))
        elif kind == "relu":
            built.append(ReLU(name))
        elif kind == "leaky_relu":
            built.append(LeakyReLU(name, float(op["slope"])))
        elif kind == "avg_pool":
            built.append(AvgPool(name, k, s))
        elif kind == "max_pool":
            built.append(MaxPool(name, k or (2, 2), s))
        elif kind == "flatten":
            built.append(Flatten(name))
        else:
            built.append(Add(name, op["from"]))
    kept = [g for g in groups.order if groups.find(g) == g]
    specs_groups = tuple(Group(g, groups.units[g], min(groups.min_units[g], groups.units[g])) for g in kept)
    try:
        skippable = (None if "skippable" not in doc
                     else tuple(Block(b["name"], b["first"], b["last"]) for b in doc["skippable"]))
        return Spec(doc["name"], tuple(int(v) for v in input_shape), int(num_classes), specs_groups, tuple(built),
                    skippable)
    except ValueError as e:
        raise ArchError(f"{where}: {e}") from None
