"""Triton kernels of MLA's fused RoPE (imported only when the Triton backend runs).

Program ``(token, head block)`` owns ``BLOCK_HEADS`` heads of one token (the kv forward has two programs for
each, one writing keys, one values). A token is ``(s, b)`` in bshd and ``(t, 0)`` in thd (batch 1), so one
kernel serves both layouts and any strides over the token and head dimensions. What belongs to the token (its
position, its cos/sin row, k_pos_emb and its rotation) is loaded and computed once and broadcast over the heads;
addresses are one scalar base per token plus 32-bit offsets. cos/sin are ``[max_seq, emb_dim]`` tables indexed
by the token's position (its sequence index, or ``POSITIONS`` in thd). All arithmetic is float32; each output is
rounded once.
"""

import triton
import triton.language as tl


@triton.jit
def _token(batch, POSITIONS, HAS_POSITIONS: tl.constexpr):
    """This program's token (int64, so that addresses of large tensors cannot overflow), its sequence and batch
    index, and its rotary position."""
    token = tl.program_id(0).to(tl.int64)
    seq_index = token // batch
    if HAS_POSITIONS:
        position = tl.load(POSITIONS + token)
    else:
        position = seq_index
    return token, seq_index, token % batch, position


@triton.jit
def _cos_sin(COS, SIN, position, HALF: tl.constexpr, HALF_BLOCK: tl.constexpr):
    """The token's cos/sin halves as ``[1, HALF_BLOCK]`` float32 rows, ready to broadcast over heads."""
    half_offsets = tl.arange(0, HALF_BLOCK)[None, :]
    mask = half_offsets < HALF
    at = position * (2 * HALF) + half_offsets
    cos_left = tl.load(COS + at, mask=mask, other=0.0).to(tl.float32)
    sin_left = tl.load(SIN + at, mask=mask, other=0.0).to(tl.float32)
    cos_right = tl.load(COS + at + HALF, mask=mask, other=0.0).to(tl.float32)
    sin_right = tl.load(SIN + at + HALF, mask=mask, other=0.0).to(tl.float32)
    return cos_left, sin_left, cos_right, sin_right


@triton.jit
def _rotate(first, second, cos_left, sin_left, cos_right, sin_right):
    """RoPE on de-interleaved pairs: the rotated halves (left = real parts, right = imaginary parts)."""
    return first * cos_left - second * sin_left, second * cos_right + first * sin_right


@triton.jit
def _rotate_back(left, right, cos_left, sin_left, cos_right, sin_right):
    """The transpose of ``_rotate``: a gradient of the rotated halves back to the pairs."""
    return left * cos_left + right * sin_right, right * cos_right - left * sin_left


@triton.jit
def _load_pairs(at, ok, HALF: tl.constexpr, HALF_BLOCK: tl.constexpr, ROWS: tl.constexpr):
    """Even and odd channels of the interleaved slices starting at ``at`` (``[ROWS]`` pointers), as float32.
    A power-of-two half reads each slice as one contiguous tile and splits it in registers; strided loads of
    every other element waste half of each memory transaction."""
    if HALF == HALF_BLOCK:
        offsets = tl.arange(0, 2 * HALF_BLOCK)[None, :]
        tile = tl.load(at[:, None] + offsets, mask=ok[:, None], other=0.0).to(tl.float32)
        first, second = tl.split(tl.reshape(tile, (ROWS, HALF_BLOCK, 2)))
    else:
        half_offsets = tl.arange(0, HALF_BLOCK)[None, :]
        mask = ok[:, None] & (half_offsets < HALF)
        pairs = at[:, None] + 2 * half_offsets
        first = tl.load(pairs, mask=mask, other=0.0).to(tl.float32)
        second = tl.load(pairs + 1, mask=mask, other=0.0).to(tl.float32)
    return first, second


@triton.jit
def _store_pairs(at, first, second, ok, HALF: tl.constexpr, HALF_BLOCK: tl.constexpr, ROWS: tl.constexpr):
    """Interleave ``first`` and ``second`` back into the slices at ``at`` (the transpose of ``_load_pairs``)."""
    if HALF == HALF_BLOCK:
        offsets = tl.arange(0, 2 * HALF_BLOCK)[None, :]
        tile = tl.reshape(tl.join(first, second), (ROWS, 2 * HALF_BLOCK))
        tl.store(at[:, None] + offsets, tile.to(at.dtype.element_ty), mask=ok[:, None])
    else:
        half_offsets = tl.arange(0, HALF_BLOCK)[None, :]
        mask = ok[:, None] & (half_offsets < HALF)
        pairs = at[:, None] + 2 * half_offsets
        tl.store(pairs, first.to(at.dtype.element_ty), mask=mask)
        tl.store(pairs + 1, second.to(at.dtype.element_ty), mask=mask)


