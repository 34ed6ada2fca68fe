"""`seamfix apply` as users run it: the demo fork end to end, output modes, exit codes, safety guarantees."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from seamfix_testing import MLA_IF, REPO, run_seamfix

CONFIG = '[tool.seamfix]\nadapter = "pkg/mla_seam.py"\n'
DEMO_MODULES = [
    "demo_fork.mla_seam",
    "demo_fork.models.gpt_layer_specs",
    "demo_fork.models.gpt_model",
    "demo_fork.training",
    "demo_fork.transformer.attention",
    "demo_fork.transformer.transformer_config",
]


def snapshot(root: Path) -> dict[str, bytes]:
    files = (p for p in sorted(root.rglob("*")) if p.is_file() and ".seamfix_cache" not in p.parts)
    return {str(p.relative_to(root)): p.read_bytes() for p in files}


@pytest.fixture
def demo(tmp_path):
    root = tmp_path / "demo"
    shutil.copytree(REPO / "fixtures" / "demo", root)
    return root


def test_demo_fork_diff_check_apply_and_rerun(demo):
    before = snapshot(demo)
    diff = run_seamfix("apply", "--diff", cwd=demo)
    assert diff.code == 1, diff.stderr
    assert "+from demo_fork import mla_seam" in diff.stdout and "+++ b/demo_fork/mla_seam.py" in diff.stdout
    check = run_seamfix("apply", "--check", cwd=demo)
    assert (check.code, check.stdout) == (1, "")
    assert snapshot(demo) == before

    applied = run_seamfix("apply", cwd=demo)
    assert applied.code == 1, applied.stderr  # the layer-spec flags stay: an identity predicate would hide them
    assert "Rewrote 6 files: 8 conditionals routed, 4 arms moved." in applied.stderr
    after = snapshot(demo)
    untouched = [name for name in before if name.endswith("__init__.py") or "multi_latent_attention.py" in name]
    assert untouched and all(after[name] == before[name] for name in untouched)
    assert "demo_fork/mla_seam.py" in after
    remaining = run_seamfix("lint", "--no-cache", "--format", "json", cwd=demo).json()
    explained = [line.strip().split(": ")[0] for line in applied.stderr.splitlines() if line.startswith("  ")]
    assert len(remaining) == 1  # the layer-spec flag parameter
    assert sorted(f"{f['path']}:{f['line']}:{f['column']}" for f in remaining) == sorted(explained)
    imports = subprocess.run(
        [sys.executable, "-c", "; ".join(f"import {m}" for m in DEMO_MODULES)], cwd=demo, capture_output=True
    )
    assert imports.returncode == 0, imports.stderr.decode()

    again = run_seamfix("apply", cwd=demo)
    assert "Nothing to change." in again.stderr and again.code == 1  # the finding stays, named again
    assert snapshot(demo) == after
    assert run_seamfix("apply", "--check", cwd=demo).code == 1  # a check agrees with a real run


def test_exit_zero_when_lint_is_clean_afterwards(project):
    root = project({"pyproject.toml": CONFIG, "pkg/__init__.py": "", "pkg/model.py": MLA_IF})
    result = run_seamfix("apply", cwd=root)
    assert result.code == 0, result.stderr
    assert "1 conditional routed" in result.stderr
    assert run_seamfix("lint", "--no-cache", cwd=root).code == 0
    assert (root / "pkg/model.py").read_text().startswith("from pkg import mla_seam\n")


def test_crlf_and_bom_are_kept(project):
    source = "\ufeff# comment\r\ndef f(cfg):\r\n    if cfg.multi_latent_attention:  # why\r\n        return 1\r\n"
    root = project({"pyproject.toml": CONFIG, "pkg/__init__.py": "", "pkg/model.py": source.encode("utf-8")})
    assert run_seamfix("apply", cwd=root).code == 0
    data = (root / "pkg/model.py").read_bytes()
    assert data.startswith(b"\xef\xbb\xbf# comment\r\n")
    assert data.count(b"\n") == data.count(b"\r\n") and b"mla_seam." in data and b"# why\r\n" in data


def test_unparseable_file_is_untouched_and_named_and_others_still_rewritten(project):
    broken = b"def f(cfg):\n    if cfg.multi_latent_attention\n        return 1\n"
    root = project({"pyproject.toml": CONFIG, "pkg/__init__.py": "", "pkg/broken.py": broken, "pkg/ok.py": MLA_IF})
    result = run_seamfix("apply", cwd=root)
    assert result.code == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("seamfix: error:")]
    assert len(errors) == 1 and "pkg/broken.py" in errors[0]
    assert (root / "pkg/broken.py").read_bytes() == broken
    assert "mla_seam" in (root / "pkg/ok.py").read_text()


def test_nothing_outside_the_given_paths_and_the_adapter_is_written(project):
    root = project({"pyproject.toml": CONFIG, "pkg/__init__.py": "", "pkg/a.py": MLA_IF, "pkg/b.py": MLA_IF})
    before = snapshot(root)
    assert run_seamfix("apply", "pkg/a.py", cwd=root).code == 0
    after = snapshot(root)
    changed = {name for name in after if before.get(name) != after[name]}
    assert changed == {"pkg/a.py", "pkg/mla_seam.py"}


def test_rerun_merges_into_a_hand_edited_adapter(project):
    adapter = (
        '"""Our seam."""\n\n\ndef uses_mla(config):\n    return config.multi_latent_attention\n\n\n'
        "def helper():  # hand-written\n    return 42\n"
    )
    other = "def g(cfg):\n    return cfg.q_lora_rank is None or 1 if cfg.multi_latent_attention else 2\n"
    root = project({"pyproject.toml": CONFIG, "pkg/__init__.py": "", "pkg/mla_seam.py": adapter,
                    "pkg/a.py": MLA_IF, "pkg/b.py": other})  # fmt: skip
    assert run_seamfix("apply", cwd=root).code == 0
    text = (root / "pkg/mla_seam.py").read_text()
    assert text.startswith(adapter) and text.count("def uses_mla(") == 1 and "multi_latent_attention(" not in text
    assert "mla_seam.uses_mla(cfg)" in (root / "pkg/a.py").read_text()
    assert "mla_seam.uses_mla(cfg)" in (root / "pkg/b.py").read_text()
    assert "def q_lora_rank_is_none(" in text


# hand-written adapters in a user's own layout: CRLF, tabs, a BOM, imports in an order of their own
HAND_WRITTEN_ADAPTERS = [
    b'"""Our seam."""\r\nimport os\r\n\r\n\r\ndef helper():\r\n    return os.sep\r\n',
    b"import os\nimport json\n\n\ndef helper():\n\treturn json.dumps(os.sep)",
    b'\xef\xbb\xbf"""Our seam."""\n\n\ndef helper():\n    return 42\n',
]


@pytest.mark.parametrize("adapter", HAND_WRITTEN_ADAPTERS, ids=["crlf", "tabs-unsorted-no-eol", "bom"])
def test_a_hand_written_adapter_keeps_its_bytes(project, adapter):
    # apply appends its functions; what the user wrote stays byte for byte, and the new lines end as theirs
    root = project({"pyproject.toml": CONFIG, "pkg/__init__.py": "", "pkg/mla_seam.py": adapter, "pkg/a.py": MLA_IF})
    call = "import types, pkg.a, pkg.mla_seam; print(pkg.a.f(types.SimpleNamespace(multi_latent_attention=1)))"
    before = subprocess.run([sys.executable, "-c", call], cwd=root, capture_output=True, text=True, check=True)
    assert run_seamfix("apply", cwd=root).code == 0
    written = (root / "pkg/mla_seam.py").read_bytes()
    assert written.startswith(adapter) and b"def multi_latent_attention(cfg):" in written
    ending = b"\r\n" if b"\r\n" in adapter else b"\n"
    assert written[len(adapter) :].replace(ending, b"").count(b"\n") == 0 and written.endswith(ending)
    after = subprocess.run([sys.executable, "-c", call], cwd=root, capture_output=True, text=True, check=True)
    assert "mla_seam." in (root / "pkg/a.py").read_text() and after.stdout == before.stdout == "1\n"
    assert run_seamfix("apply", cwd=root).code == 0 and (root / "pkg/mla_seam.py").read_bytes() == written


def test_apply_needs_an_adapter(project):
    root = project({"pyproject.toml": "[tool.seamfix]\n", "a.py": MLA_IF})
    result = run_seamfix("apply", cwd=root)
    assert result.code == 2 and result.stderr.count("\n") == 1 and "adapter" in result.stderr


def test_diff_on_a_clean_tree_prints_nothing_and_exits_zero(project):
    root = project({"pyproject.toml": CONFIG, "pkg/__init__.py": "", "pkg/a.py": "def f(cfg):\n    return 1\n"})
    result = run_seamfix("apply", "--diff", cwd=root)
    assert (result.code, result.stdout) == (0, "")


# Lines Python does not split (a form feed, U+2028 in a comment) and bytes that are no UTF-8 (a latin-1 file)
DIFFED = {
    "pkg/sep.py": ("# page\x0cbreak, line\u2028separator\n" + MLA_IF).encode(),
    "pkg/latin.py": ("# -*- coding: latin-1 -*-\n# caf\xe9\n" + MLA_IF).encode("latin-1"),
    "pkg/crlf.py": MLA_IF.replace("\n", "\r\n").rstrip("\r\n").encode(),
}


def test_the_diff_applied_gives_the_bytes_apply_writes(tmp_path):
    trees = {}
    for name in ("diffed", "written"):
        root = tmp_path / name
        (root / "pkg").mkdir(parents=True)
        (root / "pyproject.toml").write_text(CONFIG)
        (root / "pkg/__init__.py").write_bytes(b"")
        for relpath, data in DIFFED.items():
            (root / relpath).write_bytes(data)
        trees[name] = root
    command = [sys.executable, "-m", "seamfix", "apply", "--diff"]
    diff = subprocess.run(command, cwd=trees["diffed"], capture_output=True)
    assert diff.returncode == 1, diff.stderr
    (tmp_path / "apply.diff").write_bytes(diff.stdout)
    assert run_seamfix("apply", cwd=trees["written"]).code == 0
    patched = subprocess.run(["git", "apply", str(tmp_path / "apply.diff")], cwd=trees["diffed"], capture_output=True)
    assert patched.returncode == 0, patched.stderr
    assert snapshot(trees["diffed"]) == snapshot(trees["written"])
