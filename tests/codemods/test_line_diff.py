"""The line diff that tells apply's formatting which lines it wrote: a valid diff on any pair of texts, and
the lines apply changed in a module of thousands of repeated builders, exactly."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from seamfix.codemods.line_diff import followed_line, line_opcodes

LINES = st.lists(st.sampled_from(["a", "b", "c", "return x", "", "    pass", "def f():"]), max_size=40)


def replay(old: list[str], new: list[str]) -> list[str]:
    """``new`` rebuilt from ``old`` and the opcodes, checking each opcode's shape on the way."""
    rebuilt, at_old, at_new = [], 0, 0
    for tag, i1, i2, j1, j2 in line_opcodes(old, new):
        assert (i1, j1) == (at_old, at_new)
        assert {"equal": i2 - i1 == j2 - j1 > 0, "insert": i1 == i2 and j2 > j1}.get(tag, i2 > i1 or j2 > j1)
        if tag == "equal":
            assert old[i1:i2] == new[j1:j2]
        elif tag == "delete":
            assert j1 == j2
        rebuilt += new[j1:j2]
        at_old, at_new = i2, j2
    assert (at_old, at_new) == (len(old), len(new))
    return rebuilt


@given(LINES, LINES)
def test_any_two_texts_get_a_valid_diff(old, new):
    assert replay(old, new) == new


@given(LINES, st.lists(st.tuples(st.integers(0, 40), st.sampled_from(["x", "a", ""])), max_size=6))
def test_small_edits_of_a_text_get_a_valid_diff(old, edits):
    new = list(old)
    for position, line in edits:
        new.insert(min(position, len(new)), line)
    assert replay(old, new) == new


def test_the_lines_apply_changed_among_thousands_of_repeated_builders():
    old, new = [], []
    for i in range(3000):
        old += [f"def build_{i}(config):", "    if config.multi_latent_attention:", "        return 1", "    return 0"]
        new += [f"def build_{i}(config):", "    if mla_seam.multi_latent_attention(config):", "        return 1"]
        new += ["    return 0"]
    changed = [(i1, j1) for tag, i1, i2, j1, j2 in line_opcodes(old, new) if tag != "equal"]
    assert changed == [(4 * i + 1, 4 * i + 1) for i in range(3000)]


@given(LINES, LINES)
def test_a_followed_line_is_the_same_line_where_it_is_unchanged_and_always_inside_the_new_text(old, new) -> None:
    opcodes = line_opcodes(old, new)
    for line in range(1, len(old) + 1):
        moved = followed_line(opcodes, line)
        assert 1 <= moved <= max(len(new), 1)
        if any(tag == "equal" and i1 < line <= i2 for tag, i1, i2, _, _ in opcodes):
            assert new[moved - 1] == old[line - 1]


def test_lines_follow_an_import_inserted_above_them() -> None:
    old = ["def f(config):", "    if config.x:", "        return 1"]
    new = ["import mla_seam", "", *old[:1], "    if mla_seam.x(config):", old[2]]
    assert [followed_line(line_opcodes(old, new), line) for line in (1, 2, 3)] == [3, 4, 5]
