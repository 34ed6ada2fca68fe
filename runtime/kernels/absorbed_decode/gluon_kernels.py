"""Absorbed MLA decode for Hopper (sm_90) in Gluon: two warpgroups share each product instead of repeating one.

Same runs of the tile stream, partial results and leader records as ``triton_kernels.decode_kernel`` (its merge
kernel combines the parts); what differs is how a program attends to a tile of ``BLOCK_N`` cached tokens for its
64 query rows. Triton hands a score product whose result feeds another product to every warp along the rows, so
with 64 rows and two warpgroups both compute all the scores (a third more tensor-core work at 128 heads) and hold
them, spilling registers. Here warpgroup ``w`` computes the scores of keys ``[w * BLOCK_N/2, (w+1) * BLOCK_N/2)``
(row maxima exchanged each tile, row sums once per segment) and the output columns ``[w * RANK/2, (w+1) * RANK/2)`` from
all the weights, which pass through shared memory. Tiles are gathered with asynchronous copies into a ring of
``STAGES`` buffers, each refilled as soon as both warpgroups are done with it.
"""

from triton.experimental import gluon
from triton.experimental.gluon import language as gl
from triton.experimental.gluon.language.nvidia.hopper import (
    async_copy,
    fence_async_shared,
    warpgroup_mma,
    warpgroup_mma_wait,
)

from . import triton_kernels

# The scalar bookkeeping of runs and segments, shared with the Triton kernel (no tensor layouts involved).
_locate_run = gluon.jit(triton_kernels._locate_run.fn)
_segment_role = gluon.jit(triton_kernels._segment_role.fn)
_store_lead = gluon.jit(triton_kernels._store_lead.fn)

# Triton 3.6 names the CTA-wide barrier thread_barrier; later releases call it barrier.
_cta_barrier = getattr(gl, "thread_barrier", None) or gl.barrier
LOG2_E = gl.constexpr(1.4426950408889634)
LN_2 = gl.constexpr(0.6931471805599453)
WARPS = gl.constexpr(8)


@gluon.constexpr_function
def _operand_layout(width):
    """Shared-memory layout of a 16-bit MMA operand whose rows hold ``width`` elements (swizzled by up to 128 B)."""
    return gl.NVMMASharedLayout(swizzle_byte_width=min(128, 2 * width), element_bitwidth=16, rank=2)


