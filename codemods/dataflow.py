"""What a block of a function reads and writes: free variables, values live after it, whether it can leave.

The analysis runs on the function's ``ast`` with the owners from ``bindings`` (see there why not LibCST's
metadata), and adds what scopes alone do not say: which variables are certainly assigned at each point
(across if/else paths, loops that may not run, augmented assignment), reads inside comprehensions and
lambdas, and values carried around a loop.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterator
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field

from seamfix.codemods.bindings import Bindings, Frame, Occurrence, is_unbound, parameters_of

Assigned = frozenset[str] | None  # None: the code does not go on (return, raise, break, continue)
Function = ast.FunctionDef | ast.AsyncFunctionDef

# Builtins whose answer depends on the function that calls them (its variables, class or module).
INTROSPECTION = frozenset({"locals", "vars", "dir", "eval", "exec", "super", "globals"})
# Calls whose answer depends on the frame they run in (`sys.`, `inspect.`, `traceback.`), by attribute or
# imported by name (`from traceback import extract_stack`).
_FRAME_PROBES = frozenset({
    "_getframe", "currentframe", "stack", "getframeinfo", "_current_frames",
    "extract_stack", "format_stack", "print_stack", "walk_stack",
})  # fmt: skip
# Calls that make a class or type and take its `__module__` from the frame calling them (`typing.NewType`'s
# `repr`, a `namedtuple`'s pickling): moved, what they make would belong to the adapter.
_NAMED_AFTER_CALLER = frozenset({
    "namedtuple", "NamedTuple", "TypedDict", "NewType", "TypeVar", "ParamSpec", "TypeVarTuple", "make_dataclass",
    "make_class", "create_model",  # attrs', pydantic's
})  # fmt: skip
_ENUMS = frozenset({"Enum", "IntEnum", "StrEnum", "Flag", "IntFlag"})  # called with names: the functional API
_TAKEN_AS_VALUE = INTROSPECTION - {"dir"}
_LOOPS = (ast.For, ast.AsyncFor, ast.While)
_NESTED_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)
_DEFINITIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


@dataclass
class BlockFlow:
    parameters: list[str] = field(default_factory=list)  # read before the block assigns them
    results: list[str] = field(default_factory=list)  # assigned in the block, used after it
    globals: list[str] = field(default_factory=list)  # module-level names the block reads
    unbound: list[str] = field(default_factory=list)  # names it reads that no scope binds and no builtin is
    builtins: list[str] = field(default_factory=list)  # builtins it reads
    returns: bool = False  # every path through the block ends in `return`
    blocker: str | None = None  # why the block cannot become a function


def block_flow(bindings: Bindings, function: Function, block: list[ast.stmt],
               moving: AbstractSet[int] = frozenset()) -> BlockFlow:  # fmt: skip
    """The data flow of ``block``, a suite of ``function``; ``moving``: the ids of the nodes of other blocks that
    move out of the module with it."""
    scope = bindings.frames[function]
    aliases = bindings.aliases
    blocker = _blocker(block, aliases)
    inside = _Flow(bindings, scope)
    must_after = inside.suite(block, frozenset())
    before = _Flow(bindings, scope, target=block)
    before.suite(function.body, frozenset(a.arg for a in parameters_of(function.args)))
    entry = before.entry if before.entry is not None else frozenset()
    in_block = {id(node) for statement in block for node in ast.walk(statement)}
    owned = bindings.owned_by(scope)
    used_outside = {o.name for o in owned if o.kind in ("name", "definition") and id(o.node) not in in_block}
    flow = BlockFlow(globals=sorted(inside.globals), unbound=sorted(inside.unbound), builtins=sorted(inside.builtins))
    returns = any(isinstance(node, ast.Return) for node in own_nodes(block))
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
            # a name the arm only assigns is passed in too, for the paths where the arm leaves it unchanged
            # (a loop that does not run): say so, or the reason reads as false beside the arm's own assignment
            used = "" if name in inside.exposed else ", which it assigns and the function uses elsewhere,"
            blocker = blocker or f"`{name}`{used} may be unassigned where it starts"
    for name, owner in inside.closure.items():
        if name in parameters and not _bound_before(bindings, owner, scope, name):
            blocker = blocker or (
                f"`{name}`, a variable of an enclosing function, may be unassigned when the arm runs (passed, "
                "it would raise before the arm's first effects)"
            )
    if (only_here := _bound_only_in_block(owned, in_block, moving, inside.assigned, results)) is not None:
        blocker = blocker or (
            f"it holds its function's only assignment of `{only_here}`, which the function reads elsewhere: "
            f"moved out, those reads would find a module-level or builtin `{only_here}` where they raise now"
        )
    declared = _declared_global(function)
    touched = set(inside.assigned) | set(parameters) | inside.globals
    if declared & touched:
        blocker = blocker or f"it uses `{sorted(declared & touched)[0]}`, declared global or nonlocal"
    for name in sorted(inside.captured):
        outside = [o for o in owned if o.name == name and o.is_store]
        if name in results or any(id(o.node) not in in_block for o in outside):
            blocker = blocker or f"a function defined in it captures `{name}`, which changes outside it"
    shared = _shared_with_closures(owned, scope, in_block)
    for name, owner in inside.closure.items():  # an enclosing function's variable: nonlocal writes count
        shared[name] = shared.get(name, False) or any(
            o.name == name and o.is_store and o.frame is not owner for o in bindings.owned_by(owner)
        )
    for name in [*inside.assigned, *parameters]:
        if name in inside.assigned and name in shared or shared.get(name):
            blocker = blocker or (
                f"`{name}` is shared with a function or generator defined outside it, which would not see the "
                "adapter's copy"
            )
    if (results or returns) and any(isinstance(node, (ast.With, ast.AsyncWith)) for node in own_nodes(block)):
        blocker = blocker or "a `with` in it may swallow an exception and skip the value or return it passes on"
    if inside.assigned and (probe := _reads_own_frame(function, in_block, aliases)):
        blocker = blocker or (
            f"its function calls `{probe}` outside it, which would not see the variables the arm assigns in the adapter"
        )
    bare_raise = any(isinstance(node, ast.Raise) and node.exc is None for node in own_nodes(block))
    if bare_raise and _in_except_star(function, block):
        blocker = blocker or (
            "its bare `raise` re-raises the group an `except*` around it matched, which a `raise` in a function it "
            "calls does not"
        )
    unbinds = frozenset().union(*map(_unbound_by, block))  # (`del` in it is refused above: handler names remain)
    unbound_after = unbinds - must_after if must_after is not None else frozenset()  # and not assigned again
    if left := next((name for name in results if name in unbound_after), None):
        blocker = blocker or (
            f"`{left}`, which an `except ... as` handler in it leaves unbound, is read after it: moved, the adapter "
            "would raise returning it, before the effects that follow the arm"
        )
    caught = [name for name in inside.assigned if name in used_outside]
    if caught and _guarded(function, block):
        blocker = blocker or (
            f"`{caught[0]}`, assigned in it, is read after an exception it raises may be caught (an enclosing "
            "`try` or `with`)"
        )
    flow.parameters, flow.results, flow.blocker = parameters, results, blocker
    return flow


def _bound_only_in_block(owned: list[Occurrence], in_block: set[int], moving: AbstractSet[int],
                         assigned: dict[str, None], results: list[str]) -> str | None:  # fmt: skip
    """A variable the block assigns that its function binds nowhere else (no parameter, assignment, import,
    ``del`` or result of the call that replaces the block) but reads outside it and the other blocks that move
    out with it (``moving``). Python makes a name local
    to a function by any binding in it: without the block's, the function's other reads of the name
    (reached on paths where it is unassigned, so they raise ``UnboundLocalError``) would read a module-level
    name or a builtin."""
    bound_outside, read_outside = set(), set()
    for occurrence in owned:
        if id(occurrence.node) in in_block or id(occurrence.node) in moving:
            continue
        ctx = getattr(occurrence.node, "ctx", None)
        if occurrence.is_store or occurrence.kind == "parameter" or isinstance(ctx, ast.Del):
            bound_outside.add(occurrence.name)
        elif isinstance(ctx, ast.Load):
            read_outside.add(occurrence.name)
    return next((name for name in assigned if name in read_outside - bound_outside and name not in results), None)


def _bound_before(bindings: Bindings, owner: Frame, scope: Frame, name: str) -> bool:
    """Is the variable ``name`` of the function ``owner`` certainly assigned wherever the function of ``scope``
    (nested in it) is defined, and never deleted (nor the name of an ``except`` handler)? Then it is bound
    whenever that function runs."""
    function = owner.node
    if not isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
        return False
    for o in bindings.owned_by(owner):
        if o.name == name and (
            isinstance(getattr(o.node, "ctx", None), ast.Del) or isinstance(o.node, ast.ExceptHandler)
        ):
            return False  # deleted by `del`, or by the end of an `except ... as` handler
    if name in {a.arg for a in parameters_of(function.args)}:
        return True
    if isinstance(function, ast.Lambda):
        return False
    frame = scope
    while frame.parent is not owner:
        frame = frame.parent
    nested = frame.node  # the def, lambda or comprehension of ``owner`` that holds the arm's function
    flow = _Flow(bindings, owner, target=nested)
    flow.suite(function.body, frozenset(a.arg for a in parameters_of(function.args)))
    return flow.entry is not None and name in flow.entry


def certainly_assigned(bindings: Bindings, name: ast.Name) -> bool:
    """Is the function variable ``name`` reads certainly assigned where it reads it? Read in its own function
    (or a comprehension running there), it must be assigned on every path to the statement holding the read
    (a walrus earlier in that statement does not count); read by a nested function or generator, wherever that
    is defined, and never deleted. A comprehension's target is bound where its conditions and element read it,
    a lambda's parameter in its body."""
    owner, frame = bindings.owner(name), bindings.frame_of(name)
    function = owner.node if owner is not None else None
    if owner is not None and owner.is_comprehension:
        return True  # its own targets, bound before its conditions and element run
    if isinstance(function, ast.Lambda):
        return name.id in {a.arg for a in parameters_of(function.args)}
    if not isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
        return False  # a class body's name: its order is not followed
    while frame is not owner and frame.is_comprehension and not isinstance(frame.node, ast.GeneratorExp):
        frame = frame.parent  # a comprehension runs where it is written
    if frame is not owner:
        return _bound_before(bindings, owner, frame, name.id)
    flow = _Flow(bindings, owner, target=name)
    flow.suite(function.body, frozenset(a.arg for a in parameters_of(function.args)))
    return flow.entry is not None and name.id in flow.entry


