"""Which files to check: walking the given paths with include / exclude, and skipping the seam."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from seamfix.config import Settings


@dataclass(frozen=True)
class SourcePath:
    path: str  # absolute
    relpath: str  # project-relative, "/"-separated ("../x.py" outside the project)


@dataclass
class Discovery:
    files: list[SourcePath] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def discover(paths: list[Path], settings: Settings, force_exclude: bool = False) -> Discovery:
    """Files under ``paths`` to check, sorted; unreadable paths become errors. Directories are not followed
    through symlinks (no loops); a path given explicitly is checked even if ``include`` does not match it,
    and even if ``exclude`` does unless ``force_exclude`` (as ruff does)."""
    found: dict[str, SourcePath] = {}
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
            _walk(path, relpath, settings, found, result.errors)
        elif not settings.is_seam(relpath):
            found[path] = SourcePath(path, relpath)
    result.files = sorted(found.values(), key=lambda s: s.relpath)
    return result


def _walk(top: str, top_relpath: str, settings: Settings, found: dict[str, SourcePath], errors: list[str]) -> None:
    stack = [(top, "" if top_relpath == "." else top_relpath + "/")]
    while stack:
        directory, prefix = stack.pop()
        try:
            entries = list(os.scandir(directory))
        except OSError as exc:
            errors.append(f"{directory}: cannot list directory: {exc.strerror or exc}")
            continue
        for entry in entries:
            relpath = prefix + entry.name
            if settings.exclude.matches(relpath):
                continue
            try:
                is_dir = entry.is_dir(follow_symlinks=False)
            except OSError:
                is_dir = False
            if is_dir:
                stack.append((entry.path, relpath + "/"))
            elif settings.include.matches(relpath) and not settings.is_seam(relpath):
                found[entry.path] = SourcePath(entry.path, relpath)


def _relpath(path: str, root: str) -> str:
    return "." if path == root else os.path.relpath(path, root).replace(os.sep, "/")
