"""Property tests: generated builder functions with MLA branches behave the same after `seamfix apply`.

Hypothesis writes functions of ``(config, x, log)`` from assignments, augmented assignments, loops, returns,
``yield``, ``try``/``except`` and ``with contextlib.suppress`` (around code that may divide by zero), lambdas
reading a variable (called later, maybe after an arm rebound it), walrus assignments, ``del``, ``match`` on
MLA fields or not, generator expressions, and
``if``/``else`` on MLA tests (flags, negations, comparisons, probes, ``and`` with other conditions, operands
with side effects) or on variables, which may hold such a test (aliases), nested at random; every variable
is read only where it is certainly assigned (but for ``except`` handlers, which may find it unassigned).
Values may read a module-level name that the module binds plainly or under ``try`` on one or both paths, and
call a function that may rebind it through ``globals()``; the result may list ``locals()``.
The wide generators (the thirteenth round) add values whose truthiness and identity differ (`or`/`and` of
non-bool fields, conditional expressions, chained comparisons), tests that bind, raise or read non-bool
operands, `elif` chains, `while` loops re-testing after their body, `try`/`except`/`else`, `try`/`finally`,
`except*`, `with` targets, `match` guards, `raise`/`break`/`continue` in one arm, `assert`, config mutations
(`del config.field` too), star targets, f-strings, comprehensions with a walrus, lambdas and local functions
deciding at definition time (decorators, positional-only and keyword-only defaults), and put the body in a
coroutine, a closure writing a `nonlocal`, a function writing a `global`, a method of a subclass (`super()`,
`__class__`) or a class body.
Each function is applied in a fresh project; the original and the rewritten module (with its adapter) then
run under dense and MLA configs and must return, raise and mutate alike, with the same log of config reads
and ``log`` calls (``equivalence``); every finding the linter still reports must be one the summary names
with its reason.
"""

from __future__ import annotations

import asyncio
import inspect
import sys
import types
from dataclasses import dataclass, replace
from pathlib import Path
from unittest import mock

import equivalence
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from seamfix.codemods.apply import plan_apply, write_changes
from seamfix.config import load_settings
from seamfix.engine import lint

MLA_TESTS = [
    "config.multi_latent_attention",
    "not config.multi_latent_attention",
    "config.q_lora_rank is None",
    "x > 2 and config.multi_latent_attention",
    "getattr(config, 'cache_mla_latents', False)",
    "'mla_up_proj' in config.recompute_modules",
    # operands with side effects: order, count and short-circuiting must survive the rewrite
    "log(1) and config.multi_latent_attention",
    "config.kv_lora_rank > log(x)",
    "0 < config.kv_lora_rank < log(x + 5)",
    "log(config.q_lora_rank) == log(config.q_lora_rank)",
    "config.multi_latent_attention if log(x) else log(0)",
    "config.q_lora_rank is None or (w := log(x))",
]
OTHER_TESTS = ["x > 1", "config.num_layers == 2"]
MLA_VALUES = ["config.kv_lora_rank", "config.qk_pos_emb_head_dim", "(config.q_lora_rank or 1)"]
# How the module binds `LIMIT`, which values read: plainly, on both paths of a `try`, or on one path only
# (unbound: the read raises `NameError` after the effects before it); and `bump`, which values call, may
# rebind it through `globals()` while a builder runs. A moved arm is passed the value at its call, so each
# must agree with reading it in place.
LIMIT_BINDINGS = [
    "LIMIT = 3",
    "try:\n    from mla_impl_missing import LIMIT\nexcept ImportError:\n    LIMIT = 3",
    "try:\n    from mla_impl_missing import LIMIT\nexcept ImportError:\n    pass",
]
BUMPS = [
    "def bump(value):\n    return value",
    "def bump(value):\n    globals()['LIMIT'] = value + 10\n    return value",
]


