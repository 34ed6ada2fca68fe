"""The hooks as users run them: the real pre-commit installs this repository and runs them on a git repo."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from seamfix_testing import MLA_IF, REPO


def git(*args, cwd):
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


def user_repo(tmp_path: Path) -> Path:
    """A git repository with a seamfix config, one MLA leak, one clean module and the adapter."""
    if not (REPO / ".git").exists():
        pytest.fail("the pre-commit test needs seamfix's own git checkout")
    user = tmp_path / "user-repo"
    user.mkdir()
    (user / "pyproject.toml").write_text('[tool.seamfix]\nadapter = "fork/mla_seam.py"\n')
    (user / "fork").mkdir()
    (user / "fork/model.py").write_text(MLA_IF)
    # Calls `f`, which the adapter defines (calls to names it lacks are SEAM902 findings).
    (user / "fork/clean.py").write_text("from fork import mla_seam\n\ndef g(cfg):\n    return mla_seam.f(cfg)\n")
    (user / "fork/mla_seam.py").write_text(MLA_IF)
    git("init", "-q", cwd=user)
    git("add", ".", cwd=user)
    return user


@pytest.fixture(scope="module")
def pre_commit_home(tmp_path_factory) -> Path:
    """One pre-commit home for the module: both hooks share the environment pre-commit installs seamfix into."""
    return tmp_path_factory.mktemp("pre-commit-home")


def try_repo(hook: str, user: Path, pre_commit_home: Path) -> subprocess.CompletedProcess:
    """``pre-commit try-repo <seamfix> HOOK --all-files`` in ``user``, with a pre-commit home apart from the user's."""
    env = {**os.environ, "PRE_COMMIT_HOME": str(pre_commit_home), "GIT_AUTHOR_NAME": "t",
           "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}  # fmt: skip
    command = [sys.executable, "-m", "pre_commit", "try-repo", str(REPO), hook, "--all-files", "--color", "never"]
    return subprocess.run(command, cwd=user, env=env, capture_output=True, text=True, timeout=900)


@pytest.mark.slow
def test_pre_commit_try_repo_fails_on_a_leak_and_names_it(tmp_path, pre_commit_home):
    user = user_repo(tmp_path)
    proc = try_repo("seamfix", user, pre_commit_home)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 1, output
    assert "fork/model.py:2:8: SEAM001" in output
    assert "clean.py" not in output.split("seamfix", 1)[1] and "mla_seam.py:" not in output

    (user / "fork/model.py").write_text(
        "from fork import mla_seam\n\ndef f(cfg):\n    return 1 if mla_seam.f(cfg) else 0\n"
    )
    git("add", ".", cwd=user)
    proc = try_repo("seamfix", user, pre_commit_home)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert Path(user / ".seamfix_cache").is_dir()  # require_serial + the cache: hooks runs share it


@pytest.mark.slow
def test_pre_commit_apply_hook_routes_the_leak_then_passes(tmp_path, pre_commit_home):
    user = user_repo(tmp_path)
    proc = try_repo("seamfix-apply", user, pre_commit_home)
    assert proc.returncode == 1, proc.stdout + proc.stderr  # it changed files: the commit is stopped for review
    assert "if mla_seam.multi_latent_attention(cfg):" in (user / "fork/model.py").read_text()
    assert "def multi_latent_attention(cfg):" in (user / "fork/mla_seam.py").read_text()
    git("add", ".", cwd=user)
    proc = try_repo("seamfix-apply", user, pre_commit_home)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_shipped_lint_hook_skips_excluded_files_pre_commit_passes_it(tmp_path):
    """`pre-commit run --files` with the hook's own entry and file types (as a local hook calling this environment's
    seamfix: no install): pre-commit passes every staged Python file by name, so excluded ones (the project's
    globs, default folders such as `.venv`) must be skipped, a nested project's file judged by its own
    configuration, and a script found by its shebang checked, as ruff's hook does."""
    import yaml  # pre-commit's own dependency

    hook = next(h for h in yaml.safe_load((REPO / ".pre-commit-hooks.yaml").read_text()) if h["id"] == "seamfix")
    user = tmp_path / "user-repo"
    files = {
        "pyproject.toml": '[tool.seamfix]\nextend-exclude = ["gen", "fork/stub.pyi"]\n',
        "sub/pyproject.toml": '[tool.seamfix]\nignore = ["SEAM001"]\n',
        "fork/a.py": MLA_IF,
        "fork/stub.pyi": MLA_IF,
        "fork/script": "#!/usr/bin/env python\n" + MLA_IF,
        "gen/specs.py": MLA_IF,
        ".venv/lib/v.py": MLA_IF,
        "sub/b.py": MLA_IF,
    }
    for name, text in files.items():
        (user / name).parent.mkdir(parents=True, exist_ok=True)
        (user / name).write_text(text)
    (user / "fork/script").chmod(0o755)
    seamfix = Path(sys.executable).parent / "seamfix"
    entry = hook["entry"].replace("seamfix", str(seamfix), 1)
    local = {"id": "seamfix", "name": "seamfix", "language": "system", "entry": entry,
             **{key: hook[key] for key in ("types_or", "require_serial")}}  # fmt: skip
    (user / ".pre-commit-config.yaml").write_text(yaml.safe_dump({"repos": [{"repo": "local", "hooks": [local]}]}))
    git("init", "-q", cwd=user)
    env = {**os.environ, "PRE_COMMIT_HOME": str(tmp_path / "pre-commit-home")}

    def run(*names: str) -> subprocess.CompletedProcess:
        command = [sys.executable, "-m", "pre_commit", "run", "seamfix", "--color", "never", "--files", *names]
        return subprocess.run(command, cwd=user, env=env, capture_output=True, text=True, timeout=300)

    everything = run(*sorted(files))
    flagged = sorted(line.split(":")[0] for line in everything.stdout.splitlines() if "SEAM001" in line)
    assert everything.returncode == 1 and flagged == ["fork/a.py", "fork/script"], everything.stdout
    excluded_only = run("gen/specs.py", "fork/stub.pyi", ".venv/lib/v.py", "sub/b.py")
    assert excluded_only.returncode == 0, excluded_only.stdout
