"""What every codemod of one file needs: its tree with metadata, the vocabulary, and where the seam is."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import PurePosixPath

import libcst as cst
from libcst.metadata import (
    BuiltinScope,
    ClassScope,
    GlobalScope,
    MetadataWrapper,
    ParentNodeProvider,
    PositionProvider,
    Scope,
    ScopeProvider,
)

from seamfix.codemods.nodes import Span, expressions_by_span, span_of
from seamfix.vocabulary.names import NameClassifier

PLACEHOLDER_PREFIX = "_seamfix_pending_"


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
    """One parsed file with resolved metadata; edits are keyed by nodes of ``module``."""

    wrapper: MetadataWrapper
    relpath: str
    names: NameClassifier
    seam: Seam

    @cached_property
    def module(self) -> cst.Module:
        return self.wrapper.module

    @cached_property
    def _metadata(self):
        # one batched traversal for all three providers: on a big module each traversal costs a second
        return self.wrapper.resolve_many([PositionProvider, ScopeProvider, ParentNodeProvider])

    @property
    def positions(self):
        return self._metadata[PositionProvider]

    @property
    def scopes(self):
        return self._metadata[ScopeProvider]

    @property
    def parents(self):
        return self._metadata[ParentNodeProvider]

    @cached_property
    def by_span(self) -> dict[Span, cst.BaseExpression]:
        return expressions_by_span(self.positions)

    @cached_property
    def global_scope(self) -> GlobalScope:
        return self.scopes[self.module]

    def span(self, node: cst.CSTNode) -> Span:
        return span_of(self.positions, node)

    @cached_property
    def module_name(self) -> str:
        parts = PurePosixPath(self.relpath).with_suffix("").parts
        return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)

    @property
    def package_parts(self) -> tuple[str, ...]:
        return PurePosixPath(self.relpath).parent.parts

    def owner(self, name: cst.Name) -> Scope | None:
        """The scope that binds this use of ``name`` (None for a builtin or an undefined name)."""
        scope: Scope | None = self.scopes.get(name)
        own = scope
        while scope is not None and not isinstance(scope, BuiltinScope):
            # a class body's names are invisible to the functions inside it
            if (scope is own or not isinstance(scope, ClassScope)) and scope.assignments[name.value]:
                return scope
            scope = scope.parent
        return None

    def binding(self, name: cst.Name) -> str:
        """``local`` (a variable of a function), ``global`` (bound at module level) or ``builtin``."""
        owner = self.owner(name)
        if owner is None:
            return "builtin"
        return "global" if isinstance(owner, GlobalScope) else "local"

    def adapter_import(self, name: str) -> str:
        """The statement that gives the adapter module this file's global ``name``: the file's own import
        of it (made absolute), else an import from this file's module."""
        for assignment in self.global_scope.assignments[name]:
            node = getattr(assignment, "node", None)
            if isinstance(node, (cst.Import, cst.ImportFrom)):
                return self._import_of(node, name)
        return f"from {self.module_name} import {name}"

    def _import_of(self, node: cst.Import | cst.ImportFrom, name: str) -> str:
        for alias in node.names:
            bound = alias.evaluated_alias or alias.evaluated_name.split(".")[0]
            if bound != name:
                continue
            suffix = f" as {alias.evaluated_alias}" if alias.evaluated_alias else ""
            if isinstance(node, cst.Import):
                return f"import {alias.evaluated_name}{suffix}"
            return f"from {self._absolute(node)} import {alias.evaluated_name}{suffix}"
        return f"from {self.module_name} import {name}"

    def _absolute(self, node: cst.ImportFrom) -> str:
        module = self.module.code_for_node(node.module) if node.module is not None else ""
        if not node.relative:
            return module
        package = self.package_parts
        base = package[: len(package) - len(node.relative) + 1]
        return ".".join((*base, module) if module else base)