# The thirteenth round's forms (`wide_builders`): values whose truthiness and identity differ (`or`/`and` of
# non-bool fields, conditional expressions), tests that bind, raise or read non-bool operands, and statements
# that end an arm early, mutate the config, or evaluate a decision at definition time.
WIDE_VALUES = [
    "(config.q_lora_rank or config.kv_lora_rank)",
    "(config.multi_latent_attention and config.kv_lora_rank)",
    "(not config.q_lora_rank)",
    "(config.cache_mla_latents or x)",
    "(config.multi_latent_attention is True)",
    "(config.q_lora_rank or log(x))",
    "getattr(config, 'q_lora_rank', x)",
    "(x < config.kv_lora_rank <= 6)",
    "len(config.recompute_modules)",
]
WIDE_TESTS = [
    "(c := config.kv_lora_rank)",
    "(c := config.q_lora_rank) is None",
    "config.multi_latent_attention and config.q_lora_rank",
    "not (config.multi_latent_attention or x)",
    "config.kv_lora_rank // x > 1",
    "x < config.kv_lora_rank != log(2)",
    "config.multi_latent_attention is not False",
    "bool(config.cache_mla_latents) is config.multi_latent_attention",
    # names that may be unbound here, read after the MLA read (or, chained, only sometimes)
    "config.kv_lora_rank > a",
    "0 < config.kv_lora_rank < b",
    "config.q_lora_rank is not LIMIT",
]
CONFIG_MUTATIONS = [
    "config.multi_latent_attention = not config.multi_latent_attention",
    "config.q_lora_rank = x",
    "del config.kv_lora_rank",
    "config.kv_lora_rank += 1",
    "config.recompute_modules.append('mla_up_proj')",
]
WIDE_KINDS = {"raise", "break", "continue", "mutate", "assert", "with", "finally", "except_star", "star", "fstring",
              "comprehension", "decision_lambda", "local_def", "counter", "await", "method", "while", "elif",
              "try_else", "guard"}  # fmt: skip
COMPOUND_WIDE = ("with", "finally", "except_star", "while", "elif", "try_else", "guard")


@dataclass(frozen=True)
class Scope:
    """Where generated statements stand, which decides what they may be."""

    wide: bool = False
    in_loop: bool = False
    can_return: bool = True
    can_yield: bool = True
    in_class_body: bool = False
    is_async: bool = False
    in_method: bool = False
    counter: str | None = None  # a `nonlocal`/`global` name the function declares, which arms may augment

    def extra_kinds(self) -> list[str]:
        if not self.wide:
            return []
        kinds = ["raise", "mutate", "assert", "with", "finally", "except_star", "star", "fstring", "comprehension"]
        kinds += ["decision_lambda", "local_def", "while", "elif", "elif", "try_else", "guard"]
        kinds += ["break", "continue"] * self.in_loop + ["counter"] * bool(self.counter)
        return kinds + ["await"] * self.is_async + ["method", "method"] * self.in_method

    def extra_tests(self) -> list[str]:
        return WIDE_TESTS if self.wide else []

    def nested_tests(self) -> list[str]:
        """Tests for expressions that may end up inside a comprehension, where a walrus in a class body does
        not compile."""
        return [t for t in MLA_TESTS + WIDE_TESTS if not (self.in_class_body and ":=" in t)]


NARROW = Scope()


