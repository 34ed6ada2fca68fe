"""The decode kernel's default tiles fit a Hopper multiprocessor's shared memory for every dtype, head count and
latent width the ops accept (float32 once asked for 249,856 bytes of 232,448 and Triton raised ``OutOfResources``);
the estimate they are chosen by bounds the kernel as compiled for sm_90, for tensor-core and full-precision float32
products; float32 decodes in float32 on a GPU (tf32 products once decided near ties unlike the uncached path)."""

import re
import subprocess
from pathlib import Path

import pytest
import torch
from decode_case_inputs import SCALE, PagedCase, decode_from_math
from hopper_compile import compile_in_child
from kernels_case_inputs import relative_error

from seamfix.runtime.kernels import KernelInputError, mla_decode
from seamfix.runtime.kernels.absorbed_decode.triton_ops import (
    HOPPER_SHARED_MEMORY,
    MIN_TILE,
    DecodeTiles,
    choose_tiles,
    default_tiles,
    gluon_shared_memory,
    seesaw_shared_memory,
    triton_shared_memory,
)

ELEMENT_SIZES = {"float32": 4, "bfloat16": 2, "float16": 2}
POWERS_OF_TWO = [2**n for n in range(4, 11)]  # kv_lora_rank and rope_dim: the Triton backend takes powers >= 16
ROW_COUNTS = range(1, 257)  # s_q * heads: the choice only depends on which of <= 16, <= 32 and more it is


def launchable(n_rows, rank, rope, element_size, gluon):
    try:
        return choose_tiles(n_rows, rank, rope, element_size, gluon, HOPPER_SHARED_MEMORY)
    except KernelInputError:
        return None


@pytest.mark.parametrize("dtype", ELEMENT_SIZES)
def test_every_default_choice_fits_hoppers_shared_memory(dtype):
    element_size = ELEMENT_SIZES[dtype]
    smallest_refused = []
    for rank in POWERS_OF_TWO:
        for rope in POWERS_OF_TWO:
            # The Gluon kernel is offered where gluon_supported would offer it (16-bit, its sizes in range).
            gluon = element_size == 2 and 32 <= rank <= 512 and rope <= 256
            gluon = gluon and gluon_shared_memory(rank, rope) <= HOPPER_SHARED_MEMORY
            for n_rows in ROW_COUNTS:
                tiles = launchable(n_rows, rank, rope, element_size, gluon)
                if tiles is None:
                    smallest_refused.append((rank, rope))
                    smallest = DecodeTiles(MIN_TILE, MIN_TILE, 4, 2, 2, dot_precision="ieee")
                    assert triton_shared_memory(smallest, rank, rope, element_size) > HOPPER_SHARED_MEMORY
                    continue
                assert tiles.rows in (16, 32, 64) and tiles.tokens in (16, 32, 64)
                if tiles.kernel == "gluon_narrow":
                    used = gluon_shared_memory(rank, rope, tiles.rows, tiles.tokens, tiles.num_stages)
                elif tiles.kernel == "gluon_seesaw":
                    used = seesaw_shared_memory(rank, rope)
                elif tiles.kernel == "gluon":
                    used = gluon_shared_memory(rank, rope, tiles.rows, tiles.tokens, tiles.num_stages)
                else:
                    used = triton_shared_memory(tiles, rank, rope, element_size)
                assert used <= HOPPER_SHARED_MEMORY, (n_rows, rank, rope, tiles)
    # Only latents wider than any MLA model's are refused, never DeepSeek's 512 + 64.
    assert all(rank + rope > 1024 for rank, rope in smallest_refused)


@pytest.mark.parametrize("dtype", ELEMENT_SIZES)
def test_deepseeks_latent_is_served_at_16_and_128_heads(dtype):
    element_size = ELEMENT_SIZES[dtype]
    for n_rows in (16, 32, 128):
        assert launchable(n_rows, 512, 64, element_size, gluon=False) is not None


