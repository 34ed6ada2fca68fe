"""The part of a module that the codemods need metadata for: LibCST's providers cost about a second per
2,000 lines, and a finding in one method of a big class needs only that method (and the module's bindings).

The focus module keeps every top-level statement except functions and classes without findings (replaced by
stubs, so their names stay bound), and trims classes to the methods with findings. Its nodes are the
original module's nodes, so edits planned on it apply to the original; lines are mapped per kept region.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from dataclasses import dataclass, field

import libcst as cst
from libcst.metadata import MetadataWrapper, PositionProvider

_AST_COMPOUND = (
    ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.If, ast.For, ast.AsyncFor, ast.While, ast.Try,
    ast.TryStar, ast.With, ast.AsyncWith, ast.Match,
)  # fmt: skip
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
    wrapper: MetadataWrapper  # of the focus module, which its positions are already resolved on
    regions: list[Region] = field(default_factory=list)
    originals: dict[cst.CSTNode, cst.CSTNode] = field(default_factory=dict)  # trimmed focus node -> original

    @property
    def module(self) -> cst.Module:
        return self.wrapper.module

    def to_focus(self, line: int) -> int:
        return line + next((r.delta for r in self.regions if r.first <= line <= r.last), 0)

    def to_original(self, line: int) -> int:
        return line - next((r.delta for r in self.regions if r.first <= line - r.delta <= r.last), 0)


def focus(module: cst.Module, tree: ast.Module, lines: Iterable[int]) -> Focus:
    """The focus module for findings on ``lines``; the whole module where a finding lies outside functions."""
    lines = sorted(set(lines))
    regions: list[Region] = []
    originals: dict[cst.CSTNode, cst.CSTNode] = {}
    body = _focused_body(module.body, tree.body, lines, regions, originals, top_level=True)
    if body is None:
        return Focus(MetadataWrapper(module, unsafe_skip_copy=True))
    focused = Focus(MetadataWrapper(module.with_changes(body=body), unsafe_skip_copy=True), regions, originals)
    positions = focused.wrapper.resolve(PositionProvider)
    for region in regions:
        anchor = region.node.name if isinstance(region.node, _DEFINITIONS) else region.node
        region.delta = positions[anchor].start.line - region.anchor
    return focused


def _focused_body(statements, nodes, lines, regions, originals, top_level: bool):
    compound = [s for s in statements if not isinstance(s, cst.SimpleStatementLine)]
    compound_ast = [n for n in nodes if isinstance(n, _AST_COMPOUND)]
    if len(compound) != len(compound_ast):
        return None
    spans = {id(s): _lines(n) for s, n in zip(compound, compound_ast, strict=True)}
    covered = [line for line in lines if any(first <= line <= last for first, last in spans.values())]
    if len(covered) != len(lines):
        return None  # a finding in a simple statement at this level: keep everything here
    body = []
    for statement in statements:
        if isinstance(statement, cst.SimpleStatementLine):
            if top_level:
                body.append(statement)
            continue
        first, last = spans[id(statement)]
        inside = [line for line in lines if first <= line <= last]
        node = compound_ast[compound.index(statement)]
        if not inside:
            if top_level:
                body.append(_stub(statement) if isinstance(statement, _DEFINITIONS) else statement)
            continue
        if isinstance(statement, cst.ClassDef) and isinstance(statement.body, cst.IndentedBlock):
            members = _focused_body(statement.body.body, node.body, inside, regions, originals, top_level=False)
            if members is not None:
                block = statement.body.with_changes(body=members)
                trimmed = statement.with_changes(body=block)
                originals[trimmed], originals[block] = statement, statement.body
                body.append(trimmed)
                continue
        regions.append(Region(first, last, statement, node.lineno))
        body.append(statement)
    return body


def _lines(node: ast.stmt) -> tuple[int, int]:
    decorators = getattr(node, "decorator_list", [])
    return min([node.lineno, *(d.lineno for d in decorators)]), node.end_lineno or node.lineno


def _stub(statement: cst.FunctionDef | cst.ClassDef) -> cst.BaseStatement:
    keyword = "class" if isinstance(statement, cst.ClassDef) else "def"
    signature = "" if keyword == "class" else "()"
    return cst.parse_statement(f"{keyword} {statement.name.value}{signature}: ...\n")
