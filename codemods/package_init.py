"""Whether importing the seam runs code the builder did not run before: the ``__init__.py`` of its packages.

``from pkg.sub import mla_seam`` first imports ``pkg`` and ``pkg.sub``. When their ``__init__.py`` only
define names (a docstring, ``__all__``, standard-library imports), that changes nothing. When one imports
the project's modules, torch or megatron, or calls something (``initialize_accelerator()``), a builder
outside that package that never imported it now runs all of that, at the seam import's line: a new
dependency for a module that had none (a Hugging Face model file now needs megatron), a patch applied
before the one the module applies first (``import mindspeed.megatron_adaptor`` must precede megatron), or
a circular import (``pkg/sub/__init__.py`` imports, through others, the very builder being imported).
And a module that never imported the seam's top-level package (a tool run as a script, a remote-code
model) would need it importable. The adapter module's own top level is the same question: apply's
functions import inside their bodies, but hand-written code there (``from pkg.model import helper``,
``import torch``, ``from seamfix.runtime.megatron import ...``) runs at the seam import too: an import cycle
when it leads back to the builder, a new dependency when it loads a package the builder does not import
itself. Apply leaves such a builder as it is and says why.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from seamfix.analysis.seam_bindings import absolute_module

_STDLIB = frozenset(sys.stdlib_module_names)
ProjectFile = Callable[[str], "str | None"]  # a module name -> its project file, if the project holds it
_REMEDY = "an adapter in a package whose `__init__.py` only defines names (or at the top level) avoids it"
_LAZY = "move it into the body of the adapter function that needs it"


@dataclass(frozen=True)
class Statement:
    """A top-level statement of a module that does more than bind names: where it is, the modules it
    imports itself, and whether it runs code (see ``_effects``)."""

    where: str
    imports: tuple[str, ...]
    runs: bool


@dataclass(frozen=True)
class PackageInit:
    """What importing one package of the seam, or the adapter module itself, does: the first statement of
    its file (or of a project module it imports) that runs code, if any; the project modules it loads and
    the packages beyond the project and the standard library it needs (top-level names; the adapter's
    only: to a package they are code it runs), each with the statement of its own file that loads it.
    Complete when ``runs`` is None, or for the adapter, whose ``statements`` all count."""

    runs: str | None
    loads: Mapping[str, str]
    needs: Mapping[str, str] = field(default_factory=dict)
    statements: tuple[Statement, ...] = ()
    answers_names: str | None = None  # how and where a package answers names of its own (a module `__getattr__`)


def seam_inits(root: Path | None, project_file: ProjectFile, seam_module: str) -> dict[str, PackageInit]:
    """What importing the seam runs, in order: each package along it (``pkg``, ``pkg.sub``), then the
    adapter module, by name. The packages have run when the adapter's own code does."""
    inits: dict[str, PackageInit] = {}
    parts = seam_module.split(".")
    for depth in range(1, len(parts)):
        name = ".".join(parts[:depth])
        seen: dict[str, str] = {}
        answers = _own_names_answered(root, project_file, name)
        inits[name] = PackageInit(_runs_code(root, project_file, name, seen), _loaded_by(seen), answers_names=answers)
    seen, needs = dict.fromkeys(inits, ""), {}
    statements = tuple(_effects(root, project_file, seam_module, seen, needs))
    runs = next((statement.where for statement in statements if statement.runs), None)
    inits[seam_module] = PackageInit(runs, _loaded_by(seen), needs, statements)
    return inits


def _own_names_answered(root: Path | None, project_file: ProjectFile, package: str) -> str | None:
    """Where ``package``'s ``__init__.py`` defines a module ``__getattr__`` at its top level, or puts another
    object in its place in ``sys.modules`` (a lazy module, as Hugging Face's ``_LazyModule``), said with its
    ``path:line``: ``from package import name`` asks it for ``name`` before it imports the submodule of that
    name."""
    relpath = project_file(package) if root is not None else None
    if relpath is None:
        return None
    try:
        tree = ast.parse((root / relpath).read_bytes().decode("utf-8-sig"))
    except (OSError, UnicodeDecodeError, SyntaxError, ValueError):
        return None  # importing it fails anyway, for the builder as for the seam
    for statement in _top_level_statements(tree.body):
        if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef)) and statement.name == "__getattr__":
            return f"its module `__getattr__`, {relpath}:{statement.lineno}"
        targets = statement.targets if isinstance(statement, ast.Assign) else []
        itself = {f"sys.modules[{key}]" for key in ("__name__", repr(package))}  # as `ast.unparse` spells them
        if any(ast.unparse(target) in itself for target in targets):
            return f"the object that {relpath}:{statement.lineno} puts in its place in `sys.modules`"
    return None


