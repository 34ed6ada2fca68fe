"""Shared helpers: build small projects on disk and run the real ``seamfix`` command on them."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str

    def json(self):
        return json.loads(self.stdout)


def run_seamfix(*args: str, cwd: Path) -> Run:
    """``python -m seamfix ARGS`` in ``cwd``: the real CLI, exit code and streams."""
    proc = subprocess.run(
        [sys.executable, "-m", "seamfix", *args], cwd=cwd, capture_output=True, text=True, timeout=300
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    return Run(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture
def project(tmp_path):
    """A factory: ``project({"pyproject.toml": "...", "pkg/a.py": "..."})`` writes files, returns the root."""

    def make(files: dict[str, str | bytes]) -> Path:
        for name, content in files.items():
            path = tmp_path / name
            path.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                path.write_bytes(content)
            else:
                path.write_text(textwrap.dedent(content))
        return tmp_path

    return make


MLA_IF = "def f(cfg):\n    if cfg.multi_latent_attention:\n        return 1\n    return 0\n"
