"""Triton kernel of ``mla_cache_append`` (imported only when the Triton backend runs): per token, RMSNorm of
``c_kv`` and RoPE of ``k_pe`` in float32, each rounded once into its cache slot."""

import triton
import triton.language as tl

from ..mla_rope.triton_kernels import _cos_sin, _load_pairs, _rotate, _store_halves


@triton.jit
def cache_append_kernel(
    C_KV, K_PE, COS, SIN, POSITIONS, SLOTS, NORM_WEIGHT, CKV_CACHE, KPE_CACHE, n_tokens, stride_ckv, stride_kpe, eps,
    RANK: tl.constexpr, HALF: tl.constexpr, HAS_NORM: tl.constexpr, BLOCK_T: tl.constexpr,
):  # fmt: skip
    tokens = tl.program_id(0) * BLOCK_T + tl.arange(0, BLOCK_T)
    slots = tl.load(SLOTS + tokens, mask=tokens < n_tokens, other=-1).to(tl.int64)
    keep = slots >= 0  # a negative slot is padding: nothing is read or written for it
    columns = tl.arange(0, RANK)
    latent = tl.load(C_KV + tokens[:, None] * stride_ckv + columns[None, :], mask=keep[:, None], other=0.0)
    latent = latent.to(tl.float32)
    if HAS_NORM:
        rstd = tl.rsqrt(tl.sum(latent * latent, 1) / RANK + eps)
        latent = latent * rstd[:, None] * tl.load(NORM_WEIGHT + columns).to(tl.float32)[None, :]
    ckv_at = CKV_CACHE + slots[:, None] * RANK + columns[None, :]
    tl.store(ckv_at, latent.to(CKV_CACHE.dtype.element_ty), mask=keep[:, None])

    position = tl.load(POSITIONS + tokens, mask=keep, other=0)
    # Padding tokens read row 0 of the tables (their position loads as 0) and store nothing.
    cos_left, sin_left, cos_right, sin_right = _cos_sin(COS, SIN, position[:, None], HALF, HALF)
    first, second = _load_pairs(K_PE + tokens * stride_kpe, keep, HALF, HALF, BLOCK_T)
    left, right = _rotate(first, second, cos_left, sin_left, cos_right, sin_right)
    _store_halves(KPE_CACHE + slots * (2 * HALF), left, right, keep, HALF, HALF)
