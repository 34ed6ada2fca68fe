"""`codemods/bindings.py` (ast + symtable) agrees with LibCST's ScopeProvider, which it replaced for speed,
except where LibCST misses a binding that Python makes."""

from __future__ import annotations

import ast
import builtins
import textwrap

import libcst as cst
import pytest
from libcst.metadata import BuiltinScope, ClassScope, GlobalScope, MetadataWrapper, PositionProvider, ScopeProvider

from seamfix.codemods.bindings import MODULE_ATTRIBUTES, Bindings
from seamfix_testing import REPO

SCOPES = textwrap.dedent(
    """\
    import os.path as osp, sys
    from pkg import thing as alias_thing
    X = 1
    É = "é"; after_non_ascii = X


    class K:
        attr = X
        other = attr + 1

        def method(self, a=attr, *args, b: "K" = None, **kw):
            return attr, a, self.attr, [attr for _ in args], (lambda q=a: q + a)(), other


    def outer(p, q=X):
        global G
        G = 1
        total = 0

        def inner(r):
            nonlocal total
            total += r
            return p + r + G

        lam = lambda z, *w: z + p + total
        squares = [v * p for v in range(q) if v > total]
        pairs = {k: v for k, v in zip(sys.argv, range(3))}
        gen = (u for u in [w for w in squares])
        import json
        return inner, lam, pairs, gen, json, osp, alias_thing, undefined_name, len, É


    class Outer:
        class Inner:
            value = Outer

        def method(self):
            return Inner, Outer
    """
)
SOURCES = {"scopes": SCOPES} | {
    path.name: path.read_text(encoding="utf-8")
    for path in sorted((REPO / "fixtures" / "codemods").glob("*/*.py"))
    if path.name != "deep_nesting.py"  # too deep for LibCST's scope analysis: apply refuses it
}


def libcst_binding(scopes, name: cst.Name) -> str:
    """What `seamfix apply` asked LibCST before: the scope that binds the name, skipping class bodies; a name
    no scope binds is a builtin if Python has it, else unbound (LibCST calls both builtin)."""
    scope = own = scopes.get(name)
    while scope is not None and not isinstance(scope, BuiltinScope):
        if (scope is own or not isinstance(scope, ClassScope)) and scope.assignments[name.value]:
            return "global" if isinstance(scope, GlobalScope) else "local"
        scope = scope.parent
    if name.value in MODULE_ATTRIBUTES:
        return "global"  # `__name__`, `__doc__`: the module's own (LibCST: builtins)
    return "builtin" if hasattr(builtins, name.value) or name.value in ("None", "True", "False") else "unbound"


def uses(text: str):
    """Every variable use of ``text`` (LibCST name, position, LibCST's binding)."""
    wrapper = MetadataWrapper(cst.parse_module(text))
    positions, scopes = wrapper.resolve(PositionProvider), wrapper.resolve(ScopeProvider)
    definitions = {id(node.name) for node in scopes if isinstance(node, (cst.FunctionDef, cst.ClassDef))}
    for node in scopes:
        if not isinstance(node, cst.Name) or scopes.get(node) is None or id(node) in definitions:
            continue
        if node in positions:  # (names in string annotations are parsed apart from the module)
            yield node.value, positions[node].start, libcst_binding(scopes, node)


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_bindings_agree_with_libcst(name):
    text = SOURCES[name]
    bindings = Bindings(ast.parse(text), text, name)
    checked = 0
    for value, where, expected in uses(text):
        occurrence = bindings.at(where.line, where.column)
        if value not in ("None", "True", "False"):  # constants in `ast`, builtins either way
            assert occurrence is not None and occurrence.name == value, (value, where)
        assert bindings.binding(occurrence) == expected, (value, where)
        checked += 1
    assert checked


def test_bindings_that_libcst_misses():
    text = textwrap.dedent(
        """\
        def f(items, point):
            print([last := item for item in items], last)
            match point:
                case (x, y):
                    return x + y
        """
    )
    bindings = Bindings(ast.parse(text), text, "misses.py")
    for line, column in [(2, 44), (5, 19), (5, 23)]:  # `last`, `x`, `y` where they are read
        assert bindings.binding(bindings.at(line, column)) == "local"
