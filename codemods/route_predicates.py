"""MLA tests -> calls of named predicates in the adapter module."""

from __future__ import annotations

import builtins
from dataclasses import dataclass

import libcst as cst

from seamfix.codemods.adapter_function import AdapterFunction, adapter_function
from seamfix.codemods.alias_definitions import AliasDefinitions
from seamfix.codemods.context import FileContext, Refusal
from seamfix.codemods.dataflow import INTROSPECTION, is_mangled
from seamfix.codemods.nodes import (
    children,
    dotted_name,
    finding_span,
    module_word,
    snake_case,
    unparenthesized,
    walk,
)
from seamfix.findings import Finding, FindingKind

# The parent kinds through which the MLA part of a test grows: `cfg.q_lora_rank is None` is one question,
# while `and`/`or`/`not` and conditional expressions combine questions and stay in the builder.
_GROWS_THROUGH = (cst.Attribute, cst.Subscript, cst.Comparison, cst.ComparisonTarget, cst.BinaryOperation)
# A predicate is a module-level function: `self` there would read as a method's.
_PREDICATE_PARAMETERS = {"self": "obj", "cls": "klass"}
_LITERALS = (cst.SimpleString, cst.ConcatenatedString, cst.Integer, cst.Float, cst.Imaginary)
_CONSTANTS = frozenset({"None", "True", "False"})
# Expressions that need their parentheses as one argument of several
_PARENTHESIZED = (cst.Yield, cst.GeneratorExp)
# Builtins that read the variables of the function calling them from the string they are given.
_RUNS_IN_CALLER = frozenset({"eval", "exec"})
_PROBE_WORDS = {"isinstance": "is", "issubclass": "is_subclass_of", "hasattr": "has", "getattr": "get"}
_OPERATOR_WORDS = {
    cst.Is: "is", cst.IsNot: "is_not", cst.Equal: "eq", cst.NotEqual: "ne", cst.In: "in", cst.NotIn: "not_in",
    cst.LessThan: "lt", cst.LessThanEqual: "le", cst.GreaterThan: "gt", cst.GreaterThanEqual: "ge",
}  # fmt: skip
# `q_lora_rank % tp_size == 0` names its arithmetic: `q_lora_rank_eq_0` would read as the rank compared with 0
_ARITHMETIC_WORDS = {
    cst.Add: "plus", cst.Subtract: "minus", cst.Multiply: "times", cst.Divide: "div", cst.FloorDivide: "floordiv",
    cst.Modulo: "mod", cst.Power: "pow",
}  # fmt: skip


# A test that is a bare variable: the linter reads it as an MLA flag (by its name or as an alias).
IDENTITY_REFUSAL = (
    "`{}` is a {} variable: a predicate would only return its argument (route where it is set, or rename it)"
)
NO_ATOM_REFUSAL = (
    "`{}` names no MLA field, class or string itself (the linter follows a local variable): a predicate would "
    "hide the decision, not move it"
)
# `@convert.register` over `def _(module: MLASelfAttention)`: the class registered is the annotation's.
ANNOTATION_REFUSAL = (
    "`{}` is the annotation that `register` dispatches on: a call there is no type to a type checker (pass the "
    "class to `register(...)` to route it)"
)
_WHAT = {
    cst.BooleanOperation: "an `and`/`or`", cst.IfExp: "a conditional expression", cst.NamedExpr: "a `:=`",
    cst.Lambda: "a lambda", cst.Await: "an `await`", cst.Yield: "a `yield`", cst.FormattedString: "an f-string",
    cst.ListComp: "a comprehension", cst.SetComp: "a comprehension", cst.DictComp: "a comprehension",
    cst.GeneratorExp: "a generator expression",
}  # fmt: skip


class _Hazard(Exception):
    """Why a part of a test cannot be evaluated by a predicate in the test's order."""


@dataclass
class Route:
    """Replace ``node`` (the MLA part of a test) by ``call``, a call of ``function`` in the adapter."""

    node: cst.BaseExpression
    call: cst.Call
    function: AdapterFunction


