"""GPU benchmark of the serving ops against a baseline copy of the kernels, in alternating rounds (issue 16).

For each decode shape of ``kernels_decode.SHAPES``: the baseline package (a copy of ``seamfix.runtime.kernels`` from
an earlier commit, passed with ``--baseline DIR``), the current default, and candidate tiles are each checked
against float64 on the whole batch (fresh inputs, poisoned outputs), then timed graph-replayed in ``--rounds``
rounds, every round timing every variant in turn (``--rotate``: round r starting with variant r; the JSON keeps
every round's time); the table gives each variant's median over rounds. ``--calls-per-graph N`` also times the
baseline, now and the ``--step`` packages as N calls captured in one graph, per call (what layers back to back see:
a kernel launched as a programmatic dependent overlaps the previous call's tail only there). Also: eager
``mla_decode`` calls (no graph; host checks and launches included) against graph replay, for the baseline and now;
the cache append (tiles, and the ``--step`` packages) against a copy of the same rows, in rounds too, at random
slots and at whole pages filled in order (``--no-decode`` times only the append); beside it, for reference, torch
scattering the same rows to the same slots, a Triton kernel moving them there with the append's hints and no math
(the append's ceiling at those slots; also in token order), and sorting the slots. ``--gluon-modules`` adds, for
shapes of more than 16 query rows per sequence, the Gluon decode kernel of other modules of
``seamfix.runtime.kernels.absorbed_decode`` (candidate kernels, same arguments) as variants, checked and timed like
the others. Ceilings (copy bandwidth, bf16 matmul) are measured in the same run. Writes
$OUT/kernels_decode_rounds.json and .md.
"""

import argparse
import importlib
import importlib.util
import json
import os
import statistics
import sys
import time
from functools import partial
from pathlib import Path

import kernels_train
import torch
import triton
import triton.language as tl
from kernels_decode import (
    BYTES_PER_TOKEN,
    PAGE,
    RANK,
    ROPE,
    SCALE,
    SHAPES,
    append_args,
    args_of,
    check,
    decode_case,
    matmul_ceiling,
    roofline,
)
from kernels_train import copy_bandwidth, median_ms, rel_error

from seamfix.runtime.kernels import mla_cache_append, mla_decode
from seamfix.runtime.kernels.absorbed_decode.triton_ops import DecodeTiles
from seamfix.runtime.kernels.absorbed_decode.triton_ops import decode as tiled_decode
from seamfix.runtime.kernels.latent_cache import triton_ops as append_ops

# Candidate tiles per query rows per sequence (rows, tokens, warps, stages, programs per SM[, kernel]); the sweeps
# recorded in benchmarks/RESULTS.md ran more (3 or 4 buffers, 3 or 4 programs per SM, 32- and 128-token tiles).
CANDIDATES = {
    # The Triton kernel (the default for 16 rows before the narrow Gluon kernel), the narrow kernel in 8 warps.
    16: [(16, 64, 4, 2, 2), (16, 64, 8, 2, 1, "gluon_narrow")],
    32: [(32, 64, 4, 2, 2), (64, 64, 8, 2, 1, "gluon"), (64, 64, 4, 2, 1, "gluon_seesaw")],
    128: [(64, 64, 8, 2, 1, "gluon"), (64, 64, 4, 2, 1, "gluon_seesaw")],
}
# Runs per sequence (equal lengths) other than the default's (two runs per multiprocessor for the Triton kernel:
# B4 66; one for the narrow Gluon kernel: B4 33, B128 1).
SPLITS = {"H16 B4 S32k": (32, 33, 66)}
APPEND_TILES = [(2, 2), (2, 1), (4, 2), (1, 1)]
# Tiles (tokens per program, warps) of the plain scatter below, the append's ceiling at the same slots.
SCATTER_TILES = [(1, 1), (2, 1), (4, 2), (8, 4)]


