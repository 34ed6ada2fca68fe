"""What `seamfix apply` tells the user: a progress bar while it works, a summary when it is done."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

import click

from seamfix.codemods.apply import ApplyPlan

Done = TypeVar("Done")  # one file's outcome

# Below this many files to rewrite a run is over before a bar would help.
PROGRESS_MIN_FILES = 8


def progress_bar(rewrites: Iterator[Done], total: int) -> Iterable[Done]:
    """Each file's outcome as it comes, with a bar on stderr when it is a terminal and the run is long."""
    if total < PROGRESS_MIN_FILES or not sys.stderr.isatty():
        return rewrites
    return _with_bar(rewrites, total)


def _with_bar(rewrites: Iterator[Done], total: int) -> Iterator[Done]:
    with click.progressbar(rewrites, length=total, label="seamfix apply", file=sys.stderr) as bar:
        yield from bar


def _counted(count: int, noun: str) -> str:
    """``1 file``, ``2 files``: as ruff says ``Found 1 error.``"""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def summary(plan: ApplyPlan, written: bool) -> str:
    """Files changed, conditionals routed, arms moved, and every finding left with the reason."""
    if plan.changes:
        verb = "Rewrote" if written else "Would rewrite"
        count = len(plan.changes) - len(plan.skipped)
        lines = [
            f"{verb} {_counted(count, 'file')}: {_counted(plan.routed, 'conditional')} routed, "
            f"{_counted(plan.moved, 'arm')} moved."
        ]
    else:
        lines = ["Nothing to change."]
    if plan.kept_arms:
        lines.append(f"Routed the test but left the MLA arm ({len(plan.kept_arms)}):")
        lines += [f"  {why}" for why in plan.kept_arms]
    if plan.refused:
        lines.append(f"Left {_counted(len(plan.refused), 'file')} untouched (their findings stay):")
        lines += [f"  {why}" for why in plan.refused]
    if plan.remaining:
        lines.append(f"Left {_counted(len(plan.remaining), 'finding')} that apply cannot fix:")
        lines += [f"  {why}" for why in plan.remaining]
    return "\n".join(lines)
