"""Local (TransformerEngine-free) core attention for MLA: Megatron's ``DotProductAttention`` made to take the
``k_channels``/``v_channels`` MLA passes it, and a fused one that never materializes the score matrix.

Every release's local core attention rejects ``k_channels``/``v_channels`` (Megatron-LM issue 1589, open), so MLA
builds only with TransformerEngine's. MLA's keys are ``qk_head_dim + qk_pos_emb_head_dim`` wide and its values
``v_head_dim``.
"""

from __future__ import annotations

import copy
import itertools
import math
import weakref

import torch
from megatron.core import tensor_parallel
from megatron.core.transformer.dot_product_attention import DotProductAttention
from megatron.core.transformer.enums import AttnMaskType

from ..kernels.backend import require
from .flash_mla import checked_offsets, flash_attn_varlen_func


class MLADotProductAttention(DotProductAttention):
    """Local core attention for MLA: scores keys ``k_channels`` wide, returns values ``v_channels`` wide."""

    def __init__(self, config, *args, k_channels: int | None = None, v_channels: int | None = None, **kwargs):
        if config.num_query_groups not in (None, config.num_attention_heads):
            # MLA up-projects a key and a value for every head; the parent would read them as grouped and fail
            # at the first forward with a shape error that names neither field.
            raise ValueError(
                f"MLA gives each of the {config.num_attention_heads} attention heads its own key and value: "
                f"num_query_groups={config.num_query_groups} must be left unset or equal num_attention_heads"
            )
        if v_channels is not None and v_channels != config.kv_channels:
            # The parent shapes its output as kv_channels per head; a copy of the config that says v_channels
            # keeps its code (and the caller's config) untouched.
            config = copy.copy(config)
            config.kv_channels = v_channels
        if k_channels is not None and kwargs.get("softmax_scale") is None:
            # Left to itself the parent would scale by the value width.
            kwargs["softmax_scale"] = 1.0 / math.sqrt(k_channels)
        super().__init__(config, *args, **kwargs)


class MLAScaledDotProductAttention(MLADotProductAttention):
    """``MLADotProductAttention``'s arithmetic through ``torch.nn.functional.scaled_dot_product_attention``.

    The same module (parameters, state dict, softmax scale, mask and dropout semantics), but the scores never exist
    as a ``[b, heads, sq, sk]`` tensor: PyTorch's flash, cuDNN or memory-efficient kernels run it on the GPU.

    Masks as Megatron's local path reads them: ``attention_mask`` is boolean, True where a key is hidden; with no
    mask a causal layer hides later keys; a row whose keys are all hidden averages every value (Megatron fills the
    hidden scores with -10000, so their softmax is uniform). A causal mask tensor (Megatron's GPT passes one) is
    recognized and run as ``is_causal``. ``attn_mask_type`` given to ``forward`` overrides the layer's, as
    TransformerEngine's does. Attention dropout draws inside Megatron's model-parallel RNG fork, as the local path
    does. What the fused kernels cannot express (a sliding window, softmax offsets) runs the materialized path.
    Packed sequences (``packed_seq_params``, THD, which the local path refuses) run one sequence at a time, without
    attention dropout.
    """

    def __init__(self, config, *args, **kwargs):
        super().__init__(config, *args, **kwargs)
        coefficient = self.layer_number if self.config.apply_query_key_layer_scaling else 1
        # The local path divides the scale by the coefficient and multiplies the float32 scores back by it.
        self.unscaled_softmax_scale = self.softmax_scale * coefficient
        # Releases before 0.15 refuse a window and have no softmax offsets.
        self.materializes_scores = (
            getattr(self, "softmax_offset", None) is not None
            or getattr(self.scale_mask_softmax, "window_size", None) is not None
        )

    def forward(
        self,
        query,
        key,
        value,
        attention_mask,
        attn_mask_type: AttnMaskType | None = None,
        attention_bias=None,
        packed_seq_params=None,
    ):
        if attention_bias is not None:
            raise NotImplementedError("MLAScaledDotProductAttention takes no attention_bias")
        mask_type = self.attn_mask_type if attn_mask_type is None else attn_mask_type
        if packed_seq_params is not None:
            return self._packed(query, key, value, packed_seq_params, mask_type)
        if self.materializes_scores:
            return super().forward(query, key, value, attention_mask)
        # [s, b, heads, width] -> [b, heads, s, width]
        query, key, value = (tensor.permute(1, 2, 0, 3) for tensor in (query, key, value))
        context = self._attend(query, key, value, attention_mask, mask_type)
        # [b, heads, sq, width] -> [sq, b, heads * width], contiguous as Megatron's paths return it: 0.11's output
        # projection views its input in backward, and what the kernels return does not always reshape to a
        # contiguous tensor (on the CPU: one head, or values one wide).
        return context.permute(2, 0, 1, 3).contiguous().view(context.size(2), context.size(0), -1)

    def _packed(self, query, key, value, params, mask_type: AttnMaskType):
        """THD: ``[tokens, heads, width]``, sequences cut by the (padded, where given) cumulative lengths."""
        if params.qkv_format != "thd" or self.materializes_scores or (self.training and self.attention_dropout.p):
            raise NotImplementedError(
                "MLAScaledDotProductAttention packs sequences in the 'thd' format only, without attention dropout, a "
                "sliding window or softmax offsets; build with backend='te' for them"
            )
        # Padded offsets place each sequence; its own count of tokens ends it, so no query reads the padding.
        rows_q, rows_kv = _real_rows(params, "q", query.size(0)), _real_rows(params, "kv", key.size(0))
        context = flash_attn_varlen_func(
            query[rows_q], key[rows_kv], value[rows_kv], params.cu_seqlens_q, params.cu_seqlens_kv,
            params.max_seqlen_q, params.max_seqlen_kv,
            softmax_scale=self.unscaled_softmax_scale, causal="causal" in mask_type.name,
        )  # fmt: skip
        # The padding's rows come back as zeros.
        context = context.new_zeros(query.size(0), *context.shape[1:]).index_copy(0, rows_q, context)
        return context.reshape(context.size(0), -1)

    def _attend(self, query, key, value, mask, mask_type: AttnMaskType):
        sq, sk = query.size(2), key.size(2)
        causal = mask_type == AttnMaskType.causal and sq > 1 and (mask is None or is_causal_mask(mask))
        if causal and sq != sk:
            raise ValueError(f"a causal mask is only for self attention; got {sq} queries and {sk} keys")
        if causal or mask is None:
            return self._sdpa(query, key, value, None, causal)
        if mask.dtype != torch.bool:
            raise TypeError(f"attention_mask must be boolean (True hides a key), not {mask.dtype}")
        hidden_rows = mask.all(dim=-1, keepdim=True)
        if not bool(hidden_rows.any()):
            return self._sdpa(query, key, value, ~mask, False)
        # The kernels give such rows no probabilities at all; Megatron's -10000 fill gives them uniform ones.
        context = self._sdpa(query, key, value, ~mask | hidden_rows, False)
        return torch.where(hidden_rows, value.mean(dim=2, keepdim=True).to(context.dtype), context)

    def _sdpa(self, query, key, value, keep, causal: bool):
        dropout = self.attention_dropout.p if self.training else 0.0

        def attend():
            return torch.nn.functional.scaled_dot_product_attention(
                query, key, value, attn_mask=keep, dropout_p=dropout, is_causal=causal,
                scale=self.unscaled_softmax_scale,
            )  # fmt: skip

        if dropout and not self.config.sequence_parallel:
            with tensor_parallel.get_cuda_rng_tracker().fork():
                return attend()
        return attend()