@triton.jit
def scatter_rows_kernel(C_KV, K_PE, SLOTS, CKV_CACHE, KPE_CACHE, n_tokens, RANK: tl.constexpr, ROPE_DIM: tl.constexpr,
                        IN_ORDER: tl.constexpr, BLOCK_T: tl.constexpr):  # fmt: skip
    """The append's data movement alone: each token's latent and rope rows copied, as they are, to its slot (or,
    ``IN_ORDER``, to slot = token), loaded and stored with the append kernel's hints; no norm, no rotation."""
    tokens = tl.program_id(0) * BLOCK_T + tl.arange(0, BLOCK_T)
    exists = tokens < n_tokens
    if IN_ORDER:
        slots = tokens.to(tl.int64)
    else:
        slots = tl.load(SLOTS + tokens, mask=exists, other=0).to(tl.int64)
    latent_columns = tl.arange(0, RANK)[None, :]
    rope_columns = tl.arange(0, ROPE_DIM)[None, :]
    latent = tl.load(C_KV + tokens[:, None] * RANK + latent_columns, mask=exists[:, None],
                     eviction_policy="evict_first")  # fmt: skip
    rope = tl.load(K_PE + tokens[:, None] * ROPE_DIM + rope_columns, mask=exists[:, None])
    tl.store(CKV_CACHE + slots[:, None] * RANK + latent_columns, latent, mask=exists[:, None], cache_modifier=".cs")
    tl.store(KPE_CACHE + slots[:, None] * ROPE_DIM + rope_columns, rope, mask=exists[:, None], cache_modifier=".cs")


def scatter_rows(args, tile, in_order=False):
    tokens_per_program, num_warps = tile
    n_tokens = args["c_kv"].shape[0]
    scatter_rows_kernel[(triton.cdiv(n_tokens, tokens_per_program),)](
        args["c_kv"], args["k_pe"], args["slot_mapping"], args["ckv_cache"], args["kpe_cache"], n_tokens, RANK, ROPE,
        in_order, tokens_per_program, num_warps=num_warps,
    )  # fmt: skip


def rounds_ms(steps: dict, device, reps: int, rounds: int, rotate: bool = False) -> dict:
    """Each step's graph-replayed time in each of ``rounds`` rounds, the steps timed in turn within every round (the
    card's clock drifts by a few percent over minutes: alternation spreads that over all variants alike); with
    ``rotate``, round ``r`` starts with step ``r``, so that no step always runs at the same place in a round."""
    order = list(steps)
    times = {label: [] for label in order}
    for r in range(rounds):
        shift = r % len(order) if rotate else 0
        for label in order[shift:] + order[:shift]:
            times[label].append(median_ms(steps[label], device, reps))
    return times


def eager_us(run, calls=50) -> float:
    """Host wall time per call of back-to-back eager calls (no graph), the GPU drained before and after."""
    for _ in range(3):
        run()
    torch.cuda.synchronize()
    began = time.perf_counter()
    for _ in range(calls):
        run()
    torch.cuda.synchronize()
    return (time.perf_counter() - began) / calls * 1e6


def without_merge(step, device, reps) -> float:
    """Graph-replayed time of ``step`` with the merge launch (over runs or over sequences) left out (its output is
    then incomplete: timing only), which places the merge's share of the time without hardware counters."""
    from seamfix.runtime.kernels.absorbed_decode import triton_ops

    class NoLaunch:
        def __getitem__(self, grid):
            return lambda *args, **kwargs: None

    merges = {name: getattr(triton_ops, name) for name in ("merge_kernel", "merge_by_sequence_kernel")}
    for name in merges:
        setattr(triton_ops, name, NoLaunch())
    try:
        return median_ms(step, device, reps)
    finally:
        for name, kernel in merges.items():
            setattr(triton_ops, name, kernel)


