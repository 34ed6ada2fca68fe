"""``seamfix lint`` end to end: discover, reuse cached results, check the rest over processes, baseline."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from seamfix.cache import LintCache, content_digest
from seamfix.config import Settings
from seamfix.discovery import SourcePath, discover
from seamfix.file_checker import CheckOptions, FileChecker
from seamfix.findings import Finding, sorted_findings
from seamfix.journal import journal_path
from seamfix.parallel import Failed, map_items, worker_count
from seamfix.reading import read_error, read_regular_file
from seamfix.seam_surface import SeamSurface, read_surface

# A worker process costs about as much to start as checking this many typical files.
PARALLEL_MIN_FILES = 200
CHUNK_FILES = 32


@dataclass
class LintResult:
    findings: list[Finding] = field(default_factory=list)  # sorted, display paths, baseline applied
    recorded: list[tuple[str, Finding]] = field(default_factory=list)  # (project path, finding), pre-baseline
    errors: list[str] = field(default_factory=list)
    files_checked: int = 0
    # Files checked by this run (not taken from the cache): project path -> digest of the bytes checked and
    # all their findings, before per-file ignores (what `seamfix apply` would otherwise compute again).
    checked: dict[str, tuple[bytes, list[Finding]]] = field(default_factory=dict)
    nested: list[Path] = field(default_factory=list)  # folders left to their own configuration (``nested=True``)


def check_options(settings: Settings, surface: SeamSurface | None = None) -> CheckOptions:
    """What checking a file depends on; the adapter's ``surface`` is read from disk unless given."""
    if surface is None and settings.adapter is not None:
        surface = read_surface(settings.root, settings.adapter)
    return CheckOptions(settings.codes, settings.vocabulary, settings.adapter_module_parts, surface, settings.src)


def not_ignored(findings: list[Finding], settings: Settings, relpath: str) -> list[Finding]:
    """A project file's ``findings`` less those of the codes ``per-file-ignores`` turn off for it."""
    ignored = settings.ignored_codes(relpath) if findings else ()
    return [finding for finding in findings if finding.code not in ignored] if ignored else findings


def lint_source(
    source: str | bytes, settings: Settings, relpath: str = "sample.py", surface: SeamSurface | None = None
) -> list[Finding]:
    """Findings of one in-memory source (what rule samples and API users call), the adapter's ``surface``
    read from disk unless given."""
    data = source.encode() if isinstance(source, str) else source
    return sorted_findings(FileChecker(check_options(settings, surface)).check(data, relpath))


def lint(
    paths: list[Path],
    settings: Settings,
    *,
    cwd: Path,
    use_cache: bool = True,
    force_exclude: bool = False,
    jobs: int | None = None,
    apply_baseline: bool = True,
    nested: bool = False,
) -> LintResult:
    discovery = discover(paths, settings, force_exclude, nested)
    options = check_options(settings)
    cache = LintCache(settings.cache_dir, settings.root, options) if use_cache and settings.cache_dir else None
    per_file: dict[str, list[Finding]] = {}
    misses: list[SourcePath] = []
    errors = list(discovery.errors)
    if settings.cache_dir is not None and journal_path(settings.cache_dir).exists():
        errors.append(
            f"{display_path(str(journal_path(settings.cache_dir)), cwd)}: an interrupted `seamfix apply` left its "
            "journal (the project may be half rewritten): run `seamfix apply` to complete or undo it"
        )
    for source in discovery.files:
        if cache is None:
            misses.append(source)
            continue
        try:
            data = read_regular_file(source.path)
        except OSError as exc:
            errors.append(f"{display_path(source.path, cwd)}: cannot read: {read_error(exc)}")
            continue
        # Only a hit is taken from these bytes; a miss is read again and keyed by what its check read.
        cached = cache.get(source.relpath, content_digest(data))
        if cached is None:
            misses.append(source)
        else:
            per_file[source.relpath] = cached
    checked, read_errors = _check_all(misses, options, jobs, cwd)
    errors += read_errors
    for relpath, (digest, findings) in checked.items():
        per_file[relpath] = findings
        if cache:
            cache.put(relpath, digest, findings)
    if cache:
        cache.save()
    for relpath, findings in per_file.items():
        per_file[relpath] = not_ignored(findings, settings, relpath)

    by_relpath = {source.relpath: source.path for source in discovery.files}
    recorded = [
        (relpath, finding._replace(path=display_path(by_relpath[relpath], cwd)))
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
        checked=checked,
        nested=discovery.nested,
    )


def merge_results(results: list[LintResult]) -> LintResult:
    """One result of the runs over several projects (each with its own configuration). A file two runs reached
    (given explicitly, and again in a walk that handed its folder to the nested project) is reported once."""
    if len(results) == 1:
        return results[0]
    return LintResult(
        findings=sorted_findings(list(dict.fromkeys(finding for result in results for finding in result.findings))),
        recorded=[recorded for result in results for recorded in result.recorded],
        errors=sorted({error for result in results for error in result.errors}),
        files_checked=sum(result.files_checked for result in results),
    )


def _check_all(
    misses: list[SourcePath], options: CheckOptions, jobs: int | None, cwd: Path
) -> tuple[dict[str, tuple[bytes, list[Finding]]], list[str]]:
    """Read, prefilter and check files, over worker processes when there are enough of them: each file's
    findings with the digest of the very bytes they were computed from (what the cache keys them by)."""
    results: dict[str, tuple[bytes, list[Finding]]] = {}
    errors: list[str] = []
    workers = worker_count(jobs, len(misses), PARALLEL_MIN_FILES)
    outcomes = map_items(_check_one, misses, workers=workers, initializer=_init_worker, initargs=(options,),
                         chunksize=CHUNK_FILES)  # fmt: skip
    for source, outcome in outcomes:
        if isinstance(outcome, Failed):
            errors.append(f"{display_path(source.path, cwd)}: cannot check: {outcome.reason}")
        elif isinstance(outcome, str):
            errors.append(f"{display_path(source.path, cwd)}: cannot read: {outcome}")
        else:
            results[source.relpath] = outcome
    return results, errors


_worker_checker: FileChecker | None = None


def _init_worker(options: CheckOptions) -> None:
    global _worker_checker
    _worker_checker = FileChecker(options)


def _check_one(source: SourcePath) -> tuple[bytes, list[Finding]] | str:
    """The file's findings with the digest of the bytes they were computed from, or why it cannot be read."""
    try:
        data = read_regular_file(source.path)
    except OSError as exc:
        return read_error(exc)
    return content_digest(data), _worker_checker.check(data, source.relpath)


def display_path(path: str, cwd: Path) -> str:
    """Relative to the current directory when inside it, else absolute; always ``/``-separated."""
    base = str(cwd).rstrip(os.sep) + os.sep
    shown = path[len(base) :] if path.startswith(base) else path
    return shown.replace(os.sep, "/")
