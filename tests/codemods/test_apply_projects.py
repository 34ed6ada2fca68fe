"""`seamfix apply` over several projects, as `seamfix lint` and ruff's hierarchical configuration: a folder
holding a configuration of its own is applied under it (its adapter, its excludes), paths given from two
projects each take their own, and a project that cannot be applied leaves only its own files untouched.

Behaviour is checked by importing each rewritten builder in a fresh interpreter (the project's source root on
``sys.path``) and calling it under MLA on and off, before and after."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from seamfix_testing import run_seamfix

BUILDER = (
    "CALLS = []\n\n\ndef build(config):\n    if config.multi_latent_attention:\n"
    "        CALLS.append('mla')\n        return config.q_lora_rank\n    return 'dense'\n"
)
CONFIGS = ({"multi_latent_attention": True, "q_lora_rank": 7}, {"multi_latent_attention": False, "q_lora_rank": None})


def outcomes(source_root: Path, module: str) -> list:
    """``module.build`` under each of CONFIGS, and the side effects it recorded, in a fresh interpreter."""
    program = (
        "import json, sys, types\n"
        f"sys.path.insert(0, {str(source_root)!r})\n"
        f"import {module} as m\n"
        f"results = [m.build(types.SimpleNamespace(**c)) for c in {list(CONFIGS)!r}]\n"
        "print(json.dumps([results, m.CALLS]))\n"
    )
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, check=True, timeout=60)
    return json.loads(done.stdout)


def write(root: Path, files: dict[str, str]) -> None:
    for relpath, text in files.items():
        (root / relpath).parent.mkdir(parents=True, exist_ok=True)
        (root / relpath).write_text(text)


def test_a_nested_project_is_applied_under_its_own_configuration(tmp_path: Path) -> None:
    write(tmp_path, {
        "pyproject.toml": '[tool.seamfix]\nadapter = "core/mla_seam.py"\n',
        "core/__init__.py": "", "core/builder.py": BUILDER,
        "sub/pyproject.toml": '[tool.seamfix]\nadapter = "pkg/mla_seam.py"\nextend-exclude = ["generated"]\n',
        "sub/pkg/__init__.py": "", "sub/pkg/builder.py": BUILDER,
        "sub/generated/__init__.py": "", "sub/generated/builder.py": BUILDER,
    })  # fmt: skip
    before = {"core": outcomes(tmp_path, "core.builder"), "sub": outcomes(tmp_path / "sub", "pkg.builder")}

    applied = run_seamfix("apply", ".", cwd=tmp_path)

    assert applied.code == 0, applied.stderr
    # The nested project's excluded folder is not touched, as lint does not check it.
    assert (tmp_path / "sub/generated/builder.py").read_text() == BUILDER
    assert (tmp_path / "sub/pkg/mla_seam.py").is_file() and (tmp_path / "core/mla_seam.py").is_file()
    assert "from pkg import mla_seam" in (tmp_path / "sub/pkg/builder.py").read_text()
    assert "from core import mla_seam" in (tmp_path / "core/builder.py").read_text()
    for adapter in ("core/mla_seam.py", "sub/pkg/mla_seam.py"):  # a predicate and one moved arm each
        assert (tmp_path / adapter).read_text().count("\ndef ") == 2
    after = {"core": outcomes(tmp_path, "core.builder"), "sub": outcomes(tmp_path / "sub", "pkg.builder")}
    assert after == before
    assert run_seamfix("lint", ".", cwd=tmp_path).code == 0
    assert run_seamfix("apply", ".", "--check", cwd=tmp_path).code == 0


def test_paths_of_two_projects_each_take_their_own_adapter(tmp_path: Path) -> None:
    write(tmp_path, {
        "a/pyproject.toml": '[tool.seamfix]\nadapter = "seam_a.py"\n', "a/builder_a.py": BUILDER,
        "b/pyproject.toml": '[tool.seamfix]\nadapter = "seam_b.py"\n', "b/builder_b.py": BUILDER,
    })  # fmt: skip
    before = [outcomes(tmp_path / "a", "builder_a"), outcomes(tmp_path / "b", "builder_b")]

    applied = run_seamfix("apply", "a/builder_a.py", "b/builder_b.py", cwd=tmp_path)

    assert applied.code == 0, applied.stderr
    assert "import seam_a" in (tmp_path / "a/builder_a.py").read_text()
    assert "import seam_b" in (tmp_path / "b/builder_b.py").read_text()
    assert not (tmp_path / "a/seam_b.py").exists() and not (tmp_path / "b/seam_a.py").exists()
    assert [outcomes(tmp_path / "a", "builder_a"), outcomes(tmp_path / "b", "builder_b")] == before
    assert "Rewrote 4 files: 2 conditionals routed, 2 arms moved." in applied.stderr


def test_a_project_without_an_adapter_is_an_error_that_leaves_only_its_own_files(tmp_path: Path) -> None:
    write(tmp_path, {
        "pyproject.toml": "[tool.seamfix]\n", "top.py": BUILDER,
        "sub/pyproject.toml": '[tool.seamfix]\nextend-exclude = ["x"]\n', "sub/lib.py": BUILDER,
        "other/pyproject.toml": '[tool.seamfix]\nadapter = "seam.py"\n', "other/builder.py": BUILDER,
    })  # fmt: skip

    applied = run_seamfix("apply", ".", cwd=tmp_path)

    assert applied.code == 2
    errors = [line for line in applied.stderr.splitlines() if line.startswith("seamfix: error:")]
    assert [error.split(":")[2].strip() for error in errors] == ["pyproject.toml", "sub/pyproject.toml"], errors
    assert (tmp_path / "top.py").read_text() == BUILDER and (tmp_path / "sub/lib.py").read_text() == BUILDER
    assert "import seam" in (tmp_path / "other/builder.py").read_text()  # the project that can be applied is


def test_one_config_file_governs_every_folder_with_config(tmp_path: Path) -> None:
    write(tmp_path, {
        "seamfix.toml": 'adapter = "seam.py"\n', "top.py": BUILDER,
        "sub/pyproject.toml": '[tool.seamfix]\nadapter = "own_seam.py"\n', "sub/lib.py": BUILDER,
    })  # fmt: skip

    applied = run_seamfix("apply", ".", "--config", "seamfix.toml", cwd=tmp_path)

    assert applied.code == 0, applied.stderr
    assert "from sub" not in (tmp_path / "sub/lib.py").read_text()
    assert "import seam" in (tmp_path / "sub/lib.py").read_text() and not (tmp_path / "sub/own_seam.py").exists()
