"""Which expressions depend on MLA: vocabulary names, values that carry MLA, and calls into the seam (which don't)."""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterable, Iterator

from seamfix.analysis.seam_bindings import SeamBindings, dotted_name
from seamfix.vocabulary.names import NameClassifier

_BLOCK_FIELDS = frozenset({"body", "orelse", "finalbody", "handlers", "cases"})
_COLLECTIONS = (ast.List, ast.Tuple, ast.Set, ast.Dict)
_NESTED_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)
_DEFINITIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
_COMPREHENSIONS = (ast.ListComp, ast.SetComp, ast.GeneratorExp, ast.DictComp)
# Expressions whose value is made of their operands' values (the rest of `taint`'s cases are explicit).
_VALUE_FLOWS = (ast.BoolOp, ast.BinOp, ast.UnaryOp, ast.IfExp, ast.Compare, ast.NamedExpr, ast.Starred)
_BOOLEAN_BIT_OPERATORS = (ast.BitOr, ast.BitAnd, ast.BitXor)  # `use_mla |= cfg.multi_latent_attention`
_PROBES = {"getattr": 3, "hasattr": 2, "isinstance": 2, "issubclass": 2}
# Functions that make a reader of the attribute or key they are given: `attrgetter("q_lora_rank")(cfg)` reads it.
_ACCESSORS = frozenset({"attrgetter", "itemgetter"})
# Calls whose result is their argument's value or truth, converted: `int(getattr(cfg, "kv_lora_rank", 0))`.
_TRUTH_FUNCTIONS = frozenset({"isinstance", "issubclass", "hasattr", "callable", "bool", "any", "all"})
_PURE_WRAPPERS = frozenset({"bool", "any", "all", "int", "float", "str"})
_LABEL_COMPARISONS = frozenset({ast.Eq, ast.NotEq, ast.Is, ast.IsNot, ast.In, ast.NotIn})

# Markers in an alias state (never identifiers): a name bound from a call into the seam on some path, and
# bound from anything else on some path (``flow`` keeps them).
SEAM_ANSWER = "\0seam "
OTHER_VALUE = "\0other "
# A name bound to a name of MLA (``FIELD = "q_lora_rank"``, ``Attention = MLASelfAttention``, see
# ``names_mla``): a probe of it (``getattr(cfg, FIELD, None)``, ``isinstance(m, Attention)``) probes MLA.
MLA_NAME = "\0name "


