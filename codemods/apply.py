"""``seamfix apply`` end to end: lint, rewrite the files with findings (over processes), merge the adapter,
then write it all as one transaction (``seamfix.journal``)."""

from __future__ import annotations

import difflib
import functools
import gc
import os
import stat
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from seamfix.cache import content_digest
from seamfix.codemods.adapter_module import copyright_notice, merge_adapter, name_placeholders
from seamfix.codemods.adapter_reach import adapter_unreachable
from seamfix.codemods.context import Seam
from seamfix.codemods.formatting import format_touched
from seamfix.codemods.project import Project
from seamfix.codemods.rewrite import FileRewrite, relocated, rewrite_file
from seamfix.codemods.self_check import refuse_failing
from seamfix.config import DEFAULT_CACHE_DIR, Settings
from seamfix.discovery import discover
from seamfix.engine import check_options, lint
from seamfix.errors import SeamfixError
from seamfix.file_checker import FileChecker
from seamfix.findings import Finding
from seamfix.journal import FileWrite, commit, recover
from seamfix.lint_rules import RULES
from seamfix.parallel import Failed, call_with_room, map_items, worker_count
from seamfix.seam_surface import SeamSurface, adapter_submodules, surface_of

# Wraps the stream of files' outcomes as they finish (a progress bar), given how many there will be.
Progress = Callable[[Iterator, int], Iterable]
# LibCST costs about this many files' worth of worker start-up before processes pay off.
PARALLEL_MIN_FILES = 4
_FIXABLE = ("SEAM001", "SEAM901")


@dataclass
class Change:
    path: Path  # absolute, without symlinks
    display: str
    old: bytes | None  # the bytes read; None for a file apply creates
    new: bytes
    required: bool = False  # the adapter and its package's __init__.py: written first, all or nothing

    def diff(self) -> bytes:
        """A unified diff of the file's bytes, lines split where Python splits them (CR, LF, CRLF; not at a form
        feed or U+2028 as ``str.splitlines``), so that ``git apply`` or ``patch`` writes exactly what apply does,
        in the file's own encoding."""
        old, new = (self.old or b"").splitlines(keepends=True), self.new.splitlines(keepends=True)
        before = b"/dev/null" if self.old is None else b"a/" + os.fsencode(self.display)
        lines = difflib.diff_bytes(difflib.unified_diff, old, new, before, b"b/" + os.fsencode(self.display))
        return b"".join(line if line.endswith(b"\n") else line + b"\n\\ No newline at end of file\n" for line in lines)


@dataclass
class ApplyPlan:
    journal_dir: Path
    changes: list[Change] = field(default_factory=list)  # the adapter's files first, then builders (sorted)
    routed: int = 0
    moved: int = 0
    remaining: list[str] = field(default_factory=list)  # "path:line:column: CODE why": findings left after it
    kept_arms: list[str] = field(default_factory=list)  # "path:line:column: why" for MLA arms not moved
    refused: list[str] = field(default_factory=list)  # "path: why" for valid files left untouched
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what finishing an interrupted run did
    nested: list[Path] = field(default_factory=list)  # folders met that have a configuration of their own
    skipped: list[str] = field(default_factory=list)  # errors of the files the write skipped (edited meanwhile)


def combined(plans: list[ApplyPlan]) -> ApplyPlan:
    """Several projects' plans (each written under its own journal) as one, for the summary and the diff."""
    total = ApplyPlan(plans[0].journal_dir if plans else Path())
    for plan in plans:
        total.changes += plan.changes
        total.routed += plan.routed
        total.moved += plan.moved
        for name in ("remaining", "kept_arms", "refused", "errors", "notes", "nested", "skipped"):
            getattr(total, name).extend(getattr(plan, name))
    return total


def projects_within(paths: list[Path], settings: Settings, force_exclude: bool) -> list[Path]:
    """The folders under ``paths`` that hold a configuration of their own: where a walk goes on when this
    project cannot be applied (its own files are left untouched)."""
    return discover(paths, settings, force_exclude, nested=True).nested


