"""Decode-side Triton kernels (cache append, split-KV decode and merge) against the torch reference; run only
under ``TRITON_INTERPRET=1`` by test_kernels_triton_interpreter.py."""

import os

import pytest
import torch
import triton
import triton.language as tl
from decode_case_inputs import RANK, SCALE, PagedCase
from kernels_case_inputs import TOLERANCE, relative_error
from test_kernels_latent_cache import append_case

from seamfix.runtime.kernels import KernelInputError, mla_cache_append, mla_decode
from seamfix.runtime.kernels.absorbed_decode import triton_kernels, triton_ops

assert os.environ.get("TRITON_INTERPRET") == "1", "run through test_kernels_triton_interpreter.py"

CASES = {  # lengths, block size, heads, s_q, causal, splits (programs = sequences x splits)
    "one split, lengths off the block size": ([1, 23, 40], 16, 4, 1, True, 1),
    "runs of whole sequences and a sequence split over runs": ([1, 23, 130, 300], 16, 4, 1, True, 1),
    "pages holding a whole tile": ([100, 200], 64, 4, 1, True, 2),
    "tiles starting inside a page": ([70, 300, 5], 128, 4, 2, True, 1),
    "more partials than one merge step, empty runs": ([1100], 64, 4, 1, True, 20),
    "a split sequence's parts around an empty run": ([100, 37], 64, 4, 1, True, 4),
    "two new tokens, causal, split": ([2, 70], 16, 4, 2, True, 2),
    "two new tokens, not causal": ([2, 37], 16, 4, 2, False, 1),
    "query rows over two programs, row-major products": ([20, 90], 16, 40, 2, True, 1),
    "many parts a sequence (merged by sequence), a whole short one": ([300, 200, 5], 16, 8, 1, True, 20),
    "few parts a sequence, query rows over several merge programs": ([50, 90], 16, 8, 1, True, 12),
}
# Wider latents: columns over several programs of the merge by sequence (triton_ops.MERGE_BY_SEQUENCE's columns),
# and fewer query rows a merge program (the merge's grid then counts several row blocks).
WIDE_RANK = {"more partials than one merge step, empty runs": 128,
             "many parts a sequence (merged by sequence), a whole short one": 256,
             "few parts a sequence, query rows over several merge programs": 128}  # fmt: skip


# Not bfloat16: Triton 3.8's interpreter computes bf16 tl.dot wrongly (off by 1e10 on a 16x16 product);
# float16 takes the same half-precision path through the kernel. The GPU benchmark checks bf16.
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
@pytest.mark.parametrize("name", CASES)
def test_decode_kernels(name, dtype):
    lengths, block_size, heads, s_q, causal, splits = CASES[name]
    case = PagedCase(lengths, block_size, dtype, torch.Generator().manual_seed(len(name)), heads, s_q,
                     rank=WIDE_RANK.get(name, RANK))  # fmt: skip

    out, lse = mla_decode(case.q_lat, case.q_pe, *case.cache_args(), SCALE, causal, num_splits=splits,
                          backend="triton")  # fmt: skip

    expected_out, expected_lse = mla_decode(case.q_lat, case.q_pe, *case.cache_args(), SCALE, causal, backend="torch")
    assert not out.isnan().any()
    assert relative_error(out, expected_out) < 2 * TOLERANCE[dtype]
    assert relative_error(lse, expected_lse) < 1e-5


@pytest.mark.parametrize("block_size", [16, 64])
def test_decode_reads_flash_mlas_rows_in_place(block_size):
    """The two parts of one ``[blocks, page, 1, rank + rope]`` cache, read as views, give exactly what the same values
    in separate contiguous caches give (same kernel, same sums); a view one element off alignment is refused."""
    case = PagedCase([3, 70, 150], block_size, torch.float32, torch.Generator().manual_seed(block_size), 4, 2)
    rank = case.ckv_cache.shape[-1]
    rows = torch.cat((case.ckv_cache, case.kpe_cache), -1)[:, :, None, :]
    views = (rows[:, :, 0, :rank], rows[:, :, 0, rank:])
    assert not views[0].is_contiguous() and not views[1].is_contiguous()

    in_place = mla_decode(case.q_lat, case.q_pe, *views, *case.cache_args()[2:], SCALE, backend="triton")

    separate = mla_decode(case.q_lat, case.q_pe, *case.cache_args(), SCALE, backend="triton")
    assert torch.equal(in_place[0], separate[0]) and torch.equal(in_place[1], separate[1])
    shifted = torch.cat((case.ckv_cache, case.kpe_cache, case.kpe_cache[..., :1]), -1)[..., 1 : rank + 1]
    with pytest.raises(KernelInputError, match="ckv_cache must start 16-byte aligned"):
        mla_decode(case.q_lat, case.q_pe, shifted, case.kpe_cache, *case.cache_args()[2:], SCALE, backend="triton")