@st.composite
def wide_statement(draw, kind: str, defined: frozenset[str], depth: int, scope: Scope):
    """Lines of one of the thirteenth round's statements, the variables certainly assigned after them, and
    whether they end the block."""
    value = values(defined, scope)
    test = st.sampled_from(scope.nested_tests()).map(lambda t: f"({t})")
    if kind == "raise":
        return [f"raise ValueError({draw(value)})"], defined, True
    if kind == "while":  # the test runs again each round, after the body changed what it reads
        body, _ = draw(blocks(defined | {"n"}, depth + 1, replace(scope, in_loop=True)))
        lines = ["n = 0", f"while {draw(test)} and n < 2:", "    n += 1", *indent(body)]
        return lines, defined | {"n"}, False
    if kind == "elif":
        tests = [draw(test) for _ in range(draw(st.integers(2, 3)))]
        arms = [draw(blocks(defined, depth + 1, scope)) for _ in range(len(tests) + 1)]
        lines = [f"if {tests[0]}:", *indent(arms[0][0])]
        for other, (arm, _) in zip(tests[1:], arms[1:-1], strict=True):
            lines += [f"elif {other}:", *indent(arm)]
        lines += ["else:", *indent(arms[-1][0])]
        return lines, frozenset.intersection(*(after for _, after in arms)), False
    if kind == "try_else":
        body, after = draw(blocks(defined, depth + 1, scope))
        other, after_other = draw(blocks(after, depth + 1, scope))
        lines = ["try:", *indent(body), "except ZeroDivisionError:", "    log('caught')", "else:", *indent(other)]
        return lines, defined & after_other, False
    if kind == "guard":
        first, after_first = draw(blocks(defined, depth + 1, scope))
        other, after_other = draw(blocks(defined, depth + 1, scope))
        subject = draw(st.sampled_from(["x", "config.kv_lora_rank", "(config.q_lora_rank, x)"]))
        lines = [
            f"match {subject}:",
            f"    case int() | (_, _) if {draw(test)}:",
            *indent(indent(first)),
            "    case _:",
        ]
        return [*lines, *indent(indent(other))], after_first & after_other, False
    if kind in ("break", "continue"):
        return [kind], defined, True
    if kind == "mutate":
        return [draw(st.sampled_from(CONFIG_MUTATIONS))], defined, False
    if kind == "assert":
        return [f"assert {draw(test)}, log('assert')"], defined, False
    if kind == "with":
        body, after = draw(blocks(defined | {"c"}, depth + 1, scope))
        return [f"with contextlib.nullcontext({draw(value)}) as c:", *indent(body)], after, False
    if kind == "finally":
        body, after = draw(blocks(defined, depth + 1, scope))
        return ["try:", *indent(body), "finally:", "    log('finally')"], after, False
    if kind == "except_star":
        body, after = draw(blocks(defined, depth + 1, scope))
        return ["try:", *indent(body), "except* ZeroDivisionError:", "    log('group')"], defined & after, False
    if kind == "star":
        first, last = draw(st.permutations(["a", "b", "c"]))[:2]
        return (
            [f"{first}, *rest, {last} = ({draw(value)}, {draw(value)}, {draw(value)})"],
            defined | {first, last},
            False,
        )
    if kind == "fstring":
        return [f'log(f"{{({draw(value)} if {draw(test)} else {draw(value)})!r:>6}}")'], defined, False
    name = draw(st.sampled_from(["a", "b", "c"]))
    if kind == "comprehension":
        # a walrus in a comprehension binds in the function
        filtered = st.sampled_from(scope.nested_tests())
        shape = draw(
            st.sampled_from(["[{v} for i in range(2) if {t}]", "{{i: ({v} if {t} else i) for i in range(2)}}"])
        )
        return [f"{name} = " + shape.format(v=draw(value), t=f"({draw(filtered)})")], defined | {name}, False
    if kind == "decision_lambda":
        other = values(defined - {"g"}, scope)
        return [f"g = lambda: ({draw(other)} if {draw(test)} else {draw(other)})"], defined | {"g"}, False
    if kind == "local_def":
        # the decorator and the defaults run at definition time, the body at the call
        decorator = [f"@(log if {draw(test)} else (lambda f: f))"] * draw(st.booleans())
        body = draw(st.sampled_from(["return v + w", f"return v if {draw(test)} else w"]))
        lines = [*decorator, f"def h(v={draw(value)}, /, *, w={draw(value)}):", f"    {body}", f"{name} = h()"]
        return lines, defined | {name}, False
    if kind == "counter":
        return [f"{scope.counter} += {draw(value)}"], defined, False
    if kind == "await":
        return [f"{name} = await asyncio.sleep(0, {draw(value)})"], defined | {name}, False
    method_lines = [f"{name} = super().scale() + {draw(value)}", "log(__class__.__name__)", f"self.n = {draw(value)}"]
    line = draw(st.sampled_from(method_lines))
    return [line], defined | ({name} if line.startswith(name) else set()), False


