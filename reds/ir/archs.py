"""The architectures: REDS's eight, shipped as architecture files, and any file a user writes.

The built-in ones live in `reds/ir/builtin/<name>.json`, in the format every user file
uses (`reds.ir.archfile`). `get_arch(name_or_path)` returns an `Arch`: a built-in by name,
or the file at a path (`.json`, `.yaml`, `.yml`). Input shape and class count come from the
data set; `Arch.kws_stride_ms` tells a keyword-spotting data set which MFCC stride the
architecture expects (the DNNs read 25x10).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from ..errors import RedsError
from . import archfile
from .inputs import N_MFCC, MfccFrontEnd
from .spec import Spec

BUILTIN_DIR = Path(__file__).with_name("builtin")


@dataclass(frozen=True)
class Arch:
    name: str
    doc: dict  # the checked architecture document

    @property
    def description(self) -> str:
        return self.doc["description"]

    @property
    def default_dataset(self) -> str | None:
        return self.doc.get("default_dataset")

    @property
    def kws_stride_ms(self) -> int:
        return self.doc["kws_stride_ms"]

    def build(self, input_shape, num_classes) -> Spec:
        return archfile.to_spec(self.doc, input_shape, num_classes)


# REDS's order (keyword spotting small to large, then vision): how `--help` lists them
BUILTIN = ("dnn-s", "dnn-l", "cnn-s", "cnn-l", "dscnn-s", "dscnn-l", "dscnn-s-img", "mobilenetv1-025")


def _builtin() -> dict[str, Arch]:
    out = {}
    for name in BUILTIN:
        doc = archfile.load(BUILTIN_DIR / f"{name}.json")
        out[name] = Arch(name, doc)
    return out


ARCHS: dict[str, Arch] = _builtin()


# Shape and classes of each data set, so `reds arch` works without the data on disk (the
# data sets of FROM_DATA, your own folder or npz, have no fixed shape).
DATASET_SHAPES = {
    "fmnist": ((1, 28, 28), 10),
    "cifar10": ((3, 32, 32), 10),
    "speech-commands": ((1, 49, 10), 12),
    "synth-kws": ((1, 49, 10), 12),
}
KWS = ("speech-commands", "synth-kws")
FROM_DATA = ("folder", "npz")  # input shape and classes known only from the data itself


def dataset_shape(arch: str | Arch, dataset: str, words=None) -> tuple[tuple[int, int, int], int]:
    """Input shape and class count of `dataset` as `arch` sees it.

    words: keyword-spotting sets only, the keywords replacing REDS's ten (silence and
    unknown are the other two classes). Your own data sets (folder, npz) have no shape
    without their files: a RedsError says to pass them."""
    if dataset in FROM_DATA:
        name = arch.name if isinstance(arch, Arch) else arch
        raise RedsError(f"the {dataset} data set's input shape and classes come from its files: pass --data-dir "
                        f"(`reds arch {name} --dataset {dataset} --data-dir {'FILE.npz' if dataset == 'npz' else 'DIR'}`)"
                        "; a family trained on it records them (`reds info FAMILY`)")
    if dataset not in DATASET_SHAPES:
        raise RedsError(f"unknown dataset '{dataset}'; choose one of: {', '.join([*DATASET_SHAPES, *FROM_DATA])}")
    shape, classes = DATASET_SHAPES[dataset]
    if dataset in KWS:  # the MFCC front end at the architecture's stride
        shape = (1, MfccFrontEnd(get_arch(arch).kws_stride_ms).frames, N_MFCC)
        if words is not None:  # silence, unknown and the keywords (checked when the data is read)
            classes = 2 + len([w for w in (words.split(",") if isinstance(words, str) else words) if w.strip()])
    elif words is not None:
        raise RedsError(f"--words applies to {' and '.join(KWS)} only, not to {dataset}")
    return shape, classes


def is_file(name: str) -> bool:
    """Whether `name` names an architecture file rather than a built-in architecture."""
    return name not in ARCHS and (Path(name).suffix.lower() in archfile.SUFFIXES or "/" in name)


def get_arch(name: str | Arch) -> Arch:
    """A built-in architecture by name, or the architecture file at a path."""
    if isinstance(name, Arch):
        return name
    if name in ARCHS:
        return ARCHS[name]
    if is_file(name):
        return from_doc(archfile.load(name))
    raise RedsError(f"unknown architecture '{name}'; choose one of: {', '.join(ARCHS)}, "
                    "or pass an architecture file (.json or .yaml)")


def from_doc(doc: dict) -> Arch:
    """The architecture of a checked document (a file's, or the one a family recorded)."""
    return Arch(doc["name"], doc)


def build_spec(arch: str | Arch, input_shape=None, num_classes=None, dataset: str | None = None,
               width_mult: float = 1.0, words=None) -> Spec:
    """The spec of `arch` for a data set (by name; `words`: its keywords, see dataset_shape)
    or an explicit input shape and classes.

    width_mult scales every group's units (at least MIN_UNITS + 2), for quick experiments
    and tests; the spec's name says so (e.g. "dscnn-s@0.25")."""
    a = get_arch(arch)
    if input_shape is None:
        if not (dataset or a.default_dataset):
            raise RedsError(f"{a.name} names no default data set: pass --dataset")
        input_shape, num_classes = dataset_shape(a, dataset or a.default_dataset, words)
    if not 0 < width_mult <= 1:
        raise RedsError(f"--width must be in (0, 1], got {width_mult:g}")
    try:
        spec = a.build(tuple(input_shape), int(num_classes))
        if width_mult != 1.0:
            groups = tuple(replace(g, units=max(g.min_units + 2, round(g.units * width_mult))) for g in spec.groups)
            spec = Spec(f"{spec.name}@{width_mult:g}", spec.input_shape, spec.num_classes, groups, spec.ops,
                        spec.skippable)
        return spec
    except ValueError as e:
        raise RedsError(f"{a.name} does not fit input {tuple(input_shape)}: {e}") from None
