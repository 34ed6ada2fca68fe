"""``MLAScaledDotProductAttention``'s causal-mask recognition (``is_causal_mask``), in this process on the newest
release; the module's arithmetic against Megatron's local path runs in ``megatron_worker.fused_core_attention``."""

from __future__ import annotations

import torch


def test_a_causal_mask_made_in_inference_mode_is_recognized_and_rechecked(seam):
    """Issue 16's ninth bad-input round: Megatron's inference runs under ``torch.inference_mode()``, whose tensors
    track no version; the check of the last causal mask seen read ``mask._version`` and raised torch's RuntimeError
    ("Inference tensors do not track version counter") at every fused attention's forward. Such a mask is checked
    by its values each call (a write inside inference mode would not show in a version)."""
    is_causal_mask = seam.core_attention.is_causal_mask
    with torch.inference_mode():
        mask = torch.ones(4, 4, dtype=torch.bool).triu(1)
        assert is_causal_mask(mask) and is_causal_mask(mask)
        mask[0, 1] = False  # written in place, which no version counter records
        assert not is_causal_mask(mask)
