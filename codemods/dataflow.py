"""What a block of a function reads and writes: free variables, values live after it, whether it can leave.

LibCST's scope analysis says which function owns a name; this adds what it lacks: which variables are
certainly assigned at each point (across if/else paths, loops that may not run, augmented assignment),
reads inside comprehensions and lambdas, and values carried around a loop.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import libcst as cst
from libcst.metadata import ClassScope, FunctionScope, GlobalScope, Scope

from seamfix.codemods.context import FileContext
from seamfix.codemods.nodes import Span, encloses, loaded_names, walk

Assigned = frozenset[str] | None  # None: the code does not go on (return, raise, break, continue)

_INTROSPECTION = frozenset({"locals", "vars", "dir", "eval", "exec", "super"})
_LOOPS = (cst.For, cst.While)
_NESTED_SCOPES = (cst.FunctionDef, cst.Lambda, cst.ClassDef)


@dataclass
class BlockFlow:
    parameters: list[str] = field(default_factory=list)  # read before the block assigns them
    results: list[str] = field(default_factory=list)  # assigned in the block, used after it
    globals: list[str] = field(default_factory=list)  # module-level names the block reads
    returns: bool = False  # every path through the block ends in `return`
    blocker: str | None = None  # why the block cannot become a function


def block_flow(context: FileContext, function: cst.FunctionDef, block: cst.BaseSuite) -> BlockFlow:
    """The data flow of ``block``, a suite of ``function``."""
    scope = context.scopes[function.body]
    span = context.span(block)
    blocker = _blocker(context, block)
    inside = _Flow(context, scope)
    must_after = inside.suite(block, frozenset())
    before = _Flow(context, scope, target=block)
    before.suite(function.body, _parameters(function))
    entry = before.entry if before.entry is not None else frozenset()
    used_outside = _names_used_outside(context, function, scope, span)
    flow = BlockFlow(globals=sorted(inside.globals))
    returns = any(isinstance(node, cst.Return) for node in _own_statements(block))
    if returns and must_after is not None:
        blocker = blocker or "it returns on some paths only"
    flow.returns = returns
    results = [] if returns else [name for name in inside.assigned if name in used_outside]
    parameters = list(inside.exposed)
    for name in results:
        if must_after is not None and name not in must_after and name not in parameters:
            parameters.append(name)
    for name in parameters:
        if name not in entry and name not in inside.closure:
            blocker = blocker or f"`{name}` may be unassigned where it starts"
    declared = _declared_global(function)
    touched = set(inside.assigned) | set(parameters) | inside.globals
    if declared & touched:
        blocker = blocker or f"it uses `{sorted(declared & touched)[0]}`, declared global or nonlocal"
    for name in sorted(inside.captured):
        outside = [a for a in scope.assignments[name] if not isinstance(a.node, cst.Param)]
        if name in results or any(not encloses(span, context.span(a.node)) for a in outside):
            blocker = blocker or f"a function defined in it captures `{name}`, which changes outside it"
    flow.parameters, flow.results, flow.blocker = parameters, results, blocker
    return flow


def _parameters(function: cst.FunctionDef) -> frozenset[str]:
    params = function.params
    every = [*params.posonly_params, *params.params, *params.kwonly_params]
    every += [p for p in (params.star_arg, params.star_kwarg) if isinstance(p, cst.Param)]
    return frozenset(p.name.value for p in every)


def _declared_global(function: cst.FunctionDef) -> set[str]:
    return {
        alias.name.value
        for node in _own_statements(function.body)
        if isinstance(node, (cst.Global, cst.Nonlocal))
        for alias in node.names
    }


def _own_statements(node: cst.CSTNode):
    """Nodes of ``node`` outside nested functions, lambdas and classes."""
    stack = list(node.children)
    while stack:
        current = stack.pop()
        yield current
        if not isinstance(current, _NESTED_SCOPES):
            stack.extend(current.children)


def _blocker(context: FileContext, block: cst.BaseSuite) -> str | None:
    """Why the block's meaning depends on being where it is, if it does."""
    for node in _own_statements(block):
        if isinstance(node, (cst.Yield, cst.Await)) or isinstance(node, (cst.For, cst.With)) and node.asynchronous:
            return "it yields or awaits"
        if isinstance(node, (cst.Global, cst.Nonlocal)):
            return "it declares a global or nonlocal name"
        if isinstance(node, cst.Del):
            return "it deletes a variable"
        if isinstance(node, (cst.Break, cst.Continue)) and not _inside_loop(context, node, block):
            return "its `break`/`continue` leaves a loop around it"
    for node in walk(block):
        if isinstance(node, cst.Name) and node.value == "__class__":
            return "it uses `__class__`"
        if isinstance(node, cst.Call) and isinstance(node.func, cst.Name) and node.func.value in _INTROSPECTION:
            if not node.args or node.func.value in {"eval", "exec"}:
                return f"it calls `{node.func.value}()`, which depends on where it runs"
        if isinstance(node, cst.Attribute) and node.attr.value.startswith("__") and not node.attr.value.endswith("__"):
            return f"it uses `{node.attr.value}`, a name-mangled attribute"
    return None