def test_float32_computes_in_float32_with_tiles_fitted_to_it_and_16_bit_keeps_the_benchmarked_tiles():
    tensor_core_float32 = DecodeTiles(rows=16, tokens=64, num_warps=4, num_stages=2, programs_per_sm=2)
    assert triton_shared_memory(tensor_core_float32, 512, 64, 4) > HOPPER_SHARED_MEMORY

    ieee = {"dot_precision": "ieee"}
    assert choose_tiles(16, 512, 64, 4, False, HOPPER_SHARED_MEMORY) == DecodeTiles(16, 64, 4, 2, 2, **ieee)
    assert choose_tiles(32, 512, 64, 4, False, HOPPER_SHARED_MEMORY) == DecodeTiles(32, 64, 4, 2, 2, **ieee)
    assert choose_tiles(128, 512, 64, 4, False, HOPPER_SHARED_MEMORY) == DecodeTiles(64, 32, 8, 2, 1, **ieee)
    for n_rows, rows, warps, programs_per_sm in ((16, 16, 4, 2), (32, 32, 4, 2), (128, 64, 8, 1)):
        expected = DecodeTiles(rows, 64, warps, 2, programs_per_sm)
        assert choose_tiles(n_rows, 512, 64, 2, False, HOPPER_SHARED_MEMORY) == expected
    assert choose_tiles(128, 512, 64, 2, True, HOPPER_SHARED_MEMORY).kernel == "gluon_seesaw"
    assert choose_tiles(32, 512, 64, 2, True, HOPPER_SHARED_MEMORY) == DecodeTiles(32, 64, 8, 2, 1, "gluon_narrow")
    assert choose_tiles(32, 32, 64, 2, True, HOPPER_SHARED_MEMORY).kernel == "gluon"
    assert choose_tiles(128, 512, 32, 2, True, HOPPER_SHARED_MEMORY).kernel == "gluon"
    assert choose_tiles(16, 512, 64, 2, True, HOPPER_SHARED_MEMORY) == DecodeTiles(16, 64, 4, 2, 1, "gluon_narrow")
    assert choose_tiles(16, 32, 64, 2, True, HOPPER_SHARED_MEMORY).kernel == "triton"  # not whole 64-row products


def test_float32_products_follow_torchs_float32_matmul_precision():
    before = torch.get_float32_matmul_precision()
    q_lat = torch.zeros(1, 1, 16, 512)
    try:
        chosen = {}
        for precision in ("highest", "high", "medium"):
            torch.set_float32_matmul_precision(precision)
            chosen[precision] = default_tiles(16, q_lat, 64)
    finally:
        torch.set_float32_matmul_precision(before)

    assert chosen["highest"] == DecodeTiles(16, 64, 4, 2, 2, dot_precision="ieee")
    # tf32's tensor-core operands need more shared memory: the same rows step fewer tokens.
    assert chosen["high"] == chosen["medium"] == DecodeTiles(16, 32, 4, 2, 2, dot_precision="tf32")
    assert default_tiles(16, q_lat.bfloat16(), 64).dot_precision == "tf32"  # 16-bit products ignore it


def test_smaller_shared_memory_takes_fewer_rows_once_16_tokens_are_too_many():
    tiles = DecodeTiles(32, 16, 4, 2, 2, dot_precision="ieee")
    limit = triton_shared_memory(tiles, 512, 64, 4)

    assert choose_tiles(128, 512, 64, 4, False, limit) == tiles
    with pytest.raises(KernelInputError, match="kv_lora_rank 512 and rope_dim 64 in 4-byte elements"):
        choose_tiles(128, 512, 64, 4, False, 64 * 1024)


# (dtype, float32 products, rows, tokens, warps, stages, rank, rope): float32's choices at 16 and 128 heads and a
# wide latent, tensor-core float32 tiles, and the largest 16-bit Triton choice.
COMPILED = [("fp32", "ieee", 16, 64, 4, 2, 512, 64), ("fp32", "ieee", 64, 32, 8, 2, 512, 64),
            ("fp32", "ieee", 16, 32, 4, 2, 1024, 64), ("fp32", "tf32", 64, 16, 8, 2, 512, 64),
            ("bf16", "tf32", 64, 64, 8, 2, 512, 64)]  # fmt: skip


@pytest.mark.parametrize("compiled", COMPILED, ids=str)
def test_estimate_bounds_the_kernel_compiled_for_hopper(compiled):
    pytest.importorskip("triton")
    dtype, precision, rows, tokens, warps, stages, rank, rope = compiled
    constants = {"PAGE": 64, "RANK": rank, "ROPE": rope, "BLOCK_H": rows, "BLOCK_N": tokens, "BLOCK_B": 128,
                 "CAUSAL": True, "DOT_PRECISION": precision, "stride_cr": rank, "stride_kr": rope}  # fmt: skip

    shared = compile_in_child("triton", dtype, constants, num_warps=warps, num_stages=stages)

    tiles = DecodeTiles(rows, tokens, warps, stages, 1, dot_precision=precision)
    estimate = triton_shared_memory(tiles, rank, rope, 4 if dtype == "fp32" else 2)
    # An upper bound, and not so loose that it refuses tiles that fit.
    assert shared <= estimate < 1.3 * shared


