"""The FlashMLA-compatible decode (``seamfix.runtime.megatron.flash_mla``) against a float64 reference on random
paged caches, through megatron-core's own decode code, and its explicit installation."""

from __future__ import annotations

import types

import numpy as np
import pytest
import torch

HEADS, RANK, ROPE, BLOCK = 4, 32, 16, 8


def paged_cache(lengths: list[int], s_q: int, seed: int = 0):
    """A random 576-style cache (``[blocks, BLOCK, 1, RANK + ROPE]``), a shuffled block table padded with -1, the
    lengths as int32, and queries ``[batch, s_q, HEADS, RANK + ROPE]``."""
    generator = torch.Generator().manual_seed(seed)
    widest = max(-(-length // BLOCK) for length in lengths) + 1  # one spare column, as Megatron's tables have
    num_blocks = len(lengths) * widest + 3  # blocks no sequence uses: garbage that must never be read
    cache = torch.randn(num_blocks, BLOCK, 1, RANK + ROPE, generator=generator)
    cache[-3:] = float("nan")
    order = torch.randperm(num_blocks - 3, generator=generator).tolist()
    table = torch.full((len(lengths), widest), -1, dtype=torch.int32)
    for row, length in enumerate(lengths):
        used = -(-length // BLOCK)
        table[row, :used] = torch.tensor([order.pop() for _ in range(used)])
    q = torch.randn(len(lengths), s_q, HEADS, RANK + ROPE, generator=generator)
    return q, cache, table, torch.tensor(lengths, dtype=torch.int32)


def reference(q, cache, table, lengths, scale, causal):
    """Float64 attention of each query over its sequence's cached rows; values are the first RANK columns."""
    outputs, lses = [], []
    for b, length in enumerate(lengths.tolist()):
        rows = torch.cat([cache[block, :, 0] for block in table[b, : -(-length // BLOCK)].tolist()])[:length].double()
        scores = torch.einsum("shd,td->sht", q[b].double(), rows) * scale
        s_q = q.shape[1]
        if causal:
            last = length - s_q + torch.arange(s_q)  # query i sits at position length - s_q + i
            hidden = torch.arange(length)[None, :] > last[:, None]
            scores = scores.masked_fill(hidden[:, None, :], float("-inf"))
        lse = scores.logsumexp(-1)
        outputs.append(torch.einsum("sht,tr->shr", (scores - lse[..., None]).exp(), rows[:, :RANK]))
        lses.append(lse.transpose(0, 1))  # [heads, s_q], FlashMLA's order
    return torch.stack(outputs), torch.stack(lses)


@pytest.mark.parametrize(
    ("lengths", "s_q", "causal", "scale"),
    [([1, 9, 24, 17], 1, True, None), ([5, 16, 30], 2, True, 0.07), ([12, 3], 3, False, 0.2)],
)
def test_flash_mla_with_kvcache_matches_a_float64_reference_on_random_paged_caches(seam, lengths, s_q, causal, scale):
    flash_mla = seam.flash_mla
    q, cache, table, seqlens = paged_cache(lengths, s_q)
    metadata, splits = flash_mla.get_mla_metadata(seqlens, s_q * HEADS, 1)
    out, lse = flash_mla.flash_mla_with_kvcache(
        q, cache, table, seqlens, RANK, metadata, splits, softmax_scale=scale, causal=causal
    )
    expected_out, expected_lse = reference(q, cache, table, seqlens, scale or (RANK + ROPE) ** -0.5, causal)
    assert out.shape == (len(lengths), s_q, HEADS, RANK) and lse.shape == (len(lengths), HEADS, s_q)
    assert out.dtype == q.dtype and lse.dtype == torch.float32
    torch.testing.assert_close(out.double(), expected_out, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(lse.double(), expected_lse, rtol=1e-5, atol=1e-5)


def test_calls_that_do_not_fit_flash_mla_are_refused(seam):
    flash_mla = seam.flash_mla
    q, cache, table, seqlens = paged_cache([4, 8], 1)
    metadata, splits = flash_mla.get_mla_metadata(seqlens, HEADS, 1)
    with pytest.raises(seam.flash_mla.KernelInputError, match="one latent head"):
        flash_mla.get_mla_metadata(seqlens, HEADS, 2)
    with pytest.raises(seam.flash_mla.KernelInputError, match="made for 4 query heads"):
        flash_mla.flash_mla_with_kvcache(q[:, :, :2], cache, table, seqlens, RANK, metadata, splits)
    with pytest.raises(seam.flash_mla.KernelInputError, match="share their width"):
        flash_mla.flash_mla_with_kvcache(q, cache, table, seqlens, RANK + ROPE, metadata, splits)
    with pytest.raises(seam.flash_mla.KernelInputError, match="one latent head"):
        flash_mla.flash_mla_with_kvcache(q, cache.expand(-1, -1, 2, -1), table, seqlens, RANK, metadata, splits)


def test_megatrons_own_decode_and_prefill_run_on_the_installed_functions(seam, monkeypatch):
    """megatron-core's ``Attention.flash_decode_and_prefill`` (MLA config; decode-only, then prefill over the paged
    cache), with the functions ``install_mla_kernels`` put in its module, against the float64 references."""
    from megatron.core.transformer import attention
    from megatron.core.transformer.transformer_config import MLATransformerConfig

    for name in ("flash_mla_with_kvcache", "get_mla_metadata", "HAVE_FMLA", "flash_attn_varlen_func"):
        monkeypatch.setattr(attention, name, getattr(attention, name))  # undone after the test
    assert seam.install_mla_kernels() == ["flash_mla_with_kvcache", "get_mla_metadata", "flash_attn_varlen_func"]
    assert attention.HAVE_FMLA is True and attention.flash_mla_with_kvcache is seam.flash_mla.flash_mla_with_kvcache
    q, cache, table, seqlens = paged_cache([3, 20, 11], 1, seed=1)
    config = MLATransformerConfig(num_layers=1, hidden_size=64, num_attention_heads=HEADS, kv_lora_rank=RANK,
                                  qk_pos_emb_head_dim=ROPE, mscale=1.0, mscale_all_dim=1.0)  # fmt: skip
    layer = types.SimpleNamespace(training=False, config=config, softmax_scale=0.11, batch_invariant_mode=False,
                                  num_attention_heads_per_partition=HEADS)  # fmt: skip
    decode = attention.Attention.flash_decode_and_prefill(
        layer,
        q,
        cache[:, :, 0],
        None,
        1,
        24,
        None,
        None,
        seqlens,
        table,
        True,  # k: [blocks, BLOCK, 576]
    )
    torch.testing.assert_close(decode.double(), reference(q, cache, table, seqlens, 0.11, True)[0], rtol=1e-5,
                               atol=1e-5)  # fmt: skip
    # Prefill: the last 2 tokens of each sequence, over the up-projected cache (keys 576 wide, values RANK).
    starts_q = torch.tensor([0, 2, 4, 6], dtype=torch.int32)
    starts_k = torch.cat([torch.zeros(1, dtype=torch.int32), seqlens.cumsum(0, dtype=torch.int32)])
    queries = torch.randn(6, 1, HEADS, RANK + ROPE, generator=torch.Generator().manual_seed(4))
    keys = cache.expand(-1, -1, HEADS, -1)
    prefill = attention.Attention.flash_decode_and_prefill(
        layer, queries, keys, keys[..., :RANK], 2, 20, starts_q, starts_k, seqlens, table, False
    )
    for b in range(3):
        expected = reference(queries[2 * b : 2 * b + 2].transpose(0, 1), cache, table[b : b + 1], seqlens[b : b + 1],
                             0.11, True)[0]  # fmt: skip
        torch.testing.assert_close(prefill[2 * b : 2 * b + 2].double(), expected.transpose(0, 1), rtol=1e-5,
                                   atol=1e-5)  # fmt: skip


def test_install_leaves_the_real_packages_in_place(seam, monkeypatch):
    from megatron.core.transformer import attention

    for name in ("flash_mla_with_kvcache", "get_mla_metadata", "HAVE_FMLA", "flash_attn_varlen_func"):
        monkeypatch.setattr(attention, name, getattr(attention, name))  # undone after the test
    attention.flash_mla_with_kvcache = real_decode = object()  # what Megatron imported from flash_mla
    assert seam.install_mla_kernels() == ["flash_attn_varlen_func"]
    assert attention.flash_mla_with_kvcache is real_decode
    assert seam.install_mla_kernels() == ["flash_attn_varlen_func"]  # again: the same, harmless
    attention.flash_attn_varlen_func = real_varlen = object()
    assert seam.install_mla_kernels() == []
    assert attention.flash_attn_varlen_func is real_varlen


def test_packages_python_finds_but_cannot_import_get_the_stand_ins(seam, monkeypatch, tmp_path):
    """Second adversarial round: ``flash_mla`` and ``flash_attn`` that Python finds but cannot import (an extension
    built for another torch). Megatron catches the error and binds None; install went by whether Python could find
    the packages, installed nothing, and Megatron's decode called None ("'NoneType' object is not callable")."""
    from megatron.core.transformer import attention
    from megatron.core.transformer.transformer_config import MLATransformerConfig

    for name in ("flash_mla_with_kvcache", "get_mla_metadata", "HAVE_FMLA", "flash_attn_varlen_func"):
        monkeypatch.setattr(attention, name, None)  # what Megatron's import leaves; undone after the test
    monkeypatch.syspath_prepend(str(tmp_path))
    for package, error in (("flash_mla", "ImportError"), ("flash_attn", "OSError")):
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text(f"raise {error}('undefined symbol: _ZN3c10')\n")
    with pytest.raises(ImportError):
        from flash_mla import flash_mla_with_kvcache  # noqa: F401  (Megatron's own import)
    assert seam.install_mla_kernels() == ["flash_mla_with_kvcache", "get_mla_metadata", "flash_attn_varlen_func"]
    q, cache, table, seqlens = paged_cache([3, 9], 1, seed=2)
    config = MLATransformerConfig(num_layers=1, hidden_size=64, num_attention_heads=HEADS, kv_lora_rank=RANK,
                                  qk_pos_emb_head_dim=ROPE, mscale=1.0, mscale_all_dim=1.0)  # fmt: skip
    layer = types.SimpleNamespace(training=False, config=config, softmax_scale=0.11, batch_invariant_mode=False,
                                  num_attention_heads_per_partition=HEADS)  # fmt: skip
    decode = attention.Attention.flash_decode_and_prefill(
        layer, q, cache[:, :, 0], None, 1, 9, None, None, seqlens, table, True
    )
    torch.testing.assert_close(decode.double(), reference(q, cache, table, seqlens, 0.11, True)[0], rtol=1e-5,
                               atol=1e-5)  # fmt: skip


def varlen_reference(q, k, v, starts_q, starts_k, scale, causal):
    """Float64 attention of each sequence's queries over its keys; causal aligns the last query with the last key."""
    outputs = []
    for b in range(len(starts_q) - 1):
        query = q[starts_q[b] : starts_q[b + 1]].double()
        keys, values = (t[starts_k[b] : starts_k[b + 1]].double() for t in (k, v))
        repeat = query.shape[1] // keys.shape[1]
        keys, values = keys.repeat_interleave(repeat, 1), values.repeat_interleave(repeat, 1)
        scores = torch.einsum("qhd,khd->hqk", query, keys) * scale
        if causal:
            shift = keys.shape[0] - query.shape[0]
            later = torch.arange(keys.shape[0])[None, :] > torch.arange(query.shape[0])[:, None] + shift
            scores = scores.masked_fill(later, float("-inf"))
        outputs.append(torch.einsum("hqk,khd->qhd", scores.softmax(-1), values))
    return torch.cat(outputs)


@pytest.mark.parametrize("paged", [False, True])
@pytest.mark.parametrize("kv_heads", [HEADS, 2])
def test_flash_attn_varlen_func_matches_a_float64_reference(seam, paged, kv_heads):
    generator = torch.Generator().manual_seed(3)
    lengths_q, lengths_k = [5, 1, 9], [5, 12, 20]  # a whole prompt, a decode step, a chunk of a longer prompt
    starts_q, starts_k = ([0, *torch.tensor(lengths).cumsum(0).tolist()] for lengths in (lengths_q, lengths_k))
    q = torch.randn(starts_q[-1] + 3, HEADS, 24, generator=generator)  # 3 rows of padding after the sequences
    k = torch.randn(starts_k[-1], kv_heads, 24, generator=generator)
    v = torch.randn(starts_k[-1], kv_heads, 16, generator=generator)  # values narrower than keys, as MLA's
    arguments = dict(cu_seqlens_q=torch.tensor(starts_q, dtype=torch.int32), max_seqlen_q=max(lengths_q),
                     cu_seqlens_k=torch.tensor(starts_k, dtype=torch.int32), max_seqlen_k=max(lengths_k),
                     softmax_scale=0.3, causal=True)  # fmt: skip
    if paged:  # each sequence's keys in shuffled blocks of BLOCK tokens; the rest of the cache is NaN
        blocks_per = [-(-length // BLOCK) for length in lengths_k]
        order = torch.randperm(sum(blocks_per) + 2, generator=generator)
        paged_k = torch.full((len(order), BLOCK, kv_heads, 24), float("nan"))
        paged_v = torch.full((len(order), BLOCK, kv_heads, 16), float("nan"))
        table = torch.full((3, max(blocks_per) + 1), -1, dtype=torch.int32)
        used = 0
        for b, count in enumerate(blocks_per):
            for i in range(count):
                block, rows = (
                    order[used],
                    slice(starts_k[b] + i * BLOCK, min(starts_k[b] + (i + 1) * BLOCK, starts_k[b + 1])),
                )
                paged_k[block, : rows.stop - rows.start], paged_v[block, : rows.stop - rows.start] = k[rows], v[rows]
                table[b, i] = block
                used += 1
        out = seam.flash_mla.flash_attn_varlen_func(q, paged_k, paged_v, block_table=table, **arguments)
    else:
        out = seam.flash_mla.flash_attn_varlen_func(q, k, v, **arguments)
    expected = varlen_reference(q, k, v, starts_q, starts_k, 0.3, causal=True)
    torch.testing.assert_close(out[: starts_q[-1]].double(), expected, rtol=1e-5, atol=1e-5)
    assert out.shape == (starts_q[-1] + 3, HEADS, 16) and not out[starts_q[-1] :].any()


def test_bad_calls_to_the_stand_ins_are_refused_by_name(seam):
    """Each raised AttributeError, IndexError, TypeError, ZeroDivisionError or a torch RuntimeError (on CUDA, a block
    id past the cache is a device-side assert that ends the process's CUDA context)."""
    flash_mla, refused = seam.flash_mla, seam.flash_mla.KernelInputError
    q, cache, table, seqlens = paged_cache([4, 8], 1)
    metadata, splits = flash_mla.get_mla_metadata(seqlens, HEADS, 1)
    keys = torch.randn(4, 2, 8)
    calls = [
        lambda: flash_mla.flash_mla_with_kvcache(q.tolist(), cache, table, seqlens, RANK, metadata, splits),
        lambda: flash_mla.flash_mla_with_kvcache(q, cache, table, seqlens, RANK, None, splits),
        lambda: flash_mla.flash_mla_with_kvcache(q, cache, table, seqlens, str(RANK), metadata, splits),
        lambda: flash_mla.flash_attn_varlen_func(keys, keys[:, :0], keys[:, :0], torch.tensor([0, 4]),
                                                 torch.tensor([0, 4]), 4, 4),
        lambda: flash_mla.flash_attn_varlen_func(keys, keys, keys, torch.tensor([0, 9]), torch.tensor([0, 4]), 9, 4),
        lambda: flash_mla.flash_attn_varlen_func(keys, keys.view(2, 2, 2, 8), keys.view(2, 2, 2, 8),
                                                 torch.tensor([0, 4]), torch.tensor([0, 4]), 4, 4,
                                                 block_table=torch.tensor([[0, 5]], dtype=torch.int32)),
        # Issue 16's second bad-input pass: each raised AttributeError, TypeError, NotImplementedError, ValueError or
        # a torch RuntimeError.
        lambda: flash_mla.flash_mla_with_kvcache(q, cache, None, seqlens, RANK, metadata, splits),
        lambda: flash_mla.flash_mla_with_kvcache(q, cache, table, seqlens, RANK, metadata[None], splits),
        lambda: flash_mla.flash_mla_with_kvcache(q, cache, table, seqlens, RANK, metadata.to("meta"), splits),
        lambda: flash_mla.flash_mla_with_kvcache(q, cache, table, seqlens, RANK, metadata + 0.5, splits),
        lambda: flash_mla.get_mla_metadata(seqlens, str(HEADS), 1),
        lambda: flash_mla.flash_attn_varlen_func(keys, keys.half(), keys.half(), torch.tensor([0, 4]),
                                                 torch.tensor([0, 4]), 4, 4),
        lambda: flash_mla.flash_attn_varlen_func(keys, keys[..., :5], keys, torch.tensor([0, 4]), torch.tensor([0, 4]),
                                                 4, 4),
        lambda: flash_mla.flash_attn_varlen_func(*(keys.long(),) * 3, torch.tensor([0, 4]), torch.tensor([0, 4]), 4, 4),
        lambda: flash_mla.flash_attn_varlen_func(*(keys[..., :0],) * 3, torch.tensor([0, 4]), torch.tensor([0, 4]), 4,
                                                 4),
        # The third pass: a paged cache of 0-token pages raised ZeroDivisionError; dropout, a window or the
        # probabilities NotImplementedError (a window of None TypeError); a causal of "yes" ran as causal; FlashMLA's
        # metadata took cache_seqlens of None, and 2**31 query heads raised torch's int32 overflow error.
        lambda: flash_mla.flash_attn_varlen_func(keys, keys.view(2, 2, 2, 8)[:, :0], keys.view(2, 2, 2, 8)[:, :0],
                                                 torch.tensor([0, 4]), torch.tensor([0, 4]), 4, 4,
                                                 block_table=torch.tensor([[0, 1]], dtype=torch.int32)),
        lambda: flash_mla.flash_attn_varlen_func(keys, keys, keys, torch.tensor([0, 4]), torch.tensor([0, 4]), 4, 4,
                                                 dropout_p=0.1),
        lambda: flash_mla.flash_attn_varlen_func(keys, keys, keys, torch.tensor([0, 4]), torch.tensor([0, 4]), 4, 4,
                                                 window_size=None),
        lambda: flash_mla.flash_attn_varlen_func(keys, keys, keys, torch.tensor([0, 4]), torch.tensor([0, 4]), 4, 4,
                                                 return_attn_probs=True),
        lambda: flash_mla.flash_attn_varlen_func(keys, keys, keys, torch.tensor([0, 4]), torch.tensor([0, 4]), 4, 4,
                                                 causal="yes"),
        lambda: flash_mla.get_mla_metadata(None, HEADS, 1),
        lambda: flash_mla.get_mla_metadata(seqlens, 2**31, 1),
    ]  # fmt: skip
    for call in calls:
        with pytest.raises(refused):
            call()


def test_flash_attn_varlen_func_keeps_q_dtype_under_autocast(seam):
    """Under torch.autocast the stand-in's scaled_dot_product_attention ran in bfloat16; flash-attn computes in its
    inputs' dtype (it takes no float32, the stand-in does)."""
    q, k, v = (torch.randn(5, HEADS, 8, generator=torch.Generator().manual_seed(seed)) for seed in (1, 2, 3))
    offsets = torch.tensor([0, 2, 5])
    expected = seam.flash_mla.flash_attn_varlen_func(q, k, v, offsets, offsets, 3, 3, causal=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = seam.flash_mla.flash_attn_varlen_func(q, k, v, offsets, offsets, 3, 3, causal=True)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, expected, rtol=0, atol=0)


def test_flash_attn_varlen_func_ninth_round_inputs(seam):
    """Issue 16's ninth bad-input round: a paged call whose sequences use no block (every one of 0 keys, a block
    table of 0 columns) raised torch's RuntimeError (the smallest block id of an empty table) where the same call
    unpaged returns zeros; a ``dropout_p`` (or a ``window_size`` side) of several values (a NumPy array, a tensor)
    raised NumPy's ValueError or torch's RuntimeError ("truth value ... is ambiguous")."""
    varlen, refused = seam.flash_mla.flash_attn_varlen_func, seam.flash_mla.KernelInputError
    q = torch.randn(3, HEADS, 8, generator=torch.Generator().manual_seed(1))
    offsets_q, no_keys = torch.tensor([0, 3], dtype=torch.int32), torch.tensor([0, 0], dtype=torch.int32)
    unpaged = varlen(q, q[:0], q[:0], offsets_q, no_keys, 3, 0, causal=True)
    pages = torch.randn(2, BLOCK, HEADS, 8)
    paged = varlen(q, pages, pages, offsets_q, no_keys, 3, 0, causal=True,
                   block_table=torch.zeros(1, 0, dtype=torch.int32))  # fmt: skip
    torch.testing.assert_close(paged, unpaged, rtol=0, atol=0)
    offsets = torch.tensor([0, 3])
    for odd in ({"dropout_p": np.zeros(2)}, {"dropout_p": torch.zeros(2)}, {"window_size": (np.full(2, -1), -1)}):
        with pytest.raises(refused):
            varlen(q, q, q, offsets, offsets, 3, 3, **odd)
