"""Random paged latent caches and the float64 math of absorbed decode, shared by the decode tests."""

import torch
from kernels_case_inputs import random

RANK, ROPE = 32, 16  # small stand-ins for DeepSeek's 512 and 64 (the Triton backend needs powers of two)
SCALE = 0.135  # DeepSeek-V3's softmax scale: scores of a realistic spread


class PagedCase:
    """Sequences of the given lengths scattered over shuffled cache blocks. Every slot holds random data (unused
    ones too, so reading one shows up), and table entries past a sequence's blocks are -1."""

    def __init__(self, lengths, block_size, dtype, generator, heads=4, s_q=1, rank=RANK, rope=ROPE):
        blocks_per_sequence = [-(-n // block_size) for n in lengths]
        num_blocks = sum(blocks_per_sequence) + 2
        self.ckv_cache = random((num_blocks, block_size, rank), dtype, generator)
        self.kpe_cache = random((num_blocks, block_size, rope), dtype, generator)
        self.block_table = torch.full((len(lengths), max(blocks_per_sequence) + 1), -1, dtype=torch.int32)
        order = torch.randperm(num_blocks, generator=generator).to(torch.int32)
        taken = 0
        for row, count in enumerate(blocks_per_sequence):
            self.block_table[row, :count] = order[taken : taken + count]
            taken += count
        self.cache_seqlens = torch.tensor(lengths, dtype=torch.int32)
        self.lengths = list(lengths)
        self.q_lat = random((len(lengths), s_q, heads, rank), dtype, generator)
        self.q_pe = random((len(lengths), s_q, heads, rope), dtype, generator)

    def cache_args(self):
        return self.ckv_cache, self.kpe_cache, self.block_table, self.cache_seqlens

    def context(self, row: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Sequence ``row``'s cached ``(c_kv, k_pe)`` in token order, float64."""
        blocks = self.block_table[row, : -(-self.lengths[row] // self.ckv_cache.shape[1])].long()
        ckv = self.ckv_cache[blocks].flatten(0, 1)[: self.lengths[row]]
        kpe = self.kpe_cache[blocks].flatten(0, 1)[: self.lengths[row]]
        return ckv.double(), kpe.double()


def decode_from_math(case: PagedCase, causal: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Float64, one query at a time: ``softmax((q_lat · c_kv + q_pe · k_pe) * scale) @ c_kv`` over the keys the
    query sees (new query ``i`` of ``s_q`` sits at position ``length - s_q + i``)."""
    batch, s_q, heads, rank = case.q_lat.shape
    out = torch.empty(batch, s_q, heads, rank, dtype=torch.float64)
    lse = torch.empty(batch, s_q, heads, dtype=torch.float64)
    for row, length in enumerate(case.lengths):
        ckv, kpe = case.context(row)
        for i in range(s_q):
            seen = length - s_q + i + 1 if causal else length
            scores = case.q_lat[row, i].double() @ ckv[:seen].T + case.q_pe[row, i].double() @ kpe[:seen].T
            scores = scores * SCALE
            out[row, i] = torch.softmax(scores, -1) @ ckv[:seen]
            lse[row, i] = torch.logsumexp(scores, -1)
    return out, lse
