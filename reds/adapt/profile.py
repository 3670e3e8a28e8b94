"""`reds profile`: what one adaptation step costs, per method and rank: trainable values,
training FLOPs per sample, and training memory.

FLOPs are counted analytically, per op, from the spec and each submodel's widths (1 MAC =
2 FLOPs), in three passes: forward, backward to the inputs (only where something upstream
trains) and backward to the weights (only for what trains). A conv of k = kh x kw, cin ->
cout on P output positions costs 2 P k cin cout in each pass; a depthwise conv of C
channels 2 P k C in each (its weight gradient is a per-channel correlation, not a dense
conv); a dense layer 2 n cout; LoRA's side path conv(x, A) then 1x1 B its own convs;
an adapter its two 1x1 convs. These "matmul" FLOPs are what torch's dispatch counter
(`torch.utils.flop_counter.FlopCounterMode`) counts, and `crosscheck` compares them with
it: they agree exactly except on the depthwise weight gradient, which torch's formula
counts as a dense conv over all C input channels (C times the true count; measured with
torch 2.13, `crosscheck` reports both; its forward and input-gradient counts are right).

Elementwise work (batch norm, activations, pools, adds, biases) is not in torch's count;
it is given apart at nominal per-element costs (ELEMENTWISE), as is the optimizer step
(Adam: ADAM_FLOPS per trainable value; GaLore: projection, back-projection, Adam on the
projected state and its SVD every GALORE_GAP steps at a nominal 4 m n min(m, n)). Per-step
work is divided by the batch size into the per-sample total. A step trains every submodel
(all of them forward and backward on the batch), so the step total is the sum over
submodels; each submodel's own count is given too.

Memory (float32, bytes): parameters (every value the model holds: the family's full-width
weights, batch-norm states and the method's additions), gradients (of every trainable
tensor, full width), optimizer state (Adam: 2 per trainable value; GaLore: 2 r n + m r per
projected matrix) are exact from the shapes; activations are *measured*: the bytes of the
distinct tensors autograd saves for backward in one submodel's forward at the batch size
(`torch.autograd.graph.saved_tensors_hooks`, parameters and buffers excluded), the largest
over submodels (`reds adapt` runs one submodel's graph at a time). Peak = the sum.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..ir.spec import Add, AvgPool, BatchNorm, Conv2d, Dense, DepthwiseConv2d, Flatten, LeakyReLU, MaxPool, ReLU
from ..nn.nested import NestedNet
from .methods import GALORE_GAP, RANKED, AdaptedNet

ADAM_FLOPS = 12  # per trainable value: two moment updates, bias corrections, sqrt, divide, step
# nominal FLOPs per element of an op's output: (forward, backward to input, backward to its
# scale and shift); batch norm in training: statistics + normalise + affine
ELEMENTWISE = {"batch_norm": (6, 6, 2), "relu": (1, 1, 0), "leaky_relu": (1, 1, 0), "add": (1, 0, 0),
               "pool": (1, 1, 0)}


def _row(name, kind, upstream):
    """upstream: whether something before the op's input trains (its input gradient is needed)."""
    return {"name": name, "kind": kind, "fwd": 0, "bwd_in": 0, "bwd_w": 0, "elementwise": 0, "upstream": upstream}


def _trains(t) -> bool:
    return t is not None and t.requires_grad