@st.composite
def blocks(draw, defined: frozenset[str], depth: int, scope: Scope = NARROW) -> tuple[list[str], frozenset[str]]:
    """Lines of a block (indented by 4 relative to it) and the variables certainly assigned after it."""
    lines: list[str] = []
    for _ in range(draw(st.integers(1, 3))):
        kinds = ["assign", "assign", "alias", "augment", "if", "if", "loop", "return", "try", "suppress", "yield"]
        kinds += ["closure", "walrus", "delete", "match"]
        kinds += scope.extra_kinds()
        kind = draw(st.sampled_from(kinds))
        if kind in ("augment", "closure", "delete") and not defined - {"x"}:
            kind = "assign"
        if kind in ("if", "loop", "try", "suppress", "match", *COMPOUND_WIDE) and depth >= 3:
            kind = "assign"
        if (kind == "return" and not scope.can_return) or (kind == "yield" and not scope.can_yield):
            kind = "assign"
        if kind in WIDE_KINDS:
            wide_lines, defined, ends = draw(wide_statement(kind, defined, depth, scope))
            lines += wide_lines
            if ends:
                return lines, defined
            continue
        if kind == "closure":
            # a lambda reading a variable, called later (maybe after an arm assigned it) or at once
            read = draw(st.sampled_from(sorted(defined - {"x"})))
            lines.append(f"g = lambda: {read}")
            defined |= {"g"}
        elif kind == "walrus":
            name = draw(st.sampled_from(["a", "b", "c"]))
            lines.append(f"log(({name} := {draw(values(defined, scope))}))")
            defined |= {name}
        elif kind == "delete":
            name = draw(st.sampled_from(sorted(defined - {"x"})))
            lines.append(f"del {name}")
            defined -= {name}
        elif kind == "match":
            first, after_first = draw(blocks(defined, depth + 1, scope))
            other, after_other = draw(blocks(defined, depth + 1, scope))
            subject = draw(st.sampled_from(["x", "config.q_lora_rank", "config.multi_latent_attention"]))
            lines += [f"match {subject}:", "    case 0 | None | False:", *indent(indent(first)), "    case _:",
                      *indent(indent(other))]  # fmt: skip
            defined = after_first & after_other
        elif kind == "assign":
            name = draw(st.sampled_from(["a", "b", "c"]))
            lines.append(f"{name} = {draw(values(defined, scope))}")
            defined |= {name}
        elif kind == "alias":
            name = draw(st.sampled_from(["a", "b", "c"]))
            lines.append(f"{name} = {draw(st.sampled_from(MLA_TESTS))}")
            defined |= {name}
        elif kind == "augment":
            lines.append(f"{draw(st.sampled_from(sorted(defined - {'g'})))} += {draw(values(defined, scope))}")
        elif kind == "yield":  # the builder becomes a generator: its yielded values are compared
            lines.append(f"yield {draw(values(defined, scope))}")
        elif kind == "return":
            lines.append(f"return {draw(values(defined, scope))}")
            return lines, defined
        elif kind == "try":
            # the handler reads what the block assigns: unassigned when it raised first (compared as behaviour)
            body, after = draw(blocks(defined, depth + 1, scope))
            read = draw(st.sampled_from(sorted(after)))
            lines += ["try:", *indent(body), "except ZeroDivisionError:", f"    log({read})"]
            defined &= after  # what the block deleted
        elif kind == "suppress":
            body, after = draw(blocks(defined, depth + 1, scope))
            lines += ["with contextlib.suppress(ZeroDivisionError):", *indent(body)]
            defined &= after
        elif kind == "loop":
            body, after = draw(blocks(defined | {"i"}, depth + 1, replace(scope, in_loop=True)))
            lines += ["for i in range(2):", *indent(body)]
            defined &= after
        else:
            test = draw(st.sampled_from(MLA_TESTS + OTHER_TESTS + sorted(defined - {"x"}) + scope.extra_tests()))
            defined |= {"c"} if test.startswith("(c :=") else set()
            then, after_then = draw(blocks(defined, depth + 1, scope))
            lines += [f"if {test}:", *indent(then)]
            if draw(st.booleans()):
                other, after_other = draw(blocks(defined, depth + 1, scope))
                lines += ["else:", *indent(other)]
                defined = after_then & after_other
            else:
                defined &= after_then
    return lines, defined


