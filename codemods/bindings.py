"""Which scope binds each use of a name: Python's own ``ast`` and ``symtable``, not LibCST's ScopeProvider.

Why not the provider: on the corpus's largest builder (transformer_config.py, 99 kB, a 1,000-line
``__post_init__``) LibCST's ScopeProvider takes 0.93 s, while ``ast.parse`` takes 0.024 s and ``symtable``
0.012 s; over the 44 files with findings of the apply benchmark, scopes took 3.1 of `seamfix apply`'s 21.4 s
and resolving them batched with parent links 3.0 s more. The codemods still edit the LibCST tree: they find
a LibCST name's binding here by its position (``at``).

``symtable`` says what each function, class and the module bind; lambdas and comprehensions bind only their
parameters and ``for`` targets, which the walk reads off the tree. The answers follow LibCST's: the owner of
a use is the innermost enclosing scope that binds the name, skipping class bodies for the functions inside
them; parameters count, keyword-argument names and imported module names are not uses. Where LibCST misses
a binding that Python makes (``:=`` in a comprehension, names captured by ``case`` patterns), Python wins.
"""

from __future__ import annotations

import ast
import builtins
import re
import symtable
from dataclasses import dataclass, field
from functools import cached_property

from seamfix.analysis.expressions import nested_statements

_FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef)
_COMPOUND = (ast.If, ast.Try, ast.TryStar, ast.With, ast.AsyncWith, ast.For, ast.AsyncFor, ast.While, ast.Match)
_COMPREHENSIONS = (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)
_LINE_BREAK = re.compile(r"\r\n?|\n")


@dataclass(eq=False)
class Frame:
    """A scope: the module, a function, a class (each with its symbol table), a lambda or a comprehension."""

    node: ast.AST
    parent: Frame | None
    table: symtable.SymbolTable | None = None  # None for lambdas and comprehensions
    bound: set[str] = field(default_factory=set)  # what a lambda or comprehension binds

    @property
    def is_class(self) -> bool:
        return isinstance(self.node, ast.ClassDef)

    @property
    def is_comprehension(self) -> bool:
        return isinstance(self.node, _COMPREHENSIONS)

    def _mangled(self, name: str) -> str:
        """``__x`` as ``symtable`` knows it inside a class: ``_Class__x``."""
        if not name.startswith("__") or name.endswith("__"):
            return name
        frame = self
        while frame is not None and not frame.is_class:
            frame = frame.parent
        stem = frame.node.name.lstrip("_") if frame is not None else ""
        return f"_{stem}{name}" if stem else name

    def binds(self, name: str) -> str | None:
        """``local``, ``global`` or ``nonlocal`` when this scope says where ``name`` lives, else None."""
        if self.table is None:
            return "local" if name in self.bound else None
        try:
            symbol = self.table.lookup(self._mangled(name))
        except KeyError:
            return None
        if symbol.is_declared_global():
            return "global"
        if symbol.is_nonlocal():
            return "nonlocal"
        return "local" if symbol.is_local() else None


# the names every module has before its first statement runs: its own, though no statement binds them (and the
# builtins module has most of them too, its own: `builtins.__name__` is "builtins")
MODULE_ATTRIBUTES = frozenset({
    "__name__", "__doc__", "__file__", "__package__", "__spec__", "__loader__", "__builtins__", "__cached__",
    "__path__", "__annotations__",
})  # fmt: skip


def is_unbound(name: str) -> bool:
    """Is ``name``, which no scope of the module binds, missing from Python's builtins too? The module's
    namespace may still hold it when the code runs (in a package's ``__init__.py``, importing a submodule
    binds the submodule's name there), but code moved to the adapter would look it up in the adapter's."""
    return not hasattr(builtins, name)


@dataclass(eq=False)
class Occurrence:
    """One identifier in the tree: a ``Name``, a parameter, a definition's or handler's name, an import."""

    name: str
    node: ast.AST
    frame: Frame  # where it appears
    owner: Frame | None  # the scope that binds it; None for a builtin or an undefined name
    kind: str  # "name", "parameter", "definition" (def, class, except, match capture) or "import"

    @property
    def is_store(self) -> bool:
        return self.kind in ("definition", "import") or isinstance(getattr(self.node, "ctx", None), ast.Store)


