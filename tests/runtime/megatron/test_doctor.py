"""`seamfix doctor` against each supported release (clean) and a patched copy of the newest (reported)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import pytest
from megatron_releases import NEWEST, RELEASES, release_dir


def doctor(megatron_path) -> subprocess.CompletedProcess:
    environment = {**os.environ, "PYTHONPATH": str(megatron_path)}
    command = [sys.executable, "-m", "seamfix", "doctor"]
    return subprocess.run(command, env=environment, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
@pytest.mark.parametrize("version", RELEASES)
def test_every_supported_release_is_understood(version):
    result = doctor(release_dir(version))
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    assert result.stdout == f"megatron-core {version}: the MLA surface is what seamfix's adapter knows.\n"


def _patch(path, after: str, insertion: str) -> None:
    text = path.read_text()
    patched = re.sub(after, lambda match: match.group(0) + insertion, text, count=1, flags=re.S)
    assert patched != text, f"{after!r} not found in {path}"
    path.write_text(patched)


@pytest.mark.slow
def test_a_new_constructor_parameter_and_config_field_are_reported(tmp_path):
    copy = tmp_path / "megatron-core"
    shutil.copytree(release_dir(NEWEST), copy)
    core = copy / "megatron" / "core"
    _patch(
        core / "transformer/multi_latent_attention.py",
        r"class MLASelfAttention\(.*?def __init__\(.*?pg_collection: Optional\[ProcessGroupCollection\] = None,",
        "\n        foo: int = 0,",
    )
    _patch(core / "transformer/transformer_config.py", r"class MLATransformerConfig\(.*?\n    q_lora_rank: int = 512\n",
           "    latent_dropout: float = 0.0\n")  # fmt: skip
    result = doctor(copy)
    assert result.returncode == 1, result.stdout + result.stderr[-3000:]
    assert result.stdout.splitlines() == [
        f"megatron-core {NEWEST}: 2 changes the adapter does not handle yet:",
        "- MLASelfAttention.__init__ has a new parameter `foo`",
        "- MLATransformerConfig has a new field `latent_dropout`",
    ]


def test_doctor_without_megatron_is_a_clear_error(tmp_path):
    (tmp_path / "megatron").mkdir()  # shadows any installed megatron-core, as if it were missing
    (tmp_path / "megatron" / "__init__.py").write_text('raise ImportError("No module named megatron")\n')
    result = doctor(tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith("seamfix: error: doctor needs megatron-core and torch")
