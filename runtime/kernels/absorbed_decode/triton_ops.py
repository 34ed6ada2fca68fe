"""Launch of absorbed MLA decode: tile and split choice, the split kernel, and the merge when splits > 1."""

import functools
from dataclasses import dataclass

import torch
import triton

from .triton_kernels import decode_split_kernel, merge_splits_kernel

# Enough programs for about this many per multiprocessor: several resident programs hide the gather latency.
PROGRAMS_PER_SM = 2
# A split shorter than this spends more on its own setup and the merge than it saves.
MIN_TOKENS_PER_SPLIT = 256


@dataclass(frozen=True)
class DecodeTiles:
    """Query rows per program (all of a group's heads share each cached tile), cached tokens per step, and
    Triton's warps and pipelining depth."""

    rows: int
    tokens: int
    num_warps: int
    num_stages: int


def default_tiles(n_rows: int) -> DecodeTiles:
    # tl.dot needs at least 16 rows. Picked by the sweep in benchmarks/kernels_decode.py on an H100: 8 warps
    # won at every size (more loads in flight per gathered tile); 64 rows x 64 tokens at 128 heads, as the
    # published Triton MLA kernels do.
    if n_rows <= 16:
        return DecodeTiles(rows=16, tokens=64, num_warps=8, num_stages=2)
    if n_rows <= 32:
        return DecodeTiles(rows=32, tokens=64, num_warps=8, num_stages=2)
    return DecodeTiles(rows=64, tokens=64, num_warps=8, num_stages=2)


@functools.cache
def _multiprocessors(device_index: int) -> int:
    return torch.cuda.get_device_properties(device_index).multi_processor_count


def default_num_splits(batch: int, groups: int, context_capacity: int, device: torch.device) -> int:
    """Splits per sequence so that the grid fills the GPU; bounded by the longest context the table allows
    (a host-free bound: the actual lengths stay on the device)."""
    if device.type != "cuda":
        return 1
    wanted = triton.cdiv(PROGRAMS_PER_SM * _multiprocessors(device.index or 0), batch * groups)
    return max(1, min(wanted, context_capacity // MIN_TOKENS_PER_SPLIT))


def decode(q_lat, q_pe, ckv_cache, kpe_cache, block_table, cache_seqlens, softmax_scale, causal, num_splits, tiles):
    batch, s_q, heads, rank = q_lat.shape
    n_rows = s_q * heads
    tiles = tiles or default_tiles(n_rows)
    groups = triton.cdiv(n_rows, tiles.rows)
    page = ckv_cache.shape[1]
    if num_splits is None:
        num_splits = default_num_splits(batch, groups, block_table.shape[1] * page, q_lat.device)
    out = q_lat.new_empty(batch, s_q, heads, rank)
    lse = q_lat.new_empty(batch, s_q, heads, dtype=torch.float32)
    if num_splits == 1:
        split_out, split_lse = out, lse
    else:
        split_out = q_lat.new_empty(batch, num_splits, n_rows, rank, dtype=torch.float32)
        split_lse = q_lat.new_empty(batch, num_splits, n_rows, dtype=torch.float32)
    decode_split_kernel[(batch, groups, num_splits)](
        q_lat, q_pe, ckv_cache, kpe_cache, block_table, cache_seqlens, split_out, split_lse, softmax_scale, s_q,
        heads, *q_lat.stride()[:3], *q_pe.stride()[:3], block_table.stride(0), PAGE=page, RANK=rank,
        ROPE=q_pe.shape[-1], BLOCK_H=tiles.rows, BLOCK_N=tiles.tokens, CAUSAL=causal, num_warps=tiles.num_warps,
        num_stages=tiles.num_stages,
    )  # fmt: skip
    if num_splits > 1:
        merge_splits_kernel[(batch * n_rows,)](
            split_out, split_lse, out, lse, num_splits, n_rows, RANK=rank,
            SPLITS_BLOCK=triton.next_power_of_2(num_splits), num_warps=4,
        )  # fmt: skip
    return out, lse