def _loaded_by(seen: dict[str, str]) -> dict[str, str]:
    """The modules a file loads, without the file itself and what ran before it (recorded with no statement)."""
    return {module: at for module, at in seen.items() if at}


def _runs_code(root: Path | None, project_file: ProjectFile, module: str, seen: dict[str, str],
               needs: dict[str, str] | None = None, via: str = "") -> str | None:  # fmt: skip
    """The first statement of ``module``'s file (a package's ``__init__.py``) that runs code (see
    ``_effects``), as ``path:line: `code```; None when importing it has no effect beyond its names."""
    return next((s.where for s in _effects(root, project_file, module, seen, needs, via) if s.runs), None)


def _effects(root: Path | None, project_file: ProjectFile, module: str, seen: dict[str, str],
             needs: dict[str, str] | None = None, via: str = "") -> Iterator[Statement]:  # fmt: skip
    """Each top-level statement of ``module``'s file that does more than bind names: where it is, the
    modules it imports, and whether it runs code: anything but importing standard-library modules,
    project modules that run nothing and, with ``needs``, packages beyond the project (recorded there by
    top-level name, with the statement of the first file, ``via``, that loads them). ``seen`` gets each
    project module loaded, the same way. A namespace package (no file) runs nothing; a file that cannot be
    read or parsed is taken to run code."""
    relpath = project_file(module) if root is not None else None
    if relpath is None or module in seen:
        return
    seen[module] = via
    try:
        text = (root / relpath).read_bytes().decode("utf-8-sig")  # a BOM is no code
        tree = ast.parse(text)
    except (OSError, UnicodeDecodeError, SyntaxError, ValueError):
        yield Statement(f"{relpath}: cannot be read to tell", (), True)
        return
    package_parts = tuple(module.split(".")) if relpath.endswith("__init__.py") else tuple(module.split(".")[:-1])
    pure = _Pure.of(tree)
    for statement in tree.body:
        if _binds_only(statement, pure):
            if isinstance(statement, ast.ClassDef) and not _defines(statement, "__init_subclass__"):
                pure.classes.add(statement.name)
            continue
        line = (ast.get_source_segment(text, statement) or "").splitlines()[:1]
        where = f"{relpath}:{statement.lineno}: `{line[0][:70] if line else ''}`"
        imported = _imported(statement, package_parts, project_file)
        runs = not isinstance(statement, (ast.Import, ast.ImportFrom)) or not _loads_nothing(
            root, project_file, imported, seen, needs, via or where
        )
        yield Statement(where, tuple(imported), runs)


def imports_without_effects(
    tree: ast.Module, package_parts: tuple[str, ...], root: Path | None, project_file: ProjectFile
) -> set[int]:
    """The lines of the module's top-level imports that apply may drop without changing what importing the
    module does: each module they load is loaded by an earlier top-level import already, or is a
    standard-library module or a project module whose import runs nothing (see ``_effects``). Any other
    import may run code at its place in the import order (a third-party package, a module that registers
    kernels or applies a patch) or fail there (a package that is not installed)."""
    lines: set[int] = set()
    earlier: set[str] = set()
    for statement in tree.body:
        if isinstance(statement, (ast.Import, ast.ImportFrom)):
            loaded = _imported(statement, package_parts, project_file)
            if set(loaded) <= earlier or _loads_nothing(root, project_file, loaded, {}, None, ""):
                lines.add(statement.lineno)
            earlier.update(loaded)
    return lines


def _imported(statement: ast.stmt, package_parts: tuple[str, ...], project_file: ProjectFile) -> list[str]:
    """The modules a top-level import loads: ``import a.b`` loads ``a`` and ``a.b``; ``from m import x``
    loads ``m``, and ``m.x`` when that is a project module rather than a name."""
    loaded = _modules_loaded(statement, package_parts)
    if isinstance(statement, ast.ImportFrom):
        base = absolute_module(package_parts, statement.level, statement.module)
        submodules = (f"{base}.{alias.name}".lstrip(".") for alias in statement.names if alias.name != "*")
        loaded += [name for name in submodules if project_file(name) is not None]
    return loaded


