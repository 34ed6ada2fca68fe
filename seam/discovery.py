"""Which files to check: walking the given paths with include / exclude and git's ignore rules, skipping
the seam."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from seamfix.config import Settings, config_in
from seamfix.errors import SeamfixError


@dataclass(frozen=True)
class SourcePath:
    path: str  # absolute
    relpath: str  # project-relative, "/"-separated ("../x.py" outside the project)


@dataclass
class Discovery:
    files: list[SourcePath] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    # Walked folders (not excluded) holding a configuration of their own, left for it to govern, as ruff's
    # hierarchical configuration; only when asked for (``nested=True``).
    nested: list[Path] = field(default_factory=list)


def discover(paths: list[Path], settings: Settings, force_exclude: bool = False, nested: bool = False) -> Discovery:
    """Files under ``paths`` to check, sorted; unreadable paths become errors. Directories are not followed
    through symlinks (no loops); a path given explicitly is checked even if ``include`` does not match it,
    and even if ``exclude`` does unless ``force_exclude`` (the flag or the setting), as ruff does. With
    ``respect-gitignore``, files found in folders that git ignores are skipped; a file given explicitly is
    checked whatever git says (as ruff's, ``force-exclude`` applies ``exclude`` only)."""
    force_exclude = force_exclude or settings.force_exclude
    found: dict[str, SourcePath] = {}
    explicit: set[str] = set()
    result = Discovery()
    root = str(settings.root)
    for given in paths:
        path = os.path.abspath(given)
        relpath = _relpath(path, root)
        if not os.path.lexists(path):
            result.errors.append(f"{given}: No such file or directory")
        elif force_exclude and settings.exclude.matches_within(relpath):
            continue
        elif os.path.isdir(path):
            _walk(path, relpath, settings, found, result, nested)
        elif not settings.is_seam(relpath):
            found[path] = SourcePath(path, relpath)
            explicit.add(path)
    if settings.respect_gitignore and found:
        for path in git_ignored([path for path in found if path not in explicit], root):
            del found[path]
    result.files = sorted(found.values(), key=lambda s: s.relpath)
    return result


def _walk(
    top: str, top_relpath: str, settings: Settings, found: dict[str, SourcePath], result: Discovery, nested: bool
) -> None:
    root = str(settings.root)
    stack = [(top, "" if top_relpath == "." else top_relpath + "/")]
    while stack:
        directory, prefix = stack.pop()
        try:
            entries = list(os.scandir(directory))
        except OSError as exc:
            result.errors.append(f"{directory}: cannot list directory: {exc.strerror or exc}")
            continue
        for entry in entries:
            # A walk that starts above the project root (`--config sub/seamfix.toml` run from above `sub`) counts
            # names from the root again once inside it, so that its globs and its adapter apply there.
            relpath = _relpath(entry.path, root) if prefix.startswith("../") else prefix + entry.name
            if relpath != "." and settings.exclude.matches(relpath):
                continue
            try:
                is_dir = entry.is_dir(follow_symlinks=False)
            except OSError:
                is_dir = False
            if is_dir:
                if nested and _has_own_config(entry.path):
                    result.nested.append(Path(entry.path))
                else:
                    stack.append((entry.path, "" if relpath == "." else relpath + "/"))
            elif settings.include.matches(relpath) and not settings.is_seam(relpath):
                found[entry.path] = SourcePath(entry.path, relpath)


def _has_own_config(folder: str) -> bool:
    """Does ``folder`` hold a configuration file? One that cannot be read counts: loading it then reports the
    error naming it, and the folder is left out (ruff stops the whole run; here the other projects go on)."""
    try:
        return config_in(Path(folder)) is not None
    except SeamfixError:
        return True


def _relpath(path: str, root: str) -> str:
    return "." if path == root else os.path.relpath(path, root).replace(os.sep, "/")


def git_ignored(paths: list[str], root: str) -> set[str]:
    """Which of ``paths`` (absolute) git ignores, asked (``git check-ignore --stdin``) of the innermost repository
    holding each: a nested repository or a submodule judges its own files by its own ignore files, as git run
    inside it does and ruff's walk (the outer repository's rules stop at it; asked about a submodule's paths, the
    outer one refuses the whole batch). Nothing when git is missing or a path is in no work tree. Tracked files
    are never ignored, as in git itself. ``root`` is the project's."""
    by_repository: dict[str | None, list[str]] = {}
    known: dict[str, str | None] = {}
    for path in paths:
        by_repository.setdefault(_work_tree(os.path.dirname(path), known), []).append(path)
    ignored: set[str] = set()
    for work_tree, members in by_repository.items():
        if work_tree is not None and _in_an_ignored_folder(work_tree, root, known):
            ignored.update(members)
            continue
        # Asked about the project root too: where the repository ignores the folder the project lives in, git calls
        # every file below ignored, while ruff, whose walk starts at the project, matches its patterns against the
        # paths below only. Then nothing is skipped: the gate checks too much rather than nothing.
        inside = work_tree is not None and _below(root, work_tree)
        judged = _check_ignore([*members, root] if inside else members, work_tree or root)
        if root not in judged:
            ignored |= judged
    return ignored


def _in_an_ignored_folder(work_tree: str, root: str, known: dict[str, str | None]) -> bool:
    """Is ``work_tree``, a repository nested in the project at ``root``, a folder that the repository around it
    ignores (or inside one such)? Ruff's walk, like git's, never enters it. A repository around the project itself
    (a home folder's, ignoring everything it does not track) never judges the project's own."""
    if not _below(work_tree, root):
        return False
    outer = _work_tree(os.path.dirname(work_tree), known)
    if outer is None:
        return False
    return bool(_check_ignore([work_tree], outer)) or _in_an_ignored_folder(outer, root, known)


def _below(path: str, folder: str) -> bool:
    """Is ``path`` strictly inside ``folder`` (both absolute)?"""
    return path.startswith(folder.rstrip(os.sep) + os.sep)


def _work_tree(directory: str, known: dict[str, str | None]) -> str | None:
    """The innermost folder at or above ``directory`` holding a ``.git`` entry (a folder, or a submodule's or
    worktree's file), remembered in ``known`` for every folder passed on the way."""
    passed = []
    while directory not in known:
        passed.append(directory)
        parent = os.path.dirname(directory)
        if os.path.lexists(os.path.join(directory, ".git")):
            known[directory] = directory
        elif parent == directory:
            known[directory] = None
        else:
            directory = parent
    for folder in passed:
        known[folder] = known[directory]
    return known[directory]


def _check_ignore(paths: list[str], cwd: str) -> set[str]:
    try:
        proc = subprocess.run(
            ["git", "check-ignore", "--stdin", "-z"],
            cwd=cwd,
            input="\0".join(paths).encode("utf-8", "surrogateescape") + b"\0",
            capture_output=True,
            check=False,
        )
    except OSError:
        return set()
    if proc.returncode not in (0, 1):  # 128: not a repository, or a path outside it
        return set()
    return {item.decode("utf-8", "surrogateescape") for item in proc.stdout.split(b"\0") if item}
