"""mla_cache_append, torch backend: RMSNorm and RoPE written into the right slots, nothing else touched."""

import pytest
import torch
from decode_case_inputs import RANK, ROPE
from kernels_case_inputs import MAX_SEQ, TOLERANCE, megatron_cos_sin, random, relative_error, rotate_from_math

from seamfix.runtime.kernels import KernelInputError, mla_cache_append

BLOCKS, BLOCK_SIZE = 3, 16


def append_case(dtype, generator, with_norm):
    angles = torch.rand(MAX_SEQ, ROPE // 2, generator=generator, dtype=torch.float64) * 6.0
    cos, sin = megatron_cos_sin(angles, dtype)
    return {
        "c_kv": random((5, RANK), dtype, generator),
        "k_pe": random((5, ROPE), dtype, generator),
        "cos": cos,
        "sin": sin,
        "positions": torch.tensor([0, 7, 3, 3, 5], dtype=torch.int32),
        "ckv_cache": random((BLOCKS, BLOCK_SIZE, RANK), dtype, generator),
        "kpe_cache": random((BLOCKS, BLOCK_SIZE, ROPE), dtype, generator),
        "slot_mapping": torch.tensor([40, 3, -1, 17, 16], dtype=torch.int32),  # -1: padding, skipped
        "norm_weight": 1.0 + 0.1 * random((RANK,), dtype, generator) if with_norm else None,
    }, angles


@pytest.mark.parametrize("with_norm", [True, False])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_append_writes_normalized_latent_and_rotated_rope_into_its_slots(dtype, with_norm):
    args, angles = append_case(dtype, torch.Generator().manual_seed(21), with_norm)
    before_ckv, before_kpe = args["ckv_cache"].clone(), args["kpe_cache"].clone()

    mla_cache_append(**args, eps=1e-6, backend="torch")

    written = [0, 1, 3, 4]
    slots = args["slot_mapping"][written].long()
    latent = args["c_kv"][written].double()
    if with_norm:
        latent = latent * torch.rsqrt(latent.square().mean(-1, keepdim=True) + 1e-6) * args["norm_weight"].double()
    rope = rotate_from_math(args["k_pe"][written], angles[args["positions"][written].long()])
    assert relative_error(args["ckv_cache"].view(-1, RANK)[slots], latent) < TOLERANCE[dtype]
    assert relative_error(args["kpe_cache"].view(-1, ROPE)[slots], rope) < TOLERANCE[dtype]
    untouched = torch.ones(BLOCKS * BLOCK_SIZE, dtype=torch.bool)
    untouched[slots] = False
    assert torch.equal(args["ckv_cache"].view(-1, RANK)[untouched], before_ckv.view(-1, RANK)[untouched])
    assert torch.equal(args["kpe_cache"].view(-1, ROPE)[untouched], before_kpe.view(-1, ROPE)[untouched])


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"slot_mapping": torch.tensor([48, 0, 1, 2, 3], dtype=torch.int32)}, "cache has 48 slots"),
        ({"positions": torch.tensor([0, 8, 1, 2, 3], dtype=torch.int32)}, r"positions must lie in \[0, 8\)"),
        ({"k_pe": torch.zeros(5, ROPE + 2)}, "k_pe must have shape"),
        ({"c_kv": torch.zeros(5, RANK, dtype=torch.float64)}, "share one dtype"),
        # torch's own in-place write raises a RuntimeError here; the Triton kernel would write past autograd.
        ({"ckv_cache": torch.zeros(BLOCKS, BLOCK_SIZE, RANK, requires_grad=True)}, "must not require grad"),
    ],
)
def test_append_rejects_bad_inputs_clearly(changes, message):
    args, _ = append_case(torch.float32, torch.Generator().manual_seed(22), with_norm=True)
    with pytest.raises(KernelInputError, match=message):
        mla_cache_append(**(args | changes), backend="torch")