@st.composite
def values(draw, defined: frozenset[str], scope: Scope = NARROW) -> str:
    atoms = ["x", "1", "2", "(x // (x - 3))", "LIMIT", "bump(x)", *MLA_VALUES, *sorted(defined - {"g"})]
    atoms += ["g()"] * ("g" in defined) + [f"sum({v} for _ in range(2))" for v in sorted(defined - {"g"})[:1]]
    if scope.wide:
        choice = st.sampled_from(atoms + WIDE_VALUES)
        atoms += WIDE_VALUES + [
            f"({draw(choice)} if ({draw(st.sampled_from(scope.nested_tests()))}) else {draw(choice)})"
        ]
    left, right = draw(st.sampled_from(atoms)), draw(st.sampled_from(atoms))
    return draw(st.sampled_from([left, f"{left} + {right}", f"{left} * {right}"]))


def indent(lines: list[str]) -> list[str]:
    return ["    " + line for line in lines]


@st.composite
def builders(draw) -> str:
    body, defined = draw(blocks(frozenset({"x"}), 0))
    limit = [draw(st.sampled_from(LIMIT_BINDINGS)), "", "", draw(st.sampled_from(BUMPS))]
    # the function's own variables read by name, as `locals()` does, see what a moved arm assigned or not
    ending = f"return ({', '.join(sorted(defined - {'i'}))},{draw(st.sampled_from(['', ' sorted(locals())']))})"
    lines = ["import contextlib", "", *limit, "", "", "def build(config, x, log):", *indent(body), *indent([ending])]
    return "\n".join(lines) + "\n"


WIDE = Scope(wide=True)
# Where the generated body stands: the function `build` itself or what it calls, and the scope that gives it.
# The body is indented by that many levels; `{names}` the tuple of variables it certainly assigned.
SHAPES = {
    "function": (WIDE, 1, "def build(config, x, log):\n{body}\n    return ({names})"),
    "coroutine": (
        replace(WIDE, can_yield=False, is_async=True),
        1,
        "async def build(config, x, log):\n{body}\n    return ({names})",
    ),
    "closure with nonlocal": (
        replace(WIDE, counter="total"),
        2,
        "def build(config, x, log):\n    total = 0\n\n    def inner(config, x):\n        nonlocal total\n"
        "{body}\n        return ({names})\n\n    return inner(config, x), total",
    ),
    "function with global": (
        replace(WIDE, counter="TOTAL"),
        1,
        "TOTAL = 0\n\n\ndef build(config, x, log):\n    global TOTAL\n{body}\n    return ({names}), TOTAL",
    ),
    "positional and keyword-only": (
        WIDE,
        1,
        "def build(config, x, log):\n    return _build(config, x, log=log)\n\n\n"
        "def _build(config, /, x=0, *, log):\n{body}\n    return ({names})",
    ),
    "method": (
        replace(WIDE, in_method=True),
        2,
        "class Base:\n    def scale(self):\n        return 2\n\n\nclass Builder(Base):\n"
        "    def build(self, config, x, log):\n{body}\n        return ({names}), sorted(vars(self).items())\n\n\n"
        "def build(config, x, log):\n    return Builder().build(config, x, log)",
    ),
    "class body": (
        replace(WIDE, can_return=False, can_yield=False, in_class_body=True),
        2,
        "def build(config, x, log):\n    class Local:\n{body}\n\n"
        "    return sorted((k, v) for k, v in vars(Local).items() if not k.startswith('__'))",
    ),
}


