"""``seamfix apply`` end to end: lint, rewrite the files with findings (over processes), merge the adapter."""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from seamfix.codemods.adapter_module import merge_adapter, name_placeholders
from seamfix.codemods.context import Seam
from seamfix.codemods.project import Project
from seamfix.codemods.rewrite import FileRewrite, rewrite_file
from seamfix.codemods.self_check import refuse_failing
from seamfix.config import Settings
from seamfix.engine import available_cores, check_options, lint
from seamfix.errors import SeamfixError
from seamfix.file_checker import FileChecker

# Wraps the stream of rewritten files as they finish (a progress bar), given how many there will be.
Progress = Callable[[Iterator[FileRewrite], int], Iterable[FileRewrite]]
# LibCST costs about this many files' worth of worker start-up before processes pay off.
PARALLEL_MIN_FILES = 4


@dataclass
class Change:
    path: Path
    display: str
    old: bytes
    new: bytes

    def diff(self) -> str:
        old = self.old.decode("utf-8", errors="replace").splitlines(keepends=True)
        new = self.new.decode("utf-8", errors="replace").splitlines(keepends=True)
        lines = difflib.unified_diff(old, new, f"a/{self.display}", f"b/{self.display}")
        return "".join(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in lines)


@dataclass
class ApplyPlan:
    changes: list[Change] = field(default_factory=list)  # builders first (sorted), the adapter last
    routed: int = 0
    moved: int = 0
    left: list[str] = field(default_factory=list)  # "path:line:column: why" for findings that remain
    kept_arms: list[str] = field(default_factory=list)  # "path:line:column: why" for MLA arms not moved
    refused: list[str] = field(default_factory=list)  # "path: why" for valid files left untouched
    errors: list[str] = field(default_factory=list)


def plan_apply(
    paths: list[Path],
    settings: Settings,
    *,
    cwd: Path,
    force_exclude: bool = False,
    jobs: int | None = None,
    progress: Progress = lambda rewrites, total: rewrites,
) -> ApplyPlan:
    """Everything ``seamfix apply`` would write, without writing it."""
    if settings.adapter is None:
        raise SeamfixError("`seamfix apply` needs `adapter` in [tool.seamfix] (or --adapter): where the seam goes")
    result = lint(paths, settings, cwd=cwd, force_exclude=force_exclude, jobs=jobs, apply_baseline=False)
    plan = ApplyPlan(errors=list(result.errors))
    relpaths = sorted({relpath for relpath, finding in result.recorded if finding.code in ("SEAM001", "SEAM901")})
    displays = {relpath: finding.path for relpath, finding in result.recorded}
    rewrites = _rewrite_all(relpaths, settings, jobs, progress)
    adapter_path = settings.root / settings.adapter
    existing = adapter_path.read_text(encoding="utf-8") if adapter_path.exists() else None
    adapter = (settings.adapter, ".".join(settings.adapter_module_parts))
    refuse_failing(rewrites, settings.root, adapter, existing, lambda fs: merge_adapter(existing, fs, adapter_path))
    for rewrite in rewrites:
        display = displays[rewrite.relpath]
        if rewrite.error:
            plan.errors.append(f"{display}: {rewrite.error}")
            continue
        if rewrite.refused:
            plan.refused.append(f"{display}: {rewrite.refused}")
        plan.routed += rewrite.routed
        plan.moved += rewrite.moved
        plan.left += [f"{display}:{why}" for why in rewrite.left]
        plan.kept_arms += [f"{display}:{why}" for why in rewrite.kept_arms]
    functions = [function for rewrite in rewrites if not rewrite.error for function in rewrite.functions]
    adapter_text, names = merge_adapter(existing, functions, adapter_path)
    for rewrite in rewrites:
        if rewrite.error:
            continue
        old = (settings.root / rewrite.relpath).read_bytes()
        new = name_placeholders(rewrite.data, names)
        if new != old:
            plan.changes.append(Change(settings.root / rewrite.relpath, displays[rewrite.relpath], old, new))
    if existing != adapter_text and adapter_text:
        display = os.path.relpath(adapter_path, cwd).replace(os.sep, "/")
        plan.changes.append(Change(adapter_path, display, (existing or "").encode(), adapter_text.encode()))
    return plan


def _rewrite_all(relpaths: list[str], settings: Settings, jobs: int | None, progress: Progress) -> list[FileRewrite]:
    """Each file rewritten, in the order of ``relpaths``.

    Each worker checks its file again rather than taking the lint's findings: those may come from the
    cache, which is keyed by seamfix's version, not its code, and an older build's findings lack the
    locations the codemods need."""
    work = [(str(settings.root / relpath), relpath) for relpath in relpaths]
    options = check_options(settings)
    seam = (Seam(settings.adapter_module_parts), Project.scan(settings, relpaths))
    workers = min(jobs or available_cores(), len(work) // PARALLEL_MIN_FILES)
    if workers <= 1:
        _init_worker(options, seam)
        return list(progress(map(_rewrite_one, work), len(work)))
    import multiprocessing

    # Largest files first, so that no worker is left with a big one while the others idle at the end.
    work.sort(key=lambda item: -_size(item[0]))
    context = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else None)
    with context.Pool(workers, initializer=_init_worker, initargs=(options, seam)) as pool:
        done = {rewrite.relpath: rewrite for rewrite in progress(pool.imap_unordered(_rewrite_one, work), len(work))}
    return [done[relpath] for relpath in relpaths]


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0  # _rewrite_one reports it


_worker: tuple[FileChecker, tuple[Seam, Project]] | None = None


def _init_worker(options, seam: tuple[Seam, Project]) -> None:
    global _worker
    _worker = (FileChecker(options), seam)


def _rewrite_one(item: tuple[str, str]) -> FileRewrite:
    path, relpath = item
    checker, (seam, project) = _worker
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        return FileRewrite(relpath, b"", error=f"cannot read: {exc.strerror or exc}")
    return rewrite_file(data, relpath, checker, seam, project)


def write_changes(plan: ApplyPlan) -> None:
    """Write every change atomically: a reader sees each file old or new, never half-written."""
    from seamfix.atomic import write_atomic

    for change in plan.changes:
        write_atomic(change.path, change.new)