@dataclass
class _Rewritten:
    original: bytes
    rewrite: FileRewrite


def _collecting_less(function: Callable) -> Callable:
    """``function`` run with the garbage collector's youngest generation collected every 100,000 allocations
    rather than 700: apply builds millions of LibCST and ``ast`` nodes, hardly any in a reference cycle, and
    each older generation's collection walks them all (a tenth of apply's time on a big file). Workers
    forked meanwhile inherit it."""

    @functools.wraps(function)
    def run(*args, **kwargs):
        thresholds = gc.get_threshold()
        gc.set_threshold(100_000, *thresholds[1:])
        try:
            return function(*args, **kwargs)
        finally:
            gc.set_threshold(*thresholds)

    return run


@_collecting_less
def plan_apply(
    paths: list[Path],
    settings: Settings,
    *,
    cwd: Path,
    force_exclude: bool = False,
    jobs: int | None = None,
    progress: Progress = lambda rewrites, total: rewrites,
    recover_interrupted: bool = True,
    nested: bool = False,
) -> ApplyPlan:
    """Everything ``seamfix apply`` would write, without writing it. First finishes or undoes what an
    interrupted run left (``recover_interrupted``; without it such a project is an error, reported by the
    lint). Run it under ``journal.apply_lock(plan.journal_dir)`` when the plan is to be written. ``nested``: folders
    holding a configuration of their own are left out of this plan and listed in ``plan.nested`` (as lint's)."""
    if settings.adapter is None:
        where = f"{_display(settings.config_file, cwd)}: " if settings.config_file else ""
        raise SeamfixError(f"{where}`seamfix apply` needs `adapter` in [tool.seamfix] (or --adapter): where the seam "
                           "goes (each configuration file needs its own, or `extend`s one that has it)")  # fmt: skip
    root = Path(os.path.realpath(settings.root))
    unreachable = adapter_unreachable(root, settings.adapter, settings.adapter_module_parts)
    if unreachable is not None:
        raise SeamfixError(
            f"{settings.adapter}: builders could not import the adapter: {unreachable}; nothing was changed"
        )
    plan = ApplyPlan(journal_dir(settings))
    if recover_interrupted:
        plan.notes, plan.errors = recover(plan.journal_dir)
    result = lint(paths, settings, cwd=cwd, force_exclude=force_exclude, jobs=jobs, apply_baseline=False,
                  nested=nested)  # fmt: skip
    plan.errors += result.errors
    plan.nested = result.nested
    by_file: dict[str, list[Finding]] = {}
    for relpath, finding in result.recorded:
        by_file.setdefault(relpath, []).append(finding)
    fixable = [relpath for relpath, findings in by_file.items() if any(f.code in _FIXABLE for f in findings)]
    targets, left = _targets(fixable, settings, root)
    adapter = Path(os.path.realpath(root / settings.adapter))
    if (root / settings.adapter).is_symlink() and adapter in {root / target for target in targets.values()}:
        raise SeamfixError(
            f"{_display(root / settings.adapter, cwd)}: the adapter is a symlink to {_display(adapter, cwd)}, a file "
            "apply would rewrite as a builder: both rewrites would go to one file; nothing was changed"
        )
    plan.errors += [f"{by_file[relpath][0].path}: not rewritten: {why}" for relpath, why in left.items()]
    displays = {target: _display(root / target, cwd) for target in set(targets.values())}
    project = Project.scan(settings, sorted(set(targets.values())))
    rewritten = _rewrite_all(sorted(displays), settings, project, jobs, progress, displays, plan.errors,
                             result.checked)  # fmt: skip
    existing = _read_adapter(adapter)
    existing_text = _decode(existing, adapter)

    merged: dict[tuple, tuple[str, dict[str, str]]] = {}
    notice = copyright_notice(done.original for _, done in sorted(rewritten.items()))

    def merge(functions):
        """The adapter holding ``functions``, merged once for the self-check and what is written alike."""
        key = tuple(functions)
        if key not in merged:
            # a deeply nested expression may have moved into it
            merged[key] = call_with_room(merge_adapter, existing_text, functions, adapter, project.seam_reads, notice)
        return merged[key]

    polished: dict[tuple[str, bytes], bytes] = {}  # (target, named output) -> formatted: once per output
    # The seam's own module, not its top package: in a namespace package (`megatron.bridge` first-party,
    # `megatron.core` installed) the top package would drag the installed half into the first-party section.
    seam_module = ".".join(settings.adapter_module_parts)

    def polish(outputs: list[tuple[str, bytes, bytes]]) -> list[bytes]:
        todo = [(target, old, new) for target, old, new in outputs if (target, new) not in polished]
        formatted = format_touched([(root / target, old, new) for target, old, new in todo], seam_module)
        polished.update(((target, new), result) for (target, _, new), result in zip(todo, formatted, strict=True))
        return [polished[(target, new)] for target, _, new in outputs]

    rewrites = [done.rewrite for done in rewritten.values()]
    originals = {target: done.original for target, done in rewritten.items()}
    adapter_names = (settings.adapter, ".".join(settings.adapter_module_parts))
    refuse_failing(rewrites, originals, adapter_names, existing_text, merge, polish)
    adapter_text, names = merge([function for rewrite in rewrites for function in rewrite.functions])
    if adapter_text and adapter_text.encode() != existing:
        if existing is not None and (why := _not_replaceable(adapter)) is not None:
            raise SeamfixError(f"{_display(adapter, cwd)}: cannot rewrite the adapter: {why}; nothing was changed")
        plan.changes += _package_files(adapter.parent, cwd)
        plan.changes.append(Change(adapter, _display(adapter, cwd), existing, adapter_text.encode(), required=True))
    reasons: dict[tuple[str, str], str] = {  # (target, "line:column") -> why apply left that finding
        (relpath, f"{f.line}:{f.column}"): f"not rewritten: {why}"
        for relpath, why in left.items()
        for f in by_file[relpath]
    }
    by_target = {target: by_file[relpath] for relpath, target in targets.items()}
    finals = []
    for target, done in sorted(rewritten.items()):
        rewrite = done.rewrite
        plan.routed += rewrite.routed
        plan.moved += rewrite.moved
        if rewrite.refused:
            plan.refused.append(f"{displays[target]}: {rewrite.refused}")
            reasons.update(((target, f"{f.line}:{f.column}"), rewrite.refused) for f in by_target.get(target, ()))
        named = name_placeholders(rewrite.data, names)
        finals.append((target, named if named == done.original else polish([(target, done.original, named)])[0]))
        # Formatting may add or join lines: the summary names the lines of the file as written.
        plan.kept_arms += [f"{displays[target]}:{why}" for why in relocated(rewrite.kept_arms, named, finals[-1][1])]
        left = relocated(rewrite.left, named, finals[-1][1])
        reasons.update(((target, why.split(": ", 1)[0]), why.split(": ", 1)[1]) for why in left)
        if finals[-1][1] != done.original:
            plan.changes.append(Change(root / target, displays[target], done.original, finals[-1][1]))
    # Checked against the adapter as it will be, so that calls into its new functions are no findings.
    final_adapter = adapter_text.encode() if adapter_text else existing
    surface = surface_of(settings.adapter, final_adapter, adapter_submodules(root, settings.adapter))
    after = _check_finals(finals, settings, surface, jobs, displays, plan.errors)
    plan.remaining = _remaining(by_file, targets, after, reasons, settings)
    return plan


