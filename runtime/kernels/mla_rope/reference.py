"""PyTorch reference of MLA's fused RoPE, written as plain differentiable ops (autograd gives the backward).

Same contract as megatron-core's ``fused_apply_mla_rope_for_q/kv``: the rope slice is read interleaved
(even channels, then odd ones) and written de-interleaved; the arithmetic runs in float32 (float64 for float64
inputs) and rounds once to the input dtype.
"""

import torch


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def cos_sin_at(
    cos: torch.Tensor, sin: torch.Tensor, emb_dim: int, token_shape: tuple[int, ...], positions: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """cos/sin rows for each token, shaped to broadcast over ``[*token_shape, heads, emb_dim]``.

    Without ``positions`` (bshd) the token's position is its index along the first (sequence) dimension.
    """
    tables = [table.reshape(-1, emb_dim) for table in (cos, sin)]
    if positions is None:
        rows = [table[: token_shape[0]].reshape(token_shape[0], *[1] * len(token_shape), emb_dim) for table in tables]
    else:
        rows = [table[positions].reshape(*token_shape, 1, emb_dim) for table in tables]
    return rows[0], rows[1]


def rotate_interleaved(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate pairs ``(x[2i], x[2i+1])``; the result holds the first components, then the second ones."""
    work = compute_dtype(x.dtype)
    x = x.to(work)
    cos, sin = cos.to(work), sin.to(work)
    half = x.shape[-1] // 2
    first, second = x[..., 0::2], x[..., 1::2]
    return torch.cat(
        (first * cos[..., :half] - second * sin[..., :half], second * cos[..., half:] + first * sin[..., half:]), -1
    )


def rope_q(
    q: torch.Tensor,
    cos: torch.Tensor,
    sin: torch.Tensor,
    qk_head_dim: int,
    emb_dim: int,
    positions: torch.Tensor | None,
) -> torch.Tensor:
    """Rotate ``q[..., qk_head_dim:]`` in place and return ``q``."""
    token_shape = tuple(q.shape[:-2])
    cos_rows, sin_rows = cos_sin_at(cos, sin, emb_dim, token_shape, positions)
    q[..., qk_head_dim:] = rotate_interleaved(q[..., qk_head_dim:], cos_rows, sin_rows).to(q.dtype)
    return q


def rope_kv(
    kv: torch.Tensor,
    k_pos_emb: torch.Tensor,
    cos: torch.Tensor,
    sin: torch.Tensor,
    emb_dim: int,
    k_dim: int,
    v_dim: int,
    positions: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``key = [kv[..., :k_dim], rope(k_pos_emb) broadcast over heads]``, ``value = kv[..., k_dim:]``."""
    token_shape = tuple(kv.shape[:-2])
    cos_rows, sin_rows = cos_sin_at(cos, sin, emb_dim, token_shape, positions)
    k_nope, value = kv.split([k_dim, v_dim], dim=-1)
    # Broadcast over the heads before rounding to kv's dtype: the backward then sums the heads' gradients of the
    # shared k_pos_emb in float32, as the Triton kernel does. Rounded first, the sum ran in kv's dtype: four float16
    # heads' gradients of 2e4 overflowed to inf where the rotated sum (5.7e4) fits.
    k_rope = rotate_interleaved(k_pos_emb, cos_rows, sin_rows)
    key = torch.cat((k_nope, k_rope.expand(*k_nope.shape[:-1], emb_dim).to(kv.dtype)), dim=-1)
    # A copy even where the slice is already contiguous (one token, one head): value is a new tensor, as the
    # kernel's, never a view of kv.
    return key, value.clone(memory_format=torch.contiguous_format)