def count(model: AdaptedNet, widths: dict[str, int], k: int) -> dict:
    """Per-op FLOPs of one sample through submodel k, forward and backward (see module doc)."""
    net, spec = model.net, model.net.spec
    r = model.rank
    rows, upstream = [], False
    for layer in spec.layers:
        op = layer.op
        cin, cout = spec.size(layer.in_ch, widths), spec.size(layer.out_ch, widths)
        oh, ow = layer.out_hw
        P = oh * ow
        row = _row(layer.name, layer.kind, upstream)
        trains_here = False
        if isinstance(op, (Conv2d, Dense, DepthwiseConv2d)):
            p = net.layers[layer.name]
            if isinstance(op, Conv2d):
                kk, fan = op.kernel[0] * op.kernel[1], cin
                mac = P * kk * cin * cout
            elif isinstance(op, DepthwiseConv2d):
                kk, fan = op.kernel[0] * op.kernel[1], 1
                mac = P * kk * cout
            else:
                kk, fan = layer.in_spatial, cin
                mac = kk * cin * cout
            row["fwd"] += 2 * mac
            if upstream:
                row["bwd_in"] += 2 * mac
            if _trains(p.weight):
                row["bwd_w"] += 2 * mac
            bias = getattr(p, "bias", None) if op.bias else None
            if bias is not None:
                row["elementwise"] += P * cout + (P * cout if _trains(bias) else 0)
            trains_here = _trains(p.weight) or _trains(bias)
            if layer.name in model.lora:
                ad = model.lora[layer.name]
                a, b = P * kk * fan * r, P * r * cout
                row["fwd"] += 2 * a + 2 * b
                row["bwd_w"] += 2 * a + 2 * b  # dA, dB
                row["bwd_in"] += 2 * b + (2 * a if upstream else 0)  # B^T dy, then through A
                row["elementwise"] += P * cout + (3 * P * cout if ad.dora else 0)  # add; DoRA's scale
                trains_here = True
        elif isinstance(op, BatchNorm):
            e = P * cout
            s = net.layers[layer.name][k]
            fwd, bwd, aff = ELEMENTWISE["batch_norm"]
            affine = _trains(s.weight)
            row["elementwise"] += fwd * e + (bwd * e if upstream or affine else 0) + (aff * e if affine else 0)
            trains_here = affine
        elif isinstance(op, (ReLU, LeakyReLU)):
            e = P * cout
            fwd, bwd, _ = ELEMENTWISE[layer.kind]
            row["elementwise"] += fwd * e + (bwd * e if upstream else 0)
        elif isinstance(op, (AvgPool, MaxPool)):
            e = layer.in_hw[0] * layer.in_hw[1] * cin
            fwd, bwd, _ = ELEMENTWISE["pool"]
            row["elementwise"] += fwd * e + (bwd * e if upstream else 0)
        elif isinstance(op, Add):
            row["elementwise"] += ELEMENTWISE["add"][0] * P * cout
        elif not isinstance(op, Flatten):
            raise TypeError(f"no FLOP count for {type(op).__name__}")
        after = upstream or trains_here
        rows.append(row)
        if layer.name in model.adapters:
            arow = _row(f"{layer.name}.adapter", "adapter", after)
            d = P * cout * r
            arow["fwd"] += 4 * d
            arow["bwd_w"] += 4 * d  # dD, dU
            arow["bwd_in"] += 2 * d + (2 * d if after else 0)  # U^T dy, then through D
            arow["elementwise"] += 2 * P * r + P * cout  # relu forward and backward, the add
            rows.append(arow)
            after = True
        upstream = after
    return {"ops": rows, **_totals(rows)}


def _totals(rows) -> dict:
    t = {key: sum(r[key] for r in rows) for key in ("fwd", "bwd_in", "bwd_w", "elementwise")}
    t["matmul"] = t["fwd"] + t["bwd_in"] + t["bwd_w"]
    t["total"] = t["matmul"] + t["elementwise"]
    return t


def per_step(model: AdaptedNet, submodels: int) -> dict:
    """FLOPs of one step that do not scale with the batch: the optimizer, DoRA's norms."""
    adam = sum(p.numel() for p in model.trainable())
    out = {"optimizer": 0, "dora_norm_matmul": 0, "dora_norm_elementwise": 0, "galore_svd": 0}
    if model.method == "galore":
        proj = model.matrices()
        for p in model.trainable():
            m, n = p.shape[0], p[0].numel()
            if id(p) in proj and min(m, n) > model.rank:
                adam -= p.numel()
                lo, hi = min(m, n), max(m, n)
                r = model.rank
                out["optimizer"] += 4 * r * m * n + ADAM_FLOPS * r * hi
                out["galore_svd"] += 4 * m * n * lo // GALORE_GAP
    out["optimizer"] += ADAM_FLOPS * adam
    for ad in model.lora.values():
        if ad.dora:  # B A, W + B A, the row norms: forward and backward, in every submodel's forward
            m, n = ad.B.shape[0], ad.A[0].numel()
            out["dora_norm_matmul"] += submodels * 3 * 2 * m * ad.rank * n
            out["dora_norm_elementwise"] += submodels * 6 * m * n
    out["total"] = sum(out.values())
    return out


