"""Absorbed MLA decode for Hopper (sm_90) in Gluon with FlashMLA's seesaw schedule, for a 64-wide rope.

Same runs of the tile stream, partial results and leader records as ``triton_kernels.decode_kernel``. A program
has three partitions: two consumer warpgroups and a loader. Warpgroup ``w`` holds output columns
``[w * RANK/2, (w+1) * RANK/2)``. The tiles of a segment come in pairs ``(a, b)`` (a zero-filled phantom ``b``
after an odd count): warpgroup 0 computes all 64 scores of tile ``a``, warpgroup 1 those of tile ``b``, so neither
product is repeated. The running max passes 0 -> 1 -> 0 through shared memory once per pair; each warpgroup
multiplies its own weights from registers and the other's from shared memory, where the tile's rope rows were
(dead once its scores are done): while one warpgroup runs its softmax the other's products keep the tensor cores
busy (FlashMLA: "seesaw" scheduling).

The loader fetches the tiles into two buffers, completing on mbarriers: a whole tile (64 rows inside one page,
where the caches' blocks lie row after row: ``triton_ops.cache_rows``) by the tensor-memory accelerator, 64
columns a copy; a tile a segment ends inside, a phantom one, and every tile where the layout gives no descriptor
(pages of 16 or 32 tokens, gaps between blocks) row by row with asynchronous copies that zero-fill missing keys.
The queries are copied row by row once the segment's first tile is requested. Each buffer comes in two parts
(the latent half its own warpgroup multiplies, then the other half with the rope rows), each refilled as soon as
it is free. The copies, not the products, set the pace (without them a pair takes two thirds of the time:
benchmarks/RESULTS.md, seventh pass; TMA took a quarter of their cost: eighth pass), so the order frees buffer
``a`` within the round: warpgroup 0 hands tile ``a``'s max and weights (at that max) over as soon as its softmax
is done, and warpgroup 1 multiplies them before it even starts tile ``b``'s scores; only buffer ``b`` is refilled at
the round's end, and tile ``b``'s scores are not needed before tile ``a``'s softmax.

Launched by ``triton_ops.decode`` for ``DecodeTiles(kernel="gluon_seesaw")``, the default for groups of more than
32 query rows (benchmarks/RESULTS.md, sixth to eighth passes).
"""

from triton.experimental import gluon
from triton.experimental.gluon import language as gl
from triton.experimental.gluon.language.nvidia.hopper import (
    async_copy,
    fence_async_shared,
    mbarrier,
    tma,
    warpgroup_mma,
    warpgroup_mma_wait,
)

from .gluon_kernels import (
    LN_2,
    LOG2_E,
    _locate_run,
    _operand_layout,
    _row_offsets,
    _row_pieces,
    _segment_role,
    _store_lead,
    _tile_stream,
)

# Triton 3.6 names the tensor-memory-access load async_copy_global_to_shared; later releases call it async_load.
_tma_load = getattr(tma, "async_load", None) or tma.async_copy_global_to_shared
CONSUMER_WARPS = gl.constexpr(4)  # one warpgroup each; the kernel launches with this many (the first consumer)
LOADER_WARPS = gl.constexpr(4)
LOADER_THREADS = gl.constexpr(32 * LOADER_WARPS.value)  # the count every part barrier waits for
# Registers per thread, within the 168 x 384 the launch holds: the consumers' 64 x RANK/2 float32 accumulators take
# 128 (their loops do not spill at 232); the loader's 40 keep its whole-tile path free of spills (at 24 it reloaded
# spilled values between a buffer's wait and its tensor copies: benchmarks/RESULTS.md, twelfth pass).
CONSUMER_REGISTERS = gl.constexpr(232)
LOADER_REGISTERS = gl.constexpr(40)
# mbarriers (index): a buffer's first part landed (0 + buffer) and freed (2 + buffer), its second part landed
# (10 + buffer) and freed (12 + buffer); queries landed (4) and freed (5); a warpgroup's tile ready for the other
# (6 + warpgroup: the max after it and its weights stored); a warpgroup's row sums stored (8 + warpgroup).
FIRST_LANDED = gl.constexpr(0)
FIRST_FREED = gl.constexpr(2)
QUERIES_LANDED = gl.constexpr(4)
QUERIES_FREED = gl.constexpr(5)
TILE_READY = gl.constexpr(6)
SUMS_STORED = gl.constexpr(8)
SECOND_LANDED = gl.constexpr(10)
SECOND_FREED = gl.constexpr(12)
BARRIERS = gl.constexpr(14)


@gluon.constexpr_function
def _warpgroup_mma(columns):
    """Warpgroup MMA layout of one warpgroup's 64-row product with ``columns`` columns."""
    return gl.NVMMADistributedLayout(version=[3, 0], warps_per_cta=[4, 1], instr_shape=[16, columns, 16])