def _shared_with_closures(owned: list[Occurrence], scope: Frame, in_block: set[int]) -> dict[str, bool]:
    """The function's variables that a function, lambda or generator expression outside the block reads
    (False) or also assigns through ``nonlocal`` (True). Such a closure may run while the block does (the
    block calls it): moved into the adapter, the block would work on a copy the closure never sees."""
    shared: dict[str, bool] = {}
    for occurrence in owned:
        if id(occurrence.node) in in_block or not _runs_later(occurrence.frame, scope):
            continue
        shared[occurrence.name] = shared.get(occurrence.name, False) or occurrence.is_store
    return shared


def _runs_later(frame: Frame, scope: Frame) -> bool:
    """Does code of ``frame``, nested in ``scope``, run when called rather than where it stands? A list, set
    or dict comprehension or a class body runs where it stands; a function, lambda or generator later."""
    while frame is not scope:
        if not (frame.is_class or frame.is_comprehension and not isinstance(frame.node, ast.GeneratorExp)):
            return True
        frame = frame.parent
    return False


def _reads_own_frame(function: Function, in_block: set[int], aliases: dict[str, str]) -> str | None:
    """The call of ``function`` outside the block (not in a nested function) that reads its variables by name
    rather than through the names themselves (``locals()``, ``eval``, a frame probe), if there is one."""
    for node in own_nodes(function.body):
        if id(node) in in_block or not isinstance(node, ast.Call):
            continue
        callee = _callee_name(node.func, aliases) if isinstance(node.func, ast.Name) else None
        if callee in INTROSPECTION - {"super", "globals"}:
            if not (node.args or node.keywords) or callee in {"eval", "exec"}:
                return f"{callee}()"
        probe = _frame_probe(node, aliases)
        if probe is not None:
            return probe
    return None


