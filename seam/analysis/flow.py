"""Which names carry an MLA value at each statement: reaching definitions, in execution order.

A name (or a dotted attribute such as ``self._latent``) is MLA at a statement only if an assignment of an
MLA value (``MLAExpressions.taint``) reaches it: assignments are seen in statement order, a later
assignment of something else kills the alias, and where branches meet (``if``/``else``, ``try`` handlers,
``match`` cases, loop back edges) the states merge as "may be MLA". A function starts from its enclosing
scope's state where it is defined merged with that scope's final state (it may run after either), minus
its parameters. Attributes a class sets on ``self`` from MLA values in any of its methods
(``self._latent = config.multi_latent_attention`` in ``__init__``) are MLA in all of its methods.

A name with an MLA word (``use_mla``) is MLA by its name, except where every definition that reaches it is
an answer of the seam (``use_mla = mla_seam.multi_latent_attention(config)``, what ``seamfix apply`` writes):
the seam owns that decision, as it owns ``if mla_seam.multi_latent_attention(config):``. The state tracks
this with two markers per such name, never identifiers: ``SEAM_ANSWER`` where a seam call bound it on some
path, ``OTHER_VALUE`` where anything else did (a parameter, another value); merges keep both, so a name is
the seam's answer only when the first is there and the second is not.
"""

from __future__ import annotations

import abc
import ast
from collections.abc import Iterable

from seamfix.analysis.expressions import MLA_NAME, OTHER_VALUE, SEAM_ANSWER, own_statements
from seamfix.analysis.seam_bindings import dotted_name
from seamfix.analysis.source import SourceFile

Aliases = frozenset[str]

_FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef)
_BLOCK_FIELDS = frozenset({"body", "orelse", "finalbody", "handlers", "cases"})
_MAX_LOOP_PASSES = 4  # a loop's state grows monotonically; more passes than this never changed it in practice
_NOT_METHODS = frozenset({"staticmethod"})
_PROPERTIES = frozenset({"property", "cached_property"})