@triton.jit
def _store_halves(at, left, right, ok, HALF: tl.constexpr, HALF_BLOCK: tl.constexpr, CACHE: tl.constexpr):
    """Write de-interleaved halves (``[rows or 1, HALF_BLOCK]``) to the slices at ``at`` (``[rows]``), with the
    store cache modifier ``CACHE`` (``""``: default, ``".cs"``: streaming). No default value: Triton 3.6 fails to
    compile a caller that leaves a string constexpr to its default ('str' object has no attribute 'type')."""
    half_offsets = tl.arange(0, HALF_BLOCK)[None, :]
    mask = ok[:, None] & (half_offsets < HALF)
    halves = at[:, None] + half_offsets
    tl.store(halves, tl.broadcast_to(left, halves.shape).to(at.dtype.element_ty), mask=mask, cache_modifier=CACHE)
    tl.store(halves + HALF, tl.broadcast_to(right, halves.shape).to(at.dtype.element_ty), mask=mask,
             cache_modifier=CACHE)  # fmt: skip


@triton.jit
def rope_q_inplace_kernel(
    Q,
    COS,
    SIN,
    POSITIONS,
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
    BLOCK_HEADS: tl.constexpr,
):
    """Forward: read the interleaved rope slice, write it rotated and de-interleaved. Backward: the transpose."""
    _, seq_index, batch_index, position = _token(batch, POSITIONS, HAS_POSITIONS)
    head = tl.program_id(1) * BLOCK_HEADS + tl.arange(0, BLOCK_HEADS)
    ok = head < heads
    cos_left, sin_left, cos_right, sin_right = _cos_sin(COS, SIN, position, HALF, HALF_BLOCK)
    rope_at = Q + (seq_index * stride_s + batch_index * stride_b + rope_offset) + head * stride_h
    if BACKWARD:
        half_offsets = tl.arange(0, HALF_BLOCK)[None, :]
        halves = rope_at[:, None] + half_offsets
        mask = ok[:, None] & (half_offsets < HALF)
        grad_left = tl.load(halves, mask=mask).to(tl.float32)
        grad_right = tl.load(halves + HALF, mask=mask).to(tl.float32)
        first, second = _rotate_back(grad_left, grad_right, cos_left, sin_left, cos_right, sin_right)
        _store_pairs(rope_at, first, second, ok, HALF, HALF_BLOCK, BLOCK_HEADS)
    else:
        first, second = _load_pairs(rope_at, ok, HALF, HALF_BLOCK, BLOCK_HEADS)
        left, right = _rotate(first, second, cos_left, sin_left, cos_right, sin_right)
        _store_halves(rope_at, left, right, ok, HALF, HALF_BLOCK, "")


@triton.jit
def rope_kv_forward_kernel(
    KV,
    K_POS_EMB,
    KEY,
    VALUE,
    COS,
    SIN,
    POSITIONS,
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
    BLOCK_HEADS: tl.constexpr,
):
    """Split kv into key-nope and value, append the rotated shared k_pos_emb to every head's key.

    Grid ``(tokens, 2 x head blocks)``: programs of the first half of axis 1 write the keys of their heads (nope
    columns and the rotated rope), those of the second half copy the values, so each program reads one slice of
    kv and writes one output. On an H200, V2-Lite's forward (16 heads) took 0.0781 ms against 0.0797 for one
    program writing both, every round, and the same with key and value programs interleaved on axis 1; V3's
    (128 heads) 0.5917 against 0.5935, where the interleaved order gave nothing (benchmarks/RESULTS.md, issue
    16's tenth pass)."""
    token, seq_index, batch_index, position = _token(batch, POSITIONS, HAS_POSITIONS)
    head_blocks = tl.num_programs(1) // 2
    role = tl.program_id(1) // head_blocks  # 0: keys, 1: values
    head = (tl.program_id(1) % head_blocks) * BLOCK_HEADS + tl.arange(0, BLOCK_HEADS)
    ok = head < heads
    kv_at = KV + (seq_index * kv_stride_s + batch_index * kv_stride_b) + head * kv_stride_h
    if role == 0:
        key_at = KEY + token * heads * (K_DIM + 2 * HALF) + head * (K_DIM + 2 * HALF)
        # Every load is issued before the first store: the compiler may not move a load across a store to memory
        # it cannot prove distinct, and the loads in flight together are what keeps the memory system busy.
        k_offsets = tl.arange(0, K_BLOCK)[None, :]
        k_mask = ok[:, None] & (k_offsets < K_DIM)
        k_nope = tl.load(kv_at[:, None] + k_offsets, mask=k_mask)
        cos_left, sin_left, cos_right, sin_right = _cos_sin(COS, SIN, position, HALF, HALF_BLOCK)
        emb_at = K_POS_EMB + (seq_index * emb_stride_s + batch_index * emb_stride_b) + tl.zeros([1], dtype=tl.int32)
        first, second = _load_pairs(emb_at, tl.full([1], True, dtype=tl.int1), HALF, HALF_BLOCK, 1)

        tl.store(key_at[:, None] + k_offsets, k_nope, mask=k_mask)
        left, right = _rotate(first, second, cos_left, sin_left, cos_right, sin_right)
        _store_halves(key_at + K_DIM, left, right, ok, HALF, HALF_BLOCK, "")
    else:
        v_offsets = tl.arange(0, V_BLOCK)[None, :]
        v_mask = ok[:, None] & (v_offsets < V_DIM)
        value = tl.load(kv_at[:, None] + K_DIM + v_offsets, mask=v_mask)
        value_at = VALUE + token * heads * V_DIM + head * V_DIM
        tl.store(value_at[:, None] + v_offsets, value, mask=v_mask)


