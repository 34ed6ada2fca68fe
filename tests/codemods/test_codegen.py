"""`codemods.codegen` gives exactly what LibCST's own code generation, `PositionProvider` and `node.children`
give (but for formatting nodes), on every fixture and on a module of awkward layout."""

from __future__ import annotations

from pathlib import Path

import libcst as cst
import pytest
from libcst.metadata import MetadataWrapper, PositionProvider

from seamfix.codemods.codegen import FORMATTING, code_of, positions_and_parents

REPO = Path(__file__).resolve().parents[2]
AWKWARD = (
    "# -*- coding: utf-8 -*-\r\n"
    '"""Doc."""\r\n'
    "import os, sys as system  # comment\r\n"
    "x = (1,\r\n     2); y = 3 \\\r\n    + 4\r\n"
    "@decorator(\r\n    arg)\r\nclass A(B, metaclass=M):\r\n"
    "\tdef f(self, a: int = 1, *args, b, **kw) -> 'A':\r\n"
    '\t\ts = f"{a!r:>{b}} {{literal}}" """multi\r\nline"""\r\n'
    "\t\tif (n := len(args)) > 1 and not kw: return [i async for i in a] if a else {k: v for k, v in kw}\r\n"
    "\t\telif a: pass\r\n"
    "\t\telse:\r\n\t\t\ttry: yield from a\r\n\t\t\texcept* (E, F) as e: raise\r\n\t\t\tfinally: del a[1:2, ::3]\r\n"
    "\t\tmatch a:\r\n\t\t\tcase [1, *rest] | {'k': _} if rest: lambda: (yield)\r\n"
    "\t\t\tcase Point(x=0) as p: global g; nonlocal_ = ~-p @ p ** 2\r\n"
    "\t\treturn (((a)))\r\n"
    "with (open(x) as f, open(y)): print(*x, **y, sep='')\r\n"
    "# trailing comment without a newline"
)


def sources() -> list[str]:
    return [AWKWARD, *(path.read_text() for path in sorted(REPO.glob("fixtures/**/*.py")))]


@pytest.mark.parametrize("text", sources())
def test_code_positions_and_parents_are_libcsts(text):
    module = cst.parse_module(text)
    assert code_of(module) == module.code == text
    assert all(code_of(module, statement) == module.code_for_node(statement) for statement in module.body)
    expected_parents = {}
    stack: list[cst.CSTNode] = [module]
    while stack:
        node = stack.pop()
        for child in node.children:
            expected_parents[child] = node
            stack.append(child)
    positions, parents = positions_and_parents(module)
    expected = MetadataWrapper(module, unsafe_skip_copy=True).resolve(PositionProvider)
    # Formatting nodes are left out; every other node LibCST positions has its position and its parent.
    located = {node for node in expected if type(node) not in FORMATTING}
    assert located and all(type(node) in FORMATTING for node in expected.keys() - located)
    assert positions.keys() == located and all(positions[node] == expected[node] for node in located)
    assert parents.keys() == located - {module}
    assert all(parents[node] is expected_parents[node] for node in parents)
    assert not any(isinstance(node, (cst.BaseExpression, cst.BaseStatement, cst.BaseSuite)) for node in FORMATTING)