@gluon.jit
def _gather(SOURCE, stride_block, stride_row: gl.constexpr, table, num_blocks, tile_start, key_start, key_end, buffer,
            PAGE: gl.constexpr, COLUMN: gl.constexpr, WIDTH: gl.constexpr, BLOCK_N: gl.constexpr):  # fmt: skip
    """Start copying columns ``[COLUMN, COLUMN + WIDTH)`` of the cache rows of keys ``[tile_start, tile_start +
    BLOCK_N)`` into ``buffer``; keys past ``key_end`` are zero-filled (a phantom tile past the segment entirely:
    its table entries are those of the segment's first tile, never of blocks past the sequence)."""
    gather: gl.constexpr = _row_pieces(WIDTH, LOADER_WARPS)
    inside = gl.where(tile_start < key_end, tile_start, key_start)
    rows_at, _ = _row_offsets(table, num_blocks, inside, key_end, stride_block, stride_row, PAGE, BLOCK_N,
                              gl.SliceLayout(1, gather))  # fmt: skip
    key_ok = tile_start + gl.arange(0, BLOCK_N, layout=gl.SliceLayout(1, gather)) < key_end
    columns = COLUMN + gl.arange(0, WIDTH, layout=gl.SliceLayout(0, gather))
    async_copy.async_copy_global_to_shared(buffer, SOURCE + rows_at[:, None] + columns[None, :],
                                           mask=key_ok[:, None])  # fmt: skip