class Bindings:
    """Every identifier of a module with its owner, by node and by position."""

    def __init__(self, tree: ast.Module, text: str, filename: str) -> None:
        self.module = Frame(tree, None, symtable.symtable(text, filename, "exec"))
        self._lines = _LINE_BREAK.split(text)
        self._module_names = _module_names(self.module.table)
        self.occurrences: list[Occurrence] = []
        self.frames: dict[ast.AST, Frame] = {tree: self.module}
        self._by_node: dict[ast.AST, Occurrence] = {}
        self._by_position: dict[tuple[int, int], Occurrence] = {}
        self._owned: dict[Frame | None, list[Occurrence]] | None = None
        self._children: dict[int, dict[tuple[str, int], symtable.SymbolTable]] = {}
        self._walk_body(tree.body, self.module)

    @cached_property
    def aliases(self) -> dict[str, str]:
        """The names the module binds, anywhere in it, to what another name names, with that name: imports under
        another name (``here`` for ``from inspect import currentframe as here``, ``w`` for ``import warnings as
        w``) and a builtin assigned to a name (``look`` for ``look = eval``)."""
        found: dict[str, str] = {}
        for node in ast.walk(self.module.node):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                found.update((alias.asname, alias.name) for alias in node.names if alias.asname)
            elif isinstance(node, ast.Assign) and isinstance(node.value, ast.Name) and node.value in self._by_node:
                if self.owner(node.value) is None:
                    found.update((target.id, node.value.id) for target in node.targets if isinstance(target, ast.Name))
        return found

    def owner(self, node: ast.Name) -> Frame | None:
        return self._by_node[node].owner

    def frame_of(self, node: ast.Name) -> Frame:
        return self._by_node[node].frame

    def owned_by(self, frame: Frame) -> list[Occurrence]:
        """Every identifier whose owner is ``frame``."""
        if self._owned is None:
            self._owned = {}
            for occurrence in self.occurrences:
                self._owned.setdefault(occurrence.owner, []).append(occurrence)
        return self._owned.get(frame, [])

    def at(self, line: int, column: int) -> Occurrence | None:
        """The ``Name`` or parameter starting at ``line`` and (character) ``column``."""
        return self._by_position.get((line, column))

    def binding(self, occurrence: Occurrence | None) -> str:
        """``local`` (a variable of a function), ``global`` (bound at module level), ``builtin``, or ``unbound``:
        a name that neither the module binds nor Python's builtins hold (see ``is_unbound``)."""
        owner = occurrence.owner if occurrence is not None else None
        if owner is None and occurrence is not None and occurrence.name in MODULE_ATTRIBUTES:
            return "global"  # `__name__`: the module's, which code moved to the adapter must be passed
        if owner is None:
            return "unbound" if occurrence is not None and is_unbound(occurrence.name) else "builtin"
        return "global" if owner is self.module else "local"

    # The walk: each part of a definition in the scope where Python evaluates it.

    def _walk_body(self, statements: list[ast.stmt], frame: Frame) -> None:
        for statement in statements:
            self._walk(statement, frame)

    def _walk(self, node: ast.AST, frame: Frame) -> None:
        if isinstance(node, (*_FUNCTIONS, ast.Lambda)):
            self._function(node, frame)
        elif isinstance(node, ast.ClassDef):
            for part in [*node.decorator_list, *node.bases, *node.keywords]:
                self._walk(part, frame)
            self._record(node.name, node, frame, "definition")
            inner = self._enter(node, frame)
            self._walk_body(node.body, inner)
        elif isinstance(node, _COMPREHENSIONS):
            self._comprehension(node, frame)
        elif isinstance(node, ast.Name):
            self._record(node.id, node, frame, "name")
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                if alias.name != "*":
                    self._record(alias.asname or alias.name.split(".")[0], alias, frame, "import")
        else:
            if isinstance(node, ast.ExceptHandler) and node.name:
                self._record(node.name, node, frame, "definition")
                self._index_handler_name(node)
            elif isinstance(node, (ast.MatchAs, ast.MatchStar)) and node.name:
                self._record(node.name, node, frame, "definition")
            elif isinstance(node, ast.MatchMapping) and node.rest:
                self._record(node.rest, node, frame, "definition")
            for child in ast.iter_child_nodes(node):
                self._walk(child, frame)

    def _function(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda, frame: Frame) -> None:
        arguments = node.args
        every = parameters_of(arguments)
        outside = [*arguments.defaults, *(d for d in arguments.kw_defaults if d is not None)]
        outside += [a.annotation for a in every if a.annotation is not None]
        if not isinstance(node, ast.Lambda):
            outside += [*node.decorator_list, *([node.returns] if node.returns else [])]
        for part in outside:
            self._walk(part, frame)
        if isinstance(node, ast.Lambda):
            inner = Frame(node, frame, bound={a.arg for a in every})
            self.frames[node] = inner
        else:
            self._record(node.name, node, frame, "definition")
            inner = self._enter(node, frame)
        for argument in every:
            self._record(argument.arg, argument, inner, "parameter")
        if isinstance(node, ast.Lambda):
            self._walk(node.body, inner)
        else:
            self._walk_body(node.body, inner)

    def _comprehension(self, node: ast.ListComp | ast.SetComp | ast.DictComp | ast.GeneratorExp, frame: Frame):
        first, *others = node.generators
        self._walk(first.iter, frame)  # the outermost iterable is evaluated where the comprehension is
        bound = {n.id for g in node.generators for n in ast.walk(g.target) if isinstance(n, ast.Name)}
        inner = Frame(node, frame, bound=bound)
        self.frames[node] = inner
        for part in [first.target, *first.ifs, *others]:
            self._walk(part, inner)
        for part in (node.key, node.value) if isinstance(node, ast.DictComp) else (node.elt,):
            self._walk(part, inner)

    def _enter(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef, frame: Frame) -> Frame:
        """The frame of a def or class, with its table among the enclosing table's children."""
        enclosing = frame
        while enclosing.table is None:
            enclosing = enclosing.parent
        table = self._children_of(enclosing.table)[(node.name, node.lineno)]
        inner = Frame(node, frame, table)
        self.frames[node] = inner
        return inner

    def _children_of(self, table: symtable.SymbolTable) -> dict[tuple[str, int], symtable.SymbolTable]:
        """A table's children by name and line, listed once (a module of thousands of functions)."""
        children = self._children.get(table.get_id())
        if children is None:
            children = self._children[table.get_id()] = {}
            for child in table.get_children():
                children.setdefault((child.get_name(), child.get_lineno()), child)
        return children

    def _record(self, name: str, node: ast.AST, frame: Frame, kind: str) -> None:
        occurrence = Occurrence(name, node, frame, self._resolve(name, frame), kind)
        self.occurrences.append(occurrence)
        self._by_node[node] = occurrence
        if kind in ("name", "parameter"):
            self._by_position[(node.lineno, self.column(node.lineno, node.col_offset))] = occurrence

    def _resolve(self, name: str, frame: Frame) -> Frame | None:
        current: Frame | None = frame
        while current is not None and current is not self.module:
            # a class body's names are invisible to the functions inside it
            says = None if current.is_class and current is not frame else current.binds(name)
            if says == "local":
                return current
            if says == "global":
                break
            current = current.parent
        return self.module if name in self._module_names else None

    def _index_handler_name(self, handler: ast.ExceptHandler) -> None:
        """Index ``except E as e``'s ``e`` by its position, which LibCST gives it and ``ast`` does not: right
        after the type (and the parentheses around it) on the type's last line."""
        line, offset = handler.type.end_lineno, handler.type.end_col_offset
        rest = self._lines[line - 1].encode()[offset:].decode(errors="replace")
        found = re.match(rf"[\s)]*as\s+({re.escape(handler.name)})\b", rest)
        if found:
            self._by_position[(line, self.column(line, offset) + found.start(1))] = self._by_node[handler]

    def column(self, line: int, offset: int) -> int:
        """``ast``'s UTF-8 byte offset as a character column (LibCST's)."""
        text = self._lines[line - 1]
        return offset if text.isascii() else len(text.encode()[:offset].decode(errors="replace"))