class MLAFlow(abc.ABC):
    """Walks a module's statements in execution order with the MLA aliases that reach each one, calling
    ``check_statement`` / ``check_case`` for every statement's own expressions (not its nested blocks).

    Loops are walked silently until their state settles, then once more with reporting on."""

    def __init__(self, source: SourceFile) -> None:
        self.source = source
        self.mla = source.mla
        self.reporting = True
        self._deferred: list[tuple[ast.AST, Aliases, ast.ClassDef | None]] = []
        self._class: ast.ClassDef | None = None
        self._class_attributes: dict[int, frozenset[str]] = {}
        self._loop_heads: dict[tuple[int, Aliases], Aliases] = {}
        self._returns_mla: dict[int, bool] = {}

    @abc.abstractmethod
    def check_statement(self, node: ast.stmt, aliases: Aliases) -> None:
        """Report on ``node``'s own expressions, ``aliases`` being the MLA names that reach it."""

    @abc.abstractmethod
    def check_case(self, case: ast.match_case, aliases: Aliases) -> None:
        """Report on a ``case``'s pattern and guard."""

    def run(self) -> None:
        self.scope(self.source.tree.body, frozenset())

    def scope(self, statements: list[ast.stmt], entry: Aliases) -> None:
        """A module's or function's body; the functions defined in it are walked after it, from the state
        at their definition merged with the state at its end."""
        outer = self._deferred
        self._deferred = []
        end = self.block(statements, entry)
        pending, self._deferred = self._deferred, outer
        for definition, at_definition, owner in pending:
            self.function(definition, at_definition | end, owner)

    def function(self, node: ast.AST, entry: Aliases, owner: ast.ClassDef | None) -> None:
        arguments = node.args
        entry = without(entry, parameters(node))
        entry |= {OTHER_VALUE + name for name in parameters(node) if self.mla.names.is_name(name)}
        receiver = (arguments.posonlyargs + arguments.args)[:1]
        if owner is not None and receiver and not _is_static(node):
            entry |= {f"{receiver[0].arg}.{attribute}" for attribute in self.class_attributes(owner)}
        if entry or self.source.may_mention_mla(node):
            self.scope(node.body, entry)

    def block(self, statements: Iterable[ast.stmt], aliases: Aliases) -> Aliases:
        for statement in statements:
            aliases = self.statement(statement, aliases)
        return aliases

    def statement(self, node: ast.stmt, aliases: Aliases) -> Aliases:
        if not aliases and not isinstance(node, _DEFINITIONS) and not self.source.may_mention_mla(node):
            return aliases  # nothing MLA reaches it or is in it: it can neither report nor create an alias
        handler = getattr(self, "flow_" + type(node).__name__, None)
        if handler is not None:
            return handler(node, aliases)
        aliases = self.walrus(node, aliases)
        self.check(node, aliases)
        if isinstance(node, ast.Delete):
            for target in node.targets:
                aliases = self.bind(target, False, aliases)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            bound = [(a.asname or a.name).split(".", 1)[0] for a in node.names]
            aliases = without(aliases, bound)
            if isinstance(node, ast.ImportFrom):
                for alias in node.names:  # `import MLASelfAttention as Latent`: `Latent` is that class
                    if alias.asname and self.mla.names.is_class(alias.name):
                        aliases |= {alias.asname, MLA_NAME + alias.asname}
        return aliases

    def check(self, node: ast.stmt, aliases: Aliases) -> None:
        if self.reporting:
            self.check_statement(node, aliases)

    # Assignments

    def flow_Assign(self, node: ast.Assign, aliases: Aliases) -> Aliases:
        aliases = self.walrus(node, aliases)
        self.check(node, aliases)
        for target in node.targets:
            aliases = self.assign(target, node.value, aliases)
        return aliases

    def flow_AnnAssign(self, node: ast.AnnAssign, aliases: Aliases) -> Aliases:
        aliases = self.walrus(node, aliases)
        self.check(node, aliases)
        return aliases if node.value is None else self.assign(node.target, node.value, aliases)

    def flow_AugAssign(self, node: ast.AugAssign, aliases: Aliases) -> Aliases:
        """``flag |= cfg.multi_latent_attention`` combines flags; ``size += cfg.kv_lora_rank`` is arithmetic."""
        aliases = self.walrus(node, aliases)
        self.check(node, aliases)
        if not isinstance(node.target, (ast.Name, ast.Attribute)):
            return aliases
        carries = isinstance(node.op, (ast.BitOr, ast.BitAnd, ast.BitXor)) and (
            self.mla.taint(node.target, aliases) is not None or self.mla.taint(node.value, aliases) is not None
        )
        return self.bind(node.target, carries, aliases)

    def assign(self, target: ast.expr, value: ast.expr, aliases: Aliases) -> Aliases:
        if isinstance(target, (ast.Tuple, ast.List)) and isinstance(value, (ast.Tuple, ast.List)):
            if len(target.elts) == len(value.elts) and not any(isinstance(e, ast.Starred) for e in target.elts):
                before = aliases  # `a, b = b, a` reads every value before binding any target
                for sub_target, sub_value in zip(target.elts, value.elts, strict=True):
                    carries = self.mla.bound_taint(sub_value, before) is not None
                    aliases = self.bind(sub_target, carries, aliases, self.seam_answer(sub_target, sub_value, carries))
                return aliases
        carries = self.mla.bound_taint(value, aliases) is not None
        aliases = self.bind(target, carries, aliases, self.seam_answer(target, value, carries))
        held = self.held(target, [value], aliases) if type(target) is ast.Name else None
        return aliases | held if held else aliases

    def held(self, target: ast.Name, values: list[ast.expr], aliases: Aliases) -> set[str]:
        """What ``target`` holds beyond an MLA value: a name of MLA (a probe of it probes MLA) when every one of
        ``values`` is one (``names_mla``), a reader of MLA (``get = attrgetter("q_lora_rank")``: ``get(cfg)``
        reads it)."""
        if values and all(map(self.mla.names_mla, values)):
            return {MLA_NAME + target.id}
        if len(values) == 1 and type(values[0]) in (ast.Call, ast.Lambda):
            return {target.id + "()"} if self.mla.reader_atom(values[0], aliases) is not None else set()
        return set()

    def iterated_names(self, target: ast.expr, iterable: ast.expr, aliases: Aliases) -> set[str]:
        """``for field in ("q_lora_rank", "kv_lora_rank")`` (or over a name bound to such a collection) binds
        ``field`` to names of MLA, each one a probe may ask about."""
        if not isinstance(target, ast.Name):
            return set()
        if isinstance(iterable, ast.Name) and MLA_NAME + iterable.id in aliases:
            return {MLA_NAME + target.id}
        if isinstance(iterable, (ast.Tuple, ast.List, ast.Set)):
            return self.held(target, iterable.elts, aliases)
        return set()

    def seam_answer(self, target: ast.expr, value: ast.expr, carries: bool) -> bool:
        """Whether ``target``, a name with an MLA word, gets the seam's answer: ``value`` calls into the seam
        and carries no MLA otherwise (``mla_seam.f(cfg)``, ``not mla_seam.f(cfg)``, and ``cls is not None and
        mla_seam.f(cls)``, what apply leaves when it routes the MLA atom of a definition). Only such names
        need the answer, so other assignments walk no value."""
        seam = self.mla.seam
        if carries or not (seam.modules or seam.functions or seam.dotted_modules):
            return False
        if not (isinstance(target, ast.Name) and self.mla.names.is_name(target.id)):
            return False
        return any(isinstance(node, ast.Call) and seam.refers_to_seam(node.func) for node in ast.walk(value))

    def bind(self, target: ast.expr, carries: bool, aliases: Aliases, seam_answer: bool = False) -> Aliases:
        """``aliases`` after ``target`` is bound to a value that does (not) carry MLA (or is the seam's answer)."""
        if isinstance(target, (ast.Tuple, ast.List)):
            for element in target.elts:
                aliases = self.bind(element, carries, aliases)
            return aliases
        if isinstance(target, ast.Starred):
            return self.bind(target.value, carries, aliases)
        key = target.id if isinstance(target, ast.Name) else dotted_name(target)
        if key is None:
            return aliases  # `d[k] = ...`, `f().x = ...`: a store into a container is no alias
        aliases = without(aliases, [key])
        if isinstance(target, ast.Name) and self.mla.names.is_name(key):
            aliases |= {(SEAM_ANSWER if seam_answer else OTHER_VALUE) + key}
        return aliases | {key} if carries else aliases

    def walrus(self, node: ast.stmt, aliases: Aliases) -> Aliases:
        """``aliases`` after the ``:=`` of ``node``'s own expressions (bound before its checks: conservative)."""
        if not self.source.has_walrus:
            return aliases
        for field, value in ast.iter_fields(node):
            if field in _BLOCK_FIELDS or field == "decorator_list" or not isinstance(value, (ast.AST, list)):
                continue
            for part in value if isinstance(value, list) else [value]:
                if isinstance(part, ast.AST):
                    for expression in _expressions(part):
                        if isinstance(expression, ast.NamedExpr):
                            aliases = self.assign(expression.target, expression.value, aliases)
        return aliases

    # Branches and loops

    def flow_If(self, node: ast.If, aliases: Aliases) -> Aliases:
        aliases = self.walrus(node, aliases)
        self.check(node, aliases)
        return self.block(node.body, aliases) | self.block(node.orelse, aliases)

    def flow_While(self, node: ast.While, aliases: Aliases) -> Aliases:
        head = self.loop_head(node, self.walrus(node, aliases), lambda state: state)
        self.check(node, head)
        self.block(node.body, head)
        return head | self.block(node.orelse, head)

    def flow_For(self, node: ast.For | ast.AsyncFor, aliases: Aliases) -> Aliases:
        aliases = self.walrus(node, aliases)
        self.check(node, aliases)
        columns = self.unpacked_columns(node.target, node.iter, aliases)
        carries = self.mla.taint(node.iter, aliases) is not None  # iterating reads the elements
        holds = self.iterated_names(node.target, node.iter, aliases)

        def entered(state: Aliases) -> Aliases:
            if columns is None:
                return self.bind(node.target, carries, state) | holds
            for sub_target, column_carries in columns:
                state = self.bind(sub_target, column_carries, state)
            return state

        head = self.loop_head(node, aliases, entered)
        self.block(node.body, entered(head))
        return head | self.block(node.orelse, head)

    flow_AsyncFor = flow_For

    def unpacked_columns(
        self, target: ast.expr, iterable: ast.expr, aliases: Aliases
    ) -> list[tuple[ast.expr, bool]] | None:
        """For ``for name, value in (("q_lora_rank", q), ("chunk", c)):``, each target with whether its column
        carries MLA (evaluated once, before the loop): ``value`` is bound from ``q`` and ``c`` alone, never from
        the labels beside them. None where the rows are not literal tuples of the target's width."""
        if not isinstance(target, (ast.Tuple, ast.List)) or not isinstance(iterable, (ast.Tuple, ast.List, ast.Set)):
            return None
        width = len(target.elts)
        rows = iterable.elts
        if not rows or any(isinstance(element, ast.Starred) for element in target.elts):
            return None
        for row in rows:
            if not isinstance(row, (ast.Tuple, ast.List)) or len(row.elts) != width:
                return None
            if any(isinstance(element, ast.Starred) for element in row.elts):
                return None
        return [
            (sub_target, any(self.mla.taint(row.elts[index], aliases) is not None for row in rows))
            for index, sub_target in enumerate(target.elts)
        ]

    def loop_head(self, node: ast.For | ast.AsyncFor | ast.While, entry: Aliases, entered) -> Aliases:
        """The state at the top of a loop: its entry merged with what its body leaves, until it settles.
        Memoized by entry state, so that nested loops cost passes per level, not per combination of levels."""
        key = (id(node), entry)
        if key in self._loop_heads:
            return self._loop_heads[key]
        head = entry
        reporting, self.reporting = self.reporting, False
        try:
            for _ in range(_MAX_LOOP_PASSES):
                grown = head | self.block(node.body, entered(head))
                if grown == head:
                    break
                head = grown
        finally:
            self.reporting = reporting
        self._loop_heads[key] = head
        return head

    def flow_Try(self, node: ast.Try, aliases: Aliases) -> Aliases:
        body = self.try_body(node, aliases)
        anywhere_in_body = aliases | body  # a handler may start from any point of the body
        ends = [self.block(node.orelse, body)]
        for handler in node.handlers:
            start = without(anywhere_in_body, [handler.name] if handler.name else [])
            ends.append(self.block(handler.body, start))
        return self.block(node.finalbody, frozenset().union(*ends))

    flow_TryStar = flow_Try

    def try_body(self, node: ast.Try, aliases: Aliases) -> Aliases:
        """The state after a ``try`` body (subclasses see which exceptions its handlers catch)."""
        return self.block(node.body, aliases)

    def flow_With(self, node: ast.With | ast.AsyncWith, aliases: Aliases) -> Aliases:
        aliases = self.walrus(node, aliases)
        self.check(node, aliases)
        for item in node.items:
            if item.optional_vars is not None:
                aliases = self.assign(item.optional_vars, item.context_expr, aliases)
        return self.block(node.body, aliases)

    flow_AsyncWith = flow_With

    def flow_Match(self, node: ast.Match, aliases: Aliases) -> Aliases:
        aliases = self.walrus(node, aliases)
        self.check(node, aliases)
        carries = self.mla.taint(node.subject, aliases) is not None
        ends = [aliases]  # no case may match
        for case in node.cases:
            captured = [n for n in ast.walk(case.pattern) for n in _captures(n)]
            state = without(aliases, captured)
            state = state | set(captured if carries else self.field_captures(case.pattern))
            if self.reporting:
                self.check_case(case, state)
            ends.append(self.block(case.body, state))
        return frozenset().union(*ends)

    def field_captures(self, pattern: ast.pattern) -> list[str]:
        """The names a pattern captures from an MLA field or key (``case Config(kv_lora_rank=rank)``,
        ``case {"q_lora_rank": rank}``): they hold its value."""
        names = self.mla.names
        found = []
        for node in ast.walk(pattern):
            if isinstance(node, ast.MatchClass):
                fields = [p for a, p in zip(node.kwd_attrs, node.kwd_patterns, strict=True) if names.is_attribute(a)]
            elif isinstance(node, ast.MatchMapping):
                fields = [p for k, p in zip(node.keys, node.patterns, strict=True) if self.mla.vocabulary_atom(k)]
            else:
                continue
            found += [name for field in fields for inner in ast.walk(field) for name in _captures(inner)]
        return found

    # Definitions

    def flow_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef, aliases: Aliases) -> Aliases:
        self.check(node, aliases)
        if self.reporting:
            self._deferred.append((node, aliases, self._class))
        returns = self._class is None and self.returns_mla(node, aliases)  # methods: see class_attributes
        return without(aliases, [node.name]) | ({node.name + "()"} if returns else set())

    flow_AsyncFunctionDef = flow_FunctionDef

    def flow_ClassDef(self, node: ast.ClassDef, aliases: Aliases) -> Aliases:
        """A class body runs where it stands; its methods are walked with the enclosing scope's functions."""
        self.check(node, aliases)
        enclosing, self._class = self._class, node
        try:
            self.block(node.body, aliases)
        finally:
            self._class = enclosing
        return without(aliases, [node.name])

    def class_attributes(self, node: ast.ClassDef) -> frozenset[str]:
        """Attributes the class's methods set on their receiver from MLA values (``self._latent =
        config.multi_latent_attention``), to a fixed point (``self.b = self._latent``). Order-blind: a
        method may run before or after another."""
        key = id(node)
        if key not in self._class_attributes:
            self._class_attributes[key] = frozenset()  # the class is being analysed: no attributes yet
            if self.source.may_mention_mla(node):
                self._class_attributes[key] = self._receiver_aliases(node)
        return self._class_attributes[key]

    def _receiver_aliases(self, node: ast.ClassDef) -> frozenset[str]:
        """``_latent`` for ``self._latent = <MLA>``, a property returning MLA by its name, a method returning
        MLA as ``name()`` (so that ``self.name()`` carries MLA)."""
        facts = []  # (method, receiver, keys the value binds, value)
        for method in node.body:
            if not isinstance(method, _FUNCTIONS) or _is_static(method):
                continue
            receiver = (method.args.posonlyargs + method.args.args)[:1]
            if not receiver:
                continue
            name = receiver[0].arg
            returned = [method.name if _is_property(method) else method.name + "()"]
            for statement in own_statements(method):
                if isinstance(statement, ast.Return) and statement.value is not None:
                    facts.append((method, name, returned, statement.value))
                elif isinstance(statement, (ast.Assign, ast.AnnAssign)) and statement.value is not None:
                    targets = statement.targets if isinstance(statement, ast.Assign) else [statement.target]
                    keys = [t.attr for t in targets if isinstance(t, ast.Attribute) and dotted_name(t.value) == name]
                    if keys:
                        facts.append((method, name, keys, statement.value))
        walrus = self.source.may_mention_mla if self.source.has_walrus else None
        keys_found: set[str] = set()
        local: dict[tuple[int, frozenset[str]], frozenset[str]] = {}  # a method's aliases, by what it inherits
        changed = True
        while changed:
            changed = False
            for method, receiver, keys, value in facts:
                if all(key in keys_found for key in keys):
                    continue
                inherited = frozenset(f"{receiver}.{key}" for key in keys_found)
                if (id(method), inherited) not in local:  # a method that names no MLA has no alias of its own
                    mentions = inherited or self.source.may_mention_mla(method)
                    local[id(method), inherited] = (
                        self.mla.aliases(method, inherited, walrus) if mentions else inherited
                    )
                if self.mla.bound_taint(value, local[id(method), inherited]) is not None:
                    keys_found.update(keys)
                    changed = True
        return frozenset(keys_found)

    def returns_mla(self, node: ast.FunctionDef | ast.AsyncFunctionDef, aliases: Aliases) -> bool:
        """Whether a function may return an MLA value (``def _latent(cfg): return cfg.multi_latent_attention``):
        then a call of it carries MLA, as the value itself would."""
        if id(node) not in self._returns_mla:
            found = False
            inherited = without(aliases, parameters(node))
            if inherited or self.source.may_mention_mla(node):
                walrus = self.source.may_mention_mla if self.source.has_walrus else None
                local = self.mla.aliases(node, inherited, walrus)
                found = any(
                    isinstance(statement, ast.Return)
                    and statement.value is not None
                    and self.mla.bound_taint(statement.value, local) is not None
                    for statement in own_statements(node)
                )
            self._returns_mla[id(node)] = found
        return self._returns_mla[id(node)]


_DEFINITIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


def without(aliases: Aliases, names: Iterable[str]) -> Aliases:
    """``aliases`` less ``names``, every dotted alias under them and their calls (``x = ...`` kills ``x.flag``
    and ``x()``)."""
    names = [n for n in names if n]
    if not aliases or not names:
        return aliases
    killed = {form for n in names for form in (n, n + "()", SEAM_ANSWER + n, OTHER_VALUE + n, MLA_NAME + n)}
    return frozenset(a for a in aliases if a not in killed and not any(a.startswith(n + ".") for n in names))


def parameters(function: ast.AST) -> list[str]:
    """The names a function or lambda binds as parameters."""
    arguments = function.args
    every = [*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs, arguments.vararg, arguments.kwarg]
    return [a.arg for a in every if a is not None]


def _is_property(function: ast.AST) -> bool:
    return any((dotted_name(d) or "").rsplit(".", 1)[-1] in _PROPERTIES for d in function.decorator_list)


def _is_static(function: ast.AST) -> bool:
    return any(isinstance(d, ast.Name) and d.id in _NOT_METHODS for d in function.decorator_list)


def _captures(pattern: ast.AST) -> list[str]:
    name = getattr(pattern, "name", None) if isinstance(pattern, (ast.MatchAs, ast.MatchStar)) else None
    rest = pattern.rest if isinstance(pattern, ast.MatchMapping) else None
    return [n for n in (name, rest) if n]


def _expressions(node: ast.AST) -> Iterable[ast.AST]:
    """``node`` and its sub-expressions, not entering lambdas (their ``:=`` bind in their own scope)."""
    stack = [node]
    while stack:
        current = stack.pop()
        yield current
        if not isinstance(current, ast.Lambda):
            stack.extend(ast.iter_child_nodes(current))
