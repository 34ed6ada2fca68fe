"""Triton kernels of absorbed MLA decode (imported only when the Triton backend runs).

Split-KV flash decoding: program ``(b, group, split)`` takes a group of query rows (row = ``(i, h)`` for query
``i`` of the ``s_q`` new tokens and head ``h``) and one contiguous stretch of sequence ``b``'s context, gathers
the latent rows through the block table, and keeps an online softmax over
``scores = (q_lat · c_kv + q_pe · k_pe) * scale``. Each cached tile feeds all the group's heads and serves as
both key (with ``k_pe``) and value. Every split writes its normalized output and log-sum-exp; a second kernel
merges the splits. With one split the first kernel writes the final output directly.
"""

import triton
import triton.language as tl

LOG2_E = tl.constexpr(1.4426950408889634)
LN_2 = tl.constexpr(0.6931471805599453)


@triton.jit
def decode_split_kernel(
    Q_LAT, Q_PE, CKV, KPE, BLOCK_TABLE, SEQLENS, OUT, LSE, softmax_scale, s_q, heads,
    stride_qb, stride_qs, stride_qh, stride_pb, stride_ps, stride_ph, stride_table,
    PAGE: tl.constexpr, RANK: tl.constexpr, ROPE: tl.constexpr, BLOCK_H: tl.constexpr, BLOCK_N: tl.constexpr,
    CAUSAL: tl.constexpr,
):  # fmt: skip
    batch, group, split = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    num_splits = tl.num_programs(2)
    n_rows = s_q * heads
    rows = group * BLOCK_H + tl.arange(0, BLOCK_H)
    row_ok = rows < n_rows
    query, head = rows // heads, rows % heads
    seqlen = tl.load(SEQLENS + batch)
    if CAUSAL:
        limit = seqlen - s_q + 1 + query
    else:
        limit = tl.zeros([BLOCK_H], dtype=tl.int32) + seqlen
    # Splits cut each sequence by its own length, in whole tiles, so variable lengths stay balanced.
    chunk = tl.cdiv(tl.cdiv(seqlen, num_splits), BLOCK_N) * BLOCK_N
    start = split * chunk
    end = tl.minimum(start + chunk, seqlen)

    latent_cols, rope_cols = tl.arange(0, RANK), tl.arange(0, ROPE)
    q_at = Q_LAT + batch * stride_qb + query * stride_qs + head * stride_qh
    q_lat = tl.load(q_at[:, None] + latent_cols[None, :], mask=row_ok[:, None], other=0.0)
    pe_at = Q_PE + batch * stride_pb + query * stride_ps + head * stride_ph
    q_pe = tl.load(pe_at[:, None] + rope_cols[None, :], mask=row_ok[:, None], other=0.0)
    scale = softmax_scale * LOG2_E  # exp2 instead of exp: one multiply folded into the scale

    running_max = tl.full([BLOCK_H], float("-inf"), dtype=tl.float32)
    running_sum = tl.zeros([BLOCK_H], dtype=tl.float32)
    acc = tl.zeros([BLOCK_H, RANK], dtype=tl.float32)
    table = BLOCK_TABLE + batch * stride_table
    for tile_start in range(start, end, BLOCK_N):
        keys = tile_start + tl.arange(0, BLOCK_N)
        key_ok = keys < end
        block = tl.load(table + keys // PAGE, mask=key_ok, other=0)
        slots = block.to(tl.int64) * PAGE + keys % PAGE
        ckv = tl.load(CKV + slots[:, None] * RANK + latent_cols[None, :], mask=key_ok[:, None], other=0.0)
        kpe = tl.load(KPE + slots[:, None] * ROPE + rope_cols[None, :], mask=key_ok[:, None], other=0.0)
        scores = tl.dot(q_lat, tl.trans(ckv)) + tl.dot(q_pe, tl.trans(kpe))
        visible = key_ok[None, :] & (keys[None, :] < limit[:, None])
        scores = tl.where(visible, scores * scale, float("-inf"))
        new_max = tl.maximum(running_max, tl.max(scores, 1))
        # A row that has seen no visible key yet keeps -inf; subtracting 0 instead avoids inf - inf = NaN.
        shift = tl.where(new_max == float("-inf"), 0.0, new_max)
        weights = tl.exp2(scores - shift[:, None])
        rescale = tl.exp2(running_max - shift)
        running_sum = running_sum * rescale + tl.sum(weights, 1)
        acc = acc * rescale[:, None] + tl.dot(weights.to(ckv.dtype), ckv)
        running_max = new_max

    empty = running_sum == 0.0  # a split past this sequence's end: zero weight in the merge
    out = acc / tl.where(empty, 1.0, running_sum)[:, None]
    lse = tl.where(empty, float("-inf"), (running_max + tl.log2(running_sum)) * LN_2)
    out_rows = (batch * num_splits + split) * n_rows + rows
    tl.store(OUT + out_rows[:, None] * RANK + latent_cols[None, :], out.to(OUT.dtype.element_ty), mask=row_ok[:, None])
    tl.store(LSE + out_rows, lse, mask=row_ok)


@triton.jit
def merge_splits_kernel(
    PARTIAL_OUT, PARTIAL_LSE, OUT, LSE, num_splits, n_rows, RANK: tl.constexpr, SPLITS_BLOCK: tl.constexpr
):
    """One program per (sequence, row): weight each split's output by ``exp(lse_split - lse_total)``."""
    batch, row = tl.program_id(0) // n_rows, tl.program_id(0) % n_rows
    splits = tl.arange(0, SPLITS_BLOCK)
    split_ok = splits < num_splits
    partial_rows = (batch * num_splits + splits) * n_rows + row
    lse = tl.load(PARTIAL_LSE + partial_rows, mask=split_ok, other=float("-inf"))
    lse_max = tl.max(lse, 0)
    weights = tl.exp(lse - lse_max)
    total = tl.sum(weights, 0)
    columns = tl.arange(0, RANK)
    parts = tl.load(PARTIAL_OUT + partial_rows[:, None] * RANK + columns[None, :], mask=split_ok[:, None], other=0.0)
    out = tl.sum(parts * weights[:, None], 0) / total
    out_row = batch * n_rows + row
    tl.store(OUT + out_row * RANK + columns, out.to(OUT.dtype.element_ty))
    tl.store(LSE + out_row, lse_max + tl.log(total))
