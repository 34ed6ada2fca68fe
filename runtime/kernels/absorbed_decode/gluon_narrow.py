"""Absorbed MLA decode for Hopper (sm_90) in Gluon for narrow groups (16 or 32 query rows): products transposed.

Same runs of the tile stream, partial results and leader records as ``triton_kernels.decode_kernel``. With 16
query rows a warpgroup MMA over the rows (64 at least) would leave three quarters of it idle, so both products run
transposed: the scores as ``keys [BLOCK_N, RANK] @ queries^T`` (64 tokens fill the MMA's rows, the 16 query rows are
its columns) and the output as ``latent^T [RANK, BLOCK_N] @ weights^T`` (the tile read in place, transposed by the
MMA's shared-memory descriptor). 32 rows take two warpgroups, each its own 16 (one warpgroup would hold a
``[RANK, 32]`` float32 accumulator and spill). One program per multiprocessor; the tiles stream through a ring of
``STAGES`` buffers filled by asynchronous copies. A buffer is refilled as soon as the products reading it are done,
so while a program waits for one tile the next ones are already on their way (the Triton kernel's pipeliner issues
each tile's copies and waits for them in the same iteration), and a segment's first tiles are requested before its
queries. What stands between a buffer freed and its refill going out is kept short: the tile's page is read from
the block table an iteration ahead, the rope rows are refilled while the output product still reads the latent
rows, and each thread copies 128 bytes of 4 rows (not 1 KB of 16), so that the rows' addresses are a base and
constants. In one warpgroup (16 rows) it launches as a programmatic dependent of the kernel before it (only its
launch and shared-memory setup overlap that kernel; it waits for its completion before reading any input), and
the merge of split sequences may launch as soon as every program is past that wait: its programs wait beside this
kernel's one per multiprocessor; the partial results it reads are stored with an L2 evict_last policy, so that the
cache rows streamed since do not push them out to memory. Measured on an H200 against alternatives (a ring across a
run's segments, stores through a layout change, 16 rows in two warpgroups, runs in 16-token units or cut at any
token, the next segment's first tile or tiles beyond the ring asked of L2 ahead of time, 64-byte copy pieces, whole
tiles by TMA on mbarriers, a segment's length taken from the lengths already loaded): benchmarks/RESULTS.md,
seventh to eleventh passes.
"""

from triton.experimental import gluon
from triton.experimental.gluon import language as gl
from triton.experimental.gluon.language.nvidia.hopper import (
    async_copy,
    fence_async_shared,
    warpgroup_mma,
    warpgroup_mma_wait,
)
from triton.language.extra.cuda import gdc_launch_dependents, gdc_wait

from .gluon_kernels import (
    LN_2,
    LOG2_E,
    _copy_queries,
    _cta_barrier,
    _locate_run,
    _operand_layout,
    _row_offsets,
    _row_pieces,
    _segment_role,
    _store_lead,
    _tile_stream,
)


