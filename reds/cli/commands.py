"""What each `reds` command does: open the family once, call the layer, print the result."""
from __future__ import annotations

import json

from ..errors import RedsError


def open_family(folder):
    from ..family import open as open_

    return open_(folder)


def cmd_arch(args) -> None:
    from ..ir.archs import build_spec, get_arch
    from ..ir.describe import describe

    if args.data_dir:  # the shape and classes of the data itself (the only way for folder and npz)
        from .. import data

        arch = get_arch(args.name)
        dataset = args.dataset or arch.default_dataset
        ds = data.load(dataset, args.data_dir, kws_stride_ms=arch.kws_stride_ms, words=args.words,
                       image_size=args.image_size)
        spec = build_spec(arch, ds.input_shape, ds.num_classes, width_mult=args.width)
    else:
        if args.image_size is not None:
            raise RedsError("--image-size needs the folder of images: pass --dataset folder --data-dir DIR")
        spec = build_spec(args.name, dataset=args.dataset, width_mult=args.width, words=args.words)
    d = describe(spec)
    if args.json:
        print(json.dumps(d, indent=2))
        return
    from ..tables import arch_table
    print(arch_table(d))


def cmd_data(args) -> None:
    from ..data.synth_kws import generate

    summary = generate(args.out, per_word=args.per_word, seed=args.seed, jobs=args.jobs, words=args.words)
    if not summary.get("created", True):
        print(summary.get("message", f"{args.out} already holds this data set"))
        return
    print(f"wrote {summary['utterances']:,} utterances from {summary['speakers']} voices to {summary['out_dir']} "
          f"in {summary['seconds']:.1f} s ({summary['utterances_per_s']:.0f}/s); "
          f"splits: " + ", ".join(f"{k} {v:,}" for k, v in summary["splits"].items()))


def cmd_train(args) -> None:
    from ..tables import family_table
    from ..train import TrainConfig, Trainer

    cfg = TrainConfig(
        arch=args.arch, dataset=args.dataset, data_dir=args.data_dir, words=args.words,
        image_size=args.image_size, budgets=args.budgets,
        knapsack=args.knapsack, depth=args.depth, block_importance=args.block_importance, layer_drop=args.layer_drop, importance=args.importance, importance_batches=args.importance_batches,
        importance_norm=args.importance_norm, epochs=args.epochs, finetune_epochs=args.finetune_epochs,
        recipe=args.recipe, batch_size=args.batch_size, lr=args.lr, finetune_lr=args.finetune_lr,
        augment=args.augment, val_per_epoch=args.val_per_epoch, distill=args.distill, baseline=args.baseline,
        limit_train=args.limit_train, limit_eval=args.limit_eval, width_mult=args.width, seed=args.seed,
        time_limit=args.time_limit, weight_bytes=args.flash, arena_bytes=args.ram, min_units=args.min_units,
        init=args.init, loss=args.loss, temperature=args.temperature, head_epochs=args.head_epochs)
    trainer = Trainer(cfg, args.out, progress=False if args.quiet else None, device=args.device,
                      threads=args.threads)
    family = trainer.run(resume=args.resume)
    print(family_table(family))
    print(f"family written to {args.out}")


def cmd_eval(args) -> None:
    from .. import quant
    from ..tables import family_table
    from ..train import evaluate

    if quant.is_int8(args.family):  # float (PyTorch) vs int8 (the integer reference), into int8.json
        from ..quant.evaluate import float_vs_int8
        from ..quant.reference import record_accuracy
        from ..train.trainer import family_data

        qf = quant.open(args.family)
        rows = float_vs_int8(qf.family, qf, family_data(qf.family, args.data_dir), args.limit)
        record_accuracy(args.family, rows)
        _print_int8_accuracy(rows)
        return
    print(family_table(evaluate(open_family(args.family), args.data_dir, args.limit)))


def _print_int8_accuracy(rows: list[dict]) -> None:
    print(f"accuracy on {rows[0]['samples']} test samples (float: PyTorch; int8: the reds integer reference):")
    print("  k  budget   float %   int8 %   int8 - float")
    for r in rows:
        print(f"  {r['index']:<2} {r['budget']:<7g} {r['float_acc']:8.2f} {r['int8_acc']:8.2f} "
              f"{r['int8_acc'] - r['float_acc']:+10.2f}")


def cmd_quantize(args) -> None:
    """Post-training int8 quantization, calibrated per submodel on training data; then
    every submodel's float and int8 (the integer reference) accuracy on the test split."""
    from .. import quant
    from ..quant.evaluate import calibration_inputs, float_vs_int8
    from ..train.trainer import family_data

    fam = open_family(args.family)
    ds = family_data(fam, args.data_dir)
    calib = calibration_inputs(fam, ds, args.calib)
    qf = quant.quantize(args.family, args.out, calib, qat_epochs=args.qat or 0, data=ds, qat_limit=args.qat_limit)
    print(f"int8 family written to {args.out} ({len(qf.inputs)} submodels, calibrated on {len(calib)} "
          f"training samples)")
    rows = float_vs_int8(fam, qf, ds, args.limit)
    from ..quant.reference import record_accuracy

    record_accuracy(args.out, rows)
    _print_int8_accuracy(rows)


