"""The projects an audit covers and which of them judges each file of the repository: the walk lint and apply
share (``seamfix.projects``), over the working tree."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path

from seamfix.audit.git import Git
from seamfix.audit.width import SeamWidth, measure
from seamfix.config import Settings
from seamfix.discovery import discover
from seamfix.engine import check_options
from seamfix.errors import SeamfixError
from seamfix.file_checker import FileChecker
from seamfix.projects import each_project
from seamfix.reading import read_error, read_regular_file
from seamfix.vocabulary.names import NameClassifier

BROKEN = "not audited: its project's configuration has an error"


class Place:
    """A folder as seen from a repository's root: what a repository path is relative to it."""

    def __init__(self, repo_root: Path, folder: Path) -> None:
        self.folder = folder
        inside = os.path.relpath(folder, repo_root).replace(os.sep, "/")
        outside = os.path.relpath(repo_root, folder).replace(os.sep, "/")
        self.prefix: str | None = "" if inside == "." else inside + "/"  # None: beside the repository
        self.above = ""  # for a folder above the repository's root, the root's path from it
        if _climbs(inside):
            self.prefix, self.above = (None, "") if _climbs(outside) else ("", outside + "/")

    def relpath(self, git_path: str) -> str | None:
        """The folder-relative path of a repository path; None outside the folder."""
        if self.prefix is None or not git_path.startswith(self.prefix):
            return None
        return self.above + git_path[len(self.prefix) :]


def _climbs(relpath: str) -> bool:
    return relpath == ".." or relpath.startswith("../")


def _inside(folder: Path, git_path: str) -> Path | None:
    """Where a revision's path lies under ``folder``; None for one that would lead out of it (``..`` in a crafted
    tree: `git mktree` makes one, `git checkout` refuses it)."""
    path = folder / git_path
    return path if os.path.abspath(path).startswith(os.path.join(folder, "")) else None


def _write(folder: Path, files: dict[str, bytes]) -> None:
    for git_path, data in files.items():
        path = _inside(folder, git_path)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)


class Project:
    """One seamfix project inside a git repository: its settings, where its files lie, what judges them, and
    its files in the working tree as the walk found them."""

    def __init__(self, git: Git, settings: Settings, nested: bool, checkout: Path) -> None:
        """``nested``: folders holding a configuration of their own are left out, in ``found.nested``.
        ``checkout``: where the repository's files lie (its root, or a revision's configuration files)."""
        self.git = git
        self.settings = settings
        self.place = place = Place(checkout, settings.root)
        # only the repository's files: those of a project rooted above it (or beside it) are no part of the change
        tops = [] if place.prefix is None else [checkout if place.above else settings.root]
        self.found = discover(tops, settings, nested=nested)

    def relpath(self, git_path: str) -> str | None:
        """Project-relative path of a repository path; None outside the project."""
        return self.place.relpath(git_path)

    def checks(self, relpath: str) -> bool:
        settings = self.settings
        return settings.include.matches(relpath) and not settings.exclude.matches_within(relpath)

    def judges(self, git_path: str) -> tuple[bool, bool, frozenset[str]]:
        """How the project judges one of its paths: checked or not, in its seam or not, and the rules
        ``per-file-ignores`` turn off there."""
        relpath = self.relpath(git_path)
        return self.checks(relpath), self.settings.is_seam(relpath), self.settings.ignored_codes(relpath)

    def judgement(self, git_path: str) -> tuple[object, ...]:
        """All that decides a verdict on one of its paths besides the file's versions: two projects (of two
        revisions' configurations) that agree on it judge it alike."""
        settings = self.settings
        where = (self.place.prefix, self.place.above)
        return (*where, settings.adapter, settings.codes, settings.vocabulary, settings.src, *self.judges(git_path))

    @cached_property
    def names(self) -> NameClassifier:
        return NameClassifier(self.settings.vocabulary)

    @cached_property
    def checker(self) -> FileChecker:
        return FileChecker(check_options(self.settings))

    def working_tree(self, errors: list[str], base: Path) -> dict[str, bytes]:
        """The project's checked Python files in the working tree; files that cannot be read, FIFOs and symlink
        loops among them, are left out and named in ``errors`` (relative to ``base``)."""
        settings = self.settings
        errors += self.found.errors
        files = {}
        for source in self.found.files:
            try:
                files[source.relpath] = read_regular_file(source.path)
            except OSError as exc:
                errors.append(f"{os.path.relpath(source.path, base)}: cannot read: {read_error(exc)}")
        adapter = settings.root / (settings.adapter or "")
        if settings.adapter and adapter.is_file():
            files[settings.adapter] = read_regular_file(adapter)
        return files


