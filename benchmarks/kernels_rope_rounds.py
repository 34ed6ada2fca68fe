"""GPU benchmark of the MLA RoPE ops against megatron-core's, with candidate kernels, in alternating rounds
(issue 16).

For each shape of ``kernels_train.SHAPES`` (s=4096, b=4, bf16): megatron-core's fused RoPE, ours, and each copy of
the kernels package given with ``--step LABEL=DIR`` time the q forward, both q backwards (the caller's gradient,
and training's: the gradient attention's backward hands over, see ``kernels_train.time_variant``) and the kv
forward and backward as ``kernels_train`` does; each tile of ``--tiles`` (a JSON object mapping labels to
``mla_rope.triton_ops.TILES`` entries to override) times the kv ops alone. Every round times every variant in turn;
the table gives each variant's median over rounds and its ratio to megatron-core's (> 1: faster). Every variant's
key, value and gradients are first compared with ours (bit for bit: the candidates change how the bytes move, not
the arithmetic) and ours with float64; every package's q gradient in the training setup with float64, and which
path its backward took there and for the caller's gradient (in place or a copy: ``_held_alone``'s answers). A
variant that fails (a tile past the shared memory at one shape, say) is recorded and left out of that shape.
Needs megatron-core's sources on PYTHONPATH. Writes $OUT/kernels_rope_rounds.json and .md.
"""

import argparse
import importlib
import json
import os
import statistics
from functools import partial
from pathlib import Path

import torch
from kernels_decode_rounds import load_package
from kernels_train import (
    ALL_TIMES,
    NOPE,
    ROPE,
    SHAPES,
    AttentionStandIn,
    V,
    check_rope,
    copy_bandwidth,
    rel_error,
    rope_inputs,
    time_variant,
)
from megatron.core.fusions.fused_mla_yarn_rope_apply import fused_apply_mla_rope_for_kv, fused_apply_mla_rope_for_q

import seamfix.runtime.kernels as ours

KV_TIMES = ("kv_fwd_ms", "kv_bwd_ms")


class Variant:
    """An implementation of the two rope ops, with ``tiles`` put in its ``TILES`` while it runs; ``times``: what is
    timed."""

    def __init__(self, package, tiles=None, times=ALL_TIMES):
        self.package, self.tiles, self.times = package, tiles or {}, times

    def triton_ops(self):
        return importlib.import_module(f"{self.package.__name__}.mla_rope.triton_ops")

    def run(self, action):
        table = self.triton_ops().TILES if self.package else {}
        shipped = dict(table)
        table.update(self.tiles)
        try:
            return action()
        finally:
            table.clear()
            table.update(shipped)

    def ops(self):
        if self.package is None:
            return fused_apply_mla_rope_for_q, fused_apply_mla_rope_for_kv
        return self.package.mla_rope_q, self.package.mla_rope_kv


def kv_outputs(variant, t):
    """Key, value and the gradients of kv and k_pos_emb for fixed incoming gradients."""
    kv, emb = (t[name].clone().requires_grad_() for name in ("kv", "k_pos_emb"))
    generator = torch.Generator(device=kv.device).manual_seed(5)
    shape = kv.shape[:-1]
    grads = (torch.randn(*shape, NOPE + ROPE, device=kv.device, generator=generator).to(kv.dtype),
             torch.randn(*shape, V, device=kv.device, generator=generator).to(kv.dtype))  # fmt: skip

    def forward_backward():
        key, value = variant.ops()[1](kv, emb, t["cos"], t["sin"], ROPE, NOPE, V)
        torch.autograd.backward((key, value), grads)
        return key.detach(), value.detach(), kv.grad, emb.grad

    return variant.run(forward_backward)


def q_training_gradient(variant, t, incoming):
    """q's gradient when attention's stand-in hands ``incoming`` (a fresh copy) to the rope's backward, and the
    answers of the package's ``_held_alone`` there and for a caller's own gradient (None: megatron-core)."""
    answers = {"training": [], "caller's gradient": []}
    ops = variant.triton_ops() if variant.package is not None else None
    original = getattr(ops, "_held_alone", None)
    q_leaf = t["q"].clone().requires_grad_()

    def rotated():
        return variant.ops()[0](q_leaf.clone(), t["cos"], t["sin"], NOPE, ROPE)

    def record(case):
        def held_alone(*args):
            answers[case].append(original(*args))
            return answers[case][-1]

        if original is not None:
            ops._held_alone = held_alone

    try:
        record("caller's gradient")
        rotated().backward(incoming.clone())
        q_leaf.grad = None
        record("training")
        AttentionStandIn.apply(rotated(), incoming.clone).backward()
    finally:
        if original is not None:
            ops._held_alone = original
    return q_leaf.grad, (answers if original is not None else None)


def q_gradient_float64(t, incoming):
    """The exact transpose of the rotation applied to ``incoming``."""
    q = t["q"].double().requires_grad_()
    cos, sin = (t[name].double() for name in ("cos", "sin"))
    ours.mla_rope_q(q * 1, cos, sin, NOPE, ROPE, backend="torch").backward(incoming.double())
    return q.grad