def _check_finals(finals: list[tuple[str, bytes]], settings: Settings, surface: SeamSurface, jobs: int | None,
                  displays: dict[str, str], errors: list[str]) -> dict[str, list[Finding]]:  # fmt: skip
    """Each rewritten file's findings once written (what decides the exit code, --check's included)."""
    workers = worker_count(jobs, len(finals), PARALLEL_MIN_FILES)
    initargs = (check_options(settings, surface), Seam(settings.adapter_module_parts))
    after = {}
    for (target, _), outcome in map_items(_check_final, finals, workers=workers, initializer=_init_worker,
                                          initargs=initargs):  # fmt: skip
        if isinstance(outcome, Failed):
            errors.append(f"{displays[target]}: cannot check the rewritten file: {outcome.reason}")
        else:
            after[target] = outcome
    return after


def _check_final(item: tuple[str, bytes]) -> list[Finding]:
    target, data = item
    return _worker[0].check(data, target)


def journal_dir(settings: Settings) -> Path:
    """Where apply keeps its journal and lock: the cache folder."""
    return settings.cache_dir or settings.root / DEFAULT_CACHE_DIR


def _targets(relpaths: list[str], settings: Settings, root: Path) -> tuple[dict[str, str], dict[str, str]]:
    """Each file to rewrite -> the project path of the real file behind it, and each file left -> why. A
    file reached through a symlink (its own or a folder's) is rewritten at its target, once, when that is a
    checked file of the project; never outside the project, and a symlink is never replaced by a file."""
    targets, left = {}, {}
    for relpath in relpaths:
        real = os.path.realpath(root / relpath)
        target = os.path.relpath(real, root).replace(os.sep, "/")
        if target == ".." or target.startswith("../"):
            left[relpath] = f"its real path {real} is outside the project ({root})"
        elif target != relpath and (settings.is_seam(target) or settings.exclude.matches_within(target)):
            left[relpath] = f"a symlink to {target}, which is excluded or in the seam"
        elif (why := _not_replaceable(real)) is not None:
            left[relpath] = why
        else:
            targets[relpath] = target
    return targets, left


