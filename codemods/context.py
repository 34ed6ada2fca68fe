"""What every codemod of one file needs: its trees with positions and bindings, the vocabulary, the seam."""

from __future__ import annotations

import ast
import bisect
import functools
import os
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property

import libcst as cst
from libcst.metadata import CodeRange

from seamfix.analysis.expressions import nested_statements
from seamfix.analysis.seam_bindings import absolute_module
from seamfix.codemods.bindings import (
    MODULE_ATTRIBUTES,
    Bindings,
    Occurrence,
    global_declarations,
    top_level_names,
)
from seamfix.codemods.dataflow import certainly_assigned, own_nodes
from seamfix.codemods.decorators import Decorators, parsed_module
from seamfix.codemods.focus import Focus
from seamfix.codemods.nodes import Span, expressions_by_span, span_of
from seamfix.codemods.project import Project, is_test_module
from seamfix.vocabulary.names import NameClassifier

PLACEHOLDER_PREFIX = "_seamfix_pending_"
# Cheap text tests that spare a walk of the whole tree in the usual file, which has neither.
_STAR_IMPORT = re.compile(r"\bimport\s*\(?\s*\*")
_GLOBAL = re.compile(r"\bglobal\s")
# what reaching a module's own namespace takes, but an import of itself (checked by its name)
_REACH = re.compile(
    r"\bglobals\s*\(|\b__globals__\b|\bmodules\s*[\[.]|__import__\s*\(|\bimport_module\s*\(|\b(?:exec|eval)\s*\("
)
_OWN_NAMESPACE = re.compile(
    r"\bglobals\s*\(|\b__name__\b|\b__globals__\b|\bmodules\b|\bimport\b|__import__|\b(?:exec|eval)\s*\("
)
_DEFINITIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
_DICT_READS = frozenset({"get", "keys", "values", "items", "copy", "__contains__", "__getitem__"})


