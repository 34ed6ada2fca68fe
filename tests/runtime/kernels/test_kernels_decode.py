"""Absorbed MLA decode, torch backend: against float64 math on paged caches, and its input checks."""

import pytest
import torch
from decode_case_inputs import SCALE, PagedCase, decode_from_math
from kernels_case_inputs import TOLERANCE, relative_error

from seamfix.runtime.kernels import KernelInputError, mla_decode

CASES = {  # lengths, block size, heads, s_q, causal
    "length 1": ([1, 5], 16, 4, 1, True),
    "lengths off the block size": ([17, 40, 33], 16, 16, 1, True),
    "one long context": ([1000], 16, 16, 1, True),
    "128 heads": ([70, 9], 32, 128, 1, True),
    "two new tokens, causal": ([2, 31, 64], 16, 16, 2, True),
    "two new tokens, not causal": ([2, 31], 16, 4, 2, False),
}


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("name", CASES)
def test_decode_matches_the_math(name, dtype):
    lengths, block_size, heads, s_q, causal = CASES[name]
    case = PagedCase(lengths, block_size, dtype, torch.Generator().manual_seed(len(name)), heads, s_q)

    out, lse = mla_decode(case.q_lat, case.q_pe, *case.cache_args(), SCALE, causal, backend="torch")

    expected_out, expected_lse = decode_from_math(case, causal)
    assert out.dtype == dtype and out.shape == expected_out.shape
    assert relative_error(out, expected_out) < TOLERANCE[dtype]
    assert relative_error(lse, expected_lse) < 1e-5


def test_decode_of_length_one_returns_that_tokens_latent():
    """A single visible key gets all the weight: the output is its c_kv and lse its scaled score."""
    case = PagedCase([1], 16, torch.float64, torch.Generator().manual_seed(3))
    out, lse = mla_decode(case.q_lat, case.q_pe, *case.cache_args(), SCALE, backend="torch")
    ckv, kpe = case.context(0)
    torch.testing.assert_close(out[0, 0], ckv[0].expand(4, -1))
    torch.testing.assert_close(lse[0, 0], (case.q_lat[0, 0] @ ckv[0] + case.q_pe[0, 0] @ kpe[0]) * SCALE)


def decode_with(case, **changes):
    args = {
        "q_nope_absorbed": case.q_lat, "q_pe": case.q_pe, "ckv_cache": case.ckv_cache, "kpe_cache": case.kpe_cache,
        "block_table": case.block_table, "cache_seqlens": case.cache_seqlens, "softmax_scale": SCALE,
    }  # fmt: skip
    return mla_decode(**(args | changes), backend="torch")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (lambda c: {"cache_seqlens": torch.tensor([17, 80], dtype=torch.int32)}, "longer than the block table allows"),
        (lambda c: {"cache_seqlens": torch.tensor([0, 3], dtype=torch.int32)}, "must count the 1 new token"),
        (lambda c: {"block_table": c.block_table.long()}, "block_table must be int32"),
        (lambda c: {"block_table": c.block_table.masked_fill(c.block_table == c.block_table[1, 0], 99)}, "outside"),
        (lambda c: {"q_pe": c.q_pe[..., :8]}, "q_pe must have shape"),
        (lambda c: {"kpe_cache": c.kpe_cache[:1]}, "must share num_blocks"),
        (lambda c: {"q_nope_absorbed": c.q_lat.double()}, "share one dtype"),
        (lambda c: {"ckv_cache": torch.cat((c.ckv_cache, c.ckv_cache), -1)[..., ::2]}, "rows must be contiguous"),
    ],
)
def test_decode_rejects_bad_inputs_clearly(changes, message):
    case = PagedCase([17, 33], 16, torch.float32, torch.Generator().manual_seed(4))
    with pytest.raises(KernelInputError, match=message):
        decode_with(case, **changes(case))
