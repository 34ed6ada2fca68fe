"""A finding, the kind of place it points at, and its stable order."""

from __future__ import annotations

import enum
from typing import NamedTuple


class FindingKind(enum.StrEnum):
    """What kind of place a finding points at, so that ``seamfix apply`` knows how to rewrite it.

    A ``StrEnum``: members compare equal to their values (``FindingKind.IF_TEST == "if-test"``), which is
    also what reports and the cache store."""

    OTHER = ""  # an import, a class use, an engine finding: nothing apply rewrites as a test
    IF_TEST = "if-test"
    WHILE_TEST = "while-test"
    IFEXP_TEST = "ifexp-test"
    ASSERT_TEST = "assert-test"
    COMPREHENSION_FILTER = "comprehension-filter"
    FILTER_PREDICATE = "filter-predicate"  # the predicate handed to filter()/filterfalse()/takewhile()/dropwhile()
    MATCH_SUBJECT = "match-subject"
    CASE_PATTERN = "case-pattern"
    CASE_GUARD = "case-guard"
    BOOLOP_OPERAND = "boolop-operand"
    ARITHMETIC_OPERAND = "arithmetic-operand"  # n_heads * (1 + cfg.multi_latent_attention): a bool counted
    SUBSCRIPT_SLICE = "subscript-slice"
    PROBE = "probe"  # getattr(x, "<mla field>", default), hasattr, isinstance, mapping.get("<mla key>")
    TRY_PROBE = "try-probe"  # an MLA read inside `try:` whose `except AttributeError/KeyError` decides on it
    DECORATOR_ARGUMENT = "decorator-argument"  # @register(MLASelfAttention): a registration keyed on MLA


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
    kind: FindingKind = FindingKind.OTHER  # where the finding is, for `seamfix apply`
    atom: tuple[int, int, int, int] | None = None  # the MLA sub-expression: line, column, end line, end column

    @property
    def sort_key(self) -> tuple[str, int, int, str]:
        return (self.path, self.line, self.column, self.code)

    def row(self) -> tuple:
        """The fields as plain values (``marshal`` takes no enum members), read back by ``from_row``."""
        return (*self[:10], str(self.kind), self.atom)

    @classmethod
    def from_row(cls, row: tuple) -> Finding:
        finding = cls(*row)
        return finding._replace(kind=FindingKind(finding.kind))


def sorted_findings(findings: list[Finding]) -> list[Finding]:
    return sorted(findings, key=lambda f: f.sort_key)
