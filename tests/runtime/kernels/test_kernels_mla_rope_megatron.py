"""The torch backend against megatron-core 0.16.1's own unfused MLA RoPE path (``apply_rotary_pos_emb``)."""

from types import SimpleNamespace

import pytest
import torch
from kernels_case_inputs import (
    EMB_DIM,
    HEADS,
    LAYOUTS,
    QK_HEAD_DIM,
    V_DIM,
    cu_seqlens,
    megatron_cos_sin,
    random,
    rope_angles,
    token_shape,
)

from seamfix.runtime.kernels import mla_rope_kv, mla_rope_q

# megatron-core is a test dependency (CI has it); the GPU machines that run the kernel tests do not.
apply_rotary_pos_emb = pytest.importorskip("megatron.core.models.common.embeddings.rope_utils").apply_rotary_pos_emb

# The fields apply_rotary_pos_emb reads, set as MLASelfAttention's unfused branch runs with them.
MLA_CONFIG = SimpleNamespace(apply_rope_fusion=False, rotary_interleaved=False, multi_latent_attention=True)
SINGLE_RANK = SimpleNamespace(size=lambda: 1, rank=lambda: 0)


def megatron_rope(t: torch.Tensor, angles: torch.Tensor, layout: str) -> torch.Tensor:
    freqs = torch.cat((angles, angles), -1)[:, None, None, :]
    if layout == "bshd":
        freqs = freqs[: t.shape[0]]  # as MLASelfAttention trims rotary_pos_emb to the sequence length
    return apply_rotary_pos_emb(t, freqs, config=MLA_CONFIG, cu_seqlens=cu_seqlens(layout), cp_group=SINGLE_RANK)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_q_and_kv_match_megatron_unfused_path(layout):
    generator = torch.Generator().manual_seed(7)
    angles = rope_angles(generator)
    cos, sin = megatron_cos_sin(angles, torch.float64)
    q = random((*token_shape(layout), HEADS, QK_HEAD_DIM + EMB_DIM), torch.float64, generator)
    kv = random((*token_shape(layout), HEADS, QK_HEAD_DIM + V_DIM), torch.float64, generator)
    k_pos_emb = random((*token_shape(layout), 1, EMB_DIM), torch.float64, generator)

    q_nope, q_pe = q.split([QK_HEAD_DIM, EMB_DIM], -1)
    expected_query = torch.cat((q_nope, megatron_rope(q_pe, angles, layout)), -1)
    k_nope, expected_value = kv.split([QK_HEAD_DIM, V_DIM], -1)
    k_pe = megatron_rope(k_pos_emb, angles, layout).expand(*k_nope.shape[:-1], EMB_DIM)
    expected_key = torch.cat((k_nope, k_pe), -1)

    query = mla_rope_q(q.clone(), cos, sin, QK_HEAD_DIM, EMB_DIM, cu_seqlens(layout), backend="torch")
    key, value = mla_rope_kv(kv, k_pos_emb, cos, sin, EMB_DIM, QK_HEAD_DIM, V_DIM, cu_seqlens(layout), backend="torch")

    torch.testing.assert_close(query, expected_query)
    torch.testing.assert_close(key, expected_key)
    torch.testing.assert_close(value, expected_value)
