"""`family.json`: the schema of a family's manifest, and the one validator every reader goes through.

A manifest is plain data that anyone can edit, so nothing in it is trusted that reds can
check: types (an int is never a bool or a string), ranges, the architecture and its unit
groups, every submodel's widths (present, whole numbers within the group, nested, the
budgets distinct and increasing), and every derived number (MACs, params, weight and arena
bytes) recomputed from the spec and refused when it differs. Strings are short and
printable. The file is at most MAX_BYTES, its JSON at most MAX_DEPTH deep, NaN and
Infinity refused. Version 2 records the sha256 of `weights.safetensors` (checked when the
weights are read); version 3 also the architecture document itself (`reds.ir.archfile`),
so a family of a user's own network is complete without its file. Versions 1 and 2 (the
built-in architectures by name) are still read.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass, field

from . import __version__
from .errors import RedsError
from .ir import archfile
from .ir.archs import ARCHS, build_spec, from_doc
from .ir.cost import cost
from .ir.inputs import InputNorm, MfccFrontEnd
from .ir.spec import Spec

FORMAT = "reds-family"
VERSION = 3
MAX_BYTES = 1 << 20  # a 32-submodel family of the largest architecture takes a few KB
MAX_DEPTH = 16  # the schema nests 4 deep
MAX_SUBMODELS = 256
MAX_TEXT = 200  # characters in any string but the free-form training record
TEXT = re.compile(r"[\x20-\x7e]*")  # printable ASCII: what may reach generated files


@dataclass
class Submodel:
    budget: float
    widths: dict[str, int]
    macs: int
    params: int
    weight_bytes: int
    arena_bytes: int
    accuracy: float | None = None  # test set, %
    val_accuracy: float | None = None  # validation set, %
    scratch_accuracy: float | None = None  # the same widths trained alone (test set, %)


@dataclass
class Family:
    arch: str
    dataset: str
    input_shape: list[int]
    num_classes: int
    groups: list[dict]
    submodels: list[Submodel]
    knapsack: dict
    training: dict
    width_mult: float = 1.0
    classes: list[str] = field(default_factory=list)
    weights_sha256: str | None = None  # of weights.safetensors (version 2)
    architecture: dict | None = None  # the architecture document (version 3)
    input_norm: dict | None = None  # raw features -> network input (reds.ir.inputs), if any
    frontend: dict | None = None  # what makes the raw features from samples (reds.ir.inputs), if known
    reds_version: str = __version__
    format: str = FORMAT
    version: int = VERSION

    def __post_init__(self):
        if self.architecture is None and self.version >= 3 and self.arch in ARCHS:
            self.architecture = ARCHS[self.arch].doc  # a built-in: its shipped document

    def spec(self) -> Spec:
        arch = from_doc(self.architecture) if self.architecture is not None else self.arch
        return build_spec(arch, tuple(self.input_shape), self.num_classes, width_mult=self.width_mult)

    def to_json(self) -> dict:
        d = asdict(self)
        head = {k: d.pop(k) for k in ("format", "version", "reds_version")}
        return {**head, **d}


class Invalid(ValueError):
    """What is wrong with a manifest; the reader adds the path, and `fix` (if any) or its own."""

    def __init__(self, problem: str, fix: str | None = None):
        super().__init__(problem)
        self.fix = fix


# ---- the pieces -------------------------------------------------------------------------------
def _int(v, what: str, lo: int, hi: int) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise Invalid(f"{what} must be a whole number, got {v!r:.40}")
    if not lo <= v <= hi:
        raise Invalid(f"{what} must be in {lo}..{hi}, got {v}")
    return v


def _num(v, what: str, lo: float, hi: float, lo_open: bool = False) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise Invalid(f"{what} must be a number, got {v!r:.40}")
    if v > hi or v < lo or (lo_open and v == lo):
        raise Invalid(f"{what} must be in {'(' if lo_open else '['}{lo:g}, {hi:g}], got {v:g}")
    return float(v)


def _text(v, what: str) -> str:
    if not isinstance(v, str) or len(v) > MAX_TEXT or not TEXT.fullmatch(v):
        raise Invalid(f"{what} must be printable text of at most {MAX_TEXT} characters, got {v!r:.60}")
    return v


def _dict(v, what: str) -> dict:
    if not isinstance(v, dict):
        raise Invalid(f"{what} must be an object, got {type(v).__name__}")
    return v


def _list(v, what: str, lo: int, hi: int) -> list:
    if not isinstance(v, list):
        raise Invalid(f"{what} must be a list, got {type(v).__name__}")
    if not lo <= len(v) <= hi:
        raise Invalid(f"{what} must hold {lo}..{hi} entries, got {len(v)}")
    return v


def _keys(d: dict, what: str, required: set[str], optional: set[str]) -> None:
    missing, extra = required - set(d), set(d) - required - optional
    if missing:
        raise Invalid(f"{what} lacks {', '.join(sorted(missing))}")
    if extra:
        raise Invalid(f"{what} has unknown fields {', '.join(sorted(map(str, extra)))}")


SUBMODEL_FIELDS = {"budget", "widths", "macs", "params", "weight_bytes", "arena_bytes"}
ACCURACIES = ("accuracy", "val_accuracy", "scratch_accuracy")
FAMILY_FIELDS = {"format", "version", "reds_version", "arch", "dataset", "input_shape", "num_classes", "groups",
                 "submodels", "knapsack", "training"}
OPTIONAL_FIELDS = {"width_mult", "classes", "weights_sha256", "architecture", "input_norm", "frontend"}


def _submodel(s, k: int, spec: Spec) -> Submodel:
    what = f"submodel {k}"
    s = _dict(s, what)
    _keys(s, what, SUBMODEL_FIELDS, set(ACCURACIES))
    budget = _num(s["budget"], f"{what}'s budget", 0.0, 1.0, lo_open=True)
    widths = _dict(s["widths"], f"{what}'s widths")
    blocks = [b.name for b in spec.blocks if b.name in widths]  # elastic depth: 1 runs, 0 skipped
    if set(widths) - set(blocks) != set(spec.group_names):
        raise Invalid(f"{what}'s widths must name exactly the groups {spec.group_names}"
                      + (f" (and may name the skippable blocks {[b.name for b in spec.blocks]})" if spec.blocks else ""))
    widths = {**{g.name: _int(widths[g.name], f"{what}'s width of {g.name}", 1, g.units) for g in spec.groups},
              **{b: _int(widths[b], f"{what}'s entry of block {b}", 0, 1) for b in blocks}}
    try:
        c = cost(spec, widths)
    except ValueError as e:
        raise Invalid(f"{what}: {e}") from None
    for name, want in (("macs", c.macs), ("params", c.params), ("weight_bytes", c.weight_bytes),
                       ("arena_bytes", c.arena_bytes)):
        got = _int(s[name], f"{what}'s {name}", 0, 2 ** 63)
        if got != want:
            raise Invalid(f"{what}'s {name} is {got:,}, but its widths give {want:,}")
    accs = {a: None if s.get(a) is None else _num(s[a], f"{what}'s {a}", 0.0, 100.0) for a in ACCURACIES}
    return Submodel(budget, widths, c.macs, c.params, c.weight_bytes, c.arena_bytes, **accs)


def parse(d) -> Family:
    """A Family from a decoded manifest, or Invalid naming the first thing wrong."""
    d = _dict(d, "the manifest")
    _keys(d, "the manifest", FAMILY_FIELDS, OPTIONAL_FIELDS)
    arch = d["arch"]
    doc = d.get("architecture")
    if doc is not None:
        try:
            doc = archfile.check(doc, "its architecture")
        except RedsError as e:
            raise Invalid(str(e)) from None
        _text(doc["description"], "the architecture's description")
        if doc["name"] != arch:
            raise Invalid(f"arch {arch!r:.40} differs from its architecture's name {doc['name']!r:.40}")
    elif d.get("version", 0) >= 3:
        raise Invalid("a version 3 manifest must record its architecture")
    elif arch not in ARCHS:
        raise Invalid(f"arch {arch!r:.40} is not one of {', '.join(ARCHS)}")
    shape = [_int(v, "input_shape", 1, 4096) for v in _list(d["input_shape"], "input_shape", 3, 3)]
    classes_n = _int(d["num_classes"], "num_classes", 1, 65535)
    width_mult = _num(d.get("width_mult", 1.0), "width_mult", 0.0, 1.0, lo_open=True)
    try:
        spec = build_spec(from_doc(doc) if doc is not None else arch, tuple(shape), classes_n, width_mult=width_mult)
    except RedsError as e:
        raise Invalid(str(e)) from None
    groups = [_dict(g, "a group") for g in _list(d["groups"], "groups", 1, 1000)]
    if [(g.get("name"), g.get("units")) for g in groups] != [(g.name, g.units) for g in spec.groups]:
        raise Invalid(f"its groups do not match {spec.name}'s ({', '.join(f'{g.name}={g.units}' for g in spec.groups)})")
    subs = [_submodel(s, k, spec) for k, s in enumerate(_list(d["submodels"], "submodels", 1, MAX_SUBMODELS))]
    for k, (a, b) in enumerate(zip(subs, subs[1:])):
        if not a.budget < b.budget:
            raise Invalid(f"submodels {k} and {k + 1}: budgets must increase ({a.budget:g}, then {b.budget:g})")
        wider = [g for g in spec.group_names if a.widths[g] > b.widths[g]]
        if wider:
            raise Invalid(f"submodels are not nested: submodel {k} is wider than {k + 1} in {', '.join(wider)}")
        deeper = [x.name for x in spec.skipped(b.widths) if x not in spec.skipped(a.widths)]
        if deeper:
            raise Invalid(f"submodels are not nested: submodel {k} runs block(s) {', '.join(deeper)}, "
                          f"which {k + 1} skips")
    classes = [_text(c, "a class name") for c in _list(d.get("classes", []), "classes", 0, classes_n)]
    if classes and len(classes) != classes_n:
        raise Invalid(f"classes names {len(classes)} classes, num_classes is {classes_n}")
    sha = d.get("weights_sha256")
    if sha is not None and not (isinstance(sha, str) and re.fullmatch(r"[0-9a-f]{64}", sha)):
        raise Invalid("weights_sha256 must be 64 lowercase hex digits")
    version = d["version"]
    if version >= 2 and sha is None:
        raise Invalid("a version 2 manifest must record weights_sha256")
    norm = d.get("input_norm")
    if norm is not None:
        try:
            parsed = InputNorm.from_json(norm)
            parsed.check(spec.input_shape)
        except ValueError as e:
            raise Invalid(str(e)) from None
        norm = parsed.to_json()
    frontend = d.get("frontend")
    if frontend is not None:
        try:
            MfccFrontEnd.from_json(frontend).check(spec.input_shape)
        except ValueError as e:
            raise Invalid(str(e)) from None
    training = _dict(d["training"], "training")
    if training.get("data_dir") is not None and not isinstance(training["data_dir"], str):
        raise Invalid("training.data_dir must be a path (text)")
    if "seed" in training:
        _int(training["seed"], "training.seed", -2 ** 63, 2 ** 63)
    return Family(arch=arch, dataset=_text(d["dataset"], "dataset"), input_shape=shape, num_classes=classes_n,
                  groups=[{"name": g.name, "units": g.units} for g in spec.groups], submodels=subs,
                  knapsack=_dict(d["knapsack"], "knapsack"), training=training, width_mult=width_mult,
                  classes=classes, weights_sha256=sha, architecture=doc, input_norm=norm, frontend=frontend,
                  reds_version=_text(d["reds_version"], "reds_version"),
                  format=FORMAT, version=version)


def _no_constant(name: str):
    raise Invalid(f"{name} is not a number JSON allows")


def decode(data: bytes) -> Family:
    """Decode and validate the bytes of a family.json, or raise Invalid."""
    if len(data) > MAX_BYTES:
        raise Invalid(f"is {len(data):,} bytes, more than a manifest ever needs ({MAX_BYTES:,})")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise Invalid(f"is not UTF-8 text ({e.reason} at byte {e.start})") from None
    depth = deepest = 0
    for ch in re.sub(r'"(?:[^"\\]|\\.)*"', '""', text):  # nesting outside strings
        if ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    if deepest > MAX_DEPTH:
        raise Invalid(f"nests {deepest} levels deep; a manifest nests at most {MAX_DEPTH}")
    try:
        d = json.loads(text, parse_constant=_no_constant)
    except json.JSONDecodeError as e:
        raise Invalid(f"is not valid JSON ({e})") from None
    if not isinstance(d, dict) or d.get("format") != FORMAT:
        found = d.get("format") if isinstance(d, dict) else None
        raise Invalid(f"is not a reds family (format is {found!r:.40}, expected {FORMAT!r})")
    v = d.get("version")
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise Invalid("has no valid 'version'")
    if v > VERSION:
        raise Invalid(f"is format version {v}, newer than this reds reads ({VERSION})", fix="upgrade reds")
    return parse(d)
