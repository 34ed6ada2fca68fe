"""PyTorch reference of absorbed MLA decode: the whole (masked) context gathered per sequence, float32 math
(float64 for float64 inputs). Batched, with no host synchronization, so it also serves as the eager baseline."""

import math

import torch

from ..mla_rope.reference import compute_dtype

LOG2_E = math.log2(math.e)


def visible_keys(cache_seqlens: torch.Tensor, s_q: int, context: int, causal: bool) -> torch.Tensor:
    """``[B, s_q, 1, context]`` mask of the keys each query sees: query ``i`` of ``s_q`` new tokens sits at
    position ``seqlen - s_q + i`` and, when causal, sees keys up to and including itself."""
    limit = cache_seqlens[:, None].long().expand(-1, s_q)
    if causal:
        limit = limit - s_q + 1 + torch.arange(s_q, device=limit.device)
    keys = torch.arange(context, device=limit.device)
    return (keys < limit[:, :, None])[:, :, None, :]


def decode(q_lat, q_pe, ckv_cache, kpe_cache, block_table, cache_seqlens, softmax_scale, causal):
    work = compute_dtype(q_lat.dtype)
    # Entries past a sequence's last block may hold anything (say -1); clamped only so the gather stays in bounds.
    blocks = block_table.long().clamp(0, ckv_cache.shape[0] - 1)
    ckv = ckv_cache[blocks].flatten(1, 2).to(work)
    kpe = kpe_cache[blocks].flatten(1, 2).to(work)
    context = ckv.shape[1]
    # Unchecked lengths (validate=False) are clamped to the table's capacity as the kernels clamp them: a length past
    # it moved the causal window here (each query's position counts from the length) and not in the kernels.
    cache_seqlens = cache_seqlens.clamp(0, context)
    # Rows past a sequence's length may hold anything, NaN too (fresh torch.empty pages): zero weight times NaN is
    # NaN, so they are selected away (where), never multiplied by zero.
    cached = (torch.arange(context, device=ckv.device) < cache_seqlens[:, None].long())[:, :, None]
    ckv = torch.where(cached, ckv, 0.0)
    kpe = torch.where(cached, kpe, 0.0)
    scores = torch.einsum("bshr,btr->bsht", q_lat.to(work), ckv) + torch.einsum("bshp,btp->bsht", q_pe.to(work), kpe)
    visible = visible_keys(cache_seqlens, q_lat.shape[1], context, causal)
    # The kernels scale by softmax_scale x log2(e) (they exponentiate in base 2): a scaled score within a factor
    # log2(e) of float32's largest overflows there (+inf: a NaN row) and stayed finite here. Scaled the same way (in
    # float32: float64 inputs keep their range), it overflows alike on every backend.
    scores = (scores * (softmax_scale * LOG2_E) / LOG2_E).masked_fill(~visible, float("-inf"))
    lse = torch.logsumexp(scores, -1)
    # A row that sees no key (only possible for unchecked lengths), or whose every visible score is -inf (-inf in
    # the inputs), gets zeros and lse -inf, as the kernels give it within a sequence they read (they subtract 0
    # where the running max is -inf; exp(-inf - -inf) here was NaN); a sequence of length 0 they leave unwritten
    # (unspecified, see mla_decode).
    shift = torch.where(lse.isneginf(), 0.0, lse)
    weights = torch.where(visible, torch.exp(scores - shift[..., None]), 0.0)
    out = torch.einsum("bsht,btr->bshr", weights, ckv)
    # A +inf score (inf in the inputs, or a product past float32's range) makes the row's output NaN everywhere;
    # its lse is NaN in the kernels (the running max is +inf, exp(inf - inf) is NaN), where logsumexp gave +inf.
    # detach(): einsum returned a view of its product, made under no_grad, on which autograd forbids an in-place op
    # with an operand that requires grad (``out += bias`` under grad mode raised here, not on the kernels, whose
    # output is a tensor of its own); detach() gives the same memory as a tensor of its own (0.3 us).
    return out.to(q_lat.dtype).detach(), torch.where(lse.isposinf(), float("nan"), lse)
