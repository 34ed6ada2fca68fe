"""One parsed file as the shared analyses see it, and what they report on it."""

from __future__ import annotations

import ast
import bisect
from collections.abc import Iterator
from dataclasses import dataclass

from seamfix.analysis.expressions import MLAExpressions
from seamfix.findings import FindingKind


@dataclass(frozen=True)
class Hit:
    """A rule's report: the node to point at, the message, and for ``seamfix apply`` what kind of place the
    node is (``if-test``, ``probe``, ...) and the MLA sub-expression that made it a finding."""

    node: ast.AST
    message: str
    kind: FindingKind = FindingKind.OTHER
    atom: ast.AST | None = None


@dataclass
class SourceFile:
    """One parsed file as rules see it."""

    tree: ast.Module
    mla: MLAExpressions
    anchor_lines: list[int]
    has_walrus: bool = True

    def mentions_mla_between(self, first_line: int, last_line: int) -> bool:
        """True if a vocabulary anchor occurs on a line in ``[first_line, last_line]``."""
        index = bisect.bisect_left(self.anchor_lines, first_line)
        return index < len(self.anchor_lines) and self.anchor_lines[index] <= last_line

    def may_mention_mla(self, node: ast.AST) -> bool:
        """True if ``node``'s lines (a definition's decorators included) mention MLA vocabulary."""
        first = getattr(node, "lineno", None)
        if first is None:
            return True
        decorators = getattr(node, "decorator_list", None)
        if decorators:
            first = min(first, decorators[0].lineno)
        return self.mentions_mla_between(first, node.end_lineno or first)

    def walk_mentions(self, types: tuple[type, ...]) -> Iterator[ast.AST]:
        """Nodes of ``types`` on lines that mention MLA vocabulary (skips the rest of the tree)."""
        stack: list[ast.AST] = [self.tree]
        while stack:
            node = stack.pop()
            if not self.may_mention_mla(node):
                continue
            if isinstance(node, types):
                yield node
            stack.extend(ast.iter_child_nodes(node))