class RoutePredicates:
    """Plans, for one finding, the call that replaces the MLA part of its test.

    The MLA part grows from the finding's atom through attribute, subscript, comparison and arithmetic
    parents (never past the finding's own expression), or is the whole call for a ``getattr``/``isinstance``
    probe. Within it, every maximal sub-expression that does not name MLA (``self.config``) becomes a
    parameter, so that predicates of the same shape are one function whatever their call sites pass. The
    part grows only while the predicate keeps the test's evaluation order (``order_hazard``); a part that
    would be an identity, hold no MLA atom, or read a module-level name the adapter cannot share is left,
    with the reason.
    """

    def __init__(self, context: FileContext, aliases: AliasDefinitions) -> None:
        self.context = context
        self.aliases = aliases

    def routes(self, finding: Finding) -> list[Route] | str:
        """The routes for ``finding``, or why its test cannot be routed.

        The linter names one MLA part per test; the other operands of its ``and``/``or``/``not`` that name
        MLA (``"mla_up_proj" in mods and not cfg.multi_latent_attention``) are routed in the same pass, which
        saves parsing the file again for the finding the linter would report next.
        """
        context = self.context
        if finding.kind == FindingKind.CASE_PATTERN:
            return "a `case` pattern cannot call a predicate; match on a routed value instead"
        test = context.by_span.get(finding_span(*finding[1:5]))
        atom = context.by_span.get(finding_span(*finding.atom)) if finding.atom else None
        if test is None or atom is None:
            return "the reported span is not one expression that a call could replace (a slice, a pattern)"
        if self._in_annotation(atom):
            return ANNOTATION_REFUSAL.format(_short(context.module.code_for_node(atom)))
        part = test if finding.kind == FindingKind.PROBE else self.mla_part(atom, test)
        hazard = self.order_hazard(part)
        if hazard:
            return f"routing it would change evaluation order: {hazard}"
        routes = self._part_routes(part)
        if isinstance(routes, str):
            # the atom the linter names stays (a local alias); MLA fields elsewhere in the test still route
            inside = self.value_routes(test) if test is not part else None
            if inside and all(isinstance(route, Route) for route in inside):
                return inside
            return routes
        others = [leaf for leaf in _boolean_operands(test) if leaf is not part and self._is_question(leaf)]
        more = [self._route(node) for node in others if not self.order_hazard(node)]
        return routes + [route for route in more if isinstance(route, Route)]

    def _in_annotation(self, node: cst.CSTNode) -> bool:
        parents = self.context.parents
        while node is not None and not isinstance(node, cst.Annotation):
            node = parents.get(node)
        return node is not None

    def _part_routes(self, part: cst.BaseExpression) -> list[Route] | str:
        """A local alias's definitions where they can be routed (see ``alias_definitions``), else the part.

        An alias named for MLA (``use_mla``) stays a finding by its name even once its values come from the
        seam; its test is left, with the reason: a predicate returning the flag would hide the decision."""
        definitions = self._definition_routes(part) if isinstance(part, cst.Name) else None
        if not definitions:
            route = self._route(part)
            return route if isinstance(route, str) else [route]
        return definitions

    def _definition_routes(self, name: cst.Name) -> list[Route] | None:
        """The routes of every MLA question in the values of the alias ``name``; None when they cannot be
        routed, or when the values hold none (routing the test is then what makes the linter's finding go)."""
        context = self.context
        where = context.positions[name].start
        values = self.aliases.values(context.area.to_original(where.line), where.column)
        routes: list[Route] = []
        for value in values or ():
            node = context.located(value)
            found = None if node is None else self.value_routes(node)
            if found is None or any(isinstance(route, str) for route in found):
                return None
            routes += found
        return routes or None

    def value_routes(self, value: cst.BaseExpression) -> list[Route] | None:
        """Routes for every MLA question in an assigned ``value``, each grown as in a test; None when an MLA
        name cannot become a call where it stands (a keyword, a parameter, a comprehension target)."""
        routes: list[Route] = []
        routed: set[cst.CSTNode] = set()
        for node in self._outside_seam_calls(value):
            if node in routed or not self._is_atom(node):
                continue
            if not self._is_replaceable(node):
                return None
            part = self.mla_part(node, value)
            if self.order_hazard(part):
                return None
            routes.append(self._route(part))
            routed.update(walk(part))
        return routes

    def _is_atom(self, node: cst.CSTNode) -> bool:
        """A node that names MLA by itself, not through its children."""
        names = self.context.names
        if isinstance(node, cst.Attribute):
            return names.is_attribute(node.attr.value)
        if isinstance(node, cst.SimpleString):
            return names.is_string(str(node.evaluated_value))
        return isinstance(node, cst.Name) and not self._is_parent_attr(node) and names.is_name(node.value)

    def _is_replaceable(self, node: cst.CSTNode) -> bool:
        """Can a call stand where ``node`` is? Not as a keyword, a parameter or an assignment target."""
        parent = self.context.parents.get(node)
        if isinstance(parent, cst.Arg):
            return parent.keyword is not node
        if isinstance(parent, (cst.CompFor, cst.NamedExpr)):
            return parent.target is not node
        return not isinstance(parent, cst.Param)

    def _is_question(self, operand: cst.BaseExpression) -> bool:
        """An operand that is one MLA question on its own: an attribute, comparison or probe naming MLA."""
        shape = isinstance(operand, (cst.Attribute, cst.Comparison)) or self._is_probe(operand)
        return shape and self.is_mla(operand) and not any(isinstance(n, cst.BooleanOperation) for n in walk(operand))

    def _route(self, part: cst.BaseExpression) -> Route | str:
        """The route of ``part``, or why it stays: a predicate that would only return what it is passed (a
        local flag named for MLA), or one that reads a module-level name the adapter cannot share."""
        context = self.context
        holder = _Holes(self, not any(isinstance(node, cst.NamedExpr) for node in walk(part)))
        template = part.visit(holder)
        code = _short(context.module.code_for_node(unparenthesized(part)))
        if isinstance(part, cst.Name) and isinstance(template, cst.Name) and template.value in holder.parameters:
            scope = "local" if context.binding(part) == "local" else "module-level"
            return IDENTITY_REFUSAL.format(code, scope)
        if not self.is_mla(template):
            return NO_ATOM_REFUSAL.format(code)
        mangled = next((n.value for n in walk(template) if isinstance(n, cst.Name) and is_mangled(n.value)), None)
        if mangled is not None:  # `self.__mla` in a class reads `self._Model__mla`; in the adapter, `obj.__mla`
            return f"it reads `{mangled}`, a name-mangled attribute, which the class renames and the adapter would not"
        if isinstance(part, (cst.SimpleString, cst.ConcatenatedString)):
            grown = self._grown(part)
            hazard = self.order_hazard(grown) if grown is not None else None
            if hazard:  # `mla_part` stopped short of the read or comparison the string is part of
                return f"routing it would change evaluation order: {hazard}"
            caller = self.runs_in_caller(grown) if grown is not None else None
            if caller:
                return caller
            return f"{code} alone is a name, not a decision: the code that decides on it stays where it is"
        if context.has_star_import and any(self._is_builtin(node) for node in walk(part)):
            return "the module has an `import *`, which may rebind the builtin it calls"
        imports = []
        for name in _global_names(self, part):
            imported = context.shared_global(name.value)
            if isinstance(imported, Refusal):
                return imported.reason
            imports.append(imported)
        suggested = _describe(self, part, holder.codes)
        code = context.module.code_for_node(unparenthesized(template))
        body = [*sorted(set(imports)), f"return ({code})" if "\n" in code else f"return {code}"]
        alternatives = predicate_names(suggested, _enclosing_names(context, part), context.relpath)
        function = adapter_function(
            "predicate", suggested, holder.parameters, body, alternatives, context.top_level_names
        )
        # an argument keeps the parentheses a `yield` or a generator expression needs among others, and those
        # around code over several lines
        arguments = [
            cst.Arg(unparenthesized(n) if _single_line(context, n) and not isinstance(n, _PARENTHESIZED) else n)
            for n in holder.arguments
        ]
        call = cst.Call(
            cst.Attribute(cst.Name(context.seam.name), cst.Name(function.placeholder)),
            arguments,
            lpar=list(part.lpar),
            rpar=list(part.rpar),
        )
        return Route(part, call, function)

    def mla_part(self, atom: cst.BaseExpression, test: cst.BaseExpression) -> cst.BaseExpression:
        """The atom grown as far as a predicate can take it over without moving when anything runs."""
        part = atom
        while part is not test:
            parent = self._grown(part)
            if parent is None or self.order_hazard(parent) or self.runs_in_caller(parent):
                break  # route the smaller part in place: its neighbours keep their evaluation order
            part = parent
        return part

    def _grown(self, part: cst.BaseExpression) -> cst.BaseExpression | None:
        """The expression around ``part`` that is still one question about it (``mla_part``), if any."""
        parent = self._read_keyed_by(part)
        if parent is None:
            parent = self.context.parents.get(part)
            if isinstance(parent, (cst.ComparisonTarget, cst.Arg)):
                parent = self.context.parents[parent]
            if not isinstance(parent, _GROWS_THROUGH) and not self._is_probe(parent):
                return None
        return parent

    def _read_keyed_by(self, part: cst.BaseExpression) -> cst.Subscript | cst.Call | None:
        """The read an MLA string keys: the subscript it indexes (``cfg["q_lora_rank"]``) or the call it is an
        argument of (``cfg.get("multi_latent_attention", False)``, ``os.environ.get("USE_MLA")``). The string
        alone is a name; the read is the question, and a predicate making it performs the same lookup: the
        same ``__getitem__`` or ``get`` call, the same ``KeyError``, the same default."""
        if not isinstance(part, (cst.SimpleString, cst.ConcatenatedString)):
            return None
        parents = self.context.parents
        parent = parents.get(part)
        if isinstance(parent, cst.Index):
            element = parents.get(parent)
            subscript = parents.get(element)
            return subscript if isinstance(subscript, cst.Subscript) and subscript.value is not part else None
        if isinstance(parent, cst.Arg) and not parent.star and parent.value is part:
            call = parents.get(parent)
            return call if isinstance(call, cst.Call) else None
        return None

    def order_hazard(self, part: cst.BaseExpression) -> str | None:
        """Why a predicate for ``part`` would evaluate something in another order, another number of times
        or on other paths than the test does, if it would.

        A predicate's arguments (the holes) are evaluated before its body. That is the test's own order when
        every hole that can run code comes before any operation of the part (attribute or item access, an
        operator, a call), and no such hole sits where the test evaluates it only sometimes (a later
        operand of a chained comparison). Literals run no code, nor do plain names, unless they may be unbound
        (then reading them raises) or rebound by the code ahead of them (``read_earlier_may_differ``)."""
        events: list[str] = []
        try:
            self._evaluation(part, events, conditional=False)
        except _Hazard as hazard:
            return str(hazard)
        holes = [index for index, event in enumerate(events) if event == "hole"]
        if holes and "operation" in events[: holes[-1]]:
            return "an operand that runs code would be evaluated after the MLA read ahead of it"
        return None

    def _evaluation(self, node: cst.CSTNode, events: list[str], conditional: bool) -> None:
        """Append, in Python's evaluation order, ``hole`` for each hole of ``node`` that can run code and
        ``operation`` for each operation of its own; raise ``_Hazard`` where order cannot be kept."""
        if _is_hole(self, node):
            if (
                isinstance(node, cst.Name)
                and ("operation" in events or conditional)
                and self.context.read_earlier_may_differ(node)
            ):
                # reading it may raise, or find another value: in the test, after the MLA read (or not at all);
                # in a predicate, before it
                raise _Hazard(f"`{node.value}` may be unbound or rebound there, and a predicate would read it first")
            if not isinstance(node, (cst.Name, *_LITERALS)):
                if conditional:
                    raise _Hazard("an operand that runs code is evaluated only on some paths of the test")
                events.append("hole")
            return
        if isinstance(node, (cst.Name, cst.Ellipsis, *_LITERALS)):
            return
        if isinstance(node, cst.Attribute):
            self._evaluation(node.value, events, conditional)
        elif isinstance(node, cst.Subscript):
            self._evaluation(node.value, events, conditional)
            for element in node.slice:
                index = element.slice
                parts = [index.value] if isinstance(index, cst.Index) else [index.lower, index.upper, index.step]
                for value in parts:
                    if value is not None:
                        self._evaluation(value, events, conditional)
        elif isinstance(node, cst.BinaryOperation):
            self._evaluation(node.left, events, conditional)
            self._evaluation(node.right, events, conditional)
        elif isinstance(node, cst.UnaryOperation):
            self._evaluation(node.expression, events, conditional)
        elif isinstance(node, cst.Comparison):
            self._evaluation(node.left, events, conditional)
            for position, target in enumerate(node.comparisons):
                self._evaluation(target.comparator, events, conditional or position > 0)
                events.append("operation")
            return
        elif isinstance(node, cst.Call):
            self._evaluation(node.func, events, conditional)
            for argument in node.args:
                self._evaluation(argument.value, events, conditional)
        elif isinstance(node, (cst.Tuple, cst.List, cst.Set)):
            for element in node.elements:
                self._evaluation(element.value, events, conditional)
            return
        else:
            raise _Hazard(f"its MLA part holds {_WHAT.get(type(node), 'an expression')} a predicate cannot take over")
        events.append("operation")

    def runs_in_caller(self, part: cst.BaseExpression) -> str | None:
        """Why a predicate for ``part`` would mean something else, if a call in it reads the function calling
        it: ``eval("multi_latent_attention")`` looks the name up among the builder's variables, and would look
        it up among the adapter's."""
        for node in walk(part):
            if isinstance(node, cst.Call) and isinstance(node.func, cst.Name):
                name = node.func.value  # or the builtin it names: `from builtins import eval as ev`, `look = eval`
                if self.context.binding(node.func) != "builtin":
                    name = self.context.bindings.aliases.get(name, "")
                if name in _RUNS_IN_CALLER:
                    return (
                        f"`{node.func.value}(...)` reads the variables of the function calling it: a predicate "
                        "would run it in the adapter"
                    )
        return None

    def _is_probe(self, node: cst.CSTNode | None) -> bool:
        """``isinstance(x, MLAConfig)``, ``getattr(x, "q_lora_rank", None)``: one question about MLA."""
        if not isinstance(node, cst.Call) or not isinstance(node.func, cst.Name):
            return False
        return node.func.value in _PROBE_WORDS and self.context.binding(node.func) == "builtin"

    def is_mla(self, node: cst.CSTNode) -> bool:
        """Does ``node`` name MLA outside calls through the seam?"""
        return any(self._is_atom(child) for child in self._outside_seam_calls(node, in_order=False))

    def _outside_seam_calls(self, node: cst.CSTNode, in_order: bool = True):
        """``node``'s descendants outside calls into the seam: as for the linter, the seam decides what its
        arguments mean (``mla_seam.build(mla_down_proj_fusion)`` is no MLA knowledge of the builder). In
        LibCST's order of children (routes follow it), or, faster, in any order."""
        seam = self.aliases.mla.seam
        stack = [node]
        while stack:
            current = stack.pop()
            reference = current.func if isinstance(current, cst.Call) else current
            dotted = dotted_name(reference) if isinstance(reference, (cst.Name, cst.Attribute)) else None
            if dotted is not None and seam.names_seam(dotted):
                continue
            yield current
            stack.extend(current.children if in_order else children(current))

    def _is_builtin(self, node: cst.CSTNode) -> bool:
        """A builtin an ``import *`` could rebind: not ``None``/``True``/``False``, keywords that LibCST
        writes as names."""
        return (
            isinstance(node, cst.Name)
            and node.value not in _CONSTANTS
            and not self._is_parent_attr(node)
            and self.context.binding(node) == "builtin"
        )

    def _is_parent_attr(self, name: cst.Name) -> bool:
        parent = self.context.parents.get(name)
        return isinstance(parent, cst.Attribute) and parent.attr is name

    def kept_in_template(self, node: cst.CSTNode) -> bool:
        """Literals, builtins and MLA globals (imported by the adapter) stay in the predicate's body."""
        if isinstance(node, _LITERALS):
            return True
        if isinstance(node, cst.Name):
            binding = self.context.binding(node)
            if binding == "builtin" and node.value in INTROSPECTION:
                return False  # `super()`, `locals()`: evaluated in the builder, their answer is passed
            if binding == "builtin" and node.value not in _CONSTANTS:
                # a test's `mock.patch("pkg.model.getattr", create=True)` shadows it where the builder reads it,
                # not in the adapter: then the builder's is passed
                return self.context.builtin_shadowed(node.value) is None
            return node.value in _CONSTANTS or (binding == "global" and self.is_mla(node))
        return False


