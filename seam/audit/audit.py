"""Classifying each changed hunk of Python code: inside the seam, MLA-related outside it, or generic."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from seamfix.audit.diff import FileChange, Hunk, parse_diff
from seamfix.audit.git import Git
from seamfix.audit.mla_lines import mla_names_by_line
from seamfix.audit.width import SeamWidth, measure, seam_names
from seamfix.config import Settings
from seamfix.discovery import discover
from seamfix.vocabulary.names import NameClassifier

SEAM, MLA, GENERIC = "seam", "mla", "generic"


@dataclass
class HunkVerdict:
    hunk: Hunk
    kind: str
    mla_names: list[str] = field(default_factory=list)
    line: int = 0  # the first line that touches MLA (new numbering; old numbering for removed-only hunks)


@dataclass
class FileVerdict:
    change: FileChange
    relpath: str
    hunks: list[HunkVerdict] = field(default_factory=list)
    note: str = ""  # why a changed file was not classified (binary, not Python)

    def count(self, kind: str) -> int:
        return sum(verdict.kind == kind for verdict in self.hunks)


@dataclass
class AuditReport:
    since: str
    until: str | None
    files: list[FileVerdict]
    before: SeamWidth
    after: SeamWidth

    def total(self, kind: str) -> int:
        return sum(verdict.count(kind) for verdict in self.files)

    @property
    def leaked(self) -> bool:
        return self.total(MLA) > 0


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

    def tree(self, rev: str | None) -> dict[str, bytes]:
        """The project's checked Python files at ``rev`` (None: the working tree)."""
        if rev is None:
            found = discover([self.settings.root], self.settings)
            files = {source.relpath: Path(source.path).read_bytes() for source in found.files}
            adapter = self.settings.root / (self.settings.adapter or "")
            if self.settings.adapter and adapter.is_file():
                files[self.settings.adapter] = adapter.read_bytes()
            return files
        tree = {}
        for git_path, data in self.git.tree_files(rev).items():
            relpath = self.relpath(git_path)
            if relpath is not None and self.checks(relpath):
                tree[relpath] = data
        return tree


def audit(git: Git, settings: Settings, since: str | None, until: str | None, paths: list[Path]) -> AuditReport:
    project = Project(git, settings)
    base = git.resolve(since) if since else git.default_base()
    head = git.resolve(until) if until else None
    pathspecs = [os.path.relpath(Path(p).resolve(), git.root) for p in paths]
    names = NameClassifier(settings.vocabulary)
    verdicts = []
    for change in parse_diff(git.diff(base, head, pathspecs)):
        relpath = project.relpath(change.path)
        if relpath is None:
            continue
        verdicts.append(_classify(change, relpath, project, names, base, head))
    return AuditReport(
        base, head, verdicts, measure(project.tree(base), settings), measure(project.tree(head), settings)
    )


def _classify(
    change: FileChange, relpath: str, project: Project, names: NameClassifier, base: str, head: str | None
) -> FileVerdict:
    verdict = FileVerdict(change, relpath)
    old_relpath = project.relpath(change.old_path) if change.old_path else None
    if change.binary:
        verdict.note = "binary"
        return verdict
    if not (project.checks(relpath) or (old_relpath and project.checks(old_relpath))):
        verdict.note = "not checked (include/exclude)"
        return verdict
    if project.settings.is_seam(relpath) or (old_relpath and project.settings.is_seam(old_relpath)):
        verdict.hunks = [HunkVerdict(hunk, SEAM) for hunk in change.hunks]
        return verdict
    old = _names(project, base, change.old_path, names)
    new = _names(project, head, change.new_path, names)
    for hunk in change.hunks:
        new_hits = [(line, new[line]) for line in hunk.new_lines if line in new]
        old_hits = [(line, old[line]) for line in hunk.old_lines if line in old]
        hits = new_hits or old_hits
        touched = sorted({name for _, found in new_hits + old_hits for name in found})
        kind = MLA if touched else GENERIC
        verdict.hunks.append(HunkVerdict(hunk, kind, touched, hits[0][0] if hits else hunk.new_start))
    return verdict


def _names(project: Project, rev: str | None, git_path: str | None, names: NameClassifier) -> dict[int, list[str]]:
    data = project.git.show(rev, git_path) if git_path else None
    if data is None:
        return {}
    relpath = project.relpath(git_path) or git_path
    return mla_names_by_line(data, names, seam_names(data, relpath, project.settings))
