"""The projects a run covers, as ruff's hierarchical configuration: the walk ``lint``, ``apply`` and ``audit``
share (each folder holding a configuration of its own is its own project, with its own settings)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

from seamfix.config import Settings, load_settings, settings_by_project
from seamfix.errors import SeamfixError


def each_project(
    cwd: Path,
    config: Path | None,
    paths: Sequence[Path],
    overrides: dict[str, object],
    handle: Callable[[Settings, list[Path]], list[Path]],
) -> tuple[Path, list[tuple[Path, str]]]:
    """``handle(settings, targets)`` for each project PATHS reach, as ruff's hierarchical configuration: the
    paths grouped by the configuration nearest to each, then every folder a walk met that holds a configuration of
    its own (``handle`` returns them; none with ``--config``) under that one, keeping the walking configuration's
    ``respect-gitignore`` (ruff decides git's rules once per walk). Returns the first project's root and, for each
    nested configuration that could not be read or is invalid, its folder and the error: each leaves only its own
    folder out."""
    if Path("-") in paths:  # ruff's stdin; seamfix checks and rewrites files on disk only
        raise SeamfixError("-: reading from stdin is not supported: give the file's path")
    projects = settings_by_project(cwd, config, list(paths), **overrides)
    first_root, broken = projects[0][0].root, []
    while projects:
        settings, targets = projects.pop(0)
        for folder in handle(settings, targets):
            try:
                nested = load_settings(cwd, None, folder, **overrides)
            except SeamfixError as exc:
                broken.append((folder, str(exc)))
                continue
            projects.append((replace(nested, respect_gitignore=settings.respect_gitignore), [folder]))
    return first_root, broken
