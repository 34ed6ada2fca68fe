"""Absorbed MLA decode over the paged latent cache: ``mla_decode``.

Queries arrive already absorbed into latent space (``q_lat = q_nope @ W_uk`` per head, see ``absorption``);
each cached token is read once per group of heads as both key and value. Split-KV flash decoding with a
log-sum-exp merge on CUDA; a gathered, batched PyTorch reference on the CPU.
"""

import torch

from ..backend import (
    GRID_Y_LIMIT,
    TRITON_MAX_TILE,
    autocast_off,
    check_cache_dtype,
    check_dtype,
    check_int32_offsets,
    check_positive,
    check_same_device,
    check_shape,
    check_softmax_scale,
    check_validate_flag,
    check_values,
    host_values,
    on_device,
    require,
    resolve_backend,
    span,
)
from ..latent_cache.paged import check_paged_cache, is_power_of_two
from . import reference

MIN_TILE = 16  # tl.dot's smallest operand side: the fewest tokens (and query rows) a decode tile holds
MAX_TILE = 64  # the most tokens a decode tile holds (every kernel's BLOCK_N)
# The longest block table row (in tokens) whose lengths the kernels round up to whole tiles within 32 bits.
MAX_SEQUENCE_TOKENS = 2**31 - MAX_TILE


def _check_lengths(block_table, cache_seqlens, s_q, block_size, num_blocks) -> None:
    """Every length covers the new tokens and fits the table, and every block it uses exists (one host copy)."""
    blocks_used = (cache_seqlens.long() + block_size - 1) // block_size
    used = torch.arange(block_table.shape[1], device=block_table.device) < blocks_used[:, None]
    bad_block = used & ((block_table < 0) | (block_table >= num_blocks))
    shortest, longest, bad_blocks = host_values(cache_seqlens.min(), cache_seqlens.max(), bad_block.sum())
    capacity = block_table.shape[1] * block_size
    require(
        shortest >= s_q,
        "cache_seqlens must count the {s_q} new token(s) already appended, got a length of {shortest}",
        s_q=s_q,
        shortest=shortest,
    )
    require(
        longest <= capacity,
        "cache_seqlens holds a length of {longest}, longer than the block table allows "
        "({blocks} blocks x {block_size} tokens = {capacity})",
        longest=longest,
        blocks=block_table.shape[1],
        block_size=block_size,
        capacity=capacity,
    )
    require(bad_blocks == 0, "block_table names {bad} block(s) outside [0, {n}) within the sequences' lengths",
            bad=bad_blocks, n=num_blocks)  # fmt: skip


