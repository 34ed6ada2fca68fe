"""The README's runnable ``seamfix.runtime.megatron`` examples, run as written on Megatron-Core main: the GPT
one, then the Hybrid one that continues it (the GPT path on every release is the release suite's)."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from megatron_releases import MAIN, REPOSITORY, environment_with

pytestmark = pytest.mark.slow


def runnable_examples() -> list[str]:
    readme = (REPOSITORY / "README.md").read_text()
    section = readme.split("## `seamfix.runtime.megatron`", 1)[1].split("\n## ", 1)[0]
    return [block for block in re.findall(r"```python\n(.*?)```", section, flags=re.S) if "with cpu_mode():" in block]


def test_the_readme_examples_run_as_written():
    blocks = runnable_examples()
    assert len(blocks) == 2  # the GPT example, then the Hybrid one that continues it
    command = [sys.executable, "-W", "ignore", "-c", "\n".join(blocks)]
    result = subprocess.run(command, env=environment_with(MAIN), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