class _Holes(cst.CSTTransformer):
    """Replaces each maximal sub-expression that does not name MLA by a parameter.

    Each hole is its own parameter, evaluated once at the call as in the test: two identical-looking calls
    stay two calls. Only plain names may share one (reading a variable twice is reading it once), and not
    when the part rebinds a name with ``:=``."""

    def __init__(self, router: RoutePredicates, merge_names: bool) -> None:
        self.router = router
        self.merge_names = merge_names
        self.parameters: list[str] = []
        self.arguments: list[cst.BaseExpression] = []
        self.codes: dict[str, str] = {}  # hole code -> parameter name (the first hole with that code)
        self.replaced: set[cst.CSTNode] = set()

    def on_visit(self, node: cst.CSTNode) -> bool:
        if _is_hole(self.router, node):
            self.replaced.add(node)
            return False
        return True

    def on_leave(self, original: cst.CSTNode, updated: cst.CSTNode):
        if original not in self.replaced:
            return updated
        code = self.router.context.module.code_for_node(unparenthesized(original))
        if self.merge_names and isinstance(original, cst.Name) and code in self.codes:
            return cst.Name(self.codes[code])
        name = _hole_name(original)
        parameter = _fresh(_PREDICATE_PARAMETERS.get(name, name), set(self.parameters))
        self.codes.setdefault(code, parameter)
        self.parameters.append(parameter)
        self.arguments.append(original)
        return cst.Name(parameter)


