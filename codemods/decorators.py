"""Which decorators may compile the code they decorate from its source (TorchScript, Triton, Numba, CuTe DSL,
TileLang, Helion, JAX, ...): a routed test there becomes a call the compiler cannot make, and an arm moved out
of it changes the program the compiler builds. apply edits code inside a decorated definition only where it can
tell every decorator runs the function as written: one of the standard library or a builtin, a third-party
decorator known to (``torch.no_grad``), or one of the project's own whose code reads no function's source or
bytecode and calls no compiler. Anything else (another package's decorator, one bound in a way apply cannot
follow) is taken to compile.
"""

from __future__ import annotations

import ast
import builtins
import functools
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from seamfix.analysis.seam_bindings import absolute_module

# The compilers by their own last name, wherever they come from (Megatron's `jit_fuser` is `torch.jit.script`
# or `torch.compile`, bound in its `jit.py`): TorchScript, Triton/Gluon, Numba, CuTe DSL, Helion, TileLang.
_COMPILING_NAMES = frozenset(
    {"script", "script_method", "script_if_tracing", "jit", "njit", "jit_fuser", "kernel", "prim_func", "macro"}
)
# What a decorator of the project's own reads when it compiles its function: the source or the code object.
_SOURCE_READERS = frozenset({"getsource", "getsourcelines", "findsource", "getsourcefile", "__code__", "co_code"})
# Third-party decorators that call their function as Python (dynamo traces the calls it makes, adapter's too),
# and modules whose every decorator does (the standard library's; attrs and pydantic build classes and
# validators in Python).
_RUNTIME_WRAPPERS = frozenset(
    {
        "torch.no_grad", "torch.enable_grad", "torch.inference_mode", "torch.set_grad_enabled", "torch.autocast",
        "torch.compile", "torch.compiler.disable", "torch._dynamo.disable", "torch.amp.custom_fwd",
        "torch.amp.custom_bwd", "torch.cuda.amp.custom_fwd", "torch.cuda.amp.custom_bwd",
        "torch.autograd.function.once_differentiable", "torch.distributed.elastic.multiprocessing.errors.record",
        "nvtx.annotate",
    }
)  # fmt: skip
# Megatron-Core's own (`@internal_api`, `@experimental_fn`, `@deprecate_inference_params`: plain wrappers), which a
# fork outside the `megatron` package imports from the installed one.
_RUNTIME_PACKAGES = frozenset(
    {"builtins", *sys.stdlib_module_names, "typing_extensions", "attr", "attrs", "pydantic", "megatron.core.utils"}
)
_DEFINITIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
_FOLLOWED = 4  # imports and assignments followed from the decorator to its definition


@dataclass(frozen=True)
class Origin:
    """Where a decorator comes from: ``dotted`` its full name (``torch.no_grad``), ``definition`` the project's
    own function or class when it is one, ``known`` False where apply could not follow it."""

    dotted: str
    definition: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | None = None
    known: bool = True


