"""`seamfix doctor` against each supported release (clean), a patched copy of the newest (reported), and the
megatron-cores it cannot check (a clear error, exit 2)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import pytest
from megatron_releases import MAIN, NEWEST, RELEASES, VERSIONS, environment_with, release_dir


def doctor(release: str, *paths) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "seamfix", "doctor"]
    return subprocess.run(command, env=environment_with(release, *paths), capture_output=True, text=True, timeout=300)


@pytest.mark.slow
@pytest.mark.parametrize("release", RELEASES)
def test_every_supported_release_is_understood(release, release_checks):
    text, code = release_checks(release)["doctor"]  # doctor's report, run in the release's worker process
    assert (text, code) == (f"megatron-core {VERSIONS[release]}: the MLA surface is what seamfix's adapter knows.\n", 0)


@pytest.mark.slow
def test_the_command_exits_0_on_main():
    result = doctor(MAIN)
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    assert result.stdout == "megatron-core 0.20.0: the MLA surface is what seamfix's adapter knows.\n"


@pytest.mark.slow
def test_a_release_below_the_floor_is_refused():
    result = doctor("0.10.0")
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == (
        "seamfix: error: doctor cannot run: seamfix.runtime.megatron supports megatron-core 0.11 and newer; "
        "0.10.0 is installed (pip install 'seamfix[megatron]')\n"
    )


@pytest.mark.slow
def test_a_module_missing_inside_megatron_is_named(tmp_path):
    (tmp_path / "triton.py").write_text('raise ModuleNotFoundError("No module named \'triton\'", name="triton")\n')
    result = doctor(RELEASES[-1], tmp_path)  # main imports triton unconditionally
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr.splitlines()[-1] == (  # after megatron's import-time notices
        "seamfix: error: doctor cannot run: megatron-core is installed but importing it failed: "
        "No module named 'triton'; install triton"
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    ("triton", "problem"),
    [
        # not a ModuleNotFoundError of torch: torch is there, without a name this megatron-core needs
        ("from torch import no_such_op\n", "cannot import name 'no_such_op' from 'torch'"),
        ("\n\nraise RuntimeError('CUDA driver too old')\n", "RuntimeError: CUDA driver too old ({file}:3)"),
        ("def broken(:\n", "SyntaxError: invalid syntax ({file}:1)"),
    ],
    ids=["name-missing-from-torch", "runtime-error", "syntax-error"],
)
def test_a_module_megatron_imports_that_fails_is_named(tmp_path, triton, problem):
    (tmp_path / "triton.py").write_text(triton)
    result = doctor(MAIN, tmp_path)  # main imports triton unconditionally
    assert (result.returncode, result.stdout) == (2, "")
    last = result.stderr.splitlines()[-1]
    prefix = "seamfix: error: doctor cannot run: megatron-core is installed but importing it failed: "
    assert last.startswith(prefix + problem.format(file=tmp_path / "triton.py")), last
    assert "pip install" not in last and "install torch" not in last


def _with_minor(tmp_path, minor: str):
    """A copy of the newest release whose version says ``0.<minor>.1``."""
    copy = tmp_path / "megatron-core"
    shutil.copytree(release_dir(NEWEST), copy)
    info = copy / "megatron/core/package_info.py"
    info.write_text(re.sub(r"(?m)^MINOR = \d+", f"MINOR = {minor}", info.read_text()))
    return copy


@pytest.mark.slow
def test_a_release_newer_than_the_table_is_reported(tmp_path):
    result = doctor(NEWEST, _with_minor(tmp_path, "99"))
    assert result.returncode == 1, result.stdout + result.stderr[-3000:]
    assert result.stdout.splitlines() == [
        "megatron-core 0.99.1: 1 change the adapter does not handle yet:",
        "- megatron-core 0.99 is newer than the releases seamfix knows (0.11 to 0.20): "
        "the adapter assumes it behaves like 0.20",
    ]


@pytest.mark.slow
@pytest.mark.parametrize("minor, version", [("'dev'", "0.dev.1"), ("'1a'", "0.1a.1")])  # 1a: no 0.1 (too old)
def test_a_version_that_names_no_release_is_an_error(tmp_path, minor, version):
    result = doctor(NEWEST, _with_minor(tmp_path, minor))
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr.splitlines()[-1] == (
        f"seamfix: error: doctor cannot run: megatron-core's version `{version}` names no release "
        "(MAJOR.MINOR...): seamfix cannot tell which differences apply"
    )


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
    result = doctor(NEWEST, copy)  # the copy comes first on the path
    assert result.returncode == 1, result.stdout + result.stderr[-3000:]
    assert result.stdout.splitlines() == [
        f"megatron-core {NEWEST}: 2 changes the adapter does not handle yet:",
        "- MLASelfAttention.__init__ has a new parameter `foo`",
        "- MLATransformerConfig has a new field `latent_dropout`",
    ]


@pytest.mark.slow
def test_on_main_a_layer_field_the_hybrid_stack_would_drop_is_reported(tmp_path):
    copy = tmp_path / "megatron-core"
    shutil.copytree(release_dir(MAIN), copy)
    _patch(copy / "megatron/core/transformer/transformer_layer.py",
           r"class TransformerLayerSubmodules:.*?\n    mlp_bda: [^\n]*\n", "    mlp_gate: object = None\n")  # fmt: skip
    result = doctor(MAIN, copy)
    assert result.returncode == 1, result.stdout + result.stderr[-3000:]
    assert result.stdout.splitlines() == [
        "megatron-core 0.20.0: 1 change the adapter does not handle yet:",
        "- TransformerLayerSubmodules has a new field `mlp_gate`",
    ]


@pytest.mark.slow
def test_an_mla_attention_module_that_cannot_be_imported_is_named(tmp_path):
    """Its class would go unchecked: doctor cannot say the surface is known."""
    copy = tmp_path / "megatron-core"
    shutil.copytree(release_dir(MAIN), copy)
    _patch(
        copy / "megatron/core/transformer/experimental_attention_variant/absorbed_mla.py",
        r"\nimport math\n",
        "import flash_mla\n",
    )
    (tmp_path / "flash_mla.py").write_text(
        'raise ModuleNotFoundError("No module named \'flash_mla\'", name="flash_mla")\n'
    )
    result = doctor(MAIN, copy, tmp_path)
    assert (result.returncode, result.stdout) == (2, ""), result.stdout + result.stderr[-3000:]
    assert result.stderr.splitlines()[-1] == (
        "seamfix: error: doctor cannot run: megatron-core is installed but importing it failed: "
        "No module named 'flash_mla'; install flash_mla"
    )


def test_doctor_without_megatron_is_a_clear_error(tmp_path):
    (tmp_path / "megatron").mkdir()  # shadows any installed megatron-core, as if it were missing
    (tmp_path / "megatron" / "__init__.py").write_text(
        'raise ModuleNotFoundError("No module named \'megatron\'", name="megatron")\n'
    )
    command = [sys.executable, "-m", "seamfix", "doctor"]
    environment = {**os.environ, "PYTHONPATH": str(tmp_path)}
    result = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    assert result.stderr == (
        "seamfix: error: doctor cannot run: seamfix.runtime.megatron needs megatron-core and torch: "
        "pip install 'seamfix[megatron]' (No module named 'megatron')\n"
    )
