"""GPU benchmark of seamfix.runtime.kernels' training ops (issue 5): correctness, then timing.

Checks each op on fresh random inputs with poisoned outputs against float64 (and megatron-core's Triton
kernels when importable), then times forward and backward against megatron-core's fused MLA RoPE and the
unfused PyTorch sequence; down-norm-up against the unfused chain (time and peak memory). Copy bandwidth is
measured first, in the same run. Writes $OUT/kernels_train.json and $OUT/kernels_train.md (OUT defaults to ./out).
``--smoke`` runs tiny shapes on whatever device is there (CPU included) to check the script end to end.
"""

import argparse
import json
import os
import statistics
import time
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F

from seamfix.runtime.kernels import fused_down_norm_up, mla_rope_kv, mla_rope_q

SHAPES = {  # heads, q_lora_rank (None: q projected from hidden), hidden; qk_nope 128, rope 64, v 128
    "V2-Lite": {"heads": 16, "hidden": 2048, "q_rank": None},
    "V3": {"heads": 128, "hidden": 7168, "q_rank": 1536},
}
NOPE, ROPE, V, KV_RANK = 128, 64, 128, 512
ROUNDS = 3
ALL_TIMES = ("q_fwd_ms", "q_bwd_ms", "q_bwd_train_ms", "kv_fwd_ms", "kv_bwd_ms")

try:
    from megatron.core.fusions.fused_mla_yarn_rope_apply import fused_apply_mla_rope_for_kv, fused_apply_mla_rope_for_q
except ImportError:
    fused_apply_mla_rope_for_q = fused_apply_mla_rope_for_kv = None


# GPU cycles of torch.cuda._sleep queued before each timed batch of replays (0: none, the recorded runs' method):
# the GPU then waits on the sleep, not on the host, while the host launches the first replay, whose launch latency
# otherwise lands inside the timing (H200, one decode a graph: 0.8 us a call of 47; benchmarks/RESULTS.md).
HOST_AHEAD_CYCLES = 0


def median_ms(step, device, reps, replays=10):
    """Device time of one ``step()`` (no arguments, static tensors), median over ``reps``. On CUDA the step is
    captured once in a CUDA graph and replayed ``replays`` times between two events, so host-side Python and
    launch latency stay out: the numbers compare kernels, as the goals ask. Elsewhere (--smoke) a host clock."""
    if device.type != "cuda":
        times = []
        for _ in range(reps):
            began = time.perf_counter()
            step()
            times.append((time.perf_counter() - began) * 1e3)
        return statistics.median(times)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # warm-up off the capture: compilation and autotuning stay out of the graph
        for _ in range(3):
            step()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        step()
    times = []
    for _ in range(reps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        if HOST_AHEAD_CYCLES:
            torch.cuda._sleep(HOST_AHEAD_CYCLES)
        start.record()
        for _ in range(replays):
            graph.replay()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end) / replays)
    return statistics.median(times)