def _is_hole(router: RoutePredicates, node: cst.CSTNode) -> bool:
    if not isinstance(node, cst.BaseExpression) or isinstance(node, cst.Name) and router._is_parent_attr(node):
        return False
    if isinstance(node, cst.Name) and router.context.binding(node) == "local":
        return True  # a variable of the builder, whatever its name, is passed in
    return not router.is_mla(node) and not router.kept_in_template(node) and not _has_only_kept(router, node)


def _single_line(context: FileContext, node: cst.CSTNode) -> bool:
    return "\n" not in context.module.code_for_node(node)


def _short(code: str) -> str:
    text = " ".join(code.split())
    return text if len(text) <= 60 else text[:57] + "..."


def _boolean_operands(test: cst.BaseExpression) -> list[cst.BaseExpression]:
    if isinstance(test, cst.BooleanOperation):
        return [*_boolean_operands(test.left), *_boolean_operands(test.right)]
    if isinstance(test, cst.UnaryOperation) and isinstance(test.operator, cst.Not):
        return _boolean_operands(test.expression)
    return [test]


def _has_only_kept(router: RoutePredicates, node: cst.CSTNode) -> bool:
    """A compound literal or builtin expression (``-1``, ``(1, 2)``) stays whole."""
    leaves = [n for n in walk(node) if isinstance(n, (cst.Name, *_LITERALS))]
    return bool(leaves) and all(router.kept_in_template(leaf) for leaf in leaves if not router._is_parent_attr(leaf))