def cmd_info(args) -> None:
    from ..tables import family_table

    from .. import quant

    fam = open_family(args.family).verify().manifest
    qf = quant.open(args.family) if quant.is_int8(args.family) else None
    if args.json:
        doc = fam.to_json()
        if qf is not None:
            doc = {**doc, "int8": int8_info(qf)}
        print(json.dumps(doc, indent=2))
    else:
        print(family_table(fam))
        if qf is not None:
            print(int8_table(qf))


def int8_info(qf) -> dict:
    """An int8 family's facts for `reds info --json`: per submodel the int8 C model's
    weight and arena bytes, and the accuracy `reds quantize` / `reds eval` recorded."""
    from ..export.c.int8 import submodel_bytes

    acc = {a["index"]: a for a in qf.meta.get("accuracy", [])}
    return {"dtype": "int8", "calibration": qf.meta.get("calibration"),
            "submodels": [{"index": k, "weight_bytes": w, "arena_bytes": a,
                           "float_acc": acc.get(k, {}).get("float_acc"), "int8_acc": acc.get(k, {}).get("int8_acc"),
                           "samples": acc.get(k, {}).get("samples")}
                          for k, (w, a) in enumerate(submodel_bytes(qf))]}


def int8_table(qf) -> str:
    from ..tables import render

    d = int8_info(qf)
    cal = (d["calibration"] or {}).get("samples")
    rows = [[s["index"], f"{s['weight_bytes']:,} B", f"{s['arena_bytes']:,} B",
             "-" if s["float_acc"] is None else f"{s['float_acc']:.2f}",
             "-" if s["int8_acc"] is None else f"{s['int8_acc']:.2f}"] for s in d["submodels"]]
    note = "" if any(s["int8_acc"] is not None for s in d["submodels"]) else " (no accuracy yet: reds eval this folder)"
    return (f"\nint8 family (calibrated on {cal} training samples): the C model's bytes, test accuracy{note}\n"
            + render(["k", "int8 weights", "int8 arena", "float %", "int8 %"], rows, "rrrrr"))


def cmd_export(args) -> None:
    from ..export import command_line, export

    from .. import quant

    fam = open_family(args.family)
    cmd = command_line(args.family, args.format, args.out, args.layout, args.name, args.data_dir)
    calib = None
    if args.format == "tflite" and quant.is_int8(args.family):  # PT2E calibrates on reds quantize's samples
        calib = _calibration_of(fam, quant.open(args.family), args.data_dir)
    m = export(fam, args.format, args.out, layout=args.layout, name=args.name, command=cmd, calib=calib)
    subs = m["submodels"]
    print(f"exported {len(subs)} submodels of {m['spec']} to {args.out}: {', '.join(m['files'])}")
    for s in subs:
        chk = s.get("check") or {}
        tfl = [(rt, chk[rt]) for rt in ("litert", "tflite-micro") if rt in chk]
        if tfl:  # int8 TFLite against the integer reference, per runtime
            diff = "".join(f", {rt}: argmax agrees with the int8 reference on {c['argmax_agreement']:.1%} of "
                           f"{c['samples']}, max {c['max_steps']} steps apart" for rt, c in tfl)
        elif "max_steps" in chk:  # int8 ONNX against the integer reference
            diff = (f", {chk['runtime']} vs the int8 reference: argmax agrees on {chk['argmax_agreement']:.1%} of "
                    f"{chk['samples']} inputs, max {chk['max_steps']} output steps apart")
        else:
            diff = f", max |{chk['runtime']} - PyTorch| {chk['max_abs_diff']:.2g}" if chk.get("runtime") else ""
        print(f"  {s['index']}: budget {s['budget']:g}, {s['macs']:,} MACs{diff}")
    if args.format == "c":
        c = m["c"]
        per = "requantization tables" if c.get("dtype") == "int8" else "batch norms"
        print(f"  {m['dtype']}: arena {c['arena_bytes']:,} B; weights {c['weight_array_bytes']:,} B + tables "
              f"{c['table_bytes']:,} B for all submodels = the largest submodel's {c['largest_weight_bytes']:,} B + "
              f"{c['overhead_bytes']:,} B of smaller submodels' {per} and tables ({c['overhead_pct']:.2f} %) "
              f"[{len(subs)} separate models: {c['separate_bytes']:,} B]")


def _calibration_of(fam, qf, data_dir):
    """The training samples `reds quantize` calibrated `qf` on (same count, same seeded draw)."""
    from ..quant.evaluate import calibration_inputs
    from ..train.trainer import family_data

    n = int((qf.meta.get("calibration") or {}).get("samples", 512))
    try:
        ds = family_data(fam, data_dir)
    except RedsError as e:
        raise RedsError(f"int8 TFLite calibrates on the family's training data: {e}") from None
    return calibration_inputs(fam, ds, n)