def _frame_probe(node: ast.AST, aliases: dict[str, str]) -> str | None:
    """The frame probe ``node`` names: an attribute (``sys._getframe``), or a call of one (imported by name, under
    its own or another: ``from inspect import currentframe as here``)."""
    if isinstance(node, ast.Attribute):
        name = node.attr
    elif isinstance(node, ast.Call):
        name = _callee_name(node.func, aliases)
    else:
        return None
    return name if name in _FRAME_PROBES else None


def _callee_name(callee: ast.expr, aliases: dict[str, str]) -> str | None:
    """The last name of what ``callee`` names, through an import under another name (``here`` for
    ``currentframe`` after ``from inspect import currentframe as here``)."""
    if isinstance(callee, ast.Attribute):
        return callee.attr
    return aliases.get(callee.id, callee.id) if isinstance(callee, ast.Name) else None


def _guarded(function: Function, block: list[ast.stmt]) -> bool:
    """Is ``block`` inside a ``try`` or ``with`` of ``function``?"""
    return _inside(
        function, block, lambda node, child: isinstance(node, (ast.Try, ast.TryStar, ast.With, ast.AsyncWith))
    )


def _in_except_star(function: Function, block: list[ast.stmt]) -> bool:
    """Is ``block`` inside an ``except*`` handler of ``function``?"""
    return _inside(function, block, lambda node, child: isinstance(node, ast.TryStar) and child in node.handlers)


