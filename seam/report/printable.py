"""Paths and messages as one line of output: a path holding a control character (a newline, a tab) is quoted as
git quotes it (``"nl\\nx.py"``), so that each finding, hunk or error stays on its own line; every other path is
printed as is."""

from __future__ import annotations

import json
import re

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def printable(path: str) -> str:
    return json.dumps(path, ensure_ascii=False) if _CONTROL.search(path) else path


def one_line(message: str) -> str:
    """A message kept to one line: each control character written as its escape (``\\n``, ``\\t``, ``\\u0001``)."""
    return _CONTROL.sub(lambda match: json.dumps(match[0])[1:-1], message)


def markdown_code(text: str) -> str:
    """``text`` as a code span that also keeps a markdown table's cells: fenced by more backticks than any run
    inside it (spaced from a backtick at either end, as CommonMark asks), with ``|`` escaped (GitHub splits table
    cells at a bare ``|`` even in code)."""
    text = printable(text).replace("|", "\\|")
    fence = "`" * (max((len(run) for run in re.findall("`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"