@torch.no_grad()
def _param_bytes(model: AdaptedNet) -> int:
    return sum(t.numel() * t.element_size() for t in list(model.parameters()) + list(model.buffers()))


def memory(model: AdaptedNet, widths: list[dict], batch: int) -> dict:
    """Training memory in bytes (see module doc): exact except activations (measured)."""
    params = _param_bytes(model)
    trainable = model.trainable()
    grads = sum(p.numel() * 4 for p in trainable)
    if model.method == "galore":
        proj, opt = model.matrices(), 0
        for p in trainable:
            m, n = p.shape[0], p[0].numel()
            if id(p) in proj and min(m, n) > model.rank:
                opt += 4 * (2 * model.rank * (n if m <= n else m) + model.rank * (m if m <= n else n))
            else:
                opt += 4 * 2 * p.numel()
    else:
        opt = 4 * 2 * sum(p.numel() for p in trainable)
    acts = [saved_bytes(model, w, k, batch) for k, w in enumerate(widths)]
    peak_act = max(acts) if trainable else 0
    return {"parameters": params, "gradients": grads, "optimizer": opt, "activations": peak_act,
            "activations_per_submodel": acts if trainable else [0] * len(widths), "batch": batch,
            "peak": params + grads + opt + peak_act, "activations_measured_with": "saved_tensors_hooks"}


def saved_bytes(model: AdaptedNet, widths: dict, k: int, batch: int, seed: int = 0) -> int:
    """Bytes of the distinct storages autograd saves in submodel k's forward (and loss) at `batch`."""
    skip = {t.untyped_storage().data_ptr() for t in list(model.parameters()) + list(model.buffers())}
    seen: dict[int, int] = {}

    def pack(t):
        s = t.untyped_storage()
        if s.data_ptr() not in skip:
            seen[s.data_ptr()] = s.nbytes()
        return t

    spec = model.net.spec
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, *spec.input_shape, generator=gen)
    y = torch.randint(0, spec.num_classes, (batch,), generator=gen)
    was = model.training
    model.train()
    state = {k_: v.clone() for k_, v in model.net.state_dict().items() if "running" in k_ or "num_batches" in k_}
    try:
        with torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            loss = F.cross_entropy(model(x, widths, bn=k), y)
        del loss
    finally:
        with torch.no_grad():  # the measurement leaves the batch-norm statistics as they were
            sd = model.net.state_dict()
            for k_, v in state.items():
                sd[k_].copy_(v)
        model.train(was)
    return sum(seen.values())


def profile(model: AdaptedNet, widths: list[dict], batch: int = 64) -> dict:
    """Trainable values, FLOPs per sample (per submodel and for the step over all of them),
    memory: one method at one rank on one family."""
    subs = [count(model, w, k) for k, w in enumerate(widths)]
    step = per_step(model, len(widths))
    train = sum(s["total"] for s in subs)
    out = {"method": model.method, "rank": model.rank if model.method in RANKED else None, "batch": batch,
           "trainable_values": sum(p.numel() for p in model.trainable()),
           "submodels": [{k: v for k, v in s.items() if k != "ops"} for s in subs],
           "ops": [s["ops"] for s in subs],
           "per_step": step,
           "flops_per_sample": {
               "forward": sum(s["fwd"] for s in subs), "backward_inputs": sum(s["bwd_in"] for s in subs),
               "backward_weights": sum(s["bwd_w"] for s in subs),
               "elementwise": sum(s["elementwise"] for s in subs),
               "optimizer_and_per_step": step["total"] / batch,
               "total": train + step["total"] / batch},
           "memory": memory(model, widths, batch)}
    # the update: everything beyond inference (the forward passes), per sample
    out["flops_per_sample"]["update"] = out["flops_per_sample"]["total"] - out["flops_per_sample"]["forward"]
    return out


