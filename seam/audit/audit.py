"""Classifying each changed hunk of Python code: inside the seam, an MLA leak outside it, a narrowing (MLA
code taken out of the code outside the seam), or generic."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from seamfix.audit.diff import FileChange, Hunk, hunks_between, parse_diff
from seamfix.audit.git import Git
from seamfix.audit.layout import Layout
from seamfix.audit.mla_lines import code_by_line, mla_names_by_line
from seamfix.audit.width import SeamWidth, measure, seam_use
from seamfix.config import Settings
from seamfix.discovery import discover
from seamfix.engine import check_options
from seamfix.errors import SeamfixError
from seamfix.file_checker import FileChecker
from seamfix.reading import read_error, read_regular_file
from seamfix.vocabulary.names import NameClassifier

SEAM, LEAK, NARROWING, GENERIC = "seam", "leak", "narrowing", "generic"
KINDS = (SEAM, LEAK, NARROWING, GENERIC)


@dataclass
class HunkVerdict:
    hunk: Hunk
    kind: str
    mla_names: list[str] = field(default_factory=list)
    line: int = 0  # the first line that touches MLA (new numbering; old numbering for a narrowing)


@dataclass
class FileVerdict:
    change: FileChange
    relpath: str
    hunks: list[HunkVerdict] = field(default_factory=list)
    note: str = ""  # why a changed file was not classified (binary, not Python, a submodule)

    def count(self, kind: str) -> int:
        return sum(verdict.kind == kind for verdict in self.hunks)


@dataclass
class AuditReport:
    since: str
    until: str | None
    files: list[FileVerdict]
    before: SeamWidth
    after: SeamWidth
    errors: list[str] = field(default_factory=list)  # files of the working tree that could not be read

    def total(self, kind: str) -> int:
        return sum(verdict.count(kind) for verdict in self.files)

    @property
    def leaked(self) -> bool:
        return self.total(LEAK) > 0


class Project:
    """The seamfix project inside a git repository: path conversions and trees at revisions."""

    def __init__(self, git: Git, settings: Settings) -> None:
        self.git = git
        self.settings = settings
        prefix = os.path.relpath(settings.root, git.root).replace(os.sep, "/")
        self.prefix = "" if prefix == "." else prefix + "/"

    def relpath(self, git_path: str) -> str | None:
        """Project-relative path of a repository path; None outside the project."""
        return git_path[len(self.prefix) :] if git_path.startswith(self.prefix) else None

    def checks(self, relpath: str) -> bool:
        settings = self.settings
        return settings.include.matches(relpath) and not settings.exclude.matches_within(relpath)

    def tree(self, rev: str | None, errors: list[str] | None = None) -> dict[str, bytes]:
        """The project's checked Python files at ``rev`` (None: the working tree, where files that cannot be
        read, FIFOs and symlink loops among them, are left out and named in ``errors``)."""
        if rev is not None:
            return {self.relpath(git_path): data for git_path, data in self.git.tree_files(rev, self._wanted).items()}
        settings = self.settings
        found = discover([settings.root], settings)
        unread = list(found.errors)
        files = {}
        for source in found.files:
            try:
                files[source.relpath] = read_regular_file(source.path)
            except OSError as exc:
                unread.append(f"{source.relpath}: cannot read: {read_error(exc)}")
        adapter = settings.root / (settings.adapter or "")
        if settings.adapter and adapter.is_file():
            files[settings.adapter] = read_regular_file(adapter)
        if errors is not None:
            errors += unread
        return files

    def _wanted(self, git_path: str) -> bool:
        relpath = self.relpath(git_path)
        return relpath is not None and self.checks(relpath)


def audit(git: Git, settings: Settings, since: str | None, until: str | None, paths: list[Path]) -> AuditReport:
    project = Project(git, settings)
    base = git.resolve(since) if since else git.default_base()
    head = git.resolve(until) if until else None
    pathspecs = [_pathspec(git, path, base, head) for path in paths]
    names = NameClassifier(settings.vocabulary)
    checker = FileChecker(check_options(settings))
    verdicts = []
    changes = parse_diff(git.diff(base, head, pathspecs))
    if head is None:
        changes += [_added(git, path) for path in git.untracked(pathspecs)]
    for change in changes:
        relpath = project.relpath(change.path)
        if relpath is None:
            continue
        verdicts.append(_classify(change, relpath, project, names, checker, base, head))
    errors: list[str] = []
    after = measure(project.tree(head, errors), settings)
    return AuditReport(base, head, verdicts, measure(project.tree(base), settings), after, errors)


def _added(git: Git, path: str) -> FileChange:
    """An untracked file of the working tree as the diff would show it once added: one hunk of all its lines."""
    data = git.show(None, path)
    if data is None or b"\0" in data:
        return FileChange(None, path, binary=data is not None)
    lines = len(data.splitlines())
    return FileChange(None, path, hunks=[Hunk(0, 0, 1, lines)] if lines else [])


def _pathspec(git: Git, path: Path, base: str, head: str | None) -> str:
    """``path`` relative to the repository; one that exists neither on disk nor at either revision is an
    error (a typo must not pass as "nothing changed")."""
    spec = os.path.relpath(Path(path).resolve(), git.root).replace(os.sep, "/")
    if spec == ".." or spec.startswith("../"):
        raise SeamfixError(f"{path}: outside the git repository at {git.root}")
    if os.path.lexists(path) or any(git.exists(rev, spec) for rev in (base, head) if rev is not None):
        return spec
    raise SeamfixError(f"{path}: No such file or directory")


def _classify(
    change: FileChange,
    relpath: str,
    project: Project,
    names: NameClassifier,
    checker: FileChecker,
    base: str,
    head: str | None,
) -> FileVerdict:
    verdict = FileVerdict(change, relpath)
    old_relpath = project.relpath(change.old_path) if change.old_path else None
    checked = project.checks(relpath) or (old_relpath and project.checks(old_relpath))
    if change.submodule:
        verdict.note = "submodule (audit its own repository)"
        return verdict
    if change.binary and not checked:
        verdict.note = "binary"
        return verdict
    if not checked:
        verdict.note = "not checked (include/exclude)"
        return verdict
    if change.binary:  # a checked file git shows no hunks of: they come from its two versions
        change.hunks = hunks_between(
            *(_blob(project, rev, path) for rev, path in ((base, change.old_path), (head, change.new_path)))
        )
    if project.settings.is_seam(relpath) or (old_relpath and project.settings.is_seam(old_relpath)):
        verdict.hunks = [HunkVerdict(hunk, SEAM) for hunk in change.hunks]
        return verdict
    old = _Side(project, base, change.old_path, names, checker)
    new = _Side(project, head, change.new_path, names, checker)
    layout = Layout(old.data, new.data, change.hunks)
    for index, hunk in enumerate(change.hunks):
        verdict.hunks.append(_hunk_verdict(hunk, old, new, lambda index=index: layout.changed_lines(index)))
    return verdict


def _hunk_verdict(
    hunk: Hunk, old: _Side, new: _Side, changed_lines: Callable[[], tuple[list[int], list[int]] | None]
) -> HunkVerdict:
    """A leak when the hunk adds MLA names, or rewrites MLA code keeping the same names (a changed MLA
    decision, not one only laid out anew); a narrowing when it only takes MLA names away (routed into the seam,
    or deleted). Only the lines of statements that changed count (``changed_lines``: syntax trees compared, so
    a formatter's re-indent, re-wrap or parentheses change none, and the lines git pairs a changed statement
    with are no part of it, while a statement moved counts whole, its first line too where git left that line
    as it was); where a side does not parse, the hunk's lines count and the tokens are compared (indentation
    included)."""
    old_lines, new_lines = hunk.old_lines, hunk.new_lines
    if not old.names and not new.names:  # a file without MLA sites: no need to parse it
        return HunkVerdict(hunk, GENERIC, [], hunk.new_start)
    changed = changed_lines()
    if changed is None:
        same = _same_code(old, old_lines, new, new_lines)
    else:
        (old_lines, new_lines), same = changed, False
    removed = Counter(name for line in old_lines for name in old.names.get(line, ()))
    added = Counter(name for line in new_lines for name in new.names.get(line, ()))
    if added - removed or (added and added == removed and not same):
        first = next(line for line in new_lines if line in new.names)
        return HunkVerdict(hunk, LEAK, sorted(added), first)
    if removed - added:
        first = next(line for line in old_lines if line in old.names)
        return HunkVerdict(hunk, NARROWING, sorted(removed - added), first)
    return HunkVerdict(hunk, GENERIC, [], hunk.new_start)


def _same_code(old: _Side, old_lines: range, new: _Side, new_lines: range) -> bool:
    """Do both sides of a hunk hold the same tokens (a change of layout, comments or line endings only)? For a
    file with a side that does not parse; never for a side that does not tokenize."""
    if old.code is None or new.code is None:
        return False
    return [t for line in old_lines for t in old.code.get(line, ())] == [
        t for line in new_lines for t in new.code.get(line, ())
    ]


def _blob(project: Project, rev: str | None, git_path: str | None) -> bytes:
    return (project.git.show(rev, git_path) if git_path else None) or b""


class _Side:
    """One side of a changed file: the MLA names of each line that is part of a site lint reports (see
    ``mla_lines``), and its code tokens by line."""

    def __init__(
        self, project: Project, rev: str | None, git_path: str | None, names: NameClassifier, checker: FileChecker
    ) -> None:
        data = self.data = _blob(project, rev, git_path)
        self.names: dict[int, list[str]] = {}
        self.code: dict[int, list[str]] | None = {}
        if data:  # an empty or absent side has no names and no code
            relpath = project.relpath(git_path) or git_path
            use = seam_use(data, relpath, project.settings)
            self.names = mla_names_by_line(data, names, checker.sites(data, relpath), use.names, use.calls)
            self.code = code_by_line(data)