@gluon.jit
def _whole_tile_row(table, num_blocks, tile_start, key_end, PAGE: gl.constexpr, BLOCK_N: gl.constexpr):
    """The cache row a whole tile (``_fetch_part``'s TMA case) starts at, from the block table; 0 for any other
    tile, whose table entry is not read (a phantom tile's would lie past the sequence's blocks)."""
    whole = tile_start + BLOCK_N <= key_end
    page = gl.minimum(gl.maximum(gl.load(table + tile_start // PAGE, mask=whole, other=0), 0), num_blocks - 1)
    return page * PAGE + tile_start % PAGE


@gluon.jit
def _fetch_part(CKV, KPE, ckv_rows, kpe_rows, stride_cb, stride_cr: gl.constexpr, stride_kb, stride_kr: gl.constexpr,
                table, num_blocks, tile_start, key_start, key_end, row, latent, COLUMN: gl.constexpr, rope,
                WITH_ROPE: gl.constexpr, landed, PAGE: gl.constexpr, BLOCK_N: gl.constexpr,
                TMA: gl.constexpr):  # fmt: skip
    """Start filling one buffer part: cache columns ``[COLUMN, COLUMN + width)`` of the tile's keys into ``latent``
    and (``WITH_ROPE``) their rope rows into ``rope``, landing on ``landed``. With ``TMA`` a whole tile (inside one
    page) is fetched by the tensor-memory accelerator, 64 columns a copy, from cache row ``row``
    (``_whole_tile_row``); a tile the segment ends inside, or a phantom one, is gathered row by row with its missing
    keys zero-filled (rows past a length may hold anything, NaN included: a zero weight times NaN is NaN)."""
    WIDTH: gl.constexpr = latent.shape[1]
    if TMA:
        if tile_start + BLOCK_N <= key_end:
            CHUNK: gl.constexpr = ckv_rows.block_type.shape[1]
            ELEMENT: gl.constexpr = latent.dtype.primitive_bitwidth // 8
            if WITH_ROPE:
                mbarrier.expect(landed, BLOCK_N * (WIDTH + rope.shape[1]) * ELEMENT)
            else:
                mbarrier.expect(landed, BLOCK_N * WIDTH * ELEMENT)
            for chunk in gl.static_range(WIDTH // CHUNK):
                _tma_load(ckv_rows, [row, COLUMN + chunk * CHUNK], landed, latent.slice(chunk * CHUNK, CHUNK, dim=1))
            if WITH_ROPE:
                _tma_load(kpe_rows, [row, 0], landed, rope)
            # The part lands on every loader thread's arrival (a row copy's count): the expect was one of them.
            mbarrier.arrive(landed, count=LOADER_THREADS - 1)
        else:
            _gather_part(CKV, KPE, stride_cb, stride_cr, stride_kb, stride_kr, table, num_blocks, tile_start,
                         key_start, key_end, latent, COLUMN, rope, WITH_ROPE, landed, PAGE, BLOCK_N)  # fmt: skip
    else:
        _gather_part(CKV, KPE, stride_cb, stride_cr, stride_kb, stride_kr, table, num_blocks, tile_start, key_start,
                     key_end, latent, COLUMN, rope, WITH_ROPE, landed, PAGE, BLOCK_N)  # fmt: skip


@gluon.jit
def _gather_part(CKV, KPE, stride_cb, stride_cr: gl.constexpr, stride_kb, stride_kr: gl.constexpr, table, num_blocks,
                 tile_start, key_start, key_end, latent, COLUMN: gl.constexpr, rope, WITH_ROPE: gl.constexpr, landed,
                 PAGE: gl.constexpr, BLOCK_N: gl.constexpr):  # fmt: skip
    """``_fetch_part``'s copies row by row (asynchronous 16-byte pieces from every loader thread), each thread
    arriving on ``landed`` once its own copies are done."""
    _gather(CKV, stride_cb, stride_cr, table, num_blocks, tile_start, key_start, key_end, latent, PAGE, COLUMN,
            latent.shape[1], BLOCK_N)  # fmt: skip
    if WITH_ROPE:
        _gather(KPE, stride_kb, stride_kr, table, num_blocks, tile_start, key_start, key_end, rope, PAGE, 0,
                rope.shape[1], BLOCK_N)  # fmt: skip
    async_copy.mbarrier_arrive(landed, increment_count=False)


@gluon.jit
def _load_queries(Q_LAT, Q_PE, seq, lat_rows, lat_cols, pe_rows, pe_cols, n_rows, heads, stride_qb, stride_qs,
                  stride_qh, stride_pb, stride_ps, stride_ph, q_lat_smem, q_pe_smem, bars, segment):  # fmt: skip
    """A segment's queries (rows past the group's last are zero), once the previous segment's are free."""
    mbarrier.wait(bars.index(QUERIES_FREED), (segment & 1) ^ 1)
    q_at = Q_LAT + seq * stride_qb + (lat_rows // heads) * stride_qs + (lat_rows % heads) * stride_qh
    async_copy.async_copy_global_to_shared(q_lat_smem.index(0), q_at[:, None] + lat_cols[None, :],
                                           mask=(lat_rows < n_rows)[:, None])  # fmt: skip
    pe_at = Q_PE + seq * stride_pb + (pe_rows // heads) * stride_ps + (pe_rows % heads) * stride_ph
    async_copy.async_copy_global_to_shared(q_pe_smem.index(0), pe_at[:, None] + pe_cols[None, :],
                                           mask=(pe_rows < n_rows)[:, None])  # fmt: skip
    async_copy.mbarrier_arrive(bars.index(QUERIES_LANDED), increment_count=False)


@gluon.jit
def _load(Q_LAT, Q_PE, CKV, KPE, ckv_rows, kpe_rows, BLOCK_TABLE, SEQLENS, batch, s_q, heads, num_blocks, capacity,
          stride_qb, stride_qs, stride_qh, stride_pb, stride_ps, stride_ph, stride_table, stride_cb,
          stride_cr: gl.constexpr, stride_kb, stride_kr: gl.constexpr, q_lat_smem, q_pe_smem, ckv_smem, kpe_smem, bars,
          PAGE: gl.constexpr, BLOCK_H: gl.constexpr, BLOCK_N: gl.constexpr, BLOCK_B: gl.constexpr,
          TMA: gl.constexpr):  # fmt: skip
    """The loader partition: for each segment of the run, the tiles pair by pair, every part once the consumers
    have freed its buffer, and the group's queries once tile a of the first pair is requested (the tiles do not
    wait for the previous segment's last scores to free the query buffer)."""
    RANK: gl.constexpr = ckv_smem.shape[2]
    HALF: gl.constexpr = RANK // 2
    ROPE: gl.constexpr = kpe_smem.shape[2]
    program, group = gl.program_id(0), gl.program_id(1)
    n_rows = s_q * heads
    seqs, seq_first_tiles, seq_end_tiles, total_tiles = _tile_stream(SEQLENS, batch, capacity, BLOCK_N, BLOCK_B,
                                                                     LOADER_WARPS)  # fmt: skip
    first, last, seq, seq_first = _locate_run(seqs, seq_first_tiles, seq_end_tiles, total_tiles, program,
                                              gl.num_programs(0))  # fmt: skip
    latent_rows: gl.constexpr = _row_pieces(RANK, LOADER_WARPS)
    rope_rows: gl.constexpr = _row_pieces(ROPE, LOADER_WARPS)
    lat_rows = group * BLOCK_H + gl.arange(0, BLOCK_H, layout=gl.SliceLayout(1, latent_rows))
    pe_rows = group * BLOCK_H + gl.arange(0, BLOCK_H, layout=gl.SliceLayout(1, rope_rows))
    lat_cols = gl.arange(0, RANK, layout=gl.SliceLayout(0, latent_rows))
    pe_cols = gl.arange(0, ROPE, layout=gl.SliceLayout(0, rope_rows))
    tile = first
    segment = 0
    pair = 0
    while tile < last:
        seqlen = gl.minimum(gl.maximum(gl.load(SEQLENS + seq), 0), capacity)
        seq_end = seq_first + gl.cdiv(seqlen, BLOCK_N)
        stop = gl.minimum(seq_end, last)
        key_start = (tile - seq_first) * BLOCK_N
        key_end = gl.minimum((stop - seq_first) * BLOCK_N, seqlen)
        table = BLOCK_TABLE + seq * stride_table
        pairs = gl.cdiv(stop - tile, 2)
        if pairs == 0:  # a sequence of length 0: its queries only
            _load_queries(Q_LAT, Q_PE, seq, lat_rows, lat_cols, pe_rows, pe_cols, n_rows, heads, stride_qb, stride_qs,
                          stride_qh, stride_pb, stride_ps, stride_ph, q_lat_smem, q_pe_smem, bars, segment)  # fmt: skip
        for i in range(pairs):
            free_phase = (pair & 1) ^ 1
            # Buffer a is freed within the round, buffer b at its end: a's parts first, each buffer's first part
            # the latent half its warpgroup's scores start on.
            for half in gl.static_range(2):
                tile_start = key_start + (2 * i + half) * BLOCK_N
                buffer = ckv_smem.index(half)
                # The tile's page is read from the table before the buffer is free, once for both parts: the
                # table's round trip through L2 is then off the refill's path.
                if TMA:
                    row = _whole_tile_row(table, num_blocks, tile_start, key_end, PAGE, BLOCK_N)
                else:
                    row = 0
                mbarrier.wait(bars.index(FIRST_FREED + half), free_phase)
                _fetch_part(CKV, KPE, ckv_rows, kpe_rows, stride_cb, stride_cr, stride_kb, stride_kr, table,
                            num_blocks, tile_start, key_start, key_end, row, buffer.slice(half * HALF, HALF, dim=1),
                            half * HALF, kpe_smem.index(half), False, bars.index(FIRST_LANDED + half), PAGE, BLOCK_N,
                            TMA)  # fmt: skip
                mbarrier.wait(bars.index(SECOND_FREED + half), free_phase)
                _fetch_part(CKV, KPE, ckv_rows, kpe_rows, stride_cb, stride_cr, stride_kb, stride_kr, table,
                            num_blocks, tile_start, key_start, key_end, row,
                            buffer.slice((1 - half) * HALF, HALF, dim=1), (1 - half) * HALF, kpe_smem.index(half), True,
                            bars.index(SECOND_LANDED + half), PAGE, BLOCK_N, TMA)  # fmt: skip
                if half == 0 and i == 0:
                    _load_queries(Q_LAT, Q_PE, seq, lat_rows, lat_cols, pe_rows, pe_cols, n_rows, heads, stride_qb,
                                  stride_qs, stride_qh, stride_pb, stride_ps, stride_ph, q_lat_smem, q_pe_smem, bars,
                                  segment)  # fmt: skip
            pair += 1
        tile = stop
        seq += 1
        seq_first = seq_end
        segment += 1


@gluon.jit
def _store_half(OUT, LSE, rows, out, lse, keep, column, RANK: gl.constexpr, WITH_LSE: gl.constexpr):
    """Store one warpgroup's output columns (and the rows' log-sum-exp from warpgroup 0)."""
    columns = column + gl.arange(0, out.shape[1], layout=gl.SliceLayout(0, out.type.layout))
    gl.store(OUT + rows[:, None] * RANK + columns[None, :], out.to(OUT.dtype.element_ty), mask=keep[:, None])
    if WITH_LSE:
        gl.store(LSE + rows, lse, mask=keep)


@gluon.jit
def _scores_begin(q_lat, own, early: gl.constexpr, no_scores, landed, phase, by_rows):
    """Start a tile's score product on the latent half its buffer's first part holds, once that has landed
    (``by_rows``: copied row by row, writes the products must be fenced from; TMA's need no fence)."""
    HALF: gl.constexpr = own.shape[1] // 2
    mbarrier.wait(landed, phase)
    if by_rows:
        fence_async_shared()
    return warpgroup_mma(q_lat.slice(early, HALF, dim=1), own.slice(early, HALF, dim=1).permute((1, 0)), no_scores,
                         use_acc=False, is_async=True)  # fmt: skip


@gluon.jit
def _scores_end(q_lat, q_pe, own, rope, late: gl.constexpr, scores, landed, phase, by_rows):
    """Queue the rest of a tile's score product (the other latent half and the rope rows) once it has landed."""
    HALF: gl.constexpr = own.shape[1] // 2
    mbarrier.wait(landed, phase)
    if by_rows:
        fence_async_shared()
    scores = warpgroup_mma(q_lat.slice(late, HALF, dim=1), own.slice(late, HALF, dim=1).permute((1, 0)), scores,
                           is_async=True)  # fmt: skip
    return warpgroup_mma(q_pe, rope.permute((1, 0)), scores, is_async=True)


@gluon.jit
def _rescale_to(running_max, new_max):
    """The factor bringing sums and outputs at ``running_max`` to ``new_max`` (log2 units). A row that has seen no
    visible key yet keeps -inf; subtracting 0 instead avoids inf - inf = NaN."""
    return gl.exp2(running_max - gl.where(new_max == float("-inf"), 0.0, new_max))


@gluon.jit
def _online_softmax(scores, keys, limit, scale, running_max, running_sum):
    """A tile's weights (keys past a row's ``limit`` weigh 0) at the new running max, returned with that max, the
    factor bringing earlier outputs to it, and the running sum brought to it with the weights added."""
    scores = gl.where(keys[None, :] < limit[:, None], scores * scale, float("-inf"))
    new_max = gl.maximum(running_max, gl.max(scores, 1))
    weights = gl.exp2(scores - gl.where(new_max == float("-inf"), 0.0, new_max)[:, None])
    rescale = _rescale_to(running_max, new_max)
    return weights, new_max, rescale, running_sum * rescale + gl.sum(weights, 1)


@gluon.jit
def _hand_over(max_slot, new_max, weights_slot, weights, ready):
    """Store a tile's max and weights for the other warpgroup and tell it so."""
    max_slot.store(new_max)
    weights_slot.store(weights)
    fence_async_shared()
    mbarrier.arrive(ready)


@gluon.jit
def _consume(OUT, LSE, PARTIAL_OUT, PARTIAL_LSE, LEADS, SEQLENS, softmax_scale, batch, s_q, heads, capacity,
             q_lat_smem, q_pe_smem, ckv_smem, kpe_smem, stats, bars, ROLE: gl.constexpr, BLOCK_H: gl.constexpr,
             BLOCK_N: gl.constexpr, BLOCK_B: gl.constexpr, CAUSAL: gl.constexpr, TMA: gl.constexpr):  # fmt: skip
    """Consumer warpgroup ``ROLE`` (0: tiles a, left columns; 1: tiles b, right columns). ``stats`` holds four
    rows: the max after tile a and after tile b (log2 units), and each warpgroup's row sums at a segment's end."""
    RANK: gl.constexpr = ckv_smem.shape[2]
    HALF: gl.constexpr = RANK // 2
    scores_layout: gl.constexpr = _warpgroup_mma(BLOCK_N)
    out_layout: gl.constexpr = _warpgroup_mma(HALF)
    rows_layout: gl.constexpr = gl.SliceLayout(1, scores_layout)
    out_rows_layout: gl.constexpr = gl.SliceLayout(1, out_layout)
    weights_layout: gl.constexpr = gl.DotOperandLayout(operand_index=0, parent=out_layout, k_width=2)
    dtype: gl.constexpr = q_lat_smem.dtype
    # Scores over this warpgroup's latent half first (the part of its buffer refilled first), then the rest.
    early: gl.constexpr = ROLE * HALF
    late: gl.constexpr = (1 - ROLE) * HALF
    program, group = gl.program_id(0), gl.program_id(1)
    num_programs = gl.num_programs(0)
    n_rows = s_q * heads
    rows = group * BLOCK_H + gl.arange(0, BLOCK_H, layout=rows_layout)
    out_rows = group * BLOCK_H + gl.arange(0, BLOCK_H, layout=out_rows_layout)
    out_row_ok = out_rows < n_rows
    seqs, seq_first_tiles, seq_end_tiles, total_tiles = _tile_stream(SEQLENS, batch, capacity, BLOCK_N, BLOCK_B,
                                                                     CONSUMER_WARPS)  # fmt: skip
    first, last, seq, seq_first = _locate_run(seqs, seq_first_tiles, seq_end_tiles, total_tiles, program, num_programs)
    lead_seq, lead_parts_end, lead_slot = -1, 0, 0
    scale = softmax_scale * LOG2_E  # exp2 instead of exp: one multiply folded into the scale
    no_scores = gl.zeros([BLOCK_H, BLOCK_N], gl.float32, scores_layout)
    tile = first
    segment = 0
    pair = 0
    exchanges = 0
    while tile < last:
        seqlen = gl.minimum(gl.maximum(gl.load(SEQLENS + seq), 0), capacity)
        seq_end = seq_first + gl.cdiv(seqlen, BLOCK_N)
        stop = gl.minimum(seq_end, last)
        key_start = (tile - seq_first) * BLOCK_N
        key_end = gl.minimum((stop - seq_first) * BLOCK_N, seqlen)
        if CAUSAL:
            limit = gl.minimum(seqlen - s_q + 1 + rows // heads, key_end)
        else:
            limit = gl.full([BLOCK_H], 0, gl.int32, rows_layout) + key_end
        running_max = gl.full([BLOCK_H], float("-inf"), gl.float32, rows_layout)
        running_sum = gl.zeros([BLOCK_H], gl.float32, rows_layout)
        acc = gl.zeros([BLOCK_H, HALF], gl.float32, out_layout)
        mbarrier.wait(bars.index(QUERIES_LANDED), segment & 1)
        fence_async_shared()  # the queries are copied row by row
        pairs = gl.cdiv(stop - tile, 2)
        if pairs == 0:  # a sequence of length 0 (unchecked lengths): its queries are free at once
            mbarrier.arrive(bars.index(QUERIES_FREED))
        for i in range(pairs):
            phase = pair & 1
            # Buffer indices computed each round (always ROLE and 1 - ROLE): constant ones let the compiler hoist
            # every product's 64-bit shared-memory descriptors out of the loop, more than the registers hold.
            opaque_zero = pair // (pair + 1)
            mine = ROLE + opaque_zero
            theirs = 1 - mine
            q_lat = q_lat_smem.index(opaque_zero)
            q_pe = q_pe_smem.index(opaque_zero)
            own = ckv_smem.index(mine)
            keys = key_start + (2 * i + ROLE) * BLOCK_N + gl.arange(0, BLOCK_N, layout=gl.SliceLayout(0, scores_layout))
            if TMA:  # the loader's choice for this warpgroup's tile (_fetch_part)
                by_rows = key_start + (2 * i + ROLE + 1) * BLOCK_N > key_end
            else:
                by_rows = True
            if ROLE == 0:
                scores = _scores_begin(q_lat, own, early, no_scores, bars.index(FIRST_LANDED), phase, by_rows)
                scores = _scores_end(q_lat, q_pe, own, kpe_smem.index(mine), late, scores, bars.index(SECOND_LANDED),
                                     phase, by_rows)  # fmt: skip
                scores = warpgroup_mma_wait(0, deps=(scores,))
                if i == pairs - 1:
                    mbarrier.arrive(bars.index(QUERIES_FREED))
                weights, running_max, rescale, running_sum = _online_softmax(scores, keys, limit, scale, running_max,
                                                                             running_sum)  # fmt: skip
                acc = acc * gl.convert_layout(rescale, out_rows_layout)[:, None]
                own_weights = gl.convert_layout(weights.to(dtype), weights_layout)
                acc = warpgroup_mma(own_weights, own.slice(0, HALF, dim=1), acc, is_async=True)
                # Tile a's max and weights (at that max) for warpgroup 1, which multiplies them before its own
                # scores; the weights go where the tile's rope rows were (dead: its scores are done).
                _hand_over(stats.slice(0, BLOCK_H), running_max, kpe_smem.index(mine), own_weights,
                           bars.index(TILE_READY))  # fmt: skip
                acc = warpgroup_mma_wait(0, deps=(acc,))
                mbarrier.arrive(bars.index(FIRST_FREED))  # buffer a's left half, refilled while tile b is worked on
                mbarrier.wait(bars.index(TILE_READY + 1), phase)
                after_b = stats.slice(BLOCK_H, BLOCK_H).load(rows_layout)
                rescale = _rescale_to(running_max, after_b)
                acc = acc * gl.convert_layout(rescale, out_rows_layout)[:, None]
                running_sum = running_sum * rescale
                running_max = after_b
                acc = warpgroup_mma(kpe_smem.index(theirs), ckv_smem.index(theirs).slice(0, HALF, dim=1), acc,
                                    is_async=True)  # fmt: skip
                acc = warpgroup_mma_wait(0, deps=(acc,))
                mbarrier.arrive(bars.index(SECOND_FREED + 1))  # buffer b's left half and rope rows
            else:
                # Tile a's weights first, brought to the max after tile a, so that buffer a is free (and refilled)
                # while tile b is worked on; then tile b's scores as its parts land.
                mbarrier.wait(bars.index(TILE_READY), phase)
                after_a = stats.slice(0, BLOCK_H).load(rows_layout)
                rescale = _rescale_to(running_max, after_a)
                acc = acc * gl.convert_layout(rescale, out_rows_layout)[:, None]
                running_sum = running_sum * rescale
                running_max = after_a
                acc = warpgroup_mma(kpe_smem.index(theirs), ckv_smem.index(theirs).slice(HALF, HALF, dim=1), acc,
                                    is_async=True)  # fmt: skip
                scores = _scores_begin(q_lat, own, early, no_scores, bars.index(FIRST_LANDED + 1), phase, by_rows)
                acc = warpgroup_mma_wait(1, deps=(acc,))  # committed before the scores
                mbarrier.arrive(bars.index(SECOND_FREED))  # buffer a's right half and rope rows
                scores = _scores_end(q_lat, q_pe, own, kpe_smem.index(mine), late, scores,
                                     bars.index(SECOND_LANDED + 1), phase, by_rows)  # fmt: skip
                scores = warpgroup_mma_wait(0, deps=(scores,))
                if i == pairs - 1:
                    mbarrier.arrive(bars.index(QUERIES_FREED))
                weights, running_max, rescale, running_sum = _online_softmax(scores, keys, limit, scale, running_max,
                                                                             running_sum)  # fmt: skip
                own_weights = gl.convert_layout(weights.to(dtype), weights_layout)
                _hand_over(stats.slice(BLOCK_H, BLOCK_H), running_max, kpe_smem.index(mine), own_weights,
                           bars.index(TILE_READY + 1))  # fmt: skip
                acc = acc * gl.convert_layout(rescale, out_rows_layout)[:, None]
                acc = warpgroup_mma(own_weights, own.slice(HALF, HALF, dim=1), acc, is_async=True)
                acc = warpgroup_mma_wait(0, deps=(acc,))
                mbarrier.arrive(bars.index(FIRST_FREED + 1))  # buffer b's right half
            pair += 1
        # Each warpgroup summed its own tiles' weights, both at the final max (none for a segment without tiles:
        # exchanging there could let one warpgroup run two phases ahead of the other's wait).
        if pairs > 0:
            stats.slice((2 + ROLE) * BLOCK_H, BLOCK_H).store(running_sum)
            mbarrier.arrive(bars.index(SUMS_STORED + ROLE))
            mbarrier.wait(bars.index(SUMS_STORED + 1 - ROLE), exchanges & 1)
            running_sum += stats.slice((3 - ROLE) * BLOCK_H, BLOCK_H).load(rows_layout)
            exchanges += 1
        empty = running_sum == 0.0  # no key of this segment visible to the row: zero weight in the merge
        lse = gl.where(empty, float("-inf"), (running_max + gl.log2(running_sum)) * LN_2)
        lse = gl.convert_layout(lse, out_rows_layout)
        out = acc * gl.convert_layout(1.0 / gl.where(empty, 1.0, running_sum), out_rows_layout)[:, None]
        whole, slot, lead_seq, lead_parts_end, lead_slot = _segment_role(
            seq, seq_first, seq_end, first, last, num_programs, total_tiles, lead_seq, lead_parts_end, lead_slot
        )
        _store_half(OUT, LSE, seq * n_rows + out_rows, out, lse, out_row_ok & whole, ROLE * HALF, RANK, ROLE == 0)
        _store_half(PARTIAL_OUT, PARTIAL_LSE, (program * 2 + slot) * n_rows + out_rows, out, lse,
                    out_row_ok & (whole == 0), ROLE * HALF, RANK, ROLE == 0)  # fmt: skip
        tile = stop
        seq += 1
        seq_first = seq_end
        segment += 1
    if ROLE == 0:
        _store_lead(LEADS, program, group, lead_seq, lead_parts_end, lead_slot)
    # An empty run (more programs than tiles) leaves a part of weight zero in slot 0, as the Triton kernel does.
    nothing = gl.zeros([BLOCK_H, HALF], gl.float32, out_layout)
    no_weight = gl.full([BLOCK_H], float("-inf"), gl.float32, out_rows_layout)
    _store_half(PARTIAL_OUT, PARTIAL_LSE, program * 2 * n_rows + out_rows, nothing, no_weight,
                out_row_ok & (first == last), ROLE * HALF, RANK, ROLE == 0)  # fmt: skip


@gluon.jit
def _consume_right(OUT, LSE, PARTIAL_OUT, PARTIAL_LSE, LEADS, SEQLENS, softmax_scale, batch, s_q, heads, capacity,
                   q_lat_smem, q_pe_smem, ckv_smem, kpe_smem, stats, bars, BLOCK_H: gl.constexpr,
                   BLOCK_N: gl.constexpr, BLOCK_B: gl.constexpr, CAUSAL: gl.constexpr, TMA: gl.constexpr):  # fmt: skip
    """Consumer warpgroup 1 (a worker partition)."""
    _consume(OUT, LSE, PARTIAL_OUT, PARTIAL_LSE, LEADS, SEQLENS, softmax_scale, batch, s_q, heads, capacity,
             q_lat_smem, q_pe_smem, ckv_smem, kpe_smem, stats, bars, 1, BLOCK_H, BLOCK_N, BLOCK_B, CAUSAL,
             TMA)  # fmt: skip


@gluon.jit
def decode_kernel(
    Q_LAT, Q_PE, CKV, KPE, BLOCK_TABLE, SEQLENS, OUT, LSE, PARTIAL_OUT, PARTIAL_LSE, LEADS, softmax_scale, batch,
    s_q, heads, num_blocks, capacity, stride_qb, stride_qs, stride_qh, stride_pb, stride_ps, stride_ph, stride_table,
    stride_cb, stride_cr: gl.constexpr, stride_kb, stride_kr: gl.constexpr, CKV_ROWS, KPE_ROWS, PAGE: gl.constexpr,
    RANK: gl.constexpr, ROPE: gl.constexpr, BLOCK_H: gl.constexpr, BLOCK_N: gl.constexpr, BLOCK_B: gl.constexpr,
    CAUSAL: gl.constexpr, TMA: gl.constexpr,
):  # fmt: skip
    """``triton_kernels.decode_kernel``'s contract (same arguments and outputs, 16-bit products only) for 64-row
    groups and 64-token tiles; launched with ``CONSUMER_WARPS`` warps (the loader and the second consumer are
    worker partitions). With ``TMA``, ``CKV_ROWS`` and ``KPE_ROWS`` are tensor descriptors of the caches seen as
    ``[num_blocks * PAGE, width]`` rows (``triton_ops.cache_rows``: pages of whole tiles, blocks of consecutive
    rows) in ``[64, 64]`` boxes, and whole tiles are fetched through them; otherwise they are unused (None)."""
    gl.static_assert(BLOCK_H == 64 and BLOCK_N == 64, "64-row groups, 64-token tiles")
    gl.static_assert(ROPE == BLOCK_N, "a tile's weights take the place of its rope rows")
    gl.static_assert(RANK >= 128, "each warpgroup's latent half spans whole 128-byte swizzle rows")
    gl.static_assert(gl.num_warps() == CONSUMER_WARPS)
    gl.static_assert(not TMA or PAGE % BLOCK_N == 0, "TMA fetches whole tiles inside one page")
    dtype: gl.constexpr = Q_LAT.dtype.element_ty
    # Queries allocated as one of a kind: indexing them each round keeps their descriptors in the loop.
    q_lat_smem = gl.allocate_shared_memory(dtype, [1, BLOCK_H, RANK], _operand_layout(RANK))
    q_pe_smem = gl.allocate_shared_memory(dtype, [1, BLOCK_H, ROPE], _operand_layout(ROPE))
    ckv_smem = gl.allocate_shared_memory(dtype, [2, BLOCK_N, RANK], _operand_layout(RANK))
    kpe_smem = gl.allocate_shared_memory(dtype, [2, BLOCK_N, ROPE], _operand_layout(ROPE))
    stats = gl.allocate_shared_memory(gl.float32, [4 * BLOCK_H], gl.SwizzledSharedLayout(1, 1, 1, [0]))
    bars = gl.allocate_shared_memory(gl.int64, [BARRIERS, 1], mbarrier.MBarrierLayout())
    # A part lands once every loader thread has arrived: each after its own row copies (cp.async's arrival, which
    # leaves the count as it is), or all at once by one thread after the tensor copies' expect (their bytes).
    # Never an arrival that raises the count (cp.async's default): compute-sanitizer's synccheck stops the
    # kernel at such a barrier overflow.
    for buffer in gl.static_range(2):
        mbarrier.init(bars.index(FIRST_LANDED + buffer), count=LOADER_THREADS)
        mbarrier.init(bars.index(SECOND_LANDED + buffer), count=LOADER_THREADS)
        mbarrier.init(bars.index(FIRST_FREED + buffer), count=1)
        mbarrier.init(bars.index(SECOND_FREED + buffer), count=1)
        mbarrier.init(bars.index(TILE_READY + buffer), count=1)
        mbarrier.init(bars.index(SUMS_STORED + buffer), count=1)
    mbarrier.init(bars.index(QUERIES_LANDED), count=LOADER_THREADS)
    mbarrier.init(bars.index(QUERIES_FREED), count=2)
    fence_async_shared()
    gl.warp_specialize(
        [
            (_consume, (OUT, LSE, PARTIAL_OUT, PARTIAL_LSE, LEADS, SEQLENS, softmax_scale, batch, s_q, heads, capacity,
                        q_lat_smem, q_pe_smem, ckv_smem, kpe_smem, stats, bars, 0, BLOCK_H, BLOCK_N, BLOCK_B, CAUSAL,
                        TMA)),
            (_consume_right, (OUT, LSE, PARTIAL_OUT, PARTIAL_LSE, LEADS, SEQLENS, softmax_scale, batch, s_q, heads,
                              capacity, q_lat_smem, q_pe_smem, ckv_smem, kpe_smem, stats, bars, BLOCK_H, BLOCK_N,
                              BLOCK_B, CAUSAL, TMA)),
            (_load, (Q_LAT, Q_PE, CKV, KPE, CKV_ROWS, KPE_ROWS, BLOCK_TABLE, SEQLENS, batch, s_q, heads, num_blocks,
                     capacity, stride_qb, stride_qs, stride_qh, stride_pb, stride_ps, stride_ph, stride_table,
                     stride_cb, stride_cr, stride_kb, stride_kr, q_lat_smem, q_pe_smem, ckv_smem, kpe_smem, bars,
                     PAGE, BLOCK_H, BLOCK_N, BLOCK_B, TMA)),
        ],
        [CONSUMER_WARPS, LOADER_WARPS],
        [CONSUMER_REGISTERS, LOADER_REGISTERS],
    )  # fmt: skip