def with_gluon_kernel(module_name, *args):
    """The Gluon decode path launching ``decode_kernel`` of ``module_name`` (a candidate module beside
    ``gluon_kernels``) instead of the default one: in the seesaw kernel's place where the candidate declares
    ``CONSUMER_WARPS`` (a seesaw variant), else in the two-warpgroup kernel's."""
    from seamfix.runtime.kernels.absorbed_decode import gluon_kernels, gluon_seesaw

    module = importlib.import_module(f"seamfix.runtime.kernels.absorbed_decode.{module_name}")
    if hasattr(module, "CONSUMER_WARPS"):
        replaced, tiles = gluon_seesaw, DecodeTiles(64, 64, 4, 2, 1, "gluon_seesaw")
    else:  # a candidate may launch other than 8 warps (LAUNCH_WARPS)
        replaced, tiles = gluon_kernels, DecodeTiles(64, 64, getattr(module, "LAUNCH_WARPS", 8), 2, 1, "gluon")
    default, replaced.decode_kernel = replaced.decode_kernel, module.decode_kernel
    try:
        return tiled_decode(*args, SCALE, True, None, tiles)
    finally:
        replaced.decode_kernel = default


def bench_shape(name, baseline, steps_between, device, reps, rounds, bandwidth, matmul, gluon_modules=(),
                candidates=True, rotate=False, calls_per_graph=1):  # fmt: skip
    heads, batch, context, s_q, lengths = SHAPES[name]
    case = decode_case(heads, batch, context, s_q, lengths, device)
    variants = {"baseline": lambda *a: baseline.mla_decode(*a, SCALE), "now": lambda *a: mla_decode(*a, SCALE)}
    for label, package in steps_between.items():
        variants[label] = partial(lambda *a, package: package.mla_decode(*a, SCALE), package=package)
    for module_name in gluon_modules if heads * s_q > 16 else ():
        variants[f"gluon {module_name}"] = partial(with_gluon_kernel, module_name)
    for tiles in CANDIDATES[min(128, max(16, heads * s_q))] if candidates else ():
        variants[f"tiles {tiles}"] = partial(
            lambda *a, tiles: tiled_decode(*a, SCALE, True, None, tiles), tiles=DecodeTiles(*tiles)
        )
    for splits in SPLITS.get(name, ()):
        variants[f"num_splits={splits}"] = partial(lambda *a, splits: mla_decode(*a, SCALE, num_splits=splits),
                                                   splits=splits)  # fmt: skip
    packages = ["baseline", "now", *steps_between]
    for label in packages if calls_per_graph > 1 else ():
        variants[f"{label}, {calls_per_graph} calls a graph"] = partial(
            lambda *a, run, calls: [run(*a) for _ in range(calls)][-1], run=variants[label], calls=calls_per_graph
        )  # fmt: skip
    row = {"variants": {}, "errors": {}}
    steps = {}
    for label, run in variants.items():
        try:
            result = check(case, run, device)
        except Exception as error:  # a candidate may not compile (shared memory): record it, keep going
            row["errors"][label] = repr(error)[:300]
            continue
        row["variants"][label] = result
        if result["out_rel_err"] < 2e-2 and not result["nan"]:
            steps[label] = partial(lambda run: run(*args_of(case)), run)
    for label, times in rounds_ms(steps, device, reps, rounds, rotate).items():
        if label.endswith(" calls a graph"):  # per call
            times = [t / calls_per_graph for t in times]
        ms = statistics.median(times)
        row["variants"][label] |= {"ms": ms, "rounds_ms": times, **roofline(case, ms, bandwidth, matmul)}
    row["decode_kernel_alone_ms"] = without_merge(lambda: mla_decode(*args_of(case), SCALE), device, reps)
    if name == "H16 B128 S4k":
        args = args_of(case)
        row["eager_us"] = {
            "baseline": eager_us(lambda: baseline.mla_decode(*args, SCALE)),
            "now": eager_us(lambda: mla_decode(*args, SCALE)),
            "now, validate=True": eager_us(lambda: mla_decode(*args, SCALE, validate=True)),
        }
    return row