def _not_replaceable(path: str | Path) -> str | None:
    """Why apply must not replace the existing file at ``path`` (renaming a new file over it) though its
    folder is writable: a file without write permission (a Perforce checkout not opened for edit, a file
    locked by hand) is one its owner keeps as it is, and a file with hard links would keep the old text
    under its other names (an editor writes in place and keeps them)."""
    try:
        status = os.stat(path)
    except OSError:
        return None  # reading it reports the problem
    if not status.st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH):
        return f"it is read-only (mode {stat.S_IMODE(status.st_mode):o}); make it writable to let apply rewrite it"
    if status.st_nlink > 1:
        return (f"it has {status.st_nlink} hard links: replacing it would leave the old text under the other "
                f"names; make it a plain file or a symlink")  # fmt: skip
    return None


def _rewrite_all(targets: list[str], settings: Settings, project: Project, jobs: int | None, progress: Progress,
                 displays: dict[str, str], errors: list[str],
                 checked: dict[str, tuple[bytes, list[Finding]]]) -> dict[str, _Rewritten]:  # fmt: skip
    """Each file rewritten (over processes, largest first so that no worker is left with a big one at the
    end); a file that cannot be read, parsed or handled is an error naming it, and left as it is.

    A worker takes the lint's findings of its file only when this run ``checked`` the very bytes it reads;
    otherwise it checks the file again: cached findings are keyed by seamfix's version, not its code, and
    an older build's findings lack the locations the codemods need."""
    work = sorted(((str(settings.root / target), target, checked.get(target)) for target in targets),
                  key=lambda item: -_size(item[0]))  # fmt: skip
    workers = worker_count(jobs, len(work), PARALLEL_MIN_FILES)
    initargs = (check_options(settings), Seam(settings.adapter_module_parts), project)
    outcomes = map_items(_rewrite_one, work, workers=workers, initializer=_init_worker, initargs=initargs)
    done: dict[str, _Rewritten] = {}
    for (_, target, _), outcome in progress(outcomes, len(work)):
        if isinstance(outcome, Failed):
            errors.append(f"{displays[target]}: not rewritten: {outcome.reason}")
        elif isinstance(outcome, str):
            errors.append(f"{displays[target]}: {outcome}")
        elif outcome.rewrite.error:
            errors.append(f"{displays[target]}: {outcome.rewrite.error}")
        else:
            done[target] = outcome
    return done


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0  # _rewrite_one reports it


