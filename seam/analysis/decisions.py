"""The decisions on MLA in one file: every place where control flow or a chosen value depends on MLA, with
its kind (``FindingKind``), the node to point at and the MLA sub-expression (its atom).

The one answer lint reports (SEAM001), ``seamfix apply`` rewrites (it acts on these sites and nothing else)
and ``seamfix audit`` classifies changed lines by. What counts as a decision is documented on the rule
(``seamfix rule SEAM001``)."""

from __future__ import annotations

import ast

from seamfix.analysis.expressions import MLA_NAME, MLAExpressions, is_condition, is_slicing, probed_argument
from seamfix.analysis.flow import Aliases, MLAFlow, parameters, without
from seamfix.analysis.seam_bindings import dotted_name
from seamfix.analysis.source import Hit, SourceFile
from seamfix.findings import FindingKind
from seamfix.vocabulary import Vocabulary


def decision_sites(source: SourceFile) -> list[Hit]:
    """Every decision on MLA in ``source``, in the order the flow analysis meets them."""
    finder = _DecisionFinder(source)
    finder.run()
    return finder.hits


class _DecisionFinder(MLAFlow):
    """Reports every decision on MLA, and never a sub-expression of a reported one, with the aliases
    that reach each statement (``MLAFlow``)."""

    def __init__(self, source: SourceFile) -> None:
        super().__init__(source)
        self.hits: list[Hit] = []
        self.probing: frozenset[type] = frozenset()  # what the handlers of the `try` around us catch
        self.rendering = False  # inside a value only rendered as text: an f-string, a log or print call

    def hit(self, node: ast.AST, message: str, kind: FindingKind, atom: ast.AST) -> None:
        self.hits.append(Hit(node, message, kind, atom))

    # Statements (MLAFlow calls these with the aliases that reach them)

    def check_statement(self, node: ast.stmt, aliases: Aliases) -> None:
        kind = type(node)
        if kind is ast.If or kind is ast.While:
            keyword = kind.__name__.lower()
            self.decision(node.test, aliases, f"`{keyword}` test", FindingKind(f"{keyword}-test"))
        elif kind is ast.Assert:
            self.decision(node.test, aliases, "`assert` test", FindingKind.ASSERT_TEST)
            if node.msg is not None:
                self.visit(node.msg, aliases)
        elif kind is ast.Match:
            self.decision(node.subject, aliases, "`match` subject", FindingKind.MATCH_SUBJECT)
        elif kind in _DEFINITIONS:
            self.check_definition(node, aliases)
        elif kind is ast.AugAssign and isinstance(node.op, _ARITHMETIC):
            self.visit(node.target, aliases)
            self.arithmetic_operand(node.value, aliases)
        else:
            for field, value in ast.iter_fields(node):
                if field not in _BLOCK_FIELDS and not (field == "annotation" and kind is ast.AnnAssign):
                    for part in value if isinstance(value, list) else [value]:
                        if isinstance(part, ast.AST):
                            self.visit(part, aliases)

    def check_definition(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef, aliases: Aliases) -> None:
        """Decorators (``@register(MLASelfAttention)`` registers the function for MLA), defaults and bases."""
        for decorator in node.decorator_list:
            atom = self.decorator_key(decorator, aliases) or self.dispatch_annotation(node, decorator)
            if atom is None:
                self.visit(decorator, aliases)
            else:
                registrar = decorator.func if isinstance(decorator, ast.Call) else decorator
                message = f"decorator `{_short(registrar)}` is keyed on MLA (`{_short(atom)}`)"
                self.hit(decorator, message, FindingKind.DECORATOR_ARGUMENT, atom)
        if isinstance(node, ast.ClassDef):
            parts = [*node.bases, *node.keywords]
        else:
            parts = [*node.args.defaults, *(d for d in node.args.kw_defaults if d is not None)]
        for part in parts:
            self.visit(part, aliases)

    def decorator_key(self, decorator: ast.expr, aliases: Aliases) -> ast.AST | None:
        """The MLA key of a registering decorator: a positional argument that is an MLA class
        (``@register(MLASelfAttention)``), an MLA string (``@register("mla")``) or a condition on MLA
        (``@skipif(not HAVE_FLASH_MLA)``). Settings passed to a decorator (``@jit(pass_configs=MLA_CONFIGS)``)
        and the name of a config field (``@parametrize("multi_latent_attention", [True, False])`` names a
        parameter) are not keys."""
        if not isinstance(decorator, ast.Call) or self.mla.seam.refers_to_seam(decorator.func):
            return None
        names = self.mla.names
        for argument in decorator.args:
            dotted = dotted_name(argument)
            if dotted is not None and names.is_class(dotted.rsplit(".", 1)[-1]):
                return argument
            if _is_mla_key(self.mla, argument) and not _names_field(names.vocabulary, argument.value):
                return argument
            if is_condition(argument):
                atom = self.mla.atom(argument, aliases)
                if atom is not None:
                    return atom
        return None

    def dispatch_annotation(self, node: ast.stmt, decorator: ast.expr) -> ast.AST | None:
        """The MLA key of a bare ``@<dispatcher>.register`` (``functools.singledispatch``): the type registered is
        the annotation of the function's first annotated parameter, so ``def _(module: MLASelfAttention, sd):``
        under it registers for MLA as ``@<dispatcher>.register(MLASelfAttention)`` does."""
        registers = isinstance(decorator, ast.Attribute) and decorator.attr == "register"
        if isinstance(node, ast.ClassDef) or not registers:
            return None
        parameters = [*node.args.posonlyargs, *node.args.args]
        annotation = next((p.annotation for p in parameters if p.annotation is not None), None)
        return None if annotation is None else self.mla.vocabulary_atom(annotation)

    def check_case(self, case: ast.match_case, aliases: Aliases) -> None:
        """A pattern that matches an MLA class or value, or reads an MLA field or key (``case
        TransformerConfig(multi_latent_attention=True)``, ``case {"kv_lora_rank": rank}``: the case is taken
        only where the field is there, and as it is there), then the guard."""
        for pattern in ast.walk(case.pattern):
            found = self.pattern_atom(pattern, aliases)
            if found is not None:
                what, atom = found
                self.hit(pattern, f"`case` pattern {what}", FindingKind.CASE_PATTERN, atom)
                break
        if case.guard is not None:
            self.decision(case.guard, aliases, "`case` guard", FindingKind.CASE_GUARD)

    def pattern_atom(self, pattern: ast.pattern, aliases: Aliases) -> tuple[str, ast.AST] | None:
        """What makes one pattern (not its sub-patterns) match on MLA, with its MLA part."""
        if isinstance(pattern, ast.MatchClass):
            if self.mla.atom(pattern.cls) is not None:
                return f"matches an MLA class (`{_short(pattern.cls)}`)", pattern.cls
            for attribute in pattern.kwd_attrs:
                if self.mla.names.is_attribute(attribute):
                    return f"reads an MLA field (`{attribute}`)", pattern
        elif isinstance(pattern, ast.MatchMapping):
            for key in pattern.keys:
                if self.mla.atom(key, aliases) is not None:
                    return f"reads an MLA key (`{_short(key)}`)", key
        elif isinstance(pattern, ast.MatchValue) and self.mla.atom(pattern.value, aliases) is not None:
            return f"matches an MLA value (`{_short(pattern.value)}`)", pattern.value
        return None

    def try_body(self, node: ast.Try, aliases: Aliases) -> Aliases:
        """Inside ``try: rank = args.q_lora_rank`` / ``except AttributeError:`` the read is a probe."""
        outer = self.probing
        self.probing = outer | {e for h in node.handlers for e in _caught(h.type)}
        try:
            return super().try_body(node, aliases)
        finally:
            self.probing = outer

    # Expressions

    def visit(self, node: ast.AST, aliases: Aliases) -> None:
        if not aliases and not self.source.may_mention_mla(node):
            return
        handler = getattr(self, "visit_" + type(node).__name__, None)
        if handler is not None:
            handler(node, aliases)
        else:
            self.visit_children(node, aliases)

    def visit_children(self, node: ast.AST, aliases: Aliases) -> None:
        for child in ast.iter_child_nodes(node):
            self.visit(child, aliases)

    def decision(self, test: ast.expr, aliases: Aliases, what: str, kind: FindingKind) -> None:
        atom = self.mla.atom(test, aliases)
        if atom is None:
            self.visit(test, aliases)
        else:
            self.hit(test, f"{what} depends on MLA (`{_short(atom)}`)", kind, atom)

    def visit_Lambda(self, node: ast.Lambda, aliases: Aliases) -> None:
        self.visit(node.args, aliases)
        self.visit(node.body, without(aliases, parameters(node)))

    def visit_IfExp(self, node: ast.IfExp, aliases: Aliases) -> None:
        self.decision(node.test, aliases, "conditional expression", FindingKind.IFEXP_TEST)
        self.visit(node.body, aliases)
        self.visit(node.orelse, aliases)

    def visit_ListComp(self, node: ast.ListComp | ast.SetComp | ast.GeneratorExp, aliases: Aliases) -> None:
        for generator in node.generators:
            self.visit(generator.iter, aliases)
            carries = self.mla.taint(generator.iter, aliases) is not None
            names = self.iterated_names(generator.target, generator.iter, aliases)
            aliases = self.bind(generator.target, carries, aliases) | names
            for condition in generator.ifs:
                self.decision(condition, aliases, "comprehension filter", FindingKind.COMPREHENSION_FILTER)
        for part in (node.key, node.value) if isinstance(node, ast.DictComp) else (node.elt,):
            self.visit(part, aliases)

    visit_SetComp = visit_GeneratorExp = visit_DictComp = visit_ListComp

    def visit_BoolOp(self, node: ast.BoolOp, aliases: Aliases) -> None:
        """``x = cfg.multi_latent_attention and MLAAttention or Attention`` selects a value. An ``and``/``or``
        of flags and conditions only (``cfg.cache_mla_latents and ctx.is_decode_only()``) makes a flag:
        where that is tested, the test is the decision."""
        operator = "and" if isinstance(node.op, ast.And) else "or"
        selects = any(_is_value(operand) for operand in node.values) or _is_size(node.values[-1])
        for operand in node.values[:-1]:
            atom = self.mla.taint(operand, aliases) if selects else None
            if atom is not None:
                message = f"`{operator}` selects a value on MLA (`{_short(atom)}`)"
                self.hit(operand, message, FindingKind.BOOLOP_OPERAND, atom)
            else:
                self.visit(operand, aliases)
        self.visit(node.values[-1], aliases)

    def visit_Subscript(self, node: ast.Subscript, aliases: Aliases) -> None:
        """``table[cfg.multi_latent_attention]`` dispatches; a store, a slice (``kv[..., : kv_lora_rank]``),
        index arithmetic and a constant key (``hf["kv_lora_rank"]``, a read) do not."""
        key = node.slice
        if isinstance(node.ctx, ast.Load) and self.table_lookup(node, node.value, key):
            return
        self.visit(node.value, aliases)
        atom = None
        if isinstance(node.ctx, ast.Load) and not is_slicing(key) and not self.names_types(key, aliases):
            atom = self.mla.taint(key, aliases)
        if atom is not None:
            self.hit(key, f"subscript dispatches on MLA (`{_short(atom)}`)", FindingKind.SUBSCRIPT_SLICE, atom)
        elif (
            self.probing
            and _KEY_ERRORS & self.probing
            and isinstance(node.ctx, ast.Load)
            and _is_mla_key(self.mla, key)
        ):
            self.try_probe(node, "KeyError")
        else:
            self.visit(key, aliases)

    def table_lookup(self, lookup: ast.expr, table: ast.expr, key: ast.expr) -> bool:
        """Reports ``{"mla": MLAAttention, "mha": Attention}[config.attention_type]`` (or ``.get(...)``), and says
        whether it did: a computed key looked up in a literal table with an MLA key chooses that entry as
        ``MLAAttention if config.attention_type == "mla" else ...`` would. A named table (``BACKENDS[name]``) is a
        registry whose keys are not followed; a constant key reads one entry."""
        if type(table) is not ast.Dict or isinstance(key, ast.Constant):
            return False
        atom = next((k for k in table.keys if k is not None and _is_mla_key(self.mla, k)), None)
        if atom is not None:
            message = f"lookup in a table keyed by MLA dispatches (`{_short(atom)}`)"
            self.hit(lookup, message, FindingKind.SUBSCRIPT_SLICE, atom)
        return atom is not None

    def names_types(self, key: ast.expr, aliases: Aliases) -> bool:
        """A constant key: a literal, or types (``Union[TransformerConfig, MLATransformerConfig]``,
        ``Provider[MLATransformerConfig]``, ``SPECS[MLASelfAttention]``): classes by their CapWords name,
        builtins, generics and ``|`` of those. A name holding an MLA value (``Attention = MLASelfAttention if
        ... else SelfAttention``) is a value; one bound to an MLA class itself (``Latent = MLASelfAttention``) is
        that class."""
        kind = type(key)
        if kind is ast.Constant:
            return True
        if kind is ast.Tuple or kind is ast.List:
            return all(self.names_types(element, aliases) for element in key.elts)
        if kind is ast.Subscript:
            return self.names_types(key.value, aliases) and self.names_types(key.slice, aliases)
        if kind is ast.BinOp:
            return isinstance(key.op, ast.BitOr) and all(self.names_types(s, aliases) for s in (key.left, key.right))
        name = dotted_name(key)
        if name is None or (name in aliases and MLA_NAME + name not in aliases):
            return False
        last = name.rsplit(".", 1)[-1]
        return last in _BUILTIN_TYPES or (last[:1].isupper() and any(c.islower() for c in last))

    def visit_Attribute(self, node: ast.Attribute, aliases: Aliases) -> None:
        if (
            self.probing
            and "AttributeError" in self.probing
            and isinstance(node.ctx, ast.Load)
            and self.mla.names.is_attribute(node.attr)
            and not self.mla.seam.refers_to_seam(node)
        ):
            self.try_probe(node, "AttributeError")
        else:
            self.visit(node.value, aliases)

    def try_probe(self, node: ast.expr, error: str) -> None:
        message = f"`try` probes MLA (`{_short(node)}`): its `except {error}` decides what happens without it"
        self.hit(node, message, FindingKind.TRY_PROBE, node)

    def visit_Call(self, node: ast.Call, aliases: Aliases) -> None:
        probed = probed_argument(node)
        atom = self.mla.probed_atom(probed, aliases) if probed is not None else None
        if atom is not None and not self.rendering:
            self.hit(node, f"`{_short(node.func)}` probes MLA (`{_short(atom)}`)", FindingKind.PROBE, atom)
            return
        method = node.func
        if probed is not None and isinstance(method, ast.Attribute) and self.table_lookup(node, method.value, probed):
            return
        function = dotted_name(node.func)
        if function in _FILTERS and node.args:
            self.filter_predicate(node.args[0], aliases)
            arguments = [*node.args[1:], *node.keywords]
        else:
            self.visit(node.func, aliases)
            arguments = [*node.args, *node.keywords]
        renders = _renders(node.func) or (self.rendering and function in _TEXT_CONVERSIONS)
        self.rendered(arguments, aliases, renders or (atom is not None and self.rendering))

    def rendered(self, parts: list[ast.AST], aliases: Aliases, rendering: bool = True) -> None:
        """Visits ``parts`` as values only rendered as text (or not): a probe there displays a field, it
        decides nothing (``print(f"rank={getattr(args, 'q_lora_rank', None)}")``); a conditional expression or
        a dispatch there still chooses what is shown."""
        outer, self.rendering = self.rendering, rendering
        try:
            for part in parts:
                self.visit(part, aliases)
        finally:
            self.rendering = outer

    def visit_Compare(self, node: ast.Compare, aliases: Aliases) -> None:
        """``"kv_lora_rank" in hf_config`` asks whether an MLA field is there, as ``hasattr`` and ``.get`` do: a
        probe wherever it stands (a flag assigned from it included), unless only shown. A value looked up in a
        list (``"mla_up_proj" in config.recompute_modules``) makes a flag, as any condition does."""
        key = node.left
        if (
            not self.rendering
            and len(node.ops) == 1
            and isinstance(node.ops[0], (ast.In, ast.NotIn))
            and isinstance(key, ast.Constant)
            and isinstance(key.value, str)
            and _names_field(self.mla.names.vocabulary, key.value)
            and not key.value.startswith("-")
        ):
            self.hit(node, f"`in` probes MLA (`{_short(key)}`)", FindingKind.PROBE, key)
        else:
            self.visit_children(node, aliases)

    def visit_JoinedStr(self, node: ast.JoinedStr, aliases: Aliases) -> None:
        self.rendered(node.values, aliases)

    def visit_BinOp(self, node: ast.BinOp, aliases: Aliases) -> None:
        """``n_heads * (1 + cfg.multi_latent_attention)`` counts a bool: the value depends on MLA as ``2 if
        ... else 1`` would. Arithmetic on sizes (``n * cfg.kv_lora_rank``) is none; ``"%d" % ...`` formats."""
        if _is_text(node.left) and isinstance(node.op, ast.Mod):
            self.visit(node.left, aliases)
            self.rendered([node.right], aliases)
        elif isinstance(node.op, _ARITHMETIC) and not _is_text(node.left):
            self.arithmetic_operand(node.left, aliases)
            self.arithmetic_operand(node.right, aliases)
        else:
            self.visit_children(node, aliases)

    def arithmetic_operand(self, operand: ast.expr, aliases: Aliases) -> None:
        """An operand of arithmetic that is an MLA switch (a bool field, converted or not) or a test of one
        (``(cfg.q_lora_rank is not None)``, ``(not cfg.multi_latent_attention)``) is a decision. An ordering
        against an MLA size (``(pos < cfg.kv_lora_rank) * 1.0``) is an elementwise mask more often than a flag."""
        value = operand
        while (
            isinstance(value, ast.Call)
            and isinstance(value.func, ast.Name)
            and value.func.id in _NUMBER_CONVERSIONS
            and len(value.args) == 1
            and not value.keywords
        ):
            value = value.args[0]
        atom = None
        if (isinstance(value, ast.Compare) and all(isinstance(op, (ast.Is, ast.IsNot)) for op in value.ops)) or (
            isinstance(value, ast.UnaryOp) and isinstance(value.op, ast.Not)
        ):
            atom = self.mla.atom(value, aliases)
        elif isinstance(value, ast.Name) and self.mla.names.is_switch(value.id):
            atom = value
        elif isinstance(value, ast.Attribute) and self.mla.names.is_switch(value.attr):
            atom = None if self.mla.seam.refers_to_seam(value) else value
        if atom is None:
            self.visit(operand, aliases)
        else:
            message = f"arithmetic on an MLA switch chooses a value (`{_short(atom)}`)"
            self.hit(operand, message, FindingKind.ARITHMETIC_OPERAND, atom)

    def filter_predicate(self, predicate: ast.expr, aliases: Aliases) -> None:
        """``filter(lambda c: c.multi_latent_attention, configs)`` keeps the MLA ones: a decision."""
        what = "`filter` predicate"
        if isinstance(predicate, ast.Lambda):
            self.visit(predicate.args, aliases)
            self.decision(predicate.body, without(aliases, parameters(predicate)), what, FindingKind.FILTER_PREDICATE)
            return
        atom = self.mla.atom(predicate, aliases) or self.mla.reader_atom(predicate, aliases)
        if atom is None:
            self.visit(predicate, aliases)
        else:
            self.hit(predicate, f"{what} depends on MLA (`{_short(atom)}`)", FindingKind.FILTER_PREDICATE, atom)


_DEFINITIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
_BLOCK_FIELDS = frozenset({"body", "orelse", "finalbody", "handlers", "cases"})
_FILTERS = frozenset(
    f"{module}{name}" for module in ("", "itertools.") for name in ("filterfalse", "takewhile", "dropwhile")
) | {"filter"}
_LITERALS = (ast.List, ast.Tuple, ast.Set, ast.Dict, ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)
_KEY_ERRORS = frozenset({"KeyError", "LookupError"})
_ARITHMETIC = (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.FloorDiv, ast.Mod, ast.Pow, ast.MatMult, ast.LShift, ast.RShift)
_NUMBER_CONVERSIONS = frozenset({"int", "float", "bool"})
# Calls whose arguments are only shown: printed, formatted (`"...".format(...)`), or logged and warned about
# through a logger (`logger.info`, `logging.warning`, `warnings.warn`; not `math.log`).
_RENDERING_FUNCTIONS = frozenset({"print", "print_rank_0", "print_rank_last", "log_single_rank", "format"})
_LOGGING_METHODS = frozenset({"debug", "info", "warning", "warn", "error", "critical", "exception", "log"})
_TEXT_CONVERSIONS = frozenset({"str", "repr"})  # rendered where what they convert is (`print("r=" + str(...))`)
_BUILTIN_TYPES = frozenset({"str", "int", "float", "bool", "bytes", "type", "object", "list", "dict", "tuple", "set"})
# The last word of a name that holds a size (`cfg.hidden_size`, `kv_channels`): `or` falling back to one selects
# a value (`cfg.q_lora_rank or cfg.hidden_size`), as `or 0` does.
_SIZE_WORDS = frozenset({"size", "sizes", "dim", "dims", "rank", "channels", "heads", "groups", "width", "length"})