class MLAExpressions:
    """Which expressions name MLA (``atom``) and which values carry it (``taint``).

    Two questions, because a test and a value differ: a test is a decision on MLA when its text names MLA
    anywhere (``if build(cfg.multi_latent_attention):``), while a value is MLA-derived only through the flows
    that keep its meaning: names, attribute and subscript reads, comparison, boolean and conditional
    combination (``not``, ``and``/``or``, ``a if t else b``, ``|``/``&``/``^``), literal collections, the
    probes ``getattr``/``hasattr``/``isinstance``/``issubclass``/``mapping.get`` of an MLA name and the pure
    wrappers ``bool``/``any``/``all``. Not through a call that was handed an MLA argument (its result is
    the callee's, ``apply_rotary_pos_emb(x, mla_rotary_interleaved=...)``), arithmetic (``n * kv_lora_rank``
    is a size, not a flag), slicing, or string formatting.
    """

    def __init__(self, names: NameClassifier, seam: SeamBindings) -> None:
        self.names = names
        self.seam = seam

    def atom(self, expr: ast.AST, aliases: frozenset[str] = frozenset()) -> ast.AST | None:
        """The MLA sub-expression a test on ``expr`` depends on: a vocabulary name anywhere in it, else an
        alias read through a value flow or arithmetic (``q_split % tp_size == 0`` tests ``q_split`` as
        ``cfg.q_lora_rank % tp_size == 0`` tests the field); None if there is none."""
        found = self.vocabulary_atom(expr, aliases)
        if found is None and aliases:
            found = self.taint(expr, aliases, arithmetic=True)
        return found

    def vocabulary_atom(self, expr: ast.AST, aliases: frozenset[str] = frozenset()) -> ast.AST | None:
        """The first sub-expression of ``expr`` that names MLA by the vocabulary (a name that here holds only
        the seam's answer does not); None if there is none."""
        names = self.names
        stack = [expr]
        while stack:
            node = stack.pop()
            kind = type(node)
            if kind is ast.Name:
                if node.id not in self.seam.functions and names.is_name(node.id) and not seam_answer(node.id, aliases):
                    return node
            elif kind is ast.Attribute:
                if self.seam.refers_to_seam(node):
                    continue
                if names.is_attribute(node.attr):
                    return node
                if not self.is_class_state(node):
                    stack.append(node.value)
            elif kind is ast.Constant:
                if type(node.value) is str and names.is_string(node.value):
                    return node
            elif kind is ast.keyword:
                # `run(q, absorbed_mla=flag)` passes an MLA flag; `run(q, absorbed_mla=True)` fixes the path, so a
                # test on what the call returns decides nothing about MLA (its literal may still be an MLA string).
                if node.arg and names.is_name(node.arg) and type(node.value) is not ast.Constant:
                    return node
                stack.append(node.value)
            elif kind in _COLLECTIONS:
                stack.extend(self._collection_elements(node))
            elif kind is ast.Call and self.seam.refers_to_seam(node.func):
                continue  # the seam decides what its arguments mean: `mla_seam.enabled(multi_latent_attention)`
            else:
                stack.extend(ast.iter_child_nodes(node))
        return None

    def taint(self, expr: ast.AST, aliases: frozenset[str], arithmetic: bool = False) -> ast.AST | None:
        """The MLA sub-expression whose value flows into ``expr``'s value (see the class doc); ``aliases``
        are the names and dotted attributes (``self._latent``) that hold MLA values here. ``arithmetic``:
        also through arithmetic (a test's own operands, never an assigned value)."""
        kind = type(expr)
        if kind is ast.Name:
            if expr.id in aliases or MLA_NAME + expr.id in aliases:  # `hf[KEY]` after `KEY = "q_lora_rank"`
                return expr
            named = self.names.is_name(expr.id) and expr.id not in self.seam.functions
            return expr if named and not seam_answer(expr.id, aliases) else None
        if kind is ast.Attribute:
            if self.seam.refers_to_seam(expr):
                return None
            if self.names.is_attribute(expr.attr) or (aliases and dotted_name(expr) in aliases):
                return expr
            if self.is_class_state(expr):
                return None
            return self.taint(expr.value, aliases, arithmetic)
        if kind is ast.Subscript:
            found = self.taint(expr.value, aliases, arithmetic)
            if found is None and not is_slicing(expr.slice):
                found = self.taint(expr.slice, aliases, arithmetic)
            return found
        if kind is ast.Constant:
            return expr if type(expr.value) is str and self.names.is_string(expr.value) else None
        if kind is ast.Call:
            return self._call_taint(expr, aliases, arithmetic)
        if not arithmetic and kind is ast.BinOp and not isinstance(expr.op, _BOOLEAN_BIT_OPERATORS):
            return None
        if not arithmetic and kind is ast.UnaryOp and not isinstance(expr.op, ast.Not):
            return None
        if kind in _COMPREHENSIONS:
            return self._comprehension_taint(expr, aliases, arithmetic)
        if kind is ast.Compare and self._compares_labels(expr, aliases):
            return None
        if kind in _COLLECTIONS:
            children: Iterable[ast.AST] = self._collection_elements(expr)
        elif kind in _VALUE_FLOWS:
            children = ast.iter_child_nodes(expr)
        else:
            return None  # lambdas, f-strings, await, yield: not the MLA value itself
        for child in children:
            if isinstance(child, ast.expr):
                found = self.taint(child, aliases, arithmetic)
                if found is not None:
                    return found
        return None

    def is_class_state(self, attribute: ast.Attribute) -> bool:
        """``SparseFlashMlaFunction.grad_scale``: a lower-case field that names no MLA, read from a class that
        does. The class is the same object whether or not a model uses MLA, so its state answers the same
        either way (a cache, a scale set once, a method); a test on it decides nothing about MLA. A constant
        (``MLAMode.ABSORBED``, ``MLAKind.Absorbed``: an enum member by PEP 8's case) still names MLA."""
        receiver = attribute.value
        return (
            type(receiver) is ast.Name and attribute.attr.lstrip("_")[:1].islower() and self.names.is_class(receiver.id)
        )

    def bound_taint(self, value: ast.expr, aliases: frozenset[str]) -> ast.AST | None:
        """The MLA sub-expression a name bound to ``value`` (or a function returning it) would carry: ``taint``,
        except for labels. A string constant naming MLA (``reason = "mla_mtp_disabled"``), a choice among
        constants made on no MLA value, or a literal table of constants, is the same for every model: stored among
        other labels (a status, a reason) or rows, tests of it ask which label is held or which row is there, not
        whether the model is MLA (the test that chose to store it is the decision). A name bound to only names of
        MLA still stands for them where used as a key (``MLA_NAME``). Chosen on MLA (``"mla" if
        cfg.multi_latent_attention else "mha"``), a value carries MLA."""
        found = self.taint(value, aliases)
        return None if found is not None and self._only_labels(value, aliases) else found

    def _compares_labels(self, compare: ast.Compare, aliases: frozenset[str]) -> bool:
        """``reason == "binary_outdated"``, ``reason in ("a", "b")`` after ``reason = "mla_mtp_disabled"`` on some
        path: which label a name holds, compared with constants, is no MLA value (``bound_taint``). Compared with
        anything else (``cfg.attention_type == KIND``), or used as a key (``KEY in hf``), it stands for MLA."""
        operands = [compare.left, *compare.comparators]
        return (
            all(type(op) in _LABEL_COMPARISONS for op in compare.ops)
            and any(self._holds_label(operand, aliases) for operand in operands)
            and all(self._holds_label(operand, aliases) or _is_constant(operand) for operand in operands)
            and not (type(compare.ops[0]) in (ast.In, ast.NotIn) and not self._holds_label(compare.left, aliases))
        )

    def _holds_label(self, expr: ast.expr, aliases: frozenset[str]) -> bool:
        """A name bound to an MLA string that carries no MLA value here (see ``bound_taint``)."""
        return type(expr) is ast.Name and MLA_NAME + expr.id in aliases and expr.id not in aliases

    def _only_labels(self, value: ast.expr, aliases: frozenset[str]) -> bool:
        """Whether ``value``'s MLA is only string constants: a label, a choice among labels made on no MLA value, or
        a literal table of them (``{"deepseek_v2": {"fused_qkv_a_proj": ["q_a_proj", "kv_a_proj_with_mqa"]}}``:
        data, whatever weight names its rows hold)."""
        kind = type(value)
        if kind is ast.Constant:
            return True
        if kind is ast.IfExp:
            if self.taint(value.test, aliases) is not None:
                return False
            parts: list[ast.expr] = [value.body, value.orelse]
        elif kind is ast.Dict:
            parts = [key for key in value.keys if key is not None] + value.values
        elif kind in (ast.Tuple, ast.List, ast.Set):
            parts = value.elts
        else:
            return False
        return all(self._only_labels(part, aliases) or self.taint(part, aliases) is None for part in parts)

    def _call_taint(self, call: ast.Call, aliases: frozenset[str], arithmetic: bool) -> ast.AST | None:
        if self.seam.refers_to_seam(call.func):
            return None
        probed = probed_argument(call)
        if probed is not None:
            return self.probed_atom(probed, aliases)
        if isinstance(call.func, ast.Name) and call.func.id in _PURE_WRAPPERS and len(call.args) == 1:
            return self.taint(call.args[0], aliases, arithmetic)
        if isinstance(call.func, ast.Attribute) and call.func.attr == "pop" and 1 <= len(call.args) <= 2:
            return self.probed_atom(call.args[0], aliases)  # `kwargs.pop("multi_latent_attention", False)` reads it
        found = self.reader_atom(call.func, aliases)  # `attrgetter("multi_latent_attention")(cfg)`, `self.latent()`
        return call if found is call.func else found  # a function (or method) known to return an MLA value

    def probed_atom(self, probed: ast.expr, aliases: frozenset[str]) -> ast.AST | None:
        """The MLA name a probe (or a key read) asks about: named in its text, or held by a name bound to a
        name of MLA (``getattr(cfg, FIELD, None)`` after ``FIELD = "q_lora_rank"``). Not any MLA value: a key
        taken from an MLA-named table (``for hf_key, _ in MLA_ROPE_SCALING_MAPPING``) is that table's key."""
        if type(probed) is ast.Name and MLA_NAME + probed.id in aliases:
            return probed
        return self.vocabulary_atom(probed)

    def names_mla(self, expr: ast.expr) -> bool:
        """A name of MLA by itself: a string naming an MLA field, key or module, an MLA class, or a literal
        collection of only those (``(MLASelfAttention, FusedMLASelfAttention)``)."""
        kind = type(expr)
        if kind is ast.Constant:
            return type(expr.value) is str and self.names.is_string(expr.value)
        if kind in (ast.Tuple, ast.List, ast.Set):
            return bool(expr.elts) and all(map(self.names_mla, expr.elts))
        if kind is ast.Name:
            return self.names.is_class(expr.id)
        return kind is ast.Attribute and self.names.is_class(expr.attr)

    def reader_atom(self, expr: ast.expr, aliases: frozenset[str]) -> ast.AST | None:
        """The MLA value the function ``expr`` returns when called: an accessor of an MLA attribute or key
        (``operator.attrgetter("multi_latent_attention")``), a lambda returning an MLA value, or a name bound to
        one of those or to a function returning one."""
        kind = type(expr)
        if kind is ast.Call:
            function = expr.func
            name = function.id if type(function) is ast.Name else getattr(function, "attr", None)
            if name in _ACCESSORS:
                for argument in expr.args:
                    found = self.probed_atom(argument, aliases)
                    if found is not None:
                        return found
        elif kind is ast.Lambda:
            arguments = expr.args
            bound = [*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs, arguments.vararg, arguments.kwarg]
            own = {a.arg for a in bound if a is not None}
            return self.taint(expr.body, frozenset(a for a in aliases if a.split(".", 1)[0] not in own))
        elif aliases and f"{dotted_name(expr)}()" in aliases:
            return expr  # a name bound to such a reader, or a function returning an MLA value
        return None

    def _comprehension_taint(self, expr: ast.AST, aliases: frozenset[str], arithmetic: bool) -> ast.AST | None:
        """A comprehension carries MLA when its elements, sources or filters do (``[l for l in layers if
        l.multi_latent_attention]`` is the MLA layers); its targets carry what their source does."""
        inner = set(aliases)
        for generator in expr.generators:
            found = self.taint(generator.iter, frozenset(inner), arithmetic)
            bound = {n.id for n in ast.walk(generator.target) if isinstance(n, ast.Name)}
            inner = inner | bound if found is not None else inner - bound
            for condition in generator.ifs:
                found = found or self.taint(condition, frozenset(inner), arithmetic)
            if found is not None:
                return found
        parts = (expr.key, expr.value) if isinstance(expr, ast.DictComp) else (expr.elt,)
        for part in parts:
            found = self.taint(part, frozenset(inner), arithmetic)
            if found is not None:
                return found
        return None

    def _collection_elements(self, node: ast.AST) -> list[ast.AST]:
        """Elements that can make a literal collection MLA: an MLA string among other strings
        (``{"core_attn", "mla_up_proj"}``, a list of allowed values) does not; all-MLA strings do."""
        elements = [e for e in node.keys if e is not None] + node.values if isinstance(node, ast.Dict) else node.elts
        strings = [e for e in elements if type(e) is ast.Constant and type(e.value) is str]
        if strings and not all(self.names.is_string(s.value) for s in strings):
            return [e for e in elements if not (type(e) is ast.Constant and type(e.value) is str)]
        return elements

    def aliases(
        self, scope: ast.AST, inherited: frozenset[str], mentions: Callable[[ast.AST], bool] | None
    ) -> frozenset[str]:
        """Names that MAY hold an MLA value somewhere in ``scope`` (not in nested scopes): those assigned,
        anywhere and in any order, a value that ``taint`` finds MLA in, transitively. The linter's own
        decisions are flow-sensitive (``flow``); this order-blind superset is for questions asked about a
        whole function (``seamfix apply``'s alias definitions, a class's attributes)."""
        assignments = list(_assignments(scope, mentions))
        aliases = set(inherited)
        changed = True
        while changed:
            changed = False
            frozen = frozenset(aliases)
            for targets, value in assignments:
                new = [t for t in targets if t not in aliases]
                if new and self.taint(value, frozen) is not None:
                    aliases.update(new)
                    changed = True
        return frozenset(aliases)


