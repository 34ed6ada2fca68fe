"""The ``seamfix`` command line: thin wrappers over the engine, exit codes as ruff's."""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path

import click

from seamfix import __version__
from seamfix.audit.command import audit_command
from seamfix.config import Settings
from seamfix.discovery import discover
from seamfix.engine import LintResult, display_path, lint, merge_results
from seamfix.errors import SeamfixError, echo_error
from seamfix.lint_rules import ALWAYS_ON, RULES, rule_for
from seamfix.projects import each_project
from seamfix.report import FORMATS, renderer
from seamfix.report.printable import one_line, printable

EXIT_CLEAN, EXIT_FINDINGS, EXIT_ERROR = 0, 1, 2


def _codes(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]) -> list[str] | None:
    """Each flag's comma-separated codes, as written (an empty or misspelt one is an error later, as ruff's);
    None when the flag is not given."""
    return [code for item in value for code in item.split(",")] or None


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="seamfix")
def cli() -> None:
    """Keep Multi-Latent Attention special cases behind one adapter seam.

    Exit codes: 0 no findings, 1 findings, 2 usage, configuration or internal error.
    """


@cli.command("lint")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option("--config", type=click.Path(path_type=Path), help="Config file (pyproject.toml or seamfix.toml).")
@click.option("--select", multiple=True, callback=_codes, help="Rule codes or prefixes to enable (replaces config).")
@click.option("--extend-select", multiple=True, callback=_codes, help="Rule codes or prefixes to add.")
@click.option("--ignore", multiple=True, callback=_codes, help="Rule codes or prefixes to disable.")
@click.option("--adapter", help="Path of the adapter module (the seam), relative to the project root.")
@click.option("--extend-exclude", multiple=True, help="Further exclude globs.")
@click.option(
    "--per-file-ignores", multiple=True, metavar="GLOB:CODES", help="Rule codes to ignore in matching files (adds)."
)
@click.option("--format", "output_format", type=click.Choice(sorted(FORMATS)), default="text", show_default=True)
@click.option("--statistics", is_flag=True, help="Print counts per rule instead of findings.")
@click.option("--show-files", is_flag=True, help="List the files that would be checked (as ruff's); check nothing.")
@click.option("--exit-zero", is_flag=True, help="Exit 0 even when there are findings.")
@click.option("--no-cache", is_flag=True, help="Neither read nor write the cache.")
@click.option("--cache-dir", type=click.Path(path_type=Path), help="Cache directory (default .seamfix_cache).")
@click.option("--baseline", type=click.Path(path_type=Path), help="Fail only on findings not recorded in FILE.")
@click.option("--write-baseline", type=click.Path(path_type=Path), help="Record today's findings in FILE; exit 0.")
@click.option("--force-exclude", is_flag=True, help="Apply exclude to paths given explicitly (for pre-commit).")
@click.option("--jobs", type=click.IntRange(min=1), help="Worker processes (default: available cores).")
def lint_command(paths: tuple[Path, ...], config: Path | None, output_format: str, statistics: bool,
                 show_files: bool, exit_zero: bool, no_cache: bool, write_baseline: Path | None, force_exclude: bool,
                 jobs: int | None, **overrides: object) -> None:  # fmt: skip
    """Report MLA-specific code outside the seam in PATHS (default: the current directory)."""
    cwd = Path.cwd()
    results: list[LintResult] = []
    listed: list[str] = []

    def lint_project(settings: Settings, targets: list[Path]) -> list[Path]:
        if show_files:
            found = discover(targets, settings, force_exclude, nested=config is None)
            listed.extend(display_path(source.path, cwd) for source in found.files)
            results.append(LintResult(errors=sorted(found.errors)))
            return found.nested
        results.append(lint(targets, settings, cwd=cwd, use_cache=not no_cache, force_exclude=force_exclude,
                            jobs=jobs, apply_baseline=write_baseline is None, nested=config is None))  # fmt: skip
        return results[-1].nested

    first_root, broken = each_project(cwd, config, paths, overrides, lint_project)
    results += [LintResult(errors=[error]) for _, error in broken]
    if write_baseline is not None and len(results) > 1:
        raise SeamfixError("--write-baseline records one project's findings: give paths of one project")
    result = merge_results(results)
    for error in result.errors:
        echo_error(error)
    if show_files:
        click.echo("".join(f"{printable(path)}\n" for path in sorted(set(listed))), nl=False)
        sys.exit(EXIT_ERROR if result.errors else EXIT_CLEAN)
    if write_baseline is not None:
        from seamfix.baseline import write_baseline as record_baseline

        record_baseline(write_baseline, result.recorded, first_root)
        click.echo(f"Wrote {len(result.recorded)} findings to {write_baseline}", err=True)
        sys.exit(EXIT_ERROR if result.errors else EXIT_CLEAN)
    if statistics:
        from seamfix.report.text import render_statistics

        click.echo(render_statistics(result.findings, output_format), nl=False)
    elif result.findings or not result.errors or output_format != "text":
        click.echo(renderer(output_format)(result.findings), nl=False)
    if result.errors:
        sys.exit(EXIT_ERROR)
    sys.exit(EXIT_FINDINGS if result.findings and not exit_zero else EXIT_CLEAN)