def parameters_of(arguments: ast.arguments) -> list[ast.arg]:
    """Every parameter of a signature, ``*args`` and ``**kwargs`` included."""
    every = [*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs]
    return every + [a for a in (arguments.vararg, arguments.kwarg) if a is not None]


def _module_names(module: symtable.SymbolTable) -> set[str]:
    """What the module binds, including names that a function declares ``global`` and assigns."""
    names = set()
    stack = [module]
    while stack:
        table = stack.pop()
        for symbol in table.get_symbols():
            if table is module and (symbol.is_assigned() or symbol.is_imported() or symbol.is_namespace()):
                names.add(symbol.get_name())
            elif symbol.is_declared_global() and symbol.is_assigned():
                names.add(symbol.get_name())
        stack.extend(table.get_children())
    return names


def top_level_names(tree: ast.Module) -> set[str]:
    """The names a module binds at its top level, in any branch of its ``if``/``try``/``with``/loops/``match``
    (``try: from fast import f``), but not inside its functions and classes (bar their own names)."""
    names: set[str] = set()
    for node in tree.body:
        names |= _statement_names(node)
    return names


def global_declarations(tree: ast.AST) -> set[str]:
    """The names that ``global`` statements anywhere in ``tree`` declare: a function may bind them when called."""
    return {name for node in ast.walk(tree) if isinstance(node, ast.Global) for name in node.names}


def _statement_names(statement: ast.stmt) -> set[str]:
    if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return {statement.name}
    if isinstance(statement, (ast.Import, ast.ImportFrom)):
        return {(alias.asname or alias.name).split(".")[0] for alias in statement.names}
    if not isinstance(statement, _COMPOUND):
        return _stores(statement)
    names: set[str] = set()
    for child in ast.iter_child_nodes(statement):  # tests, targets and items first, then the nested blocks
        if not isinstance(child, (ast.stmt, ast.excepthandler, ast.match_case)):
            names |= _stores(child)
        elif isinstance(child, ast.ExceptHandler) and child.name:
            names.add(child.name)
        elif isinstance(child, ast.match_case):
            captures = (n for n in ast.walk(child.pattern) if isinstance(n, (ast.MatchAs, ast.MatchStar)))
            names.update(n.name for n in captures if n.name)
            names.update(n.rest for n in ast.walk(child.pattern) if isinstance(n, ast.MatchMapping) and n.rest)
            names |= _stores(child.guard) if child.guard else set()
    for nested in nested_statements(statement):
        names |= _statement_names(nested)
    return names


def _stores(node: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