def test_default_16_row_tile_keeps_its_registers(tmp_path):
    """The bf16 tile 16 heads decode with, over the dense cache layout. With the caches' row strides as run-time
    values every row address of a tile took registers of its own: ptxas's stack frame went from 40 to 160 bytes
    and H16 B128 S4k from 161 to 168 us on an H200 (benchmarks/RESULTS.md, fifth pass); 16 bytes with them
    constant."""
    triton = pytest.importorskip("triton")
    constants = {"PAGE": 64, "RANK": 512, "ROPE": 64, "BLOCK_H": 16, "BLOCK_N": 64, "BLOCK_B": 128, "CAUSAL": True,
                 "DOT_PRECISION": "tf32", "stride_cr": 512, "stride_kr": 64}  # fmt: skip
    compile_in_child("triton", "bf16", constants, tmp_path / "decode.ptx", num_warps=4, num_stages=2)

    ptxas = Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / "ptxas"
    assemble = [ptxas, "-v", "--gpu-name", "sm_90a", tmp_path / "decode.ptx", "-o", tmp_path / "decode.cubin"]
    report = subprocess.run(assemble, capture_output=True, text=True, check=True).stderr
    assert int(re.search(r"(\d+) bytes stack frame", report).group(1)) <= 64, report


GPU_CASES = {  # heads, s_q, lengths, block size
    "16 heads": (16, 1, [1, 300, 1000, 77], 64),
    "16 heads, two new tokens": (16, 2, [2, 129, 700], 64),
    "128 heads": (128, 1, [5, 640, 1100], 64),
}


@pytest.mark.skipif(not torch.cuda.is_available(), reason="runs the compiled kernel: needs a CUDA GPU")
@pytest.mark.parametrize("name", GPU_CASES)
def test_float32_decode_at_deepseeks_latent_matches_float64_math(name):
    heads, s_q, lengths, block_size = GPU_CASES[name]
    case = PagedCase(lengths, block_size, torch.float32, torch.Generator().manual_seed(heads + s_q), heads, s_q,
                     rank=512, rope=64)  # fmt: skip

    out, lse = mla_decode(case.q_lat.cuda(), case.q_pe.cuda(), *(t.cuda() for t in case.cache_args()), SCALE)

    expected_out, expected_lse = decode_from_math(case, causal=True)
    assert out.dtype == torch.float32 and not out.isnan().any()
    # Full float32 products: float32 rounding only (tf32 products were off by about 1e-3).
    assert relative_error(out.cpu(), expected_out) < 1e-5
    assert relative_error(lse.cpu(), expected_lse) < 1e-5


def test_rows_that_cp_async_cannot_copy_go_to_the_triton_kernel(monkeypatch):
    """The Gluon kernels copy query and cache rows with cp.async, which Triton fails to compile for rows it cannot
    prove 4-byte aligned ("cp.async does not support transfers smaller than 4 bytes", compiled for sm_90): a query
    at an odd offset or with rows 520 wide, or a one-block cache with an odd block stride, was handed to them on
    Hopper. Checked here with the device's answers stood in for."""
    from seamfix.runtime.kernels.absorbed_decode import triton_ops

    monkeypatch.setattr(triton_ops, "_capability", lambda index: (9, 0))
    monkeypatch.setattr(triton_ops, "_gluon_importable", lambda: True)
    bf16 = {"dtype": torch.bfloat16}
    q_lat, q_pe = torch.zeros(2, 1, 16, 512, **bf16), torch.zeros(2, 1, 16, 64, **bf16)
    cache = torch.zeros(3, 64, 64, **bf16)
    assert triton_ops.gluon_supported(q_lat, 64, (q_pe, cache))
    assert triton_ops.gluon_supported(q_lat[:, :, :1].expand(-1, -1, 16, -1), 64, (q_pe,))  # stride 0 is aligned
    assert not triton_ops.gluon_supported(torch.zeros(2, 1, 16, 513, **bf16)[..., 1:], 64, (q_pe,))
    assert not triton_ops.gluon_supported(torch.zeros(2, 1, 16, 520, **bf16)[..., :512], 64, (q_pe,))
    assert not triton_ops.gluon_supported(q_lat, 64, (torch.zeros(2, 1, 16, 72, **bf16)[..., 8:],))
    one_block = torch.zeros(64 * 64 + 8, **bf16).as_strided((1, 64, 64), (64 * 64 + 8, 64, 1))  # its stride unused
    assert not triton_ops.gluon_supported(q_lat, 64, (q_pe, one_block))
