"""MLA-only arms of `if` statements -> functions of the adapter module."""

from __future__ import annotations

import ast
from collections import Counter
from dataclasses import dataclass

import libcst as cst

from seamfix.codemods.adapter_function import AdapterFunction, adapter_function
from seamfix.codemods.context import PLACEHOLDER_PREFIX
from seamfix.codemods.dataflow import block_flow
from seamfix.codemods.nodes import finding_span, snake_case
from seamfix.codemods.route_predicates import RoutePredicates
from seamfix.findings import Finding

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

    def plan(self, finding: Finding) -> Move | str | None:
        """The move for ``finding``'s arm; why it cannot move; or None when there is no MLA-only arm."""
        context = self.context
        if finding.kind != "if-test" or finding.atom is None:
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
        flow = block_flow(context.bindings, function, block)
        if flow.blocker:
            return f"{ARM_KEPT}: {flow.blocker}"
        if context.has_star_import:
            return f"{ARM_KEPT}: the module has an `import *`, which may bind any name it reads"
        body: list[cst.BaseStatement | str] = []
        read_elsewhere = _module_names_read_outside(context, block)
        for name in flow.globals:
            is_mla = context.names.is_name(name)
            shared = context.shared_global(name)
            if isinstance(shared, str) and (is_mla or name in read_elsewhere):
                body.append(shared)
            elif is_mla or name in context.declared_global:
                return f"{ARM_KEPT}: {getattr(shared, 'reason', 'it reads an MLA name the adapter cannot share')}"
            else:
                # the builder's binding as it is when the arm runs (and its import stays in use there)
                flow.parameters.append(name)
        body += _statements(suite)
        if flow.results:
            body.append(f"return {', '.join(flow.results)}")
        name = "_".join(snake_case(part) for part in finding.scope.split(".")) or "mla_arm"
        adapter = adapter_function("arm", name, flow.parameters, body)
        call = f"{context.seam.name}.{PLACEHOLDER_PREFIX}({', '.join(flow.parameters)})"
        if flow.returns:
            call = f"return {call}"
        elif flow.results:
            call = f"{', '.join(flow.results)} = {call}"
        line = self._call_line(call, adapter.placeholder)
        if isinstance(suite, cst.SimpleStatementSuite):
            replacement = suite.with_changes(body=line.body)
        else:
            replacement = suite.with_changes(body=[line], footer=suite.footer)
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
