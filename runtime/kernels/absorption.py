"""Weight absorption for MLA decode: ``absorb_mla_weights`` and ``AbsorbedMLADecoder``.

Training expands the latent per head (``k_nope = W_uk c_kv``, ``v = W_uv c_kv``); decode folds ``W_uk`` into
the query and ``W_uv`` into the output instead, so attention runs over the latent cache alone:
``q_nope · (W_uk c) = (q_nope W_uk) · c`` and ``Σ p (W_uv c) = W_uv (Σ p c)``. Exact up to rounding.
"""

from dataclasses import dataclass

import torch

from .absorbed_decode import mla_decode
from .backend import (
    TORCH_DTYPES,
    autocast_off,
    check_positive,
    check_same_device,
    check_shape,
    check_softmax_scale,
    require,
)


@dataclass(frozen=True)
class AbsorbedWeights:
    """``w_uk [H, qk_nope_dim, kv_lora_rank]``: ``q_lat = q_nope @ w_uk[h]``;
    ``w_uv [H, kv_lora_rank, v_dim]``: ``out = out_lat @ w_uv[h]``."""

    w_uk: torch.Tensor
    w_uv: torch.Tensor


def absorb_mla_weights(w_kv_up: torch.Tensor, num_heads: int, qk_nope_dim: int, v_dim: int) -> AbsorbedWeights:
    """Split the up-projection of the latent (megatron's ``linear_kv_up_proj.weight``, DeepSeek's
    ``kv_b_proj.weight``: ``[num_heads * (qk_nope_dim + v_dim), kv_lora_rank]``, each head's key rows then its
    value rows) into the per-head factors that decode absorbs."""
    check_positive(num_heads=num_heads, qk_nope_dim=qk_nope_dim, v_dim=v_dim)
    check_same_device({"w_kv_up": w_kv_up}, allow_meta=True)  # a model built on the meta device absorbs too
    # A float dtype some backend decodes in (an integer or bool decoder was built, then failed at its first step).
    require(w_kv_up.dtype in TORCH_DTYPES, "w_kv_up must be float32, bfloat16, float16 or float64, got {dtype}",
            dtype=w_kv_up.dtype)  # fmt: skip
    check_shape("w_kv_up", w_kv_up, (num_heads * (qk_nope_dim + v_dim), None))
    check_positive(kv_lora_rank=w_kv_up.shape[1])  # an empty latent built a decoder every decode step then refused
    per_head = w_kv_up.view(num_heads, qk_nope_dim + v_dim, w_kv_up.shape[1])
    # Copies, never views of w_kv_up (one head's key rows are already contiguous): training on must not change
    # one absorbed factor and not the other.
    return AbsorbedWeights(
        w_uk=per_head[:, :qk_nope_dim].clone(memory_format=torch.contiguous_format),
        w_uv=per_head[:, qk_nope_dim:].transpose(1, 2).contiguous(),
    )


def _check_absorbed_weights(w_uk: torch.Tensor, w_uv: torch.Tensor) -> None:
    """A decoder's buffers still hold one layer's factors (a module's buffers can be reassigned or loaded with
    ``strict=False``): a ``w_uv`` of one head was broadcast over every head (each head given head 0's values), one
    of another latent width or dtype raised torch's einsum errors. Their dtype is one some backend decodes in:
    ``decoder.to(torch.float8_e4m3fn)`` (``Module.to`` casts buffers to any float dtype) raised torch's
    NotImplementedError in the absorbed query's product. One comparison on the serving path."""
    require(w_uk.dim() == 3 and w_uv.dim() == 3 and w_uv.shape[:2] == (w_uk.shape[0], w_uk.shape[2])
            and w_uv.dtype == w_uk.dtype and w_uk.dtype in TORCH_DTYPES and w_uk.numel() > 0 and w_uv.numel() > 0,
            "the decoder's buffers must be w_uk [heads, qk_nope_dim, kv_lora_rank] and w_uv [heads, kv_lora_rank, "
            "v_dim] of one dtype (float32, bfloat16, float16 or float64), every size positive, got {uk} {uk_dtype} "
            "and {uv} {uv_dtype}", uk=list(w_uk.shape),
            uk_dtype=w_uk.dtype, uv=list(w_uv.shape), uv_dtype=w_uv.dtype)  # fmt: skip


class AbsorbedMLADecoder(torch.nn.Module):
    """Decode-time attention of one trained MLA layer over the paged latent cache.

    Takes the layer's ``w_kv_up`` and returns, per decode step, the same per-head attention output
    ``[B, s_q, H, v_dim]`` as the expanded form (before the output projection).
    """

    def __init__(self, w_kv_up: torch.Tensor, num_heads: int, qk_nope_dim: int, v_dim: int, softmax_scale: float):
        super().__init__()
        check_same_device({"w_kv_up": w_kv_up}, allow_meta=True)  # before detach: a non-tensor is refused
        # Refused here, not at the first decode step.
        softmax_scale = check_softmax_scale(softmax_scale)
        weights = absorb_mla_weights(w_kv_up.detach(), num_heads, qk_nope_dim, v_dim)
        self.register_buffer("w_uk", weights.w_uk)
        self.register_buffer("w_uv", weights.w_uv)
        self.softmax_scale = softmax_scale

    def forward(
        self,
        q_nope: torch.Tensor,
        q_pe: torch.Tensor,
        ckv_cache: torch.Tensor,
        kpe_cache: torch.Tensor,
        block_table: torch.Tensor,
        cache_seqlens: torch.Tensor,
        causal: bool = True,
        *,
        backend: str = "auto",
        validate: bool | None = None,
    ) -> torch.Tensor:
        """``q_nope [B, s_q, H, qk_nope_dim]`` and ``q_pe [B, s_q, H, rope_dim]`` (RoPE'd) of the new tokens,
        whose latents are already appended (``mla_cache_append``); ``validate`` as in ``mla_decode``."""
        w_uk, w_uv = self.w_uk, self.w_uv  # a module's attributes: read once
        device = check_same_device({"q_nope": q_nope, "w_uk": w_uk, "w_uv": w_uv})
        _check_absorbed_weights(w_uk, w_uv)
        heads, qk_nope_dim, _ = w_uk.shape
        check_shape("q_nope", q_nope, (None, None, heads, qk_nope_dim))
        require(q_nope.dtype == w_uk.dtype, "q_nope must have the absorbed weights' dtype {want}, got {got}",
                want=w_uk.dtype, got=q_nope.dtype)  # fmt: skip
        # The absorbed query in q_nope's dtype, as mla_decode takes it; untracked, as the output never requires grad
        # (mla_decode's does not): recording the first product saved w_uk, which autograd refused where the decoder
        # was built under torch.inference_mode() (a serving process) and q_nope required grad.
        with torch.no_grad(), autocast_off(device):
            q_lat = torch.einsum("bshn,hnr->bshr", q_nope, w_uk)
            out_lat, _ = mla_decode(q_lat, q_pe, ckv_cache, kpe_cache, block_table, cache_seqlens, self.softmax_scale,
                                    causal, backend=backend, validate=validate)  # fmt: skip
            # A tensor of its own (detach(), 0.3 us): einsum returns a view of its product, and autograd forbids an
            # in-place op with an operand that requires grad on a view made under no_grad (``out += bias`` raised).
            return torch.einsum("bshr,hrv->bshv", out_lat, w_uv).detach()
