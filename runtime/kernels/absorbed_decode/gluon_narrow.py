"""Absorbed MLA decode for Hopper (sm_90) in Gluon for narrow groups (up to 16 query rows): products transposed.

Same runs of the tile stream, partial results and leader records as ``triton_kernels.decode_kernel``. With 16
query rows a warpgroup MMA over the rows (64 at least) would leave three quarters of it idle, so both products run
transposed: the scores as ``keys [BLOCK_N, RANK] @ queries^T`` (64 tokens fill the MMA's rows, the 16 query rows are
its columns) and the output as ``latent^T [RANK, BLOCK_N] @ weights^T`` (the tile read in place, transposed by the
MMA's shared-memory descriptor). One warpgroup per program, one program per multiprocessor; the run's tiles stream
through a ring of ``STAGES`` buffers filled by asynchronous copies, across its segments: a buffer is refilled as
soon as the products reading it are done, so while a program waits for one tile the next ones are already on their
way (the Triton kernel's pipeliner issues each tile's copies and waits for them in the same iteration), also where
the next tile belongs to the next sequence (its queries go into a buffer of their own, behind the tile's rows).
"""

from triton.experimental import gluon
from triton.experimental.gluon import language as gl
from triton.experimental.gluon.language.nvidia.hopper import (
    async_copy,
    fence_async_shared,
    warpgroup_mma,
    warpgroup_mma_wait,
)

from .gluon_kernels import (
    LN_2,
    LOG2_E,
    _copy_queries,
    _cta_barrier,
    _gather_tile,
    _locate_run,
    _operand_layout,
    _row_pieces,
    _segment_role,
    _store_lead,
    _tile_stream,
)

WARPS = gl.constexpr(4)  # one warpgroup


@gluon.constexpr_function
def _transposed(rows):
    """Warpgroup MMA layout of a transposed product: tokens or latent columns down, the group's ``rows`` across."""
    return gl.NVMMADistributedLayout(version=[3, 0], warps_per_cta=[4, 1], instr_shape=[16, rows, 16])


@gluon.jit
def _store_transposed(OUT, LSE, rows, out_t, lse, keep, RANK: gl.constexpr, BLOCK_H: gl.constexpr):
    """Store ``out_t [RANK, BLOCK_H]`` as rows of ``OUT`` (and their log-sum-exp) where ``keep``, each thread
    writing 16 bytes of a row (the MMA layout holds a row's columns in 8 threads, 4 bytes each)."""
    store_layout: gl.constexpr = gl.BlockedLayout([4, 1], [32, 1], [1, WARPS], [0, 1])
    out_t = gl.convert_layout(out_t.to(OUT.dtype.element_ty), store_layout)
    columns = gl.arange(0, RANK, layout=gl.SliceLayout(1, store_layout))
    out_rows = gl.convert_layout(rows, gl.SliceLayout(0, store_layout))
    out_keep = gl.convert_layout(keep, gl.SliceLayout(0, store_layout))
    gl.store(OUT + out_rows[None, :] * RANK + columns[:, None], out_t, mask=out_keep[None, :])
    gl.store(LSE + rows, lse, mask=keep)


@gluon.jit
def _next_sequence(SEQLENS, seq, seq_end, batch, capacity, BLOCK_N: gl.constexpr):
    """The sequence after ``seq`` (which ends at tile ``seq_end`` of the stream): its index, first and end tile,
    and length (clamped to the table's capacity; none past the batch)."""
    seqlen = gl.minimum(gl.maximum(gl.load(SEQLENS + seq + 1, mask=seq + 1 < batch, other=0), 0), capacity)
    return seq + 1, seq_end, seq_end + gl.cdiv(seqlen, BLOCK_N), seqlen


