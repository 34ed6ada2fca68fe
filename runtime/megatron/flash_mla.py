"""FlashMLA's decode interface (``get_mla_metadata``, ``flash_mla_with_kvcache``) over seamfix's absorbed decode,
and flash-attn's paged ``flash_attn_varlen_func`` over PyTorch's ``scaled_dot_product_attention``.

Megatron's dynamic inference engine decodes cached MLA latents (``cache_mla_latents=True``) only through the
two functions of the ``flash_mla`` package, and prefills through flash-attn's varlen function over the up-projected
paged cache. FlashMLA's cache layout is one 576-wide row per token (``kv_lora_rank`` latent values, then the
RoPE'd key part), ``k_cache [num_blocks, page_block_size, 1, kv_lora_rank + rope_dim]``; ``mla_decode`` reads its
two parts in place, as strided views (no copy per call). Scheduling is ``mla_decode``'s own: the metadata only
carries the head counts it was made for, checked against each call.
"""

from __future__ import annotations

import importlib
import logging
import numbers

import torch

from ..kernels import KernelInputError, mla_decode
from ..kernels.backend import (
    autocast_off,
    check_dtype,
    check_index_dtype,
    check_positive,
    check_same_device,
    check_softmax_scale,
    host_values,
    require,
)

logger = logging.getLogger(__name__)


def install_mla_kernels() -> list[str]:
    """Give megatron-core's attention seamfix's stand-ins for the kernel functions it looks up but could not import.

    Where Megatron's ``megatron.core.transformer.attention`` binds ``flash_mla_with_kvcache`` to None (``flash_mla``
    missing, or present but failing to import, as a build for another torch does): ``flash_mla_with_kvcache``,
    ``get_mla_metadata`` (and ``HAVE_FMLA``); where it binds ``flash_attn_varlen_func`` to None: that one; set where
    Megatron's dynamic engine looks them up. A release whose module has no such name (0.11-0.13 decode no MLA
    latents; 0.11-0.12 prefill through other kernels) gets nothing in its place. Returns the names it installed,
    and logs them; the functions Megatron imported from the real packages are never replaced. Calling it again is
    harmless. Nothing is patched unless this is called.
    """
    attention = importlib.import_module("megatron.core.transformer.attention")
    installed = []
    if _looked_up_and_missing(attention, "flash_mla_with_kvcache"):
        attention.flash_mla_with_kvcache = flash_mla_with_kvcache
        attention.get_mla_metadata = get_mla_metadata
        attention.HAVE_FMLA = True
        installed += ["flash_mla_with_kvcache", "get_mla_metadata"]
    if _looked_up_and_missing(attention, "flash_attn_varlen_func"):
        attention.flash_attn_varlen_func = flash_attn_varlen_func
        installed.append("flash_attn_varlen_func")
    if installed:
        logger.warning("seamfix installed %s into %s", ", ".join(installed), attention.__name__)
    return installed


def _looked_up_and_missing(attention, name: str) -> bool:
    # Megatron binds None where importing the package failed (it catches the error: a package Python can find but
    # not import, e.g. an extension built for another torch, left it None before); ours from an earlier call. A
    # release that never binds the name never calls it (0.11 got all three installed and logged, to no effect).
    return name in vars(attention) and vars(attention)[name] in (None, globals()[name])


def get_mla_metadata(
    cache_seqlens: torch.Tensor, num_heads_per_head_k: int, num_heads_k: int
) -> tuple[torch.Tensor, None]:
    """FlashMLA's ``get_mla_metadata``: ``(tile_scheduler_metadata, num_splits)`` for ``flash_mla_with_kvcache``.

    ``num_splits`` is None: ``mla_decode`` shares the tokens out to fill the GPU by itself. The metadata stays on
    the CPU, so checking it against a call never waits for the GPU.
    """
    check_same_device({"cache_seqlens": cache_seqlens})
    check_positive(num_heads_per_head_k=num_heads_per_head_k, num_heads_k=num_heads_k)
    if num_heads_k != 1:
        raise KernelInputError(f"MLA caches one latent head (num_heads_k=1), got num_heads_k={num_heads_k}")
    # The metadata holds it as int32, as FlashMLA's does (2**31 raised torch's overflow error).
    require(num_heads_per_head_k < 2**31, "num_heads_per_head_k must be below 2**31, got {n}", n=num_heads_per_head_k)
    return torch.tensor([num_heads_per_head_k, num_heads_k], dtype=torch.int32), None


