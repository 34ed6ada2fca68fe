"""Which lines of a Python file are part of an MLA decision (or another site lint reports), with the MLA names
and strings of each site: what ``seamfix audit`` compares between the two sides of a hunk.

The sites are the shared analysis's (``FileChecker.sites``): a store into a config dict, a docstring or a log
message that mentions MLA is no decision and no leak. Every line of a site carries the site's names, so that
a hunk that rewrites a multi-line decision on a line with no MLA word still changes that decision. Text that
does not parse (a syntax error mid-change) has no sites: there every MLA name and string counts, so that a
broken file never hides a leak."""

from __future__ import annotations

import ast
import io
import re
import tokenize
from collections.abc import Sequence

from seamfix.audit.feeders import feeding_lines
from seamfix.findings import Finding
from seamfix.vocabulary.names import NameClassifier

_WORD = re.compile(r"(\.?)\b([A-Za-z_][A-Za-z0-9_]*)\b")


Position = tuple[int, int]  # 1-based line, 0-based UTF-8 byte column (as ``ast`` reports)
_Token = tuple[Position, str]  # where an MLA name or string starts (1-based line, 0-based character), and it


def mla_names_by_line(
    source: bytes,
    names: NameClassifier,
    sites: Sequence[Finding] | None,
    seam_names: frozenset[str] = frozenset(),
    seam_calls: Sequence[tuple[Position, Position]] = (),
) -> dict[int, list[str]]:
    """Line number -> the MLA names and strings of the sites over it (one entry per occurrence), leaving out
    ``seam_names``, attributes read through them (``mla_seam.multi_latent_attention``) and anything inside
    ``seam_calls`` (a call into the adapter, with its arguments, is the seam at work). A site that names no MLA
    word itself (``if use_flag:``, an alias) is named by its text. ``sites`` None: the file does not parse, and every
    line with an MLA name or string counts."""
    if sites == []:
        return {}
    tokens = _mla_tokens(source, names, seam_names, seam_calls)
    found: dict[int, list[str]] = {}
    if sites is None:
        if tokens is None:
            return _scan_words(source, names, seam_names)
        for (line, _), hit in tokens:
            found.setdefault(line, []).append(hit)
        return found
    for site in sites:
        start, end = (site.line, site.column - 1), (site.end_line, site.end_column - 1)
        words = [hit for where, hit in tokens or () if start <= where < end] or [site.content]
        for line in range(site.line, site.end_line + 1):
            found.setdefault(line, []).extend(words)
    feeding = feeding_lines(ast.parse(source), sites)
    for (line, _), hit in tokens or ():
        if line in feeding:
            found.setdefault(line, []).append(hit)
    return found


def _mla_tokens(
    source: bytes, names: NameClassifier, seam_names: frozenset[str], seam_calls: Sequence[tuple[Position, Position]]
) -> list[_Token] | None:
    """Every MLA name and string of the code (not comments), with where it starts (each line of a
    multi-line string gets it); None when the file does not tokenize."""
    found: list[_Token] = []
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
                found.append((token.start, hit))
                found += [((line, 0), hit) for line in range(token.start[0] + 1, token.end[0] + 1)]
            if token.type not in (tokenize.NL, tokenize.COMMENT):
                before_previous, previous = previous, token
    except (tokenize.TokenError, SyntaxError, UnicodeDecodeError):
        return None
    return found


_LAYOUT = frozenset({tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.ENCODING, tokenize.ENDMARKER})
"""Tokens that change no code. INDENT and DEDENT do: moving a decision into another block changes it. (Only
where a side does not parse: elsewhere audit compares syntax trees, ``layout``.)"""


def code_by_line(source: bytes) -> dict[int, list[str]] | None:
    """Line number -> the code tokens over it (a token spanning lines is on each), without comments and line
    breaks: two hunks whose lines hold the same tokens differ only in layout. None: the source does not tokenize."""
    found: dict[int, list[str]] = {}
    try:
        for token in tokenize.tokenize(io.BytesIO(source).readline):
            if token.type not in _LAYOUT:
                for line in range(token.start[0], token.end[0] + 1):
                    found.setdefault(line, []).append(token.string)
    except (tokenize.TokenError, SyntaxError, UnicodeDecodeError):
        return None
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
