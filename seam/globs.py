"""Glob patterns as ruff reads them: ``name`` matches any path component, ``dir/*.py`` is project-relative."""

from __future__ import annotations

import re
from collections.abc import Iterable

_WILDCARD = re.compile(r"[*?\[]")


def _translate(pattern: str) -> str:
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
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


class GlobSet:
    """A set of patterns; a pattern without ``/`` matches a file or directory name anywhere."""

    def __init__(self, patterns: Iterable[str]) -> None:
        self.patterns = tuple(patterns)
        names, paths = [], []
        # Plain names (".git") and suffixes ("*.py") skip the regex: discovery asks once per directory entry.
        self._literal_names: set[str] = set()
        suffixes: list[str] = []
        for raw in self.patterns:
            pattern = raw.strip().removeprefix("./").lstrip("/").rstrip("/")
            if "/" in pattern:
                paths.append(_translate(pattern))
            elif not _WILDCARD.search(pattern):
                self._literal_names.add(pattern)
            elif pattern.startswith("*") and not _WILDCARD.search(pattern[1:]):
                suffixes.append(pattern[1:])
            else:
                names.append(_translate(pattern))
        self._suffixes = tuple(suffixes)
        self._name = re.compile("|".join(names)) if names else None
        self._path = re.compile("|".join(paths)) if paths else None

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
