"""One distribution, four import names mapped from the folders: both `pip install .` and `-e .` work,
and lint needs neither torch nor megatron-core."""

import subprocess
import sys
import sysconfig
import venv

import pytest

from seamfix_testing import MLA_IF, REPO

PROBE = """
import json, sys
import seamfix, seamfix.cli, seamfix.lint_rules, seamfix.codemods, seamfix.runtime, seamfix.vocabulary
from seamfix.vocabulary import default_vocabulary
assert "multi_latent_attention" in default_vocabulary().fields
print(json.dumps({"heavy": sorted(m for m in ("torch", "megatron", "triton") if m in sys.modules),
                  "seamfix": seamfix.__file__}))
"""


@pytest.mark.slow
@pytest.mark.parametrize("editable", [False, True], ids=["regular", "editable"])
def test_install_and_run(tmp_path, editable):
    env_dir = tmp_path / "env"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    # The build backend comes from the index as for any user; seamfix's own dependencies are the running
    # environment's (below), so the test checks packaging rather than downloads.
    target = ["-e", str(REPO)] if editable else [str(REPO)]
    build = subprocess.run(
        [python, "-m", "pip", "install", "-q", "--no-deps", *target], capture_output=True, text=True, cwd=tmp_path
    )
    assert build.returncode == 0, build.stderr
    # Dependencies (click, libcst, ruff) come from the running environment.
    env = {"PYTHONPATH": sysconfig.get_paths()["purelib"], "PATH": str(env_dir / "bin")}
    probe = subprocess.run([python, "-c", PROBE], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert probe.returncode == 0, probe.stderr
    assert '"heavy": []' in probe.stdout
    assert ("/seam/" in probe.stdout) == editable, probe.stdout

    (tmp_path / "a.py").write_text(MLA_IF)
    run = subprocess.run(
        [env_dir / "bin" / "seamfix", "lint", "--no-cache", "a.py"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
    )
    assert run.returncode == 1 and "a.py:2:8: SEAM001" in run.stdout, run.stderr


def test_runtime_dependencies_are_extras_only():
    from importlib.metadata import requires

    base = [r for r in requires("seamfix") if "extra ==" not in r]
    names = sorted(r.split(">")[0].split("<")[0].split("=")[0].strip() for r in base)
    assert names == ["click", "libcst", "ruff"]
    assert sys.version_info >= (3, 11)


def test_every_package_folder_is_in_the_distribution():
    import tomllib

    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    found = set()
    for name, folder in config["package-dir"].items():
        for init in (REPO / folder).rglob("__init__.py"):
            parts = init.parent.relative_to(REPO / folder).parts
            found.add(".".join((name, *parts)))
    assert found - listed == set(), "package folders missing from [tool.setuptools] packages"