@st.composite
def wide_builders(draw) -> str:
    """A builder of the thirteenth round: a body of every kind, wide forms included, standing in a function,
    a coroutine, a closure writing a `nonlocal`, a function writing a `global`, a function with positional-only
    and keyword-only parameters, a method of a subclass (`super()`, `__class__`) or a class body."""
    scope, levels, template = SHAPES[draw(st.sampled_from(sorted(SHAPES)))]
    body, defined = draw(blocks(frozenset({"x"}), 0, scope))
    for _ in range(levels):
        body = indent(body)
    source = template.format(body="\n".join(body), names=", ".join(sorted(defined - {"i"})) + ",")
    limit = [draw(st.sampled_from(LIMIT_BINDINGS)), "", "", draw(st.sampled_from(BUMPS))]
    return "\n".join(["import asyncio", "import contextlib", "", *limit, "", "", source]) + "\n"


STRAIGHT_WIDE_KINDS = WIDE_KINDS - set(COMPOUND_WIDE)


@st.composite
def wide_arm_builders(draw) -> str:
    """`wide_builders`' shapes around arms that apply may move: straight-line statements of the wide forms
    (config mutations, star targets, f-strings, comprehensions, lambdas and functions deciding at definition
    time, `nonlocal`/`global` writes, `await`, `super()`) under an MLA test, one or both arms, maybe in a loop
    and ended early by `return`, `raise`, `break` or `continue`."""
    shape_scope, levels, template = SHAPES[draw(st.sampled_from(sorted(SHAPES)))]
    scope = replace(shape_scope, in_loop=draw(st.booleans()))
    # apply moves the arms of a flag's test: weighted so that most examples have arms to move
    flag_tests = ["config.multi_latent_attention"] * 6 + ["x > 2 and config.multi_latent_attention"] * 2
    test = draw(st.sampled_from(flag_tests + WIDE_TESTS))
    before = frozenset({"x", "a"} | ({"c"} if test.startswith("(c :=") else set()))
    kinds = sorted(set(scope.extra_kinds()) & STRAIGHT_WIDE_KINDS) + ["assign", "return"] * scope.can_return
    arms = []
    for _ in range(draw(st.integers(1, 3))):
        arm, defined = (
            [f"log({draw(values(before, scope))})", f"a = {draw(st.sampled_from(MLA_VALUES))} + LIMIT"],
            before,
        )
        for _ in range(draw(st.integers(0, 3))):
            kind = draw(st.sampled_from(kinds))
            if kind == "return":
                arm.append(f"return {draw(values(defined, scope))}")
                break
            if kind == "assign":
                name = draw(st.sampled_from(["a", "b"]))
                arm.append(f"{name} = {draw(values(defined, scope))}")
                defined |= {name}
                continue
            lines, defined, ends = draw(wide_statement(kind, defined, 0, scope))
            arm += lines
            if ends:
                break
        arms.append((arm, defined))
    # one arm, an `else`, or an `elif` on another field before it
    elif_test = f"elif {draw(st.sampled_from(WIDE_TESTS + OTHER_TESTS))}:"
    headers = [f"if {test}:", *[elif_test][: len(arms) - 2], "else:"][: len(arms)]
    body = ["a = x"] + [line for header, (arm, _) in zip(headers, arms, strict=True) for line in [header, *indent(arm)]]
    defined = frozenset.intersection(*(after for _, after in arms)) if len(arms) > 1 else before
    if scope.in_loop:
        body = ["a = x", "for i in range(2):", *indent(body[1:])]
    for _ in range(levels):
        body = indent(body)
    source = template.format(body="\n".join(body), names=", ".join(sorted(defined)) + ",")
    limit = [draw(st.sampled_from(LIMIT_BINDINGS)), "", "", draw(st.sampled_from(BUMPS))]
    return "\n".join(["import asyncio", "import contextlib", "", *limit, "", "", source]) + "\n"


