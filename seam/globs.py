"""Glob patterns as ruff reads them (its ``globset`` without ``literal_separator``; ``{a,b}`` and ``\\`` escapes
included, and a pattern globset refuses is a :class:`GlobError`): a pattern matches a path
when it matches the whole project-relative path, where ``*`` and ``?`` cross ``/`` too (``fork/*.py`` covers
``fork/sub/a.py``), or, for exclude-like sets, when a pattern without ``/`` matches the file or folder name
(``build`` anywhere; ``./build`` only at the root). ``include`` is matched against the path only."""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable
from typing import Literal

# Characters that make a pattern more than a plain name (`}` too: alone it is an error, found by translating).
_WILDCARD = re.compile(r"[*?\[{}\\]")


class GlobError(ValueError):
    """A pattern ruff's globset refuses, with its reason in globset's words."""


def _translate(pattern: str) -> str:
    """The regular expression of one glob, as globset parses it: ``**/`` any folders, ``*`` and ``?`` any
    characters (``/`` too), ``[...]`` a class (``!`` or ``^`` negates; a leading ``]`` and a trailing ``-`` are
    members), ``{a,b}`` alternatives (nested too; an empty one is dropped, as globset does: ``{,x/}e.py`` is
    ``x/e.py`` only), ``\\`` escapes the next character."""
    # The open `{` groups, each a list of branches, each a list of regex pieces; the pattern itself is the first.
    groups: list[list[list[str]]] = [[[]]]
    i = 0
    while i < len(pattern):
        char, branch = pattern[i], groups[-1][-1]
        if pattern.startswith("**/", i) and (i == 0 or pattern[i - 1] == "/"):
            branch.append("(?:.*/)?")
            i += 3
            continue
        if char == "*":
            branch.append(".*")
            i += 2 if pattern.startswith("**", i) else 1
            continue
        if char == "[":
            text, i = _character_class(pattern, i)
            branch.append(text)
            continue
        if char == "\\":
            if i + 1 == len(pattern):
                raise GlobError("dangling '\\'")
            i += 1
            branch.append(re.escape(pattern[i]))
        elif char == "?":
            branch.append(".")
        elif char == "{":
            groups.append([[]])
        elif char == "," and len(groups) > 1:
            groups[-1].append([])
        elif char == "}":
            if len(groups) == 1:
                raise GlobError("unopened alternate group; missing '{'")
            alternatives = ["".join(pieces) for pieces in groups.pop() if pieces]
            if alternatives:
                groups[-1][-1].append("(?:" + "|".join(alternatives) + ")")
        else:
            branch.append(re.escape(char))
        i += 1
    if len(groups) > 1:
        raise GlobError("unclosed alternate group; missing '}'")
    return "".join(groups[0][0])


def _character_class(pattern: str, start: int) -> tuple[str, int]:
    """The class opening at ``pattern[start]`` as a regular expression, and the index after it."""
    i = start + 1
    negated = i < len(pattern) and pattern[i] in "!^"
    i += negated
    members_start = i
    if i < len(pattern) and pattern[i] == "]":  # a `]` first is a member
        i += 1
    end = pattern.find("]", i)
    if end < 0:
        raise GlobError("unclosed character class; missing ']'")
    members = pattern[members_start:end]
    ranges = re.finditer(r"(.)-(.)", members, re.DOTALL)
    bad = next((r for r in ranges if r.group(1) > r.group(2)), None)
    if bad is not None:
        raise GlobError(f"invalid range; '{bad.group(1)}' > '{bad.group(2)}'")
    body = "".join("-" if member == "-" else re.escape(member) for member in members)
    return "[" + "^" * negated + body + "]", end + 1


def _anchored(pattern: str) -> str:
    """The project-relative path a pattern names, as ruff joins it to the project root and normalizes it."""
    return posixpath.normpath(pattern.strip())


# Which patterns are also matched against a path's name: those without `/` (ruff's exclude), none (its include),
# or all (its per-file-ignores, where an alternative without `/` can match a name: `{gen/*,c}.py` covers `x/c.py`).
NamePatterns = Literal["without-slash", "never", "always"]


class GlobSet:
    """A set of patterns, each matched against the whole path and (``names``) a path's name (see the module)."""

    def __init__(self, patterns: Iterable[str], names: NamePatterns = "without-slash") -> None:
        self.patterns = tuple(patterns)
        name_patterns, paths = [], []
        # Plain names (".git") and suffixes ("*.py") skip the regex: discovery asks once per directory entry.
        # Their anchored form (".git" at the root, ".*\.py") matches no path their name form does not.
        self._literal_names: set[str] = set()
        suffixes: list[str] = []
        for raw in self.patterns:
            pattern = raw.strip()
            as_name = names == "always" or (names == "without-slash" and "/" not in pattern)
            if as_name and "/" not in pattern and not _WILDCARD.search(pattern):
                self._literal_names.add(pattern)
            elif as_name and "/" not in pattern and pattern.startswith("*") and not _WILDCARD.search(pattern[1:]):
                suffixes.append(pattern[1:])
            else:
                if as_name:
                    name_patterns.append(_translate(pattern))
                paths.append(_translate(_anchored(pattern)))
        self._suffixes = tuple(suffixes)
        # DOTALL: a wildcard matches any character of a name, a newline too, as globset's do.
        self._name = re.compile("|".join(name_patterns), re.DOTALL) if name_patterns else None
        self._path = re.compile("|".join(paths), re.DOTALL) if paths else None

    def matches(self, relpath: str) -> bool:
        """Does ``relpath`` (project-relative, ``/``-separated) itself match?"""
        name = relpath.rsplit("/", 1)[-1]
        if name in self._literal_names or (self._suffixes and name.endswith(self._suffixes)):
            return True
        if self._path is not None and self._path.fullmatch(relpath):
            return True
        return self._name is not None and self._name.fullmatch(name) is not None

    def matches_within(self, relpath: str) -> bool:
        """Does ``relpath`` or any directory above it match (an excluded folder excludes its files)?"""
        parts = relpath.split("/")
        return any(self.matches("/".join(parts[: i + 1])) for i in range(len(parts)))