@gluon.constexpr_function
def _transposed(rows, warps):
    """Warpgroup MMA layout of a transposed product: tokens or latent columns down, the group's ``rows`` across,
    shared out between the ``warps // 4`` warpgroups (a row's softmax then stays inside one warpgroup)."""
    warpgroups = warps // 4
    return gl.NVMMADistributedLayout(version=[3, 0], warps_per_cta=[4, warpgroups],
                                     instr_shape=[16, rows // warpgroups, 16])  # fmt: skip


@gluon.constexpr_function
def _tile_pieces(width, warps):
    """Layout of a tile's copy in 16-byte pieces, a warp covering 128 bytes of each of ``32 // pieces`` rows:
    a thread then addresses few rows (4 of a 64-token tile in 4 warps, where whole 1 KB rows a warp give it 16),
    so that the rows' addresses stay in registers (the 16-row kernel holds 255)."""
    pieces = min(width // 8, 8)  # 128 bytes of a row
    return gl.BlockedLayout([1, 8], [32 // pieces, pieces], [warps, 1], [1, 0])


@gluon.jit
def _store_transposed(OUT, LSE, rows, out_t, lse, keep, RANK: gl.constexpr, EVICTION: gl.constexpr):
    """Store ``out_t [RANK, rows]`` as rows of ``OUT`` (and their log-sum-exp) where ``keep``, with L2 eviction
    policy ``EVICTION`` (``"evict_last"`` for partial results: the merge reads them back)."""
    columns = gl.arange(0, RANK, layout=gl.SliceLayout(1, out_t.type.layout))
    gl.store(OUT + rows[None, :] * RANK + columns[:, None], out_t.to(OUT.dtype.element_ty), mask=keep[None, :],
             eviction_policy=EVICTION)  # fmt: skip
    gl.store(LSE + rows, lse, mask=keep, eviction_policy=EVICTION)


@gluon.jit
def _tile_page(table, num_blocks, tile_start, key_end, PAGE: gl.constexpr, BLOCK_N: gl.constexpr):
    """Block id of the page holding keys ``[tile_start, tile_start + BLOCK_N)`` where a tile lies inside one page
    (pages are powers of two, tiles start at multiples of ``BLOCK_N``), clamped into the cache: loaded once for both
    caches' copies, and early. The key is clamped into ``[0, key_end)`` first, so that a tile past the segment's
    end (the ring asks for the page of the tile it would refill next) or an empty segment reads an entry of the
    sequence's own row. Tiles longer than a page: 0 (their copies load a table entry per row)."""
    if BLOCK_N <= PAGE:
        key = gl.maximum(gl.minimum(tile_start, key_end - 1), 0)
        page = gl.minimum(gl.maximum(gl.load(table + key // PAGE), 0), num_blocks - 1)
    else:
        page = 0
    return page


@gluon.jit
def _gather_rows(SOURCE, stride_block, stride_row: gl.constexpr, table, num_blocks, page, tile_start, key_end, buffer,
                 PAGE: gl.constexpr, WIDTH: gl.constexpr, BLOCK_N: gl.constexpr):  # fmt: skip
    """Start copying the ``WIDTH``-wide cache rows of keys ``[tile_start, tile_start + BLOCK_N)`` (those before
    ``key_end``) into ``buffer``: from ``page`` (``_tile_page``) where a tile lies inside one, each row's address the
    tile's first row plus a constant the copy instruction takes as its immediate (a row's page and place computed
    per row cost a dozen instructions a row while the ring waits for the refill); else through a table entry per
    row."""
    gather: gl.constexpr = _tile_pieces(WIDTH, gl.num_warps())
    if BLOCK_N <= PAGE:
        tile_rows = gl.arange(0, BLOCK_N, layout=gl.SliceLayout(1, gather))
        first_at = page.to(gl.int64) * stride_block + (tile_start % PAGE) * stride_row
        rows_at, key_ok = first_at + tile_rows * stride_row, tile_rows < key_end - tile_start
    else:
        rows_at, key_ok = _row_offsets(table, num_blocks, tile_start, key_end, stride_block, stride_row, PAGE,
                                       BLOCK_N, gl.SliceLayout(1, gather))  # fmt: skip
    columns = gl.arange(0, WIDTH, layout=gl.SliceLayout(0, gather))
    async_copy.async_copy_global_to_shared(buffer, SOURCE + rows_at[:, None] + columns[None, :],
                                           mask=key_ok[:, None])  # fmt: skip


@gluon.jit
def _attend(Q_LAT, Q_PE, CKV, KPE, seq, gather_query, gather_head, gather_row_ok, stride_qb, stride_qs, stride_qh,
            stride_pb, stride_ps, stride_ph, stride_cb, stride_cr: gl.constexpr, stride_kb, stride_kr: gl.constexpr,
            table, num_blocks, seqlen, key_start, key_end, scale, s_q, query, q_lat_smem, q_pe_smem, ckv_smem,
            kpe_smem, weights_smem, PAGE: gl.constexpr, RANK: gl.constexpr, ROPE: gl.constexpr,
            BLOCK_H: gl.constexpr, BLOCK_N: gl.constexpr, STAGES: gl.constexpr, CAUSAL: gl.constexpr):  # fmt: skip
    """Online softmax of the group's rows over keys ``[key_start, key_end)`` of sequence ``seq``; returns the
    unnormalized transposed output ``acc [RANK, BLOCK_H]``, the running max (log2 units) and the running sum."""
    layout: gl.constexpr = _transposed(BLOCK_H, gl.num_warps())
    rows_layout: gl.constexpr = gl.SliceLayout(0, layout)
    if CAUSAL:
        limit = seqlen - s_q + 1 + query
    else:
        limit = gl.full([BLOCK_H], 0, gl.int32, rows_layout) + seqlen
    running_max = gl.full([BLOCK_H], float("-inf"), gl.float32, rows_layout)
    # Per key, summed once at the end: summing over the tile's keys each time is a reduction across the warps.
    column_sums = gl.zeros([BLOCK_N, BLOCK_H], gl.float32, layout)
    acc = gl.zeros([RANK, BLOCK_H], gl.float32, layout)
    no_scores = gl.zeros([BLOCK_N, BLOCK_H], gl.float32, layout)
    num_tiles = gl.cdiv(key_end - key_start, BLOCK_N)
    # The ring filled: one commit group per tile (empty past the end); the queries join the first tile's group,
    # requested after it so that the cache rows, the long pole, go out first. The second tile's page is asked for
    # before the first tile's copies wait on theirs: one table round trip for both.
    second_page = _tile_page(table, num_blocks, key_start + BLOCK_N, key_end, PAGE, BLOCK_N)
    for ahead in gl.static_range(STAGES):
        if ahead < num_tiles:
            if ahead == 1:
                page = second_page
            else:
                page = _tile_page(table, num_blocks, key_start + ahead * BLOCK_N, key_end, PAGE, BLOCK_N)
            ahead_start = key_start + ahead * BLOCK_N
            _gather_rows(CKV, stride_cb, stride_cr, table, num_blocks, page, ahead_start, key_end,
                         ckv_smem.index(ahead), PAGE, RANK, BLOCK_N)  # fmt: skip
            _gather_rows(KPE, stride_kb, stride_kr, table, num_blocks, page, ahead_start, key_end,
                         kpe_smem.index(ahead), PAGE, ROPE, BLOCK_N)  # fmt: skip
            if ahead == 0:
                _copy_queries(Q_LAT, Q_PE, seq, gather_query, gather_head, gather_row_ok, stride_qb, stride_qs,
                              stride_qh, stride_pb, stride_ps, stride_ph, q_lat_smem, q_pe_smem, RANK,
                              ROPE)  # fmt: skip
        async_copy.commit_group()
    for tile in range(num_tiles):
        tile_start = key_start + tile * BLOCK_N
        stage = tile % STAGES
        # The refill's page, asked for now: its round trip overlaps this tile's wait and products.
        refill = tile + STAGES
        refill_start = key_start + refill * BLOCK_N
        refill_page = _tile_page(table, num_blocks, refill_start, key_end, PAGE, BLOCK_N)
        async_copy.wait_group(STAGES - 1)
        fence_async_shared()
        _cta_barrier()  # every thread's copies of this tile (and of the queries) have landed
        ckv = ckv_smem.index(stage)
        scores = warpgroup_mma(ckv, q_lat_smem.permute((1, 0)), no_scores, use_acc=False, is_async=True)
        scores = warpgroup_mma(kpe_smem.index(stage), q_pe_smem.permute((1, 0)), scores, is_async=True)
        scores = warpgroup_mma_wait(0, deps=(scores,))

        keys = tile_start + gl.arange(0, BLOCK_N, layout=gl.SliceLayout(1, layout))
        visible = (keys[:, None] < key_end) & (keys[:, None] < limit[None, :])
        scores = gl.where(visible, scores * scale, float("-inf"))
        new_max = gl.maximum(running_max, gl.max(scores, 0))
        # A row that has seen no visible key yet keeps -inf; subtracting 0 instead avoids inf - inf = NaN.
        shift = gl.where(new_max == float("-inf"), 0.0, new_max)
        weights = gl.exp2(scores - shift[None, :])
        rescale = gl.exp2(running_max - shift)
        column_sums = column_sums * rescale[None, :] + weights
        running_max = new_max
        weights_smem.store(weights.to(weights_smem.dtype))  # the previous tile's output product is done
        fence_async_shared()
        _cta_barrier()  # all weights written
        acc = warpgroup_mma(ckv.permute((1, 0)), weights_smem, acc * rescale[None, :], is_async=True)
        # While the output product runs: the refill's rope rows (only the scores read them, and every warp is past
        # its scores above).
        if refill < num_tiles:
            _gather_rows(KPE, stride_kb, stride_kr, table, num_blocks, refill_page, refill_start, key_end,
                         kpe_smem.index(stage), PAGE, ROPE, BLOCK_N)  # fmt: skip
        acc = warpgroup_mma_wait(0, deps=(acc,))
        _cta_barrier()  # every warp's products are done with this buffer: refill its latent rows
        if refill < num_tiles:
            _gather_rows(CKV, stride_cb, stride_cr, table, num_blocks, refill_page, refill_start, key_end,
                         ckv_smem.index(stage), PAGE, RANK, BLOCK_N)  # fmt: skip
        async_copy.commit_group()
    async_copy.wait_group(0)
    _cta_barrier()  # the buffers and the queries are free for the next segment
    return acc, running_max, gl.sum(column_sums, 0)


@gluon.jit
def decode_kernel(
    Q_LAT, Q_PE, CKV, KPE, BLOCK_TABLE, SEQLENS, OUT, LSE, PARTIAL_OUT, PARTIAL_LSE, LEADS, softmax_scale, batch,
    s_q, heads, num_blocks, capacity, stride_qb, stride_qs, stride_qh, stride_pb, stride_ps, stride_ph, stride_table,
    stride_cb, stride_cr: gl.constexpr, stride_kb, stride_kr: gl.constexpr, PAGE: gl.constexpr, RANK: gl.constexpr,
    ROPE: gl.constexpr,
    BLOCK_H: gl.constexpr, BLOCK_N: gl.constexpr, BLOCK_B: gl.constexpr, CAUSAL: gl.constexpr, STAGES: gl.constexpr,
):  # fmt: skip
    """``triton_kernels.decode_kernel``'s contract (same arguments and outputs, 16-bit products only) for groups of
    16 or 32 query rows and 64-token tiles, one or two warpgroups (4 or 8 warps) sharing the rows out."""
    gl.static_assert((BLOCK_H == 16) | (BLOCK_H == 32), "16- or 32-row groups: the transposed products' columns")
    gl.static_assert((gl.num_warps() == 4) | (gl.num_warps() == 8), "one or two warpgroups")
    gl.static_assert(BLOCK_N == 64, "64-token tiles: the rows of one warpgroup MMA")
    gl.static_assert(RANK % 64 == 0, "the output product's rows: whole warpgroup MMAs")
    program, group = gl.program_id(0), gl.program_id(1)
    num_programs = gl.num_programs(0)
    n_rows = s_q * heads

    layout: gl.constexpr = _transposed(BLOCK_H, gl.num_warps())
    rows = group * BLOCK_H + gl.arange(0, BLOCK_H, layout=gl.SliceLayout(0, layout))
    row_ok = rows < n_rows
    gather: gl.constexpr = _row_pieces(RANK, gl.num_warps())
    gather_rows = group * BLOCK_H + gl.arange(0, BLOCK_H, layout=gl.SliceLayout(1, gather))
    gather_row_ok = gather_rows < n_rows
    gather_query, gather_head = gather_rows // heads, gather_rows % heads

    dtype: gl.constexpr = Q_LAT.dtype.element_ty
    q_lat_smem = gl.allocate_shared_memory(dtype, [BLOCK_H, RANK], _operand_layout(RANK))
    q_pe_smem = gl.allocate_shared_memory(dtype, [BLOCK_H, ROPE], _operand_layout(ROPE))
    ckv_smem = gl.allocate_shared_memory(dtype, [STAGES, BLOCK_N, RANK], _operand_layout(RANK))
    kpe_smem = gl.allocate_shared_memory(dtype, [STAGES, BLOCK_N, ROPE], _operand_layout(ROPE))
    weights_smem = gl.allocate_shared_memory(dtype, [BLOCK_N, BLOCK_H], _operand_layout(BLOCK_H))
    # Launched as a programmatic dependent of whatever kernel precedes it in the stream (triton_ops.decode, 16
    # rows): up to here only the launch, index math and shared-memory allocation, which read nothing, overlap that
    # kernel's tail. Every input (queries, caches, table, lengths) may be that kernel's output, so every read comes
    # after this wait, which returns once the preceding grid has completed and its writes are visible, where an
    # ordinary stream-ordered launch would start (32 rows launch in order: the wait then returns at once).
    gdc_wait()
    # The merge may launch now (triton_ops.decode launches it as this grid's programmatic dependent); it waits for
    # this grid's completion before reading what is written here. Only after the wait above: the merge reads the
    # lengths before its own wait, and every program of this grid past its wait means the kernel before has
    # completed.
    gdc_launch_dependents()

    seqs, seq_first_tiles, seq_end_tiles, total_tiles = _tile_stream(SEQLENS, batch, capacity, BLOCK_N, BLOCK_B,
                                                                     gl.num_warps())  # fmt: skip
    first, last, seq, seq_first = _locate_run(seqs, seq_first_tiles, seq_end_tiles, total_tiles, program, num_programs)
    lead_seq, lead_parts_end, lead_slot = -1, 0, 0
    scale = softmax_scale * LOG2_E  # exp2 instead of exp: one multiply folded into the scale
    tile = first
    while tile < last:
        seqlen = gl.minimum(gl.maximum(gl.load(SEQLENS + seq), 0), capacity)
        seq_end = seq_first + gl.cdiv(seqlen, BLOCK_N)
        stop = gl.minimum(seq_end, last)
        acc, running_max, running_sum = _attend(
            Q_LAT, Q_PE, CKV, KPE, seq, gather_query, gather_head, gather_row_ok, stride_qb, stride_qs, stride_qh,
            stride_pb, stride_ps, stride_ph, stride_cb, stride_cr, stride_kb, stride_kr,
            BLOCK_TABLE + seq * stride_table, num_blocks, seqlen, (tile - seq_first) * BLOCK_N,
            gl.minimum((stop - seq_first) * BLOCK_N, seqlen), scale, s_q, rows // heads, q_lat_smem, q_pe_smem,
            ckv_smem, kpe_smem, weights_smem, PAGE, RANK, ROPE, BLOCK_H, BLOCK_N, STAGES, CAUSAL,
        )  # fmt: skip
        empty = running_sum == 0.0  # no key of this segment visible to the row: zero weight in the merge
        lse = gl.where(empty, float("-inf"), (running_max + gl.log2(running_sum)) * LN_2)
        out_t = acc * (1.0 / gl.where(empty, 1.0, running_sum))[None, :]

        whole, slot, lead_seq, lead_parts_end, lead_slot = _segment_role(
            seq, seq_first, seq_end, first, last, num_programs, total_tiles, lead_seq, lead_parts_end, lead_slot
        )
        _store_transposed(OUT, LSE, seq * n_rows + rows, out_t, lse, row_ok & whole, RANK, "")
        _store_transposed(PARTIAL_OUT, PARTIAL_LSE, (program * 2 + slot) * n_rows + rows, out_t, lse,
                          row_ok & (whole == 0), RANK, "evict_last")  # fmt: skip
        tile = stop
        seq += 1
        seq_first = seq_end
    _store_lead(LEADS, program, group, lead_seq, lead_parts_end, lead_slot)
    # An empty run (more programs than tiles) leaves a part of weight zero in slot 0, as the Triton kernel does.
    nothing = gl.zeros([RANK, BLOCK_H], gl.float32, layout)
    no_weight = gl.full([BLOCK_H], float("-inf"), gl.float32, gl.SliceLayout(0, layout))
    _store_transposed(PARTIAL_OUT, PARTIAL_LSE, program * 2 * n_rows + rows, nothing, no_weight,
                      row_ok & (first == last), RANK, "evict_last")  # fmt: skip
