"""What `seamfix apply` tells the user: a progress bar while it works, a summary when it is done."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator

import click

from seamfix.codemods.apply import ApplyPlan
from seamfix.codemods.rewrite import FileRewrite

# Below this many files to rewrite a run is over before a bar would help.
PROGRESS_MIN_FILES = 8


def progress_bar(rewrites: Iterator[FileRewrite], total: int) -> Iterable[FileRewrite]:
    """``rewrites`` as they come, with a bar on stderr when it is a terminal and the run is long."""
    if total < PROGRESS_MIN_FILES or not sys.stderr.isatty():
        return rewrites
    return _with_bar(rewrites, total)


def _with_bar(rewrites: Iterator[FileRewrite], total: int) -> Iterator[FileRewrite]:
    with click.progressbar(rewrites, length=total, label="seamfix apply", file=sys.stderr) as bar:
        yield from bar


def summary(plan: ApplyPlan, written: bool) -> str:
    """Files changed, conditionals routed, arms moved, and every finding left with the reason."""
    if plan.changes:
        verb = "Rewrote" if written else "Would rewrite"
        lines = [f"{verb} {len(plan.changes)} files: {plan.routed} conditionals routed, {plan.moved} arms moved."]
    else:
        lines = ["Nothing to change."]
    if plan.kept_arms:
        lines.append(f"Routed the test but left the MLA arm ({len(plan.kept_arms)}):")
        lines += [f"  {why}" for why in plan.kept_arms]
    if plan.refused:
        lines.append(f"Left {len(plan.refused)} files untouched (their findings stay):")
        lines += [f"  {why}" for why in plan.refused]
    if plan.left:
        lines.append(f"Left {len(plan.left)} findings:")
        lines += [f"  {why}" for why in plan.left]
    return "\n".join(lines)
