"""What a seamfix rule is: a code, a kebab-case name, a doc, and its own VALID / INVALID samples."""

from __future__ import annotations

import abc
from collections.abc import Iterable
from dataclasses import dataclass
from typing import ClassVar

from seamfix.analysis.source import Hit, SourceFile


@dataclass(frozen=True)
class Invalid:
    """A sample that must produce findings of its rule: ``count`` of them, the first on ``line``."""

    source: str
    line: int | None = None
    count: int = 1


class RuleInfo:
    """The documented identity of a rule. The class docstring is its doc (why, how to fix, example)."""

    code: ClassVar[str]
    name: ClassVar[str]
    summary: ClassVar[str]
    default_enabled: ClassVar[bool] = True
    VALID: ClassVar[tuple[str, ...]] = ()
    INVALID: ClassVar[tuple[Invalid, ...]] = ()

    @classmethod
    def doc(cls) -> str:
        import inspect  # only `seamfix rule` and reports need docs; lint startup does not

        return inspect.cleandoc(cls.__doc__ or "")


class AstRule(RuleInfo, abc.ABC):
    """A rule that inspects the syntax tree of a file outside the seam."""

    @abc.abstractmethod
    def check(self, source: SourceFile) -> Iterable[Hit]:
        """The rule's findings in one file."""


class EngineRule(RuleInfo):
    """A rule the engine itself reports (syntax errors, unused suppressions); documented like any other."""