# how another file may rebind any name of a builder module (`Project.namespace_held_elsewhere`)
_HOLDS_NAMESPACE = (
    "holds the module's namespace (`vars(module)`, `module.__dict__`, a function's `__globals__`, the module by its "
    "name as a string, a patch manager's `setattr(import_module(path), ...)`), through which it may rebind the name"
)


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
    project: Project

    @property
    def module(self) -> cst.Module:
        return self.area.module

    @property
    def positions(self) -> Mapping[cst.CSTNode, CodeRange]:
        return self.area.positions

    @property
    def parents(self) -> Mapping[cst.CSTNode, cst.CSTNode]:
        return self.area.parents

    @cached_property
    def by_span(self) -> dict[Span, cst.BaseExpression]:
        return expressions_by_span(self.positions)

    def span(self, node: cst.CSTNode) -> Span:
        return span_of(self.positions, node)

    @cached_property
    def top_level_names(self) -> frozenset[str]:
        """What the builder module binds at its top level: no adapter function it asks for takes such a name
        (``mla_seam.get_layer_spec`` would read as the builder's own ``get_layer_spec``)."""
        return frozenset(top_level_names(self.tree))

    def compiled_by(self, line: int) -> str | None:
        """Why code at ``line`` (of the file) cannot call the adapter: it is in a function or class that a
        decorator may compile from source (``@torch.jit.script``, ``@triton.jit``, another package's); None
        when every decorator around it runs it as written (``decorators.py``)."""
        return next((why for start, end, why in self._compiled_definitions if start <= line <= end), None)

    @cached_property
    def _compiled_definitions(self) -> list[tuple[int, int, str]]:
        package = self.project.package_parts(self.relpath)
        decorators = Decorators(self.tree, self.module_name, package, self._project_tree)
        return [*decorators.compiled(), *decorators.compiled_by_call()]

    def _project_tree(self, module: str) -> ast.Module | None:
        relpath = self.project.project_file(module)
        if relpath is None or self.project.root is None:
            return None
        try:
            status = os.stat(self.project.root / relpath)
        except OSError:
            return None
        return parsed_module(str(self.project.root / relpath), (status.st_mtime_ns, status.st_size))

    @cached_property
    def module_name(self) -> str:
        return ".".join(self.project.module_parts(self.relpath))

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
            stack.extend((child, inner) for child in nested_statements(statement))
        return found

    def shared_global(self, name: str) -> str | Refusal:
        """The import that gives the adapter the very binding of this file's global ``name``, or why none can.

        Only one plain import at the top level of the module, which nothing rebinds, deletes, declares
        ``global``, patches or re-exports, is certain to be the same object in the adapter at every call;
        anything else the adapter must be passed, or the site stays."""
        stores = self._module_stores.get(name, [])
        why = f"`{name}`, a module-level name of this file"
        if name in self.declared_global:
            return Refusal(f"it reads {why} that a function declares `global`")
        if submodule := self._submodule_named(name):
            return Refusal(submodule)
        if self.own_namespace:
            return Refusal(f"it reads {why}, and the module {self.own_namespace}, which may read or rebind it")
        if len(stores) != 1 or stores[0].kind != "import":
            how = "defines or assigns" if len(stores) == 1 else "binds more than once"
            return Refusal(f"it reads {why} that the module {how}; the adapter cannot share its binding")
        statement = self._top_level_imports.get(id(stores[0].node))
        if statement is None:
            return Refusal(f"it reads {why} imported under `try`/`if`/`with`: the adapter cannot share its binding")
        if self.project.is_patched(name):
            return Refusal(
                f"it reads {why} that some file (a test, a patch layer) patches or sets by name; the adapter would not "
                "see the patch"
            )
        if self.project.reexported(self.module_name, name, self.relpath):
            return Refusal(
                f"it reads {why} that another module or a doctest imports from it (or reads as its attribute) or a "
                "configuration file names by its dotted path"
            )
        if self.project.namespace_held_elsewhere(self.module_name, self.relpath):
            return Refusal(f"it reads {why}, and another file {_HOLDS_NAMESPACE}")
        line = self._import_of(statement, stores[0].node)
        source = line.split()[1]
        if source == self.module_name or is_test_module(source) or self.project.is_script_import(source, self.relpath):
            return Refusal(f"it reads {why} imported from `{source}`, which the adapter must not import")
        if isinstance(statement, ast.ImportFrom) and (rebinding := self._rebound_in(source, stores[0].node.name)):
            return Refusal(
                f"it reads {why} imported from `{source}`, which {rebinding}: the adapter's import of it at each "
                "call may get another object than the builder's import did"
            )
        return line

    def _rebound_in(self, source: str, name: str) -> str | None:
        """How the module ``source`` may give ``name`` another value after the builder imported it (the adapter
        imports it again at each call): a reload (of any module), or, in the project, its own code."""
        if source.rpartition(".")[2] in self.project.reloaded:
            return f"some file reloads (`importlib.reload`), making a new `{name}`"
        # `from pkg import mla_impl`, a submodule: its own entry counts too
        modules = (source, f"{source}.{name}")
        swapped = next((m for m in self.project.swapped for module in modules if _within(module, m)), None)
        if swapped is not None:
            return f"some file swaps in or out of `sys.modules` (`{swapped}`)"
        if (writer := self.project.namespace_rewriter(source, name)) is not None:
            return f"`{writer}` may set by a computed name or through its namespace (`setattr`, `vars`, `__dict__`)"
        relpath = self.project.project_file(source)
        if relpath is None or self.project.root is None:
            return None
        path = self.project.root / relpath
        try:
            status = os.stat(path)
        except OSError:
            return None
        package = self.project.package_parts(relpath)
        declared, reach, lazy = _after_import(str(path), (status.st_mtime_ns, status.st_size), source, package)
        if name in declared:
            return f"rebinds `{name}` in a function (`global {name}`)"
        if reach is not None:
            return f"{reach}, through which it may rebind `{name}`"
        if lazy is not None and name not in lazy:
            return f"answers `{name}` through its module `__getattr__`, anew at each import"
        return None

    def passed_global(self, name: str, function: ast.FunctionDef | ast.AsyncFunctionDef) -> Refusal | None:
        """Why this file's global ``name`` cannot be passed to an adapter function as an argument, if it cannot.

        Passed, it is read where the builder calls the adapter function instead of where the arm reads it:
        the same value only when it is certainly bound by then (else the `NameError` would come before the
        arm's first effects, or where the arm would not read it at all) and nothing the arm runs first can
        rebind it (a `global` declaration is refused with the import, `globals()` here). The module's own
        top level may call ``function`` (through the name of the top-level definition holding it) only after
        it binds ``name``; a call through other code at import time is not seen."""
        why = f"`{name}`, a module-level name of this file"
        if self.own_namespace:
            return Refusal(
                f"it reads {why}, and the module {self.own_namespace}, which may read or rebind it while the arm runs"
            )
        if submodule := self._submodule_named(name):
            return Refusal(submodule)
        if self._deleted_at_module_level(name):
            return Refusal(  # `except E as name:` deletes the name where its handler ends
                f"it reads {why} that the module deletes (`del`, or an `except ... as` handler's end): it may be "
                "unbound where the arm reads it"
            )
        if self.project.is_patched(name):
            return Refusal(
                f"it reads {why} that some file sets as a module attribute or patches by name: set while the arm "
                "runs, the value passed would be the old one"
            )
        if self.module_name.rpartition(".")[2] in self.project.reloaded:
            return Refusal(
                f"it reads {why}, and some file reloads the module (`importlib.reload`), which binds the name anew: "
                "reloaded while the arm runs, the value passed would be the old one"
            )
        if self.project.namespace_held_elsewhere(self.module_name, self.relpath):
            return Refusal(f"it reads {why}, and another file {_HOLDS_NAMESPACE} while the arm runs")
        if name not in self._certainly_bound:
            return Refusal(f"it reads {why} that the module may leave unbound (`try`, `if`, `with`, a loop)")
        if self._read_before_bound(name, function.lineno, in_function=True):
            return Refusal(f"it reads {why}, and the module runs its builder before it binds the name")
        return None

    def _deleted_at_module_level(self, name: str) -> bool:
        stores = self._module_stores.get(name, [])
        return any(not occurrence.is_store or isinstance(occurrence.node, ast.ExceptHandler) for occurrence in stores)

    def _read_before_bound(self, name: str, line: int, in_function: bool) -> bool:
        """May the module's own top level run the code at ``line`` before it binds ``name``: code in a function
        the top level calls (through the name of the top-level definition holding it) before the binding
        statement, or code the top level runs itself (a class body's) at or before it? A call through other
        code at import time is not seen."""
        holding = bisect.bisect_right(self._top_level_lines, line) - 1
        holder = self.tree.body[holding]
        bound_at, run_at = self._import_time_order
        if not in_function:
            return holding <= bound_at.get(name, holding)
        if isinstance(holder, _DEFINITIONS):
            # the top-level statements up to the one that binds the name (itself included) run before it is bound
            return any(index != holding and index <= bound_at[name] for index in run_at.get(holder.name, ()))
        return False

    def read_earlier_may_differ(self, name: cst.Name) -> bool:
        """Might reading ``name`` before the code ahead of it in its expression give another outcome: it may be
        unbound there (a variable not assigned on every path to it or deleted, a module-level name the module
        may leave unbound or bind after the read runs, a name only bound at run time), so that reading it
        raises, or it is a module-level name that code may rebind meanwhile (a function declares it
        `global`, the module reaches its own namespace, another file sets it or holds that namespace)? A
        predicate is passed such a name, read before the MLA read that comes first in the test."""
        where = self.positions[name].start
        occurrence = self.bindings.at(self.area.to_original(where.line), where.column)
        binding = self.bindings.binding(occurrence)
        if binding == "builtin":
            return False
        if binding == "unbound" or occurrence is None or not isinstance(occurrence.node, ast.Name):
            return True
        if binding == "local":
            return not certainly_assigned(self.bindings, occurrence.node)
        if occurrence.name in MODULE_ATTRIBUTES and occurrence.owner is None:
            return False  # `__name__`, `__doc__`: always bound
        global_name = occurrence.name
        if global_name in self.declared_global or self.own_namespace or self.project.is_patched(global_name):
            return True
        if self.project.namespace_held_elsewhere(self.module_name, self.relpath):
            return True
        frame, in_function = occurrence.frame, False
        while frame is not None and not in_function:
            in_function = isinstance(frame.node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            frame = frame.parent
        return (
            self._deleted_at_module_level(occurrence.name)
            or occurrence.name not in self._certainly_bound
            or self._read_before_bound(occurrence.name, occurrence.node.lineno, in_function)
        )

    def builtin_shadowed(self, name: str) -> Refusal | None:
        """Why the builtin ``name`` an arm reads may be another object in this module when the arm runs, if it
        may: a test's ``mock.patch("pkg.model.open", create=True)`` shadows it with a global of the module,
        which the adapter would not see (it reads the builtin)."""
        why = f"it reads the builtin `{name}`, which"
        if self.own_namespace:
            return Refusal(f"{why} the module may shadow with a global: it {self.own_namespace}")
        if self.project.shadows_builtin(self.module_name, name, self.relpath):
            return Refusal(
                f"{why} some file patches or sets by name as a module's global, which the adapter would not see"
            )
        if self.project.namespace_held_elsewhere(self.module_name, self.relpath):
            return Refusal(f"{why} another file may shadow with a global through the module's namespace")
        return None

    def _submodule_named(self, name: str) -> str | None:
        """Why the package's global ``name`` may change under the arm, if a submodule has its name: importing
        ``pkg.name`` anywhere, at any time, sets it in the package's namespace (to what ``from . import name``
        bound already, the one binding that stays the same)."""
        stores = self._module_stores.get(name, [])
        if stores and all(self._imports_submodule(occurrence.node) for occurrence in stores):
            return None
        if self.project.submodule_of(self.relpath, name):
            module = f"{self.module_name}.{name}".lstrip(".")
            return f"it reads `{name}`, a name of this package that its submodule `{module}` has: importing it sets it"
        return None

    def _imports_submodule(self, node: ast.AST) -> bool:
        """Is ``node`` a top-level ``from . import name`` (or ``from pkg import name``) of this package?"""
        statement = self._top_level_imports.get(id(node))
        if not isinstance(statement, ast.ImportFrom) or not isinstance(node, ast.alias) or node.asname:
            return False
        return self.project.absolute(self.relpath, "." * statement.level + (statement.module or "")) == self.module_name

    @cached_property
    def _certainly_bound(self) -> set[str]:
        """The module-level names certainly bound once the module has run."""
        return _certainly_bound(self.tree.body)

    @cached_property
    def _top_level_lines(self) -> list[int]:
        """Where each top-level statement starts, in order (the statement holding a line is found by bisection)."""
        return [statement.lineno for statement in self.tree.body]

    @cached_property
    def _import_time_order(self) -> tuple[dict[str, int], dict[str, list[int]]]:
        """The index of the top-level statement after which each name is certainly bound, and the indices of
        the top-level statements that read each name as they run: computed once, asked per arm and name."""
        bound_at: dict[str, int] = {}
        run_at: dict[str, list[int]] = {}
        for index, statement in enumerate(self.tree.body):
            for name in _certainly_bound([statement]):
                bound_at.setdefault(name, index)
            for name in _names_run(statement):
                run_at.setdefault(name, []).append(index)
        return bound_at, run_at

    @cached_property
    def own_namespace(self) -> str | None:
        """How the module reaches its own namespace, through which it may read or rebind any of its names
        (``calls `globals()```, reads a function's ``__globals__``, imports itself, or reads itself as
        ``sys.modules[__name__]``, ``import_module(__name__)``, by its own name too); None if it does not."""
        if not _OWN_NAMESPACE.search(self.text):
            return None
        return _namespace_reach(self.tree, self.module_name, self.project.package_parts(self.relpath))

    @cached_property
    def _module_stores(self) -> dict[str, list[Occurrence]]:
        """Each module-level name's bindings (stores and ``del``), indexed once: asked once per site."""
        stores: dict[str, list[Occurrence]] = {}
        for occurrence in self.bindings.owned_by(self.bindings.module):
            if _binds(occurrence):
                stores.setdefault(occurrence.name, []).append(occurrence)
        return stores

    @cached_property
    def module_reads(self) -> tuple[Counter[str], dict[int, str]]:
        """How often each module-level name is read, and the name each reading ``ast`` node reads: indexed
        once, so that asking what is read outside an arm costs the arm, not the module."""
        counts: Counter[str] = Counter()
        by_node: dict[int, str] = {}
        for occurrence in self.bindings.owned_by(self.bindings.module):
            if occurrence.kind == "name" and not occurrence.is_store:
                counts[occurrence.name] += 1
                by_node[id(occurrence.node)] = occurrence.name
        return counts, by_node

    @cached_property
    def _top_level_imports(self) -> dict[int, ast.Import | ast.ImportFrom]:
        return {
            id(alias): node
            for node in self.tree.body
            if isinstance(node, (ast.Import, ast.ImportFrom))
            for alias in node.names
        }

    @cached_property
    def has_star_import(self) -> bool:
        if not _STAR_IMPORT.search(self.text):
            return False
        return any(isinstance(node, ast.ImportFrom) and node.names[0].name == "*" for node in ast.walk(self.tree))

    @cached_property
    def declared_global(self) -> set[str]:
        if not _GLOBAL.search(self.text):
            return set()
        return global_declarations(self.tree)

    def _import_of(self, node: ast.Import | ast.ImportFrom, alias: ast.alias) -> str:
        suffix = f" as {alias.asname}" if alias.asname else ""
        if isinstance(node, ast.Import):
            return f"import {alias.name}{suffix}"
        module = self.project.absolute(self.relpath, "." * node.level + (node.module or ""))
        return f"from {module} import {alias.name}{suffix}"


@dataclass(frozen=True)
class Refusal:
    """Why a codemod leaves a site as it is."""

    reason: str


def _binds(occurrence: Occurrence) -> bool:
    """A store of the name, or a ``del`` of it."""
    return occurrence.is_store or isinstance(getattr(occurrence.node, "ctx", None), ast.Del)


def _certainly_bound(statements: list[ast.stmt]) -> set[str]:
    """The names ``statements`` certainly bind when they run to their end: a ``try`` binds what its body
    and each handler that does not raise bind, an ``if`` what each branch binds."""
    bound: set[str] = set()
    for statement in statements:
        if isinstance(statement, ast.AnnAssign) and statement.value is None:
            continue  # `name: T` only annotates
        if isinstance(statement, (*_DEFINITIONS, ast.Import, ast.ImportFrom, ast.Assign, ast.AnnAssign)):
            bound |= top_level_names(ast.Module(body=[statement], type_ignores=[]))
        elif isinstance(statement, ast.If):
            bound |= _certainly_bound(statement.body) & _certainly_bound(statement.orelse)
        elif isinstance(statement, (ast.Try, ast.TryStar)):
            body = _certainly_bound(statement.body) | _certainly_bound(statement.orelse)
            for handler in statement.handlers:
                if not (handler.body and isinstance(handler.body[-1], ast.Raise)):
                    body &= _certainly_bound(handler.body)
            bound |= body | _certainly_bound(statement.finalbody)
    return bound


def _names_run(statement: ast.stmt) -> set[str]:
    """The names ``statement`` reads when it runs (function bodies run later; decorators, defaults and class
    bodies now)."""
    names: set[str] = set()
    stack: list[ast.AST] = [statement]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
            names.add(node.id)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            stack.extend([*node.decorator_list, node.args, *([node.returns] if node.returns else [])])
        elif isinstance(node, ast.Lambda):
            stack.append(node.args)
        else:
            stack.extend(ast.iter_child_nodes(node))
    return names


def _within(module: str, package: str) -> bool:
    return module == package or module.startswith(f"{package}.")


def _namespace_reach(
    tree: ast.Module, module_name: str, package: tuple[str, ...], reads: frozenset[int] = frozenset()
) -> str | None:
    """How the module ``module_name`` reaches its own namespace (see ``FileContext.own_namespace``); a
    ``globals()`` call whose id is in ``reads`` only reads it."""
    top_level = {id(node) for node in own_nodes(tree.body)}
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)) and module_name in _imported_modules(node, package):
            return f"imports itself (`{ast.unparse(node)}`)"
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "globals":
            if id(node) in reads:
                continue
            return "calls `globals()`"
        if isinstance(node, ast.Attribute) and node.attr == "__globals__":
            return f"reads `{ast.unparse(node)}`"
        if _runs_code_in_its_namespace(node, top_level):
            return f"calls `{node.func.id}(...)` without a namespace of its own (the code it runs may rebind its names)"
        if _reads_module_named(node, module_name):
            return f"reads itself as `{ast.unparse(node)}`"
    return None


