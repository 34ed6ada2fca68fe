"""Reading ``git diff -U0 -M``: which files changed, how, and which old/new lines each hunk touches."""

from __future__ import annotations

import ast
import difflib
import re
from dataclasses import dataclass, field

_SUBMODULE = re.compile(r"^(?:(?:new|deleted) file mode 160000|index \S+ 160000)$")
_SYMLINK = re.compile(r"^(?:(?:new|deleted) file mode|(?:old|new) mode|index \S+) 120000$")
_HUNK = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")


@dataclass
class Hunk:
    old_start: int
    old_count: int
    new_start: int
    new_count: int

    @property
    def old_lines(self) -> range:
        return range(self.old_start, self.old_start + self.old_count)

    @property
    def new_lines(self) -> range:
        return range(self.new_start, self.new_start + self.new_count)


@dataclass
class FileChange:
    """One file of the diff; ``old_path`` is None when added, ``new_path`` None when deleted."""

    old_path: str | None = None
    new_path: str | None = None
    binary: bool = False
    submodule: bool = False  # a gitlink (mode 160000): a commit of another repository, not a file
    symlink: bool = False  # a symbolic link on a side: git diffs the path it names, lint reads what it leads to
    unchanged: bool = False  # left as it was, listed for what a change of configuration did to it
    hunks: list[Hunk] = field(default_factory=list)

    @property
    def path(self) -> str:
        return self.new_path or self.old_path or ""

    @property
    def status(self) -> str:
        if self.unchanged:
            return "unchanged"
        if self.old_path is None:
            return "added"
        if self.new_path is None:
            return "deleted"
        return "renamed" if self.old_path != self.new_path else "modified"


def parse_diff(text: str) -> list[FileChange]:
    changes: list[FileChange] = []
    current: FileChange | None = None
    for line in text.splitlines():
        if line.startswith("diff --git "):
            current = FileChange(*_paths_of_header(line[len("diff --git ") :]))
            changes.append(current)
            continue
        if current is None:
            continue
        current.symlink |= bool(_SYMLINK.match(line))
        if line.startswith("rename from "):
            current.old_path = _unquote(line[len("rename from ") :])
        elif line.startswith("rename to "):
            current.new_path = _unquote(line[len("rename to ") :])
        elif _SUBMODULE.match(line):
            current.submodule = True
            if line.startswith("new file mode"):
                current.old_path = None
            elif line.startswith("deleted file mode"):
                current.new_path = None
        elif line.startswith("new file mode"):
            current.old_path = None
        elif line.startswith("deleted file mode"):
            current.new_path = None
        elif line.startswith("--- "):
            current.old_path = _side(line[4:], "a/")
        elif line.startswith("+++ "):
            current.new_path = _side(line[4:], "b/")
        elif line.startswith("Binary files "):
            current.binary = True
        elif match := _HUNK.match(line):
            old_start, old_count, new_start, new_count = match.groups()
            current.hunks.append(
                Hunk(
                    int(old_start),
                    1 if old_count is None else int(old_count),
                    int(new_start),
                    1 if new_count is None else int(new_count),
                )
            )
    return changes


def hunks_between(old: bytes, new: bytes) -> list[Hunk]:
    """The zero-context hunks ``git diff -U0`` shows between two versions of a file, for the files git calls
    binary and shows none of (a NUL byte, a ``-diff`` attribute); lines end at ``\\n``, as git's do."""
    old_lines, new_lines = _LINE.findall(old), _LINE.findall(new)
    matcher = difflib.SequenceMatcher(None, old_lines, new_lines, autojunk=False)
    return [
        # git numbers an empty side by the line before it
        Hunk(
            old_start + (old_end > old_start),
            old_end - old_start,
            new_start + (new_end > new_start),
            new_end - new_start,
        )
        for tag, old_start, old_end, new_start, new_end in matcher.get_opcodes()
        if tag != "equal"
    ]


_LINE = re.compile(rb"[^\n]*\n|[^\n]+\Z")


def _side(raw: str, prefix: str) -> str | None:
    raw = raw.rstrip("\t")
    if raw == "/dev/null":
        return None
    return _unquote(raw).removeprefix(prefix)


def _unquote(path: str) -> str:
    """git C-quotes paths with unusual characters: ``"a\\tb.py"``."""
    if path.startswith('"') and path.endswith('"'):
        return ast.literal_eval(path.encode("latin-1", "backslashreplace").decode("latin-1"))
    return path


def _paths_of_header(rest: str) -> tuple[str, str]:
    """``a/X b/Y`` (exact only when both sides are the same path; ---/+++ and rename lines correct it)."""
    if rest.startswith('"'):
        old, _, new = rest.partition('" ')
        return _unquote(old + '"').removeprefix("a/"), _unquote(new).removeprefix("b/")
    half = len(rest) // 2
    if rest[half] == " " and rest[2:half] == rest[half + 3 :]:
        return rest[2:half], rest[half + 3 :]
    old, _, new = rest.partition(" b/")
    return old.removeprefix("a/"), new
