"""Whether importing the seam runs code the builder did not run before: the ``__init__.py`` of its packages.

``from pkg.sub import mla_seam`` first imports ``pkg`` and ``pkg.sub``. When their ``__init__.py`` only
define names (a docstring, ``__all__``, standard-library imports), that changes nothing. When one imports
the project's modules, torch or megatron, or calls something (``initialize_accelerator()``), a builder
outside that package that never imported it now runs all of that, at the seam import's line: a new
dependency for a module that had none (a Hugging Face model file now needs megatron), a patch applied
before the one the module applies first (``import mindspeed.megatron_adaptor`` must precede megatron), or
a circular import (``pkg/sub/__init__.py`` imports, through others, the very builder being imported).
And a module that never imported the seam's top-level package (a tool run as a script, a remote-code
model) would need it importable. Apply leaves such a builder as it is and says why.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from seamfix.analysis.seam_bindings import absolute_module

_STDLIB = frozenset(sys.stdlib_module_names)
ProjectFile = Callable[[str], "str | None"]  # a module name -> its project file, if the project holds it
_REMEDY = "an adapter in a package whose `__init__.py` only defines names (or at the top level) avoids it"


@dataclass(frozen=True)
class PackageInit:
    """What importing one package of the seam does: the first statement of its ``__init__.py`` (or of a
    project module it imports) that runs code, if any; and the project modules it loads, all of which
    only define names when ``runs`` is None."""

    runs: str | None
    loads: frozenset[str]


def package_inits(root: Path | None, project_file: ProjectFile, package: str) -> dict[str, PackageInit]:
    """Each package along ``package`` (``pkg``, ``pkg.sub``) by name."""
    inits: dict[str, PackageInit] = {}
    parts = package.split(".") if package else []
    for depth in range(1, len(parts) + 1):
        name = ".".join(parts[:depth])
        seen: set[str] = set()
        inits[name] = PackageInit(_runs_code(root, project_file, name, seen), frozenset(seen))
    return inits


def _runs_code(root: Path | None, project_file: ProjectFile, module: str, seen: set[str]) -> str | None:
    """The first statement of ``module``'s file (a package's ``__init__.py``) that does more than bind
    names, as ``path:line: `code```; None when importing it has no effect beyond its names. A namespace
    package (no file) runs nothing; a file that cannot be read or parsed is taken to run code."""
    relpath = project_file(module) if root is not None else None
    if relpath is None or module in seen:
        return None
    seen.add(module)
    try:
        text = (root / relpath).read_bytes().decode("utf-8")
        tree = ast.parse(text)
    except (OSError, UnicodeDecodeError, SyntaxError, ValueError):
        return f"{relpath}: cannot be read to tell"
    package_parts = tuple(module.split(".")) if relpath.endswith("__init__.py") else tuple(module.split(".")[:-1])
    for statement in tree.body:
        if _binds_only(statement) or _loads_nothing(root, project_file, statement, package_parts, seen):
            continue
        line = (ast.get_source_segment(text, statement) or "").splitlines()[:1]
        return f"{relpath}:{statement.lineno}: `{line[0][:70] if line else ''}`"
    return None


def _loads_nothing(root: Path | None, project_file: ProjectFile, statement: ast.stmt, package_parts: tuple[str, ...],
                   seen: set[str]) -> bool:  # fmt: skip
    """Is ``statement`` an import of only standard-library modules and project modules that run nothing?
    ``import a.b`` loads ``a`` and ``a.b``; ``from m import x`` loads ``m``, and ``m.x`` when that is a
    project module rather than a name."""
    if not isinstance(statement, (ast.Import, ast.ImportFrom)):
        return False
    loaded = _modules_loaded(statement, package_parts)
    if isinstance(statement, ast.ImportFrom):
        base = absolute_module(package_parts, statement.level, statement.module)
        submodules = (f"{base}.{alias.name}".lstrip(".") for alias in statement.names if alias.name != "*")
        loaded += [name for name in submodules if project_file(name) is not None]
    for name in loaded:
        if project_file(name) is not None:
            if _runs_code(root, project_file, name, seen) is not None:
                return False
        elif name.split(".")[0] not in _STDLIB:
            return False
    return True


def _binds_only(statement: ast.stmt) -> bool:
    """A statement whose execution only binds names to constants: a docstring, ``pass``, ``__all__ = [...]``,
    ``VERSION = "1.0"``, a plain function definition, ``if TYPE_CHECKING:`` (false at run time)."""
    if isinstance(statement, ast.Pass):
        return True
    if isinstance(statement, ast.Expr):
        return isinstance(statement.value, ast.Constant)
    if isinstance(statement, (ast.Assign, ast.AugAssign, ast.AnnAssign)):
        targets = statement.targets if isinstance(statement, ast.Assign) else [statement.target]
        return (
            all(isinstance(target, ast.Name) for target in targets)
            and statement.value is not None
            and _is_literal(statement.value)
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
    if isinstance(statement, ast.If):
        test = statement.test
        name = test.id if isinstance(test, ast.Name) else test.attr if isinstance(test, ast.Attribute) else None
        return name == "TYPE_CHECKING" and all(_binds_only(s) for s in statement.orelse)
    return False


def _is_literal(node: ast.expr) -> bool:
    try:
        ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return isinstance(node, ast.Name) and node.id in ("str", "int", "float", "bool", "bytes")
    return True


def seam_import_changes_imports(
    before: ast.Module,
    after: ast.Module,
    module_parts: tuple[str, ...],
    package_parts: tuple[str, ...],
    seam,
    inits: dict[str, PackageInit],
) -> str | None:
    """Why the seam import that apply added to a builder (``before`` → ``after``) would change what
    importing the builder does; None when it cannot.

    A module outside the seam's top-level package that imports nothing from it (a tool run as a script, a
    Hugging Face remote-code model, a plugin package) would need that package importable where it ran
    without it. Otherwise a package of the seam is run already when the module is inside it, or when a
    top-level import before the seam import (or just after it: the seam import goes right before ``from
    pkg.sub.x import y``) loads it; one not run yet must only define names and not import this module."""
    if not inits or _seam_import_at(before, seam) is not None:
        return None
    index = _seam_import_at(after, seam)
    if index is None:
        return None
    top = seam.parts[0]
    if module_parts[:1] != (top,) and not any(
        top in _modules_loaded(node, package_parts) for node in ast.walk(before) if isinstance(node, ast.stmt)
    ):
        return (f"it imports nothing from `{top}` (a script or tool run on its own, a remote-code model, a plugin): "
                f"the seam import would make it need `{top}` importable; `allow` it or leave it out "
                f"(`extend-exclude`)")  # fmt: skip
    seam_import = after.body[index]
    around = [*after.body[:index], *after.body[index + 1 : index + 2]]
    if len(seam_import.names) > 1:  # the seam joined an import of its package that was there already
        around.append(seam_import)
    loaded = {name for statement in around for name in _modules_loaded(statement, package_parts)}
    module = ".".join(module_parts)
    for package, init in inits.items():
        if module_parts[: package.count(".") + 1] == tuple(package.split(".")) or package in loaded:
            continue
        if init.runs is not None:
            return (f"the seam import would first run the code of package `{package}` ({init.runs}), which this "
                    f"module does not import: a new import-time dependency, or an import cycle; {_REMEDY}")  # fmt: skip
        if module in init.loads:
            return (
                f"the seam import would import package `{package}`, which imports this module: an import cycle; "
                + _REMEDY
            )
    return None


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