@cli.command("apply")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option("--config", type=click.Path(path_type=Path), help="Config file (pyproject.toml or seamfix.toml).")
@click.option("--adapter", help="Path of the adapter module (the seam), relative to the project root.")
@click.option("--extend-exclude", multiple=True, help="Further exclude globs.")
@click.option("--diff", "show_diff", is_flag=True, help="Print a unified diff and write nothing (exit 1 on changes).")
@click.option("--check", is_flag=True, help="Write nothing; exit 1 if anything would change.")
@click.option("--force-exclude", is_flag=True, help="Apply exclude to paths given explicitly (for pre-commit).")
@click.option("--jobs", type=click.IntRange(min=1), help="Worker processes (default: available cores).")
def apply_command(paths: tuple[Path, ...], config: Path | None, show_diff: bool, check: bool, force_exclude: bool,
                  jobs: int | None, **overrides: object) -> None:  # fmt: skip
    """Route the MLA branches in PATHS (default: the current directory) into the adapter module.

    Exit codes: 0 nothing left to fix, 1 findings remain (or, with --check/--diff, files would change),
    2 a file or the configuration could not be handled, 130 interrupted.
    """
    from contextlib import nullcontext

    from seamfix.codemods.apply import combined, journal_dir, plan_apply, projects_within, write_changes
    from seamfix.codemods.summary import progress_bar, summary
    from seamfix.journal import apply_lock

    cwd = Path.cwd()
    dry_run = show_diff or check
    plans, errors = [], []

    def apply_project(settings: Settings, targets: list[Path]) -> list[Path]:
        """Plan and write one project (its own adapter, journal and lock); a project that cannot be handled is
        an error and leaves only its own files untouched."""
        try:
            with nullcontext() if dry_run else apply_lock(journal_dir(settings)):
                plan = plan_apply(targets, settings, cwd=cwd, force_exclude=force_exclude, jobs=jobs,
                                  progress=progress_bar, recover_interrupted=not dry_run,
                                  nested=config is None)  # fmt: skip
                for note in plan.notes:
                    click.echo(f"seamfix: {one_line(note)}", err=True)
                for error in plan.errors:
                    echo_error(error)
                plan.skipped = [] if dry_run else write_changes(plan)
        except SeamfixError as exc:
            errors.append(str(exc))
            return projects_within(targets, settings, force_exclude) if config is None else []
        plans.append(plan)
        return plan.nested

    _, broken = each_project(cwd, config, paths, overrides, apply_project)
    config_errors = [error for _, error in broken]
    plan = combined(plans)
    for error in [*plan.skipped, *errors, *config_errors]:
        echo_error(error)
    if show_diff:
        click.echo(b"".join(change.diff() for change in plan.changes), nl=False)
    if plans:  # where no project could be applied, the errors say all
        click.echo(summary(plan, written=not dry_run), err=True)
    if plan.errors or plan.skipped or errors or config_errors:
        sys.exit(EXIT_ERROR)
    sys.exit(EXIT_FINDINGS if plan.remaining or (dry_run and plan.changes) else EXIT_CLEAN)