_worker: tuple[FileChecker, Seam, Project | None] | None = None


def _init_worker(options, seam: Seam, project: Project | None = None) -> None:
    global _worker
    _worker = (FileChecker(options), seam, project)


def _rewrite_one(item: tuple[str, str, tuple[bytes, list[Finding]] | None]) -> _Rewritten | str:
    path, relpath, checked = item
    checker, seam, project = _worker
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        return f"cannot read: {exc.strerror or exc}"
    findings = checked[1] if checked is not None and checked[0] == content_digest(data) else None
    return _Rewritten(data, rewrite_file(data, relpath, checker, seam, project, findings))


def _read_adapter(path: Path) -> bytes | None:
    if os.path.isdir(path):
        raise SeamfixError(f"{path}: the adapter is a folder; `adapter` must name a .py file")
    if os.path.exists(path) and not os.path.isfile(path):
        raise SeamfixError(
            f"{path}: the adapter is not a regular file (a FIFO or device); `adapter` must name a .py file"
        )
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise SeamfixError(f"{path}: cannot read the adapter: {exc.strerror or exc}") from None


def _decode(data: bytes | None, path: Path) -> str | None:
    try:
        return None if data is None else data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SeamfixError(f"{path}: cannot read the adapter: not UTF-8 ({exc.reason})") from None


def _package_files(folder: Path, cwd: Path) -> list[Change]:
    """The empty ``__init__.py`` of each folder apply creates for the adapter whose parent is a package
    (so that ``from pkg.seam import mla_seam`` works as ``pkg``'s other imports do)."""
    missing = []
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    created = []
    package = (folder / "__init__.py").is_file()
    for new in reversed(missing):
        if package:
            created.append(Change(new / "__init__.py", _display(new / "__init__.py", cwd), None, b"", required=True))
    return created


def _remaining(by_file: dict[str, list[Finding]], targets: dict[str, str], after: dict[str, list[Finding]],
               reasons: dict[tuple[str, str], str], settings: Settings) -> list[str]:  # fmt: skip
    """What the lint will report once the plan is written, each with why apply leaves it."""
    left = []
    for relpath, findings in sorted(by_file.items()):
        target = targets.get(relpath)
        if target in after:
            findings = [f._replace(path=findings[0].path) for f in after[target]]
        left += [(relpath, finding) for finding in findings]
    if settings.baseline is not None:
        from seamfix.baseline import new_findings, read_baseline

        left = new_findings(left, read_baseline(settings.baseline))
    lines = []
    for relpath, f in left:
        why = reasons.get((targets.get(relpath, relpath), f"{f.line}:{f.column}"))
        if why is None and f.code in _FIXABLE:
            why = f"{f.message}: no codemod handles it"
        elif why is None:
            why = f"{f.message}: apply does not fix {RULES[f.code].name}"
        lines.append(f"{f.path}:{f.line}:{f.column}: {f.code} {why}")
    return lines


def _display(path: Path, cwd: Path) -> str:
    return os.path.relpath(path, cwd).replace(os.sep, "/")


def write_changes(plan: ApplyPlan) -> list[str]:
    """Write the plan as one transaction; the errors of the files it had to skip (edited meanwhile, or not
    writable)."""
    writes = [FileWrite(c.path, c.display, c.old, c.new, c.required) for c in plan.changes]
    return commit(writes, plan.journal_dir) if writes else []
