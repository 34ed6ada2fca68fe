"""Rotary position of every packed token: its offset inside its own sequence."""

import torch


def packed_positions(cu_seqlens: torch.Tensor, total_tokens: int, table_rows: int) -> torch.Tensor:
    """``positions[t] = t - cu_seqlens[i]`` for the sequence ``i`` holding token ``t`` (no host sync), clamped to
    ``[0, table_rows)``: offsets that were not checked (see ``mla_rope_q``) then never index past cos/sin."""
    tokens = torch.arange(total_tokens, device=cu_seqlens.device, dtype=cu_seqlens.dtype)
    sequence = torch.searchsorted(cu_seqlens[1:], tokens, right=True)
    # Tokens past cu_seqlens[-1] (padding) are clamped into the last sequence, so every index stays in bounds.
    sequence = sequence.clamp(max=cu_seqlens.numel() - 2)
    # No position in cu_seqlens' dtype passes its largest value: a bound past it (an expanded table of 2**31 rows
    # or more with int32 offsets) raised torch's "value cannot be converted to type int without overflow".
    last_row = min(table_rows - 1, torch.iinfo(cu_seqlens.dtype).max)
    return (tokens - cu_seqlens[sequence]).clamp_(0, last_row)