def _inside(function: Function, block: list[ast.stmt], holds: Callable[[ast.AST, ast.AST], bool]) -> bool:
    """Is ``block`` inside a child of a node of ``function`` (not of a nested function) that ``holds(node,
    child)`` accepts?"""
    stack: list[tuple[ast.AST, bool]] = [(statement, False) for statement in function.body]
    while stack:
        node, inside = stack.pop()
        if node is block[0]:
            return inside
        if not isinstance(node, _NESTED_SCOPES):
            stack.extend((child, inside or holds(node, child)) for child in ast.iter_child_nodes(node))
    return False


def _declared_global(function: Function) -> set[str]:
    return {
        name for node in own_nodes(function.body) if isinstance(node, (ast.Global, ast.Nonlocal)) for name in node.names
    }


def own_nodes(statements: list[ast.stmt]) -> Iterator[ast.AST]:
    """Nodes of ``statements`` outside nested functions, lambdas and classes (the last statement's first)."""
    stack = list(statements)
    while stack:
        current = stack.pop()
        yield current
        if not isinstance(current, _NESTED_SCOPES):
            stack.extend(ast.iter_child_nodes(current))


def _unbinds_a_name(target: ast.expr) -> bool:
    """``del name`` (also inside a tuple, list or starred target), not an attribute or an item."""
    if isinstance(target, (ast.Tuple, ast.List)):
        return any(_unbinds_a_name(element) for element in target.elts)
    if isinstance(target, ast.Starred):
        return _unbinds_a_name(target.value)
    return isinstance(target, ast.Name)


