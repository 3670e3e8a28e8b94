"""Float vs int8 test accuracy of every submodel: PyTorch against the integer reference."""
from __future__ import annotations

import numpy as np
import torch


def raw_features(family, x: torch.Tensor) -> np.ndarray:
    """A data set's (normalised) features as the raw ones an int8 family takes."""
    norm = family.input_norm
    return (norm.invert(x) if norm is not None else x).numpy().astype(np.float32)


def calibration_inputs(family, ds, n: int) -> np.ndarray:
    """n training samples (a seeded shuffle), as raw features."""
    gen = torch.Generator().manual_seed(0)
    return np.concatenate([raw_features(family, x) for x, _ in
                           ds.batches("train", 256, shuffle=True, generator=gen, limit=n)])


@torch.no_grad()
def float_vs_int8(family, qf, ds, limit: int | None = None) -> list[dict]:
    """One row per submodel: index, budget, test samples, float and int8 accuracy (%)."""
    batches = list(ds.batches("test", 100, limit=limit))
    n = sum(len(y) for _, y in batches)
    rows = []
    for k, s in enumerate(family.submodels):
        fl = sum(int((family.net(x, s.widths, bn=k).argmax(1) == y).sum()) for x, y in batches)
        q8 = sum(int((torch.from_numpy(qf.run(raw_features(family, x), k)).argmax(1) == y).sum())
                 for x, y in batches)
        rows.append({"index": k, "budget": s.budget, "samples": n, "float_acc": round(100.0 * fl / max(n, 1), 3),
                     "int8_acc": round(100.0 * q8 / max(n, 1), 3)})
    return rows
