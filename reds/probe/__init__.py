"""`reds probe`: what shrinking does to what a network learned.

Per submodel of a family (and per magnitude-pruned network of the same size): PIEs
(`pies`), the Q-score of the penultimate representation (`qscore`), prediction depth from
k-NN probes at every block's output (`depth`, `points`), per class; the baselines in
`pruning`; orchestration in `runner`, the files in `report`. torch loads on first use.
"""
from __future__ import annotations

_RUN = ("ProbeConfig", "probe", "run")


def __getattr__(name):
    if name in _RUN:
        from . import runner as _run
        return getattr(_run, name)
    raise AttributeError(name)


__all__ = list(_RUN)