def copy_bandwidth(device, reps):
    src = torch.randn(256 * 2**20 // 4 if device.type == "cuda" else 2**20, device=device)
    dst = torch.empty_like(src)
    ms = median_ms(lambda: dst.copy_(src), device, reps)
    return 2 * src.numel() * 4 / (ms * 1e-3)


def rel_error(actual, expected):
    return ((actual.double() - expected).norm() / expected.norm()).item()


def rope_inputs(s, b, h, device, dtype):
    angles = torch.rand(s, ROPE // 2, device=device, dtype=torch.float64) * 6
    freqs = torch.cat((angles, angles), -1)[:, None, None, :]
    return {
        "q": torch.randn(s, b, h, NOPE + ROPE, device=device, dtype=dtype),
        "kv": torch.randn(s, b, h, NOPE + V, device=device, dtype=dtype),
        "k_pos_emb": torch.randn(s, b, 1, ROPE, device=device, dtype=dtype),
        "cos": freqs.cos().to(dtype),
        "sin": freqs.sin().to(dtype),
        "freqs64": freqs,
    }


def rotate64(x, freqs):
    x = x.double()
    pairs = torch.cat((x[..., 0::2], x[..., 1::2]), -1)
    rotated_half = torch.cat((-pairs[..., ROPE // 2 :], pairs[..., : ROPE // 2]), -1)
    return pairs * freqs.cos() + rotated_half * freqs.sin()


def check_rope(t, h):
    """Relative errors vs float64 of our q/kv outputs (poisoned buffers first) and vs megatron's kernels."""
    q = t["q"].clone()
    expected_q = torch.cat((q[..., :NOPE].double(), rotate64(q[..., NOPE:], t["freqs64"])), -1)
    ours_q = mla_rope_q(q.clone(), t["cos"], t["sin"], NOPE, ROPE)
    key, value = mla_rope_kv(t["kv"], t["k_pos_emb"], t["cos"], t["sin"], ROPE, NOPE, V)
    k_rope = rotate64(t["k_pos_emb"], t["freqs64"]).expand(*t["kv"].shape[:-1], ROPE)
    expected_key = torch.cat((t["kv"][..., :NOPE].double(), k_rope), -1)
    result = {
        "q_rel_err": rel_error(ours_q, expected_q),
        "key_rel_err": rel_error(key, expected_key),
        "value_exact": bool(torch.equal(value, t["kv"][..., NOPE:])),
        "nan": bool(ours_q.isnan().any() or key.isnan().any()),
    }
    if fused_apply_mla_rope_for_q is not None and q.is_cuda:
        theirs_q = fused_apply_mla_rope_for_q(q.clone(), t["cos"], t["sin"], NOPE, ROPE)
        theirs_key, _ = fused_apply_mla_rope_for_kv(t["kv"], t["k_pos_emb"], t["cos"], t["sin"], ROPE, NOPE, V)
        result["q_vs_megatron"] = rel_error(ours_q, theirs_q.double())
        result["key_vs_megatron"] = rel_error(key, theirs_key.double())
    return result


def unfused_rope(q, kv, k_pos_emb, cos, sin):
    def rot(x):
        pairs = torch.cat((x[..., 0::2], x[..., 1::2]), -1)
        return pairs * cos + torch.cat((-pairs[..., ROPE // 2 :], pairs[..., : ROPE // 2]), -1) * sin

    q_nope, q_pe = q.split([NOPE, ROPE], -1)
    k_nope, value = kv.split([NOPE, V], -1)
    query = torch.cat((q_nope, rot(q_pe)), -1)
    key = torch.cat((k_nope, rot(k_pos_emb).expand(*k_nope.shape[:-1], ROPE)), -1)
    return query.contiguous(), key.contiguous(), value.contiguous()


def time_rope(t, device, reps, bandwidth):
    cos, sin = t["cos"], t["sin"]
    q, kv, emb = t["q"], t["kv"], t["k_pos_emb"]
    el = q.element_size()
    q_bytes = 2 * q[..., NOPE:].numel() * el  # in place: the rope slice read and written
    kv_bytes = (kv.numel() + emb.numel() + kv[..., :NOPE].numel() + q[..., NOPE:].numel() + kv[..., NOPE:].numel()) * el
    # backward: read grad_key and grad_value, write grad_kv and grad_k_pos_emb
    kv_bwd_bytes = (kv[..., :NOPE].numel() + q[..., NOPE:].numel() + 2 * kv[..., NOPE:].numel() + kv[..., :NOPE].numel()
                    + emb.numel()) * el  # fmt: skip
    variants = {"ours": (mla_rope_q, mla_rope_kv)}
    if fused_apply_mla_rope_for_q is not None and device.type == "cuda":
        variants["megatron"] = (fused_apply_mla_rope_for_q, fused_apply_mla_rope_for_kv)
    # Rounds alternate the implementations, so that a drift of the card's clocks (after the matmuls of the last
    # shape, say) reaches all of them alike; each time is the median of its rounds.
    rounds = [{name: time_variant(fq, fkv, t, device, reps) for name, (fq, fkv) in variants.items()}
              for _ in range(ROUNDS)]  # fmt: skip
    rows = {name: {key: statistics.median(r[name][key] for r in rounds) for key in ALL_TIMES} for name in variants}
    for row in rows.values():
        for key, moved in (("q_fwd", q_bytes), ("q_bwd", q_bytes), ("q_bwd_train", q_bytes), ("kv_fwd", kv_bytes),
                           ("kv_bwd", kv_bwd_bytes)):  # fmt: skip
            row[f"{key}_bw_frac"] = moved / (row[f"{key}_ms"] * 1e-3) / bandwidth
    rows["unfused"] = {"fwd_ms": median_ms(lambda: unfused_rope(q, kv, emb, cos[: q.shape[0]], sin), device, reps)}
    return rows


class AttentionStandIn(torch.autograd.Function):
    """What attention is to the rotated q in training, for the q backward's timing: its backward hands q's gradient
    over as a new buffer that nothing else holds (attention's backward writes dq into a fresh tensor), made by
    ``new_gradient`` (``torch.empty_like``: an allocation, no kernel, when timing). Its output is a scalar, so that
    its own backward costs one element's seed; that cost is measured without the rope and subtracted."""

    @staticmethod
    def forward(ctx, q, new_gradient):
        ctx.new_gradient = new_gradient
        return q.new_zeros(())

    @staticmethod
    def backward(ctx, grad):
        return ctx.new_gradient(), None


def time_variant(fq, fkv, t, device, reps, times=ALL_TIMES):
    """One implementation's ``times``; a backward alone is (forward + backward) - forward, captured alike.

    Two q backwards: ``q_bwd_ms`` from ``out.backward(grad_q)``, a gradient the caller holds (megatron-core's kernel
    rotates the caller's tensor in place, ours rotates a copy); ``q_bwd_train_ms`` from the gradient attention's
    backward hands over (``AttentionStandIn``), which both rotate in place, less the stand-in's own backward."""
    cos, sin = t["cos"], t["sin"]
    q, kv, emb = t["q"], t["kv"], t["k_pos_emb"]
    grad_q = torch.randn_like(q)
    grad_key = torch.randn(*kv.shape[:-1], NOPE + ROPE, device=device, dtype=q.dtype)
    grad_value = torch.randn(*kv.shape[:-1], V, device=device, dtype=q.dtype)
    q_leaf, kv_leaf, emb_leaf = (x.clone().requires_grad_() for x in (q, kv, emb))
    in_place = q.clone()

    def q_forward():
        return fq(q_leaf.clone(), cos, sin, NOPE, ROPE)

    def kv_forward():
        return fkv(kv_leaf, emb_leaf, cos, sin, ROPE, NOPE, V)

    def q_step():
        q_leaf.grad = None  # else the captured step would also time adding into last replay's gradient
        q_forward().backward(grad_q)

    def attention_forward(rotate=True):
        rotated = q_forward() if rotate else q_leaf.clone()
        return AttentionStandIn.apply(rotated, lambda: torch.empty_like(q))

    def attention_step(rotate=True):
        q_leaf.grad = None
        attention_forward(rotate).backward()

    def kv_step():
        kv_leaf.grad = emb_leaf.grad = None
        torch.autograd.backward(kv_forward(), (grad_key, grad_value))

    def backward_ms(step, forward):
        return median_ms(step, device, reps) - median_ms(forward, device, reps)

    timings = {
        "q_fwd_ms": lambda: median_ms(lambda: fq(in_place, cos, sin, NOPE, ROPE), device, reps),
        "q_bwd_ms": lambda: backward_ms(q_step, q_forward),
        "q_bwd_train_ms": lambda: (
            backward_ms(attention_step, attention_forward)
            - backward_ms(partial(attention_step, False), partial(attention_forward, False))
        ),
        "kv_fwd_ms": lambda: median_ms(lambda: fkv(kv, emb, cos, sin, ROPE, NOPE, V), device, reps),
        "kv_bwd_ms": lambda: backward_ms(kv_step, kv_forward),
    }
    return {key: timing() for key, timing in timings.items() if key in times}


SWEEP = {  # TILES entries of runtime/kernels/mla_rope/triton_ops.py tried by --sweep, per op
    op: [{"max_heads": h, "num_warps": w} for h in (16, 32, 64, 128) for w in (4, 8, 16)]
    for op in ("q", "kv_forward", "kv_backward")
}  # fmt: skip


def sweep_rope_tiles(t, device, reps):
    """Our kernels' times under each tile of SWEEP (the op's own times only), the shipped tiles restored after."""
    from seamfix.runtime.kernels.mla_rope import triton_ops

    timed_ops = {
        "q": ("q_fwd_ms", "q_bwd_ms", "q_bwd_train_ms"),
        "kv_forward": ("kv_fwd_ms",),
        "kv_backward": ("kv_bwd_ms",),
    }
    shipped = dict(triton_ops.TILES)
    results = []
    try:
        for op, tiles in SWEEP.items():
            for tile in tiles:
                triton_ops.TILES[op] = tile
                results.append(
                    {"op": op, "tile": tile} | time_variant(mla_rope_q, mla_rope_kv, t, device, reps, timed_ops[op])
                )
            triton_ops.TILES[op] = shipped[op]
    finally:
        triton_ops.TILES.update(shipped)
    return results


def time_down_norm_up(tokens, hidden, rank, out_dim, device, dtype, reps):
    x = torch.randn(tokens, hidden, device=device, dtype=dtype, requires_grad=True)
    w_down = (torch.randn(rank, hidden, device=device, dtype=dtype) / hidden**0.5).requires_grad_()
    w_up = (torch.randn(out_dim, rank, device=device, dtype=dtype) / rank**0.5).requires_grad_()
    norm_weight = torch.ones(rank, device=device, dtype=dtype, requires_grad=True)
    grad = torch.randn(tokens, out_dim, device=device, dtype=dtype)
    leaves = (x, w_down, w_up, norm_weight)

    def fresh_gradients(chain):
        for leaf in leaves:
            leaf.grad = None  # the timed step then writes gradients rather than adding to the last ones
        return chain()

    chains = {
        "fused": lambda: fused_down_norm_up(x, w_down, w_up, norm_weight, 1e-6),
        "unfused": lambda: F.linear(F.rms_norm(F.linear(x, w_down), (rank,), norm_weight, 1e-6), w_up),
    }
    result = {}
    for name, chain in chains.items():
        peak = held = None  # measured before any graph capture, whose private pools would blur the count
        if device.type == "cuda":
            fresh_gradients(chain).backward(grad)  # once first: cuBLAS allocates its workspace on a first call
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
            out = chain()
            # What a deep network pays per layer: memory kept from forward to backward (saved activations).
            held = torch.cuda.memory_allocated() - base - out.numel() * out.element_size()
            out.backward(grad)
            torch.cuda.synchronize()
            peak = torch.cuda.max_memory_allocated() - base
            del out
        ms = median_ms(lambda: fresh_gradients(chain).backward(grad), device, reps)  # noqa: B023
        result[name] = {"fwd_bwd_ms": ms, "peak_extra_bytes": peak, "held_fwd_to_bwd_bytes": held}
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny shapes, any device (end-to-end check)")
    parser.add_argument("--reps", type=int, default=50)
    parser.add_argument("--sweep", action="store_true", help="also time our rope kernels under each SWEEP tile")
    parser.add_argument("--rope-only", action="store_true", help="leave out fused_down_norm_up")
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch.bfloat16
    s, b = (16, 2) if args.smoke else (4096, 4)
    reps = 3 if args.smoke else args.reps
    torch.manual_seed(0)
    report = {"device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu", "s": s, "b": b}
    report["copy_bandwidth_Bps"] = bandwidth = copy_bandwidth(device, reps)
    for shape, cfg in SHAPES.items():
        heads = 2 if args.smoke else cfg["heads"]
        report[shape] = {"check": check_rope(rope_inputs(s, b, heads, device, dtype), heads)}
        report[shape]["rope"] = time_rope(rope_inputs(s, b, heads, device, dtype), device, reps, bandwidth)
        if args.sweep:
            report[shape]["sweep"] = sweep_rope_tiles(rope_inputs(s, b, heads, device, dtype), device, reps)
        if args.rope_only:
            continue
        hidden = 64 if args.smoke else cfg["hidden"]
        rank = 32 if args.smoke else KV_RANK
        out_dim = 4 * heads * (NOPE + V) if args.smoke else heads * (NOPE + V)
        report[shape]["down_norm_up"] = time_down_norm_up(s * b, hidden, rank, out_dim, device, dtype, reps)
    out = Path(os.environ.get("OUT", "out"))
    out.mkdir(parents=True, exist_ok=True)
    (out / "kernels_train.json").write_text(json.dumps(report, indent=2))
    lines = [f"# kernels_train on {report['device']} (s={s}, b={b}, bf16)", "",
             f"copy bandwidth: {bandwidth / 1e12:.3f} TB/s", "",
             "| shape | variant | q fwd ms | q bwd ms, caller's gradient | q bwd ms, training | kv fwd ms | kv bwd ms "
             "| q fwd / bwd / training bwd BW | kv fwd / bwd BW |",
             "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for shape in SHAPES:
        for name, row in report[shape]["rope"].items():
            if "q_fwd_ms" in row:
                lines.append(
                    f"| {shape} | {name} | {row['q_fwd_ms']:.4f} | {row['q_bwd_ms']:.4f} | {row['q_bwd_train_ms']:.4f} "
                    f"| {row['kv_fwd_ms']:.4f} | {row['kv_bwd_ms']:.4f} | {row['q_fwd_bw_frac']:.0%} / "
                    f"{row['q_bwd_bw_frac']:.0%} / {row['q_bwd_train_bw_frac']:.0%} "
                    f"| {row['kv_fwd_bw_frac']:.0%} / {row['kv_bwd_bw_frac']:.0%} |"
                )
        lines.append(f"| {shape} | unfused (fwd q+kv) | {report[shape]['rope']['unfused']['fwd_ms']:.4f} | | | | | | |")
    lines += ["", "| shape | check | down-norm-up fwd+bwd ms / held / peak: fused | unfused |", "|---|---|---|---|"]
    for shape in SHAPES:
        dnu = report[shape].get("down_norm_up")
        cells = [
            f"{dnu[v]['fwd_bwd_ms']:.3f} / {dnu[v]['held_fwd_to_bwd_bytes']} / {dnu[v]['peak_extra_bytes']}"
            if dnu else "-" for v in ("fused", "unfused")
        ]  # fmt: skip
        lines.append(f"| {shape} | {json.dumps(report[shape]['check'])} | {cells[0]} | {cells[1]} |")
    for shape in SHAPES if args.sweep else ():
        lines += ["", f"{shape}: tile sweep (ms)", ""]
        for r in report[shape]["sweep"]:
            times = " ".join(f"{key} {value:.4f}" for key, value in r.items() if key.endswith("_ms"))
            lines.append(f"{r['op']} {json.dumps(r['tile'])} {times}")
    (out / "kernels_train.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
