"""Every codemod fixture: `<case>.before.py` -> `<case>.after.py` and `<case>.adapter.py`, then the guarantees.

Set SEAMFIX_UPDATE_FIXTURES=1 to write the expected files from the current output (review the diff).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from style import new_findings_on_touched_lines

from seamfix.codemods.apply import plan_apply, write_changes
from seamfix.config import load_settings
from seamfix.engine import lint
from seamfix_testing import REPO

FIXTURES = REPO / "fixtures" / "codemods"
CASES = sorted(FIXTURES.glob("*/*.before.py"))
EQUIVALENCE = Path(__file__).with_name("equivalence.py")
# A line length other than ruff's default, so that the output is checked against the project's own settings.
CONFIG = '[tool.seamfix]\nadapter = "mla_seam.py"\nallow = ["mla_impl.py"]\n\n[tool.ruff]\nline-length = 100\n'
UPDATE = os.environ.get("SEAMFIX_UPDATE_FIXTURES") == "1"


def case_name(before: Path) -> str:
    return before.name.removesuffix(".before.py")


def make_project(root: Path, source: bytes) -> Path:
    root.mkdir()
    (root / "pyproject.toml").write_text(CONFIG)
    shutil.copy(FIXTURES / "mla_impl.py", root / "mla_impl.py")
    (root / "case.py").write_bytes(source)
    return root


def apply(root: Path) -> int:
    settings = load_settings(root)
    plan = plan_apply([root], settings, cwd=root)
    assert not plan.errors, plan.errors
    write_changes(plan)
    return len(plan.changes)


def behaviour(directory: Path) -> list:
    proc = subprocess.run(
        [sys.executable, str(EQUIVALENCE), str(directory), "case"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def expect(path: Path, actual: str | None) -> None:
    if UPDATE:
        if actual is None:
            path.unlink(missing_ok=True)
        else:
            path.write_text(actual)
    expected = path.read_text() if path.exists() else None
    assert actual == expected, f"{path.name} differs"


@pytest.mark.parametrize("before", CASES, ids=lambda p: f"{p.parent.name}/{case_name(p)}")
def test_fixture(before: Path, tmp_path: Path) -> None:
    stem = before.with_name(case_name(before))
    original = make_project(tmp_path / "before", before.read_bytes())
    rewritten = make_project(tmp_path / "after", before.read_bytes())

    apply(rewritten)
    adapter = rewritten / "mla_seam.py"
    expect(stem.with_suffix(".after.py"), (rewritten / "case.py").read_text())
    expect(stem.with_suffix(".adapter.py"), adapter.read_text() if adapter.exists() else None)

    assert not new_findings_on_touched_lines(original, rewritten), "ruff (I, E501, format) on what apply wrote"

    remaining = lint([rewritten], load_settings(rewritten), cwd=rewritten, use_cache=False).findings
    expect(stem.with_suffix(".left"), "".join(f"{f.line}:{f.column}\n" for f in remaining) or None)

    snapshot = {p.name: p.read_bytes() for p in rewritten.glob("*.py")}
    assert apply(rewritten) == 0
    assert {p.name: p.read_bytes() for p in rewritten.glob("*.py")} == snapshot

    results = behaviour(original)
    assert results, "the harness called no function of this case"
    assert behaviour(rewritten) == results
