"""The paged latent KV cache of MLA decode and ``mla_cache_append``, which fills it.

Per token the cache holds only the latent ``c_kv`` (kv_lora_rank wide, RMS-normalized) and the RoPE'd shared
``k_pe`` (rope_dim wide): 1152 bytes in bf16 for DeepSeek's 512 + 64. Layout: see ``paged``.
"""

import torch
from torch.autograd.graph import increment_version

from ..backend import (
    check_cache_dtype,
    check_cos_sin,
    check_dtype,
    check_eps,
    check_index_dtype,
    check_int32_offsets,
    check_no_shared_memory,
    check_same_device,
    check_shape,
    check_triton_tiles,
    check_validate_flag,
    check_values,
    check_writes_seen_by_autograd,
    host_values,
    on_device,
    require,
    resolve_backend,
)
from . import reference
from .paged import check_paged_cache


def _check_slots_and_positions(slot_mapping, positions, num_slots, max_position) -> None:
    positions = positions.masked_fill(slot_mapping < 0, 0)  # padding tokens' positions are never read
    # Two tokens in one slot would race in the kernel (and index_put leaves the winner undefined): refused.
    slots = slot_mapping.long().sort().values
    repeats = ((slots[1:] == slots[:-1]) & (slots[1:] >= 0)).sum()
    slot_high, position_low, position_high, repeated = host_values(
        slot_mapping.max(), positions.min(), positions.max(), repeats
    )
    require(
        slot_high < num_slots,
        "slot_mapping holds slot {high}, the cache has {slots} slots (num_blocks * block_size)",
        high=slot_high,
        slots=num_slots,
    )
    require(repeated == 0, "slot_mapping names {n} slot(s) more than once; each token needs its own slot",
            n=repeated)  # fmt: skip
    require(
        position_low >= 0 and position_high < max_position,
        "positions must lie in [0, {limit}) (rows of cos/sin), got [{low}, {high}]",
        limit=max_position,
        low=position_low,
        high=position_high,
    )