def flash_mla_with_kvcache(
    q: torch.Tensor,
    k_cache: torch.Tensor,
    block_table: torch.Tensor,
    cache_seqlens: torch.Tensor,
    head_dim_v: int,
    tile_scheduler_metadata: torch.Tensor,
    num_splits: None,
    softmax_scale: float | None = None,
    causal: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """FlashMLA's ``flash_mla_with_kvcache``: absorbed attention of ``q`` over the paged latent cache.

    ``q [batch, s_q, heads, head_dim]`` (absorbed latent query, then its RoPE part), ``k_cache [num_blocks,
    page_block_size, 1, head_dim]``, ``block_table [batch, max_blocks]`` and ``cache_seqlens [batch]`` int32;
    ``head_dim_v`` is ``kv_lora_rank``, the latent part of each row, which is also the value. ``softmax_scale``
    defaults to ``head_dim ** -0.5``. Returns ``out [batch, s_q, heads, head_dim_v]`` and ``softmax_lse [batch,
    heads, s_q]`` (float32), as FlashMLA does.
    """
    check_same_device({"q": q, "k_cache": k_cache, "block_table": block_table, "cache_seqlens": cache_seqlens})
    # The metadata's two ints, as get_mla_metadata made them (read on the host: meta tensors hold none).
    require(isinstance(tile_scheduler_metadata, torch.Tensor) and tile_scheduler_metadata.shape == (2,)
            and tile_scheduler_metadata.dtype in (torch.int32, torch.int64)
            and tile_scheduler_metadata.device.type != "meta",
            "tile_scheduler_metadata must be what get_mla_metadata returned, got {got!r}",
            got=tile_scheduler_metadata)  # fmt: skip
    check_positive(head_dim_v=head_dim_v)
    if softmax_scale is not None:
        softmax_scale = check_softmax_scale(softmax_scale)
    if q.dim() != 4 or k_cache.dim() != 4:
        raise KernelInputError(
            f"q must be [batch, s_q, heads, head_dim] and k_cache [num_blocks, page_block_size, 1, head_dim], got "
            f"{list(q.shape)} and {list(k_cache.shape)}"
        )
    if k_cache.shape[2] != 1:
        raise KernelInputError(f"k_cache must hold one latent head (dimension 2), got {k_cache.shape[2]}")
    head_dim = q.shape[-1]
    if k_cache.shape[-1] != head_dim or not 0 < head_dim_v < head_dim:
        raise KernelInputError(
            f"q and k_cache rows must share their width, with head_dim_v inside it: q {head_dim}, k_cache "
            f"{k_cache.shape[-1]}, head_dim_v {head_dim_v}"
        )
    made_for = [int(value) for value in tile_scheduler_metadata.tolist()]
    if made_for != [q.shape[1] * q.shape[2], 1]:
        raise KernelInputError(
            f"the metadata was made for {made_for[0]} query heads per latent head, the call has "
            f"{q.shape[1]} x {q.shape[2]} (get_mla_metadata(cache_seqlens, s_q * heads, 1))"
        )
    if block_table.dim() != 2:
        raise KernelInputError(f"block_table must be [batch, max_blocks], got {list(block_table.shape)}")
    rows = k_cache[:, :, 0]
    out, lse = mla_decode(
        q[..., :head_dim_v],
        q[..., head_dim_v:],
        rows[..., :head_dim_v],
        rows[..., head_dim_v:],
        block_table,
        cache_seqlens,
        head_dim**-0.5 if softmax_scale is None else softmax_scale,
        causal,
        num_splits=num_splits,
    )
    return out, lse.transpose(1, 2)


def flash_attn_varlen_func(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    cu_seqlens_q: torch.Tensor,
    cu_seqlens_k: torch.Tensor,
    max_seqlen_q: int,
    max_seqlen_k: int,
    dropout_p: float = 0.0,
    softmax_scale: float | None = None,
    causal: bool = False,
    window_size: tuple[int, int] = (-1, -1),
    block_table: torch.Tensor | None = None,
    return_attn_probs: bool = False,
) -> torch.Tensor:
    """flash-attn's ``flash_attn_varlen_func``, one ``scaled_dot_product_attention`` per sequence.

    ``q [total_q, heads, width]``; ``k``/``v`` ``[total_k, kv_heads, width]``, or with ``block_table [batch,
    max_blocks]`` paged, ``[num_blocks, page_block_size, kv_heads, width]``; sequence ``b`` holds queries
    ``cu_seqlens_q[b]:cu_seqlens_q[b+1]`` and ``cu_seqlens_k[b+1] - cu_seqlens_k[b]`` keys. ``causal`` aligns the
    last query with the last key, as flash-attn does. Values may be narrower than keys (MLA). Returns ``[total_q,
    heads, v_width]``, zeros in the rows of ``q`` past ``cu_seqlens_q[-1]``. Dropout, a sliding window and the
    attention probabilities are refused.
    """
    # Refused like every other bad argument (they raised NotImplementedError, and TypeError for a window of None).
    # Numbers first: == on an array or tensor of several values answers elementwise, and its truth value raised
    # NumPy's ValueError or torch's RuntimeError.
    require(isinstance(dropout_p, numbers.Real) and dropout_p == 0 and isinstance(window_size, tuple | list)
            and all(isinstance(side, numbers.Real) for side in window_size) and tuple(window_size) == (-1, -1)
            and return_attn_probs is False, "seamfix's flash_attn_varlen_func takes no dropout, window or "
            "return_attn_probs, got dropout_p={p!r}, window_size={w!r}, return_attn_probs={r!r}", p=dropout_p,
            w=window_size, r=return_attn_probs)  # fmt: skip
    require(isinstance(causal, bool), "causal must be a bool, got {causal!r}", causal=causal)
    device = check_same_device({"q": q, "k": k, "v": v, "cu_seqlens_q": cu_seqlens_q, "cu_seqlens_k": cu_seqlens_k,
                                "block_table": block_table}, optional=("block_table",))  # fmt: skip
    if softmax_scale is not None:
        softmax_scale = check_softmax_scale(softmax_scale)
    if q.dim() != 3 or k.dim() != (3 if block_table is None else 4) or k.shape[:-1] != v.shape[:-1]:
        raise KernelInputError(
            f"q must be [total_q, heads, width] and k, v [total_k, kv_heads, width] (paged: [blocks, page, kv_heads, "
            f"width]), got {list(q.shape)}, {list(k.shape)}, {list(v.shape)}"
        )
    check_dtype("q", q, "torch")
    require(q.dtype == k.dtype == v.dtype and q.shape[-1] == k.shape[-1], "q, k and v must share one dtype and q and "
            "k one width, got {a}, {b} and {c}, widths {q_width} and {k_width}", a=q.dtype, b=k.dtype, c=v.dtype,
            q_width=q.shape[-1], k_width=k.shape[-1])  # fmt: skip
    heads, kv_heads = q.shape[1], k.shape[-2]
    check_positive(heads=heads, kv_heads=kv_heads, width=q.shape[-1], v_width=v.shape[-1])
    if block_table is not None:  # a page of 0 tokens divided by zero
        check_positive(page_block_size=k.shape[1])
    if heads % kv_heads:
        raise KernelInputError(f"{heads} query heads cannot share {kv_heads} key heads")
    starts_q = checked_offsets("cu_seqlens_q", cu_seqlens_q, q.shape[0])
    starts_k = checked_offsets("cu_seqlens_k", cu_seqlens_k)
    require(len(starts_q) == len(starts_k), "cu_seqlens_q and cu_seqlens_k must count the same sequences, got {a} "
            "and {b} offsets", a=len(starts_q), b=len(starts_k))  # fmt: skip
    if block_table is None:
        require(starts_k[-1] <= k.shape[0], "cu_seqlens_k ends at {end}, past the {n} keys", end=starts_k[-1],
                n=k.shape[0])  # fmt: skip
    else:
        _check_block_table(block_table, starts_k, k.shape[0], k.shape[1])
    scale = q.shape[-1] ** -0.5 if softmax_scale is None else softmax_scale
    with autocast_off(device):  # in q's dtype, as flash-attn computes (autocast made it bfloat16)
        return _attend_per_sequence(q, k, v, starts_q, starts_k, block_table, scale, causal)


def _attend_per_sequence(q, k, v, starts_q, starts_k, block_table, scale, causal) -> torch.Tensor:
    heads, kv_heads = q.shape[1], k.shape[-2]
    outputs = []
    for b in range(len(starts_q) - 1):
        length_q, length_k = starts_q[b + 1] - starts_q[b], starts_k[b + 1] - starts_k[b]
        if block_table is None:
            keys, values = k[starts_k[b] : starts_k[b + 1]], v[starts_k[b] : starts_k[b + 1]]
        else:
            blocks = block_table[b, : -(-length_k // k.shape[1])].long()
            keys, values = k[blocks].flatten(0, 1)[:length_k], v[blocks].flatten(0, 1)[:length_k]
        query = q[starts_q[b] : starts_q[b + 1]].transpose(0, 1)[None]
        keys, values = (tensor.transpose(0, 1)[None] for tensor in (keys, values))
        mask = None
        if causal and length_q != length_k:  # query i sees keys up to i + length_k - length_q
            mask = torch.ones(length_q, length_k, dtype=torch.bool, device=q.device).tril(length_k - length_q)
        out = torch.nn.functional.scaled_dot_product_attention(
            query, keys, values, attn_mask=mask, is_causal=causal and mask is None, scale=scale,
            enable_gqa=heads != kv_heads,
        )  # fmt: skip
        outputs.append(out[0].transpose(0, 1))
    # Rows past the last sequence (Megatron pads the token count up to a CUDA-graph size) come back as zeros.
    outputs.append(q.new_zeros(q.shape[0] - starts_q[-1], heads, v.shape[-1]))
    return torch.cat(outputs)


def checked_offsets(name: str, offsets: torch.Tensor, total: int | None = None) -> list[int]:
    """``cu_seqlens`` on the host (the loop over sequences needs them there): int32 or int64, 1-D, starting at 0,
    never decreasing, and (for the queries) ending inside the tokens."""
    check_index_dtype(name, offsets)
    require(offsets.dim() == 1 and offsets.numel() >= 1, "{name} must be a 1-D tensor of offsets, got shape {shape}",
            name=name, shape=list(offsets.shape))  # fmt: skip
    starts = offsets.tolist()
    steps_ok = all(later >= earlier for earlier, later in zip(starts, starts[1:], strict=False))
    require(starts[0] == 0 and steps_ok and (total is None or starts[-1] <= total), "{name} must start at 0, never "
            "decrease and end inside the {total} tokens, got {starts}", name=name, total=total,
            starts=starts)  # fmt: skip
    return starts


def _check_block_table(block_table: torch.Tensor, starts_k: list[int], num_blocks: int, page: int) -> None:
    """Every sequence's keys fit its row of the table, and every block they use exists (indexing past the cache on
    CUDA would be a device-side assert, fatal to the process's CUDA context)."""
    check_index_dtype("block_table", block_table)
    require(block_table.dim() == 2 and block_table.shape[0] >= len(starts_k) - 1, "block_table must be a [batch, "
            "max_blocks] table, got {shape}", shape=list(block_table.shape))  # fmt: skip
    used = [-(-(end - start) // page) for start, end in zip(starts_k, starts_k[1:], strict=False)]
    require(max(used, default=0) <= block_table.shape[1], "a sequence needs {n} blocks, the table holds {m} per "
            "sequence", n=max(used, default=0), m=block_table.shape[1])  # fmt: skip
    if not any(used):  # no sequence reads a block (every one has 0 keys): nothing to check, maybe no column
        return
    columns = torch.arange(block_table.shape[1], device=block_table.device)
    needed = columns < torch.tensor(used, device=block_table.device)[:, None]
    ids = block_table[: len(used)]
    low, high = host_values(torch.where(needed, ids, 0).min(), torch.where(needed, ids, 0).max())
    require(low >= 0 and high < num_blocks, "block_table names blocks in [{low}, {high}], the cache has {n}",
            low=low, high=high, n=num_blocks)  # fmt: skip