def model_for(spec, num_bn: int, method: str, rank: int, new_head: bool = False) -> AdaptedNet:
    """An AdaptedNet on random weights: the shapes and what trains are all a profile needs."""
    return AdaptedNet(NestedNet(spec, num_bn=num_bn), method, rank, new_head=new_head)


def crosscheck(model: AdaptedNet, widths: dict, k: int) -> dict:
    """One sample's forward and backward of submodel k under torch's FlopCounterMode, against
    the analytic count: non-depthwise matmul FLOPs must agree exactly; depthwise convs are
    counted apart, both ways."""
    from torch.utils.flop_counter import FlopCounterMode

    spec = model.net.spec
    rows = {r["name"]: r for r in count(model, widths, k)["ops"]}
    x = torch.randn(1, *spec.input_shape)
    was = model.training
    model.train()
    state = {k_: v.clone() for k_, v in model.net.state_dict().items() if "running" in k_ or "num_batches" in k_}
    with FlopCounterMode(display=False) as fc:
        out = model(x, widths, bn=k)
        if out.requires_grad:
            out.sum().backward()
    model.zero_grad(set_to_none=True)
    with torch.no_grad():
        sd = model.net.state_dict()
        for k_, v in state.items():
            sd[k_].copy_(v)
    model.train(was)
    torch_total = fc.get_total_flops()
    # each depthwise conv alone, with the same gradients asked for
    torch_dw = ours_dw = 0
    for layer in spec.layers:
        if isinstance(layer.op, DepthwiseConv2d):
            c = spec.size(layer.in_ch, widths)
            w = model.net.layers[layer.name].weight[:c].detach().clone().requires_grad_(
                model.net.layers[layer.name].weight.requires_grad)
            xi = torch.randn(1, c, *layer.in_hw, requires_grad=rows[layer.name]["upstream"])
            t, b, l, r = layer.pads
            with FlopCounterMode(display=False) as f1:
                y = F.conv2d(F.pad(xi, (l, r, t, b)), w, None, layer.op.stride, 0, 1, c)
                if y.requires_grad:
                    y.sum().backward()
            torch_dw += f1.get_total_flops()
            row = rows[layer.name]
            ours_dw += row["fwd"] + row["bwd_in"] + row["bwd_w"]
    ours = sum(r["fwd"] + r["bwd_in"] + r["bwd_w"] for r in rows.values())
    dora = sum(3 * 2 * ad.B.shape[0] * ad.rank * ad.A[0].numel() for ad in model.lora.values() if ad.dora)
    ours_non_dw = ours - ours_dw + dora
    return {"torch_total": torch_total, "torch_depthwise": torch_dw, "torch_non_depthwise": torch_total - torch_dw,
            "ours_non_depthwise": ours_non_dw, "ours_depthwise": ours_dw,
            "agree": torch_total - torch_dw == ours_non_dw,
            "depthwise_overcount": (torch_dw / ours_dw) if ours_dw else None}


def summary_rows(p: dict) -> list:
    f, m = p["flops_per_sample"], p["memory"]
    return [p["method"], "-" if p["rank"] is None else p["rank"], f"{p['trainable_values']:,}",
            f"{f['forward'] / 1e6:.2f}", f"{f['backward_inputs'] / 1e6:.2f}", f"{f['backward_weights'] / 1e6:.2f}",
            f"{f['elementwise'] / 1e6:.2f}", f"{f['optimizer_and_per_step'] / 1e6:.3f}", f"{f['total'] / 1e6:.2f}",
            f"{m['parameters'] / 1024:.1f}", f"{m['gradients'] / 1024:.1f}", f"{m['optimizer'] / 1024:.1f}",
            f"{m['activations'] / 1024:.1f}", f"{m['peak'] / 1024:.1f}"]


