"""The family artifact: `DIR/family.json` (the manifest) + `DIR/weights.safetensors`.

One versioned schema, validated on load; loading never runs code (JSON and safetensors,
no pickle). Files are written to a temporary name and renamed, so a crash never leaves
half a family.

`open(dir)` is how every layer above reads a family: the manifest is parsed and checked
once; the weights file is read once, on first use, for both the hash that names the
family in exports and the nested network. Export, build, bench and serve take the
opened family, never a path.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

from safetensors import SafetensorError
from safetensors.torch import load as load_tensors, save_file

from . import __version__
from .errors import RedsError
from .ir.archs import build_spec
from .ir.spec import Spec
from .nn.nested import NestedNet

FORMAT = "reds-family"
VERSION = 1
MANIFEST = "family.json"
WEIGHTS = "weights.safetensors"


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
    reds_version: str = __version__
    format: str = FORMAT
    version: int = VERSION

    def spec(self) -> Spec:
        return build_spec(self.arch, tuple(self.input_shape), self.num_classes, width_mult=self.width_mult)

    def to_json(self) -> dict:
        d = asdict(self)
        head = {k: d.pop(k) for k in ("format", "version", "reds_version")}
        return {**head, **d}


def atomic_write(path: Path, write) -> None:
    """write(tmp_path) then rename onto path: readers see the old file or the new one."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file the usual mode
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save(out_dir: str | Path, family: Family, net: NestedNet) -> None:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().contiguous().clone() for k, v in net.state_dict().items()}
    atomic_write(out / WEIGHTS, lambda p: save_file(tensors, str(p), metadata={"format": FORMAT}))
    save_manifest(out, family)


def save_manifest(out_dir: str | Path, family: Family) -> None:
    text = json.dumps(family.to_json(), indent=2) + "\n"
    atomic_write(Path(out_dir) / MANIFEST, lambda p: p.write_text(text))


def _bad(path: Path, problem: str, fix: str = "re-create it with `reds train`") -> RedsError:
    return RedsError(f"{path}: {problem}; {fix}")


def read_manifest(family_dir: str | Path) -> Family:
    path = Path(family_dir) / MANIFEST
    if not Path(family_dir).is_dir():
        raise _bad(Path(family_dir), "no such family folder", "pass the --out folder of `reds train`")
    if not path.is_file():
        raise _bad(path, "missing", "pass the --out folder of a finished `reds train`")
    try:
        d = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise _bad(path, f"not valid JSON ({e})") from None
    if not isinstance(d, dict) or d.get("format") != FORMAT:
        raise _bad(path, f"not a reds family (format is {d.get('format') if isinstance(d, dict) else None!r}, "
                         f"expected {FORMAT!r})")
    v = d.get("version")
    if not isinstance(v, int):
        raise _bad(path, "has no integer 'version'")
    if v > VERSION:
        raise _bad(path, f"is format version {v}, newer than this reds reads ({VERSION})", "upgrade reds")
    try:
        subs = [Submodel(**s) for s in d.pop("submodels")]
        fam = Family(submodels=subs, **d)
        spec = fam.spec()
    except (TypeError, KeyError, ValueError, AttributeError, RedsError) as e:
        raise _bad(path, f"has missing or malformed fields ({e})") from None
    if [{"name": g.name, "units": g.units} for g in spec.groups] != [
            {"name": g.get("name"), "units": g.get("units")} for g in fam.groups]:
        raise _bad(path, "its groups do not match its architecture")
    for s in fam.submodels:
        try:
            spec.check_widths(s.widths)
        except ValueError as e:
            raise _bad(path, f"submodel at budget {s.budget}: {e}") from None
    for a, b in zip(fam.submodels, fam.submodels[1:]):
        if any(a.widths[g] > b.widths[g] for g in a.widths):
            raise _bad(path, "submodels are not nested (a smaller budget has a wider group)")
    return fam


class OpenFamily:
    """A family folder, opened once (see `open`)."""

    def __init__(self, folder: Path, manifest: Family):
        self.dir = folder
        self.manifest = manifest
        self.spec = manifest.spec()
        self._weights: bytes | None = None
        self._hash: str | None = None
        self._net: NestedNet | None = None

    @property
    def submodels(self) -> list[Submodel]:
        return self.manifest.submodels

    def _weight_bytes(self) -> bytes:
        if self._weights is None:
            path = self.dir / WEIGHTS
            try:
                self._weights = path.read_bytes()
            except FileNotFoundError:
                raise _bad(path, "missing") from None
            except OSError as e:
                raise _bad(path, f"unreadable ({e.strerror or e})") from None
        return self._weights

    @property
    def hash(self) -> str:
        """sha256 over the manifest and the weights: names this exact family in exports."""
        if self._hash is None:
            h = hashlib.sha256()
            h.update((self.dir / MANIFEST).read_bytes())
            h.update(self._weight_bytes())
            self._hash = h.hexdigest()
        return self._hash

    @property
    def net(self) -> NestedNet:
        """The nested network with every submodel's batch norm, in eval mode."""
        if self._net is None:
            path = self.dir / WEIGHTS
            try:
                tensors = load_tensors(self._weight_bytes())
            except (SafetensorError, ValueError) as e:
                raise _bad(path, f"unreadable ({e})") from None
            net = NestedNet(self.spec, num_bn=len(self.submodels))
            expected = net.state_dict()
            if set(tensors) != set(expected) or any(tensors[k].shape != expected[k].shape for k in expected):
                raise _bad(path, "does not hold this family's tensors (names or shapes differ)")
            net.load_state_dict(tensors)
            self._net = net.eval()
        return self._net


def open(family_dir: str | Path) -> OpenFamily:  # noqa: A001 (reds.family.open, as in gzip.open)
    """The family in `family_dir`, its manifest validated; weights read on first use."""
    folder = Path(family_dir)
    return OpenFamily(folder, read_manifest(folder))


def load(family_dir: str | Path) -> tuple[Family, NestedNet]:
    """The manifest and the nested network (eval mode), for code that wants both now."""
    fam = open(family_dir)
    return fam.manifest, fam.net