@triton.jit
def _leads_from_lengths(SEQLENS, LEADS, batch, capacity, num_programs, BLOCK_N: tl.constexpr, BLOCK_B: tl.constexpr):
    program = tl.program_id(0)
    seq, parts_end, slot = triton_kernels._run_lead(SEQLENS, batch, capacity, program, num_programs, BLOCK_N, BLOCK_B)
    tl.store(LEADS + program * 3, seq)
    tl.store(LEADS + program * 3 + 1, parts_end)
    tl.store(LEADS + program * 3 + 2, slot)


LEADER_CASES = {  # lengths, block size, splits
    "sequences split over runs, a run ending on a sequence's end": ([1, 23, 130, 300, 64], 16, 2),
    "lengths 0 between and at the ends": ([0, 150, 0, 0, 70, 300, 0], 16, 1),
    "more runs than tiles: empty runs": ([100, 37], 64, 4),
    "one sequence over many runs": ([1100], 16, 12),
    "lengths past the table's capacity": ([5000, 3, 900], 64, 3),
}


@pytest.mark.parametrize("name", LEADER_CASES)
def test_merge_finds_each_runs_leader_record_from_the_lengths(name, monkeypatch):
    """The merge launched after the narrow kernel works each run's record out from the lengths (before it waits for
    the decode grid): the same records the decode kernel writes, for every run."""
    lengths, block_size, splits = LEADER_CASES[name]
    case = PagedCase([min(length, 1000) for length in lengths], block_size, torch.float16,
                     torch.Generator().manual_seed(len(name)), 4, 1)  # fmt: skip
    seqlens = torch.tensor(lengths, dtype=torch.int32)  # past the table: clamped to it, as the kernels do
    launches = []
    merge = triton_ops.merge_kernel

    class Recorded:
        def __getitem__(self, grid):
            def launch(*args, **kwargs):
                launches.append((args, kwargs))
                return merge[grid](*args, **kwargs)

            return launch

    monkeypatch.setattr(triton_ops, "merge_kernel", Recorded())
    tiles = triton_ops.DecodeTiles(16, 16, 4, 2, 2)
    triton_ops.decode(case.q_lat, case.q_pe, case.ckv_cache, case.kpe_cache, case.block_table, seqlens, SCALE, True,
                      splits, tiles)  # fmt: skip

    ((args, _),) = launches
    written, num_programs, capacity = args[2], args[9], args[7]
    assert num_programs == len(lengths) * splits and (written[:, 0] >= 0).any()
    derived = torch.empty_like(written)
    _leads_from_lengths[(num_programs,)](seqlens, derived, len(lengths), capacity, num_programs, BLOCK_N=16,
                                         BLOCK_B=triton.next_power_of_2(len(lengths)))  # fmt: skip
    leaders = written[:, 0] >= 0
    assert torch.equal(derived[:, 0], written[:, 0])
    assert torch.equal(derived[leaders], written[leaders])  # parts' end and slot matter only where a run leads


@pytest.mark.parametrize("with_norm", [True, False])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_cache_append_kernel(dtype, with_norm):
    args, _ = append_case(dtype, torch.Generator().manual_seed(41), with_norm)
    expected = {name: args[name].clone() for name in ("ckv_cache", "kpe_cache")}
    mla_cache_append(**(args | expected), backend="torch")

    mla_cache_append(**args, backend="triton")

    for name, cache in expected.items():
        assert relative_error(args[name], cache) < 2 * TOLERANCE[dtype]
