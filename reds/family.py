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
from pathlib import Path

from typing import TYPE_CHECKING

from .errors import RedsError
from .staging import atomic_write
from .manifest import FORMAT, MAX_BYTES, VERSION, Family, Invalid, Submodel, decode

if TYPE_CHECKING:  # torch is imported when weights are read or written, not to read a manifest
    from .nn.nested import NestedNet

MANIFEST = "family.json"
WEIGHTS = "weights.safetensors"
# An int8 family's tables (reds.quant), beside the float weights they came from.
INT8_FILES = ("int8.json", "int8.npz")

__all__ = ["Family", "Submodel", "OpenFamily", "atomic_write", "load", "open", "read_manifest", "save",
           "save_manifest"]


def save(out_dir: str | Path, family: Family, net: NestedNet, keep_version: bool = False) -> None:
    """Write the weights, then the manifest that records their sha256 (this version's
    manifest; keep_version: the family's own, for new weights of an older family)."""
    from safetensors.torch import save_file

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().contiguous().clone() for k, v in net.state_dict().items()}
    atomic_write(out / WEIGHTS, lambda p: save_file(tensors, str(p), metadata={"format": FORMAT}))
    family.weights_sha256 = hashlib.sha256((out / WEIGHTS).read_bytes()).hexdigest()
    if not keep_version:
        family.version = VERSION
    save_manifest(out, family)


def save_manifest(out_dir: str | Path, family: Family) -> None:
    text = json.dumps(family.to_json(), indent=2) + "\n"
    atomic_write(Path(out_dir) / MANIFEST, lambda p: p.write_text(text))


def _bad(path: Path, problem: str, fix: str = "re-create it with `reds train`") -> RedsError:
    return RedsError(f"{path}: {problem}; {fix}")


def read_manifest(family_dir: str | Path) -> Family:
    """The validated manifest of `family_dir` (see `reds.manifest`), or one RedsError line."""
    folder = Path(family_dir)
    path = folder / MANIFEST
    if not folder.is_dir():
        raise _bad(folder, "no such family folder", "pass the --out folder of `reds train`")
    if not path.is_file():
        raise _bad(path, "missing", "pass the --out folder of a finished `reds train`")
    try:
        with path.open("rb") as f:
            data = f.read(MAX_BYTES + 1)  # enough to see it is too long
    except OSError as e:
        raise _bad(path, f"unreadable ({e.strerror or e})", "check its permissions") from None
    try:
        return decode(data)
    except Invalid as e:
        raise _bad(path, str(e), *([e.fix] if e.fix else [])) from None


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
    def arch(self):
        """The family's architecture (`reds.ir.archs.Arch`), from the document it recorded."""
        from .ir.archs import from_doc, get_arch

        doc = self.manifest.architecture
        return from_doc(doc) if doc is not None else get_arch(self.manifest.arch)

    @property
    def input_norm(self):
        """The input normalisation (`reds.ir.inputs.InputNorm`) the family recorded, or None."""
        from .ir.inputs import InputNorm

        d = self.manifest.input_norm
        return InputNorm.from_json(d) if d is not None else None

    def logits(self, x, k: int):
        """Submodel k's logits (torch, eval mode) for *raw* features x (B, C, H, W): the
        family's input normalisation first, as every export applies it."""
        norm = self.input_norm
        if norm is not None:
            x = norm.apply(x)
        return self.net(x, self.submodels[k].widths, bn=k)

    @property
    def submodels(self) -> list[Submodel]:
        return self.manifest.submodels

    def _weight_bytes(self) -> bytes:
        if self._weights is None:
            path = self.dir / WEIGHTS
            try:
                data = path.read_bytes()
            except FileNotFoundError:
                raise _bad(path, "missing") from None
            except OSError as e:
                raise _bad(path, f"unreadable ({e.strerror or e})") from None
            want = self.manifest.weights_sha256
            if want is not None and hashlib.sha256(data).hexdigest() != want:
                raise _bad(path, "does not match the sha256 its family.json records (corrupt, or from another "
                                 "family)")
            self._weights = data
        return self._weights

    @property
    def hash(self) -> str:
        """sha256 over the manifest and the weights (and an int8 family's tables, so its
        firmware is never taken for the float one's): names this exact family in exports."""
        if self._hash is None:
            h = hashlib.sha256()
            h.update((self.dir / MANIFEST).read_bytes())
            h.update(self._weight_bytes())
            if (self.dir / INT8_FILES[0]).is_file():
                for name in INT8_FILES:
                    path = self.dir / name
                    h.update(path.read_bytes() if path.is_file() else b"")
            self._hash = h.hexdigest()
        return self._hash

    def verify(self) -> OpenFamily:
        """Read the weights now (their sha256, their tensors' names and shapes), for commands
        that would not otherwise read them: nothing is shown of a family whose weights are bad."""
        _ = self.net
        return self

    @property
    def net(self) -> NestedNet:
        """The nested network with every submodel's batch norm, in eval mode."""
        if self._net is None:
            from safetensors import SafetensorError
            from safetensors.torch import load as load_tensors

            from .nn.nested import NestedNet

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
