"""What the adapter module offers its callers: the names it defines at module level."""

from __future__ import annotations

import ast
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from seamfix.reading import read_regular_file

MISSING, UNPARSEABLE, DEFINED = "missing", "unparseable", "defined"


@dataclass(frozen=True)
class SeamSurface:
    """The adapter as builders see it. ``state`` is ``missing`` (no such file), ``unparseable``, or
    ``defined`` with its module-level ``names``; ``open`` when it can define any name (a module-level
    ``__getattr__`` or ``from x import *``), so that no reference can be proved undefined."""

    path: str
    state: str
    names: frozenset[str] = frozenset()
    open: bool = False

    def defines(self, name: str) -> bool:
        if self.state != DEFINED:
            return False
        return self.open or name in self.names or (name.startswith("__") and name.endswith("__"))

    def why_undefined(self, reference: str) -> str:
        """The message of a reference to a name the adapter lacks."""
        if self.state == MISSING:
            return f"`{reference}` calls into the adapter `{self.path}`, which does not exist"
        if self.state == UNPARSEABLE:
            return f"`{reference}` calls into the adapter `{self.path}`, which cannot be parsed"
        return f"`{reference}` is not defined in the adapter `{self.path}`"


def surface_of(path: str, data: bytes | None, submodules: frozenset[str] = frozenset()) -> SeamSurface:
    """The surface of the adapter at ``path`` (project-relative) whose bytes are ``data`` (None: missing).
    ``submodules``: for an adapter package (``__init__.py``), the modules beside it, reachable as attributes."""
    if data is None:
        return SeamSurface(path, MISSING)
    try:
        tree = ast.parse(data)
    except (SyntaxError, ValueError, RecursionError):  # too deep for Python to compile it either
        return SeamSurface(path, UNPARSEABLE)
    names = set(submodules)
    is_open = False
    for node in _module_level(tree.body):
        if isinstance(node, ast.ImportFrom) and any(alias.name == "*" for alias in node.names):
            is_open = True
        names.update(_bound_names(node))
    for node in ast.walk(tree):
        if isinstance(node, ast.Global):
            names.update(node.names)
    return SeamSurface(path, DEFINED, frozenset(names), is_open or "__getattr__" in names)


def read_surface(root: Path, adapter: str) -> SeamSurface:
    """The surface of the adapter file as it is on disk now."""
    path = root / adapter
    try:
        data = read_regular_file(path)
    except FileNotFoundError:
        data = None
    except OSError:
        return SeamSurface(adapter, UNPARSEABLE)
    return surface_of(adapter, data, adapter_submodules(root, adapter))


def adapter_submodules(root: Path, adapter: str) -> frozenset[str]:
    """For an adapter package (``__init__.py``), the modules beside it, reachable as its attributes."""
    path = root / adapter
    if path.name != "__init__.py":
        return frozenset()
    try:
        return frozenset(
            entry.name.removesuffix(".py") for entry in os.scandir(path.parent) if entry.name != "__init__.py"
        )
    except OSError:
        return frozenset()


def _module_level(statements: list[ast.stmt]) -> Iterator[ast.stmt]:
    """Statements that run at import time: inside ``if``/``try``/``with``/loops/``match``, not in defs."""
    for statement in statements:
        yield statement
        if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue
        for field in ("body", "orelse", "finalbody"):
            yield from _module_level(getattr(statement, field, []))
        for part in [*getattr(statement, "handlers", ()), *getattr(statement, "cases", ())]:
            yield from _module_level(part.body)


def _bound_names(node: ast.stmt) -> Iterator[str]:
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        yield node.name
    elif isinstance(node, (ast.Import, ast.ImportFrom)):
        for alias in node.names:
            if alias.name != "*":
                yield alias.asname or alias.name.split(".")[0]
    else:
        targets: list[ast.AST] = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, (ast.AnnAssign, ast.AugAssign, ast.For, ast.AsyncFor)):
            targets = [node.target]
        elif isinstance(node, (ast.With, ast.AsyncWith)):
            targets = [item.optional_vars for item in node.items if item.optional_vars is not None]
        for target in targets:
            yield from (n.id for n in ast.walk(target) if isinstance(n, ast.Name))
        # Walrus bindings at module level (`if (x := ...)`) bind module names too.
        for expression in ast.iter_child_nodes(node):
            if isinstance(expression, ast.expr):
                yield from (n.target.id for n in ast.walk(expression) if isinstance(n, ast.NamedExpr))
