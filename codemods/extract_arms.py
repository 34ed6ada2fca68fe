"""MLA-only arms of `if` statements -> functions of the adapter module."""

from __future__ import annotations

import ast
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import libcst as cst

from seamfix.codemods.adapter_function import AdapterFunction, adapter_function
from seamfix.codemods.bindings import parameters_of
from seamfix.codemods.context import PLACEHOLDER_PREFIX
from seamfix.codemods.dataflow import block_flow
from seamfix.codemods.nodes import finding_span, module_word, snake_case
from seamfix.codemods.route_predicates import RoutePredicates
from seamfix.findings import Finding, FindingKind

ARM_KEPT = "MLA arm left in place"


@dataclass
class Move:
    """Replace the arm ``suite`` by ``replacement``, which calls ``function``."""

    suite: cst.BaseSuite
    replacement: cst.BaseSuite
    function: AdapterFunction


class ExtractArms:
    """Plans moving the arm of an MLA ``if`` that runs only under MLA into an adapter function.

    The arm runs only under MLA when the test is the MLA part itself or an ``and`` of it (the ``if`` arm),
    or its negation (the ``else`` arm) — a comparison such as ``cfg.q_lora_rank is None`` says nothing
    about MLA being on. Only an arm that names MLA (classes, fields) moves: the point is to take MLA
    knowledge out of the builder. Its parameters, results and returns come from the data flow; an arm whose
    meaning depends on its place (``yield``, ``break`` out of an outer loop, ...) stays, and says why.
    """

    def __init__(self, router: RoutePredicates) -> None:
        self.router = router
        self.context = router.context
        self._parsing = router.context.module.config_for_parsing  # built anew on each access
        self._templates: dict[str, cst.SimpleStatementLine] = {}
        self._moving: set[int] = set()  # the ids of the ``ast`` nodes of the arms planned to move so far

    def plan(self, finding: Finding) -> Move | str | None:
        """The move for ``finding``'s arm; why it cannot move; or None when there is no MLA-only arm."""
        context = self.context
        if finding.kind != FindingKind.IF_TEST or finding.atom is None:
            return None
        test = context.by_span.get(finding_span(*finding[1:5]))
        atom = context.by_span.get(finding_span(*finding.atom))
        statement = context.parents.get(test)
        if atom is None or not isinstance(statement, cst.If):
            return None
        suite = self._mla_only_arm(statement, self.router.mla_part(atom, test))
        if suite is None or not self.router.is_mla(suite):
            return None
        located = context.located_if(statement)
        function = context.enclosing_function(located)
        if function is None:
            return f"{ARM_KEPT}: it is at module or class level, not in a function"
        block = located.body if suite is statement.body else located.orelse
        flow = block_flow(context.bindings, function, block, self._moving)
        if flow.blocker:
            return f"{ARM_KEPT}: {flow.blocker}"
        if context.has_star_import and _reads_a_module_name(context, block):
            return f"{ARM_KEPT}: the module has an `import *`, which may bind a module-level or builtin name it reads"
        if flow.unbound:
            return (
                f"{ARM_KEPT}: it reads `{flow.unbound[0]}`, which neither the module binds nor a builtin is: bound at "
                "run time (importing a submodule binds its name in the package's `__init__.py`), the adapter would "
                "not find it"
            )
        for name in flow.builtins:
            if shadowed := context.builtin_shadowed(name):
                return f"{ARM_KEPT}: {shadowed.reason}"
        body: list[cst.BaseStatement | str] = []
        read_elsewhere = _module_names_read_outside(context, block)
        for name in flow.globals:
            is_mla = context.names.is_name(name)
            shared = context.shared_global(name)
            if isinstance(shared, str) and (is_mla or name in read_elsewhere):
                body.append(shared)
            elif is_mla or name in context.declared_global:
                return f"{ARM_KEPT}: {getattr(shared, 'reason', 'it reads an MLA name the adapter cannot share')}"
            elif unpassable := context.passed_global(name, function):
                return f"{ARM_KEPT}: {unpassable.reason}"
            else:
                # the builder's binding as it is when the arm runs (and its import stays in use there)
                flow.parameters.append(name)
        body += _statements(suite)
        if flow.results:
            body.append(f"return {', '.join(flow.results)}")
        parameters = _in_signature_order(flow.parameters, function)
        built = flow.results or [_returned_name(suite)]
        name, *alternatives = arm_names(finding.scope, [n for n in built if n], context.relpath)
        adapter = adapter_function("arm", name, parameters, body, alternatives, context.top_level_names)
        call = f"{context.seam.name}.{PLACEHOLDER_PREFIX}({', '.join(parameters)})"
        if flow.returns:
            call = f"return {call}"
        elif flow.results:
            call = f"{', '.join(flow.results)} = {call}"
        line = self._call_line(call, adapter.placeholder)
        if isinstance(suite, cst.SimpleStatementSuite):
            replacement = suite.with_changes(body=line.body)
        else:
            replacement = suite.with_changes(body=[line], footer=suite.footer)
        self._moving.update(id(node) for statement in block for node in ast.walk(statement))
        return Move(suite, replacement, adapter)

    def _call_line(self, template: str, placeholder: str) -> cst.SimpleStatementLine:
        """The statement ``template`` (``[return |x, y = ]seam.<PLACEHOLDER_PREFIX>(...)``) calling
        ``placeholder``: each template is parsed once, as builders repeat the same call shape."""
        parsed = self._templates.get(template)
        if parsed is None:
            parsed = self._templates[template] = cst.parse_statement(template, config=self._parsing)
        statement = parsed.body[0]
        call = statement.value
        call = call.with_changes(func=call.func.with_changes(attr=cst.Name(placeholder)))
        return parsed.with_changes(body=[statement.with_changes(value=call)])

    def _mla_only_arm(self, statement: cst.If, part: cst.BaseExpression) -> cst.BaseSuite | None:
        if isinstance(part, cst.Comparison):
            return None
        test = statement.test
        if test is part or isinstance(test, cst.BooleanOperation) and _and_operand(test, part):
            return statement.body
        negated = isinstance(test, cst.UnaryOperation) and isinstance(test.operator, cst.Not)
        if negated and test.expression is part and isinstance(statement.orelse, cst.Else):
            return statement.orelse.body
        return None


