"""The byte-level prefilter: which files can hold MLA code at all, and on which lines."""

from __future__ import annotations

import bisect
import re
import string

SUPPRESSION_ANCHOR = b"seamfix:"

# One pass that lower-cases and maps "-" to "_", so `--q-lora-rank` and `q_lora_rank` share an anchor.
_FOLD = bytes.maketrans(string.ascii_uppercase.encode() + b"-", string.ascii_lowercase.encode() + b"_")


def fold(data: bytes) -> bytes:
    return data.translate(_FOLD)


class Prefilter:
    """Substring search for the vocabulary's anchors in folded bytes: no decoding, no parsing."""

    def __init__(self, anchors: list[bytes]) -> None:
        folded = {fold(anchor) for anchor in anchors}
        self.anchors = sorted(a for a in folded if not any(b != a and b in a for b in folded))
        self._pattern = re.compile(b"|".join(re.escape(anchor) for anchor in self.anchors))

    def is_candidate(self, folded: bytes) -> bool:
        return any(anchor in folded for anchor in self.anchors)

    def anchor_lines(self, folded: bytes) -> list[int]:
        """Sorted 1-based line numbers on which an anchor starts."""
        line_starts = [0]
        line_starts.extend(match.end() for match in re.finditer(rb"\r\n?|\n", folded))
        lines = {bisect.bisect_right(line_starts, match.start()) for match in self._pattern.finditer(folded)}
        return sorted(lines)
