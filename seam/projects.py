"""The projects a run covers, as ruff's hierarchical configuration: the walk ``lint``, ``apply`` and ``audit``
share (each folder holding a configuration of its own is its own project, with its own settings)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

from seamfix.config import Settings, find_config, load_settings, settings_by_project
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
    ``respect-gitignore`` (ruff decides git's rules once per walk), and every project with the run's
    ``force-exclude`` (as ruff's). Returns the first project's root and, for each
    nested configuration that could not be read or is invalid, its folder and the error: each leaves only its own
    folder out."""
    if Path("-") in paths:  # ruff's stdin; seamfix checks and rewrites files on disk only
        raise SeamfixError("-: reading from stdin is not supported: give the file's path")
    projects = settings_by_project(cwd, config, list(paths), **overrides)
    force_exclude = _force_exclude_of_the_run(cwd, config, projects)
    projects = [(replace(settings, force_exclude=force_exclude), targets) for settings, targets in projects]
    first_root, broken = projects[0][0].root, []
    while projects:
        settings, targets = projects.pop(0)
        for folder in handle(settings, targets):
            try:
                nested = load_settings(cwd, None, folder, **overrides)
            except SeamfixError as exc:
                broken.append((folder, str(exc)))
                continue
            projects.append(
                (replace(nested, respect_gitignore=settings.respect_gitignore, force_exclude=force_exclude), [folder])
            )
    return first_root, broken


def _force_exclude_of_the_run(cwd: Path, config: Path | None, projects: list[tuple[Settings, list[Path]]]) -> bool:
    """``force-exclude`` is a setting of the run, as ruff's: that of ``--config``, or of the configuration that
    governs the current directory (the pre-commit hook's), for every project; a nested project's own is not read."""
    if config is not None:
        return projects[0][0].force_exclude
    governing = find_config(cwd.resolve())
    if governing is None:
        return False
    known = next((settings for settings, _ in projects if settings.config_file == governing.resolve()), None)
    return (known or load_settings(cwd, governing)).force_exclude
