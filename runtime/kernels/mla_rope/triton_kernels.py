"""Triton kernels of MLA's fused RoPE (imported only when the Triton backend runs).

Tensors are addressed as rows of (token, head); a token is ``(s, b)`` in bshd and ``(t, 0)`` in thd (batch 1),
so one kernel serves both layouts and any strides over the token and head dimensions. cos/sin are
``[max_seq, emb_dim]`` tables indexed by the token's position (its sequence index, or ``POSITIONS`` in thd).
All arithmetic is float32; each output is rounded once.
"""

import triton
import triton.language as tl


@triton.jit
def _token_coordinates(tokens, POSITIONS, batch, HAS_POSITIONS: tl.constexpr, mask):
    seq_index = tokens // batch
    batch_index = tokens % batch
    if HAS_POSITIONS:
        position = tl.load(POSITIONS + tokens, mask=mask, other=0)
    else:
        position = seq_index
    return seq_index, batch_index, position


@triton.jit
def _tile_rows(n_rows, heads, batch, POSITIONS, HAS_POSITIONS: tl.constexpr, BLOCK_ROWS: tl.constexpr):
    """This program's (token, head) rows, which of them exist, and each row's token coordinates."""
    rows = tl.program_id(0).to(tl.int64) * BLOCK_ROWS + tl.arange(0, BLOCK_ROWS)
    row_ok = rows < n_rows
    seq_index, batch_index, position = _token_coordinates(rows // heads, POSITIONS, batch, HAS_POSITIONS, row_ok)
    return rows, row_ok, seq_index, batch_index, position


@triton.jit
def _cos_sin(COS, SIN, position, HALF: tl.constexpr, half_offsets, mask):
    at = position[:, None] * (2 * HALF) + half_offsets[None, :]
    cos_left = tl.load(COS + at, mask=mask, other=0.0).to(tl.float32)
    sin_left = tl.load(SIN + at, mask=mask, other=0.0).to(tl.float32)
    cos_right = tl.load(COS + at + HALF, mask=mask, other=0.0).to(tl.float32)
    sin_right = tl.load(SIN + at + HALF, mask=mask, other=0.0).to(tl.float32)
    return cos_left, sin_left, cos_right, sin_right


@triton.jit
def _load_pairs(rows_at, row_ok, HALF: tl.constexpr, HALF_BLOCK: tl.constexpr, ROWS: tl.constexpr):
    """Even and odd channels of each row's interleaved slice starting at ``rows_at``, as float32.
    A power-of-two half reads the slice as one contiguous tile and splits it in registers; strided
    loads of every other element waste half of each memory transaction."""
    if HALF == HALF_BLOCK:
        offsets = tl.arange(0, 2 * HALF_BLOCK)
        tile = tl.load(rows_at[:, None] + offsets[None, :], mask=row_ok[:, None], other=0.0).to(tl.float32)
        first, second = tl.split(tl.reshape(tile, (ROWS, HALF_BLOCK, 2)))
    else:
        half_offsets = tl.arange(0, HALF_BLOCK)
        mask = row_ok[:, None] & (half_offsets < HALF)[None, :]
        pairs = rows_at[:, None] + 2 * half_offsets[None, :]
        first = tl.load(pairs, mask=mask, other=0.0).to(tl.float32)
        second = tl.load(pairs + 1, mask=mask, other=0.0).to(tl.float32)
    return first, second


@triton.jit
def _store_pairs(rows_at, first, second, row_ok, HALF: tl.constexpr, HALF_BLOCK: tl.constexpr, ROWS: tl.constexpr):
    """Interleave ``first`` and ``second`` back into each row's slice (the transpose of ``_load_pairs``)."""
    if HALF == HALF_BLOCK:
        offsets = tl.arange(0, 2 * HALF_BLOCK)
        tile = tl.reshape(tl.join(first, second), (ROWS, 2 * HALF_BLOCK))
        tl.store(rows_at[:, None] + offsets[None, :], tile.to(rows_at.dtype.element_ty), mask=row_ok[:, None])
    else:
        half_offsets = tl.arange(0, HALF_BLOCK)
        mask = row_ok[:, None] & (half_offsets < HALF)[None, :]
        pairs = rows_at[:, None] + 2 * half_offsets[None, :]
        tl.store(pairs, first.to(rows_at.dtype.element_ty), mask=mask)
        tl.store(pairs + 1, second.to(rows_at.dtype.element_ty), mask=mask)


@triton.jit
def rope_q_inplace_kernel(
    Q,
    COS,
    SIN,
    POSITIONS,
    n_rows,
    heads,
    batch,
    stride_s,
    stride_b,
    stride_h,
    rope_offset,
    HALF: tl.constexpr,
    HALF_BLOCK: tl.constexpr,
    HAS_POSITIONS: tl.constexpr,
    BACKWARD: tl.constexpr,
    BLOCK_ROWS: tl.constexpr,
):
    """Forward: read the interleaved rope slice, write it rotated and de-interleaved. Backward: the transpose."""
    rows, row_ok, seq_index, batch_index, position = _tile_rows(
        n_rows, heads, batch, POSITIONS, HAS_POSITIONS, BLOCK_ROWS
    )
    half_offsets = tl.arange(0, HALF_BLOCK)
    mask = row_ok[:, None] & (half_offsets < HALF)[None, :]
    cos_left, sin_left, cos_right, sin_right = _cos_sin(COS, SIN, position, HALF, half_offsets, mask)

    rope_at = Q + seq_index * stride_s + batch_index * stride_b + (rows % heads) * stride_h + rope_offset
    halves = rope_at[:, None] + half_offsets[None, :]
    if BACKWARD:
        grad_left = tl.load(halves, mask=mask).to(tl.float32)
        grad_right = tl.load(halves + HALF, mask=mask).to(tl.float32)
        first = grad_left * cos_left + grad_right * sin_right
        second = grad_right * cos_right - grad_left * sin_left
        _store_pairs(rope_at, first, second, row_ok, HALF, HALF_BLOCK, BLOCK_ROWS)
    else:
        first, second = _load_pairs(rope_at, row_ok, HALF, HALF_BLOCK, BLOCK_ROWS)
        tl.store(halves, (first * cos_left - second * sin_left).to(Q.dtype.element_ty), mask=mask)
        tl.store(halves + HALF, (second * cos_right + first * sin_right).to(Q.dtype.element_ty), mask=mask)


@triton.jit
def rope_kv_forward_kernel(
    KV,
    K_POS_EMB,
    KEY,
    VALUE,
    COS,
    SIN,
    POSITIONS,
    n_rows,
    heads,
    batch,
    kv_stride_s,
    kv_stride_b,
    kv_stride_h,
    emb_stride_s,
    emb_stride_b,
    K_DIM: tl.constexpr,
    V_DIM: tl.constexpr,
    K_BLOCK: tl.constexpr,
    V_BLOCK: tl.constexpr,
    HALF: tl.constexpr,
    HALF_BLOCK: tl.constexpr,
    HAS_POSITIONS: tl.constexpr,
    BLOCK_ROWS: tl.constexpr,
):
    """Split kv into key-nope and value, append the rotated shared k_pos_emb to every head's key."""
    rows, row_ok, seq_index, batch_index, position = _tile_rows(
        n_rows, heads, batch, POSITIONS, HAS_POSITIONS, BLOCK_ROWS
    )
    kv_base = seq_index * kv_stride_s + batch_index * kv_stride_b + (rows % heads) * kv_stride_h
    key_row = KEY + rows[:, None] * (K_DIM + 2 * HALF)

    k_offsets = tl.arange(0, K_BLOCK)
    k_mask = row_ok[:, None] & (k_offsets < K_DIM)[None, :]
    k_nope = tl.load(KV + kv_base[:, None] + k_offsets[None, :], mask=k_mask)
    tl.store(key_row + k_offsets[None, :], k_nope, mask=k_mask)

    v_offsets = tl.arange(0, V_BLOCK)
    v_mask = row_ok[:, None] & (v_offsets < V_DIM)[None, :]
    value = tl.load(KV + kv_base[:, None] + K_DIM + v_offsets[None, :], mask=v_mask)
    tl.store(VALUE + rows[:, None] * V_DIM + v_offsets[None, :], value, mask=v_mask)

    half_offsets = tl.arange(0, HALF_BLOCK)
    mask = row_ok[:, None] & (half_offsets < HALF)[None, :]
    cos_left, sin_left, cos_right, sin_right = _cos_sin(COS, SIN, position, HALF, half_offsets, mask)
    emb_at = K_POS_EMB + seq_index * emb_stride_s + batch_index * emb_stride_b
    first, second = _load_pairs(emb_at, row_ok, HALF, HALF_BLOCK, BLOCK_ROWS)
    rope_out = key_row + K_DIM + half_offsets[None, :]
    tl.store(rope_out, (first * cos_left - second * sin_left).to(KEY.dtype.element_ty), mask=mask)
    tl.store(rope_out + HALF, (second * cos_right + first * sin_right).to(KEY.dtype.element_ty), mask=mask)


@triton.jit
def rope_kv_backward_kernel(
    GRAD_KEY,
    GRAD_VALUE,
    GRAD_KV,
    GRAD_K_POS_EMB,
    COS,
    SIN,
    POSITIONS,
    n_tokens,
    heads,
    batch,
    K_DIM: tl.constexpr,
    V_DIM: tl.constexpr,
    K_BLOCK: tl.constexpr,
    V_BLOCK: tl.constexpr,
    HALF: tl.constexpr,
    HALF_BLOCK: tl.constexpr,
    HAS_POSITIONS: tl.constexpr,
    BLOCK_TOKENS: tl.constexpr,
    BLOCK_HEADS: tl.constexpr,
):
    """Gradients are contiguous here. One program owns whole tokens, so the sum over heads of the rope gradient
    stays in registers (float32) and k_pos_emb's gradient is written once, with no atomics."""
    tokens = tl.program_id(0).to(tl.int64) * BLOCK_TOKENS + tl.arange(0, BLOCK_TOKENS)
    token_ok = tokens < n_tokens
    k_offsets = tl.arange(0, K_BLOCK)
    v_offsets = tl.arange(0, V_BLOCK)
    half_offsets = tl.arange(0, HALF_BLOCK)
    sum_left = tl.zeros((BLOCK_TOKENS, HALF_BLOCK), dtype=tl.float32)
    sum_right = tl.zeros((BLOCK_TOKENS, HALF_BLOCK), dtype=tl.float32)
    for head_start in range(0, heads, BLOCK_HEADS):
        head = head_start + tl.arange(0, BLOCK_HEADS)
        rows = (tokens[:, None] * heads + head[None, :])[:, :, None]
        row_ok = (token_ok[:, None] & (head < heads)[None, :])[:, :, None]
        grad_key_row = GRAD_KEY + rows * (K_DIM + 2 * HALF)
        grad_kv_row = GRAD_KV + rows * (K_DIM + V_DIM)

        k_mask = row_ok & (k_offsets < K_DIM)[None, None, :]
        # Gradients are read once: evict_first keeps them from pushing cos/sin out of the cache.
        tl.store(
            grad_kv_row + k_offsets[None, None, :],
            tl.load(grad_key_row + k_offsets[None, None, :], mask=k_mask, eviction_policy="evict_first"),
            mask=k_mask,
        )
        v_mask = row_ok & (v_offsets < V_DIM)[None, None, :]
        grad_value = tl.load(
            GRAD_VALUE + rows * V_DIM + v_offsets[None, None, :], mask=v_mask, eviction_policy="evict_first"
        )
        tl.store(grad_kv_row + K_DIM + v_offsets[None, None, :], grad_value, mask=v_mask)

        half_mask = row_ok & (half_offsets < HALF)[None, None, :]
        grad_rope = grad_key_row + K_DIM + half_offsets[None, None, :]
        left = tl.load(grad_rope, mask=half_mask, other=0.0, eviction_policy="evict_first")
        right = tl.load(grad_rope + HALF, mask=half_mask, other=0.0, eviction_policy="evict_first")
        sum_left += tl.sum(left.to(tl.float32), axis=1)
        sum_right += tl.sum(right.to(tl.float32), axis=1)

    seq_index, batch_index, position = _token_coordinates(tokens, POSITIONS, batch, HAS_POSITIONS, token_ok)
    mask = token_ok[:, None] & (half_offsets < HALF)[None, :]
    cos_left, sin_left, cos_right, sin_right = _cos_sin(COS, SIN, position, HALF, half_offsets, mask)
    first = sum_left * cos_left + sum_right * sin_right
    second = sum_right * cos_right - sum_left * sin_left
    _store_pairs(GRAD_K_POS_EMB + tokens * (2 * HALF), first, second, token_ok, HALF, HALF_BLOCK, BLOCK_TOKENS)
