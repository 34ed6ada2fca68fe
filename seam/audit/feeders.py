"""The assignments that feed a decision: lint reports `if use:` where `use = cfg.multi_latent_attention` (an alias) or
`if KEY in hf:` where `KEY = "kv_lora_rank"` (a label used as a key), while the MLA name is on the binding's line,
which is no site. A change of that line (another MLA field, a new alias making `if use:` a decision) changes the
decision, so audit counts the binding's lines as part of each site reading the name."""

from __future__ import annotations

import ast
from collections.abc import Iterator, Sequence

from seamfix.findings import Finding


def feeding_lines(tree: ast.Module, sites: Sequence[Finding]) -> set[int]:
    """The lines of the assignments, in the site's function or at module level, that bind a name a site reads,
    and those that bind the names they read in turn."""
    scopes = _Scopes(tree)
    feeding: set[int] = set()
    for site in sites:
        start, end = (site.line, site.column - 1), (site.end_line, site.end_column - 1)
        for line in range(site.line, site.end_line + 1):
            for name, scope, where in scopes.reads.get(line, ()):
                if start <= where < end:
                    feeding |= scopes.feeding((name, scope))
    return feeding


Key = tuple[str, ast.AST | None]  # a name and its function (None: module level), or `self.x` and its class


class _Scopes(ast.NodeVisitor):
    """Every name read, and every simple binding (its lines and the names its value reads): a variable by
    function, an attribute of `self` by class (set in `__init__`, read in `forward`)."""

    def __init__(self, tree: ast.Module) -> None:
        self._function: ast.AST | None = None  # None: module level
        self._class: ast.ClassDef | None = None
        self.reads: dict[int, list[tuple[str, ast.AST | None, tuple[int, int]]]] = {}  # by line
        self._feeding: dict[Key, frozenset[int]] = {}
        self.bindings: dict[Key, list[tuple[range, list[Key]]]] = {}
        self.visit(tree)

    def feeding(self, read: Key) -> frozenset[int]:
        """The lines of the bindings a read of a name reaches, directly or through the names they read."""
        if read not in self._feeding:
            lines: set[int] = set()
            pending, seen = [read], {read}
            while pending:
                name, scope = pending.pop()
                for binding_scope in {scope, None}:
                    for binding, reads in self.bindings.get((name, binding_scope), ()):
                        lines.update(binding)
                        pending += [inner for inner in reads if inner not in seen]
                        seen.update(reads)
            self._feeding[read] = frozenset(lines)
        return self._feeding[read]

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        outer, self._class = self._class, node
        self.generic_visit(node)
        self._class = outer

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) -> None:
        outer, self._function = self._function, node
        self.generic_visit(node)
        self._function = outer

    visit_AsyncFunctionDef = visit_Lambda = visit_FunctionDef

    def visit_Name(self, node: ast.Name | ast.Attribute) -> None:
        key = self._key(node)
        if key is not None and isinstance(node.ctx, ast.Load):
            self.reads.setdefault(node.lineno, []).append((*key, (node.lineno, node.col_offset)))
        self.generic_visit(node)

    visit_Attribute = visit_Name

    def visit_Assign(self, node: ast.Assign | ast.AnnAssign | ast.AugAssign | ast.NamedExpr) -> None:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        if getattr(node, "value", None) is not None:
            self._bind(targets, node.value, node)
        self.generic_visit(node)

    visit_AnnAssign = visit_AugAssign = visit_NamedExpr = visit_Assign

    def visit_For(self, node: ast.For | ast.AsyncFor) -> None:
        self._bind([node.target], node.iter, node.iter)
        self.generic_visit(node)

    visit_AsyncFor = visit_For

    def _bind(self, targets: list[ast.expr], value: ast.expr, span: ast.AST) -> None:
        lines = range(span.lineno, span.end_lineno + 1)
        reads = list(self._keys(value))
        for target in targets:
            for key in self._keys(target):
                self.bindings.setdefault(key, []).append((lines, reads))

    def _keys(self, node: ast.AST) -> Iterator[Key]:
        return (key for inner in ast.walk(node) if (key := self._key(inner)) is not None)

    def _key(self, node: ast.AST) -> Key | None:
        if isinstance(node, ast.Name):
            return node.id, self._function
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "self":
            return f"self.{node.attr}", self._class
        return None
