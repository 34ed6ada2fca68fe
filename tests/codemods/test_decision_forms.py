"""Every decision form lint flags is routed by apply, or named in its summary with the reason it stays; and
each form behaves the same after apply, executed under every config (`equivalence`: configs read by key as a
dict, a logging `Mapping` and a dataclass, configs read by attribute, configs missing the MLA fields).

The forms, and the reasons expected for those left, are `benchmarks/apply_decision_forms.py`'s (its table is
recorded in benchmarks/RESULTS.md). Hypothesis then combines keyed reads with operands that log, under `not`,
`and`, `or`, comparisons (chained too), membership and conditional expressions, and puts them where builders
put tests: returned, in `if`, a comprehension's filter, a lambda, a default, `while`, `assert`, a `case` guard,
an f-string, a walrus."""

from __future__ import annotations

import importlib.util
import sys
import types
from unittest import mock

import equivalence
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from seamfix_testing import REPO

_spec = importlib.util.spec_from_file_location("apply_decision_forms", REPO / "benchmarks" / "apply_decision_forms.py")
forms = sys.modules[_spec.name] = importlib.util.module_from_spec(_spec)  # its dataclass looks itself up there
_spec.loader.exec_module(forms)


@pytest.fixture(scope="module")
def checker():
    return forms.checker()


@pytest.mark.parametrize("name", list(forms.FORMS))
def test_each_form_is_routed_or_named_and_behaves_the_same(name: str, checker) -> None:
    source = forms.FORMS[name]
    fate = forms.fate(source, checker)
    assert fate.findings, "lint flags every form listed"
    assert not fate.silent, f"apply said nothing of {fate.silent}"
    if name in forms.LEFT:
        reasons = forms.LEFT[name] if isinstance(forms.LEFT[name], tuple) else (forms.LEFT[name],)
        assert fate.left and all(any(reason in why for reason in reasons) for why in fate.left), fate.left
    else:
        assert (fate.routed, fate.left) == (fate.findings, []), fate.left
    rewrite = fate.rewrite
    original = equivalence.behaviour(_load(source, []))
    assert original, "the harness called no function of this form"
    assert equivalence.behaviour(_load(rewrite.data.decode(), rewrite.functions)) == original


def _load(code: str, functions) -> types.ModuleType:
    """The module ``code`` as ``case``, importing an adapter made of ``functions`` (under their placeholders,
    as the calls apply wrote name them) as ``mla_seam``."""
    seam = types.ModuleType("mla_seam")
    for function in functions:
        exec(compile(function.code, "mla_seam.py", "exec"), seam.__dict__)
    module = types.ModuleType("case")
    with mock.patch.dict(sys.modules, {"mla_seam": seam}):
        exec(compile(code, "case.py", "exec"), module.__dict__)
    return module


KEYED_READS = [
    "hf_config['multi_latent_attention']",
    "hf_config['q_lora_rank']",
    "hf_config.get('kv_lora_rank')",
    "hf_config.get('multi_latent_attention', log(False))",
    "'q_lora_rank' in hf_config",
]
# `n` is unassigned when x <= 3: reading it raises, after the MLA reads before it
OTHER_OPERANDS = ["log(x)", "x > log(1)", "log(None)", "n"]
# chained comparisons, membership and identity (the thirteenth round)
WIDE_SHAPES = ["{} < {} <= {}", "{} in ({}, None)", "{} is not None", "{} != {} == {}"]
# where a builder puts its test: each evaluates it in another scope or at another time (a comprehension's
# filter, a lambda called later, a default at definition time, a `while` re-testing, `assert`, a `case` guard,
# an f-string, a walrus whose value is returned)
PLACES = [
    "    return {}\n",
    "    if {}:\n        return log('mla')\n    return log('dense')\n",
    "    return [log(i) for i in range(2) if {}]\n",
    "    decide = lambda: {}\n    log('defined')\n    return decide()\n",
    "    def decide(value={}):\n        return value\n\n    log('defined')\n    return decide()\n",
    "    n = 0\n    while {} and n < 2:\n        n += 1\n    return n\n",
    "    assert {}, log('assert')\n    return log('after')\n",
    "    match x:\n        case 0 | 5 if {}:\n            return log('mla')\n    return log('dense')\n",
    '    return f"{{{}!r:>6}}"\n',
    "    return (found := {}), found\n",
]


@st.composite
def keyed_tests(draw, depth: int = 0) -> str:
    """A test over keyed reads of MLA fields and operands with side effects, combined as builders combine them."""
    if depth >= 2 or draw(st.booleans()):
        return draw(st.sampled_from(KEYED_READS + OTHER_OPERANDS))
    left = draw(keyed_tests(depth + 1))
    shape = draw(
        st.sampled_from(["not {}", "{} and {}", "{} or {}", "{} is None", "{} == {}", "{} if {} else {}", *WIDE_SHAPES])
    )
    operands = [left] + [draw(keyed_tests(depth + 1)) for _ in range(shape.count("{}") - 1)]
    return "(" + shape.format(*operands) + ")"


@settings(max_examples=40, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(test=keyed_tests(), place=st.sampled_from(PLACES))
def test_generated_keyed_tests_are_routed_or_named_and_behave_the_same(test: str, place: str, checker) -> None:
    source = "def f(hf_config, x, log):\n    if x > 3:\n        n = 2\n" + place.format(test)
    fate = forms.fate(source, checker)
    assert not fate.silent, f"apply said nothing of {fate.silent}"
    assert not [why for why in fate.left if "alone is a name" in why], "each MLA string here is read or compared"
    rewrite = fate.rewrite
    original = equivalence.behaviour(_load(source, []))
    assert equivalence.behaviour(_load(rewrite.data.decode(), rewrite.functions)) == original