def _loads_nothing(root: Path | None, project_file: ProjectFile, loaded: list[str], seen: dict[str, str],
                   needs: dict[str, str] | None, where: str) -> bool:  # fmt: skip
    """Are ``loaded`` (one import's modules) only standard-library modules, project modules that run
    nothing and, with ``needs``, packages beyond the project (recorded there)?"""
    for name in loaded:
        if project_file(name) is not None:
            if _runs_code(root, project_file, name, seen, needs, where) is not None:
                return False
        elif name.split(".")[0] not in _STDLIB and not _in_project(name, loaded, project_file):
            if needs is None:
                return False
            needs.setdefault(name.split(".")[0], where)
    return True


def _in_project(name: str, loaded: list[str], project_file: ProjectFile) -> bool:
    """Is ``name`` a namespace package of the project (a folder without ``__init__.py`` that a project
    module of the same import lies in)?"""
    return any(other.startswith(f"{name}.") and project_file(other) is not None for other in loaded)


@dataclass
class _Pure:
    """Names a module's top level binds to things that run nothing of the project's when used to define a
    class: ``dataclasses.dataclass`` and ``dataclasses.field`` (``"dataclasses."`` for the module itself), and
    the module's own classes that only bind names (a base that cannot register its subclasses)."""

    dataclass_names: frozenset[str] = frozenset()
    field_names: frozenset[str] = frozenset()
    classes: set[str] = field(default_factory=set)

    @classmethod
    def of(cls, tree: ast.Module) -> _Pure:
        imported: dict[str, set[str]] = {"dataclass": set(), "field": set()}
        for statement in tree.body:
            if isinstance(statement, ast.ImportFrom) and statement.module == "dataclasses" and not statement.level:
                for alias in statement.names:
                    imported.get(alias.name, set()).add(alias.asname or alias.name)
            elif isinstance(statement, ast.Import):
                module = {f"{a.asname or a.name}." for a in statement.names if a.name == "dataclasses"}
                imported["dataclass"].update(module)
                imported["field"].update(module)
        return cls(frozenset(imported["dataclass"]), frozenset(imported["field"]))

    def names(self, node: ast.expr, kind: str) -> bool:
        """Is ``node`` ``dataclass`` (``kind``) or ``field`` under one of the names the module binds?"""
        bound = self.dataclass_names if kind == "dataclass" else self.field_names
        if isinstance(node, ast.Name):
            return node.id in bound
        is_attribute = isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
        return is_attribute and node.attr == kind and f"{node.value.id}." in bound

    def is_dataclass(self, decorator: ast.expr) -> bool:
        """``@dataclass``, or called with constant keywords (``frozen=True``)."""
        if isinstance(decorator, ast.Call):
            constant = all(isinstance(k.value, ast.Constant) for k in decorator.keywords)
            return not decorator.args and constant and self.names(decorator.func, "dataclass")
        return self.names(decorator, "dataclass")

    def is_field(self, value: ast.expr) -> bool:
        """``field(default=1)``, ``field(default_factory=list)``: keywords of constants or builtin containers."""
        return (
            isinstance(value, ast.Call)
            and self.names(value.func, "field")
            and not value.args
            and all(_is_literal(k.value) or getattr(k.value, "id", None) in _CONTAINERS for k in value.keywords)
        )


_CONTAINERS = frozenset({"list", "dict", "set", "tuple"})
_BUILTIN_TYPES = _CONTAINERS | {"str", "int", "float", "bool", "bytes"}  # read as annotations: no effect


