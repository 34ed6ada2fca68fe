"""Launch of the ``mla_cache_append`` kernel."""

import triton

from .triton_kernels import cache_append_kernel

# Tokens per program: a few rows of 512 + 64 channels keep each program's loads wide without spilling.
TOKENS_PER_PROGRAM = 4


def cache_append(c_kv, k_pe, cos, sin, positions, ckv_cache, kpe_cache, slot_mapping, norm_weight, eps) -> None:
    n_tokens, rank = c_kv.shape
    rope_dim = k_pe.shape[-1]
    # Without a norm weight the kernel never reads NORM_WEIGHT; any tensor fills the pointer slot.
    cache_append_kernel[(triton.cdiv(n_tokens, TOKENS_PER_PROGRAM),)](
        c_kv, k_pe, cos.reshape(-1, rope_dim).contiguous(), sin.reshape(-1, rope_dim).contiguous(), positions,
        slot_mapping, c_kv if norm_weight is None else norm_weight, ckv_cache, kpe_cache, n_tokens,
        c_kv.stride(0), k_pe.stride(0), eps, RANK=rank, HALF=rope_dim // 2, HAS_NORM=norm_weight is not None,
        BLOCK_T=TOKENS_PER_PROGRAM,
    )  # fmt: skip