def _blocker(block: list[ast.stmt], aliases: dict[str, str]) -> str | None:
    """Why the block's meaning depends on being where it is, if it does (each reason is documented in the
    README's list of arms left in place)."""
    outer_jumps = _jumps_out_of_loops(block)
    for node in own_nodes(block):
        if isinstance(node, (ast.Yield, ast.YieldFrom, ast.Await, ast.AsyncFor, ast.AsyncWith)):
            return "it yields or awaits"
        if isinstance(node, ast.comprehension) and node.is_async:
            return "it holds an async comprehension"
        if isinstance(node, (ast.Global, ast.Nonlocal)):
            return "it declares a global or nonlocal name"
        if isinstance(node, ast.Delete) and any(_unbinds_a_name(target) for target in node.targets):
            return "it deletes a variable"  # `del obj.attr` and `del obj[key]` mutate an object, as stores do
        if id(node) in outer_jumps:
            return "its `break`/`continue` leaves a loop around it"
        if isinstance(node, (*_LOOPS, ast.Try, ast.TryStar)) and node.orelse:
            return "it holds a loop or `try` with an `else`"
    nodes = [n for statement in block for n in ast.walk(statement)]
    called = {id(n.func) for n in nodes if isinstance(n, ast.Call)}
    for node in nodes:
        reason = _placed_meaning(node, called, aliases)
        if reason:
            return reason
    return None


def _placed_meaning(node: ast.AST, called: AbstractSet[int], aliases: dict[str, str]) -> str | None:
    """Why ``node`` (anywhere in the block, nested functions included; ``called``: the ids of the callees of its
    calls; ``aliases``: the names the module binds to what another name names) means something else elsewhere."""
    # `run = eval; run("x")`: called through another name, it reads the frame that calls it just the same (`dir` is
    # left out: a variable of that name is common, and `dir` given an object depends on nothing)
    if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) and node.id in _TAKEN_AS_VALUE:
        if id(node) not in called:
            return f"it takes `{node.id}` as a value, which, called, depends on where it runs"
    if isinstance(node, ast.Attribute) and node.attr in INTROSPECTION and _names_builtins(node.value):
        return f"it uses `builtins.{node.attr}`, which depends on where it runs"
    if isinstance(node, ast.Nonlocal):
        return "a function defined in it declares a `nonlocal` name"
    if isinstance(node, ast.Name) and node.id.startswith("__") and node.id != "__debug__":
        return f"it uses `{node.id}`, which names its module or class"
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        callee = _callee_name(node.func, aliases)  # `locals`, or what it names: `look = eval`
        if callee in INTROSPECTION and (not (node.args or node.keywords) or callee in {"eval", "exec", "globals"}):
            return f"it calls `{callee}()`, which depends on where it runs"
    probe = _frame_probe(node, aliases)
    if probe is not None:
        return f"it calls `{probe}`, which inspects the frame it runs in"
    if (made := _made_after_caller(node, aliases)) is not None:
        return (
            f"it calls `{made}`, which names what it makes after the module calling it (moved, its `__module__`, "
            "and so its `repr` and pickling, would name the adapter)"
        )
    if _warns(node, aliases):
        return (
            "it calls `warnings.warn`, which files the warning under the module and line calling it (moved, a "
            "filter by module, the once-per-location registry and the location shown would name the adapter)"
        )
    if isinstance(node, ast.Attribute) and is_mangled(node.attr):
        return f"it uses `{node.attr}`, a name-mangled attribute"
    if isinstance(node, ast.alias) and is_mangled(node.name.split(".")[0]):
        # in a class, `from m import __x` fetches `m._Class__x`
        return f"it imports `{node.name}`, a name-mangled name"
    if isinstance(node, (ast.MatchValue, ast.MatchClass)):
        return "a `case` pattern in it reads a name (value or class pattern)"
    if isinstance(node, _NESTED_SCOPES):
        return "it defines a function, lambda or class, whose `__qualname__` and `__module__` say where it is"
    if isinstance(node, ast.AnnAssign):
        return "it annotates a variable: the annotation would name what the adapter does not import"
    if isinstance(node, ast.ImportFrom) and node.level:
        return "it holds a relative import, which would resolve from the adapter's package"
    return None


def _names_builtins(node: ast.expr) -> bool:
    """Is ``node`` the builtins module by its usual names (``builtins``, ``__builtins__``)?"""
    return isinstance(node, ast.Name) and node.id in ("builtins", "__builtins__")