def _inside_loop(context: FileContext, node: cst.CSTNode, block: cst.BaseSuite) -> bool:
    current = context.parents.get(node)
    while current is not None and current is not block:
        if isinstance(current, _LOOPS):
            return True
        current = context.parents.get(current)
    return False


def _names_used_outside(context: FileContext, function: cst.FunctionDef, scope: Scope, span: Span) -> set[str]:
    return {
        node.value
        for node in walk(function.body)
        if isinstance(node, cst.Name)
        and node in context.positions
        and not encloses(span, context.span(node))
        and context.owner(node) is scope
    }


class _Flow:
    """Walks statements in order, tracking the variables of ``scope`` certainly assigned so far."""

    def __init__(self, context: FileContext, scope: Scope, target: cst.BaseSuite | None = None) -> None:
        self.context = context
        self.scope = scope
        self.target = target
        self.entry: frozenset[str] | None = None  # what is certainly assigned where ``target`` starts
        self.exposed: dict[str, None] = {}  # read while possibly unassigned here: come from outside
        self.assigned: dict[str, None] = {}
        self.closure: set[str] = set()  # variables of enclosing functions
        self.captured: set[str] = set()  # variables read by functions and lambdas defined here
        self.globals: set[str] = set()

    def suite(self, suite: cst.BaseSuite, assigned: Assigned) -> Assigned:
        if suite is self.target and assigned is not None:
            self.entry = assigned
        if isinstance(suite, cst.SimpleStatementSuite):
            return self.small_statements(suite.body, assigned)
        for statement in suite.body:
            if assigned is None:
                break
            assigned = self.statement(statement, assigned)
        return assigned

    def statement(self, node: cst.BaseStatement, assigned: frozenset[str]) -> Assigned:
        if isinstance(node, cst.SimpleStatementLine):
            return self.small_statements(node.body, assigned)
        if isinstance(node, cst.If):
            self.read(node.test, assigned)
            then = self.suite(node.body, assigned)
            if isinstance(node.orelse, cst.If):
                other = self.statement(node.orelse, assigned)
            elif isinstance(node.orelse, cst.Else):
                other = self.suite(node.orelse.body, assigned)
            else:
                other = assigned
            return _meet(then, other)
        if isinstance(node, cst.While):
            self.read(node.test, assigned)
            self.suite(node.body, assigned)
        elif isinstance(node, cst.For):
            self.read(node.iter, assigned)
            self.suite(node.body, assigned | self.assign(node.target, assigned))
        elif isinstance(node, cst.With):
            for item in node.items:
                self.read(item.item, assigned)
                if item.asname is not None:
                    assigned |= self.assign(item.asname.name, assigned)
            return self.suite(node.body, assigned)
        elif isinstance(node, (cst.Try, cst.TryStar)):
            body = self.suite(node.body, assigned)
            for handler in node.handlers:
                names = self.assign(handler.name.name, assigned) if handler.name else frozenset()
                self.suite(handler.body, assigned | names)
            if node.orelse is not None and body is not None:
                self.suite(node.orelse.body, body)
            if node.finalbody is not None:
                final = self.suite(node.finalbody.body, assigned)
                return None if final is None else assigned | final
        elif isinstance(node, cst.Match):
            self.read(node.subject, assigned)
            for case in node.cases:
                captures = frozenset(n.value for n in walk(case.pattern) if isinstance(n, cst.Name))
                for name in captures:
                    self.assigned.setdefault(name)
                if case.guard is not None:
                    self.read(case.guard, assigned | captures)
                self.suite(case.body, assigned | captures)
        elif isinstance(node, (cst.FunctionDef, cst.ClassDef)):
            self.nested(node, assigned)
            return assigned | self.assign(node.name, assigned)
        return assigned

    def small_statements(self, statements, assigned: frozenset[str]) -> Assigned:
        for node in statements:
            if isinstance(node, cst.Assign):
                self.read(node.value, assigned)
                for target in node.targets:
                    assigned |= self.assign(target.target, assigned)
            elif isinstance(node, cst.AugAssign):
                self.read(node.value, assigned)
                self.read(node.target, assigned)
                assigned |= self.assign(node.target, assigned)
            elif isinstance(node, cst.AnnAssign):
                if node.value is not None:
                    self.read(node.value, assigned)
                    assigned |= self.assign(node.target, assigned)
            elif isinstance(node, (cst.Import, cst.ImportFrom)):
                if not isinstance(node.names, cst.ImportStar):
                    for alias in node.names:
                        bound = alias.evaluated_alias or alias.evaluated_name.split(".")[0]
                        self.assigned.setdefault(bound)
                        assigned |= {bound}
            elif isinstance(node, (cst.Global, cst.Nonlocal, cst.Pass)):
                continue
            else:
                self.read(node, assigned)
                if isinstance(node, (cst.Return, cst.Raise, cst.Break, cst.Continue)):
                    return None
        return assigned

    def assign(self, target: cst.CSTNode, assigned: frozenset[str]) -> frozenset[str]:
        """Record an assignment target; returns the names it certainly binds."""
        if isinstance(target, cst.Name):
            self.assigned.setdefault(target.value)
            return frozenset({target.value})
        if isinstance(target, (cst.Tuple, cst.List)):
            bound = frozenset()
            for element in target.elements:
                bound |= self.assign(element.value, assigned)
            return bound
        if isinstance(target, cst.StarredElement):
            return self.assign(target.value, assigned)
        self.read(target, assigned)  # obj.attr = ..., table[key] = ...: reads obj, table and key
        return frozenset()

    def read(self, node: cst.CSTNode, assigned: frozenset[str]) -> None:
        for name in loaded_names(node):
            self.read_name(name, assigned)
        for walrus in walk(node):
            if isinstance(walrus, cst.NamedExpr) and isinstance(walrus.target, cst.Name):
                self.assigned.setdefault(walrus.target.value)

    def read_name(self, name: cst.Name, assigned: frozenset[str]) -> None:
        owner = self.context.owner(name)
        if owner is None:
            return
        if owner is self.scope:
            if (
                isinstance(self.context.scopes.get(name), (FunctionScope, ClassScope))
                and self.context.scopes.get(name) is not self.scope
            ):
                self.captured.add(name.value)
            if name.value not in assigned:
                self.exposed.setdefault(name.value)
        elif isinstance(owner, GlobalScope):
            self.globals.add(name.value)
        elif _encloses_scope(owner, self.scope):
            self.closure.add(name.value)
            self.exposed.setdefault(name.value)

    def nested(self, node: cst.FunctionDef | cst.ClassDef, assigned: frozenset[str]) -> None:
        """A def or class inside the block: its decorators and defaults run now, its body later."""
        parts = [*node.decorators, node.body]
        parts += [node.params] if isinstance(node, cst.FunctionDef) else [arg.value for arg in node.bases]
        for part in parts:
            for name in loaded_names(part):
                self.read_name(name, assigned)


def _encloses_scope(outer: Scope, inner: Scope) -> bool:
    scope = inner.parent
    while scope is not None and not isinstance(scope, GlobalScope):
        if scope is outer:
            return True
        scope = scope.parent
    return False


def _meet(first: Assigned, second: Assigned) -> Assigned:
    if first is None:
        return second
    if second is None:
        return first
    return first & second