@st.composite
def arm_builders(draw) -> str:
    """A builder with one arm that apply moves, unless it refuses: straight-line statements under an MLA
    test, which read module-level names and leave effects before and after them, maybe inside a loop."""
    arm = [f"log({draw(values(frozenset({'a'})))})", f"a = {draw(st.sampled_from(MLA_VALUES))} + LIMIT"]
    for _ in range(draw(st.integers(0, 2))):
        value = draw(values(frozenset({"a"})))
        # `b`, assigned only here, is what `locals()` after the arm may see
        arm.append(draw(st.sampled_from([f"log({value})", f"a = {value}", f"a += {value}", f"b = {value}"])))
    arm = draw(st.permutations(arm))
    if draw(st.booleans()):
        arm.append(f"return {draw(values(frozenset({'a'})))}")
    test = draw(st.sampled_from(["config.multi_latent_attention", "x > 2 and config.multi_latent_attention"]))
    body = ["a = x", f"if {test}:", *indent(arm)]
    if draw(st.booleans()):
        body = ["a = x", "for i in range(2):", *indent(body[1:])]
    ending = draw(st.sampled_from(["return a", "return a, sorted(locals())"]))
    limit = [draw(st.sampled_from(LIMIT_BINDINGS)), "", "", draw(st.sampled_from(BUMPS))]
    return "\n".join(["", *limit, "", "", "def build(config, x, log):", *indent([*body, ending])]) + "\n"


def run_all(module: types.ModuleType) -> list:
    results = []
    for config_name in equivalence.CONFIGS:
        for x in (0, 3):
            config = equivalence.config_object(config_name)
            equivalence.EVENTS.clear()
            try:
                value = module.build(config, x, equivalence.log)
                outcome = [
                    "returns",
                    equivalence.normalize(asyncio.run(value) if inspect.iscoroutine(value) else value),
                ]
            except Exception as exc:  # noqa: BLE001 - compared as behaviour
                outcome = ["raises", type(exc).__name__, str(exc)]
            results.append([config_name, x, outcome, equivalence.normalize(config), list(equivalence.EVENTS)])
    return results


def load(code: str, adapter: str | None) -> types.ModuleType:
    seam = types.ModuleType("mla_seam")
    if adapter is not None:
        exec(compile(adapter, "mla_seam.py", "exec"), seam.__dict__)
    module = types.ModuleType("case")
    with mock.patch.dict(sys.modules, {"mla_seam": seam}):
        exec(compile(code, "case.py", "exec"), module.__dict__)
    return module


PROPERTY = settings(
    max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@PROPERTY
@given(source=builders())
def test_generated_builders_behave_the_same_after_apply(source: str, tmp_path_factory) -> None:
    behaves_the_same_after_apply(source, tmp_path_factory.mktemp("generated"))


@settings(PROPERTY, max_examples=40)
@given(source=wide_builders())
def test_generated_wide_builders_behave_the_same_after_apply(source: str, tmp_path_factory) -> None:
    behaves_the_same_after_apply(source, tmp_path_factory.mktemp("wide"))


@settings(PROPERTY, max_examples=25)
@given(source=wide_arm_builders())
def test_generated_wide_moved_arms_behave_the_same_after_apply(source: str, tmp_path_factory) -> None:
    behaves_the_same_after_apply(source, tmp_path_factory.mktemp("wide_arm"))


@PROPERTY
@given(source=arm_builders())
def test_generated_moved_arms_behave_the_same_after_apply(source: str, tmp_path_factory) -> None:
    behaves_the_same_after_apply(source, tmp_path_factory.mktemp("arm"))


def behaves_the_same_after_apply(source: str, root: Path) -> None:
    (root / "pyproject.toml").write_text('[tool.seamfix]\nadapter = "mla_seam.py"\n')
    (root / "case.py").write_text(source)
    settings_ = load_settings(root)
    plan = plan_apply([root], settings_, cwd=root)
    assert not plan.errors, plan.errors
    write_changes(plan)
    adapter = root / "mla_seam.py"
    rewritten = (root / "case.py").read_text()
    assert run_all(load(rewritten, adapter.read_text() if adapter.exists() else None)) == run_all(load(source, None))
    explained = {why.split(": ")[0] for why in plan.remaining} | {why.split(": ")[0] for why in plan.refused}
    for finding in lint([root], settings_, cwd=root, use_cache=False).findings:
        assert f"{finding.path}:{finding.line}:{finding.column}" in explained or finding.path in explained
    assert plan_apply([root], settings_, cwd=root).changes == []