def _real_rows(params, side: str, total: int) -> torch.Tensor:
    """The rows of the packed tensor (``total`` rows) that hold tokens: each sequence's ``cu_seqlens`` count from
    its padded start (``cu_seqlens_{side}_padded``, where given, places each sequence; its padding comes after it)."""
    name = f"cu_seqlens_{side}"
    starts = checked_offsets(name, getattr(params, name), total)
    padded = getattr(params, f"{name}_padded", None)
    placed = starts if padded is None else checked_offsets(f"{name}_padded", padded, total)
    lengths = [end - start for start, end in itertools.pairwise(starts)]
    room = [end - start for start, end in itertools.pairwise(placed)]
    require(len(room) == len(lengths) and all(map(int.__ge__, room, lengths)), "{name}_padded must hold each "
            "sequence of {name}, got {placed} for {starts}", name=name, placed=placed, starts=starts)  # fmt: skip
    rows = [torch.arange(start, start + length) for start, length in zip(placed, lengths, strict=False)]
    return torch.cat([torch.zeros(0, dtype=torch.long), *rows]).to(getattr(params, name).device)


_causal_masks_seen: list[tuple[weakref.ref, int]] = []
"""The last mask ``is_causal_mask`` found causal, with its version: every layer of a step gets the same one."""


def is_causal_mask(mask: torch.Tensor) -> bool:
    """Whether boolean ``mask`` (``[..., s, s]``, True hides a key) hides exactly the later keys of every row."""
    if mask.dtype != torch.bool or mask.dim() < 2 or mask.size(-1) != mask.size(-2):
        return False
    # An inference tensor (Megatron's inference runs under torch.inference_mode()) tracks no version: reading one
    # raised torch's RuntimeError, and a write inside the mode would not show in it, so such a mask is never
    # remembered and is checked by its values each call.
    tracked = not mask.is_inference()
    if tracked and any(reference() is mask and version == mask._version for reference, version in _causal_masks_seen):
        return True
    size = mask.size(-1)
    causal = torch.ones(size, size, dtype=torch.bool, device=mask.device).triu(1)
    if not bool((mask == causal).all()):
        return False
    if tracked:
        _causal_masks_seen[:] = [(weakref.ref(mask), mask._version)]
    return True