def cmd_build(args) -> None:
    from ..build import build, summary

    print(summary(build(open_family(args.family), args.board, args.out, layout=args.layout, force=args.force,
                        flash=args.flash, ram=args.ram, cross=args.cross)))


def cmd_bench(args) -> None:
    from ..bench.bench import bench, check_outputs, profile_table, table, write_json

    trace = None
    if args.trace:
        from ..bench.trace import TraceJob
        trace = TraceJob(args.trace, args.trace_out, args.family)
    audio = None
    if args.audio:
        from ..bench.bench import read_clip
        audio = read_clip(args.audio)
    report = bench(open_family(args.family), args.board, port=args.port, runs=args.runs, seed=args.seed, build_dir=args.build,
                   layout=args.layout, timeout=args.timeout, trace=trace, audio=audio, profile=args.profile)
    print(table(report))
    if "profile" in report:
        print(profile_table(report))
    if args.json:
        write_json(report, args.json)
        print(f"report written to {args.json}")
    if trace is not None:
        print(trace.summary())
    check_outputs(report)


def cmd_flash(args) -> None:
    from ..device.flash import flash

    flash(args.build, args.port)


def cmd_serve(args) -> None:
    from ..device.serve import serve

    serve(open_family(args.family), args.runtime, args.port, build_dir=args.build)


def cmd_report(args) -> None:
    from pathlib import Path

    from ..bench.report import report

    d = report(open_family(args.family).verify(), args.out, bench=args.bench)
    print(f"report of {d['arch']} on {d['dataset']} written to {args.out}: "
          + ", ".join(str(Path(args.out) / f) for f in d["files"].values()))


def cmd_import_model(args) -> None:
    from ..nn.fx_import import import_files

    s = import_files(args.source, args.out, weights=args.weights, input_shape=args.input_shape, name=args.name)
    kinds = ", ".join(f"{n} {k}" for k, n in s["kinds"].items())
    print(f"imported {s['name']}: {s['ops']} ops ({kinds}), {s['num_classes']} outputs")
    if "groups" in s:
        print(f"  {len(s['groups'])} unit groups ({', '.join(s['groups'])}), {s['macs']:,} MACs on "
              f"{','.join(str(v) for v in args.input_shape)}")
    for note in s["notes"]:
        print(f"  note: {note}")
    where = f"from {s['from_weights']}" if s["from_weights"] else "as the class builds them (no --weights)"
    print(f"wrote {s['arch']} and {s['weights']} ({s['tensors']} tensors, {s['params']:,} values, weights {where})")
    train = f"      reds train --arch {s['arch']} --dataset DATASET --data-dir DIR --out runs/{s['name']}"
    if s["from_weights"]:  # trained weights: start from them, no pretraining
        train += f" --init {s['weights']} --epochs 0   (--epochs 0: keep the trained weights, no pretraining)"
    print(f"next: reds arch {s['arch']} --dataset DATASET\n{train}")


def cmd_probe(args) -> None:
    import sys

    from ..probe import ProbeConfig, run

    cfg = ProbeConfig(limit=args.limit, train_samples=args.train_samples, k=args.k, baselines=args.baselines,
                      prune_epochs=args.prune_epochs, init=args.init, data_dir=args.data_dir, seed=args.seed)
    log = None if args.quiet else (lambda msg: print(msg, file=sys.stderr, flush=True))
    r = run(args.family, args.out, args.seeds, cfg, log)
    from ..probe.report import tables

    print(tables(r))
    print(f"probe written to {args.out}: " + ", ".join(r["files"].values()))


COMMANDS = {"arch": cmd_arch, "data": cmd_data, "train": cmd_train, "eval": cmd_eval, "quantize": cmd_quantize,
            "info": cmd_info,
            "export": cmd_export,
            "build": cmd_build, "bench": cmd_bench, "flash": cmd_flash, "serve": cmd_serve,
            "report": cmd_report, "import-model": cmd_import_model,
            "probe": cmd_probe}


def cmd_adapt(args) -> None:
    from ..adapt.adapt import AdaptConfig, adapt, summary

    if args.threads:
        import torch
        torch.set_num_threads(args.threads)
    cfg = AdaptConfig(method=args.method, rank=args.rank, task=args.task, dataset=args.dataset,
                      data_dir=args.data_dir, shift=args.shift, epochs=args.epochs, batch_size=args.batch_size,
                      lr=args.lr, limit_train=args.limit_train, limit_eval=args.limit_eval, seed=args.seed,
                      keep_delta=args.keep_delta)
    print(summary(adapt(open_family(args.family), cfg, args.out)))


def cmd_profile(args) -> None:
    from ..adapt.profile import command as profile_command

    print(profile_command(open_family(args.family), args.method, args.rank, args.task, args.classes,
                          args.batch_size, args.check, args.json))


COMMANDS.update({"adapt": cmd_adapt, "profile": cmd_profile})