@gluon.jit
def _request(Q_LAT, Q_PE, CKV, KPE, BLOCK_TABLE, SEQLENS, tile, first, seq, seq_first, seq_end, seqlen, segment,
             batch, capacity, num_blocks, gather_query, gather_head, gather_row_ok, stride_qb, stride_qs, stride_qh,
             stride_pb, stride_ps, stride_ph, stride_table, stride_cb, stride_cr: gl.constexpr, stride_kb,
             stride_kr: gl.constexpr, q_lat_smem, q_pe_smem, ckv_smem, kpe_smem, PAGE: gl.constexpr,
             RANK: gl.constexpr, ROPE: gl.constexpr, BLOCK_N: gl.constexpr, STAGES: gl.constexpr):  # fmt: skip
    """Start copying tile ``tile`` of the stream (the run's ``tile - first``-th) into its ring buffer, and with a
    segment's first tile the segment's queries (after the rows: they are the long pole) into the queries' buffer
    of its segment. The loading cursor (``seq`` ... ``segment``) moves on to the sequence holding the tile."""
    while seq_end <= tile:  # sequences of length 0 hold no tile
        seq, seq_first, seq_end, seqlen = _next_sequence(SEQLENS, seq, seq_end, batch, capacity, BLOCK_N)
    stage = (tile - first) % STAGES
    _gather_tile(CKV, KPE, stride_cb, stride_cr, stride_kb, stride_kr, BLOCK_TABLE + seq * stride_table, num_blocks,
                 (tile - seq_first) * BLOCK_N, seqlen, ckv_smem.index(stage), kpe_smem.index(stage), PAGE, RANK, ROPE,
                 BLOCK_N)  # fmt: skip
    if (tile == first) | (tile == seq_first):
        segment += 1
        _copy_queries(Q_LAT, Q_PE, seq, gather_query, gather_head, gather_row_ok, stride_qb, stride_qs, stride_qh,
                      stride_pb, stride_ps, stride_ph, q_lat_smem.index(segment % STAGES),
                      q_pe_smem.index(segment % STAGES), RANK, ROPE)  # fmt: skip
    return seq, seq_first, seq_end, seqlen, segment


