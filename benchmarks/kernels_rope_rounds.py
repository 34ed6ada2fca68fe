"""GPU benchmark of the MLA RoPE kv ops against megatron-core's, with candidate kernels, in alternating rounds
(issue 16).

For each shape of ``kernels_train.SHAPES`` (s=4096, b=4, bf16): megatron-core's fused kv RoPE, ours, each copy of
the kernels package given with ``--step LABEL=DIR`` and each tile of ``--tiles`` (a JSON object mapping labels to
``mla_rope.triton_ops.TILES`` entries to override) time the kv forward and backward as ``kernels_train`` does,
every round timing every variant in turn; the table gives each variant's median over rounds and its ratio to
megatron-core's (> 1: faster). Every variant's key, value and gradients are first compared with ours (bit for bit:
the candidates change how the bytes move, not the arithmetic) and ours with float64. Needs megatron-core's sources
on PYTHONPATH. Writes $OUT/kernels_rope_rounds.json and .md.
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
from kernels_train import NOPE, ROPE, SHAPES, V, check_rope, copy_bandwidth, rope_inputs, time_variant
from megatron.core.fusions.fused_mla_yarn_rope_apply import fused_apply_mla_rope_for_kv, fused_apply_mla_rope_for_q

import seamfix.runtime.kernels as ours

TIMES = ("kv_fwd_ms", "kv_bwd_ms")


class Variant:
    """An implementation of the two rope ops, with ``tiles`` put in its ``TILES`` while it runs."""

    def __init__(self, package, tiles=None):
        self.package, self.tiles = package, tiles or {}

    def run(self, action):
        table = importlib.import_module(f"{self.package.__name__}.mla_rope.triton_ops").TILES if self.package else {}
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


def bench_shape(variants, heads, device, reps, rounds):
    t = rope_inputs(4096, 4, heads, device, torch.bfloat16)
    row = {"check": check_rope(t, heads), "same_as_ours": {}}
    expected = kv_outputs(variants["ours"], t)
    for label, variant in variants.items():
        if variant.package is not None:
            row["same_as_ours"][label] = all(map(torch.equal, kv_outputs(variant, t), expected))
    times = {label: {key: [] for key in TIMES} for label in variants}
    for _ in range(rounds):
        for label, variant in variants.items():
            for key, ms in variant.run(partial(time_variant, *variant.ops(), t, device, reps, TIMES)).items():
                times[label][key].append(ms)
    row["ms"] = {label: {key: statistics.median(values) for key, values in by_key.items()}
                 for label, by_key in times.items()}  # fmt: skip
    row["rounds_ms"] = times
    return row


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--step", action="append", default=[], metavar="LABEL=DIR",
                        help="another copy of the kernels package, timed as a variant")  # fmt: skip
    parser.add_argument("--tiles", default="{}", help='JSON {"label": {"kv_forward": {...}}, ...} on our package')
    args = parser.parse_args()
    device = torch.device("cuda")
    torch.manual_seed(0)
    variants = {"megatron-core": Variant(None), "ours": Variant(ours)}
    for label, folder in (step.split("=", 1) for step in args.step):
        variants[label] = Variant(load_package(label, folder))
    for label, tiles in json.loads(args.tiles).items():
        package_label, _, _ = label.partition(":")  # "step:name" puts the tiles on a step's package
        package = variants[package_label].package if package_label in variants else ours
        variants[label] = Variant(package, tiles)
    report = {"device": torch.cuda.get_device_name(), "rounds": args.rounds,
              "copy_Bps": copy_bandwidth(device, args.reps)}  # fmt: skip
    for shape, config in SHAPES.items():
        report[shape] = bench_shape(variants, config["heads"], device, args.reps, args.rounds)
        torch.cuda.empty_cache()
    out = Path(os.environ.get("OUT", "out"))
    out.mkdir(parents=True, exist_ok=True)
    (out / "kernels_rope_rounds.json").write_text(json.dumps(report, indent=2))
    lines = [f"# kernels_rope_rounds on {report['device']}, {args.rounds} rounds, copy "
             f"{report['copy_Bps'] / 1e12:.3f} TB/s", "",
             "| shape | variant | kv fwd ms | x megatron-core | kv bwd ms | x megatron-core | same as ours |",
             "|---|---|---|---|---|---|---|"]  # fmt: skip
    for shape in SHAPES:
        row = report[shape]
        theirs = row["ms"]["megatron-core"]
        for label, ms in row["ms"].items():
            lines.append(f"| {shape} | {label} | {ms['kv_fwd_ms']:.4f} | {theirs['kv_fwd_ms'] / ms['kv_fwd_ms']:.3f} | "
                         f"{ms['kv_bwd_ms']:.4f} | {theirs['kv_bwd_ms'] / ms['kv_bwd_ms']:.3f} | "
                         f"{row['same_as_ours'].get(label, '-')} |")  # fmt: skip
        lines.append(f"| {shape} | check vs float64 | {json.dumps(row['check'])} | | | | |")
    (out / "kernels_rope_rounds.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
