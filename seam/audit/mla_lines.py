"""Which lines of a Python file touch the MLA vocabulary (code only: names and strings, not comments)."""

from __future__ import annotations

import io
import re
import tokenize
from collections.abc import Sequence

from seamfix.vocabulary.names import NameClassifier

_WORD = re.compile(r"(\.?)\b([A-Za-z_][A-Za-z0-9_]*)\b")


Position = tuple[int, int]  # 1-based line, 0-based UTF-8 byte column (as ``ast`` reports)


def mla_names_by_line(
    source: bytes,
    names: NameClassifier,
    seam_names: frozenset[str] = frozenset(),
    seam_calls: Sequence[tuple[Position, Position]] = (),
) -> dict[int, list[str]]:
    """Line number -> the MLA names and strings on it (one entry per occurrence), leaving out ``seam_names``,
    attributes read through them (``mla_seam.multi_latent_attention``) and anything inside ``seam_calls`` (a call into
    the adapter, with its arguments, is the seam at work). Falls back to a word scan when the file does not
    tokenize (a syntax error mid-change must not hide a leak)."""
    found: dict[int, list[str]] = {}
    try:
        previous = before_previous = None
        for token in tokenize.tokenize(io.BytesIO(source).readline):
            hit = None
            if seam_calls and _inside(token, seam_calls):
                pass
            elif token.type == tokenize.NAME:
                is_attribute = previous is not None and previous.type == tokenize.OP and previous.string == "."
                through_seam = is_attribute and before_previous is not None and before_previous.string in seam_names
                is_mla = names.is_attribute if is_attribute else names.is_name
                if token.string not in seam_names and not through_seam and is_mla(token.string):
                    hit = token.string
            elif token.type == tokenize.STRING:
                value = _string_value(token.string)
                hit = token.string if value is not None and names.is_string(value) else None
            if hit is not None:
                for line in range(token.start[0], token.end[0] + 1):
                    found.setdefault(line, []).append(hit)
            if token.type not in (tokenize.NL, tokenize.COMMENT):
                before_previous, previous = previous, token
    except (tokenize.TokenError, SyntaxError, UnicodeDecodeError):
        return _scan_words(source, names, seam_names)
    return found


def _inside(token: tokenize.TokenInfo, spans: Sequence[tuple[Position, Position]]) -> bool:
    line, column = token.start
    start = (line, len(token.line[:column].encode("utf-8")))
    return any(first <= start < last for first, last in spans)


def _string_value(literal: str) -> str | None:
    body = literal.lstrip("rRbBuUfF")
    for quote in ('"""', "'''", '"', "'"):
        if body.startswith(quote) and body.endswith(quote) and len(body) >= 2 * len(quote):
            return body[len(quote) : -len(quote)]
    return None


def _scan_words(source: bytes, names: NameClassifier, seam_names: frozenset[str]) -> dict[int, list[str]]:
    found: dict[int, list[str]] = {}
    for number, line in enumerate(source.decode("utf-8", errors="replace").splitlines(), start=1):
        code = line.split("#", 1)[0]
        words = [(dot, word) for dot, word in _WORD.findall(code) if word not in seam_names]
        hits = [word for dot, word in words if (names.is_attribute if dot else names.is_name)(word)]
        if hits:
            found[number] = hits
    return found
