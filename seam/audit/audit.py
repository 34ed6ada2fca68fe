"""Classifying each changed hunk of Python code: inside the seam, an MLA leak outside it, a narrowing (MLA
code taken out of the code outside the seam), or generic; each file under its own project's configuration."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from seamfix.audit.diff import FileChange, Hunk, hunks_between, parse_diff
from seamfix.audit.git import Git
from seamfix.audit.layout import Layout
from seamfix.audit.mla_lines import code_by_line, mla_names_by_line
from seamfix.audit.projects import Project, Projects
from seamfix.audit.width import SeamWidth, seam_use
from seamfix.errors import SeamfixError

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
    relpath: str  # as the report names it (``Projects.display``)
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


def audit(git: Git, projects: Projects, since: str | None, until: str | None, paths: list[Path]) -> AuditReport:
    base = git.resolve(since) if since else git.default_base()
    head = git.resolve(until) if until else None
    pathspecs = [_pathspec(git, path, base, head) for path in paths]
    verdicts = []
    changes = parse_diff(git.diff(base, head, pathspecs))
    if head is None:
        changes += [_added(git, path) for path in git.untracked(pathspecs)]
    with projects.configured_at(base) as before:
        for change in changes:
            found = [
                _classify(part, owner, projects.display(part.path), base, head)
                if isinstance(owner, Project)
                else FileVerdict(part, projects.display(part.path), note=owner)
                for part, owner in _by_project(change, projects, base, head)
            ]
            if before is not None:
                _leaks_as_configured_before(found, change, projects, before, base, head)
            verdicts += found
        if before is not None:
            changed = {path for change in changes for path in (change.old_path, change.new_path) if path}
            verdicts += _sites_let_out(projects, before, base, head, pathspecs, changed)
    errors = list(projects.errors)
    after = projects.width(head, errors)
    return AuditReport(base, head, verdicts, projects.width(base), after, errors)


def _by_project(
    change: FileChange, projects: Projects, base: str, head: str | None
) -> list[tuple[FileChange, Project | str]]:
    """A changed file with the project that judges it (none outside every project). A file that moved where it is
    judged otherwise (into another project, into or out of the seam, of the checked files or of a
    ``per-file-ignores`` pattern) is gone from its old place and added at its new, each side whole: each project's
    seam is its own, and code that moves out of the seam, an excluded folder or a test file into a builder is new
    there, judged as lint would judge it."""
    old = projects.owner(change.old_path) if change.old_path else None
    new = projects.owner(change.new_path) if change.new_path else None
    if change.old_path is None or change.new_path is None or _judged_alike(old, change.old_path, new, change.new_path):
        owner = new if change.new_path else old
        return [] if owner is None else [(change, owner)]
    parts = []
    for owner, old_path, new_path, rev in ((old, change.old_path, None, base), (new, None, change.new_path, head)):
        if owner is not None:
            part = FileChange(old_path, new_path, change.binary, change.submodule)
            if not change.submodule:
                data = _blob(projects.git, rev, old_path or new_path)
                part.hunks = hunks_between(data, b"") if old_path else hunks_between(b"", data)
            parts.append((part, owner))
    return parts


def _judged_alike(old: Project | str | None, old_path: str, new: Project | str | None, new_path: str) -> bool:
    """Are a renamed file's two paths judged alike: by one project, both checked or not, both in its seam or not,
    with the same rules turned off by ``per-file-ignores``?"""
    if old != new or not isinstance(old, Project):
        return old == new
    return old.judges(old_path) == old.judges(new_path)


def _leaks_as_configured_before(
    found: list[FileVerdict], change: FileChange, projects: Projects, before: Projects, base: str, head: str | None
) -> None:
    """Where the base revision's configuration judges a changed file otherwise than the working tree's (an
    ``allow``, ``exclude``, ``per-file-ignores``, selection or adapter edited, a nested project added) and finds
    a leak in it that the working tree's does not, that verdict replaces the file's in ``found``: a change that
    widens the seam does not let in the MLA code it adds unseen."""
    for part, owner in _by_project(change, before, base, head):
        if not isinstance(owner, Project) or owner.settings.config_file is None:
            continue  # no configuration at the base: the change adopts seamfix
        now = projects.owner(part.path)
        if isinstance(now, Project) and now.judgement(part.path) == owner.judgement(part.path):
            continue
        verdict = _classify(part, owner, projects.display(part.path), base, head)
        judged_now = [index for index, mine in enumerate(found) if mine.relpath == verdict.relpath]
        if verdict.count(LEAK) and not any(found[index].count(LEAK) for index in judged_now):
            verdict.note = f"a leak under the configuration at {base[:12]}, which this change widens"
            if judged_now:
                found[judged_now[0]] = verdict
            else:
                found.append(verdict)


def _sites_let_out(
    projects: Projects, before: Projects, base: str, head: str | None, pathspecs: list[str], changed: set[str]
) -> list[FileVerdict]:
    """Files the change leaves as they were whose MLA sites the base revision's configuration reports outside its
    seam and the working tree's no longer does (an ``allow``, ``exclude``, ``per-file-ignores``, selection or
    adapter widened over code already there): leaks of the seam by configuration, one verdict at the first such
    line."""
    verdicts = []
    for git_path in projects.git.files(head, pathspecs):
        then, now = before.owner(git_path), projects.owner(git_path)
        if git_path in changed or not isinstance(then, Project) or then.settings.config_file is None:
            continue
        if isinstance(now, Project) and now.judgement(git_path) == then.judgement(git_path):
            continue
        checked, seam, _ = then.judges(git_path)
        if not checked or seam:
            continue
        reported = _Side(then, head, git_path).names
        if isinstance(now, Project) and now.judges(git_path)[:2] == (True, False):
            still = _Side(now, head, git_path).names
            reported = {line: names for line, names in reported.items() if line not in still}
        if reported:
            first = min(reported)
            hunk = HunkVerdict(Hunk(first, 0, first, 0), LEAK, sorted(set(reported[first])), first)
            note = f"its MLA code no longer checked: the configuration at {base[:12]} reported it"
            change = FileChange(git_path, git_path, unchanged=True)
            verdicts.append(FileVerdict(change, projects.display(git_path), [hunk], note))
    return verdicts


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


def _classify(change: FileChange, project: Project, display: str, base: str, head: str | None) -> FileVerdict:
    verdict = FileVerdict(change, display)
    relpath = project.relpath(change.path)  # a rename's two paths are judged alike (``_by_project``)
    checked = project.checks(relpath)
    if change.submodule:
        verdict.note = "submodule (audit its own repository)"
        return verdict
    if change.binary and not checked:
        verdict.note = "binary"
        return verdict
    if not checked:
        verdict.note = "not checked (include/exclude)"
        return verdict
    if change.binary or change.symlink:  # git's hunks are not of what lint reads: they come from its two versions
        change.hunks = hunks_between(
            *(_blob(project.git, rev, path) for rev, path in ((base, change.old_path), (head, change.new_path)))
        )
    if project.settings.is_seam(relpath):
        verdict.hunks = [HunkVerdict(hunk, SEAM) for hunk in change.hunks]
        return verdict
    old = _Side(project, base, change.old_path)
    new = _Side(project, head, change.new_path)
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
    rewritten = added == removed or _a_line_kept_its_names(old, old_lines, new, new_lines)
    if added - removed or (added and rewritten and not same):
        first = next(line for line in new_lines if line in new.names)
        return HunkVerdict(hunk, LEAK, sorted(added), first)
    if removed - added:
        first = next(line for line in old_lines if line in old.names)
        return HunkVerdict(hunk, NARROWING, sorted(removed - added), first)
    return HunkVerdict(hunk, GENERIC, [], hunk.new_start)


def _a_line_kept_its_names(old: _Side, old_lines: Sequence[int], new: _Side, new_lines: Sequence[int]) -> bool:
    """Does a changed line of the new side hold the same MLA names as one of the old side's: a site rewritten
    keeping them (`q_lora_rank > 0` → `q_lora_rank > 8`), which a site deleted in the same hunk must not make
    read as a narrowing only? (A site that lost some of its names, routed into the seam in part, keeps none.)"""
    kept = {frozenset(Counter(old.names[line]).items()) for line in old_lines if line in old.names}
    return any(frozenset(Counter(new.names[line]).items()) in kept for line in new_lines if line in new.names)


def _same_code(old: _Side, old_lines: range, new: _Side, new_lines: range) -> bool:
    """Do both sides of a hunk hold the same tokens (a change of layout, comments or line endings only)? For a
    file with a side that does not parse; never for a side that does not tokenize."""
    if old.code is None or new.code is None:
        return False
    return [t for line in old_lines for t in old.code.get(line, ())] == [
        t for line in new_lines for t in new.code.get(line, ())
    ]


def _blob(git: Git, rev: str | None, git_path: str | None) -> bytes:
    return (git.show(rev, git_path) if git_path else None) or b""


class _Side:
    """One side of a changed file: the MLA names of each line that is part of a site lint reports there (see
    ``mla_lines``; the rules its project selects, less those its ``per-file-ignores`` turn off), and its code
    tokens by line."""

    def __init__(self, project: Project, rev: str | None, git_path: str | None) -> None:
        data = self.data = _blob(project.git, rev, git_path)
        self.names: dict[int, list[str]] = {}
        if data:  # an empty or absent side has no names
            settings = project.settings
            relpath = project.relpath(git_path)
            use = seam_use(data, relpath, settings)
            sites = project.checker.sites(data, relpath, settings.ignored_codes(relpath))
            self.names = mla_names_by_line(data, project.names, sites, use.names, use.calls)

    @cached_property
    def code(self) -> dict[int, list[str]] | None:
        """Line -> its code tokens (``code_by_line``): asked only where a side does not parse, so a large file's
        tokens are not kept otherwise."""
        return code_by_line(self.data) if self.data else {}
