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
Each function is applied in a fresh project; the original and the rewritten module (with its adapter) then
run under dense and MLA configs and must return, raise and mutate alike, with the same log of config reads
and ``log`` calls (``equivalence``); every finding the linter still reports must be one the summary names
with its reason.
"""

from __future__ import annotations

import sys
import types
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


@st.composite
def blocks(draw, defined: frozenset[str], depth: int, in_loop: bool = False) -> tuple[list[str], frozenset[str]]:
    """Lines of a block (indented by 4 relative to it) and the variables certainly assigned after it."""
    lines: list[str] = []
    for _ in range(draw(st.integers(1, 3))):
        kinds = ["assign", "assign", "alias", "augment", "if", "if", "loop", "return", "try", "suppress", "yield"]
        kinds += ["closure", "walrus", "delete", "match"]
        kind = draw(st.sampled_from(kinds))
        if kind in ("augment", "closure", "delete") and not defined - {"x"}:
            kind = "assign"
        if kind in ("if", "loop", "try", "suppress", "match") and depth >= 3:
            kind = "assign"
        if kind == "closure":
            # a lambda reading a variable, called later (maybe after an arm assigned it) or at once
            read = draw(st.sampled_from(sorted(defined - {"x"})))
            lines.append(f"g = lambda: {read}")
            defined |= {"g"}
        elif kind == "walrus":
            name = draw(st.sampled_from(["a", "b", "c"]))
            lines.append(f"log(({name} := {draw(values(defined))}))")
            defined |= {name}
        elif kind == "delete":
            name = draw(st.sampled_from(sorted(defined - {"x"})))
            lines.append(f"del {name}")
            defined -= {name}
        elif kind == "match":
            first, after_first = draw(blocks(defined, depth + 1, in_loop))
            other, after_other = draw(blocks(defined, depth + 1, in_loop))
            subject = draw(st.sampled_from(["x", "config.q_lora_rank", "config.multi_latent_attention"]))
            lines += [f"match {subject}:", "    case 0 | None | False:", *indent(indent(first)), "    case _:",
                      *indent(indent(other))]  # fmt: skip
            defined = after_first & after_other
        elif kind == "assign":
            name = draw(st.sampled_from(["a", "b", "c"]))
            lines.append(f"{name} = {draw(values(defined))}")
            defined |= {name}
        elif kind == "alias":
            name = draw(st.sampled_from(["a", "b", "c"]))
            lines.append(f"{name} = {draw(st.sampled_from(MLA_TESTS))}")
            defined |= {name}
        elif kind == "augment":
            lines.append(f"{draw(st.sampled_from(sorted(defined - {'g'})))} += {draw(values(defined))}")
        elif kind == "yield":  # the builder becomes a generator: its yielded values are compared
            lines.append(f"yield {draw(values(defined))}")
        elif kind == "return":
            lines.append(f"return {draw(values(defined))}")
            return lines, defined
        elif kind == "try":
            # the handler reads what the block assigns: unassigned when it raised first (compared as behaviour)
            body, after = draw(blocks(defined, depth + 1, in_loop))
            read = draw(st.sampled_from(sorted(after)))
            lines += ["try:", *indent(body), "except ZeroDivisionError:", f"    log({read})"]
            defined &= after  # what the block deleted
        elif kind == "suppress":
            body, after = draw(blocks(defined, depth + 1, in_loop))
            lines += ["with contextlib.suppress(ZeroDivisionError):", *indent(body)]
            defined &= after
        elif kind == "loop":
            body, after = draw(blocks(defined | {"i"}, depth + 1, in_loop=True))
            lines += ["for i in range(2):", *indent(body)]
            defined &= after
        else:
            test = draw(st.sampled_from(MLA_TESTS + OTHER_TESTS + sorted(defined - {"x"})))
            then, after_then = draw(blocks(defined, depth + 1, in_loop))
            lines += [f"if {test}:", *indent(then)]
            if draw(st.booleans()):
                other, after_other = draw(blocks(defined, depth + 1, in_loop))
                lines += ["else:", *indent(other)]
                defined = after_then & after_other
            else:
                defined &= after_then
    return lines, defined


@st.composite
def values(draw, defined: frozenset[str]) -> str:
    atoms = ["x", "1", "2", "(x // (x - 3))", "LIMIT", "bump(x)", *MLA_VALUES, *sorted(defined - {"g"})]
    atoms += ["g()"] * ("g" in defined) + [f"sum({v} for _ in range(2))" for v in sorted(defined - {"g"})[:1]]
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
                outcome = ["returns", equivalence.normalize(module.build(config, x, equivalence.log))]
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
