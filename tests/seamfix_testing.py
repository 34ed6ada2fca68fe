"""Shared test helpers: run the real ``seamfix`` command (a module of its own, since ``conftest`` is a name
that test folders below share)."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

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


MLA_IF = "def f(cfg):\n    if cfg.multi_latent_attention:\n        return 1\n    return 0\n"
