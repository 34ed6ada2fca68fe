"""Glob patterns as ruff reads them (its ``globset`` without ``literal_separator``): a pattern matches a path
when it matches the whole project-relative path, where ``*`` and ``?`` cross ``/`` too (``fork/*.py`` covers
``fork/sub/a.py``), or, for exclude-like sets, when a pattern without ``/`` matches the file or folder name
(``build`` anywhere; ``./build`` only at the root). ``include`` is matched against the path only."""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable

_WILDCARD = re.compile(r"[*?\[]")


def _translate(pattern: str) -> str:
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**/", i) and (i == 0 or pattern[i - 1] == "/"):
            out.append("(?:.*/)?")
            i += 3
        elif pattern[i] == "*":
            out.append(".*")
            i += 2 if pattern.startswith("**", i) else 1
        elif pattern[i] == "?":
            out.append(".")
            i += 1
        elif pattern[i] == "[" and "]" in pattern[i + 1 :]:
            end = pattern.index("]", i + 1)
            body = pattern[i + 1 : end].replace("\\", "\\\\")
            out.append("[^" + body[1:] + "]" if body.startswith("!") else "[" + body + "]")
            i = end + 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return "".join(out)


def _anchored(pattern: str) -> str:
    """The project-relative path a pattern names, as ruff joins it to the project root and normalizes it."""
    return posixpath.normpath(pattern.strip())


class GlobSet:
    """A set of patterns, each matched against the whole path and (``names``) a path's name (see the module)."""

    def __init__(self, patterns: Iterable[str], names: bool = True) -> None:
        self.patterns = tuple(patterns)
        name_patterns, paths = [], []
        # Plain names (".git") and suffixes ("*.py") skip the regex: discovery asks once per directory entry.
        # Their anchored form (".git" at the root, ".*\.py") matches no path their name form does not.
        self._literal_names: set[str] = set()
        suffixes: list[str] = []
        for raw in self.patterns:
            pattern = raw.strip()
            if names and "/" not in pattern and not _WILDCARD.search(pattern):
                self._literal_names.add(pattern)
            elif names and "/" not in pattern and pattern.startswith("*") and not _WILDCARD.search(pattern[1:]):
                suffixes.append(pattern[1:])
            else:
                if names and "/" not in pattern:
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