def _is_value(operand: ast.expr) -> bool:
    """An operand that is a value rather than a truth value: a number or string, a literal collection, a
    lambda, a class (a CapWords name) or an instance of one, or an ``and``/``or`` selecting one."""
    if isinstance(operand, ast.BoolOp):
        return any(_is_value(value) for value in operand.values)
    if isinstance(operand, ast.Constant):
        return operand.value is not None and not isinstance(operand.value, bool)
    if isinstance(operand, ast.Call):
        operand = operand.func
    name = dotted_name(operand)
    if name is not None:
        last = name.rsplit(".", 1)[-1]
        return last[:1].isupper() and any(c.islower() for c in last)
    return isinstance(operand, (*_LITERALS, ast.Lambda, ast.JoinedStr))


def _renders(function: ast.expr) -> bool:
    if type(function) is ast.Name:
        return function.id in _RENDERING_FUNCTIONS
    if type(function) is not ast.Attribute:
        return False
    if function.attr in _RENDERING_FUNCTIONS:
        return True
    receiver = (dotted_name(function.value) or "").lower()
    return function.attr in _LOGGING_METHODS and ("log" in receiver or "warn" in receiver)


def _is_size(operand: ast.expr) -> bool:
    name = dotted_name(operand)
    return name is not None and name.rsplit(".", 1)[-1].rsplit("_", 1)[-1].lower() in _SIZE_WORDS


def _is_text(operand: ast.expr) -> bool:
    return isinstance(operand, ast.JoinedStr) or (isinstance(operand, ast.Constant) and isinstance(operand.value, str))


def _caught(handler_type: ast.expr | None) -> set[str]:
    """The names of the exceptions an ``except`` clause catches among AttributeError/KeyError/LookupError
    (a bare ``except:`` or ``except Exception:`` is no probe: it catches everything the body may raise)."""
    if handler_type is None:
        return set()
    types = handler_type.elts if isinstance(handler_type, ast.Tuple) else [handler_type]
    names = {dotted_name(t).rsplit(".", 1)[-1] for t in types if dotted_name(t)}
    return names & {"AttributeError", *_KEY_ERRORS}


def _names_field(vocabulary: Vocabulary, value: str) -> bool:
    field = value.lstrip("-").replace("-", "_")
    return field in vocabulary.fields or field in vocabulary.attributes


def _is_mla_key(mla: MLAExpressions, key: ast.expr) -> bool:
    return isinstance(key, ast.Constant) and isinstance(key.value, str) and mla.names.is_string(key.value)


def _short(node: ast.AST) -> str:
    text = ast.unparse(node)
    return text if len(text) <= 60 else text[:57] + "..."
