"""Line opcodes between two versions of a file, in about linear time on what apply writes.

``difflib.SequenceMatcher`` alone is quadratic on a module whose many lines repeat (thousands of builders
with the same ``return`` lines, once apply has rewritten them): one file with 2,000 rewritten sites took
seconds. This is a patience diff: lines that occur exactly once on each side anchor the alignment (their
longest increasing run, in order), and ``difflib`` aligns only the gaps between anchors, recursing into a gap
while it still has anchors of its own. Any alignment it returns is a valid diff: equal spans are equal lines.
"""

from __future__ import annotations

import bisect
import difflib
from collections import Counter

Opcode = tuple[str, int, int, int, int]  # as difflib.SequenceMatcher.get_opcodes(): tag, a from/to, b from/to


def line_opcodes(old: list[str], new: list[str]) -> list[Opcode]:
    """``difflib``-style opcodes turning ``old`` into ``new``, adjacent spans of one tag merged."""
    spans: list[Opcode] = []
    pending: list[tuple] = [("gap", 0, len(old), 0, len(new))]
    while pending:  # a stack: gaps to align and spans to emit, popped in file order
        item = pending.pop()
        if item[0] == "emit":
            spans.append(item[1])
            continue
        _, a_lo, a_hi, b_lo, b_hi = item
        while a_lo < a_hi and b_lo < b_hi and old[a_lo] == new[b_lo]:
            spans.append(("equal", a_lo, a_lo + 1, b_lo, b_lo + 1))
            a_lo, b_lo = a_lo + 1, b_lo + 1
        a_end, b_end = a_hi, b_hi
        while a_lo < a_hi and b_lo < b_hi and old[a_hi - 1] == new[b_hi - 1]:
            a_hi, b_hi = a_hi - 1, b_hi - 1
        middle: list[tuple] = []
        anchors = _anchors(old, a_lo, a_hi, new, b_lo, b_hi)
        if anchors:
            for a, b in anchors:
                middle += [("gap", a_lo, a, b_lo, b), ("emit", ("equal", a, a + 1, b, b + 1))]
                a_lo, b_lo = a + 1, b + 1
            middle.append(("gap", a_lo, a_hi, b_lo, b_hi))
        else:
            matcher = difflib.SequenceMatcher(None, old[a_lo:a_hi], new[b_lo:b_hi], autojunk=False)
            middle = [
                ("emit", (tag, a_lo + i1, a_lo + i2, b_lo + j1, b_lo + j2))
                for tag, i1, i2, j1, j2 in matcher.get_opcodes()
            ]
        middle.append(("emit", ("equal", a_hi, a_end, b_hi, b_end)))
        pending.extend(reversed(middle))
    return _merged(spans)


def _anchors(old: list[str], a_lo: int, a_hi: int, new: list[str], b_lo: int, b_hi: int) -> list[tuple[int, int]]:
    """Positions of the lines unique on both sides of the gap, longest run increasing on both sides."""
    old_counts = Counter(old[a_lo:a_hi])
    new_positions: dict[str, int] = {}
    new_counts = Counter(new[b_lo:b_hi])
    for j in range(b_lo, b_hi):
        if new_counts[new[j]] == 1 and old_counts[new[j]] == 1:
            new_positions[new[j]] = j
    pairs = [(i, new_positions[old[i]]) for i in range(a_lo, a_hi) if old[i] in new_positions]
    return _longest_increasing(pairs)


def _longest_increasing(pairs: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The longest subsequence of ``pairs`` (increasing in their first item) increasing in their second."""
    tails: list[int] = []  # the smallest second item ending a run of each length
    tail_index: list[int] = []
    previous: list[int] = []
    for index, (_, b) in enumerate(pairs):
        length = bisect.bisect_left(tails, b)
        if length == len(tails):
            tails.append(b)
            tail_index.append(index)
        else:
            tails[length], tail_index[length] = b, index
        previous.append(tail_index[length - 1] if length else -1)
    run = []
    index = tail_index[-1] if tail_index else -1
    while index != -1:
        run.append(pairs[index])
        index = previous[index]
    return run[::-1]


def _merged(spans: list[Opcode]) -> list[Opcode]:
    """The spans without empty ones, neighbours of one tag joined."""
    result: list[Opcode] = []
    for span in spans:
        tag, i1, i2, j1, j2 = span
        if i1 == i2 and j1 == j2:
            continue
        if result and result[-1][0] == tag and result[-1][2] == i1 and result[-1][4] == j1:
            result[-1] = (tag, result[-1][1], i2, result[-1][3], j2)
        else:
            result.append(span)
    return result


def followed_line(opcodes: list[Opcode], line: int) -> int:
    """Where 1-based ``line`` of the old version is in the new one: the same line where it is unchanged,
    else the line at the same offset in what replaced it (its last line, or the line after a deletion; the
    last line when the deletion ends the file)."""
    index = line - 1
    last = opcodes[-1][4] if opcodes else 0
    for _, a_lo, a_hi, b_lo, b_hi in opcodes:
        if a_lo <= index < a_hi:
            return max(1, min(b_lo + min(index - a_lo, max(b_hi - b_lo - 1, 0)) + 1, last))
    return line