@gluon.constexpr_function
def _split_columns(columns):
    """Warpgroup MMA layout of a 64-row product whose ``columns`` the two warpgroups share half and half."""
    return gl.NVMMADistributedLayout(version=[3, 0], warps_per_cta=[4, 2], instr_shape=[16, columns // 2, 16])


@gluon.constexpr_function
def _row_pieces(width, warps=WARPS):
    """Layout of a copy of ``width``-element 16-bit rows in 16-byte pieces over ``warps`` warps, a warp covering
    whole rows."""
    pieces = min(width // 8, 32)
    return gl.BlockedLayout([1, 8], [32 // pieces, pieces], [warps, 1], [1, 0])


@gluon.jit
def _add(a, b):
    return a + b


@gluon.jit
def _store_rows(OUT, LSE, rows, out, lse, keep, RANK: gl.constexpr):
    columns = gl.arange(0, RANK, layout=gl.SliceLayout(0, out.type.layout))
    at = OUT + rows[:, None] * RANK + columns[None, :]
    gl.store(at, out.to(OUT.dtype.element_ty), mask=keep[:, None])
    gl.store(LSE + rows, lse, mask=keep)


@gluon.jit
def _tile_stream(SEQLENS, batch, capacity, BLOCK_N: gl.constexpr, BLOCK_B: gl.constexpr, warps: gl.constexpr):
    """Each sequence's first and end tile in the stream, and the stream's length (as in the Triton kernel, lengths
    clamped to the table's capacity), computed by ``warps`` warps."""
    seqs = gl.arange(0, BLOCK_B, layout=gl.BlockedLayout([1], [32], [warps], [0]))
    lengths = gl.minimum(gl.maximum(gl.load(SEQLENS + seqs, mask=seqs < batch, other=0), 0), capacity)
    tiles = gl.cdiv(lengths, BLOCK_N)
    ends = gl.associative_scan(tiles, 0, _add)
    return seqs, ends - tiles, ends, gl.sum(tiles, 0)


@gluon.jit
def _row_offsets(table, num_blocks, tile_start, key_end, stride_block, stride_row: gl.constexpr, PAGE: gl.constexpr,
                 BLOCK_N: gl.constexpr, layout: gl.constexpr):  # fmt: skip
    """Offsets of the cache rows of keys ``[tile_start, tile_start + BLOCK_N)`` (through the cache's block and row
    strides) and which of them exist, in ``layout`` (block ids clamped into the cache, as in the Triton kernel)."""
    keys = tile_start + gl.arange(0, BLOCK_N, layout=layout)
    key_ok = keys < key_end
    if BLOCK_N <= PAGE:  # the tile lies inside one page: one table entry, consecutive rows
        pages = gl.minimum(gl.maximum(gl.load(table + tile_start // PAGE), 0), num_blocks - 1).to(gl.int64)
        page_rows = tile_start % PAGE + gl.arange(0, BLOCK_N, layout=layout)
    else:
        pages = gl.minimum(gl.maximum(gl.load(table + keys // PAGE, mask=key_ok, other=0), 0), num_blocks - 1)
        pages, page_rows = pages.to(gl.int64), keys % PAGE
    return pages * stride_block + page_rows * stride_row, key_ok


@gluon.jit
def _gather_rows(SOURCE, stride_block, stride_row: gl.constexpr, table, num_blocks, tile_start, key_end, buffer,
                 PAGE: gl.constexpr, WIDTH: gl.constexpr, BLOCK_N: gl.constexpr):  # fmt: skip
    """Start copying the ``WIDTH``-wide cache rows of keys ``[tile_start, tile_start + BLOCK_N)`` into ``buffer``
    (16-byte pieces; offsets computed in the copy's own layout, as moving them between layouts takes a barrier)."""
    gather: gl.constexpr = _row_pieces(WIDTH, gl.num_warps())
    rows_at, key_ok = _row_offsets(table, num_blocks, tile_start, key_end, stride_block, stride_row, PAGE, BLOCK_N,
                                   gl.SliceLayout(1, gather))  # fmt: skip
    columns = gl.arange(0, WIDTH, layout=gl.SliceLayout(0, gather))
    async_copy.async_copy_global_to_shared(buffer, SOURCE + rows_at[:, None] + columns[None, :],
                                           mask=key_ok[:, None])  # fmt: skip


@gluon.jit
def _gather_tile(CKV, KPE, stride_cb, stride_cr: gl.constexpr, stride_kb, stride_kr: gl.constexpr, table, num_blocks,
                 tile_start, key_end, ckv_buffer, kpe_buffer, PAGE: gl.constexpr, RANK: gl.constexpr,
                 ROPE: gl.constexpr, BLOCK_N: gl.constexpr):  # fmt: skip
    """Start copying the latent and rope rows of keys ``[tile_start, tile_start + BLOCK_N)`` into the buffers."""
    _gather_rows(CKV, stride_cb, stride_cr, table, num_blocks, tile_start, key_end, ckv_buffer, PAGE, RANK, BLOCK_N)
    _gather_rows(KPE, stride_kb, stride_kr, table, num_blocks, tile_start, key_end, kpe_buffer, PAGE, ROPE, BLOCK_N)


@gluon.jit
def _copy_queries(Q_LAT, Q_PE, seq, query, head, row_ok, stride_qb, stride_qs, stride_qh, stride_pb, stride_ps,
                  stride_ph, q_lat_smem, q_pe_smem, RANK: gl.constexpr, ROPE: gl.constexpr):  # fmt: skip
    """Start copying the group's query rows of sequence ``seq`` (rows past the last are zero) into shared memory;
    they land with the segment's first tile (same commit group), so the two latencies overlap."""
    gather: gl.constexpr = query.type.layout.parent
    q_at = Q_LAT + seq * stride_qb + query * stride_qs + head * stride_qh
    latent_cols = gl.arange(0, RANK, layout=gl.SliceLayout(0, gather))
    async_copy.async_copy_global_to_shared(q_lat_smem, q_at[:, None] + latent_cols[None, :], mask=row_ok[:, None])
    rope_gather: gl.constexpr = _row_pieces(ROPE, gl.num_warps())
    rope_rows = gl.convert_layout(query, gl.SliceLayout(1, rope_gather))
    rope_heads = gl.convert_layout(head, gl.SliceLayout(1, rope_gather))
    rope_ok = gl.convert_layout(row_ok, gl.SliceLayout(1, rope_gather))
    pe_at = Q_PE + seq * stride_pb + rope_rows * stride_ps + rope_heads * stride_ph
    rope_cols = gl.arange(0, ROPE, layout=gl.SliceLayout(0, rope_gather))
    async_copy.async_copy_global_to_shared(q_pe_smem, pe_at[:, None] + rope_cols[None, :], mask=rope_ok[:, None])


@gluon.jit
def _attend(CKV, KPE, stride_cb, stride_cr: gl.constexpr, stride_kb, stride_kr: gl.constexpr, table, num_blocks,
            seqlen, key_start, key_end, scale, s_q, query, q_lat_smem, q_pe_smem, ckv_smem, kpe_smem, weights_smem,
            PAGE: gl.constexpr, RANK: gl.constexpr, ROPE: gl.constexpr, BLOCK_H: gl.constexpr, BLOCK_N: gl.constexpr,
            STAGES: gl.constexpr, CAUSAL: gl.constexpr):  # fmt: skip
    """Online softmax of the group's rows over keys ``[key_start, key_end)`` of one sequence (queries already in
    shared memory); returns the unnormalized ``acc [BLOCK_H, RANK]`` (columns split between the warpgroups), the
    running max (log2 units) and the running sum."""
    scores_layout: gl.constexpr = _split_columns(BLOCK_N)
    out_layout: gl.constexpr = _split_columns(RANK)
    rows_layout: gl.constexpr = gl.SliceLayout(1, scores_layout)
    if CAUSAL:
        limit = seqlen - s_q + 1 + gl.convert_layout(query, rows_layout)
    else:
        limit = gl.full([BLOCK_H], 0, gl.int32, rows_layout) + seqlen

    running_max = gl.full([BLOCK_H], float("-inf"), gl.float32, rows_layout)
    # Per key column, summed once at the end: a sum across the warpgroups each tile would cost a CTA barrier.
    column_sums = gl.zeros([BLOCK_H, BLOCK_N], gl.float32, scores_layout)
    acc = gl.zeros([BLOCK_H, RANK], gl.float32, out_layout)
    no_scores = gl.zeros([BLOCK_H, BLOCK_N], gl.float32, scores_layout)
    num_tiles = gl.cdiv(key_end - key_start, BLOCK_N)
    # Prologue: the first STAGES - 1 tiles in flight, one commit group each (empty past the end); the first also
    # holds the queries' copies, issued just before.
    for ahead in gl.static_range(STAGES - 1):
        if ahead < num_tiles:
            _gather_tile(CKV, KPE, stride_cb, stride_cr, stride_kb, stride_kr, table, num_blocks,
                         key_start + ahead * BLOCK_N, key_end, ckv_smem.index(ahead), kpe_smem.index(ahead), PAGE,
                         RANK, ROPE, BLOCK_N)  # fmt: skip
        async_copy.commit_group()
    for tile in range(num_tiles):
        tile_start = key_start + tile * BLOCK_N
        stage = tile % STAGES
        async_copy.wait_group(STAGES - 2)
        fence_async_shared()
        _cta_barrier()  # every thread's copies of this tile have landed; the previous tile's buffer is free
        ckv = ckv_smem.index(stage)
        scores = warpgroup_mma(q_lat_smem, ckv.permute((1, 0)), no_scores, use_acc=False, is_async=True)
        scores = warpgroup_mma(q_pe_smem, kpe_smem.index(stage).permute((1, 0)), scores, is_async=True)
        # Refilled while the score product runs: the barrier the compiler puts before copies into buffers that
        # warpgroup MMA reads then overlaps the product instead of delaying it (H128: 393 -> 378 us).
        refill = tile + STAGES - 1
        if refill < num_tiles:
            _gather_tile(CKV, KPE, stride_cb, stride_cr, stride_kb, stride_kr, table, num_blocks,
                         key_start + refill * BLOCK_N, key_end, ckv_smem.index(refill % STAGES),
                         kpe_smem.index(refill % STAGES), PAGE, RANK, ROPE, BLOCK_N)  # fmt: skip
        async_copy.commit_group()
        scores = warpgroup_mma_wait(0, deps=(scores,))

        keys = tile_start + gl.arange(0, BLOCK_N, layout=gl.SliceLayout(0, scores_layout))
        visible = (keys[None, :] < key_end) & (keys[None, :] < limit[:, None])
        scores = gl.where(visible, scores * scale, float("-inf"))
        new_max = gl.maximum(running_max, gl.max(scores, 1))
        # A row that has seen no visible key yet keeps -inf; subtracting 0 instead avoids inf - inf = NaN.
        shift = gl.where(new_max == float("-inf"), 0.0, new_max)
        weights = gl.exp2(scores - shift[:, None])
        rescale = gl.exp2(running_max - shift)
        column_sums = column_sums * rescale[:, None] + weights
        running_max = new_max
        weights_smem.store(weights.to(weights_smem.dtype))  # both warpgroups are past the previous product
        fence_async_shared()
        _cta_barrier()  # all weights written
        acc = acc * gl.convert_layout(rescale, gl.SliceLayout(1, out_layout))[:, None]
        acc = warpgroup_mma(weights_smem, ckv, acc, is_async=True)
        acc = warpgroup_mma_wait(0, deps=(acc,))
    async_copy.wait_group(0)
    _cta_barrier()  # the buffers are free for the next segment
    return acc, running_max, gl.sum(column_sums, 1)


@gluon.jit
def decode_kernel(
    Q_LAT, Q_PE, CKV, KPE, BLOCK_TABLE, SEQLENS, OUT, LSE, PARTIAL_OUT, PARTIAL_LSE, LEADS, softmax_scale, batch,
    s_q, heads, num_blocks, capacity, stride_qb, stride_qs, stride_qh, stride_pb, stride_ps, stride_ph, stride_table,
    stride_cb, stride_cr: gl.constexpr, stride_kb, stride_kr: gl.constexpr, PAGE: gl.constexpr, RANK: gl.constexpr,
    ROPE: gl.constexpr,
    BLOCK_H: gl.constexpr, BLOCK_N: gl.constexpr, BLOCK_B: gl.constexpr, CAUSAL: gl.constexpr, STAGES: gl.constexpr,
):  # fmt: skip
    """``triton_kernels.decode_kernel``'s contract (same arguments and outputs, 16-bit products only) for 64-row
    groups, 8 warps."""
    gl.static_assert(BLOCK_H == 64, "two warpgroups of 64 rows")
    gl.static_assert(gl.num_warps() == WARPS)
    program, group = gl.program_id(0), gl.program_id(1)
    num_programs = gl.num_programs(0)
    n_rows = s_q * heads

    out_layout: gl.constexpr = _split_columns(RANK)
    out_rows_layout: gl.constexpr = gl.SliceLayout(1, out_layout)
    gather: gl.constexpr = _row_pieces(RANK)
    rows = group * BLOCK_H + gl.arange(0, BLOCK_H, layout=gl.SliceLayout(1, gather))
    row_ok = rows < n_rows
    query, head = rows // heads, rows % heads
    out_rows = group * BLOCK_H + gl.arange(0, BLOCK_H, layout=out_rows_layout)
    out_row_ok = out_rows < n_rows

    dtype: gl.constexpr = Q_LAT.dtype.element_ty
    q_lat_smem = gl.allocate_shared_memory(dtype, [BLOCK_H, RANK], _operand_layout(RANK))
    q_pe_smem = gl.allocate_shared_memory(dtype, [BLOCK_H, ROPE], _operand_layout(ROPE))
    ckv_smem = gl.allocate_shared_memory(dtype, [STAGES, BLOCK_N, RANK], _operand_layout(RANK))
    kpe_smem = gl.allocate_shared_memory(dtype, [STAGES, BLOCK_N, ROPE], _operand_layout(ROPE))
    weights_smem = gl.allocate_shared_memory(dtype, [BLOCK_H, BLOCK_N], _operand_layout(BLOCK_N))

    seqs, seq_first_tiles, seq_end_tiles, total_tiles = _tile_stream(SEQLENS, batch, capacity, BLOCK_N, BLOCK_B, WARPS)
    first, last, seq, seq_first = _locate_run(seqs, seq_first_tiles, seq_end_tiles, total_tiles, program, num_programs)
    lead_seq, lead_parts_end, lead_slot = -1, 0, 0
    scale = softmax_scale * LOG2_E  # exp2 instead of exp: one multiply folded into the scale
    tile = first
    while tile < last:
        seqlen = gl.minimum(gl.maximum(gl.load(SEQLENS + seq), 0), capacity)
        seq_end = seq_first + gl.cdiv(seqlen, BLOCK_N)
        stop = gl.minimum(seq_end, last)
        _copy_queries(Q_LAT, Q_PE, seq, query, head, row_ok, stride_qb, stride_qs, stride_qh, stride_pb,
                      stride_ps, stride_ph, q_lat_smem, q_pe_smem, RANK, ROPE)  # fmt: skip
        acc, running_max, running_sum = _attend(
            CKV, KPE, stride_cb, stride_cr, stride_kb, stride_kr, BLOCK_TABLE + seq * stride_table, num_blocks, seqlen,
            (tile - seq_first) * BLOCK_N, gl.minimum((stop - seq_first) * BLOCK_N, seqlen), scale, s_q, query,
            q_lat_smem, q_pe_smem, ckv_smem, kpe_smem, weights_smem, PAGE, RANK, ROPE, BLOCK_H, BLOCK_N, STAGES, CAUSAL,
        )  # fmt: skip
        empty = running_sum == 0.0  # no key of this segment visible to the row: zero weight in the merge
        lse = gl.where(empty, float("-inf"), (running_max + gl.log2(running_sum)) * LN_2)
        lse = gl.convert_layout(lse, out_rows_layout)
        out = acc * gl.convert_layout(1.0 / gl.where(empty, 1.0, running_sum), out_rows_layout)[:, None]

        whole, slot, lead_seq, lead_parts_end, lead_slot = _segment_role(
            seq, seq_first, seq_end, first, last, num_programs, total_tiles, lead_seq, lead_parts_end, lead_slot
        )
        _store_rows(OUT, LSE, seq * n_rows + out_rows, out, lse, out_row_ok & whole, RANK)
        _store_rows(PARTIAL_OUT, PARTIAL_LSE, (program * 2 + slot) * n_rows + out_rows, out, lse,
                    out_row_ok & (whole == 0), RANK)  # fmt: skip
        tile = stop
        seq += 1
        seq_first = seq_end
    _store_lead(LEADS, program, group, lead_seq, lead_parts_end, lead_slot)
    # An empty run (more programs than tiles) leaves a part of weight zero in slot 0, as the Triton kernel does.
    nothing = gl.zeros([BLOCK_H, RANK], gl.float32, out_layout)
    no_weight = gl.full([BLOCK_H], float("-inf"), gl.float32, out_rows_layout)
    _store_rows(PARTIAL_OUT, PARTIAL_LSE, program * 2 * n_rows + out_rows, nothing, no_weight,
                out_row_ok & (first == last), RANK)  # fmt: skip