def _global_names(router: RoutePredicates, part: cst.CSTNode) -> list[cst.Name]:
    return [
        n
        for n in walk(part)
        if isinstance(n, cst.Name)
        and not router._is_parent_attr(n)
        and router.context.binding(n) == "global"
        and router.is_mla(n)
    ]


def _hole_name(node: cst.CSTNode) -> str:
    while isinstance(node, (cst.Subscript, cst.Call)):
        node = node.value if isinstance(node, cst.Subscript) else node.func
    name = node.attr.value if isinstance(node, cst.Attribute) else node.value if isinstance(node, cst.Name) else "value"
    return name.strip("_") if name.startswith("__") and name.endswith("__") else name  # `__name__`: `name`


def _fresh(name: str, taken: set[str]) -> str:
    if hasattr(builtins, name):
        name += "_"
    candidate, number = name, 2
    while candidate in taken:
        candidate, number = f"{name}_{number}", number + 1
    return candidate


def predicate_names(suggested: str, scope: list[str], relpath: str) -> list[str]:
    """More qualified names for a predicate, for when another predicate or a builder's own name holds
    ``suggested``: where it decides (``multi_latent_attention_in_get_gpt_layer_spec``), with the enclosing
    classes (``..._in_gpt_model_forward``), then by its module alone (true of every function of the module
    that asks for the same predicate)."""
    words = [snake_case(name) for name in scope]
    names = [f"{suggested}_in_{words[-1]}"] if words else []
    if len(words) > 1:
        names.append(f"{suggested}_in_{'_'.join(words)}")
    return [*names, f"{suggested}_in_{module_word(relpath)}"]


