"""Post-training int8 quantization of a nested family (docs/int8.md is the contract).

    quantize(family_dir, out_dir, calib_x)   # a float family -> an int8 family folder
    qf = open(out_dir)                        # QuantFamily
    qf.run(x, k); qf.logits(x, k)             # the integer reference, int8 / dequantized

Modules, one job each: `ops` (the int8 op definitions), `steps` (which layers form one
int8 step), `calibrate` (per-submodel activation ranges), `fold` (weights, biases and
batch norms -> integer tables), `reference` (the int8 family's files and its integer run).
"""
from __future__ import annotations

import shutil
from pathlib import Path

__all__ = ["QuantFamily", "is_int8", "open", "quantize"]

from ..family import INT8_FILES



def is_int8(folder) -> bool:
    """Whether the family folder holds int8 tables (cheap: no torch, nothing read)."""
    return (Path(folder) / INT8_FILES[0]).is_file()  # int8.json


def __getattr__(name: str):
    """`open` and `QuantFamily` on first use: importing reds.quant.ops needs no torch."""
    if name in ("open", "QuantFamily"):
        from . import reference

        return getattr(reference, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def quantize(family_dir, out_dir, calib_x, qat_epochs: int = 0, data=None, qat_limit: int | None = None,
             log=print) -> QuantFamily:
    """Quantize the family in `family_dir` to int8, calibrated per submodel on `calib_x`
    (float raw features, N x C x H x W, as the family takes them), into `out_dir`: a copy
    of the family folder plus int8.json and int8.npz. out_dir is written whole or not at
    all (a hidden sibling, renamed when complete); it may be absent, empty or an earlier
    int8 family. With qat_epochs > 0, the float weights are first fine-tuned that many
    passes over `data`'s training split (at most qat_limit samples a pass), all submodels
    together, int8 fake-quantized (reds.quant.qat); out_dir then holds the tuned weights
    (its float accuracies cleared: `reds eval` measures them). Returns the opened result."""
    from ..errors import RedsError
    from ..family import open as open_family
    from ..staging import staged
    from . import ops
    from .calibrate import check_inputs, qparams, ranges
    from .fold import fold
    from .reference import FORMAT, INT8_JSON, InputQuant, OutputQuant, QuantFamily, input_axis, open
    from .steps import plan

    src_dir, out = Path(family_dir), Path(out_dir)
    fam = open_family(src_dir)
    if out.resolve() == src_dir.resolve():
        raise RedsError(f"{out}: is the family being quantized; choose another --out")
    x = check_inputs(fam, calib_x)
    fam.verify()
    if qat_epochs > 0:
        from .qat import finetune

        plan(fam.spec, [s.widths for s in fam.submodels])  # refuse what int8 cannot run before training
        finetune(fam, data, x, qat_epochs, limit=qat_limit, log=log)
    steps = plan(fam.spec, [s.widths for s in fam.submodels])
    axis, in_scale, in_shift = input_axis(fam)
    quant, inputs, outputs = [], [], []
    for k in range(len(fam.submodels)):
        (lo, hi), per_step = ranges(fam, steps, x, k)
        chain = [qparams(lo, hi)]
        for r in per_step:
            chain.append(chain[-1] if r is None else qparams(*r))
        quant.append(chain)
        s0, z0 = chain[0]
        qa, qb = ops.input_coefficients(in_scale, in_shift, s0, z0)
        inputs.append(InputQuant(s0, z0, qa, qb))
        outputs.append(OutputQuant(*chain[-1]))
    fold(fam, steps, quant)
    qf = QuantFamily(fam, steps, inputs, outputs, {"calibration": {"samples": int(len(x))}})
    with staged(out, INT8_JSON, FORMAT, "int8 family") as tmp:
        shutil.copytree(src_dir, tmp, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns(".*"))  # not a killed write's leftovers
        if qat_epochs > 0:  # the tuned float weights, a new sha256; the old float accuracies do not hold
            import copy

            from ..family import save

            manifest = copy.deepcopy(fam.manifest)
            for sub in manifest.submodels:
                sub.accuracy = sub.val_accuracy = None
            save(tmp, manifest, fam.net, keep_version=True)
            qf.meta["qat"] = {"epochs": qat_epochs, "samples_per_epoch": qat_limit}
        qf.save(tmp)
    return open(out)
