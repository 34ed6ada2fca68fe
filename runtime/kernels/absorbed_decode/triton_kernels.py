"""Triton kernels of absorbed MLA decode (imported only when the Triton backend runs).

Work is balanced by tokens, not by sequences: the batch's contexts, cut into tiles of ``BLOCK_N`` tokens and
laid end to end (the *tile stream*), are shared out in equal runs of tiles, one run per program. A program walks
its run sequence by sequence (a *segment* per sequence), gathering the latent rows through the block table and
keeping an online softmax over ``scores = (q_lat · c_kv + q_pe · k_pe) * scale`` for a group of query rows
(row = ``(i, h)`` for query ``i`` of the ``s_q`` new tokens and head ``h``). Each cached tile feeds all the
group's heads and serves as both key (with ``k_pe``) and value. A segment that covers its whole sequence writes
the final output; only a program's first and last segment can share a sequence with another program, so those
write partial results (output and log-sum-exp) into the program's two slots. Each run records the split sequence
it leads (begins there and goes on past it), so the merge over runs combines parts without searching the stream
(the merge over sequences, which has the stream at hand anyway, and the merge over runs launched early after the
narrow kernel, which has the time to spare before its wait, work the same out from the lengths).
Everything is computed from the lengths on the device: no host synchronization, CUDA-graph capturable.
"""

import triton
import triton.language as tl
from triton.language.extra.cuda import gdc_launch_dependents, gdc_wait

LOG2_E = tl.constexpr(1.4426950408889634)
LN_2 = tl.constexpr(0.6931471805599453)


@triton.jit
def _length(SEQLENS, seqs, ok, capacity):
    """Sequence lengths clamped to ``[0, capacity]`` (the block table's tokens): unchecked lengths (see
    ``mla_decode``'s ``validate``) then never lead a read past a table row. A compare, free next to the loads."""
    return tl.minimum(tl.maximum(tl.load(SEQLENS + seqs, mask=ok, other=0), 0), capacity)


@triton.jit
def _page(table, index, ok, num_blocks):
    """Block ids read from the table, clamped into the cache (unchecked ids stay in bounds)."""
    return tl.minimum(tl.maximum(tl.load(table + index, mask=ok, other=0), 0), num_blocks - 1).to(tl.int64)


@triton.jit
def _tile_stream(SEQLENS, batch, capacity, BLOCK_N: tl.constexpr, BLOCK_B: tl.constexpr):
    """Each sequence's first and end tile in the stream, and the stream's length."""
    seqs = tl.arange(0, BLOCK_B)
    tiles = tl.cdiv(_length(SEQLENS, seqs, seqs < batch, capacity), BLOCK_N)
    ends = tl.cumsum(tiles, 0)
    return seqs, ends - tiles, ends, tl.sum(tiles, 0)


