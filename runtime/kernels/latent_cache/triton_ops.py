"""Launch of the ``mla_cache_append`` kernel."""

import triton

from ..backend import check_int32_offsets, one_launch_at_a_time, span
from .triton_kernels import cache_append_kernel

(cache_append_kernel,) = one_launch_at_a_time(cache_append_kernel)

# Tokens per program and warps: two rows of 512 + 64 channels in one warp, many small programs in flight (the best
# of the tiles benchmarks/kernels_decode_rounds.py sweeps on an H200 with the streaming hints; persistent programs
# prefetching their next rows were slower, benchmarks/RESULTS.md).
TILE = (2, 1)


def cache_append(
    c_kv, k_pe, cos, sin, positions, ckv_cache, kpe_cache, slot_mapping, norm_weight, eps, tile=TILE
) -> None:
    tokens_per_program, num_warps = tile
    check_int32_offsets(c_kv=span(c_kv), k_pe=span(k_pe))
    n_tokens, rank = c_kv.shape
    rope_dim = k_pe.shape[-1]
    cos, sin = cos.reshape(-1, rope_dim).contiguous(), sin.reshape(-1, rope_dim).contiguous()
    has_norm = norm_weight is not None
    # Without a norm weight the kernel never reads NORM_WEIGHT; any tensor fills the pointer slot.
    norm_weight = norm_weight.contiguous() if has_norm else c_kv
    cache_append_kernel[(triton.cdiv(n_tokens, tokens_per_program),)](
        c_kv, k_pe, cos, sin, positions, slot_mapping, norm_weight, ckv_cache, kpe_cache, n_tokens,
        ckv_cache.shape[0] * ckv_cache.shape[1], cos.shape[0], c_kv.stride(0), k_pe.stride(0), eps, RANK=rank,
        HALF=rope_dim // 2, HAS_NORM=has_norm, BLOCK_T=tokens_per_program,
        num_warps=num_warps,
    )  # fmt: skip
