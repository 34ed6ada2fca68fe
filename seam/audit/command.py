"""The ``seamfix audit`` command (thin: the work is in this package's other modules)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from seamfix.errors import SeamfixError, echo_error

AUDIT_FORMATS = ("text", "json", "markdown")
HISTORY_FORMATS = ("csv", "json", "html")


def _revision(_context: click.Context, _parameter: click.Parameter, value: str | None) -> str | None:
    """A revision given empty (an unset shell variable) is refused: read as not given, it would audit another
    change, against the default branch or the working tree."""
    if value is not None and not value.strip():
        raise click.BadParameter("an empty revision (an unset variable?)")
    return value


@click.command("audit")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option(
    "--since",
    metavar="REV",
    callback=_revision,
    help="Start of the change (default: merge-base with the default branch).",
)
@click.option("--until", metavar="REV", callback=_revision, help="End of the change (default: the working tree).")
@click.option("--history", type=click.IntRange(min=1), metavar="N", help="Seam width over the last N commits.")
@click.option(
    "--format",
    "output_format",
    type=click.Choice(sorted({*AUDIT_FORMATS, *HISTORY_FORMATS})),
    help="audit: text (default), json, markdown; --history: csv (default), json, html.",
)
@click.option("-o", "--output", type=click.Path(path_type=Path), help="Write the report to FILE instead of stdout.")
@click.option("--config", type=click.Path(path_type=Path), help="Config file (pyproject.toml or seamfix.toml).")
def audit_command(
    paths: tuple[Path, ...],
    since: str | None,
    until: str | None,
    history: int | None,
    output_format: str | None,
    output: Path | None,
    config: Path | None,
) -> None:
    """Classify the changed Python hunks between two revisions as inside the seam, MLA code added or changed
    outside it (the seam leaked: exit 1), MLA code removed from outside it (narrowing), or generic; and
    report the seam's width before and after."""
    from seamfix.atomic import write_atomic
    from seamfix.audit.audit import audit
    from seamfix.audit.git import Git
    from seamfix.audit.projects import Projects

    allowed = HISTORY_FORMATS if history else AUDIT_FORMATS
    output_format = output_format or allowed[0]
    if output_format not in allowed:
        mode = "--history" if history else "audit"
        raise click.UsageError(f"--format {output_format} is not one of {', '.join(allowed)} for {mode}")
    if history and (since or until or paths):
        raise click.UsageError("--history takes no revisions or paths")
    cwd = Path.cwd()
    git = Git(cwd)
    projects = Projects(git, cwd, config, list(paths))
    if history:
        from seamfix.audit.history import RENDERERS
        from seamfix.audit.history import history as width_history

        text, leaked, errors = RENDERERS[output_format](width_history(projects, history)), False, projects.errors
    else:
        from seamfix.audit.report import RENDERERS

        report = audit(git, projects, since, until, list(paths))
        text, leaked, errors = RENDERERS[output_format](report), report.leaked, report.errors
    for error in errors:
        echo_error(error)
    if output is None:
        click.echo(text, nl=False)
    else:
        try:
            write_atomic(output, text.encode(), projects.first_root)
        except OSError as exc:
            raise SeamfixError(f"{output}: cannot write: {exc.strerror or exc}") from None
    sys.exit(2 if errors else 1 if leaked else 0)