def _binds_only(statement: ast.stmt, pure: _Pure | None = None) -> bool:
    """A statement whose execution only binds names to constants: a docstring, ``pass``, ``__all__ = [...]``,
    ``VERSION = "1.0"`` (in a dataclass, ``field(default_factory=list)``), a plain function definition, a
    plain class of such statements (no keyword, no decorator but ``@dataclass``, no base but a class of the
    module that is such a class itself and defines no ``__init_subclass__``, which could register it),
    ``if TYPE_CHECKING:`` (false at run time). ``pure``: the names of the module's top level that count."""
    pure = pure or _Pure()
    if isinstance(statement, ast.Pass):
        return True
    if isinstance(statement, ast.Expr):
        return isinstance(statement.value, ast.Constant)
    if isinstance(statement, (ast.Assign, ast.AugAssign, ast.AnnAssign)):
        targets = statement.targets if isinstance(statement, ast.Assign) else [statement.target]
        return (
            all(isinstance(target, ast.Name) for target in targets)
            and statement.value is not None
            and (_is_literal(statement.value) or pure.is_field(statement.value))
            and (not isinstance(statement, ast.AnnAssign) or _is_literal(statement.annotation))
        )
    if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef)):
        arguments = statement.args
        evaluated = [*arguments.defaults, *(d for d in arguments.kw_defaults if d is not None)]
        annotations = [
            a.annotation
            for a in (*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs, arguments.vararg, arguments.kwarg)
            if a is not None and a.annotation
        ]
        if statement.returns is not None:
            annotations.append(statement.returns)
        return not statement.decorator_list and all(_is_literal(node) for node in evaluated + annotations)
    if isinstance(statement, ast.ClassDef):
        bases = all(isinstance(base, ast.Name) and base.id in pure.classes for base in statement.bases)
        decorators = all(pure.is_dataclass(decorator) for decorator in statement.decorator_list)
        return bases and decorators and not statement.keywords and all(_binds_only(s, pure) for s in statement.body)
    if isinstance(statement, ast.If):
        test = statement.test
        name = test.id if isinstance(test, ast.Name) else test.attr if isinstance(test, ast.Attribute) else None
        return name == "TYPE_CHECKING" and all(_binds_only(s, pure) for s in statement.orelse)
    return False


def _defines(definition: ast.ClassDef, name: str) -> bool:
    return any(isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef)) and s.name == name for s in definition.body)


def _is_literal(node: ast.expr) -> bool:
    try:
        ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return isinstance(node, ast.Name) and node.id in _BUILTIN_TYPES
    return True