def is_mangled(name: str) -> bool:
    """A private name Python rewrites inside a class body (``__x`` to ``_Class__x``), dunders excepted."""
    return name.startswith("__") and not name.endswith("__")


def _made_after_caller(node: ast.AST, aliases: dict[str, str]) -> str | None:
    """The callee of ``node`` when it makes a class or type named after the calling module: ``namedtuple``,
    ``NewType``, ``TypeVar``, ``Enum("Kind", "A B")``, ``type(name, bases, namespace)``."""
    if not isinstance(node, ast.Call):
        return None
    callee = _callee_name(node.func, aliases)
    named = len(node.args) >= 2 or any(keyword.arg == "names" for keyword in node.keywords)
    if callee in _NAMED_AFTER_CALLER or callee in _ENUMS and named or callee == "type" and len(node.args) == 3:
        return ast.unparse(node.func)
    return None


def _warns(node: ast.AST, aliases: dict[str, str]) -> bool:
    """Is ``node`` a call of ``warnings.warn`` (or of a ``warn`` imported by name; either under another name)?"""
    if not isinstance(node, ast.Call):
        return False
    callee = node.func
    if isinstance(callee, ast.Attribute):
        module = callee.value
        return (
            callee.attr == "warn" and isinstance(module, ast.Name) and aliases.get(module.id, module.id) == "warnings"
        )
    return _callee_name(callee, aliases) == "warn"


def _jumps_out_of_loops(block: list[ast.stmt]) -> set[int]:
    """The ``break``/``continue`` statements of ``block`` that no loop inside it encloses."""
    found: set[int] = set()
    stack: list[tuple[ast.AST, bool]] = [(statement, False) for statement in block]
    while stack:
        node, in_loop = stack.pop()
        if isinstance(node, (ast.Break, ast.Continue)) and not in_loop:
            found.add(id(node))
        if not isinstance(node, _NESTED_SCOPES):
            inner = in_loop or isinstance(node, _LOOPS)
            stack.extend((child, inner) for child in ast.iter_child_nodes(node))
    return found


def _loaded_names(node: ast.AST) -> list[ast.Name]:
    """Names that are variables, wherever they are read or written, except the targets of ``:=``; in source
    order (the order of a function's parameters)."""
    targets = {id(n.target) for n in ast.walk(node) if isinstance(n, ast.NamedExpr)}
    names = [n for n in ast.walk(node) if isinstance(n, ast.Name) and id(n) not in targets]
    return sorted(names, key=lambda name: (name.lineno, name.col_offset))


def _walrus_targets(node: ast.AST) -> Iterator[str]:
    return (n.target.id for n in ast.walk(node) if isinstance(n, ast.NamedExpr))


def _pattern_names(pattern: ast.pattern) -> frozenset[str]:
    """Every identifier in a ``case`` pattern (capture names, and the names in class and value patterns)."""
    names = set()
    for node in ast.walk(pattern):
        if isinstance(node, ast.Name):
            names.add(node.id)
        elif isinstance(node, ast.Attribute):
            names.add(node.attr)
        elif isinstance(node, (ast.MatchAs, ast.MatchStar)) and node.name:
            names.add(node.name)
        elif isinstance(node, ast.MatchMapping) and node.rest:
            names.add(node.rest)
        elif isinstance(node, ast.MatchClass):
            names.update(node.kwd_attrs)
    return frozenset(names)


