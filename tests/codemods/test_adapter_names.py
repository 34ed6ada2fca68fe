"""The names apply gives adapter functions are made of whole words of what they are named after."""

from __future__ import annotations

import pytest

from seamfix.codemods.adapter_function import identifier

LONG_NAMES = [
    # MT-MegatronLM's moved arm: `query_projection_size = ...` in `compute_weight_and_optimizer_memory`
    "mla_compute_weight_and_optimizer_memory_query_projection_size",
    "mla_" + "_".join(["word"] * 20),
    "mla_" + "x" * 80,  # no word boundary within reach: cut where it must be
]


@pytest.mark.parametrize("text", LONG_NAMES)
def test_a_long_name_is_cut_at_a_word_boundary(text: str) -> None:
    name = identifier(text)
    assert name.isidentifier() and len(name) <= 60
    words = text.split("_")
    if len(words[0]) + 1 + len(words[1]) <= 60:  # a boundary within reach: whole words only
        kept = name.split("_")
        assert kept == words[: len(kept)], name
    else:
        assert text.startswith(name)


def test_a_name_within_the_limit_is_kept_whole() -> None:
    assert identifier("mla_compute_weight_and_optimizer_memory_kv_projection_size") == (
        "mla_compute_weight_and_optimizer_memory_kv_projection_size"
    )
