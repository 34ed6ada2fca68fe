"""Megatron's local ``DotProductAttention`` made to take the ``k_channels``/``v_channels`` MLA passes it.

Every release's local core attention rejects them (Megatron-LM issue 1589, open), so MLA builds only with
TransformerEngine's. MLA's keys are ``qk_head_dim + qk_pos_emb_head_dim`` wide and its values ``v_head_dim``.
"""

from __future__ import annotations

import copy
import math

from megatron.core.transformer.dot_product_attention import DotProductAttention


class MLADotProductAttention(DotProductAttention):
    """Local core attention for MLA: scores keys ``k_channels`` wide, returns values ``v_channels`` wide."""

    def __init__(self, config, *args, k_channels: int | None = None, v_channels: int | None = None, **kwargs):
        if v_channels is not None and v_channels != config.kv_channels:
            # The parent shapes its output as kv_channels per head; a copy of the config that says v_channels
            # keeps its code (and the caller's config) untouched.
            config = copy.copy(config)
            config.kv_channels = v_channels
        if k_channels is not None and kwargs.get("softmax_scale") is None:
            # Left to itself the parent would scale by the value width.
            kwargs["softmax_scale"] = 1.0 / math.sqrt(k_channels)
        super().__init__(config, *args, **kwargs)