def mla_decode(
    q_nope_absorbed: torch.Tensor,
    q_pe: torch.Tensor,
    ckv_cache: torch.Tensor,
    kpe_cache: torch.Tensor,
    block_table: torch.Tensor,
    cache_seqlens: torch.Tensor,
    softmax_scale: float,
    causal: bool = True,
    *,
    num_splits: int | None = None,
    backend: str = "auto",
    validate: bool | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Attention of ``s_q`` new tokens per sequence over the paged latent cache, in latent space.

    ``q_nope_absorbed [B, s_q, H, kv_lora_rank]``, ``q_pe [B, s_q, H, rope_dim]`` (RoPE'd like the cached
    ``k_pe``); ``block_table [B, max_blocks]`` int32; ``cache_seqlens [B]`` int32 counts each sequence's cached
    tokens *including* the ``s_q`` new ones (append them first), so query ``i`` sits at position
    ``seqlen - s_q + i`` and, when ``causal``, sees keys up to itself. Pass the model's ``softmax_scale``
    (DeepSeek's includes the YaRN mscale; ``576**-0.5`` is wrong for real models).

    Returns ``out [B, s_q, H, kv_lora_rank]`` (q's dtype; multiply by ``W_uv`` per head for the value-space
    output) and ``lse [B, s_q, H]`` (float32, float64 for float64 inputs; natural log of the sum of
    ``exp(score * scale)``). Not differentiable: the outputs never require grad.
    ``num_splits`` makes the Triton backend share the batch's tokens out in ``batch * num_splits`` equal runs (with
    equal lengths, ``num_splits`` pieces per context; default: enough runs to fill the GPU).

    The caches may be views with any block and row strides (rows dense), read in place: FlashMLA's
    ``[num_blocks, block_size, 1, kv_lora_rank + rope_dim]`` layout serves as ``cache[:, :, 0, :kv_lora_rank]`` and
    ``cache[:, :, 0, kv_lora_rank:]``; the Triton backend needs rows starting 16-byte aligned, strides that are
    multiples of 16 elements and a power-of-two ``block_size``. Float32 products follow
    ``torch.set_float32_matmul_precision`` as torch's own matmuls do: full float32 at its default ``"highest"``,
    tf32 at ``"high"`` or ``"medium"``.

    Shapes, dtypes and strides are always checked. The values of ``cache_seqlens`` (``s_q`` <= length <= the
    table's capacity) and ``block_table`` (ids inside the cache) are checked for CPU tensors, or with
    ``validate=True`` (one device-to-host copy per call); by default not on CUDA, so that an eager serving loop
    never waits for the GPU before a launch. Unchecked, the kernels clamp lengths to the table and block ids to the
    cache, so bad values never read outside it, but their outputs are unspecified (a sequence of length 0 gets
    whatever its rows of ``out`` and ``lse`` held: the Triton kernels do not write them).
    """
    device = check_same_device({
        "q_nope_absorbed": q_nope_absorbed, "q_pe": q_pe, "ckv_cache": ckv_cache, "kpe_cache": kpe_cache,
        "block_table": block_table, "cache_seqlens": cache_seqlens,
    })  # fmt: skip
    backend = resolve_backend(backend, device)
    num_blocks, block_size, rank, rope_dim = check_paged_cache(ckv_cache, kpe_cache, backend, strided=True)
    check_dtype("q_nope_absorbed", q_nope_absorbed, backend)
    check_cache_dtype(("q_nope_absorbed", q_nope_absorbed), ("q_pe", q_pe), ckv_cache)
    check_shape("q_nope_absorbed", q_nope_absorbed, (None, None, None, rank))
    batch, s_q, heads, _ = q_nope_absorbed.shape
    check_positive(s_q=s_q, heads=heads)
    check_shape("q_pe", q_pe, (batch, s_q, heads, rope_dim))
    require(q_nope_absorbed.stride(-1) == 1 and q_pe.stride(-1) == 1, "queries' last dimension must be contiguous")
    check_shape("block_table", block_table, (batch, None))
    check_shape("cache_seqlens", cache_seqlens, (batch,))
    for name, index in (("block_table", block_table), ("cache_seqlens", cache_seqlens)):
        require(index.dtype == torch.int32, "{name} must be int32, got {dtype}", name=name, dtype=index.dtype)
    check_positive(max_blocks_per_sequence=block_table.shape[1])
    require(block_table.stride(-1) == 1, "block_table's rows must be contiguous")
    softmax_scale = check_softmax_scale(softmax_scale)
    require(isinstance(causal, bool), "causal must be a bool, got {causal!r}", causal=causal)
    require(num_splits is None or (isinstance(num_splits, int) and not isinstance(num_splits, bool)
                                   and num_splits >= 1),
            "num_splits must be a positive integer, got {n!r}", n=num_splits)  # fmt: skip
    if num_splits is not None:  # a Triton knob, checked on both backends so that they accept the same calls
        check_int32_offsets(partial_results=batch * num_splits * 2 * s_q * heads * rank)
    if backend == "triton":
        # The kernels hold every sequence's length in one tile, and launch a program per group of at least 16
        # query rows along the grid's second dimension.
        require(batch <= TRITON_MAX_TILE and s_q * heads <= GRID_Y_LIMIT * 16,
                "the Triton backend takes at most {b} sequences and {rows} query rows (s_q x heads) each, got "
                "{batch} and {n}; use backend='torch'", b=TRITON_MAX_TILE, rows=GRID_Y_LIMIT * 16, batch=batch,
                n=s_q * heads)  # fmt: skip
        check_int32_offsets(block_table=span(block_table))  # a row's start is sequence x row stride, in 32 bits
        # Triton 3.8's interpreter (CPU tensors) multiplies bfloat16 tiles wrongly (tl.dot off by 1e10 on a 16x16
        # product): the decode returned garbage (relative error 1e9) without an error. One comparison; the GPU's
        # kernels compute bfloat16 right.
        require(device.type != "cpu" or q_nope_absorbed.dtype != torch.bfloat16, "Triton's interpreter "
                "(TRITON_INTERPRET=1, CPU tensors) computes bfloat16 products (tl.dot) wrongly, so the Triton decode "
                "takes float16 or float32 there; use backend='torch'")  # fmt: skip
        # A block's start is 64-bit, a row inside it row x row stride in 32 bits: a page of 2**17 rows 2**14 + 16
        # apart wrapped to an offset before the block (a valid, if huge, layout). One comparison on the serving
        # path (the named check took 4 us a call); the refusal names the cache.
        if (block_size - 1) * max(ckv_cache.stride(1), kpe_cache.stride(1)) + max(rank, rope_dim) >= 2**31:
            caches = {"ckv_cache": ckv_cache, "kpe_cache": kpe_cache}
            check_int32_offsets(**{f"one block of {name}": (block_size - 1) * cache.stride(1) + cache.shape[2]
                                   for name, cache in caches.items()})  # fmt: skip
        # A tile of 16 to 64 tokens is read from one table entry where it fits a page: with a page of, say, 130
        # tokens the tile from token 128 ran past its page (into the next block's rows, or past the cache).
        require(is_power_of_two(block_size), "the Triton backend needs block_size (the caches' second dimension) to "
                "be a power of two, so that its tiles lie inside a page or span whole pages, got {size}; use "
                "backend='torch'", size=block_size)  # fmt: skip
        # The kernels lay every sequence's key tiles (16 tokens or more) end to end and number them in 32 bits; at
        # 2**32 tiles the count wrapped to 0 and no program attended anything. Bounded by the table's capacity (a
        # shape: no values read), far past any real batch (128 sequences of 1M tokens: 2**23 tiles).
        capacity = block_table.shape[1] * block_size
        require(batch * -(-capacity // MIN_TILE) < 2**31, "the Triton backend numbers the batch's key tiles "
                "in 32 bits: {batch} sequences of up to {capacity} tokens (block_table's {blocks} blocks x "
                "block_size) make more than 2**31 tiles of {tile}; pass a narrower block table or use "
                "backend='torch'", batch=batch, capacity=capacity, blocks=block_table.shape[1],
                tile=MIN_TILE)  # fmt: skip
        # A length is rounded up to whole tiles of up to 64 tokens in 32 bits (length + 63): a table of 2**31 - 32
        # tokens (pages of 32) took a valid length of 2**31 - 40, whose tile count wrapped negative and gave every
        # sequence of the batch garbage.
        require(capacity <= MAX_SEQUENCE_TOKENS, "the Triton backend counts a sequence's tokens in 32 bits, rounded "
                "up to whole tiles of {tile}: block_table's {blocks} blocks x block_size {size} = {capacity} tokens "
                "is more than {limit}; pass a narrower block table or use backend='torch'", tile=MAX_TILE,
                blocks=block_table.shape[1], size=block_size, capacity=capacity,
                limit=MAX_SEQUENCE_TOKENS)  # fmt: skip
    if batch == 0:
        check_validate_flag(validate)
        return q_nope_absorbed.new_empty(q_nope_absorbed.shape), q_nope_absorbed.new_empty(
            0, s_q, heads, dtype=reference.compute_dtype(q_nope_absorbed.dtype)
        )
    if check_values(device, validate):
        _check_lengths(block_table, cache_seqlens, s_q, block_size, num_blocks)
    if backend == "torch":
        # Not differentiable on either backend (the kernels have no backward); in the inputs' dtypes under autocast.
        with torch.no_grad(), autocast_off(device):
            return reference.decode(
                q_nope_absorbed, q_pe, ckv_cache, kpe_cache, block_table, cache_seqlens, softmax_scale, causal
            )
    from .triton_ops import decode

    with on_device(device):
        return decode(q_nope_absorbed, q_pe, ckv_cache, kpe_cache, block_table, cache_seqlens.contiguous(),
                      softmax_scale, causal, num_splits, tiles=None)  # fmt: skip


__all__ = ["mla_decode"]
