"""The paged latent cache that ``mla_cache_append`` writes and ``mla_decode`` reads, and the checks both share.

``ckv_cache [num_blocks, block_size, kv_lora_rank]`` and ``kpe_cache [num_blocks, block_size, rope_dim]``;
token ``t`` of sequence ``b`` lives in row ``t % block_size`` of block ``block_table[b, t // block_size]``,
i.e. at slot ``block * block_size + row`` of the flattened cache.
"""

import torch

from ..backend import check_dtype, check_positive, require


def is_power_of_two(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


def check_paged_cache(ckv_cache: torch.Tensor, kpe_cache: torch.Tensor, backend: str) -> tuple[int, int, int, int]:
    """Validate the two caches; return ``(num_blocks, block_size, kv_lora_rank, rope_dim)``."""
    for name, cache in (("ckv_cache", ckv_cache), ("kpe_cache", kpe_cache)):
        check_dtype(name, cache, backend)
        require(cache.dim() == 3, "{name} must be [num_blocks, block_size, dim], got {shape}", name=name,
                shape=list(cache.shape))  # fmt: skip
        require(cache.is_contiguous(), "{name} must be contiguous", name=name)
    require(
        ckv_cache.shape[:2] == kpe_cache.shape[:2] and ckv_cache.dtype == kpe_cache.dtype,
        "ckv_cache and kpe_cache must share num_blocks, block_size and dtype, got {a} {a_dtype} and {b} {b_dtype}",
        a=list(ckv_cache.shape),
        a_dtype=ckv_cache.dtype,
        b=list(kpe_cache.shape),
        b_dtype=kpe_cache.dtype,
    )
    num_blocks, block_size, rank = ckv_cache.shape
    rope_dim = kpe_cache.shape[2]
    check_positive(num_blocks=num_blocks, block_size=block_size, kv_lora_rank=rank, rope_dim=rope_dim)
    if backend == "triton":
        # The kernels hold a whole latent / rope row in one tile, and Triton tiles are powers of two.
        require(
            is_power_of_two(rank) and is_power_of_two(rope_dim) and rank >= 16 and rope_dim >= 16,
            "the Triton backend needs kv_lora_rank and rope_dim to be powers of two >= 16, got {rank} and {rope}",
            rank=rank,
            rope=rope_dim,
        )
    return num_blocks, block_size, rank, rope_dim
