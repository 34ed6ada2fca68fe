"""The part of a module that the codemods need LibCST positions for: they cost about 0.4 s per 1,000 lines,
and a finding in one statement of a 1,000-line method needs only that statement (the bindings and the data
flow of the whole module come from ``ast``, see ``bindings``).

The focus module keeps the statements with findings: classes and functions trimmed to the statements of
their bodies with findings, any other statement whole. Its nodes are the original module's nodes, so edits
planned on it apply to the original; lines are mapped per kept region.
"""

from __future__ import annotations

import ast
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property

import libcst as cst
from libcst.metadata import CodeRange

from seamfix.codemods.codegen import positions_and_parents

_DEFINITIONS = (cst.FunctionDef, cst.ClassDef)


@dataclass
class Region:
    first: int  # original lines
    last: int
    node: cst.CSTNode
    anchor: int  # original line of its keyword (`def`, `class`, `if`, ...)
    delta: int = 0  # focus line - original line


@dataclass
class Focus:
    module: cst.Module
    positions: Mapping[cst.CSTNode, CodeRange]
    parents: Mapping[cst.CSTNode, cst.CSTNode]
    regions: list[Region] = field(default_factory=list)
    originals: dict[cst.CSTNode, cst.CSTNode] = field(default_factory=dict)  # trimmed focus node -> original

    def holds(self, line: int) -> bool:
        """Is the original ``line`` in the focus module?"""
        return not self.regions or self._region(self._firsts, line) is not None

    def to_focus(self, line: int) -> int:
        region = self._region(self._firsts, line)
        return line + (region.delta if region else 0)

    def to_original(self, line: int) -> int:
        region = self._region(self._focus_firsts, line)
        return line - (region.delta if region else 0)

    # The regions are disjoint and in the same order in both modules, so a bisection finds the one a line is
    # in (a module with thousands of findings has thousands). Built on first use, once the deltas are set.
    @cached_property
    def _firsts(self) -> list[int]:
        return [region.first for region in self.regions]

    @cached_property
    def _focus_firsts(self) -> list[int]:
        return [region.first + region.delta for region in self.regions]

    def _region(self, firsts: list[int], line: int) -> Region | None:
        """The region holding ``line``, counted as ``firsts`` count (original or focus lines)."""
        index = bisect_right(firsts, line) - 1
        if index < 0:
            return None
        region = self.regions[index]
        return region if line - firsts[index] <= region.last - region.first else None


def focus(module: cst.Module, tree: ast.Module, lines: Iterable[int]) -> Focus:
    """The focus module for findings on ``lines``; the whole module where its statements and ``ast``'s do not
    line up."""
    lines = sorted(set(lines))
    regions: list[Region] = []
    originals: dict[cst.CSTNode, cst.CSTNode] = {}
    body = _focused_body(module.body, tree.body, lines, regions, originals)
    if body is None:
        return Focus(module, *positions_and_parents(module))
    focused = module.with_changes(body=body)
    positions, parents = positions_and_parents(focused)
    for region in regions:
        anchor = region.node.name if isinstance(region.node, _DEFINITIONS) else region.node
        region.delta = positions[anchor].start.line - region.anchor
    return Focus(focused, positions, parents, regions, originals)


def _focused_body(statements, nodes, lines, regions, originals):
    """The statements of a body that hold findings; None when a finding is elsewhere (in the decorators or
    signature of the function whose body this is) or the statements do not line up with ``ast``'s."""
    spans = _statement_spans(statements, nodes)
    if spans is None:
        return None
    # ``lines`` is sorted and the statements are disjoint: each one's lines are a slice (bisected, since a
    # module can have thousands of statements with findings).
    insides = [lines[bisect_left(lines, first) : bisect_right(lines, last)] for first, last, _ in spans]
    if sum(map(len, insides)) != len(lines):
        return None
    body = []
    for statement, (first, last, group), inside in zip(statements, spans, insides, strict=True):
        if not inside:
            continue
        members = None
        if isinstance(statement, _DEFINITIONS) and isinstance(statement.body, cst.IndentedBlock):
            members = _focused_body(statement.body.body, group[0].body, inside, regions, originals)
        if members is None:
            regions.append(Region(first, last, statement, group[0].lineno))
            body.append(statement)
            continue
        block = statement.body.with_changes(body=members)
        trimmed = statement.with_changes(body=block)
        originals[trimmed], originals[block] = statement, statement.body
        body.append(trimmed)
    return body


def _statement_spans(statements, nodes) -> list[tuple[int, int, list[ast.stmt]]] | None:
    """Each LibCST statement's first and last line and the ``ast`` statements it holds (a line of
    ``a = 1; b = 2`` holds two)."""
    spans = []
    index = 0
    for statement in statements:
        count = len(statement.body) if isinstance(statement, cst.SimpleStatementLine) else 1
        group = nodes[index : index + count]
        if len(group) != count:
            return None
        index += count
        spans.append((min(_lines(n)[0] for n in group), max(_lines(n)[1] for n in group), group))
    return spans if index == len(nodes) else None


def _lines(node: ast.stmt) -> tuple[int, int]:
    decorators = getattr(node, "decorator_list", [])
    return min([node.lineno, *(d.lineno for d in decorators)]), node.end_lineno or node.lineno
