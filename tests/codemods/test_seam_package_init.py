"""The seam import runs the ``__init__.py`` of the adapter's packages: apply adds it only where that changes
nothing (see ``codemods/package_init.py``). Each case imports the builder and calls it, in a fresh
interpreter, in a copy of the project before and after apply: output, result and exception must match."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_refusals import applied, compiles, printed, project

BUILDER = "def flops(config):\n    if config.q_lora_rank is None:\n        return 1\n    return 2\n"
SEAM = 'adapter = "lib/core/mla_seam.py"'
CALL = """
import sys, types
sys.path.insert(0, ".")
try:
    import {module} as m
    print(m.flops(types.SimpleNamespace(q_lora_rank=None)), m.flops(types.SimpleNamespace(q_lora_rank=0)))
    print(m.flops(types.SimpleNamespace()))
except BaseException as e:
    print(type(e).__name__, str(e).split(" (")[0])
"""
# A package whose __init__ imports, through another module, the very builder apply rewrites (verl's
# `verl/models/mcore/__init__.py` -> registry -> model_forward -> verl.utils.megatron_utils).
CYCLE = {
    "lib/__init__.py": "",
    "lib/core/__init__.py": "from lib.core.registry import build\n",
    "lib/core/registry.py": "from lib.util.flops import flops\n\n\ndef build(config):\n    return flops(config)\n",
    "lib/util/__init__.py": "",
    "lib/util/flops.py": BUILDER,
}
# A package whose __init__ has an effect (slime's `initialize_accelerator()`, a monkey patch).
EFFECT = {"lib/__init__.py": "", "lib/core/__init__.py": "print('core init')\n", "lib/util/__init__.py": ""}
# An __init__ that only defines names: importing it changes nothing.
INERT_INIT = '''"""Docs."""
import os
from typing import TYPE_CHECKING

from .version import VERSION

if TYPE_CHECKING:
    from lib.util.flops import flops

__all__ = ["VERSION", "helper"]


def helper(x=1, y: int = 2):
    return x + y
'''
INERT = {
    "lib/__init__.py": "",
    "lib/core/__init__.py": INERT_INIT,
    "lib/core/version.py": 'VERSION = "1.0"\n',
    "lib/util/__init__.py": "",
}

CASES = {
    "package-init-imports-the-builder": (CYCLE, "lib.util.flops", False),
    # (the builder's own effect is an assignment: a bare call at its top level would make it a script)
    "package-init-prints": (
        {**EFFECT, "lib/util/flops.py": "LOADED = print('flops')\n" + BUILDER},
        "lib.util.flops",
        False,
    ),
    "package-init-only-defines-names": ({**INERT, "lib/util/flops.py": BUILDER}, "lib.util.flops", True),
    "builder-inside-the-package": ({**EFFECT, "lib/core/flops.py": BUILDER}, "lib.core.flops", True),
    "builder-imports-the-package-first": (
        {**EFFECT, "lib/core/helpers.py": "X = 1\n", "lib/util/flops.py": "from lib.core import helpers\n" + BUILDER},
        "lib.util.flops",
        True,
    ),
    # The seam import goes into the later run of imports that loads the package (Megatron-LM's training.py
    # stamps its start time and sets up logging first), so the package's code runs where it ran before.
    "builder-imports-a-module-of-the-package-later": (
        {
            **EFFECT,
            "lib/core/helpers.py": "X = 1\n",
            "lib/util/flops.py": "import os\nprint('flops')\nfrom lib.core.helpers import X\n" + BUILDER,
        },
        "lib.util.flops",
        True,
    ),
    # ... also after a `try:` import (Megatron-LM's yaml_arguments.py); not before a statement calling the seam.
    "builder-imports-the-package-after-a-try-import": (
        {
            **EFFECT,
            "lib/core/helpers.py": "X = 1\n",
            "lib/util/flops.py": "import os\ntry:\n    import yaml\nexcept ImportError:\n    yaml = None\n"
            "from lib.core.helpers import X\n" + BUILDER,
        },
        "lib.util.flops",
        True,
    ),
    "builder-calls-the-seam-before-importing-the-package": (
        {
            **EFFECT,
            "lib/core/helpers.py": "X = 1\n",
            "lib/util/flops.py": "import types\nprint('flops')\nDEFAULT = types.SimpleNamespace(q_lora_rank=None)\n"
            "DENSE = 1 if DEFAULT.q_lora_rank is None else 2\nfrom lib.core.helpers import X\n" + BUILDER,
        },
        "lib.util.flops",
        False,
    ),
}


def written(root: Path, files: dict[str, str]) -> Path:
    root.mkdir()
    return project(root, files, SEAM)


def outcome(root: Path, module: str, env: dict[str, str] | None = None) -> str:
    call = [sys.executable, "-c", CALL.format(module=module)]
    run = subprocess.run(call, cwd=root, capture_output=True, text=True, env=env)
    return run.stdout + run.stderr


@pytest.mark.parametrize("case", CASES, ids=str)
def test_the_seam_import_runs_no_package_code_the_builder_did_not(case: str, tmp_path: Path) -> None:
    files, module, rewritten = CASES[case]
    before = outcome(written(tmp_path / "before", files), module)
    root = written(tmp_path / "after", files)
    plan, said = applied(root)
    builder = next(relpath for relpath in files if relpath.endswith("flops.py"))
    assert ("mla_seam" in (root / builder).read_text()) == rewritten, said
    if not rewritten:
        assert "the seam import would" in said and "package `lib.core`" in said, said
        assert (root / builder).read_text() == files[builder]
    compiles(root)
    assert outcome(root, module) == before
    assert "1 2\nAttributeError" in before, before  # the module imported; a missing field still raises


def test_the_reason_names_the_statement_that_runs_or_the_cycle(tmp_path: Path) -> None:
    _, said = applied(written(tmp_path / "effect", {**EFFECT, "lib/util/flops.py": BUILDER}))
    assert "package `lib.core` (lib/core/__init__.py:1: `print('core init')`), which this module does not" in said
    _, said = applied(written(tmp_path / "cycle", CYCLE))
    assert "would import package `lib.core`, which imports this module: an import cycle" in said


@pytest.mark.parametrize("imports", ["", "import lib.core.helpers\n", "def f():\n    from lib import core\n"])
def test_a_module_that_never_imported_the_seams_package_is_left_unless_it_does(imports: str, tmp_path: Path) -> None:
    """A tool run as a script (`python tools/flops.py`) needs only what it imports: `from lib import mla_seam`
    would fail where `lib` is not installed."""
    files = {
        "lib/__init__.py": "",
        "lib/core/__init__.py": "",
        "lib/core/helpers.py": "",
        "tools/flops.py": imports + BUILDER,
    }
    root = written(tmp_path / "after", files)
    _, said = applied(root)
    rewritten = "mla_seam" in (root / "tools/flops.py").read_text()
    assert rewritten == bool(imports), said
    if not imports:
        assert "it imports nothing from `lib` (a script or tool run on its own" in said
        assert (root / "tools/flops.py").read_text() == files["tools/flops.py"]
    run = [sys.executable, "-S", "-c", "import sys; sys.path[0] = 'tools'; import flops"]  # as `python tools/flops.py`
    outcome = subprocess.run(run, cwd=root, capture_output=True, text=True)
    assert (outcome.returncode == 0) == (not imports), outcome.stderr


RUN = "print(flops(__import__('types').SimpleNamespace(q_lora_rank=None)))\n"
SCRIPT = BUILDER + '\n\nif __name__ == "__main__":\n    ' + RUN


@pytest.mark.parametrize(
    ("path", "imports", "rewritten"),
    [
        ("lib/util/flops.py", "", False),  # `python lib/util/flops.py`: `lib` is not importable from `lib/util`
        ("lib/util/__main__.py", "", False),  # `python lib/util`
        ("lib/util/convert-ckpt.py", "", False),  # no import name reaches it, with or without `__main__`
        ("lib/my tools/count.py", "", False),
        ("lib/util/count.py", "", False),  # no `__main__` guard: its top level calls `print(...)` as it runs
        ("lib/util/__init__.py", "", True),  # a package's top-level calls set it up: it is not run as a file
        ("lib/util/flops.py", "import lib.core.helpers\n", True),  # run as a file, it needed `lib` already
        ("lib/util/flops.py", "from . import helpers\n", True),  # a relative import: only ever run with -m
    ],
)
def test_a_script_inside_the_seams_package_is_left_unless_it_imports_the_package(
    path: str, imports: str, rewritten: bool, tmp_path: Path
) -> None:
    files = {
        "lib/__init__.py": "", "lib/core/__init__.py": "", "lib/core/helpers.py": "", "lib/util/__init__.py": "",
        "lib/util/helpers.py": "", path: imports + (SCRIPT if path.endswith("/flops.py") else f"{BUILDER}\n\n{RUN}"),
    }  # fmt: skip
    root = written(tmp_path / "after", files)
    _, said = applied(root)
    assert ("mla_seam" in (root / path).read_text()) == rewritten, said
    if not rewritten:
        assert "it runs as a script (" in said and ") and imports nothing from `lib`: run as a file" in said
        assert (root / path).read_text() == files[path]
        # as a user runs it (`python lib/util/flops.py`, `python lib/util`), without the project on the path
        run = [sys.executable, "-S", path.removesuffix("/__main__.py")]
        outcome = subprocess.run(run, cwd=root, capture_output=True, text=True)
        assert outcome.returncode == 0 and outcome.stdout == "1\n", outcome.stderr


@pytest.mark.parametrize(
    "import_it",
    [
        "from . import patches\n",
        "from .patches import flops\n",
        "import lib.util.patches\n",
        "from lib.util import patches\n",
    ],
)
def test_a_module_its_package_imports_is_no_script_for_its_top_level_calls(import_it: str, tmp_path: Path) -> None:
    """MT-MegatronLM's `cuda_patch/multi_latent_attention.py`: imports only Megatron, then patches it at its top
    level (`setattr(...)`), and `cuda_patch/__init__.py` imports it. It runs as part of its package, which is
    importable wherever it runs: no script (a `__main__` guard would still say it may run as a file)."""
    files = {"lib/__init__.py": "", "lib/core/__init__.py": "", "lib/util/__init__.py": import_it,
             "lib/util/patches.py": f"{BUILDER}\n\n{RUN}"}  # fmt: skip
    original, rewritten = written(tmp_path / "before", files), written(tmp_path / "after", files)
    _, said = applied(rewritten)
    assert "mla_seam" in (rewritten / "lib/util/patches.py").read_text(), said
    check = "import lib.util.patches as p, types; print(p.flops(types.SimpleNamespace(q_lora_rank=4)))"
    assert printed(check, original) == printed(check, rewritten) == ["1\n2\n"]


MAIN = f"{BUILDER}\n\ndef main():\n    {RUN}    return 0\n\n\n"
# a script's work need not be a call statement: `raise SystemExit(main())`, `status = main()`, `main() and ...`
MAIN_CALLED = [f"{MAIN}raise SystemExit(main())\n", f"{MAIN}status = main()\n", f"{MAIN}main() and exit(1)\n",
               f"{MAIN}with open(__file__):\n    STATUS = main()\n"]  # fmt: skip


@pytest.mark.parametrize("script", [f"{BUILDER}\n\n{RUN}", SCRIPT, f"{BUILDER}\n\nif True:\n    {RUN}", *MAIN_CALLED])
def test_a_script_in_a_folder_of_its_own_is_left_beside_a_top_level_adapter(script: str, tmp_path: Path) -> None:
    # `python tools/flops.py` puts `tools/` first on sys.path, not the project: `import mla_seam` fails there
    root = project(tmp_path, {"tools/flops.py": script}, 'adapter = "mla_seam.py"')
    _, said = applied(root)
    assert (root / "tools/flops.py").read_text() == script, said
    assert "it runs as a script (" in said and ") and imports nothing from `mla_seam`: run as a file" in said
    outcome = subprocess.run([sys.executable, "-S", "tools/flops.py"], cwd=root, capture_output=True, text=True)
    assert outcome.returncode == 0 and outcome.stdout == "1\n", outcome.stderr


@pytest.mark.parametrize("imports", ["import tools.helpers\n", "from . import helpers\n"])
def test_a_module_importing_its_own_package_runs_from_the_project_beside_a_top_level_adapter(imports, tmp_path):
    # it needed the folder holding `tools` on the path already: so does `import mla_seam`, which it then finds
    files = {"tools/__init__.py": "", "tools/helpers.py": "", "tools/flops.py": f"{imports}{BUILDER}\n\n{RUN}"}
    root = project(tmp_path, files, 'adapter = "mla_seam.py"')
    _, said = applied(root)
    assert "import mla_seam" in (root / "tools/flops.py").read_text(), said
    outcome = subprocess.run([sys.executable, "-S", "-m", "tools.flops"], cwd=root, capture_output=True, text=True)
    assert outcome.returncode == 0 and outcome.stdout == "1\n", outcome.stderr


# The adapter's own top level runs at the seam import too. `fakemeg` stands for megatron or torch: a package
# beyond the project (on PYTHONPATH) that says when it is imported.
PACKAGES = {"lib/__init__.py": "", "lib/core/__init__.py": "", "lib/util/__init__.py": ""}
ADAPTER = "lib/core/mla_seam.py"
GENERATED = '"""The MLA seam."""\n\n\ndef mla_arm(config):\n    import fakemeg\n\n    return fakemeg.ARM\n'
NAMES = "LIMIT = 2\n\n\nclass Registered:\n    def __init_subclass__(cls):\n        print('registered')\n"
REEXPORT = "def __getattr__(name):\n    import fakemeg\n\n    return getattr(fakemeg, name)\n"  # README's advice
ADAPTER_CASES = {  # adapter, the builder's first lines -> the reason apply gives, or None: rewritten
    "adapter-imports-the-builder": ("from lib.util.flops import flops as _flops\n", "", "import cycle"),
    "adapter-imports-a-module-that-imports-the-builder": (
        "from lib.util.helpers import helper\n",
        "",
        "`from lib.util.helpers import helper`, which imports this module",
    ),
    "adapter-imports-a-package-the-builder-does-not": ("import fakemeg\n", "", "would import `fakemeg` through"),
    "adapter-imports-a-module-that-imports-such-a-package": (
        "from lib.core.glue import wrap\n",
        "",
        "`from lib.core.glue import wrap`, which this module does not import",
    ),
    "adapter-imports-a-package-the-builder-does-not-in-the-joined-import": (
        "import fakemeg\n",
        "from lib.core import names\n",  # apply writes `from lib.core import mla_seam, names`
        "would import `fakemeg` through",
    ),
    "adapter-calls-something": ("import os\n\nos.environ['SEEN'] = '1'\nprint('adapter ran')\n", "", "a new import"),
    "adapter-imports-a-module-that-runs-code": (
        "from lib.core.config import Config\n",
        "",
        "`from lib.core.config import Config`, code this module does not run",
    ),
    "adapter-imports-a-module-that-runs-code-the-builder-imports": (  # megatron's TransformerConfig
        "from lib.core.config import Config\n",
        "from lib.core.config import Config\n",
        None,
    ),
    "adapter-imports-the-standard-library": ("import os\nfrom typing import Any\n\nLIMIT: int = 2\n", "", None),
    "adapter-imports-a-package-the-builder-imports": ("import fakemeg\n", "import fakemeg\n", None),
    "builder-imports-the-adapter-already": ("print('adapter ran')\n", "from lib.core.mla_seam import LIMIT\n", None),
    "adapter-holds-generated-functions-only": (GENERATED, "", None),
    "adapter-re-exports-on-first-use": (REEXPORT, "", None),
    "adapter-defines-a-plain-class": (
        'class Limits:\n    """Ours."""\n\n    def top(self):\n        return 2\n',
        "",
        None,
    ),
    "adapter-defines-a-registered-class": (
        "from lib.core.names import Registered\n\n\nclass Limits(Registered):\n    pass\n",
        "",
        "`class Limits(Registered):`, code this module does not run",
    ),
}


@pytest.mark.parametrize("case", ADAPTER_CASES, ids=str)
def test_the_adapters_own_top_level_adds_no_cycle_and_no_dependency(case: str, tmp_path: Path) -> None:
    adapter, first_lines, reason = ADAPTER_CASES[case]
    (tmp_path / "site/fakemeg").mkdir(parents=True)
    (tmp_path / "site/fakemeg/__init__.py").write_text("print('fakemeg imported')\nARM = 3\n")
    files = {
        **PACKAGES,
        ADAPTER: adapter + ("LIMIT = 1\n" if "LIMIT" in first_lines else ""),
        "lib/util/helpers.py": "from lib.util.flops import flops\n\n\ndef helper():\n    return flops\n",
        "lib/core/glue.py": "import fakemeg\n\n\ndef wrap(x):\n    return x\n",
        "lib/core/names.py": NAMES,
        "lib/core/config.py": "import fakemeg\n\nprint('config')\n\n\nclass Config:\n    pass\n",
        "lib/util/flops.py": first_lines + BUILDER,
    }
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "site")}
    before = outcome(written(tmp_path / "before", files), "lib.util.flops", env)
    root = written(tmp_path / "after", files)
    _, said = applied(root)
    assert ("mla_seam." in (root / "lib/util/flops.py").read_text()) == (reason is None), said
    if reason is not None:
        assert "the seam import would" in said and reason in said, said
        assert "move it into the body of the adapter function that needs it" in said, said
        assert (root / "lib/util/flops.py").read_text() == files["lib/util/flops.py"]
    assert outcome(root, "lib.util.flops", env) == before
    assert "1 2\nAttributeError" in before, before


def test_the_reason_names_the_adapters_line(tmp_path: Path) -> None:
    adapter = '"""Hand-written."""\nimport json\nimport fakemeg.core\n'
    files = {**PACKAGES, ADAPTER: adapter, "lib/util/flops.py": BUILDER}
    _, said = applied(written(tmp_path / "p", files))
    assert "would import `fakemeg` through the adapter's lib/core/mla_seam.py:3: `import fakemeg.core`" in said, said


def test_a_namespace_package_of_the_project_is_no_dependency(tmp_path: Path) -> None:
    """`lib` without `__init__.py` (Megatron-LM's `megatron/`) is the project's, not a package to install."""
    files = {
        "lib/core/__init__.py": "",
        ADAPTER: "from lib.util.names import LIMIT\n",
        "lib/util/names.py": "LIMIT = 2\n",
        "lib/util/flops.py": BUILDER,
    }
    before = outcome(written(tmp_path / "before", files), "lib.util.flops")
    root = written(tmp_path / "after", files)
    _, said = applied(root)
    assert "mla_seam." in (root / "lib/util/flops.py").read_text(), said
    assert outcome(root, "lib.util.flops") == before


def test_a_script_that_puts_the_project_on_the_path_and_imports_from_it_is_rewritten(tmp_path: Path) -> None:
    # `tools/flops.py` imports `lib` after its `sys.path.insert`: `import mla_seam` goes after both and is found
    head = "import os\nimport sys\n\nsys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))\n"
    head += "\nfrom lib.core.helpers import X  # noqa: E402\n\n\n"
    files = {"lib/__init__.py": "", "lib/core/__init__.py": "", "lib/core/helpers.py": "X = 1\n"}
    root = project(tmp_path, {**files, "tools/flops.py": f"{head}{BUILDER}\n\n{RUN}"}, 'adapter = "mla_seam.py"')
    _, said = applied(root)
    assert "import mla_seam" in (root / "tools/flops.py").read_text(), said
    outcome = subprocess.run([sys.executable, "-S", "tools/flops.py"], cwd=root, capture_output=True, text=True)
    assert outcome.returncode == 0 and outcome.stdout == "1\n", outcome.stderr