def page_ordered_slots(slots: torch.Tensor) -> torch.Tensor:
    """As many slots, filling whole random pages in order (what a prefill writes), instead of random single slots."""
    pages = torch.randperm(2 * len(slots) // PAGE, device=slots.device)[: len(slots) // PAGE]
    return (pages[:, None] * PAGE + torch.arange(PAGE, device=slots.device)).flatten().to(slots.dtype)


def bench_append(baseline, steps_between, device, reps, rounds, slot_layout="random"):
    args = append_args(device, 65536)
    if slot_layout == "pages":
        args["slot_mapping"] = page_ordered_slots(args["slot_mapping"])
    upcast = {key: value.double() if value.is_floating_point() else value for key, value in args.items()}
    mla_cache_append(**upcast, backend="torch")
    ordered = ("c_kv", "k_pe", "cos", "sin", "positions", "ckv_cache", "kpe_cache", "slot_mapping", "norm_weight")

    def tiled(tile):
        append_ops.cache_append(*(args[key] for key in ordered), 1e-6, tile=tile)

    variants = {"baseline": lambda: baseline.mla_cache_append(**args), "now": lambda: mla_cache_append(**args)}
    variants |= {f"tile {tile}": partial(tiled, tile) for tile in APPEND_TILES}
    for label, package in steps_between.items():
        variants[label] = partial(lambda package: package.mla_cache_append(**args), package)
    errors = {}
    written = args["slot_mapping"].long()
    for label, run in variants.items():
        for key in ("ckv_cache", "kpe_cache"):
            args[key].view(-1, args[key].shape[-1])[written] = float("nan")  # every written row must be set
        run()
        errors[label] = max(rel_error(args[key], upcast[key]) for key in ("ckv_cache", "kpe_cache"))
    payload = torch.randn(args["c_kv"].shape[0], RANK + ROPE, device=device, dtype=torch.bfloat16)
    target = torch.empty_like(payload)
    # The goal's yardstick is the contiguous copy; the same rows scattered to the same slots by torch (no norm, no
    # rotation) shows what the slots' scatter alone costs.
    ckv_rows, kpe_rows = (args[key].view(-1, args[key].shape[-1]) for key in ("ckv_cache", "kpe_cache"))

    def scatter_copy():
        ckv_rows.index_copy_(0, written, args["c_kv"])
        kpe_rows.index_copy_(0, written, args["k_pe"])

    steps = {"copy of the same rows": lambda: target.copy_(payload), "scatter copy (index_copy_)": scatter_copy}
    # The ceiling at these slots: the same rows moved by a Triton kernel with the append's hints and no math; in
    # token order, what the kernel's shape alone costs; and sorting the slots (what ordering the writes would add).
    steps |= {f"Triton scatter, no math {tile}": partial(scatter_rows, args, tile) for tile in SCATTER_TILES}
    steps["Triton scatter, no math, slots in token order (2, 1)"] = partial(scatter_rows, args, (2, 1), True)
    steps["torch.sort of the slots"] = lambda: torch.sort(args["slot_mapping"])
    steps |= variants
    every_round = rounds_ms(steps, device, reps, rounds)
    times = {label: statistics.median(values) for label, values in every_round.items()}
    copy = times["copy of the same rows"]
    return {label: {"ms": ms, "vs_copy": ms / copy, "rel_err": errors.get(label), "rounds_ms": every_round[label]}
            for label, ms in times.items()}  # fmt: skip


def markdown(report):
    lines = [f"# kernels_decode_rounds on {report['device']}, {report['rounds']} rounds", "",
             f"copy {report['copy_Bps'] / 1e12:.3f} TB/s, bf16 matmul {report['matmul_flops'] / 1e12:.0f} TFLOP/s", "",
             "| shape | variant | us | TB/s | TFLOPS | of roofline | x baseline | rel err |",
             "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for name, row in report["decode"].items():
        base = row["variants"].get("baseline", {}).get("ms")
        for label, v in row["variants"].items():
            if "ms" not in v:
                lines.append(f"| {name} | {label} | - | - | - | - | - | {v['out_rel_err']:.1e} (rejected) |")
                continue
            ratio = f"{base / v['ms']:.3f}" if base else "-"
            lines.append(f"| {name} | {label} | {v['ms'] * 1e3:.1f} | {v['TBps']:.2f} | {v['TFLOPS']:.0f} | "
                         f"{v['roofline_frac']:.1%} | {ratio} | {v['out_rel_err']:.1e} |")  # fmt: skip
        for label, error in row["errors"].items():
            lines.append(f"| {name} | {label} | failed: {error[:80]} | | | | | |")
        if "decode_kernel_alone_ms" in row:
            lines += ["", f"{name}: decode kernel alone (merge left out) {row['decode_kernel_alone_ms'] * 1e3:.1f} us",
                      ""]  # fmt: skip
        if "eager_us" in row:
            eager = ", ".join(f"{label} {us:.0f} us" for label, us in row["eager_us"].items())
            lines += ["", f"{name} eager per call (no graph): {eager}", ""]
    for heads, v in report.get("varlen", {}).items():
        lines += ["", f"variable / uniform lengths H{heads}: median {v['median']:.3f} (rounds "
                  + ", ".join(f"{r:.3f}" for r in v["rounds"]) + ")"]  # fmt: skip
    if "context_sweep" in report:
        lines += ["", "| B4 H16 context sweep: tokens per sequence | us | decode kernel alone us | floor us |",
                  "|---|---|---|---|"]  # fmt: skip
        for context, v in report["context_sweep"].items():
            lines.append(f"| {context} | {v['ms'] * 1e3:.1f} | {v['kernel_alone_ms'] * 1e3:.1f} | "
                         f"{v['floor_ms'] * 1e3:.1f} |")  # fmt: skip
    for layout, rows in report.get("append", {}).items():
        lines += ["", f"| cache append, 65,536 tokens, {layout} slots | us | x copy | rel err |", "|---|---|---|---|"]
        for label, v in rows.items():
            error = "-" if v["rel_err"] is None else f"{v['rel_err']:.1e}"
            lines.append(f"| {label} | {v['ms'] * 1e3:.1f} | {v['vs_copy']:.3f} | {error} |")
    return "\n".join(lines) + "\n"


def varlen_rounds(heads, device, reps, rounds):
    cases = [decode_case(heads, 128, 4096, 1, lengths, device) for lengths in ("uniform", "normal")]
    ratios = []
    for _ in range(rounds):
        uniform, varlen = (median_ms(lambda c=case: mla_decode(*args_of(c), SCALE), device, reps) for case in cases)
        ratios.append(varlen / uniform)
    return {"rounds": ratios, "median": statistics.median(ratios)}


def context_sweep(device, reps, rounds, bandwidth):
    """B4 H16 at growing contexts, full decode and the decode kernel alone (median over rounds): the intercept of
    time against tokens is the fixed cost of a launch (first tiles, tail, merge), the slope the streaming rate."""
    rows = {}
    for context in (8192, 16384, 32768, 65536):
        case = decode_case(16, 4, context, 1, "uniform", device)
        full, alone = [], []
        for _ in range(rounds):
            full.append(median_ms(lambda c=case: mla_decode(*args_of(c), SCALE), device, reps))
            alone.append(without_merge(lambda c=case: mla_decode(*args_of(c), SCALE), device, reps))
        floor_ms = 4 * context * BYTES_PER_TOKEN / bandwidth * 1e3
        rows[context] = {"ms": statistics.median(full), "kernel_alone_ms": statistics.median(alone),
                         "floor_ms": floor_ms}  # fmt: skip
        del case
        torch.cuda.empty_cache()
    return rows


def load_package(label: str, folder: str):
    """A copy of ``seamfix.runtime.kernels`` (relative imports only) imported under its own name."""
    init = Path(folder) / "__init__.py"
    spec = importlib.util.spec_from_file_location(f"step_{len(label)}_{abs(hash(label))}", init,
                                                  submodule_search_locations=[folder])  # fmt: skip
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", required=True, help="folder holding the baseline package baseline_kernels")
    parser.add_argument("--reps", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--shapes", default="", help="comma-separated shape names (default: all)")
    parser.add_argument("--no-append", action="store_true")
    parser.add_argument("--no-decode", action="store_true")
    parser.add_argument("--no-varlen", action="store_true")
    parser.add_argument("--gluon-modules", default="", help="comma-separated candidate Gluon decode modules")
    parser.add_argument("--no-candidates", action="store_true", help="leave out the CANDIDATES tiles")
    parser.add_argument("--step", action="append", default=[], metavar="LABEL=DIR",
                        help="another copy of the kernels package (a step between), timed as a variant")  # fmt: skip
    parser.add_argument("--context-sweep", action="store_true", help="also time B4 H16 at 8k to 64k tokens")
    parser.add_argument("--rotate", action="store_true", help="round r starts with variant r (decode shapes)")
    parser.add_argument("--calls-per-graph", type=int, default=1,
                        help="also time N calls in one graph, per call (baseline, now, steps)")  # fmt: skip
    parser.add_argument("--host-ahead", type=int, default=0, metavar="CYCLES",
                        help="GPU sleep queued before each timed batch (kernels_train.HOST_AHEAD_CYCLES)")  # fmt: skip
    args = parser.parse_args()
    kernels_train.HOST_AHEAD_CYCLES = args.host_ahead
    sys.path.insert(0, args.baseline)
    baseline = importlib.import_module("baseline_kernels")
    device = torch.device("cuda")
    torch.manual_seed(0)
    report = {"device": torch.cuda.get_device_name(), "rounds": args.rounds}
    report["copy_Bps"] = bandwidth = copy_bandwidth(device, args.reps)
    report["matmul_flops"] = matmul = matmul_ceiling(device, args.reps)
    print(f"copy {bandwidth / 1e12:.3f} TB/s, matmul {matmul / 1e12:.0f} TFLOP/s", flush=True)
    out = Path(os.environ.get("OUT", "out"))
    out.mkdir(parents=True, exist_ok=True)
    steps_between = {label: load_package(label, folder) for label, folder in (s.split("=", 1) for s in args.step)}
    report["decode"] = {}
    for name in () if args.no_decode else args.shapes.split(",") if args.shapes else SHAPES:
        candidates = [module_name for module_name in args.gluon_modules.split(",") if module_name]
        report["decode"][name] = bench_shape(name, baseline, steps_between, device, args.reps, args.rounds, bandwidth,
                                             matmul, candidates, not args.no_candidates, args.rotate,
                                             args.calls_per_graph)  # fmt: skip
        torch.cuda.empty_cache()
        (out / "kernels_decode_rounds.json").write_text(json.dumps(report, indent=2))
        print(markdown(report).splitlines()[-1], flush=True)
    if not (args.no_varlen or args.no_decode):
        report["varlen"] = {heads: varlen_rounds(heads, device, args.reps, args.rounds) for heads in (16, 128)}
        (out / "kernels_decode_rounds.json").write_text(json.dumps(report, indent=2))
        print(f"variable / uniform lengths: {report['varlen']}", flush=True)
    if args.context_sweep:
        report["context_sweep"] = context_sweep(device, args.reps, args.rounds, bandwidth)
        print(markdown(report).split("B4 H16 context sweep")[-1], flush=True)
    if not args.no_append:
        # Random single slots (decode steps of many sequences), and whole pages in order (a prefill).
        report["append"] = {layout: bench_append(baseline, steps_between, device, args.reps, args.rounds, layout)
                            for layout in ("random", "pages")}  # fmt: skip
    (out / "kernels_decode_rounds.json").write_text(json.dumps(report, indent=2))
    (out / "kernels_decode_rounds.md").write_text(markdown(report))
    print(markdown(report))


if __name__ == "__main__":
    main()