@cli.command("rules")
@click.option("--format", "output_format", type=click.Choice(["text", "json"]), default="text", show_default=True)
def rules_command(output_format: str) -> None:
    """List every rule: code, name, default (on, off, or always: cannot be turned off), summary."""
    if output_format == "json":
        rows = [
            {"code": c, "name": r.name, "default": _default(c) != "off", "always": c in ALWAYS_ON, "summary": r.summary}
            for c, r in RULES.items()
        ]
        click.echo(json.dumps(rows, indent=2))
        return
    width = max(len(rule.name) for rule in RULES.values())
    for code, rule in RULES.items():
        click.echo(f"{code}  {rule.name:<{width}}  {_default(code):<6}  {rule.summary}")


def _default(code: str) -> str:
    if code in ALWAYS_ON:
        return "always"
    return "on" if RULES[code].default_enabled else "off"


@cli.command("rule")
@click.argument("code")
def rule_command(code: str) -> None:
    """Print a rule's documentation (by code, e.g. SEAM001, or name, e.g. mla-conditional)."""
    rule = rule_for(code)
    if rule is None:
        raise SeamfixError(f"unknown rule `{code}` (see `seamfix rules`)")
    state = {"always": "always on, cannot be ignored", "on": "on by default", "off": "off by default"}[
        _default(rule.code)
    ]
    click.echo(f"# {rule.name} ({rule.code})\n\n{rule.summary} ({state}).\n\n{rule.doc()}")


@cli.command("doctor")
def doctor_command() -> None:
    """Compare the installed megatron-core's MLA classes, config and spec builders with what seamfix's adapter
    knows; exit 1 if anything changed that it does not handle yet."""
    try:
        from seamfix.runtime.megatron.doctor import report

        text, code = report()  # imports the MLA attention modules the release ships
    except ImportError as exc:  # megatron-core or torch missing, too old, or missing a module it imports
        raise SeamfixError(f"doctor cannot run: {exc}") from None
    click.echo(text, nl=False)
    sys.exit(code)


cli.add_command(audit_command)


class Interrupted(BaseException):
    """Ctrl-C, SIGTERM or SIGHUP (the terminal closed): a BaseException of seamfix's own, so that click does
    not turn it into "Aborted!" and no ``except Exception`` swallows it; cleanups run on the way out."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _interrupt(signum: int, frame: object) -> None:
    raise Interrupted(signum)


def main() -> None:
    # SIGHUP too: a dropped SSH session would otherwise kill apply mid-staging, its temporaries left in the tree
    for signum in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", signal.SIGTERM)):
        signal.signal(signum, _interrupt)
    try:
        cli.main(standalone_mode=False)
    except Interrupted as exc:
        click.echo("seamfix: interrupted", err=True)
        sys.exit(128 + exc.signum)  # 130 for Ctrl-C, 143 for SIGTERM, 129 for SIGHUP, as shells report them
    except SeamfixError as exc:
        echo_error(exc)
        sys.exit(EXIT_ERROR)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(EXIT_ERROR)
    except click.Abort:
        click.echo("Aborted!", err=True)
        sys.exit(EXIT_ERROR)
    except Exception as exc:  # noqa: BLE001 - the contract is one line and exit 2, never a traceback
        echo_error(f"{type(exc).__name__}: {exc}", "internal error")
        sys.exit(EXIT_ERROR)
