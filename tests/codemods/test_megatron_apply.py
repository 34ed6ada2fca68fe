"""`seamfix apply` on real upstream code: megatron-core 0.16.1's sources from its PyPI wheel.

With `allow` naming the MLA implementation files, apply leaves for lint only findings its summary names with
a reason (sites it cannot prove safe to rewrite), the tree compiles, every module it rewrote imports in a
fresh interpreter, and tiny GPTModels (MLA and dense) built on CPU from the
rewritten tree give bit-identical losses and gradients to those built from the original.
"""

from __future__ import annotations

import compileall
import filecmp
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from test_megatron_corpus import ALLOW, megatron_tree  # noqa: F401 - the fixture that downloads the wheel

from seamfix_testing import run_seamfix

ADAPTER = "megatron/core/mla_seam.py"
# megatron-core's own dependencies; torch pinned to a CPU wheel (plain `torch` would fetch the CUDA build)
RUNTIME = {"torch": "torch==2.13.0", "numpy": "numpy", "packaging": "packaging>=24.2"}
WORKER = Path(__file__).with_name("megatron_model.py")
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def rewritten(megatron_tree, tmp_path_factory):  # noqa: F811
    tree = tmp_path_factory.mktemp("rewritten") / "tree"
    shutil.copytree(megatron_tree / "megatron", tree / "megatron")
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


def test_only_files_with_findings_and_the_adapter_change(megatron_tree, rewritten):  # noqa: F811
    findings = run_seamfix("lint", "--no-cache", "--format", "json", cwd=megatron_tree).json()
    with_findings = {finding["path"] for finding in findings}
    changed = changed_files(megatron_tree, rewritten)
    assert ADAPTER in changed and len(changed) > 5
    assert set(changed) - {ADAPTER} <= with_findings


@pytest.fixture(scope="module")
def torch_path(request):
    """Where megatron-core's dependencies import from: this interpreter, else a folder in pytest's cache."""
    missing = [requirement for module, requirement in RUNTIME.items() if importlib.util.find_spec(module) is None]
    if not missing:
        return ""
    target = request.config.cache.mkdir("megatron-runtime-torch-2.13.0")
    if not all((target / module).is_dir() for module in RUNTIME):
        command = [sys.executable, "-m", "pip", "install", "-q", "--target", str(target), *RUNTIME.values()]
        subprocess.run(command, check=True, timeout=1200)
    return str(target)


def run_in(tree: Path, torch_path: str, *command: str) -> subprocess.CompletedProcess:
    path = os.pathsep.join(p for p in (str(tree), torch_path) if p)
    return subprocess.run(
        [sys.executable, *command], cwd=tree, env={**os.environ, "PYTHONPATH": path}, capture_output=True,
        text=True, timeout=600,
    )  # fmt: skip


def test_every_rewritten_module_imports_in_a_fresh_interpreter(megatron_tree, rewritten, torch_path):  # noqa: F811
    modules = [path.removesuffix(".py").replace("/", ".") for path in changed_files(megatron_tree, rewritten)]
    for module in modules:
        proc = run_in(rewritten, torch_path, "-W", "ignore", "-c", f"import {module}")
        assert proc.returncode == 0, (module, proc.stderr[-2000:])


def test_gpt_models_train_identically_from_the_rewritten_tree(megatron_tree, rewritten, torch_path, tmp_path):  # noqa: F811
    outputs = []
    for name, tree in (("original", megatron_tree), ("rewritten", rewritten)):
        proc = run_in(tree, torch_path, str(WORKER), str(tmp_path / f"{name}.rendezvous"))
        assert proc.returncode == 0, proc.stderr[-3000:]
        outputs.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    original, after = outputs
    assert set(original) == {"mla", "dense"} and original["mla"]["loss"] != original["dense"]["loss"]
    assert after == original