class Projects:
    """The projects an audit covers, found by the walk lint and apply share (``seamfix.projects``) over the
    working tree: those of its paths (the current directory's without any), and each folder below them that
    holds a configuration of its own (none with ``--config``). Each repository path is judged by the deepest of
    them above it, at both revisions (the configuration is the working tree's)."""

    def __init__(
        self, git: Git, cwd: Path, config: Path | None, paths: list[Path], checkout: Path | None = None
    ) -> None:
        """``checkout``: a folder holding another revision's configuration files, walked in place of the working
        tree (``configured_at``); ``cwd``, ``config`` and ``paths`` then name places in it."""
        self.git = git
        self.projects: list[Project] = []
        self._walked = cwd, config, paths
        checkout = checkout or git.root

        def walk(settings: Settings, targets: list[Path]) -> list[Path]:
            """The whole project is walked, whatever paths it was reached by: its width is the whole's."""
            if any(project.settings.root == settings.root for project in self.projects):
                return []  # two paths of one project, or a project given that another's walk met
            self.projects.append(Project(git, settings, config is None, checkout))
            return self.projects[-1].found.nested

        self.first_root, broken = each_project(cwd, config, paths, {}, walk)
        self.errors = [error for _, error in broken]
        governing = [(project.place, project) for project in self.projects]
        governing += [(Place(checkout, folder), BROKEN) for folder, _ in broken]
        # deepest first: a nested project's files are its own, not its parent's
        self._governing = sorted(governing, key=lambda pair: -len(pair[0].folder.parts))
        common = Place(checkout, Path(os.path.commonpath([project.settings.root for project in self.projects])))
        # above (or beside) the repository, paths are named as in the repository
        self._base = common if common.prefix is not None and not common.above else Place(checkout, checkout)

    @contextmanager
    def configured_at(self, rev: str) -> Iterator[Projects | None]:
        """The same walk over the configuration revision ``rev`` holds: its TOML files (any may be a configuration,
        or the base an ``extend`` names), its folders and its projects' adapters, written to a folder of their own.
        None where it cannot be loaded (an error in it, an ``extend`` leading out of the repository)."""
        with tempfile.TemporaryDirectory(prefix="seamfix-audit-") as folder:
            try:
                projects = self._walk_at(rev, Path(folder).resolve())  # configurations resolve their paths
            except (SeamfixError, OSError):  # OSError: a name this file system cannot hold
                projects = None
            yield projects

    def _walk_at(self, rev: str, checkout: Path) -> Projects:
        folders = set()

        def configuration(git_path: str) -> bool:
            folders.add(os.path.dirname(git_path))  # the default `src` is the folder's if it exists
            return git_path.endswith(".toml")

        _write(checkout, self.git.tree_files(rev, configuration))
        for folder in filter(None, (_inside(checkout, relpath) for relpath in folders)):
            folder.mkdir(parents=True, exist_ok=True)

        def there(path: Path) -> Path:
            relpath = os.path.relpath(os.path.abspath(path), self.git.root)
            return path if _climbs(relpath.replace(os.sep, "/")) else checkout / relpath

        cwd, config, paths = self._walked
        projects = Projects(self.git, there(cwd), config and there(config), [there(p) for p in paths], checkout)
        adapters = {
            project.place.prefix + project.settings.adapter
            for project in projects.projects
            if project.settings.adapter and project.place.prefix is not None and not project.place.above
        }
        _write(checkout, self.git.tree_files(rev, adapters.__contains__))  # read by each project's checker
        return projects

    def owner(self, git_path: str) -> Project | str | None:
        """The project that judges a repository path; for a folder whose configuration has an error, the note
        saying so; None outside every project."""
        return next((owner for place, owner in self._governing if place.relpath(git_path) is not None), None)

    def display(self, git_path: str) -> str:
        """How a report names a repository path: relative to the folder holding every project audited (the
        project's root where there is one)."""
        return self._base.relpath(git_path) or git_path

    def width(self, rev: str | None, errors: list[str] | None = None) -> SeamWidth:
        """The seam's width at ``rev`` (None: the working tree, where files that cannot be read are named in
        ``errors``), each project measured against its own adapter, added up."""
        trees: dict[Project, dict[str, bytes]] = {project: {} for project in self.projects}
        if rev is None:
            errors = [] if errors is None else errors
            trees = {project: project.working_tree(errors, self._base.folder) for project in self.projects}
        else:
            for git_path, data in self.git.tree_files(rev, lambda path: self._checked(path) is not None).items():
                project, relpath = self._checked(git_path)
                trees[project][relpath] = data
        widths = [measure(files, project.settings) for project, files in trees.items()]
        return sum(widths[1:], widths[0])

    def _checked(self, git_path: str) -> tuple[Project, str] | None:
        """The project that checks a repository path, with the path relative to it; None when none does."""
        project = self.owner(git_path)
        if not isinstance(project, Project):
            return None
        relpath = project.relpath(git_path)
        return (project, relpath) if project.checks(relpath) else None
