"""How float32 products should run in the decode kernel and the prefill (issue 18), on the GPU.

Float32 ``tl.dot`` runs as tf32 by default (10-bit mantissa), which made the cached decode decide a 0.001 logit tie
unlike the uncached path (torch's float32 matmul is full precision). For each ``input_precision`` (``tf32``,
``tf32x3``: three tf32 products, ``ieee``: float32 on the FMA units) with tiles that fit the H200's shared memory:
the relative error of ``mla_decode`` against float64 (DeepSeek's 512 + 64 latent, 16 and 128 heads, lengths
1..4096) and the decode time (``--batch`` sequences of ``--context`` tokens, median of CUDA-event timings; bf16's
time for scale). Then the prefill stand-in (``flash_attn_varlen_func``, PyTorch's SDPA) in float32 against float64,
as PyTorch picks its kernel and with the math kernel forced. One JSON line per row to
$OUT/decode_float32_products.jsonl.
"""

import contextlib

import torch
from flash_mla_decode import median_ms, timing_arguments
from mla_core_attention import write_rows

from seamfix.runtime.kernels import mla_decode
from seamfix.runtime.kernels.absorbed_decode.triton_ops import DecodeTiles, decode, default_tiles
from seamfix.runtime.megatron.flash_mla import flash_attn_varlen_func

RANK, ROPE, SCALE = 512, 64, 0.135234
# Tiles per precision and head count that compile within 232,448 bytes on sm_90 (Triton 3.8's figures in
# test_kernels_decode_tiles.py); ieee's are the defaults choose_tiles now takes.
TILES = {
    ("tf32", 16): DecodeTiles(16, 32, 4, 2, 2, dot_precision="tf32"),
    ("tf32", 128): DecodeTiles(64, 16, 8, 2, 1, dot_precision="tf32"),
    ("tf32x3", 16): DecodeTiles(16, 32, 4, 2, 2, dot_precision="tf32x3"),
    ("tf32x3", 128): DecodeTiles(32, 16, 4, 2, 2, dot_precision="tf32x3"),
}


def paged(batch, lengths, heads, dtype, seed, page=64):
    generator = torch.Generator(device="cuda").manual_seed(seed)
    blocks_per = -(-max(lengths) // page)
    num_blocks = batch * blocks_per
    ckv = torch.randn(num_blocks, page, RANK, device="cuda", generator=generator).to(dtype)
    kpe = torch.randn(num_blocks, page, ROPE, device="cuda", generator=generator).to(dtype)
    table = torch.randperm(num_blocks, device="cuda", generator=generator).view(batch, blocks_per).int()
    q_lat = torch.randn(batch, 1, heads, RANK, device="cuda", generator=generator).to(dtype)
    q_pe = torch.randn(batch, 1, heads, ROPE, device="cuda", generator=generator).to(dtype)
    return q_lat, q_pe, ckv, kpe, table, torch.tensor(lengths, dtype=torch.int32, device="cuda")


def relative(actual, expected):
    return float((actual.double() - expected).norm() / expected.norm())


def decode_rows(batch, context, page, repeats):
    rows = []
    for heads in (16, 128):
        check = paged(8, [1, 17, 300, 1000, 2047, 3000, 4000, 4096], heads, torch.float32, seed=heads)
        expected_out, expected_lse = mla_decode(*(t.double() if t.is_floating_point() else t for t in check), SCALE,
                                                backend="torch")  # fmt: skip
        timed = paged(batch, [context] * batch, heads, torch.float32, seed=0, page=page)
        for precision in ("tf32", "tf32x3", "ieee"):
            tiles = TILES.get((precision, heads)) or default_tiles(heads, check[0], ROPE)
            out, lse = decode(*check, SCALE, True, None, tiles)
            milliseconds = median_ms(lambda tiles=tiles, timed=timed: decode(*timed, SCALE, True, None, tiles), repeats)
            rows.append({"kernel": "mla_decode", "dtype": "float32", "precision": precision, "heads": heads,
                         "tiles": [tiles.rows, tiles.tokens, tiles.num_warps],
                         "out_relative_error": relative(out, expected_out),
                         "lse_relative_error": relative(lse, expected_lse), "batch": batch, "context": context,
                         "ms_median": round(milliseconds, 4)})  # fmt: skip
        half = paged(batch, [context] * batch, heads, torch.bfloat16, seed=0, page=page)
        milliseconds = median_ms(lambda half=half: mla_decode(*half, SCALE), repeats)
        rows.append({"kernel": "mla_decode", "dtype": "bfloat16", "heads": heads, "batch": batch, "context": context,
                     "ms_median": round(milliseconds, 4)})  # fmt: skip
    return rows


def prefill_rows():
    """Two sequences of 1000 and 700 tokens, 16 heads, MLA's 192-wide keys and 128-wide values, causal."""
    generator = torch.Generator(device="cuda").manual_seed(3)
    lengths = [1000, 700]
    total = sum(lengths)
    q, k = (torch.randn(total, 16, 192, device="cuda", generator=generator) for _ in range(2))
    v = torch.randn(total, 16, 128, device="cuda", generator=generator)
    starts = torch.tensor([0, lengths[0], total], dtype=torch.int32, device="cuda")
    expected = flash_attn_varlen_func(q.double(), k.double(), v.double(), starts, starts, 1000, 1000, causal=True)
    rows = []
    for kernel in ("chosen by PyTorch", "math"):
        forced = torch.nn.attention.sdpa_kernel(torch.nn.attention.SDPBackend.MATH)
        with forced if kernel == "math" else contextlib.nullcontext():
            got = flash_attn_varlen_func(q, k, v, starts, starts, 1000, 1000, causal=True)
        rows.append({"kernel": "flash_attn_varlen_func (SDPA)", "dtype": "float32", "sdpa_kernel": kernel,
                     "relative_error": relative(got, expected)})  # fmt: skip
    return rows


def main():
    arguments, out = timing_arguments()
    rows = decode_rows(arguments.batch, arguments.context, arguments.page, arguments.repeats) + prefill_rows()
    device = torch.cuda.get_device_name()
    write_rows([{**row, "device": device} for row in rows], out / "decode_float32_products.jsonl")


if __name__ == "__main__":
    main()
