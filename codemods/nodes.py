"""Finding spans to LibCST nodes, and the few node facts every codemod asks."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import fields
from functools import cache
from pathlib import PurePosixPath

import libcst as cst
from libcst.metadata import CodeRange

Span = tuple[int, int, int, int]  # 1-based line, 0-based column, end line, end column (exclusive)


def finding_span(line: int, column: int, end_line: int, end_column: int) -> Span:
    """A finding's 1-based character columns as LibCST's 0-based ones."""
    return line, column - 1, end_line, end_column - 1


def expressions_by_span(positions: Mapping[cst.CSTNode, CodeRange]) -> dict[Span, cst.BaseExpression]:
    """Every expression by its span (LibCST, like ``ast``, leaves a node's own parentheses out of it);
    where an expression and its sub-expression share a span, the outer one wins."""
    found: dict[Span, cst.BaseExpression] = {}
    for node, where in positions.items():
        if isinstance(node, cst.BaseExpression):
            span = (where.start.line, where.start.column, where.end.line, where.end.column)
            outer = found.get(span)
            if outer is None or _contains(node, outer):
                found[span] = node
    return found


def _contains(outer: cst.CSTNode, inner: cst.CSTNode) -> bool:
    return any(child is inner or _contains(child, inner) for child in outer.children)


def span_of(positions: Mapping[cst.CSTNode, CodeRange], node: cst.CSTNode) -> Span:
    where = positions[node]
    return where.start.line, where.start.column, where.end.line, where.end.column


def encloses(outer: Span, inner: Span) -> bool:
    return outer[:2] <= inner[:2] and inner[2:] <= outer[2:]


class SpanSet:
    """Spans, asked which of them enclose a span or lie inside it, in time proportional to the lines asked
    about rather than to how many spans there are (a module with thousands of edits)."""

    def __init__(self, spans: Iterable[Span] = ()) -> None:
        self._covering: dict[int, list[Span]] = {}  # line -> spans over it
        self._starting: dict[int, list[Span]] = {}  # line -> spans starting on it
        for span in spans:
            self.add(span)

    def add(self, span: Span) -> None:
        self._starting.setdefault(span[0], []).append(span)
        for line in range(span[0], span[2] + 1):
            self._covering.setdefault(line, []).append(span)

    def any_enclosing(self, inner: Span) -> bool:
        return any(encloses(span, inner) for span in self._covering.get(inner[0], ()))

    def any_inside(self, outer: Span) -> bool:
        return any(
            encloses(outer, span) for line in range(outer[0], outer[2] + 1) for span in self._starting.get(line, ())
        )


def dotted_name(node: cst.CSTNode) -> str | None:
    """``a.b.c`` for a chain of attributes on a name, else None (``ast``'s is ``seamfix.analysis``'s)."""
    parts = []
    while isinstance(node, cst.Attribute):
        parts.append(node.attr.value)
        node = node.value
    if not isinstance(node, cst.Name):
        return None
    parts.append(node.value)
    return ".".join(reversed(parts))


def unparenthesized(node: cst.BaseExpression) -> cst.BaseExpression:
    return node.with_changes(lpar=[], rpar=[]) if getattr(node, "lpar", None) else node


def children(node: cst.CSTNode) -> list[cst.CSTNode]:
    """``node.children`` in no particular order, read from its fields: LibCST's property runs a visitor over
    the node, three times slower, which walks of every moved arm's nodes feel."""
    found = []
    for name in _field_names(type(node)):
        value = getattr(node, name)
        if isinstance(value, cst.CSTNode):
            found.append(value)
        elif isinstance(value, (list, tuple)):
            found.extend(item for item in value if isinstance(item, cst.CSTNode))
    return found


@cache
def _field_names(kind: type) -> tuple[str, ...]:
    return tuple(field.name for field in fields(kind))


def walk(node: cst.CSTNode) -> Iterator[cst.CSTNode]:
    """``node`` and all its descendants, parents first."""
    stack = [node]
    while stack:
        current = stack.pop()
        yield current
        stack.extend(reversed(current.children))


def module_word(relpath: str) -> str:
    """What names a module in words: its file's stem, or its package's folder for an ``__init__.py``."""
    path = PurePosixPath(relpath)
    return snake_case(path.parent.name if path.stem == "__init__" else path.stem)


def snake_case(name: str) -> str:
    """``MLATransformerConfig`` -> ``mla_transformer_config``."""
    words = re.findall(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|[0-9]+", name)
    return "_".join(word.lower() for word in words) or name.lower()
