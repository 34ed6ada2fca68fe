"""`seamfix apply` acts on exactly the decision sites lint reports (the shared analysis's), and on nothing else.

For every SEAM001 sample and every codemod fixture: a source without a site is left byte for byte; after the
rewrite, the findings lint still reports are exactly those apply names as left (with its reason), none is new;
and every line apply changed belongs to a reported site's statement (a moved arm is part of its `if`), to the
definition of an alias a site reads (routed where it is set), or to an import (the seam's, an MLA import left
unused).
"""

from __future__ import annotations

import ast
import difflib
from collections import Counter
from pathlib import Path

import pytest

from seamfix.codemods.context import Seam
from seamfix.codemods.project import Project
from seamfix.codemods.rewrite import rewrite_file
from seamfix.config import Settings
from seamfix.engine import check_options
from seamfix.file_checker import FileChecker
from seamfix.findings import Finding
from seamfix.lint_rules.mla_conditional import MLAConditional
from seamfix_testing import REPO

SETTINGS = Settings(root=Path.cwd(), adapter="mla_seam.py")
SOURCES = [
    *(pytest.param(sample, id=f"valid-{index}") for index, sample in enumerate(MLAConditional.VALID)),
    *(pytest.param(sample.source, id=f"invalid-{index}") for index, sample in enumerate(MLAConditional.INVALID)),
    *(
        pytest.param(path.read_text(), id=f"{path.parent.name}/{path.name.removesuffix('.py')}")
        for path in sorted((REPO / "fixtures" / "codemods").glob("*/*.py"))
        if not path.name.endswith((".after.py", ".adapter.py"))
    ),
]


@pytest.fixture(scope="module")
def checker() -> FileChecker:
    return FileChecker(check_options(SETTINGS))


def sites(checker: FileChecker, source: bytes) -> list[Finding]:
    return [f for f in checker.check(source, "case.py") if f.code == MLAConditional.code]


@pytest.mark.parametrize("source", SOURCES)
def test_apply_acts_on_exactly_the_sites_lint_reports(source: str, checker: FileChecker) -> None:
    data = source.encode()
    before = sites(checker, data)
    result = rewrite_file(data, "case.py", checker, Seam(("mla_seam",)), Project(root=Path.cwd()))
    assert result.error is None
    if not before:
        assert result.data == data and not result.functions, "apply rewrote a file lint finds no decision in"
        return
    after = sites(checker, result.data)
    assert not Counter((f.scope, f.kind) for f in after) - Counter((f.scope, f.kind) for f in before), (
        "the rewrite made a decision lint did not report before"
    )
    if result.refused is None:
        named = {entry.split(": ", 1)[0] for entry in result.left}
        assert named == {f"{f.line}:{f.column}" for f in after}, (result.left, after)
    else:
        assert result.data == data
    allowed = _allowed_lines(source, before)
    old_lines, new_lines = source.splitlines(), result.data.decode().splitlines()
    matcher = difflib.SequenceMatcher(a=old_lines, b=new_lines, autojunk=False)
    for tag, first, last, new_first, new_last in matcher.get_opcodes():
        if tag in ("replace", "delete"):
            touched = set(range(first + 1, last + 1))
            assert touched <= allowed, f"apply changed lines {sorted(touched - allowed)} outside every site"
        if tag == "insert":
            inserted = [line for line in new_lines[new_first:new_last] if line.strip()]
            assert first + 1 in allowed or first in allowed or all(_is_import(line) for line in inserted), inserted


def _allowed_lines(source: str, findings: list[Finding]) -> set[int]:
    """Lines of each site's innermost statement, of the assignments of the aliases the sites read (and of the
    aliases those read, transitively), and of imports."""
    tree = ast.parse(source)
    statements = [node for node in ast.walk(tree) if isinstance(node, ast.stmt)]
    allowed: set[int] = set()
    read: set[str] = set()
    for finding in findings:
        around = [s for s in statements if _first_line(s) <= finding.line and finding.end_line <= s.end_lineno]
        innermost = min(around, key=lambda s: s.end_lineno - _first_line(s))
        allowed.update(range(_first_line(innermost), innermost.end_lineno + 1))
        read |= _names_on(tree, finding.line, finding.end_line)
    assignments = [s for s in statements if isinstance(s, (ast.Assign, ast.AnnAssign, ast.AugAssign))]
    grown = True
    while grown:
        grown = False
        for statement in assignments:
            targets = statement.targets if isinstance(statement, ast.Assign) else [statement.target]
            bound = {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
            if bound & read and statement.lineno not in allowed:
                allowed.update(range(statement.lineno, statement.end_lineno + 1))
                read |= {n.id for n in ast.walk(statement.value) if isinstance(n, ast.Name)}
                grown = True
    for statement in statements:
        if isinstance(statement, (ast.Import, ast.ImportFrom)):
            allowed.update(range(statement.lineno, statement.end_lineno + 1))
    return allowed


def _first_line(statement: ast.stmt) -> int:
    """Where a statement starts, a definition's decorators included."""
    decorators = getattr(statement, "decorator_list", None)
    return decorators[0].lineno if decorators else statement.lineno


def _names_on(tree: ast.Module, first: int, last: int) -> set[str]:
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and first <= n.lineno <= last}


def _is_import(line: str) -> bool:
    return line.lstrip().startswith(("import ", "from "))


@pytest.mark.parametrize(
    "seam_import, seam",
    [
        ("import mla_seam", "mla_seam"),
        ("import mla_seam as adapter", "adapter"),
        ("from . import mla_seam", "mla_seam"),
    ],
)
def test_an_arm_that_only_calls_the_seam_is_not_moved_again(seam_import: str, seam: str, checker) -> None:
    """The seam decides what its arguments mean, for apply as for lint: an arm already moved (its call passes
    an MLA-named variable) is no MLA arm, and the test that stays (a parameter named for MLA) is named."""
    source = (
        f"{seam_import}\n\n\ndef build(cfg, multi_latent_attention, mla_down_proj_fusion):\n"
        f"    if multi_latent_attention:\n        return {seam}.build_arm(mla_down_proj_fusion)\n    return None\n"
    ).encode()
    result = rewrite_file(source, "case.py", checker, Seam(("mla_seam",)), Project(root=Path.cwd()))
    assert (result.data, result.functions, result.moved) == (source, [], 0)
    assert [entry.split(": ", 1)[0] for entry in result.left] == ["5:8"]
