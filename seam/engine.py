"""``seamfix lint`` end to end: discover, reuse cached results, check the rest over processes, baseline."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from stat import S_ISREG

from seamfix.cache import LintCache
from seamfix.config import Settings
from seamfix.discovery import SourcePath, discover
from seamfix.file_checker import CheckOptions, FileChecker
from seamfix.findings import Finding, sorted_findings
from seamfix.journal import journal_path
from seamfix.parallel import Failed, map_items, worker_count

# A worker process costs about as much to start as checking this many typical files.
PARALLEL_MIN_FILES = 200
CHUNK_FILES = 32


@dataclass
class LintResult:
    findings: list[Finding] = field(default_factory=list)  # sorted, display paths, baseline applied
    recorded: list[tuple[str, Finding]] = field(default_factory=list)  # (project path, finding), pre-baseline
    errors: list[str] = field(default_factory=list)
    files_checked: int = 0


def check_options(settings: Settings) -> CheckOptions:
    return CheckOptions(settings.codes, settings.vocabulary, settings.adapter_module_parts)


def lint_source(source: str | bytes, settings: Settings, relpath: str = "sample.py") -> list[Finding]:
    """Findings of one in-memory source (what rule samples and API users call)."""
    data = source.encode() if isinstance(source, str) else source
    return sorted_findings(FileChecker(check_options(settings)).check(data, relpath))


def lint(
    paths: list[Path],
    settings: Settings,
    *,
    cwd: Path,
    use_cache: bool = True,
    force_exclude: bool = False,
    jobs: int | None = None,
    apply_baseline: bool = True,
) -> LintResult:
    discovery = discover(paths, settings, force_exclude)
    options = check_options(settings)
    cache = LintCache(settings.cache_dir, options) if use_cache and settings.cache_dir else None
    per_file: dict[str, list[Finding]] = {}
    stats: dict[str, os.stat_result] = {}
    misses: list[SourcePath] = []
    errors = list(discovery.errors)
    if settings.cache_dir is not None and journal_path(settings.cache_dir).exists():
        errors.append(
            f"{_display(str(journal_path(settings.cache_dir)), cwd)}: an interrupted `seamfix apply` left its journal "
            "(the project may be half rewritten): run `seamfix apply` to complete or undo it"
        )
    for source in discovery.files:
        try:
            stat = os.stat(source.path)
        except OSError as exc:
            errors.append(f"{_display(source.path, cwd)}: cannot read: {exc.strerror or exc}")
            continue
        if not S_ISREG(stat.st_mode):  # a FIFO or device would block or never end
            errors.append(f"{_display(source.path, cwd)}: cannot read: not a regular file")
            continue
        cached = cache.get(source.relpath, stat) if cache else None
        if cached is None:
            misses.append(source)
            stats[source.relpath] = stat
        else:
            per_file[source.relpath] = cached
    checked, read_errors = _check_all(misses, options, jobs, cwd)
    errors += read_errors
    for relpath, findings in checked.items():
        per_file[relpath] = findings
        if cache:
            cache.put(relpath, stats[relpath], findings)
    if cache:
        cache.save()

    by_relpath = {source.relpath: source.path for source in discovery.files}
    recorded = [
        (relpath, finding._replace(path=_display(by_relpath[relpath], cwd)))
        for relpath in sorted(per_file)
        for finding in sorted_findings(per_file[relpath])
    ]
    kept = recorded
    if apply_baseline and settings.baseline is not None:
        from seamfix.baseline import new_findings, read_baseline

        kept = new_findings(recorded, read_baseline(settings.baseline))
    return LintResult(
        findings=sorted_findings([finding for _, finding in kept]),
        recorded=recorded,
        errors=sorted(errors),
        files_checked=len(discovery.files),
    )


def _check_all(
    misses: list[SourcePath], options: CheckOptions, jobs: int | None, cwd: Path
) -> tuple[dict[str, list[Finding]], list[str]]:
    """Read, prefilter and check files; over worker processes when there are enough of them."""
    results: dict[str, list[Finding]] = {}
    errors: list[str] = []
    workers = worker_count(jobs, len(misses), PARALLEL_MIN_FILES)
    outcomes = map_items(_check_one, misses, workers=workers, initializer=_init_worker, initargs=(options,),
                         chunksize=CHUNK_FILES)  # fmt: skip
    for source, outcome in outcomes:
        if isinstance(outcome, Failed):
            errors.append(f"{_display(source.path, cwd)}: cannot check: {outcome.reason}")
        elif isinstance(outcome, str):
            errors.append(f"{_display(source.path, cwd)}: cannot read: {outcome}")
        else:
            results[source.relpath] = outcome
    return results, errors


_worker_checker: FileChecker | None = None


def _init_worker(options: CheckOptions) -> None:
    global _worker_checker
    _worker_checker = FileChecker(options)


def _check_one(source: SourcePath) -> list[Finding] | str:
    """The file's findings, or why it cannot be read."""
    try:
        with open(source.path, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        return exc.strerror or str(exc)
    return _worker_checker.check(data, source.relpath)


def _display(path: str, cwd: Path) -> str:
    """Relative to the current directory when inside it, else absolute; always ``/``-separated."""
    base = str(cwd).rstrip(os.sep) + os.sep
    shown = path[len(base) :] if path.startswith(base) else path
    return shown.replace(os.sep, "/")