@gluon.jit
def decode_kernel(
    Q_LAT, Q_PE, CKV, KPE, BLOCK_TABLE, SEQLENS, OUT, LSE, PARTIAL_OUT, PARTIAL_LSE, LEADS, softmax_scale, batch,
    s_q, heads, num_blocks, capacity, stride_qb, stride_qs, stride_qh, stride_pb, stride_ps, stride_ph, stride_table,
    stride_cb, stride_cr: gl.constexpr, stride_kb, stride_kr: gl.constexpr, PAGE: gl.constexpr, RANK: gl.constexpr,
    ROPE: gl.constexpr,
    BLOCK_H: gl.constexpr, BLOCK_N: gl.constexpr, BLOCK_B: gl.constexpr, CAUSAL: gl.constexpr, STAGES: gl.constexpr,
):  # fmt: skip
    """``triton_kernels.decode_kernel``'s contract (same arguments and outputs, 16-bit products only) for groups of
    16 query rows and 64-token tiles, 4 warps. Two cursors walk the run: the loading one ``STAGES`` tiles ahead of
    the computing one; a segment's queries take one of ``STAGES`` buffers (the segment that used it before has no
    tile left in the ring)."""
    gl.static_assert(BLOCK_H == 16, "16-row groups: the transposed products' columns")
    gl.static_assert(BLOCK_N == 64, "64-token tiles: the rows of one warpgroup MMA")
    gl.static_assert(RANK % 64 == 0, "the output product's rows: whole warpgroup MMAs")
    gl.static_assert(gl.num_warps() == WARPS)
    program, group = gl.program_id(0), gl.program_id(1)
    num_programs = gl.num_programs(0)
    n_rows = s_q * heads

    layout: gl.constexpr = _transposed(BLOCK_H)
    rows_layout: gl.constexpr = gl.SliceLayout(0, layout)
    rows = group * BLOCK_H + gl.arange(0, BLOCK_H, layout=rows_layout)
    row_ok = rows < n_rows
    query = rows // heads
    gather: gl.constexpr = _row_pieces(RANK, WARPS)
    gather_rows = group * BLOCK_H + gl.arange(0, BLOCK_H, layout=gl.SliceLayout(1, gather))
    gather_row_ok = gather_rows < n_rows
    gather_query, gather_head = gather_rows // heads, gather_rows % heads

    dtype: gl.constexpr = Q_LAT.dtype.element_ty
    q_lat_smem = gl.allocate_shared_memory(dtype, [STAGES, BLOCK_H, RANK], _operand_layout(RANK))
    q_pe_smem = gl.allocate_shared_memory(dtype, [STAGES, BLOCK_H, ROPE], _operand_layout(ROPE))
    ckv_smem = gl.allocate_shared_memory(dtype, [STAGES, BLOCK_N, RANK], _operand_layout(RANK))
    kpe_smem = gl.allocate_shared_memory(dtype, [STAGES, BLOCK_N, ROPE], _operand_layout(ROPE))
    weights_smem = gl.allocate_shared_memory(dtype, [BLOCK_N, BLOCK_H], _operand_layout(BLOCK_H))

    seqs, seq_first_tiles, seq_end_tiles, total_tiles = _tile_stream(SEQLENS, batch, capacity, BLOCK_N, BLOCK_B, WARPS)
    first, last, seq, seq_first = _locate_run(seqs, seq_first_tiles, seq_end_tiles, total_tiles, program, num_programs)
    seqlen = gl.minimum(gl.maximum(gl.load(SEQLENS + seq, mask=first < last, other=0), 0), capacity)
    seq_end = seq_first + gl.cdiv(seqlen, BLOCK_N)
    # The loading cursor, then the ring filled: one commit group per tile (empty past the run's end).
    load_seq, load_first, load_end, load_seqlen, load_segment = seq, seq_first, seq_end, seqlen, -1
    for ahead in gl.static_range(STAGES):
        if first + ahead < last:
            load_seq, load_first, load_end, load_seqlen, load_segment = _request(
                Q_LAT, Q_PE, CKV, KPE, BLOCK_TABLE, SEQLENS, first + ahead, first, load_seq, load_first, load_end,
                load_seqlen, load_segment, batch, capacity, num_blocks, gather_query, gather_head, gather_row_ok,
                stride_qb, stride_qs, stride_qh, stride_pb, stride_ps, stride_ph, stride_table, stride_cb, stride_cr,
                stride_kb, stride_kr, q_lat_smem, q_pe_smem, ckv_smem, kpe_smem, PAGE, RANK, ROPE, BLOCK_N, STAGES,
            )  # fmt: skip
        async_copy.commit_group()

    lead_seq, lead_parts_end, lead_slot = -1, 0, 0
    scale = softmax_scale * LOG2_E  # exp2 instead of exp: one multiply folded into the scale
    segment = 0
    running_max = gl.full([BLOCK_H], float("-inf"), gl.float32, rows_layout)
    # Per key, summed once per segment: summing over the tile's keys each time is a reduction across the warps.
    column_sums = gl.zeros([BLOCK_N, BLOCK_H], gl.float32, layout)
    acc = gl.zeros([RANK, BLOCK_H], gl.float32, layout)
    no_scores = gl.zeros([BLOCK_N, BLOCK_H], gl.float32, layout)
    for tile in range(first, last):
        stage = (tile - first) % STAGES
        async_copy.wait_group(STAGES - 1)
        fence_async_shared()
        _cta_barrier()  # every thread's copies of this tile (and of a new segment's queries) have landed
        ckv = ckv_smem.index(stage)
        scores = warpgroup_mma(ckv, q_lat_smem.index(segment % STAGES).permute((1, 0)), no_scores, use_acc=False,
                               is_async=True)  # fmt: skip
        scores = warpgroup_mma(kpe_smem.index(stage), q_pe_smem.index(segment % STAGES).permute((1, 0)), scores,
                               is_async=True)  # fmt: skip
        scores = warpgroup_mma_wait(0, deps=(scores,))

        if CAUSAL:
            limit = gl.minimum(seqlen - s_q + 1 + query, seqlen)
        else:
            limit = gl.full([BLOCK_H], 0, gl.int32, rows_layout) + seqlen
        keys = (tile - seq_first) * BLOCK_N + gl.arange(0, BLOCK_N, layout=gl.SliceLayout(1, layout))
        scores = gl.where(keys[:, None] < limit[None, :], scores * scale, float("-inf"))
        # A segment's first tile starts from nothing: with the max at -inf the rescale below zeroes the sums and
        # the accumulator.
        running_max = gl.where((tile == first) | (tile == seq_first), float("-inf"), running_max)
        new_max = gl.maximum(running_max, gl.max(scores, 0))
        # A row that has seen no visible key yet keeps -inf; subtracting 0 instead avoids inf - inf = NaN.
        shift = gl.where(new_max == float("-inf"), 0.0, new_max)
        weights = gl.exp2(scores - shift[None, :])
        rescale = gl.exp2(running_max - shift)
        column_sums = column_sums * rescale[None, :] + weights
        running_max = new_max
        weights_smem.store(weights.to(dtype))  # the previous tile's output product is done
        fence_async_shared()
        _cta_barrier()  # all weights written
        acc = warpgroup_mma(ckv.permute((1, 0)), weights_smem, acc * rescale[None, :], is_async=True)
        acc = warpgroup_mma_wait(0, deps=(acc,))
        _cta_barrier()  # every warp's products are done with this buffer: refill it
        if tile + STAGES < last:
            load_seq, load_first, load_end, load_seqlen, load_segment = _request(
                Q_LAT, Q_PE, CKV, KPE, BLOCK_TABLE, SEQLENS, tile + STAGES, first, load_seq, load_first, load_end,
                load_seqlen, load_segment, batch, capacity, num_blocks, gather_query, gather_head, gather_row_ok,
                stride_qb, stride_qs, stride_qh, stride_pb, stride_ps, stride_ph, stride_table, stride_cb, stride_cr,
                stride_kb, stride_kr, q_lat_smem, q_pe_smem, ckv_smem, kpe_smem, PAGE, RANK, ROPE, BLOCK_N, STAGES,
            )  # fmt: skip
        async_copy.commit_group()

        if tile + 1 == gl.minimum(seq_end, last):  # the segment's last tile
            running_sum = gl.sum(column_sums, 0)
            empty = running_sum == 0.0  # no key of this segment visible to the row: zero weight in the merge
            lse = gl.where(empty, float("-inf"), (running_max + gl.log2(running_sum)) * LN_2)
            out_t = acc * (1.0 / gl.where(empty, 1.0, running_sum))[None, :]
            whole, slot, lead_seq, lead_parts_end, lead_slot = _segment_role(
                seq, seq_first, seq_end, first, last, num_programs, total_tiles, lead_seq, lead_parts_end, lead_slot
            )
            _store_transposed(OUT, LSE, seq * n_rows + rows, out_t, lse, row_ok & whole, RANK, BLOCK_H)
            _store_transposed(PARTIAL_OUT, PARTIAL_LSE, (program * 2 + slot) * n_rows + rows, out_t, lse,
                              row_ok & (whole == 0), RANK, BLOCK_H)  # fmt: skip
            segment += 1
            seq, seq_first, seq_end, seqlen = _next_sequence(SEQLENS, seq, seq_end, batch, capacity, BLOCK_N)
            # Sequences of length 0 inside the run (unchecked lengths): nothing seen, as the Triton kernel writes.
            while (seq_first == seq_end) & (seq_first < last):
                _store_transposed(OUT, LSE, seq * n_rows + rows, gl.zeros([RANK, BLOCK_H], gl.float32, layout),
                                  gl.full([BLOCK_H], float("-inf"), gl.float32, rows_layout), row_ok, RANK,
                                  BLOCK_H)  # fmt: skip
                seq, seq_first, seq_end, seqlen = _next_sequence(SEQLENS, seq, seq_end, batch, capacity, BLOCK_N)
    async_copy.wait_group(0)
    _store_lead(LEADS, program, group, lead_seq, lead_parts_end, lead_slot)
    # An empty run (more programs than tiles) leaves a part of weight zero in slot 0, as the Triton kernel does.
    nothing = gl.zeros([RANK, BLOCK_H], gl.float32, layout)
    no_weight = gl.full([BLOCK_H], float("-inf"), gl.float32, rows_layout)
    _store_transposed(PARTIAL_OUT, PARTIAL_LSE, program * 2 * n_rows + rows, nothing, no_weight,
                      row_ok & (first == last), RANK, BLOCK_H)  # fmt: skip
