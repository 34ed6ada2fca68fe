"""The paged latent cache that ``mla_cache_append`` writes and ``mla_decode`` reads, and the checks both share.

``ckv_cache [num_blocks, block_size, kv_lora_rank]`` and ``kpe_cache [num_blocks, block_size, rope_dim]``;
token ``t`` of sequence ``b`` lives in row ``t % block_size`` of block ``block_table[b, t // block_size]``,
i.e. at slot ``block * block_size + row`` of the flattened cache. ``mla_cache_append`` writes contiguous caches;
``mla_decode`` also reads views with other block and row strides, such as the two parts of FlashMLA's
``[num_blocks, block_size, 1, kv_lora_rank + rope_dim]`` rows (``cache[..., 0, :rank]``, ``cache[..., 0, rank:]``).
"""

import torch

from ..backend import check_dtype, check_positive, require


def is_power_of_two(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


# The kernels read cache rows in 16-byte pieces (the Gluon kernel's asynchronous copies) from addresses Triton knows
# to be aligned only where the strides it is given are multiples of 16 elements (it specializes on that).
ROW_STRIDE_MULTIPLE = 16
ROW_ALIGNMENT = 16  # bytes


def check_paged_cache(
    ckv_cache: torch.Tensor, kpe_cache: torch.Tensor, backend: str, strided: bool = False
) -> tuple[int, int, int, int]:
    """Validate the two caches; return ``(num_blocks, block_size, kv_lora_rank, rope_dim)``. ``strided``: views
    are accepted (rows dense; for the Triton backend, rows 16-byte aligned and block and row strides multiples of
    16 elements), otherwise the caches must be contiguous."""
    for name, cache in (("ckv_cache", ckv_cache), ("kpe_cache", kpe_cache)):
        check_dtype(name, cache, backend)
        require(cache.dim() == 3, "{name} must be [num_blocks, block_size, dim], got {shape}", name=name,
                shape=list(cache.shape))  # fmt: skip
        if not strided:
            require(cache.is_contiguous(), "{name} must be contiguous", name=name)
            continue
        require(cache.stride(2) == 1 or cache.shape[2] == 1, "{name}'s rows must be contiguous (last stride 1), got "
                "strides {strides}", name=name, strides=list(cache.stride()))  # fmt: skip
        if backend == "triton":
            _check_row_alignment(name, cache)
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


def _check_row_alignment(name: str, cache: torch.Tensor) -> None:
    # A dimension of size 1 is only ever indexed at 0: its stride never enters an address.
    strides = [stride for size, stride in zip(cache.shape[:2], cache.stride()[:2], strict=True) if size > 1]
    require(
        cache.data_ptr() % ROW_ALIGNMENT == 0 and all(stride % ROW_STRIDE_MULTIPLE == 0 for stride in strides),
        "{name} must start 16-byte aligned with block and row strides that are multiples of 16 elements for the "
        "Triton backend, got strides {strides} at byte offset {offset} (use backend='torch' or a contiguous copy)",
        name=name,
        strides=list(cache.stride()),
        offset=cache.storage_offset() * cache.element_size(),
    )