def seam_import_changes_imports(
    before: ast.Module,
    after: ast.Module,
    module_parts: tuple[str, ...],
    package_parts: tuple[str, ...],
    seam,
    inits: dict[str, PackageInit],
    other_root: str | None = None,
    first_party: Callable[[str], bool] = lambda module: False,
    part_of_its_package: bool = False,
) -> str | None:
    """Why the seam import that apply added to a builder (``before`` → ``after``) would change what
    importing the builder does; None when it cannot.

    A module outside the seam's top-level package that imports nothing from it (a tool run as a script, a
    Hugging Face remote-code model, a plugin package) would need that package importable where it ran
    without it. Otherwise a package of the seam, or the adapter, is run already when the module is inside
    it, or when a top-level import before the seam import (or just after it: the seam import goes right
    before ``from pkg.sub.x import y``) loads it; one not run yet must not import this module, a package
    must only define names, and the adapter may also import packages this module imports by then.
    ``other_root``: the adapter's source root when it is not the module's (``.`` for a src layout's ``src``):
    a module that imports nothing from the seam's top level ran without that root importable. ``first_party``:
    whether a top-level module name is one of the project's, beside the module's own package: a module that
    imports one (after a ``sys.path`` change, or as part of its package) runs with the seam importable.
    ``part_of_its_package``: its package's ``__init__.py`` imports it, so calls at its top level are the package's
    set-up (MT-MegatronLM's patch modules), not a script's work; a ``__main__`` guard still says it runs as a file."""
    if _seam_import_at(before, seam) is not None:
        return None
    index = _seam_import_at(after, seam)
    if index is None:
        return None
    package_init = inits.get(seam.package) if seam.package else None
    if package_init is not None and package_init.answers_names is not None:
        return (
            f"the seam import `from {seam.package} import {seam.name}` first asks package `{seam.package}` for "
            f"`{seam.name}` ({package_init.answers_names}), which may answer with something else or raise; an "
            f"adapter in a package that answers no names of its own (or at the top level) avoids it"
        )
    top = seam.parts[0]
    imports_top = any(
        top in _modules_loaded(node, package_parts) for node in ast.walk(before) if isinstance(node, ast.stmt)
    )
    if other_root is not None and not seam.package and not imports_top:
        return (f"it imports nothing from the source root `{other_root}` that holds the adapter (`{top}`), and lives "
                f"in another: the seam import would make it need `{other_root}` importable too (an installed package "
                f"does not ship it); put the adapter in its package")  # fmt: skip
    if inits and seam.package and module_parts[:1] != (top,) and not imports_top:
        return (f"it imports nothing from `{top}` (a script or tool run on its own, a remote-code model, a plugin): "
                f"the seam import would make it need `{top}` importable; `allow` it or leave it out "
                f"(`extend-exclude`)")  # fmt: skip
    # `python pkg/tools/convert.py` puts `pkg/tools` first on sys.path, not the folder holding `pkg`: a
    # script that imports nothing of the seam's package (nor, relatively, of its own) ran without it.
    beside_the_seam = not seam.package and len(module_parts) == 1
    # (a package's `__init__.py` is not run as a file, nor a module it imports: their top-level calls are its set-up)
    script = (
        "a `__main__.py`"
        if module_parts[-1:] == ("__main__",)
        else _runs_as_script(before, calls=module_parts != package_parts and not part_of_its_package)
    )
    # `lib/tools/convert-ckpt.py`, `lib/my tools/x.py`: no import name reaches it, it only ever runs as a file
    script = script or next((f"`{part}` is no module name" for part in module_parts if not part.isidentifier()), None)
    # a module importing its own top-level package (or relatively), or another of the project's beside it, runs
    # with the folder holding them on the path
    loaded_tops = {
        name.split(".")[0]
        for node in ast.walk(before)
        if isinstance(node, ast.stmt)
        for name in _modules_loaded(node, package_parts)
    }
    from_root = imports_top or module_parts[0] in loaded_tops or any(first_party(name) for name in loaded_tops)
    if not from_root and not beside_the_seam and script:
        return (f"it runs as a script ({script}) and imports nothing from `{top}`: run as a file, the seam "
                f"import would make it need `{top}` importable; `allow` it or leave it out "
                f"(`extend-exclude`)")  # fmt: skip
    if not inits:
        return None
    seam_import = after.body[index]
    around = [*after.body[:index], *after.body[index + 1 : index + 2]]
    if len(seam_import.names) > 1:  # the seam joined an import of its package that was there already
        around.append(seam_import)
    loaded = {name for statement in around for name in _modules_loaded(statement, package_parts)}
    loaded.update(  # `from pkg import sub`, `from pkg.sub import mla_seam as seam`: maybe modules
        f"{absolute_module(package_parts, statement.level, statement.module)}.{alias.name}".lstrip(".")
        for statement in around
        if isinstance(statement, ast.ImportFrom)
        for alias in statement.names
        if statement is not seam_import or alias.name != seam.name
    )
    module = ".".join(module_parts)
    for package, init in inits.items():
        inside = module_parts[: package.count(".") + 1] == tuple(package.split("."))
        if inside and package == ".".join(seam.parts) and module in init.loads:
            # the adapter is this module's package's `__init__.py`: imported through it, this module runs
            # before the functions apply adds at that file's end exist
            return (f"the adapter is the `__init__.py` of its package and imports it ({init.loads[module]}) before "
                    f"the functions apply adds at its end: a call through the seam while the package is imported "
                    f"would not find them; name a module of its own as the adapter")  # fmt: skip
        if inside or package in loaded:
            continue
        if package == ".".join(seam.parts):
            return _adapter_changes(init, module, loaded)
        if init.runs is not None:
            return (f"the seam import would first run the code of package `{package}` ({init.runs}), which this "
                    f"module does not import: a new import-time dependency, or an import cycle; {_REMEDY}")  # fmt: skip
        if module in init.loads:
            return (
                f"the seam import would import package `{package}`, which imports this module: an import cycle; "
                + _REMEDY
            )
    return None


