"""The fixtures shared by the suite; plain helpers live in ``seamfix_testing``."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest


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