def _runs_code_in_its_namespace(node: ast.AST, top_level: set[int]) -> bool:
    """``exec(code)`` anywhere (``global x; x = 2`` in it rebinds the module's ``x``), ``eval(code)`` outside
    functions and classes (a ``:=`` in it binds a module name there): the code runs with the module's globals.
    With a namespace of its own passed, it does not."""
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in {"exec", "eval"}):
        return False
    if node.func.id == "eval" and id(node) not in top_level:
        return False
    return len(node.args) < 2 and not any(keyword.arg in {"globals", None} for keyword in node.keywords)


@functools.lru_cache(maxsize=256)
def _after_import(
    path: str, stamp: tuple[int, int], module_name: str, package: tuple[str, ...]
) -> tuple[frozenset[str], str | None, frozenset[str] | None]:
    """What the project module at ``path`` (as ``stamp``, its mtime and size, saw it) may do to its own
    names once imported: the names its functions declare ``global``; how it reaches its own namespace (None:
    it does not); with a module ``__getattr__``, the names it binds itself (None: no ``__getattr__``)."""
    try:
        with open(path, "rb") as handle:
            data = handle.read()
        text = data.decode("utf-8", "replace")
        # the usual module has none of these: its tree is not even built
        itself = re.compile(rf"\bimport\b[^\n]*\b{re.escape(module_name.rpartition('.')[2])}\b")
        declares, reaches = _GLOBAL.search(text), _REACH.search(text) or itself.search(text)
        lazy = "__getattr__" in text
        if not (declares or reaches or lazy):
            return frozenset(), None, None
        tree = ast.parse(data)
    except (OSError, SyntaxError, ValueError, RecursionError):
        return frozenset(), None, None  # importing it fails, for the builder as for the adapter
    declared = frozenset(global_declarations(tree) if declares else ())
    reach = _namespace_reach(tree, module_name, package, _globals_only_read(tree)) if reaches else None
    lazy = lazy and any(isinstance(node, ast.FunctionDef) and node.name == "__getattr__" for node in tree.body)
    return declared, reach, frozenset(top_level_names(tree)) if lazy else None