def arm_names(scope: str, built: Sequence[str], relpath: str) -> list[str]:
    """Names for the adapter function of an arm in ``scope`` (``Class.method``) of the module at ``relpath``,
    most readable first: what the builder builds under MLA (``mla_layer_spec`` for ``get_layer_spec``), then
    qualified by the enclosing classes and functions (``mla_gpt_model_rotary_dim``), by what the arm
    assigns or builds (``mla_rotary_dim_dim_and_scale``; ``mla_self_attention`` for ``return
    MLASelfAttention(...)``), and by its module (``mla_training_num_floating_point_operations``)."""
    parts = [snake_case(part) for part in scope.split(".") if part and not part.startswith("<")] or ["arm"]
    function = parts[-1].removeprefix("get_") or parts[-1]

    def named(*words: str) -> str:
        text = "_".join(words)
        return text if text.startswith("mla") else f"mla_{text}"

    names = [named(function)]
    if parts[:-1]:
        names.append(named(*parts[:-1], function))
    what = "_and_".join(snake_case(name) for name in built)
    if what:  # an MLA class built says it all (`mla_self_attention`)
        names.append(what if what.startswith("mla") else named(*parts[:-1], function, what))
    names.append(named(module_word(relpath), *parts[:-1], function))
    return names


def _returned_name(suite: cst.BaseSuite) -> str | None:
    """The class or function called, or the name returned, by the last statement of ``suite``."""
    statements = _statements(suite)
    last = statements[-1].body[-1] if statements and isinstance(statements[-1], cst.SimpleStatementLine) else None
    value = last.value if isinstance(last, cst.Return) else None
    if isinstance(value, cst.Call):
        value = value.func
    if isinstance(value, cst.Attribute):
        value = value.attr
    return value.value if isinstance(value, cst.Name) else None


def _in_signature_order(names: list[str], function: ast.FunctionDef | ast.AsyncFunctionDef) -> list[str]:
    """``names`` with the builder function's own parameters first, in its signature's order (``self``
    first), then the other names as they came."""
    signature = [arg.arg for arg in parameters_of(function.args)]
    return [name for name in signature if name in names] + [name for name in names if name not in signature]


def _reads_a_module_name(context, block: list[ast.stmt]) -> bool:
    """Does ``block`` read a module-level or builtin name, one an ``import *`` may bind? An arm reading only
    its function's variables means the same in the adapter."""
    bindings = context.bindings
    for statement in block:
        for node in ast.walk(statement):
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
                owner = bindings.owner(node)
                if owner is None or owner is bindings.module:
                    return True
    return False


def _module_names_read_outside(context, block: list) -> set[str]:
    """Module-level names the module reads outside ``block``."""
    counts, by_node = context.module_reads
    inside = Counter(by_node[id(node)] for statement in block for node in ast.walk(statement) if id(node) in by_node)
    return {name for name, count in counts.items() if count > inside[name]}


def _and_operand(test: cst.BaseExpression, part: cst.BaseExpression) -> bool:
    if test is part:
        return True
    if isinstance(test, cst.BooleanOperation) and isinstance(test.operator, cst.And):
        return _and_operand(test.left, part) or _and_operand(test.right, part)
    return False


def _statements(suite: cst.BaseSuite) -> list[cst.BaseStatement]:
    if isinstance(suite, cst.SimpleStatementSuite):
        return [cst.SimpleStatementLine([statement]) for statement in suite.body]
    return list(suite.body)
