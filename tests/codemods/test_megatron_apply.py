"""`seamfix apply` on real upstream code: megatron-core 0.16.1's sources from its PyPI wheel, and Megatron-Core
main (0.20) from the snapshot in ``<repo>/../shared/upstream``.

With `allow` naming the MLA implementation files, apply leaves for lint only findings its summary names with
a reason (sites it cannot prove safe to rewrite), the tree compiles, every module it rewrote imports as in a
fresh interpreter, and tiny GPTModels (MLA and dense) built on CPU from the rewritten tree give bit-identical
losses and gradients to those built from the original.
"""

from __future__ import annotations

import compileall
import filecmp
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from test_megatron_corpus import ALLOW, megatron_tree  # noqa: F401 - the fixture that downloads the wheel

from seamfix_testing import run_seamfix

sys.path.append(str(Path(__file__).parents[1] / "runtime" / "megatron"))
from megatron_releases import MAIN, release_dir  # noqa: E402 - a sibling test folder's helper

ADAPTER = "megatron/core/mla_seam.py"
WORKER = Path(__file__).with_name("megatron_model.py")
IMPORTER = Path(__file__).with_name("import_each.py")
RELEASES = ("0.16.1", MAIN)  # the PyPI release of test_megatron_corpus, and main
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", params=RELEASES)
def upstream(request, tmp_path_factory) -> Path:
    """The original tree of one release, configured as test_megatron_corpus lints it."""
    if request.param != MAIN:
        return request.getfixturevalue("megatron_tree")
    tree = tmp_path_factory.mktemp("main") / "tree"
    shutil.copytree(release_dir(MAIN), tree)  # megatron/core and the sitecustomize main needs on Python 3.11
    allow = ", ".join(f'"{path}"' for path in ALLOW)
    (tree / "pyproject.toml").write_text(f"[tool.seamfix]\nallow = [{allow}]\nrespect-gitignore = false\n")
    return tree


@pytest.fixture(scope="module")
def rewritten(upstream, tmp_path_factory):
    tree = tmp_path_factory.mktemp("rewritten") / "tree"
    shutil.copytree(upstream, tree)
    allow = ", ".join(f'"{path}"' for path in ALLOW)
    (tree / "pyproject.toml").write_text(f'[tool.seamfix]\nadapter = "{ADAPTER}"\nallow = [{allow}]\n')
    result = run_seamfix("apply", cwd=tree)
    assert result.code in (0, 1), result.stderr
    (tree.parent / "summary.txt").write_text(result.stderr)
    return tree


def changed_files(original: Path, rewritten: Path) -> list[str]:
    changed = []
    for path in sorted((rewritten / "megatron").rglob("*.py")):
        relative = path.relative_to(rewritten)
        source = original / relative
        if not source.exists() or not filecmp.cmp(source, path, shallow=False):
            changed.append(relative.as_posix())
    return changed


def test_every_remaining_finding_is_explained_and_the_tree_compiles(rewritten):
    summary = (rewritten.parent / "summary.txt").read_text()
    explained = {line.strip().split(": ")[0] for line in summary.splitlines() if line.startswith("  ")}
    remaining = run_seamfix("lint", "--no-cache", "--format", "json", cwd=rewritten).json()
    unexplained = [f for f in remaining if f"{f['path']}:{f['line']}:{f['column']}" not in explained]
    assert not [f for f in unexplained if f["path"] not in explained], unexplained
    assert compileall.compile_dir(rewritten / "megatron", quiet=2, force=True)
    again = run_seamfix("apply", "--check", cwd=rewritten)  # nothing more to change; what stays is named again
    assert again.code == (1 if remaining else 0) and "Nothing to change." in again.stderr, again.stderr
    assert "untouched" not in again.stderr, again.stderr  # a second run plans nothing a check refuses


def test_only_files_with_findings_and_the_adapter_change(upstream, rewritten):
    findings = run_seamfix("lint", "--no-cache", "--format", "json", cwd=upstream).json()
    with_findings = {finding["path"] for finding in findings}
    changed = changed_files(upstream, rewritten)
    assert ADAPTER in changed and len(changed) > 5
    assert set(changed) - {ADAPTER} <= with_findings


def run_in(tree: Path, *command: str) -> subprocess.CompletedProcess:
    """``python *command`` with ``tree`` as the megatron-core it imports (main's sitecustomize included)."""
    environment = {**os.environ, "PYTHONPATH": str(tree), "NO_VCS_VERSION": "1"}
    return subprocess.run([sys.executable, *command], cwd=tree, env=environment, capture_output=True, text=True,
                          timeout=600)  # fmt: skip


def test_every_rewritten_module_imports_as_in_a_fresh_interpreter(upstream, rewritten):
    modules = [path.removesuffix(".py").replace("/", ".") for path in changed_files(upstream, rewritten)]
    proc = run_in(rewritten, str(IMPORTER), *(module.removesuffix(".__init__") for module in modules))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == {}


def test_gpt_models_train_identically_from_the_rewritten_tree(upstream, rewritten, tmp_path):
    outputs = []
    for name, tree in (("original", upstream), ("rewritten", rewritten)):
        proc = run_in(tree, str(WORKER), str(tmp_path / f"{name}.rendezvous"))
        assert proc.returncode == 0, proc.stderr[-3000:]
        outputs.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    original, after = outputs
    assert set(original) == {"mla", "dense"} and original["mla"]["loss"] != original["dense"]["loss"]
    assert after == original