def _globals_only_read(tree: ast.Module) -> frozenset[int]:
    """The ``globals()`` calls that cannot rebind a name: handed to ``__import__`` (which reads
    ``__name__``/``__package__`` from it), subscripted to read, or asked ``.get``/``.keys``/``.items``..."""
    reads: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "__import__":
            reads.update(id(argument) for argument in node.args[1:2])
        elif isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load):
            reads.add(id(node.value))
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in _DICT_READS:
            reads.add(id(node.func.value))
    return frozenset(reads)


def _reads_module_named(node: ast.AST, module_name: str) -> bool:
    """Is ``node`` the module ``module_name`` reached by its name (``__name__``, or the name as a string):
    ``sys.modules[__name__]``, ``sys.modules.get(__name__)``, ``importlib.import_module(__name__)``,
    ``__import__(__name__)``?"""
    if isinstance(node, ast.Subscript):
        modules = isinstance(node.value, ast.Attribute) and node.value.attr == "modules"
        return modules and _names_module(node.slice, module_name)
    if not isinstance(node, ast.Call) or not node.args or not _names_module(node.args[0], module_name):
        return False
    callee = node.func
    name = callee.attr if isinstance(callee, ast.Attribute) else getattr(callee, "id", None)
    owner = getattr(callee, "value", None)
    modules_get = name == "get" and isinstance(owner, ast.Attribute) and owner.attr == "modules"
    return name in ("import_module", "__import__") or modules_get


def _imported_modules(node: ast.Import | ast.ImportFrom, package: tuple[str, ...]) -> set[str]:
    """The modules an import statement binds a name to (``import pkg.model as m``, ``from pkg import model``:
    ``pkg.model``; ``from pkg.model import X`` binds no module)."""
    if isinstance(node, ast.Import):
        return {alias.name for alias in node.names}
    source = absolute_module(package, node.level, node.module)
    return {f"{source}.{alias.name}".lstrip(".") for alias in node.names}


def _names_module(node: ast.AST, module_name: str) -> bool:
    if isinstance(node, ast.Constant):
        return node.value == module_name
    return isinstance(node, ast.Name) and node.id == "__name__"
