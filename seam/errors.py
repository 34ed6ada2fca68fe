"""The one exception type that the CLI turns into a one-line message and exit code 2, and that line."""

import click

from seamfix.report.printable import one_line


class SeamfixError(Exception):
    """A usage, configuration or input error; its message names the file and the problem."""


def echo_error(message: object, kind: str = "error") -> None:
    """``seamfix: error: MESSAGE`` on stderr, one line whatever the paths it names hold."""
    click.echo(f"seamfix: {kind}: {one_line(str(message))}", err=True)