class Decorators:
    """The definitions of one module that a decorator may compile, with why."""

    def __init__(self, tree: ast.Module, module: str, package: tuple[str, ...], project_tree: Callable) -> None:
        """``project_tree(module)`` gives a project module's ``ast`` (None outside the project)."""
        self.tree, self.module, self.package, self.project_tree = tree, module, package, project_tree

    def compiled(self) -> Iterator[tuple[int, int, str]]:
        """``(first line, last line, why)`` of each definition a decorator may compile."""
        for node, scopes in _definitions(self.tree):
            for decorator in node.decorator_list:
                called = decorator.func if isinstance(decorator, ast.Call) else decorator
                why = self._compiles(called, scopes)
                if why is not None:
                    yield node.lineno, node.end_lineno, f"it is in `{node.name}`, which `@{ast.unparse(called)}`{why}"
                    break

    def compiled_by_call(self) -> Iterator[tuple[int, int, str]]:
        """The same for each function this module hands by name to a compiler: ``torch.jit.script(scale)``,
        ``numba.njit(cache=True)(kernel)``."""
        defined: dict[str, list[ast.AST]] = {}
        for node in ast.walk(self.tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                defined.setdefault(node.name, []).append(node)
        for call in ast.walk(self.tree):
            if not (isinstance(call, ast.Call) and call.args and isinstance(call.args[0], ast.Name)):
                continue
            called = call.func.func if isinstance(call.func, ast.Call) else call.func
            if call.args[0].id in defined and self._is_compiler(called):
                for node in defined[call.args[0].id]:
                    why = f"it is in `{node.name}`, which `{ast.unparse(call)}` compiles: the compiler cannot call "
                    yield node.lineno, node.end_lineno, why + "into the adapter"

    def _is_compiler(self, called: ast.expr) -> bool:
        if _last_name(called) in _COMPILING_NAMES:
            return True
        return _split(called)[0] is not None and any(
            origin.dotted.rpartition(".")[2] in _COMPILING_NAMES for origin in self._origins(called, [])
        )

    def _compiles(self, called: ast.expr, scopes: list[ast.AST]) -> str | None:
        if _last_name(called) in _COMPILING_NAMES:
            return " compiles: the compiler cannot call into the adapter"
        for origin in self._origins(called, scopes):
            if (why := _verdict(origin)) is not None:
                named = f" (`{origin.dotted}`)" if origin.dotted != ast.unparse(called) and origin.known else ""
                return f"{named} {why}"
        return None

    def _origins(self, expression: ast.expr, scopes: list[ast.AST]) -> list[Origin]:
        """Where ``expression`` (a decorator, a call's function removed) may come from, in this module's scopes."""
        root, attributes = _split(expression)
        if root is None:
            return [Origin(ast.unparse(expression), known=False)]
        for scope in reversed(scopes):  # a class's own names (`@value.setter`), then the functions around it
            if (found := next(_scope_bindings(scope, root), None)) is not None:
                if isinstance(scope, ast.ClassDef) and isinstance(found, _DEFINITIONS):
                    return [Origin(ast.unparse(expression), found)]
                return [Origin(ast.unparse(expression), known=False)]
        return self._module_origins(self.tree, self.package, root, attributes, _FOLLOWED)

    def _module_origins(self, tree, package, root, attributes, depth) -> list[Origin]:
        dotted = ".".join([root, *attributes])
        bindings = list(_bindings(tree.body, root))
        if not bindings:
            return [Origin(f"builtins.{dotted}") if hasattr(builtins, root) else Origin(dotted, known=False)]
        return [origin for b in bindings for origin in self._binding_origins(tree, package, b, attributes, depth)]

    def _binding_origins(self, tree, package, binding, attributes, depth) -> list[Origin]:
        if isinstance(binding, _DEFINITIONS):
            if not attributes or isinstance(binding, ast.ClassDef):  # the project's function, or its class's method
                return [Origin(".".join([binding.name, *attributes]), binding)]
            if binding.decorator_list and depth:  # `@width.register` of a `@functools.singledispatch` function:
                outer = binding.decorator_list[0]  # an attribute of what its outermost decorator returned
                root, outer_attributes = _split(outer.func if isinstance(outer, ast.Call) else outer)
                if root is not None:
                    return self._module_origins(tree, package, root, [*outer_attributes, *attributes], depth - 1)
            return [Origin(".".join([binding.name, *attributes]), known=False)]
        if isinstance(binding, tuple):  # an import: the statement and the alias binding the name
            statement, alias = binding
            if isinstance(statement, ast.ImportFrom):
                target = f"{absolute_module(package, statement.level, statement.module)}.{alias.name}"
            else:
                target = alias.name if alias.asname else alias.name.split(".")[0]
            return [self._follow(target.split(".") + attributes, depth)]
        if isinstance(binding, ast.expr) and depth:  # `jit_fuser = torch.jit.script`, `REGISTRY = Registry()`
            value_root, value_attributes = _split(binding.func if isinstance(binding, ast.Call) else binding)
            if value_root is not None:
                return self._module_origins(tree, package, value_root, [*value_attributes, *attributes], depth - 1)
        return [Origin(ast.unparse(binding), known=False)]

    def _follow(self, parts: list[str], depth: int) -> Origin:
        """``pkg.mod.name...`` read on: in the deepest project module it names, while depth lasts; another
        package's or the standard library's name as it is."""
        for length in range(len(parts) - 1, 0, -1):
            module = ".".join(parts[:length])
            tree = self.project_tree(module)
            if tree is None:
                continue
            if not depth:
                return Origin(".".join(parts), known=False)
            package = tuple(parts[:length]) if tree.is_package else tuple(parts[: length - 1])
            origins = self._module_origins(tree, package, parts[length], parts[length + 1 :], depth - 1)
            return next((origin for origin in origins if _verdict(origin)), origins[0])
        return Origin(".".join(parts))


def _verdict(origin: Origin) -> str | None:
    """Why the decorator ``origin`` may compile the code it decorates; None when it runs it as written."""
    if origin.dotted.rpartition(".")[2] in _COMPILING_NAMES:
        return "compiles: the compiler cannot call into the adapter"
    if not origin.known:
        return "is bound in a way apply cannot follow: it may compile the code from its source"
    if origin.definition is not None:
        return None if _runs_as_written(origin.definition) else "reads its function's source or code: it may compile it"
    parts = origin.dotted.split(".")
    modules = {".".join(parts[:end]) for end in range(1, len(parts))}
    if modules & _RUNTIME_PACKAGES or origin.dotted in _RUNTIME_WRAPPERS:
        return None
    return (
        "is another package's decorator, which may compile the code from its source (as TorchScript, Triton, "
        "CuTe DSL or TileLang do): the compiler could not call into the adapter"
    )


def _runs_as_written(definition: ast.AST) -> bool:
    """Does the project's own decorator neither read a function's source or code nor call a compiler?"""
    for node in ast.walk(definition):
        name = node.attr if isinstance(node, ast.Attribute) else getattr(node, "id", None)
        if name in _SOURCE_READERS or isinstance(node, ast.Call) and _last_name(node.func) in _COMPILING_NAMES:
            return False
    return True


def _definitions(tree: ast.Module) -> Iterator[tuple[ast.AST, list[ast.AST]]]:
    """Each decorated definition with the functions and classes around it, outermost first."""
    stack: list[tuple[ast.AST, list[ast.AST]]] = [(tree, [])]
    while stack:
        node, scopes = stack.pop()
        for child in ast.iter_child_nodes(node):
            if isinstance(child, _DEFINITIONS):
                if child.decorator_list:
                    yield child, scopes
                stack.append((child, [*scopes, child]))
            else:
                stack.append((child, scopes))


def _split(expression: ast.expr) -> tuple[str | None, list[str]]:
    """``a.b.c`` as ``("a", ["b", "c"])``; no root for anything else (``registry["x"]``, a call's result)."""
    attributes = []
    while isinstance(expression, ast.Attribute):
        attributes.append(expression.attr)
        expression = expression.value
    return (expression.id, attributes[::-1]) if isinstance(expression, ast.Name) else (None, [])


def _last_name(expression: ast.expr) -> str | None:
    return expression.attr if isinstance(expression, ast.Attribute) else getattr(expression, "id", None)


def _scope_bindings(scope: ast.AST, name: str) -> Iterator[ast.AST]:
    """What binds ``name`` in a function's or class's own body, its parameters first."""
    if isinstance(scope, (ast.FunctionDef, ast.AsyncFunctionDef)):
        arguments = scope.args
        every = [*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs, arguments.vararg, arguments.kwarg]
        yield from (argument for argument in every if argument is not None and argument.arg == name)
    yield from _bindings(scope.body, name)


def _bindings(statements: list[ast.stmt], name: str) -> Iterator[ast.AST | tuple[ast.stmt, ast.alias]]:
    """What binds ``name`` among ``statements`` and their branches (not in nested scopes): a definition, an
    import (its statement and alias), a plain assignment's value, or the statement for any other binding."""
    pending = list(statements)
    while pending:
        statement = pending.pop(0)
        if isinstance(statement, _DEFINITIONS):
            yield from [statement] if statement.name == name else []
        elif isinstance(statement, (ast.Import, ast.ImportFrom)):
            bound = (alias for alias in statement.names if (alias.asname or alias.name.split(".")[0]) == name)
            yield from ((statement, alias) for alias in bound)
        elif isinstance(statement, (ast.Assign, ast.AnnAssign)) and _stores(statement, name):
            targets = statement.targets if isinstance(statement, ast.Assign) else [statement.target]
            plain = len(targets) == 1 and isinstance(targets[0], ast.Name) and statement.value is not None
            yield statement.value if plain and not _stores(statement.value, name) else statement
        else:
            for node in ast.iter_child_nodes(statement):
                if isinstance(node, ast.stmt):
                    pending.append(node)
                elif isinstance(node, (ast.excepthandler, ast.match_case)):
                    pending.extend(node.body)
                    caught = getattr(node, "name", None) == name  # `except E as name`, `case Point(x=name)`
                    yield from [statement] if caught or _stores(getattr(node, "pattern", ast.Pass()), name) else []
                elif _stores(node, name):
                    yield statement


def _stores(node: ast.AST, name: str) -> bool:
    return any(_bound_name(n) == name for n in ast.walk(node))


def _bound_name(node: ast.AST) -> str | None:
    if isinstance(node, ast.Name):
        return node.id if isinstance(node.ctx, (ast.Store, ast.Del)) else None
    if isinstance(node, ast.NamedExpr):
        return node.target.id
    return node.name if isinstance(node, (ast.MatchAs, ast.MatchStar)) else None


@functools.lru_cache(maxsize=128)
def parsed_module(path: str, stamp: tuple[int, int]) -> ast.Module | None:
    """A project module's ``ast`` (``is_package`` set), parsed once per version; None if it cannot be."""
    try:
        with open(path, "rb") as handle:
            tree = ast.parse(handle.read())
    except (OSError, SyntaxError, ValueError, RecursionError):
        return None
    tree.is_package = os.path.basename(path) == "__init__.py"
    return tree
