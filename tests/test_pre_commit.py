"""The hook as users run it: the real pre-commit installs this repository and runs it on a git repo."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import MLA_IF, REPO


def git(*args, cwd):
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


@pytest.mark.slow
def test_pre_commit_try_repo_fails_on_a_leak_and_names_it(tmp_path):
    if not (REPO / ".git").exists():
        pytest.fail("the pre-commit test needs seamfix's own git checkout")
    user = tmp_path / "user-repo"
    user.mkdir()
    (user / "pyproject.toml").write_text('[tool.seamfix]\nadapter = "fork/mla_seam.py"\n')
    (user / "fork").mkdir()
    (user / "fork/model.py").write_text(MLA_IF)
    (user / "fork/clean.py").write_text("from fork import mla_seam\n\ndef f(cfg):\n    return mla_seam.uses_mla(cfg)\n")
    (user / "fork/mla_seam.py").write_text(MLA_IF)
    git("init", "-q", cwd=user)
    git("add", ".", cwd=user)
    env = {**os.environ, "PRE_COMMIT_HOME": str(tmp_path / "pre-commit-home"), "GIT_AUTHOR_NAME": "t",
           "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}  # fmt: skip
    command = [sys.executable, "-m", "pre_commit", "try-repo", str(REPO), "seamfix", "--all-files", "--color", "never"]
    proc = subprocess.run(command, cwd=user, env=env, capture_output=True, text=True, timeout=900)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 1, output
    assert "fork/model.py:2:8: SEAM001" in output
    assert "clean.py" not in output.split("seamfix", 1)[1] and "mla_seam.py:" not in output

    (user / "fork/model.py").write_text(
        "from fork import mla_seam\n\ndef f(cfg):\n    return 1 if mla_seam.uses_mla(cfg) else 0\n"
    )
    git("add", ".", cwd=user)
    proc = subprocess.run(command, cwd=user, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert Path(user / ".seamfix_cache").is_dir()  # require_serial + the cache: hooks runs share it