def _enclosing_names(context: FileContext, node: cst.CSTNode) -> list[str]:
    """The functions and classes around ``node``, outermost first."""
    names = []
    current = context.parents.get(node)
    while current is not None:
        if isinstance(current, (cst.FunctionDef, cst.ClassDef)):
            names.append(current.name.value)
        current = context.parents.get(current)
    return names[::-1]


def _describe(router: RoutePredicates, node: cst.CSTNode, holes: dict[str, str]) -> str:
    """Words for a predicate's name, read off the MLA part of the test."""
    module = router.context.module
    if not router.is_mla(node):
        if isinstance(node, cst.Name) and node.value in _CONSTANTS:
            return node.value.lower()
        if isinstance(node, (cst.SimpleString, cst.Integer)):  # `mla_quant == "nvfp4"`: the value compared with
            return str(node.evaluated_value if isinstance(node, cst.SimpleString) else node.value)
        return (
            holes.get(module.code_for_node(unparenthesized(node)), "") if isinstance(node, cst.BaseExpression) else ""
        )
    if isinstance(node, cst.Attribute):
        return (
            node.attr.value
            if router.context.names.is_attribute(node.attr.value)
            else _describe(router, node.value, holes)
        )
    if isinstance(node, cst.Name):
        return snake_case(node.value)
    if isinstance(node, cst.SimpleString):
        return str(node.evaluated_value)
    if isinstance(node, cst.Comparison):
        words = [_describe(router, node.left, holes)]
        for target in node.comparisons:
            words += [_OPERATOR_WORDS.get(type(target.operator), "cmp"), _describe(router, target.comparator, holes)]
        return "_".join(word for word in words if word)
    if isinstance(node, cst.BinaryOperation):
        words = [_describe(router, node.left, holes), _ARITHMETIC_WORDS.get(type(node.operator), "op")]
        return "_".join(word for word in [*words, _describe(router, node.right, holes)] if word)
    if isinstance(node, cst.Call) and isinstance(node.func, cst.Name):
        mla_words = [_describe(router, arg.value, holes) for arg in node.args if router.is_mla(arg.value)]
        if node.func.value in ("hasattr", "getattr") and len(node.args) > 1 and not router.is_mla(node.args[1].value):
            # `hasattr(mla, "w_kc")`: the attribute asked for says what is probed (`has_mla_w_kc`), not the object only
            mla_words.append(_describe(router, node.args[1].value, holes))
        return "_".join(word for word in [_PROBE_WORDS.get(node.func.value, node.func.value), *mla_words] if word)
    return "_".join(_describe(router, child, holes) for child in node.children if router.is_mla(child))