def _adapter_changes(adapter: PackageInit, module: str, loaded: set[str]) -> str | None:
    """Why running the adapter's top level (hand-written code: apply's functions import in their bodies)
    would change what importing ``module`` does, which has loaded ``loaded`` by then: a statement whose
    modules it imports itself has run already, with all it loads."""
    ran = {
        statement.where for statement in adapter.statements if statement.imports and set(statement.imports) <= loaded
    }
    cycle = adapter.loads.get(module)
    if cycle is not None and cycle not in ran:
        return f"the seam import would run the adapter's {cycle}, which imports this module: an import cycle; {_LAZY}"
    runs = next((s.where for s in adapter.statements if s.runs and s.where not in ran), None)
    if runs is not None:
        return (f"the seam import would run the adapter's {runs}, code this module does not run: a new "
                f"import-time effect; {_LAZY}")  # fmt: skip
    imported = {name.split(".")[0] for name in loaded}
    missing = sorted(
        package for package, where in adapter.needs.items() if package not in imported and where not in ran
    )
    if missing:
        return (f"the seam import would import `{missing[0]}` through the adapter's {adapter.needs[missing[0]]}, "
                f"which this module does not import: a new import-time dependency; {_LAZY}")  # fmt: skip
    return None


def _runs_as_script(tree: ast.Module, calls: bool = True) -> str | None:
    """``if __name__ == "__main__":`` when the module has it at its top level (either way round), or (``calls``) a
    call made for its effect at its top level, outside definitions (``main()``, ``print(...)`` under a top-level
    ``if``): a script that does its work as it is run (``python tools/convert.py``) need not say so."""
    for statement in tree.body:
        test = statement.test if isinstance(statement, ast.If) else None
        if isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.ops[0], ast.Eq):
            sides = [test.left, *test.comparators]
            if any(isinstance(side, ast.Name) and side.id == "__name__" for side in sides) and any(
                isinstance(side, ast.Constant) and side.value == "__main__" for side in sides
            ):
                return '`if __name__ == "__main__":`'
    defined = {node.name for node in tree.body if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))}
    for node in _top_level_statements(tree.body) if calls else ():
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
            return f"`{ast.unparse(node.value.func)}(...)` at its top level"
        if isinstance(node, ast.Expr) and not isinstance(node.value, ast.Constant):  # `main() or sys.exit(1)`
            return f"`{ast.unparse(node.value)}` at its top level"
        # its own function called as the top level runs: `raise SystemExit(main())`, `status = main()`
        called = next((name for name in _calls_run(node) if name in defined), None)
        if called is not None:
            return f"`{called}(...)` called at its top level"
    return None


def _calls_run(statement: ast.stmt) -> Iterator[str]:
    """The names called by ``statement``'s own expressions as it runs (not those of its blocks' statements,
    nor of the lambdas in it)."""
    todo = [child for child in ast.iter_child_nodes(statement) if not isinstance(child, ast.stmt)]
    while todo:
        node = todo.pop()
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            yield node.func.id
        todo.extend(child for child in ast.iter_child_nodes(node) if not isinstance(child, ast.Lambda))


def _top_level_statements(statements: list[ast.stmt]) -> Iterator[ast.stmt]:
    """``statements`` and those of the ``if``/``for``/``while``/``with``/``try``/``match`` blocks among them, not
    those of definitions."""
    for statement in statements:
        yield statement
        if not isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            for suite in ("body", "orelse", "finalbody"):
                yield from _top_level_statements(getattr(statement, suite, []))
            for part in (*getattr(statement, "handlers", []), *getattr(statement, "cases", [])):
                yield from _top_level_statements(part.body)


def _seam_import_at(tree: ast.Module, seam) -> int | None:
    """The index of the top-level statement that imports the seam, if any."""
    for index, statement in enumerate(tree.body):
        if isinstance(statement, ast.ImportFrom) and seam.package and statement.module == seam.package:
            if any(alias.name == seam.name and alias.asname is None for alias in statement.names):
                return index
        elif isinstance(statement, ast.Import) and not seam.package:
            if any(alias.name == seam.name and alias.asname is None for alias in statement.names):
                return index
    return None


def _modules_loaded(statement: ast.stmt, package_parts: tuple[str, ...]) -> list[str]:
    """The modules and packages a top-level import loads: ``from pkg.sub.x import y`` loads ``pkg``,
    ``pkg.sub`` and ``pkg.sub.x``."""
    if isinstance(statement, ast.Import):
        names = [alias.name for alias in statement.names]
    elif isinstance(statement, ast.ImportFrom):
        names = [absolute_module(package_parts, statement.level, statement.module)]
    else:
        return []
    return [".".join(name.split(".")[:depth]) for name in names if name for depth in range(1, name.count(".") + 2)]
