"""SEAM902: a tree whose builders call into the adapter for names it does not define never passes lint."""

import ast
import shutil

import pytest

from seamfix.seam_surface import read_surface, surface_of
from seamfix_testing import REPO, run_seamfix

ADAPTER = "def uses_mla(config):\n    return bool(config.multi_latent_attention)\n"


def flagged(root, *args):
    result = run_seamfix("lint", "--format", "json", *args, cwd=root)
    return result.code, [(f["path"], f["line"], f["code"]) for f in result.json()]


# The gate alone: the demo keeps findings apply leaves on purpose (its layer-spec flag parameters).
GATE_ONLY = ("--select", "SEAM902")


@pytest.fixture
def applied_demo(tmp_path):
    demo = tmp_path / "demo"
    shutil.copytree(REPO / "fixtures" / "demo", demo)
    applied = run_seamfix("apply", cwd=demo)
    assert applied.code in (0, 1) and "Rewrote" in applied.stderr, applied.stderr  # 1: findings it left, named
    assert flagged(demo, *GATE_ONLY) == (0, [])
    return demo


def test_a_half_applied_tree_fails_lint(applied_demo):
    adapter = applied_demo / "demo_fork/mla_seam.py"
    text = adapter.read_text()
    tree = ast.parse(text)
    lost = next(f for f in tree.body if isinstance(f, ast.FunctionDef) and f.name == "mla_layer_spec")
    lines = text.splitlines(keepends=True)
    adapter.write_text("".join(lines[: lost.lineno - 1] + lines[lost.end_lineno :]))
    # The builders' bytes did not change: the cache must not answer for them with the old adapter's verdict.
    builder = "demo_fork/models/gpt_layer_specs.py"
    calls = [
        number
        for number, line in enumerate((applied_demo / builder).read_text().splitlines(), 1)
        if "mla_seam.mla_layer_spec(" in line
    ]
    code, found = flagged(applied_demo, *GATE_ONLY)
    assert code == 1 and calls and found == [(builder, line, "SEAM902") for line in calls]
    message = run_seamfix("lint", *GATE_ONLY, cwd=applied_demo).stdout.splitlines()[0]
    assert message.endswith("`mla_seam.mla_layer_spec` is not defined in the adapter `demo_fork/mla_seam.py`")
    adapter.write_text(text)
    assert flagged(applied_demo, *GATE_ONLY) == (0, [])


def test_every_call_into_a_missing_adapter_is_a_finding(applied_demo):
    builders = sorted((applied_demo / "demo_fork").rglob("*.py"))
    calls = sum(
        isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "mla_seam"
        for path in builders
        if path.name != "mla_seam.py"
        for node in ast.walk(ast.parse(path.read_text()))
    )
    (applied_demo / "demo_fork/mla_seam.py").unlink()
    code, found = flagged(applied_demo, *GATE_ONLY, "--ignore", "SEAM902", "--per-file-ignores", "*.py:SEAM9")
    assert code == 1 and len(found) == calls >= 10 and {c for *_, c in found} == {"SEAM902"}
    assert "which does not exist" in run_seamfix("lint", cwd=applied_demo).stdout


def test_relative_imports_and_an_adapter_named_without_mla_words(project):
    root = project(
        {
            "pyproject.toml": '[tool.seamfix]\nadapter = "fork/seam.py"\n',
            "fork/__init__.py": "",
            "fork/seam.py": "def width(config):\n    return 1\n",
            "fork/models/__init__.py": "",
            "fork/models/gpt.py": "from .. import seam\n\n\ndef build(c):\n    return seam.width(c) + seam.depth(c)\n",
            "fork/models/bert.py": "from ..seam import width, depth\n",
            "fork/models/t5.py": "from . import seam\n\nseam.depth(1)\n",  # fork.models.seam: not the adapter
        }
    )
    assert flagged(root) == (1, [("fork/models/bert.py", 1, "SEAM902"), ("fork/models/gpt.py", 5, "SEAM902")])
    (root / "fork/seam.py").write_text("def width(config):\n    return 1\n\n\ndef depth(config):\n    return 2\n")
    assert flagged(root) == (0, [])


def test_relative_imports_resolve_from_the_source_roots(project):
    """In a src layout, ``from .. import mla_seam`` in ``src/fork/models/gpt.py`` is ``fork.mla_seam``: the seam,
    whose calls are no MLA decisions, and whose missing functions the gate names."""
    root = project(
        {
            "pyproject.toml": '[tool.seamfix]\nadapter = "src/fork/mla_seam.py"\n',
            "src/fork/__init__.py": "",
            "src/fork/mla_seam.py": "def multi_latent_attention(config):\n    return config.multi_latent_attention\n",
            "src/fork/models/__init__.py": "",
            "src/fork/models/gpt.py": "from .. import mla_seam\n\n\ndef build(c):\n"
            "    if mla_seam.multi_latent_attention(c):\n        return mla_seam.q_lora_rank(c)\n",
        }
    )
    assert flagged(root) == (1, [("src/fork/models/gpt.py", 6, "SEAM902")])


def test_an_unparseable_adapter_fails_its_callers(project):
    root = project(
        {
            "pyproject.toml": '[tool.seamfix]\nadapter = "mla_seam.py"\n',
            "mla_seam.py": ADAPTER + "def broken(:\n",
            "builder.py": "import mla_seam\n\nmla_seam.uses_mla(1)\n",
        }
    )
    code, found = flagged(root)
    assert code == 1 and found == [("builder.py", 3, "SEAM902")]
    assert "cannot be parsed" in run_seamfix("lint", cwd=root).stdout


def test_what_the_adapter_defines():
    surface = surface_of(
        "seam.py",
        b"import torch.nn as nn, os.path\n"
        b"try:\n    from fast import kernel\nexcept ImportError:\n    kernel = None\n"
        b"if (flag := True):\n    for index, (a, b) in enumerate([(1, 2)]):\n        pass\n"
        b"with open(__file__) as handle:\n    TEXT: str = handle.read()\n"
        b"def setup():\n    global LATE\n    LATE = 1\n    local = 2\n"
        b"class Spec:\n    inner = 3\n",
    )
    defined = {"nn", "os", "kernel", "flag", "index", "a", "b", "handle", "TEXT", "setup", "LATE", "Spec"}
    assert all(surface.defines(name) for name in defined) and surface.defines("__doc__")
    assert not any(surface.defines(name) for name in ("local", "inner", "path", "torch", "build_3"))
    assert surface_of("seam.py", b"def __getattr__(name):\n    return name\n").defines("anything")
    assert surface_of("seam.py", b"from impl import *\n").defines("anything")
    assert not surface_of("seam.py", None).defines("setup")


def test_an_adapter_package_offers_its_submodules(project):
    root = project({"fork/seam/__init__.py": "from .specs import layer\n", "fork/seam/specs.py": "layer = 1\n"})
    surface = read_surface(root, "fork/seam/__init__.py")
    assert surface.defines("specs") and surface.defines("layer") and not surface.defines("other")