def mla_cache_append(
    c_kv: torch.Tensor,
    k_pe: torch.Tensor,
    cos: torch.Tensor,
    sin: torch.Tensor,
    positions: torch.Tensor,
    ckv_cache: torch.Tensor,
    kpe_cache: torch.Tensor,
    slot_mapping: torch.Tensor,
    norm_weight: torch.Tensor | None = None,
    eps: float = 1e-6,
    *,
    backend: str = "auto",
    validate: bool | None = None,
) -> None:
    """Write new tokens into the paged cache, in place, in one pass.

    ``c_kv [T, kv_lora_rank]`` is RMS-normalized with ``norm_weight`` (skipped when it is ``None``: the caller
    normalized already); ``k_pe [T, rope_dim]`` is rotated at ``positions [T]`` with ``cos``/``sin``
    (``[max_seq, rope_dim]`` or megatron's ``[max_seq, 1, 1, rope_dim]``), read interleaved and written
    de-interleaved exactly as ``mla_rope_q`` writes ``q_pe``, so scores need no further permutation.
    ``slot_mapping [T]`` gives each token's slot (``block * block_size + row``); a negative slot skips the token.
    ``positions`` and ``slot_mapping`` are int32 or int64; their values (slots inside the cache and each named
    once, positions inside the cos/sin tables) are checked for CPU tensors or with ``validate=True`` (one
    device-to-host copy), not by default on CUDA (see ``mla_decode``): unchecked, a slot past the cache is
    skipped and a position is clamped into the tables, so no value writes or reads outside them. The caches must
    share no memory with the other arguments (a ``c_kv`` read from rows this append writes is refused). Not
    differentiable: the caches never require grad.
    """
    device = check_same_device({
        "c_kv": c_kv, "k_pe": k_pe, "cos": cos, "sin": sin, "positions": positions, "ckv_cache": ckv_cache,
        "kpe_cache": kpe_cache, "slot_mapping": slot_mapping, "norm_weight": norm_weight,
    }, optional=("norm_weight",))  # fmt: skip
    backend = resolve_backend(backend, device)
    num_blocks, block_size, rank, rope_dim = check_paged_cache(ckv_cache, kpe_cache, backend)
    # Written in place outside autograd: the Triton kernel would silently cut a graph that torch's own write raises on.
    require(not (ckv_cache.requires_grad or kpe_cache.requires_grad),
            "ckv_cache and kpe_cache are written in place and must not require grad")  # fmt: skip
    require(torch.is_inference_mode_enabled() or not (ckv_cache.is_inference() or kpe_cache.is_inference()),
            "ckv_cache and kpe_cache are inference tensors, read-only outside torch.inference_mode(); append inside "
            "it (torch raises otherwise, and the kernel would write them anyway)")  # fmt: skip
    check_writes_seen_by_autograd("ckv_cache and kpe_cache")
    for name, tensor in (("c_kv", c_kv), ("k_pe", k_pe), ("norm_weight", norm_weight), ("cos", cos), ("sin", sin)):
        if tensor is not None:
            check_dtype(name, tensor, backend)
    check_cache_dtype(("c_kv", c_kv), ("k_pe", k_pe), ckv_cache)
    check_shape("c_kv", c_kv, (None, rank))
    n_tokens = c_kv.shape[0]
    check_shape("k_pe", k_pe, (n_tokens, rope_dim))
    require(c_kv.stride(-1) == 1 and k_pe.stride(-1) == 1, "c_kv and k_pe must have contiguous rows (stride 1)")
    check_shape("positions", positions, (n_tokens,))
    check_shape("slot_mapping", slot_mapping, (n_tokens,))
    check_index_dtype("positions", positions)
    check_index_dtype("slot_mapping", slot_mapping)
    require(rope_dim % 2 == 0, "rope_dim (kpe_cache's last dimension) must be even (RoPE rotates pairs), got "
            "{rope_dim}", rope_dim=rope_dim)  # fmt: skip
    check_cos_sin(cos, sin, rope_dim)
    if norm_weight is not None:
        check_shape("norm_weight", norm_weight, (rank,))
    eps = check_eps(eps)
    check_no_shared_memory({"ckv_cache": ckv_cache, "kpe_cache": kpe_cache}, {
        "c_kv": c_kv, "k_pe": k_pe, "cos": cos, "sin": sin, "positions": positions, "slot_mapping": slot_mapping,
        "norm_weight": norm_weight,
    })  # fmt: skip
    if n_tokens == 0:
        check_validate_flag(validate)
        return
    if check_values(device, validate):
        _check_slots_and_positions(slot_mapping, positions, num_blocks * block_size, cos.shape[0])
    if backend == "torch":
        # Outside autograd, as the kernel writes: a c_kv that requires grad must not turn the caches into
        # graph nodes (the next append would then refuse them).
        with torch.no_grad():
            reference.cache_append(c_kv, k_pe, cos, sin, positions, ckv_cache, kpe_cache, slot_mapping, norm_weight,
                                   eps)  # fmt: skip
        return
    from .triton_ops import TILE, cache_append

    # A program holds its tokens' latent rows and their k_pe rows (both interleaved halves) as one tile each.
    check_triton_tiles(latent_rows=TILE[0] * rank, rope_rows=TILE[0] * rope_dim)
    # Tokens are numbered, and table rows found, with 32-bit numbers (inputs expanded over tokens span little).
    check_int32_offsets(tokens=n_tokens, cos=cos.numel())

    with on_device(device):
        cache_append(c_kv, k_pe, cos, sin, positions.contiguous(), ckv_cache, kpe_cache, slot_mapping.contiguous(),
                     norm_weight, eps)  # fmt: skip
    # The kernel writes through pointers autograd never sees; torch's own write (the reference's) bumps the caches'
    # version counters, so that a backward that saved a cache before the append raises instead of using the new rows.
    for cache in (ckv_cache, kpe_cache):
        increment_version(cache)


__all__ = ["mla_cache_append"]
