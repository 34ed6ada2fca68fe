"""The one exception type that the CLI turns into a one-line message and exit code 2."""


class SeamfixError(Exception):
    """A usage, configuration or input error; its message names the file and the problem."""