@triton.jit
def _first_tile(program, num_programs, total_tiles):
    """Program ``p`` takes tiles ``[first(p), first(p + 1))``: equal shares, in stream order."""
    return (program.to(tl.int64) * total_tiles // num_programs).to(tl.int32)


@triton.jit
def _owner(tile, num_programs, total_tiles):
    """The program whose run holds ``tile`` (the inverse of ``_first_tile``)."""
    return (((tile + 1).to(tl.int64) * num_programs - 1) // total_tiles).to(tl.int32)


@triton.jit
def _locate_run(seqs, seq_first_tiles, seq_end_tiles, total_tiles, program, num_programs):
    """Program ``program``'s run ``[first, last)`` of the tile stream (from ``_tile_stream``), the sequence holding
    tile ``first`` and that sequence's first tile."""
    first = _first_tile(program, num_programs, total_tiles)
    last = _first_tile(program + 1, num_programs, total_tiles)
    seq = tl.sum((seq_end_tiles <= first).to(tl.int32), 0)
    seq_first = tl.sum(tl.where(seqs == seq, seq_first_tiles, 0), 0)
    return first, last, seq, seq_first


@triton.jit
def _segment_role(seq, seq_first, seq_end, first, last, num_programs, total_tiles, lead_seq, lead_parts_end,
                  lead_slot):  # fmt: skip
    """For a run's segment of sequence ``seq`` (tiles ``[seq_first, seq_end)`` of the stream, the run holding
    ``[first, last)``): whether it covers the whole sequence, the partial slot it writes otherwise, and the run's
    leader record (the split sequence it begins and does not finish) updated."""
    whole = (seq_first >= first) & (seq_end <= last)
    # Slot 0: the segment holding the program's first tile (its sequence began here or earlier); slot 1: the
    # segment its run ends in. The merge reads them by the same rule.
    slot = tl.where(seq_first <= first, 0, 1)
    leads = (seq_first >= first) & (seq_end > last)
    lead_seq = tl.where(leads, seq, lead_seq)
    lead_parts_end = tl.where(leads, _owner(seq_end - 1, num_programs, total_tiles) + 1, lead_parts_end)
    lead_slot = tl.where(leads, slot, lead_slot)
    return whole, slot, lead_seq, lead_parts_end, lead_slot


@triton.jit
def _run_lead(SEQLENS, batch, capacity, program, num_programs, BLOCK_N: tl.constexpr, BLOCK_B: tl.constexpr):
    """Run ``program``'s leader record (as ``_segment_role`` leaves it) worked out from the lengths alone: the
    sequence holding the tile just past the run leads it if it begins inside the run (or -1), the program after
    the last holding part of it, and the slot of its part here."""
    seqs, seq_first_tiles, seq_end_tiles, total_tiles = _tile_stream(SEQLENS, batch, capacity, BLOCK_N, BLOCK_B)
    first = _first_tile(program, num_programs, total_tiles)
    last = _first_tile(program + 1, num_programs, total_tiles)
    seq = tl.sum((seq_end_tiles <= last).to(tl.int32), 0)  # the sequence holding tile ``last``, if any
    seq_first = tl.sum(tl.where(seqs == seq, seq_first_tiles, 0), 0)
    seq_end = tl.sum(tl.where(seqs == seq, seq_end_tiles, 0), 0)
    leads = (last < total_tiles) & (seq_first >= first) & (seq_first < last)
    parts_end = _owner(seq_end - 1, num_programs, tl.maximum(total_tiles, 1)) + 1
    return tl.where(leads, seq, -1), tl.where(leads, parts_end, program), tl.where(seq_first <= first, 0, 1)


@triton.jit
def _store_lead(LEADS, program, group, lead_seq, lead_parts_end, lead_slot):
    lead_at, only_once = LEADS + program * 3, group == 0
    tl.store(lead_at, lead_seq, mask=only_once)
    tl.store(lead_at + 1, lead_parts_end, mask=only_once)
    tl.store(lead_at + 2, lead_slot, mask=only_once)


@triton.jit
def _attend(
    Q_LAT, Q_PE, CKV, KPE, table, num_blocks, seq, seqlen, key_start, key_end, softmax_scale, s_q, query, head,
    row_ok, stride_qb, stride_qs, stride_qh, stride_pb, stride_ps, stride_ph, stride_cb, stride_cr: tl.constexpr,
    stride_kb, stride_kr: tl.constexpr, PAGE: tl.constexpr, RANK: tl.constexpr, ROPE: tl.constexpr,
    BLOCK_H: tl.constexpr, BLOCK_N: tl.constexpr, CAUSAL: tl.constexpr, DOT_PRECISION: tl.constexpr,
):  # fmt: skip
    """Online softmax of the group's rows over keys ``[key_start, key_end)`` of one sequence; returns the
    normalized ``out [BLOCK_H, RANK]`` and ``lse [BLOCK_H]``."""
    latent_cols, rope_cols = tl.arange(0, RANK), tl.arange(0, ROPE)
    q_at = Q_LAT + seq * stride_qb + query * stride_qs + head * stride_qh
    q_lat = tl.load(q_at[:, None] + latent_cols[None, :], mask=row_ok[:, None], other=0.0)
    pe_at = Q_PE + seq * stride_pb + query * stride_ps + head * stride_ph
    q_pe = tl.load(pe_at[:, None] + rope_cols[None, :], mask=row_ok[:, None], other=0.0)
    if CAUSAL:
        limit = seqlen - s_q + 1 + query
    else:
        limit = tl.zeros([BLOCK_H], dtype=tl.int32) + seqlen
    scale = softmax_scale * LOG2_E  # exp2 instead of exp: one multiply folded into the scale

    running_max = tl.full([BLOCK_H], float("-inf"), dtype=tl.float32)
    running_sum = tl.zeros([BLOCK_H], dtype=tl.float32)
    acc = tl.zeros([BLOCK_H, RANK], dtype=tl.float32)
    for tile_start in range(key_start, key_end, BLOCK_N):
        keys = tile_start + tl.arange(0, BLOCK_N)
        key_ok = keys < key_end
        if BLOCK_N <= PAGE:  # the tile lies inside one page: one table entry, consecutive rows
            pages = _page(table, tile_start // PAGE, True, num_blocks)
            page_rows = tile_start % PAGE + tl.arange(0, BLOCK_N)
        else:
            pages, page_rows = _page(table, keys // PAGE, key_ok, num_blocks), keys % PAGE
        ckv_at = CKV + pages * stride_cb + page_rows * stride_cr
        kpe_at = KPE + pages * stride_kb + page_rows * stride_kr
        ckv = tl.load(ckv_at[:, None] + latent_cols[None, :], mask=key_ok[:, None], other=0.0)
        kpe = tl.load(kpe_at[:, None] + rope_cols[None, :], mask=key_ok[:, None], other=0.0)
        scores = tl.dot(q_lat, tl.trans(ckv), input_precision=DOT_PRECISION) + tl.dot(
            q_pe, tl.trans(kpe), input_precision=DOT_PRECISION
        )
        visible = key_ok[None, :] & (keys[None, :] < limit[:, None])
        scores = tl.where(visible, scores * scale, float("-inf"))
        new_max = tl.maximum(running_max, tl.max(scores, 1))
        # A row that has seen no visible key yet keeps -inf; subtracting 0 instead avoids inf - inf = NaN.
        shift = tl.where(new_max == float("-inf"), 0.0, new_max)
        weights = tl.exp2(scores - shift[:, None])
        rescale = tl.exp2(running_max - shift)
        running_sum = running_sum * rescale + tl.sum(weights, 1)
        acc = acc * rescale[:, None] + tl.dot(weights.to(ckv.dtype), ckv, input_precision=DOT_PRECISION)
        running_max = new_max

    empty = running_sum == 0.0  # no key of this segment visible to the row: zero weight in the merge
    lse = tl.where(empty, float("-inf"), (running_max + tl.log2(running_sum)) * LN_2)
    return acc / tl.where(empty, 1.0, running_sum)[:, None], lse


@triton.jit
def _store_rows(OUT, LSE, rows, out, lse, keep, RANK: tl.constexpr):
    at = OUT + rows[:, None] * RANK + tl.arange(0, RANK)[None, :]
    tl.store(at, out.to(OUT.dtype.element_ty), mask=keep[:, None])
    tl.store(LSE + rows, lse, mask=keep)


@triton.jit
def decode_kernel(
    Q_LAT, Q_PE, CKV, KPE, BLOCK_TABLE, SEQLENS, OUT, LSE, PARTIAL_OUT, PARTIAL_LSE, LEADS, softmax_scale, batch,
    s_q, heads, num_blocks, capacity, stride_qb, stride_qs, stride_qh, stride_pb, stride_ps, stride_ph, stride_table,
    stride_cb, stride_cr: tl.constexpr, stride_kb, stride_kr: tl.constexpr, PAGE: tl.constexpr, RANK: tl.constexpr,
    ROPE: tl.constexpr, BLOCK_H: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_B: tl.constexpr, CAUSAL: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
):  # fmt: skip
    """Program ``(p, group)``: run ``p`` of the tile stream for the query rows of ``group``. The caches are read
    through their block and row strides (``stride_cb``/``stride_cr`` of ``CKV``, ``stride_kb``/``stride_kr`` of
    ``KPE``; rows dense), so the two parts of FlashMLA's 576-wide rows are read in place. The row strides are
    compile-time constants (one per cache layout): a run-time row stride gives each of a thread's row addresses
    its own register (spills 18 -> 78 loads and stores, H16 B128 S4k 161 -> 168 us on an H200). ``OUT`` and ``LSE``
    are contiguous ``[B, s_q, H, RANK]`` / ``[B, s_q, H]``; ``PARTIAL_*`` hold ``[programs, 2, s_q * H, ...]``;
    ``LEADS [programs, 3]`` gets, for the merge, the split sequence this run leads (begins and does not finish)
    or -1, the program after the last that holds part of it, and the slot of its part here."""
    program, group = tl.program_id(0), tl.program_id(1)
    num_programs = tl.num_programs(0)
    n_rows = s_q * heads
    rows = group * BLOCK_H + tl.arange(0, BLOCK_H)
    row_ok = rows < n_rows
    query, head = rows // heads, rows % heads

    seqs, seq_first_tiles, seq_end_tiles, total_tiles = _tile_stream(SEQLENS, batch, capacity, BLOCK_N, BLOCK_B)
    first, last, seq, seq_first = _locate_run(seqs, seq_first_tiles, seq_end_tiles, total_tiles, program, num_programs)
    lead_seq, lead_parts_end, lead_slot = -1, 0, 0
    tile = first
    while tile < last:
        seqlen = _length(SEQLENS, seq, True, capacity)
        seq_end = seq_first + tl.cdiv(seqlen, BLOCK_N)
        stop = tl.minimum(seq_end, last)
        out, lse = _attend(
            Q_LAT, Q_PE, CKV, KPE, BLOCK_TABLE + seq * stride_table, num_blocks, seq, seqlen,
            (tile - seq_first) * BLOCK_N, tl.minimum((stop - seq_first) * BLOCK_N, seqlen), softmax_scale, s_q, query,
            head, row_ok, stride_qb, stride_qs, stride_qh, stride_pb, stride_ps, stride_ph, stride_cb, stride_cr,
            stride_kb, stride_kr, PAGE, RANK, ROPE, BLOCK_H, BLOCK_N, CAUSAL, DOT_PRECISION,
        )  # fmt: skip
        whole, slot, lead_seq, lead_parts_end, lead_slot = _segment_role(
            seq, seq_first, seq_end, first, last, num_programs, total_tiles, lead_seq, lead_parts_end, lead_slot
        )
        final_rows = seq * n_rows + rows
        partial_rows = (program * 2 + slot) * n_rows + rows
        _store_rows(OUT, LSE, final_rows, out, lse, row_ok & whole, RANK)
        _store_rows(PARTIAL_OUT, PARTIAL_LSE, partial_rows, out, lse, row_ok & (whole == 0), RANK)
        tile = stop
        seq += 1
        seq_first = seq_end
    _store_lead(LEADS, program, group, lead_seq, lead_parts_end, lead_slot)
    # More programs than tiles leaves some runs empty: their slot 0 holds a part of nothing (weight zero), so that
    # the merge need not tell them apart.
    empty_rows = program * 2 * n_rows + rows
    nothing, no_weight = tl.zeros([BLOCK_H, RANK], dtype=tl.float32), tl.full([BLOCK_H], float("-inf"), tl.float32)
    _store_rows(PARTIAL_OUT, PARTIAL_LSE, empty_rows, nothing, no_weight, row_ok & (first == last), RANK)


@triton.jit
def _combine_parts(
    PARTIAL_OUT, PARTIAL_LSE, OUT, LSE, seq, leader, parts_end, first_slot, n_rows, rows, keep, columns, store_lse,
    RANK: tl.constexpr, PARTS_BLOCK: tl.constexpr, ROWS: tl.constexpr, COLUMNS: tl.constexpr,
):  # fmt: skip
    """Combine split sequence ``seq``'s parts (runs ``leader`` up to ``parts_end``, the leader's in slot
    ``first_slot``) for ``rows`` and ``columns``, each part weighted by ``exp(lse_part - lse_total)``,
    ``PARTS_BLOCK`` parts per step, and store the result where ``keep`` (the log-sum-exp where ``store_lse`` too)."""
    running_max = tl.full([ROWS], float("-inf"), dtype=tl.float32)
    running_sum = tl.zeros([ROWS], dtype=tl.float32)
    acc = tl.zeros([ROWS, COLUMNS], dtype=tl.float32)
    for parts_start in range(leader, parts_end, PARTS_BLOCK):
        parts = parts_start + tl.arange(0, PARTS_BLOCK)
        # Every part after the first is the first segment (slot 0) of its program's run.
        partial_rows = (parts * 2 + tl.where(parts == leader, first_slot, 0))[:, None] * n_rows + rows[None, :]
        ok = (parts < parts_end)[:, None] & keep[None, :]
        lse = tl.load(PARTIAL_LSE + partial_rows, mask=ok, other=float("-inf"))
        values = tl.load(PARTIAL_OUT + partial_rows[:, :, None] * RANK + columns[None, None, :], mask=ok[:, :, None],
                         other=0.0)  # fmt: skip
        new_max = tl.maximum(running_max, tl.max(lse, 0))
        shift = tl.where(new_max == float("-inf"), 0.0, new_max)  # parts that saw no key have lse -inf
        weights = tl.exp(lse - shift[None, :])
        rescale = tl.exp(running_max - shift)
        acc = acc * rescale[:, None] + tl.sum(values * weights[:, :, None], 0)
        running_sum = running_sum * rescale + tl.sum(weights, 0)
        running_max = new_max
    out_rows = seq * n_rows + rows
    # A row no part saw a key of (every score -inf) has weight 0 in every part: zeros and lse -inf, as a segment's
    # own guard gives them (0 / 0 made it NaN where the sequence was split over runs).
    total = tl.where(running_sum == 0.0, 1.0, running_sum)
    tl.store(OUT + out_rows[:, None] * RANK + columns[None, :], (acc / total[:, None]).to(OUT.dtype.element_ty),
             mask=keep[:, None])  # fmt: skip
    tl.store(LSE + out_rows, running_max + tl.log(running_sum), mask=keep & store_lse)


@triton.jit
def merge_kernel(
    PARTIAL_OUT, PARTIAL_LSE, LEADS, SEQLENS, OUT, LSE, batch, capacity, n_rows, num_programs, RANK: tl.constexpr,
    BLOCK_N: tl.constexpr, BLOCK_B: tl.constexpr, PARTS_BLOCK: tl.constexpr, ROWS: tl.constexpr,
    DEPENDENT: tl.constexpr,
):  # fmt: skip
    """Program ``p + num_programs * b``: if run ``p`` leads a split sequence, combine that sequence's parts
    (programs ``p`` up to the recorded end) for query rows ``[b * ROWS, (b + 1) * ROWS)``, all latent columns;
    other programs do nothing. For sequences split into few parts (one step takes them all). A one-dimensional
    grid: row blocks on a second axis would stop at its 65,535 (one-row blocks of ``s_q * heads`` rows).
    ``DEPENDENT``: launched as a programmatic dependent of the decode kernel (``launch_pdl``), so it waits for that
    grid's completion and memory (``griddepcontrol.wait``) before reading what the decode kernel wrote; the
    leader record is then worked out from the lengths (``BLOCK_N`` tokens a tile) while the decode kernel runs,
    so that after the wait only the partial results are read (as in ``merge_by_sequence_kernel``). An ordinary
    launch reads the record ``LEADS`` the decode kernel wrote: one load instead of a scan of the lengths."""
    program, row_block = tl.program_id(0) % num_programs, tl.program_id(0) // num_programs
    if DEPENDENT:
        seq, parts_end, first_slot = _run_lead(SEQLENS, batch, capacity, program, num_programs, BLOCK_N, BLOCK_B)
        gdc_wait()  # every program waits, leader or not: the merge never completes before the decode grid
        # The next decode call's narrow kernel (a programmatic dependent) may launch now; it reads nothing before
        # its griddepcontrol.wait, which waits for this grid's completion.
        gdc_launch_dependents()
    else:
        seq = tl.load(LEADS + program * 3)
        parts_end = tl.where(seq >= 0, tl.load(LEADS + program * 3 + 1), program)
        first_slot = tl.load(LEADS + program * 3 + 2)
    rows = row_block * ROWS + tl.arange(0, ROWS)
    _combine_parts(PARTIAL_OUT, PARTIAL_LSE, OUT, LSE, seq, program, parts_end, first_slot, n_rows, rows,
                   (rows < n_rows) & (seq >= 0), tl.arange(0, RANK), True, RANK, PARTS_BLOCK, ROWS,
                   RANK)  # fmt: skip


@triton.jit
def merge_by_sequence_kernel(
    PARTIAL_OUT, PARTIAL_LSE, SEQLENS, OUT, LSE, batch, capacity, n_rows, num_programs,
    RANK: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_B: tl.constexpr, PARTS_BLOCK: tl.constexpr, ROWS: tl.constexpr,
    COLUMNS: tl.constexpr, DEPENDENT: tl.constexpr,
):  # fmt: skip
    """Program ``b + batch * (r + row_blocks * c)``: if sequence ``b`` is split over runs, combine its parts for
    query rows ``[r * ROWS, (r + 1) * ROWS)`` and latent columns ``[c * COLUMNS, (c + 1) * COLUMNS)``. For few
    sequences split into many parts: the grid spreads each sequence's columns over programs, where
    ``merge_kernel``'s grid over runs would need a program per run and column block. The parts are found from the
    lengths alone (the same tile stream as the decode kernel, ``BLOCK_N`` tokens a unit): the run holding the
    sequence's first tile leads it, split if the sequence ends past that run, its part in the slot
    ``_segment_role`` gives it. ``DEPENDENT`` as in ``merge_kernel``: all of that runs while the decode kernel
    finishes; the wait comes before the partial results are read. Reading the lengths before the wait is safe: the
    decode kernel does not write them, and it lets this merge launch only once past its own wait, so the work
    before it that may have written them has completed (the Triton, two-warpgroup and seesaw kernels launch it
    after their completion)."""
    seq, block = tl.program_id(0) % batch, tl.program_id(0) // batch
    row_blocks = tl.cdiv(n_rows, ROWS)
    row_block, column_block = block % row_blocks, block // row_blocks
    seqs, seq_first_tiles, seq_end_tiles, total_tiles = _tile_stream(SEQLENS, batch, capacity, BLOCK_N, BLOCK_B)
    seq_first = tl.sum(tl.where(seqs == seq, seq_first_tiles, 0), 0)
    seq_end = tl.sum(tl.where(seqs == seq, seq_end_tiles, 0), 0)
    # The clamps keep the parts inside the partial results for any lengths (an empty stream has no runs).
    some_tiles = tl.maximum(total_tiles, 1)
    leader = tl.minimum(_owner(seq_first, num_programs, some_tiles), num_programs - 1)
    split = seq_end > _first_tile(leader + 1, num_programs, total_tiles)
    parts_end = tl.where(split, tl.minimum(_owner(seq_end - 1, num_programs, some_tiles), num_programs - 1) + 1,
                         leader)  # fmt: skip
    first_slot = tl.where(seq_first <= _first_tile(leader, num_programs, total_tiles), 0, 1)
    if DEPENDENT:
        gdc_wait()
        gdc_launch_dependents()  # as in merge_kernel
    rows = row_block * ROWS + tl.arange(0, ROWS)
    _combine_parts(PARTIAL_OUT, PARTIAL_LSE, OUT, LSE, seq, leader, parts_end, first_slot, n_rows, rows,
                   (rows < n_rows) & split, column_block * COLUMNS + tl.arange(0, COLUMNS), column_block == 0, RANK,
                   PARTS_BLOCK, ROWS, COLUMNS)  # fmt: skip
