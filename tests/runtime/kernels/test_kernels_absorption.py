"""AbsorbedMLADecoder against the expanded (training) form of MLA attention on random weights."""

import pytest
import torch
from decode_case_inputs import RANK, SCALE, PagedCase
from kernels_case_inputs import random, relative_error

from seamfix.runtime.kernels import AbsorbedMLADecoder, KernelInputError, absorb_mla_weights

NOPE, V_DIM = 8, 12


def expanded_attention(case, w_kv_up, q_nope, heads, causal):
    """Training's form, float64: per-head keys ``[W_uk c_kv, k_pe]`` and values ``W_uv c_kv`` from the
    up-projection, then ordinary softmax attention of ``[q_nope, q_pe]``."""
    s_q = q_nope.shape[1]
    out = torch.empty(len(case.lengths), s_q, heads, V_DIM, dtype=torch.float64)
    for row, length in enumerate(case.lengths):
        ckv, kpe = case.context(row)
        expanded = (ckv @ w_kv_up.double().T).view(length, heads, NOPE + V_DIM)
        key = torch.cat((expanded[..., :NOPE], kpe[:, None, :].expand(-1, heads, -1)), -1)
        value = expanded[..., NOPE:]
        for i in range(s_q):
            seen = length - s_q + i + 1 if causal else length
            query = torch.cat((q_nope[row, i].double(), case.q_pe[row, i].double()), -1)
            probabilities = torch.softmax(torch.einsum("hd,thd->ht", query, key[:seen]) * SCALE, -1)
            out[row, i] = torch.einsum("ht,thv->hv", probabilities, value[:seen])
    return out


@pytest.mark.parametrize(("heads", "s_q", "causal"), [(4, 1, True), (16, 2, True), (4, 2, False)])
def test_absorbed_decoder_equals_the_expanded_form(heads, s_q, causal):
    generator = torch.Generator().manual_seed(31 + heads + s_q)
    case = PagedCase([2, 20, 45], 16, torch.float64, generator, heads, s_q)
    w_kv_up = random((heads * (NOPE + V_DIM), RANK), torch.float64, generator) / RANK**0.5
    q_nope = random((3, s_q, heads, NOPE), torch.float64, generator)

    out = AbsorbedMLADecoder(w_kv_up, heads, NOPE, V_DIM, SCALE)(q_nope, case.q_pe, *case.cache_args(), causal)

    assert relative_error(out, expanded_attention(case, w_kv_up, q_nope, heads, causal)) < 1e-12


def test_absorbed_weights_are_the_per_head_blocks_of_the_up_projection():
    w_kv_up = torch.arange(2 * (NOPE + V_DIM) * RANK, dtype=torch.float64).view(2 * (NOPE + V_DIM), RANK)
    weights = absorb_mla_weights(w_kv_up, 2, NOPE, V_DIM)
    assert torch.equal(weights.w_uk[1], w_kv_up[NOPE + V_DIM : 2 * NOPE + V_DIM])
    assert torch.equal(weights.w_uv[1], w_kv_up[2 * NOPE + V_DIM :].T)


def test_absorb_rejects_a_projection_of_the_wrong_height():
    with pytest.raises(KernelInputError, match="w_kv_up must have shape"):
        absorb_mla_weights(torch.zeros(2 * (NOPE + V_DIM) + 1, RANK), 2, NOPE, V_DIM)


def test_absorption_runs_under_torch_func_transforms():
    """Absorption is torch's views and copies, so it runs under ``torch.func.grad`` and ``vmap`` (the ops refuse
    transforms, whose wrappers hold no memory a kernel reads; absorbing a weight reads none): the check for freed
    storages asked the wrappers for theirs and raised torch's NotImplementedError there."""
    w_kv_up = torch.randn(2 * (NOPE + V_DIM), RANK, dtype=torch.float64)
    grad = torch.func.grad(lambda w: absorb_mla_weights(w, 2, NOPE, V_DIM).w_uk.sum())(w_kv_up)
    key_rows = torch.arange(2 * (NOPE + V_DIM))[:, None] % (NOPE + V_DIM) < NOPE  # each head's key rows, then values
    assert torch.equal(grad, key_rows.expand_as(w_kv_up).double())
    batched = torch.func.vmap(lambda w: absorb_mla_weights(w, 2, NOPE, V_DIM).w_uv)(torch.stack([w_kv_up, -w_kv_up]))
    assert torch.equal(batched[1], -absorb_mla_weights(w_kv_up, 2, NOPE, V_DIM).w_uv)