SUMMARY_HEAD = ["method", "rank", "trainable", "fwd MFLOP", "bwd-in MFLOP", "bwd-w MFLOP", "elementwise MFLOP",
                "optim MFLOP", "total MFLOP/sample", "params KiB", "grads KiB", "optim KiB", "activations KiB",
                "peak KiB"]



def _names(text: str) -> list[str]:
    from . import METHODS
    from ..errors import RedsError

    names = [t.strip() for t in text.split(",") if t.strip()]
    bad = [n for n in names if n not in METHODS]
    if not names or bad:
        raise RedsError(f"unknown method '{bad[0] if bad else text}'; choose one of: {', '.join(METHODS)}")
    return names


def _ranks(text: str) -> list[int]:
    from ..errors import RedsError

    try:
        ranks = [int(t) for t in str(text).split(",") if t.strip()]
    except ValueError:
        raise RedsError(f"--rank takes whole numbers, comma-separated (e.g. 1,2,4,8); got {text!r}") from None
    if not ranks:
        raise RedsError("--rank needs at least one number")
    return ranks


def table(family, methods: list[str], ranks: list[int], task: str = "shift", classes: int | None = None,
          batch: int = 64, check: bool = False) -> dict:
    """Profiles of every method x rank (ranks only for the ranked methods) on the family."""
    from . import TASKS
    from ..errors import RedsError
    from .methods import check_rank

    if task not in TASKS:
        raise RedsError(f"unknown task '{task}'; choose one of: {', '.join(TASKS)}")
    spec = family.spec
    new_head = task == "new-classes"
    if new_head:
        from ..manifest import Family

        man = family.manifest
        n = classes or man.num_classes
        spec = Family(**{**{k: getattr(man, k) for k in man.__dataclass_fields__}, "num_classes": n}).spec()
    widths = [s.widths for s in family.submodels]
    out = []
    for m in methods:
        for r in (ranks if m in RANKED else [0]):
            check_rank(spec, m, r, new_head)
            model = model_for(spec, len(widths), m, r or 1, new_head)
            p = profile(model, widths, batch)
            p["rank"] = r if m in RANKED else None
            if check:
                p["crosscheck"] = [crosscheck(model, w, k) for k, w in enumerate(widths)]
            out.append(p)
    return {"family": str(family.dir), "arch": family.manifest.arch, "task": task, "batch": batch,
            "submodels": [{"budget": s.budget, "widths": s.widths, "macs": s.macs} for s in family.submodels],
            "profiles": out}


def command(family, methods: str, ranks: str, task: str, classes, batch: int, check: bool, json_out) -> str:
    from ..tables import render

    t = table(family, _names(methods), _ranks(ranks), task, classes, batch, check)
    lines = [f"{t['arch']}: one adaptation step over all {len(t['submodels'])} submodels, per sample at batch {batch} "
             "(FLOPs counted per op; memory exact from shapes, activations measured)",
             render(SUMMARY_HEAD, [summary_rows(p) for p in t["profiles"]], "ll" + "r" * (len(SUMMARY_HEAD) - 2))]
    if check:
        rows = []
        for p in t["profiles"]:
            for k, c in enumerate(p["crosscheck"]):
                rows.append([p["method"], "-" if p["rank"] is None else p["rank"], k, f"{c['torch_non_depthwise']:,}",
                             f"{c['ours_non_depthwise']:,}", "yes" if c["agree"] else "NO",
                             f"{c['torch_depthwise']:,}", f"{c['ours_depthwise']:,}",
                             "-" if c["depthwise_overcount"] is None else f"{c['depthwise_overcount']:.1f}x"])
        lines += ["", "torch's FlopCounterMode vs this count, one sample through submodel k (matmul FLOPs):",
                  render(["method", "rank", "k", "torch non-dw", "ours non-dw", "agree", "torch depthwise",
                          "ours depthwise", "torch / ours (dw)"], rows, "lll" + "r" * 6)]
    if json_out:
        import json
        from pathlib import Path

        from ..staging import atomic_write

        text = json.dumps(t, indent=2) + "\n"
        atomic_write(Path(json_out), lambda p: p.write_text(text))
        lines.append(f"profile written to {json_out}")
    return "\n".join(lines)