class _Flow:
    """Walks statements in order, tracking the variables of ``scope`` certainly assigned so far."""

    def __init__(self, bindings: Bindings, scope: Frame, target: list[ast.stmt] | ast.AST | None = None) -> None:
        self.bindings = bindings
        self.scope = scope
        self.target = target
        self.entry: frozenset[str] | None = None  # what is certainly assigned where ``target`` starts
        self.exposed: dict[str, None] = {}  # read while possibly unassigned here: come from outside
        self.assigned: dict[str, None] = {}
        self.closure: dict[str, Frame] = {}  # variables of enclosing functions, with the function
        self.captured: set[str] = set()  # variables read by functions and lambdas defined here
        self.globals: set[str] = set()
        self.unbound: set[str] = set()  # read here, bound by no scope of the module nor a builtin
        self.builtins: set[str] = set()  # builtins read here (no scope of the module binds them)

    def suite(self, statements: list[ast.stmt], assigned: Assigned) -> Assigned:
        if statements is self.target and assigned is not None:
            self.entry = assigned
        for statement in statements:
            if assigned is None:
                break
            if isinstance(self.target, ast.AST) and self.entry is None and _holds(statement, self.target):
                self.entry = assigned  # what is certainly assigned where the statement holding it starts
            assigned = self.statement(statement, assigned)
        return assigned

    def statement(self, node: ast.stmt, assigned: frozenset[str]) -> Assigned:
        if isinstance(node, ast.If):
            self.read(node.test, assigned)
            then = self.suite(node.body, assigned)
            other = self.suite(node.orelse, assigned) if node.orelse else assigned
            return _meet(then, other)
        if isinstance(node, _LOOPS):
            if isinstance(node, ast.While):
                self.read(node.test, assigned)
                self.suite(node.body, assigned)
            else:
                self.read(node.iter, assigned)
                self.suite(node.body, assigned | self.assign(node.target, assigned))
            # the `else` runs after the last test, when the body may never have run: it starts with what was
            # assigned before the loop (and, as a `break` skips it, adds nothing certain after the loop)
            self.suite(node.orelse, assigned)
        elif isinstance(node, (ast.With, ast.AsyncWith)):
            for item in node.items:
                self.read(item.context_expr, assigned)
                if item.optional_vars is not None:
                    assigned |= self.assign(item.optional_vars, assigned)
            # the context manager may swallow an exception of its body (`contextlib.suppress`): what the body
            # assigns may be unassigned after it, and the code after it may run even where the body returns
            self.suite(node.body, assigned)
        elif isinstance(node, (ast.Try, ast.TryStar)):
            body = self.suite(node.body, assigned)
            for handler in node.handlers:
                names = frozenset([handler.name]) if handler.name else frozenset()
                self.assigned.update(dict.fromkeys(names))
                self.suite(handler.body, assigned | names)
            if node.orelse and body is not None:
                self.suite(node.orelse, body)
            if node.finalbody:
                assigned -= _unbound_by(node)
                final = self.suite(node.finalbody, assigned)
                return None if final is None else assigned | final
        elif isinstance(node, ast.Match):
            self.read(node.subject, assigned)
            for case in node.cases:
                captures = _pattern_names(case.pattern)
                for name in captures:
                    self.assigned.setdefault(name)
                if case.guard is not None:
                    self.read(case.guard, assigned | captures)
                self.suite(case.body, assigned | captures)
        elif isinstance(node, _DEFINITIONS):
            self.nested(node, assigned)
            self.assigned.setdefault(node.name)
            return assigned | {node.name}
        else:
            return self.simple(node, assigned)
        return assigned - _unbound_by(node)

    def simple(self, node: ast.stmt, assigned: frozenset[str]) -> Assigned:
        if isinstance(node, ast.Assign):
            self.read(node.value, assigned)
            for target in node.targets:
                assigned |= self.assign(target, assigned)
        elif isinstance(node, ast.AugAssign):
            self.read(node.value, assigned)
            self.read(node.target, assigned)
            assigned |= self.assign(node.target, assigned)
        elif isinstance(node, ast.AnnAssign):
            if node.value is not None:
                self.read(node.value, assigned)
                assigned |= self.assign(node.target, assigned)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                if alias.name != "*":
                    bound = alias.asname or alias.name.split(".")[0]
                    self.assigned.setdefault(bound)
                    assigned |= {bound}
        elif isinstance(node, ast.Delete):
            for target in node.targets:
                assigned -= self.delete(target, assigned)
        elif not isinstance(node, (ast.Global, ast.Nonlocal, ast.Pass)):
            self.read(node, assigned)
            if isinstance(node, (ast.Return, ast.Raise, ast.Break, ast.Continue)):
                return None
        return assigned

    def assign(self, target: ast.expr, assigned: frozenset[str]) -> frozenset[str]:
        """Record an assignment target; returns the names it certainly binds."""
        if isinstance(target, ast.Name):
            self.assigned.setdefault(target.id)
            return frozenset({target.id})
        if isinstance(target, (ast.Tuple, ast.List)):
            bound = frozenset()
            for element in target.elts:
                bound |= self.assign(element, assigned)
            return bound
        if isinstance(target, ast.Starred):
            return self.assign(target.value, assigned)
        self.read(target, assigned)  # obj.attr = ..., table[key] = ...: reads obj, table and key
        return frozenset()

    def delete(self, target: ast.expr, assigned: frozenset[str]) -> frozenset[str]:
        """Record a ``del`` target; returns the variables it leaves unassigned."""
        if isinstance(target, ast.Name):
            return frozenset({target.id})
        if isinstance(target, (ast.Tuple, ast.List)):
            return frozenset().union(*(self.delete(element, assigned) for element in target.elts))
        self.read(target, assigned)  # del obj.attr, del table[key]: reads obj, table and key
        return frozenset()

    def read(self, node: ast.AST, assigned: frozenset[str]) -> None:
        for name in _loaded_names(node):
            self.read_name(name, assigned)
        for name in _walrus_targets(node):
            self.assigned.setdefault(name)

    def read_name(self, name: ast.Name, assigned: frozenset[str]) -> None:
        owner = self.bindings.owner(name)
        if owner is None:
            (self.unbound if is_unbound(name.id) else self.builtins).add(name.id)
            return
        if owner is self.scope:
            frame = self.bindings.frame_of(name)
            # a generator expression, like a function, reads the variable when it runs, not where it is
            if frame is not self.scope and (not frame.is_comprehension or isinstance(frame.node, ast.GeneratorExp)):
                self.captured.add(name.id)
            if name.id not in assigned:
                self.exposed.setdefault(name.id)
        elif owner is self.bindings.module:
            self.globals.add(name.id)
        elif _encloses_scope(owner, self.scope):
            self.closure.setdefault(name.id, owner)
            self.exposed.setdefault(name.id)

    def nested(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef, assigned: frozenset[str]) -> None:
        """A def or class inside the block: its decorators and defaults run now, its body later."""
        parts: list[ast.AST] = [*node.decorator_list, *node.body]
        if isinstance(node, ast.ClassDef):
            parts += node.bases
        else:
            parts.append(node.args)
        for part in parts:
            for name in _loaded_names(part):
                self.read_name(name, assigned)


def _unbound_by(statement: ast.stmt) -> frozenset[str]:
    """The variables a compound statement may leave unassigned on some path through it: those it deletes
    (``del x`` in a loop, a ``try``, a ``case``) and the names of its ``except ... as`` handlers, which Python
    deletes when the handler ends."""
    names: set[str] = set()
    for node in own_nodes([statement]):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Del):
            names.add(node.id)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            names.add(node.name)
    return frozenset(names)


def _holds(statement: ast.stmt, node: ast.AST) -> bool:
    """Is ``node`` ``statement`` itself, or in it but not in a nested statement (where a walk goes on)?"""
    if statement is node:
        return True
    suites = ("body", "orelse", "finalbody", "handlers", "cases")
    nested = {id(child) for suite in suites for child in getattr(statement, suite, [])}
    stack = [child for child in ast.iter_child_nodes(statement) if id(child) not in nested]
    while stack:
        current = stack.pop()
        if current is node:
            return True
        stack.extend(ast.iter_child_nodes(current))
    return False


def _encloses_scope(outer: Frame, inner: Frame) -> bool:
    scope = inner.parent
    while scope is not None and scope.parent is not None:
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
