"""The FlashMLA-compatible decode that ``install_mla_kernels`` gives Megatron (issue 18), on the GPU.

Megatron's cache layout (one ``kv_lora_rank + rope`` row per token, ``[blocks, page, 1, 576]``, shuffled blocks),
V2-Lite's 16 heads, ``--batch`` sequences of ``--context`` tokens, bfloat16. Checks ``flash_mla_with_kvcache``
against float64 first, then times, medians of CUDA-event timings: ``flash_mla_with_kvcache`` (``mla_decode``
reading the two parts of the 576-wide rows in place); what it did before, gathering the blocks of the table into
split latent/RoPE caches every call, then ``mla_decode``; ``mla_decode`` alone on caches already split
(seamfix's own layout); and the same math in eager PyTorch (the torch backend, the baseline). One JSON line per
variant to $OUT/flash_mla_decode.jsonl.
"""

import argparse
import os
import statistics
from pathlib import Path

import torch
from mla_core_attention import write_rows

from seamfix.runtime.kernels import mla_decode
from seamfix.runtime.megatron.flash_mla import flash_mla_with_kvcache, get_mla_metadata

HEADS, RANK, ROPE = 16, 512, 64
SCALE = 0.135234


def case(batch, context, page, dtype, seed=0):
    generator = torch.Generator(device="cuda").manual_seed(seed)
    blocks_per = -(-context // page)
    num_blocks = batch * blocks_per + 8
    cache = torch.randn(num_blocks, page, 1, RANK + ROPE, device="cuda", dtype=dtype, generator=generator)
    order = torch.randperm(num_blocks, device="cuda", generator=generator)[: batch * blocks_per]
    table = order.view(batch, blocks_per).int()
    seqlens = torch.full((batch,), context, dtype=torch.int32, device="cuda")
    q = torch.randn(batch, 1, HEADS, RANK + ROPE, device="cuda", dtype=dtype, generator=generator)
    return q, cache, table, seqlens


def float64_reference(q, cache, table, seqlens):
    outputs = []
    for b, length in enumerate(seqlens.tolist()):
        rows = cache[table[b].long()].flatten(0, 1)[:length, 0].double()  # [tokens, 576]
        scores = torch.einsum("shd,td->sht", q[b].double(), rows) * SCALE
        outputs.append(torch.einsum("sht,tr->shr", scores.softmax(-1), rows[:, :RANK]))
    return torch.stack(outputs)


def gathered_decode(q_lat, q_pe, cache, table, seqlens):
    """The FlashMLA stand-in before it read the rows in place: the table's blocks copied into split caches."""
    rows = cache[table.long().flatten(), :, 0]
    local = torch.arange(rows.shape[0], device="cuda", dtype=torch.int32).view(table.shape)
    ckv, kpe = rows[..., :RANK].contiguous(), rows[..., RANK:].contiguous()
    return mla_decode(q_lat, q_pe, ckv, kpe, local, seqlens, SCALE, True)


def median_ms(function, repeats):
    times = []
    for _ in range(repeats + 2):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        function()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times[2:])


def timing_arguments() -> tuple[argparse.Namespace, Path]:
    """The decode benchmarks' options (``--batch`` sequences of ``--context`` tokens in pages of ``--page``,
    ``--repeats`` timings) and their output folder, $OUT (default ./out), created."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--context", type=int, default=4096)
    parser.add_argument("--page", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=20)
    out = Path(os.environ.get("OUT", "out"))
    out.mkdir(parents=True, exist_ok=True)
    return parser.parse_args(), out


def main():
    arguments, out = timing_arguments()
    rows = []
    q, cache, table, seqlens = case(4, 1000, arguments.page, torch.bfloat16, seed=1)
    seqlens = torch.tensor([1000, 17, 640, 999], dtype=torch.int32, device="cuda")
    metadata, splits = get_mla_metadata(seqlens, HEADS, 1)
    got, _ = flash_mla_with_kvcache(q, cache, table, seqlens, RANK, metadata, splits, softmax_scale=SCALE, causal=True)
    expected = float64_reference(q, cache, table, seqlens)
    rows.append({"check": "flash_mla_with_kvcache vs float64, varied lengths",
                 "largest_difference": float((got.double() - expected).abs().max())})  # fmt: skip

    q, cache, table, seqlens = case(arguments.batch, arguments.context, arguments.page, torch.bfloat16)
    metadata, splits = get_mla_metadata(seqlens, HEADS, 1)
    ckv, kpe = cache[:, :, 0, :RANK].contiguous(), cache[:, :, 0, RANK:].contiguous()
    q_lat, q_pe = q[..., :RANK], q[..., RANK:]
    variants = {
        "flash_mla_with_kvcache": lambda: flash_mla_with_kvcache(
            q, cache, table, seqlens, RANK, metadata, splits, softmax_scale=SCALE, causal=True
        ),
        "gather_then_mla_decode": lambda: gathered_decode(q_lat, q_pe, cache, table, seqlens),
        "mla_decode_split_cache": lambda: mla_decode(q_lat, q_pe, ckv, kpe, table, seqlens, SCALE, True),
        "torch_backend_split_cache": lambda: mla_decode(
            q_lat, q_pe, ckv, kpe, table, seqlens, SCALE, True, backend="torch"
        ),
    }
    cache_bytes = arguments.batch * arguments.context * (RANK + ROPE) * 2
    first = variants["flash_mla_with_kvcache"]()[0]
    second = variants["mla_decode_split_cache"]()[0]
    rows.append({"check": "flash_mla_with_kvcache vs mla_decode on split caches",
                 "largest_difference": float((first.float() - second.float()).abs().max())})  # fmt: skip
    for name, function in variants.items():
        milliseconds = median_ms(function, arguments.repeats)
        rows.append({
            "variant": name, "batch": arguments.batch, "context": arguments.context, "page": arguments.page,
            "heads": HEADS, "ms_median": round(milliseconds, 4),
            "cache_read_gb_per_s": round(cache_bytes / milliseconds / 1e6, 1),
            "device": torch.cuda.get_device_name(),
        })  # fmt: skip
    write_rows(rows, out / "flash_mla_decode.jsonl")


if __name__ == "__main__":
    main()
