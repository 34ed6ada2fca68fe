"""Which expressions depend on MLA: vocabulary names, local aliases, and calls into the seam (which don't)."""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterable, Iterator

from seamfix.vocabulary.names import NameClassifier

_BLOCK_FIELDS = frozenset({"body", "orelse", "finalbody", "handlers", "cases"})
_COLLECTIONS = (ast.List, ast.Tuple, ast.Set, ast.Dict)
_NESTED_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)


class SeamBindings:
    """Local names that refer to the adapter module (the seam) or to functions defined in it."""

    def __init__(self, adapter_parts: tuple[str, ...], package_parts: tuple[str, ...]) -> None:
        self._adapter_parts = adapter_parts
        self._package_parts = package_parts
        self.modules: set[str] = set()
        self.functions: set[str] = set()
        self.dotted_modules: set[str] = set()

    def is_adapter_module(self, dotted: str) -> bool:
        parts = tuple(dotted.split("."))
        return bool(self._adapter_parts) and self._adapter_parts[-len(parts) :] == parts

    def collect(self, tree: ast.Module) -> SeamBindings:
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if self.is_adapter_module(alias.name):
                        if alias.asname:
                            self.modules.add(alias.asname)
                        else:
                            self.dotted_modules.add(alias.name)
            elif isinstance(node, ast.ImportFrom):
                module = self.resolve(node)
                for alias in node.names:
                    bound = alias.asname or alias.name
                    if self.is_adapter_module(f"{module}.{alias.name}" if module else alias.name):
                        self.modules.add(bound)
                    elif module and self.is_adapter_module(module):
                        self.functions.add(bound)
        return self

    def resolve(self, node: ast.ImportFrom) -> str:
        """The absolute module of ``from ... import``, resolving relative levels against the file's package."""
        if not node.level:
            return node.module or ""
        base = self._package_parts[: len(self._package_parts) - node.level + 1]
        return ".".join((*base, node.module) if node.module else base)

    def refers_to_seam(self, node: ast.expr) -> bool:
        """``mla_seam.uses_mla`` / ``uses_mla`` / ``pkg.mla_seam.uses_mla`` when bound to the adapter."""
        if isinstance(node, ast.Name):
            return node.id in self.functions or node.id in self.modules
        if isinstance(node, ast.Attribute):
            dotted = dotted_name(node)
            if dotted is None:
                return False
            head = dotted.split(".", 1)[0]
            return head in self.modules or any(
                dotted == module or dotted.startswith(module + ".") for module in self.dotted_modules
            )
        return False


def dotted_name(node: ast.expr) -> str | None:
    """``a.b.c`` for a chain of attributes on a name, else None."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    parts.append(node.id)
    return ".".join(reversed(parts))


class MLAExpressions:
    """Finds the MLA atom an expression depends on, if any."""

    def __init__(self, names: NameClassifier, seam: SeamBindings) -> None:
        self.names = names
        self.seam = seam

    def atom(self, expr: ast.AST, aliases: frozenset[str] = frozenset()) -> ast.AST | None:
        """The first sub-expression of ``expr`` that names MLA (or an MLA alias); None if there is none."""
        names = self.names
        stack = [expr]
        while stack:
            node = stack.pop()
            kind = type(node)
            if kind is ast.Name:
                if node.id in aliases or (node.id not in self.seam.functions and names.is_name(node.id)):
                    return node
            elif kind is ast.Attribute:
                if self.seam.refers_to_seam(node):
                    continue
                if names.is_attribute(node.attr):
                    return node
                stack.append(node.value)
            elif kind is ast.Constant:
                if type(node.value) is str and names.is_string(node.value):
                    return node
            elif kind is ast.keyword:
                if node.arg and names.is_name(node.arg):
                    return node
                stack.append(node.value)
            elif kind in _COLLECTIONS:
                stack.extend(self._collection_elements(node))
            elif kind is ast.Call and self.seam.refers_to_seam(node.func):
                continue  # the seam decides what its arguments mean: `mla_seam.enabled(multi_latent_attention)`
            else:
                stack.extend(ast.iter_child_nodes(node))
        return None

    def _collection_elements(self, node: ast.AST) -> list[ast.AST]:
        """Elements that can make a literal collection MLA: an MLA string among other strings
        (``{"core_attn", "mla_up_proj"}``, a list of allowed values) does not; all-MLA strings do."""
        elements = [e for e in node.keys if e is not None] + node.values if isinstance(node, ast.Dict) else node.elts
        strings = [e for e in elements if type(e) is ast.Constant and type(e.value) is str]
        if strings and not all(self.names.is_string(s.value) for s in strings):
            return [e for e in elements if not (type(e) is ast.Constant and type(e.value) is str)]
        return elements

    def aliases(
        self, scope: ast.AST, inherited: frozenset[str], mentions: Callable[[ast.AST], bool] | None
    ) -> frozenset[str]:
        """Names assigned (anywhere in ``scope``, not in nested scopes) from an MLA expression, transitively."""
        assignments = list(_assignments(scope, mentions))
        aliases = set(inherited)
        changed = True
        while changed:
            changed = False
            frozen = frozenset(aliases)
            for targets, value in assignments:
                new = [t for t in targets if t not in aliases]
                if new and self.atom(value, frozen) is not None:
                    aliases.update(new)
                    changed = True
        return frozenset(aliases)


def nested_statements(node: ast.AST) -> Iterator[ast.stmt]:
    """The statements directly inside a compound statement (bodies, else arms, handlers, match cases)."""
    for name in ("body", "orelse", "finalbody"):
        block = getattr(node, name, None)
        if isinstance(block, list):
            yield from block
    for clause in (*getattr(node, "handlers", ()), *getattr(node, "cases", ())):
        yield from clause.body


def _assignments(scope: ast.AST, source_lines: Callable[[ast.AST], bool] | None) -> Iterator[tuple[list[str], ast.AST]]:
    """Assignments of ``scope`` outside nested scopes, walking statements only (expressions are the bulk of
    a tree); walrus targets are looked for only in statements that mention MLA (``source_lines``; None when
    the file has no walrus at all)."""
    stack = list(nested_statements(scope)) if not isinstance(scope, ast.Lambda) else []
    while stack:
        node = stack.pop()
        if isinstance(node, _NESTED_SCOPES):
            continue
        if isinstance(node, ast.Assign):
            for target in node.targets:
                yield from _bind(target, node.value)
        elif isinstance(node, (ast.AnnAssign, ast.AugAssign)) and node.value is not None:
            yield from _bind(node.target, node.value)
        if source_lines is not None and source_lines(node):
            for field, value in ast.iter_fields(node):
                if field in _BLOCK_FIELDS or not isinstance(value, ast.AST):
                    continue
                for expression in ast.walk(value):
                    if isinstance(expression, ast.NamedExpr):
                        yield from _bind(expression.target, expression.value)
        stack.extend(nested_statements(node))


def _bind(target: ast.AST, value: ast.AST) -> Iterable[tuple[list[str], ast.AST]]:
    if isinstance(target, ast.Name):
        yield [target.id], value
    elif isinstance(target, (ast.Tuple, ast.List)):
        if isinstance(value, (ast.Tuple, ast.List)) and len(value.elts) == len(target.elts):
            for sub_target, sub_value in zip(target.elts, value.elts, strict=True):
                yield from _bind(sub_target, sub_value)
        else:
            names = [elt.id for elt in target.elts if isinstance(elt, ast.Name)]
            if names:
                yield names, value