def is_slicing(key: ast.expr) -> bool:
    """``x[a:b]``, ``x[..., :n]``: a subscript that cuts a range out of a sequence or tensor."""
    if isinstance(key, ast.Slice):
        return True
    return isinstance(key, ast.Tuple) and any(
        isinstance(e, ast.Slice) or (isinstance(e, ast.Constant) and e.value is Ellipsis) for e in key.elts
    )


def is_condition(expr: ast.expr) -> bool:
    """An expression that is plainly a truth value: a comparison, ``not``, a type or attribute probe,
    ``bool``/``any``/``all``/``callable``, or ``and``/``or`` of those."""
    if isinstance(expr, ast.Compare) or (isinstance(expr, ast.UnaryOp) and isinstance(expr.op, ast.Not)):
        return True
    if isinstance(expr, ast.BoolOp):
        return all(is_condition(value) for value in expr.values)
    if isinstance(expr, ast.Call) and isinstance(expr.func, ast.Name):
        return expr.func.id in _TRUTH_FUNCTIONS
    return isinstance(expr, ast.Constant) and isinstance(expr.value, bool)


def _is_constant(expr: ast.expr) -> bool:
    """A constant, or a literal collection of constants (``("runtime_error", "binary_outdated")``)."""
    if type(expr) in (ast.Tuple, ast.List, ast.Set):
        return all(map(_is_constant, expr.elts))
    return type(expr) is ast.Constant


