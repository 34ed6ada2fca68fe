"""Each Triton launch runs on its tensors' GPU, not the current one (Triton launches on the current device: a
kernel started on cuda:0 with cuda:1's pointers faults or reads through peer access). Needs two GPUs."""

import pytest
import torch
from decode_case_inputs import SCALE, PagedCase
from kernels_case_inputs import megatron_cos_sin, random, relative_error, rope_angles
from test_kernels_latent_cache import append_case

from seamfix.runtime.kernels import fused_down_norm_up, mla_cache_append, mla_decode, mla_rope_kv, mla_rope_q

pytestmark = pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two CUDA GPUs")


def _to(value, device):
    return value.to(device) if isinstance(value, torch.Tensor) else value


def test_every_op_runs_on_the_second_gpu_while_the_first_is_current():
    torch.cuda.set_device(0)
    second = torch.device("cuda:1")
    generator = torch.Generator().manual_seed(1)
    cos, sin = megatron_cos_sin(rope_angles(generator), torch.bfloat16)
    q = random((5, 2, 3, 16), torch.bfloat16, generator)
    kv = random((5, 2, 3, 12), torch.bfloat16, generator)
    k_pos_emb = random((5, 2, 1, 8), torch.bfloat16, generator)
    x, w_down, w_up = (random(shape, torch.bfloat16, generator) for shape in ((7, 16), (8, 16), (4, 8)))
    case = PagedCase([5, 40], 16, torch.bfloat16, generator)
    args, _ = append_case(torch.bfloat16, generator, True)
    runs = {
        "mla_rope_q": lambda dev, b: mla_rope_q(q.to(dev), cos.to(dev), sin.to(dev), 8, 8, backend=b),
        "mla_rope_kv": lambda dev, b: mla_rope_kv(kv.to(dev), k_pos_emb.to(dev), cos.to(dev), sin.to(dev), 8, 8, 4,
                                                  backend=b),
        "fused_down_norm_up": lambda dev, b: fused_down_norm_up(x.to(dev), w_down.to(dev), w_up.to(dev),
                                                                torch.ones(8, dtype=torch.bfloat16, device=dev), 1e-6,
                                                                backend=b),
        "mla_decode": lambda dev, b: mla_decode(case.q_lat.to(dev), case.q_pe.to(dev),
                                                *(t.to(dev) for t in case.cache_args()), SCALE, backend=b),
        "mla_cache_append": lambda dev, b: _append(args, dev, b),
    }  # fmt: skip
    for name, run in runs.items():
        got, expected = run(second, "triton"), run("cpu", "torch")
        torch.cuda.synchronize(second)
        got, expected = (got, expected) if isinstance(got, tuple) else ((got,), (expected,))
        for actual, reference in zip(got, expected, strict=True):
            assert relative_error(actual.cpu(), reference) < 3e-2, name


def _append(args, device, backend):
    moved = {name: _to(value, device) for name, value in args.items()}
    mla_cache_append(**moved, backend=backend)
    return moved["ckv_cache"], moved["kpe_cache"]
