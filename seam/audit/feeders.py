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


class _Scopes(ast.NodeVisitor):
    """Every name read, and every simple binding (its lines and the names its value reads), by function."""

    def __init__(self, tree: ast.Module) -> None:
        self._function: ast.AST | None = None  # None: module level
        self.reads: dict[int, list[tuple[str, ast.AST | None, tuple[int, int]]]] = {}  # by line
        self._feeding: dict[tuple[str, ast.AST | None], frozenset[int]] = {}
        self.bindings: dict[tuple[str, ast.AST | None], list[tuple[range, list[tuple[str, ast.AST | None]]]]] = {}
        self.visit(tree)

    def feeding(self, read: tuple[str, ast.AST | None]) -> frozenset[int]:
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

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) -> None:
        outer, self._function = self._function, node
        self.generic_visit(node)
        self._function = outer

    visit_AsyncFunctionDef = visit_Lambda = visit_FunctionDef

    def visit_Name(self, node: ast.Name) -> None:
        if isinstance(node.ctx, ast.Load):
            self.reads.setdefault(node.lineno, []).append((node.id, self._function, (node.lineno, node.col_offset)))

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
        reads = [(name.id, self._function) for name in _names(value)]
        for target in targets:
            for name in _names(target):
                self.bindings.setdefault((name.id, self._function), []).append((lines, reads))


def _names(node: ast.AST) -> Iterator[ast.Name]:
    return (inner for inner in ast.walk(node) if isinstance(inner, ast.Name))
