"""What every exporter reads: the opened family, the command line, the ops check.

Exporters get a `Source` and never open the family folder themselves, so all of them
name the same family (by its hash) in their provenance.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

import torch

from .. import __version__
from ..errors import RedsError
from ..family import Family, OpenFamily
from ..ir.spec import Spec
from ..nn.nested import NestedNet

if TYPE_CHECKING:
    from ..quant.reference import QuantFamily


@dataclass
class Source:
    opened: OpenFamily
    command: str

    @cached_property
    def quant(self) -> QuantFamily | None:
        """The int8 tables of an int8 family (reds quantize's output), or None for a float one."""
        from .. import quant

        return quant.open(self.opened.dir) if quant.is_int8(self.opened.dir) else None

    @property
    def family(self) -> Family:
        return self.opened.manifest

    @property
    def net(self) -> NestedNet:
        return self.opened.net

    @property
    def spec(self) -> Spec:
        return self.opened.spec

    @property
    def hash(self) -> str:
        return self.opened.hash

    @property
    def widths(self) -> list[dict[str, int]]:
        return [s.widths for s in self.family.submodels]

    def check_inputs(self, n: int, seed: int) -> torch.Tensor:
        """n seeded raw inputs whose normalised values are standard normal (for the
        exporters' self-checks: raw features in the family's own range)."""
        x = torch.randn(n, *self.spec.input_shape, generator=torch.Generator().manual_seed(seed))
        norm = self.opened.input_norm
        return x if norm is None else norm.invert(x)

    def provenance(self) -> list[str]:
        """Lines every exported file starts with (as a comment, or as metadata)."""
        fam = self.family
        lines = [f"reds {__version__}", f"command: {self.command}",
                 f"family: {fam.arch} (spec {self.spec.name}) trained on {fam.dataset}, "
                 f"sha256 {self.hash}",
                 f"groups: {', '.join(f'{g.name}={g.units}' for g in self.spec.groups)}"]
        for k, s in enumerate(fam.submodels):
            lines.append(f"submodel {k}: budget {s.budget:g}, {s.macs:,} MACs, widths "
                         + " ".join(f"{g}={w}" for g, w in s.widths.items()))
        return lines


def check_ops(spec: Spec, fmt: str, supported: set[str]) -> None:
    """Refuse, in one line, a network with an op this format cannot express."""
    for layer in spec.layers:
        if layer.kind not in supported:
            raise RedsError(f"format '{fmt}' cannot express layer {layer.name} ({layer.kind}) of {spec.name}; "
                            f"it supports: {', '.join(sorted(supported))}")


def steps(items, desc: str):
    """items with a progress bar (on a terminal only: tqdm stays silent in pipes and logs)."""
    import sys

    from tqdm import tqdm

    return tqdm(items, desc=desc, unit="submodel", leave=False, file=sys.stderr, disable=None)