def probed_argument(call: ast.Call) -> ast.expr | None:
    """The argument a probe asks about: the attribute name of ``getattr(x, name, default)`` / ``hasattr``,
    the class of ``isinstance`` / ``issubclass``, the key of ``mapping.get(key[, default])`` and of the unbound
    ``dict.get(mapping, key[, default])``."""
    function = call.func
    if isinstance(function, ast.Name):
        arity = _PROBES.get(function.id, 0)
        return call.args[1] if arity and len(call.args) >= arity else None
    if isinstance(function, ast.Attribute) and function.attr == "get":
        unbound = isinstance(function.value, ast.Name) and function.value.id == "dict"
        if 1 + unbound <= len(call.args) <= 2 + unbound:
            return call.args[unbound]
    return None


def nested_statements(node: ast.AST) -> Iterator[ast.stmt]:
    """The statements directly inside a compound statement (bodies, else arms, handlers, match cases)."""
    for name in ("body", "orelse", "finalbody"):
        block = getattr(node, name, None)
        if isinstance(block, list):
            yield from block
    for clause in (*getattr(node, "handlers", ()), *getattr(node, "cases", ())):
        yield from clause.body


def own_statements(function: ast.AST) -> Iterator[ast.stmt]:
    """The statements of ``function``'s body at any depth, outside nested functions and classes."""
    stack = list(nested_statements(function))
    while stack:
        statement = stack.pop()
        yield statement
        if not isinstance(statement, _DEFINITIONS):
            stack.extend(nested_statements(statement))