@triton.jit
def rope_kv_backward_kernel(
    GRAD_KEY,
    GRAD_VALUE,
    GRAD_KV,
    GRAD_K_POS_EMB,
    COS,
    SIN,
    POSITIONS,
    heads,
    batch,
    K_DIM: tl.constexpr,
    V_DIM: tl.constexpr,
    K_BLOCK: tl.constexpr,
    V_BLOCK: tl.constexpr,
    HALF: tl.constexpr,
    HALF_BLOCK: tl.constexpr,
    HAS_POSITIONS: tl.constexpr,
    BLOCK_HEADS: tl.constexpr,
):
    """Gradients are contiguous here. One program owns a whole token: it copies the nope and value gradients of
    all its heads and sums their rope gradients in float32 registers, so k_pos_emb's gradient is written once,
    with no atomics."""
    token, _, _, position = _token(batch, POSITIONS, HAS_POSITIONS)
    k_offsets = tl.arange(0, K_BLOCK)[None, :]
    v_offsets = tl.arange(0, V_BLOCK)[None, :]
    half_offsets = tl.arange(0, HALF_BLOCK)[None, :]
    sum_left = tl.zeros((1, HALF_BLOCK), dtype=tl.float32)
    sum_right = tl.zeros((1, HALF_BLOCK), dtype=tl.float32)
    grad_key_token = GRAD_KEY + token * heads * (K_DIM + 2 * HALF)
    grad_value_token = GRAD_VALUE + token * heads * V_DIM
    grad_kv_token = GRAD_KV + token * heads * (K_DIM + V_DIM)
    for head_start in range(0, heads, BLOCK_HEADS):
        head = head_start + tl.arange(0, BLOCK_HEADS)
        ok = (head < heads)[:, None]
        grad_key_at = grad_key_token + (head * (K_DIM + 2 * HALF))[:, None]
        grad_kv_at = grad_kv_token + (head * (K_DIM + V_DIM))[:, None]

        # All loads before the first store (see the forward).
        k_mask = ok & (k_offsets < K_DIM)
        grad_nope = tl.load(grad_key_at + k_offsets, mask=k_mask)
        v_mask = ok & (v_offsets < V_DIM)
        grad_value_at = grad_value_token + (head * V_DIM)[:, None] + v_offsets
        grad_value = tl.load(grad_value_at, mask=v_mask)
        half_mask = ok & (half_offsets < HALF)
        grad_rope = grad_key_at + K_DIM + half_offsets
        left = tl.load(grad_rope, mask=half_mask, other=0.0)
        right = tl.load(grad_rope + HALF, mask=half_mask, other=0.0)

        tl.store(grad_kv_at + k_offsets, grad_nope, mask=k_mask)
        tl.store(grad_kv_at + K_DIM + v_offsets, grad_value, mask=v_mask)
        sum_left += tl.sum(left.to(tl.float32), axis=0, keep_dims=True)
        sum_right += tl.sum(right.to(tl.float32), axis=0, keep_dims=True)

    cos_left, sin_left, cos_right, sin_right = _cos_sin(COS, SIN, position, HALF, HALF_BLOCK)
    first, second = _rotate_back(sum_left, sum_right, cos_left, sin_left, cos_right, sin_right)
    grad_emb_at = GRAD_K_POS_EMB + token * (2 * HALF) + tl.zeros([1], dtype=tl.int32)
    _store_pairs(grad_emb_at, first, second, tl.full([1], True, dtype=tl.int1), HALF, HALF_BLOCK, 1)