def bench_shape(variants, heads, device, reps, rounds):
    t = rope_inputs(4096, 4, heads, device, torch.bfloat16)
    row = {"check": check_rope(t, heads), "same_as_ours": {}, "q_training": {}, "failed": {}}
    expected = kv_outputs(variants["ours"], t)
    incoming = torch.randn_like(t["q"])
    q_expected = q_gradient_float64(t, incoming)
    timed = {}
    for label, variant in variants.items():
        try:
            if variant.package is not None and "kv_fwd_ms" in variant.times:
                row["same_as_ours"][label] = all(map(torch.equal, kv_outputs(variant, t), expected))
            if "q_bwd_train_ms" in variant.times:
                grad, paths = variant.run(partial(q_training_gradient, variant, t, incoming))
                row["q_training"][label] = {"rel_err_vs_float64": rel_error(grad, q_expected), "held_alone": paths}
            torch.cuda.synchronize()
            timed[label] = variant
        except Exception as error:  # noqa: BLE001 - a candidate's failure is a result of this shape, not a crash
            row["failed"][label] = f"{type(error).__name__}: {str(error)[:300]}"
            torch.cuda.synchronize()
    times = {label: {key: [] for key in variant.times} for label, variant in timed.items()}
    for _ in range(rounds):
        for label, variant in timed.items():
            timing = partial(time_variant, *variant.ops(), t, device, reps, variant.times)
            for key, ms in variant.run(timing).items():
                times[label][key].append(ms)
    row["ms"] = {label: {key: statistics.median(values) for key, values in by_key.items()}
                 for label, by_key in times.items()}  # fmt: skip
    row["rounds_ms"] = times
    return row


def ratio_cells(theirs, ms, keys):
    cells = []
    for key in keys:
        cells += [f"{ms[key]:.4f}", f"{theirs[key] / ms[key]:.3f}"] if key in ms else ["", ""]
    return " | ".join(cells)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--step", action="append", default=[], metavar="LABEL=DIR",
                        help="another copy of the kernels package, timed as a variant")  # fmt: skip
    parser.add_argument("--tiles", default="{}", help='JSON {"label": {"kv_forward": {...}}, ...} on our package')
    parser.add_argument("--q-only", action="store_true", help="time the q ops alone")
    parser.add_argument("--kv-only", action="store_true", help="time the kv ops alone")
    args = parser.parse_args()
    device = torch.device("cuda")
    torch.manual_seed(0)
    variants = {"megatron-core": Variant(None), "ours": Variant(ours)}
    for label, folder in (step.split("=", 1) for step in args.step):
        variants[label] = Variant(load_package(label, folder))
    for label, tiles in json.loads(args.tiles).items():
        package_label, _, _ = label.partition(":")  # "step:name" puts the tiles on a step's package
        package = variants[package_label].package if package_label in variants else ours
        variants[label] = Variant(package, tiles, KV_TIMES)
    for variant in variants.values() if args.q_only or args.kv_only else ():
        variant.times = tuple(key for key in variant.times if key.startswith("q_" if args.q_only else "kv_"))
    report = {"device": torch.cuda.get_device_name(), "rounds": args.rounds,
              "copy_Bps": copy_bandwidth(device, args.reps)}  # fmt: skip
    out = Path(os.environ.get("OUT", "out"))
    out.mkdir(parents=True, exist_ok=True)
    for shape, config in SHAPES.items():
        report[shape] = bench_shape(variants, config["heads"], device, args.reps, args.rounds)
        torch.cuda.empty_cache()
        (out / "kernels_rope_rounds.json").write_text(json.dumps(report, indent=2))  # each shape kept as it ends
    keys = ("q_fwd_ms", "q_bwd_ms", "q_bwd_train_ms", "kv_fwd_ms", "kv_bwd_ms")
    lines = [f"# kernels_rope_rounds on {report['device']}, {args.rounds} rounds, copy "
             f"{report['copy_Bps'] / 1e12:.3f} TB/s", "",
             "| shape | variant | q fwd ms | x mc | q bwd ms, caller's gradient | x mc | q bwd ms, training | x mc "
             "| kv fwd ms | x mc | kv bwd ms | x mc | same as ours |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for shape in SHAPES:
        row = report[shape]
        theirs = row["ms"]["megatron-core"]
        for label, ms in row["ms"].items():
            lines.append(f"| {shape} | {label} | {ratio_cells(theirs, ms, keys)} | "
                         f"{row['same_as_ours'].get(label, '-')} |")  # fmt: skip
        lines.append(f"| {shape} | check vs float64 | {json.dumps(row['check'])} |")
        lines.append(f"| {shape} | q training gradient | {json.dumps(row['q_training'])} |")
        lines += [f"| {shape} | {label} FAILED | {error} |" for label, error in row["failed"].items()]
    (out / "kernels_rope_rounds.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