def _assignments(scope: ast.AST, source_lines: Callable[[ast.AST], bool] | None) -> Iterator[tuple[list[str], ast.AST]]:
    """Assignments of ``scope`` outside nested scopes, walking statements only (expressions are the bulk of
    a tree); walrus targets are looked for only in statements that mention MLA (``source_lines``; None when
    the file has no walrus at all)."""
    stack = list(nested_statements(scope)) if not isinstance(scope, ast.Lambda) else []
    while stack:
        node = stack.pop()
        if isinstance(node, _NESTED_SCOPES):
            continue
        if isinstance(node, ast.Assign):
            for target in node.targets:
                yield from _bind(target, node.value)
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            yield from _bind(node.target, node.value)
        elif isinstance(node, ast.AugAssign) and isinstance(node.op, _BOOLEAN_BIT_OPERATORS):
            # as ``flow``: ``flag |= cfg.multi_latent_attention`` combines flags, ``t += mla_time`` is arithmetic
            yield from _bind(node.target, node.value)
        if source_lines is not None and source_lines(node):
            for field, value in ast.iter_fields(node):
                if field in _BLOCK_FIELDS or not isinstance(value, ast.AST):
                    continue
                for expression in ast.walk(value):
                    if isinstance(expression, ast.NamedExpr):
                        yield from _bind(expression.target, expression.value)
        stack.extend(nested_statements(node))


def _bind(target: ast.AST, value: ast.AST) -> Iterable[tuple[list[str], ast.AST]]:
    if isinstance(target, ast.Name):
        yield [target.id], value
    elif isinstance(target, (ast.Tuple, ast.List)):
        if isinstance(value, (ast.Tuple, ast.List)) and len(value.elts) == len(target.elts):
            for sub_target, sub_value in zip(target.elts, value.elts, strict=True):
                yield from _bind(sub_target, sub_value)
        else:
            names = [elt.id for elt in target.elts if isinstance(elt, ast.Name)]
            if names:
                yield names, value


def seam_answer(name: str, aliases: frozenset[str]) -> bool:
    """Whether every definition of ``name`` that reaches here is a call into the seam (see ``flow``)."""
    return SEAM_ANSWER + name in aliases and OTHER_VALUE + name not in aliases
