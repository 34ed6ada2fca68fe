"""A finding and its stable order."""

from __future__ import annotations

from typing import NamedTuple


class Finding(NamedTuple):
    """One reported problem. Lines and columns are 1-based; ``end_column`` is one past the last character."""

    path: str
    line: int
    column: int
    end_line: int
    end_column: int
    code: str
    name: str
    message: str
    scope: str = ""
    content: str = ""
    kind: str = ""  # where the finding is (if-test, probe, ...), for `seamfix apply`
    atom: tuple[int, int, int, int] | None = None  # the MLA sub-expression: line, column, end line, end column

    @property
    def sort_key(self) -> tuple[str, int, int, str]:
        return (self.path, self.line, self.column, self.code)


def sorted_findings(findings: list[Finding]) -> list[Finding]:
    return sorted(findings, key=lambda f: f.sort_key)
