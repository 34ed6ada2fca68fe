"""What every codemod of one file needs: its trees with positions and bindings, the vocabulary, the seam."""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import PurePosixPath

import libcst as cst
from libcst.metadata import CodeRange

from seamfix.codemods.bindings import Bindings
from seamfix.codemods.focus import Focus
from seamfix.codemods.nodes import Span, expressions_by_span, span_of
from seamfix.vocabulary.names import NameClassifier

PLACEHOLDER_PREFIX = "_seamfix_pending_"
_DEFINITIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


@dataclass(frozen=True)
class Seam:
    """The adapter module as builders import it: ``from <package> import <name>`` (or ``import <name>``)."""

    parts: tuple[str, ...]

    @property
    def name(self) -> str:
        return self.parts[-1]

    @property
    def package(self) -> str:
        return ".".join(self.parts[:-1])


@dataclass
class FileContext:
    """One parsed file: the focus module (LibCST, with positions) that edits are keyed by, and the whole
    module's ``ast`` with its bindings, which the analyses run on."""

    area: Focus
    tree: ast.Module
    text: str
    relpath: str
    names: NameClassifier
    seam: Seam
    bindings: Bindings

    @property
    def module(self) -> cst.Module:
        return self.area.module

    @property
    def positions(self) -> Mapping[cst.CSTNode, CodeRange]:
        return self.area.positions

    @cached_property
    def parents(self) -> dict[cst.CSTNode, cst.CSTNode]:
        """Each node's parent, from a plain walk: a third of what LibCST's ParentNodeProvider costs."""
        parents = {}
        stack: list[cst.CSTNode] = [self.module]
        while stack:
            node = stack.pop()
            for child in node.children:
                parents[child] = node
                stack.append(child)
        return parents

    @cached_property
    def by_span(self) -> dict[Span, cst.BaseExpression]:
        return expressions_by_span(self.positions)

    def span(self, node: cst.CSTNode) -> Span:
        return span_of(self.positions, node)

    @cached_property
    def module_name(self) -> str:
        parts = PurePosixPath(self.relpath).with_suffix("").parts
        return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)

    @property
    def package_parts(self) -> tuple[str, ...]:
        return PurePosixPath(self.relpath).parent.parts

    def located(self, node: ast.expr) -> cst.BaseExpression | None:
        """The focus module's expression where ``node`` of the ``ast`` is; None outside the focus."""
        bindings, to_focus = self.bindings, self.area.to_focus
        if not (self.area.holds(node.lineno) and self.area.holds(node.end_lineno)):
            return None
        span = (to_focus(node.lineno), bindings.column(node.lineno, node.col_offset))
        span += (to_focus(node.end_lineno), bindings.column(node.end_lineno, node.end_col_offset))
        return self.by_span.get(span)

    def binding(self, name: cst.Name) -> str:
        """``local`` (a variable of a function), ``global`` (bound at module level) or ``builtin``."""
        where = self.positions[name].start
        return self.bindings.binding(self.bindings.at(self.area.to_original(where.line), where.column))

    def located_if(self, statement: cst.If) -> ast.If:
        """The ``ast`` node of an ``if`` (or ``elif``) of the focus module: the one on its line."""
        return self._ifs[self.area.to_original(self.positions[statement].start.line)]

    @cached_property
    def _ifs(self) -> dict[int, ast.If]:
        return {node.lineno: node for node in ast.walk(self.tree) if isinstance(node, ast.If)}

    def enclosing_function(self, node: ast.stmt) -> ast.FunctionDef | ast.AsyncFunctionDef | None:
        """The function whose body holds ``node``; None at module level or directly in a class body."""
        scope = self._statement_scopes[node]
        return scope if isinstance(scope, (ast.FunctionDef, ast.AsyncFunctionDef)) else None

    @cached_property
    def _statement_scopes(self) -> dict[ast.stmt, ast.AST]:
        """Each statement's innermost enclosing def or class (the module at top level)."""
        found: dict[ast.stmt, ast.AST] = {}
        stack: list[tuple[ast.stmt, ast.AST]] = [(statement, self.tree) for statement in self.tree.body]
        while stack:
            statement, scope = stack.pop()
            found[statement] = scope
            inner = statement if isinstance(statement, _DEFINITIONS) else scope
            stack.extend((child, inner) for child in _child_statements(statement))
        return found

    def adapter_import(self, name: str) -> str:
        """The statement that gives the adapter module this file's global ``name``: the file's own import
        of it (made absolute), else an import from this file's module."""
        for node in _module_level(self.tree.body):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for alias in node.names:
                    if (alias.asname or alias.name.split(".")[0]) == name:
                        return self._import_of(node, alias)
        return f"from {self.module_name} import {name}"

    def _import_of(self, node: ast.Import | ast.ImportFrom, alias: ast.alias) -> str:
        suffix = f" as {alias.asname}" if alias.asname else ""
        if isinstance(node, ast.Import):
            return f"import {alias.name}{suffix}"
        return f"from {self._absolute(node)} import {alias.name}{suffix}"

    def _absolute(self, node: ast.ImportFrom) -> str:
        module = node.module or ""
        if not node.level:
            return module
        package = self.package_parts
        base = package[: len(package) - node.level + 1]
        return ".".join((*base, module) if module else base)


def _module_level(statements: list[ast.stmt]) -> Iterator[ast.stmt]:
    """Statements that run at module level: inside ``if``/``try``/``with``/loops, not in functions or classes."""
    for statement in statements:
        yield statement
        if not isinstance(statement, _DEFINITIONS):
            yield from _module_level(list(_child_statements(statement)))


def _child_statements(statement: ast.stmt) -> Iterator[ast.stmt]:
    """The statements directly in ``statement``'s blocks (its body, ``else``, handlers, cases, ``finally``)."""
    for field in ("body", "orelse", "finalbody"):
        yield from getattr(statement, field, ())
    for part in [*getattr(statement, "handlers", ()), *getattr(statement, "cases", ())]:
        yield from part.body
