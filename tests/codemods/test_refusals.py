"""Sites `seamfix apply` must leave as they are, each with the reason its summary gives.

Each `fixtures/codemods/must_refuse/<case>.py` starts with `# expect: <part of the reason>`: applied in a
fresh project, the summary names the site (or the file) with that reason, every output compiles, and the
module behaves as before under every config (`equivalence.py`). The cases that need more than one file
(a patch in a test, a re-export, a script next to the builder, a src layout) are written out below.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_fixtures import FIXTURES, behaviour, make_project

from seamfix.codemods.apply import ApplyPlan, plan_apply, write_changes
from seamfix.codemods.rewrite import FileRewrite
from seamfix.codemods.self_check import refuse_failing
from seamfix.config import load_settings
from seamfix_testing import MLA_IF

CASES = sorted((FIXTURES / "must_refuse").glob("*.py"))
GUARDED = "from mla_impl import MLATransformerConfig\n\n\ndef kind(config):\n"
GUARDED += "    if isinstance(config, MLATransformerConfig):\n        return 1\n    return 0\n"


def expected_reason(case: Path) -> str:
    first = case.read_text().splitlines()[0]
    assert first.startswith("# expect: "), f"{case.name}: first line must say what the refusal says"
    return first.removeprefix("# expect: ")


def applied(root: Path) -> tuple[ApplyPlan, str]:
    plan = plan_apply([root], load_settings(root), cwd=root)
    assert not plan.errors, plan.errors
    write_changes(plan)
    return plan, "\n".join([*plan.remaining, *plan.kept_arms, *plan.refused])


def compiles(root: Path) -> None:
    for path in root.rglob("*.py"):
        compile(path.read_bytes(), str(path), "exec", dont_inherit=True)


@pytest.mark.parametrize("case", CASES, ids=lambda p: p.stem)
def test_must_refuse(case: Path, tmp_path: Path) -> None:
    original = make_project(tmp_path / "before", case.read_bytes())
    rewritten = make_project(tmp_path / "after", case.read_bytes())
    _, said = applied(rewritten)
    assert expected_reason(case) in said, said
    compiles(rewritten)
    results = behaviour(original)
    assert results, "the harness called no function of this case"
    assert behaviour(rewritten) == results


SELF_READS = {  # the module itself, and the import that spelling needs
    'sys.modules["case"]': "", "sys.modules.get(__name__)": "",
    "importlib.import_module(__name__)": "import importlib\n",
    "types.SimpleNamespace(**exported.__globals__)": "import types\n", "myself": "import case as myself\n",
}  # fmt: skip


@pytest.mark.parametrize("module", SELF_READS)
def test_a_module_reading_its_own_namespace_keeps_every_import(module: str, tmp_path: Path) -> None:
    # `fixtures/codemods/must_refuse/module_reads_itself.py` with the other spellings of the module itself
    source = (FIXTURES / "must_refuse" / "module_reads_itself.py").read_text().replace("sys.modules[__name__]", module)
    source = source.replace("import sys\n", f"{SELF_READS[module]}import sys\n")
    original = make_project(tmp_path / "before", source.encode())
    rewritten = make_project(tmp_path / "after", source.encode())
    _, said = applied(rewritten)
    assert "which may read or rebind it" in said, said
    assert behaviour(rewritten) == behaviour(original)


def project(root: Path, files: dict[str, str], config: str = 'adapter = "pkg/mla_seam.py"') -> Path:
    (root / "pyproject.toml").write_text(f"[tool.seamfix]\n{config}\n")
    for relpath, text in files.items():
        (root / relpath).parent.mkdir(parents=True, exist_ok=True)
        (root / relpath).write_text(text)
    return root


def applied_beside_original(tmp_path: Path, files: dict[str, str]) -> tuple[str, Path, Path]:
    """``files`` as a project twice, in ``before`` and ``after``, apply run in ``after``: what its summary
    said, and the two roots."""
    (tmp_path / "before").mkdir(), (tmp_path / "after").mkdir()
    original, rewritten = project(tmp_path / "before", files), project(tmp_path / "after", files)
    _, said = applied(rewritten)
    return said, original, rewritten


def printed(check: str, *roots: Path) -> list[str]:
    """What ``python -c check`` prints, run in each root."""
    return [subprocess.run([sys.executable, "-c", check], cwd=root, capture_output=True, text=True, check=True).stdout
            for root in roots]  # fmt: skip


def test_a_name_a_test_patches_is_passed_nowhere_but_left(tmp_path: Path) -> None:
    root = project(tmp_path, {
        "pkg/__init__.py": "", "pkg/mla_impl.py": "class MLATransformerConfig:\n    pass\n",
        "pkg/model.py": GUARDED.replace("from mla_impl", "from pkg.mla_impl"),
        "tests/test_model.py": 'from unittest import mock\n\n@mock.patch("pkg.model.MLATransformerConfig")\ndef t(m):\n'
                               "    pass\n",
    })  # fmt: skip
    _, said = applied(root)
    assert "patches or sets by name" in said
    assert "mla_seam" not in (root / "pkg/model.py").read_text()


def test_a_re_exported_name_is_left(tmp_path: Path) -> None:
    root = project(tmp_path, {
        "pkg/__init__.py": "", "pkg/mla_impl.py": "class MLATransformerConfig:\n    pass\n",
        "pkg/model.py": GUARDED.replace("from mla_impl", "from pkg.mla_impl"),
        "pkg/other.py": "from .model import MLATransformerConfig\n",
    })  # fmt: skip
    _, said = applied(root)
    assert "another module or a doctest imports from it" in said


STAR_USER = "from other import mla_seam\nfrom pkg.model import *  # noqa: F403\n\n\ndef describe():\n"
STAR_USER += "    return mla_seam.describe()\n"


COMPUTED_ALL = '\n\n__all__ = [name for name in dir() if not name.startswith("_")]\n'


@pytest.mark.parametrize(("all_names", "computed"), [("", ""), ('__all__ = ["build"]\n\n\n', ""), ("", COMPUTED_ALL)])
def test_a_star_import_never_replaces_the_importers_own_seam_name(all_names: str, computed: str, tmp_path: Path):
    # without `__all__`, or with one computed from the namespace, `import *` copies the builder's new
    # `mla_seam` over the one `pkg/user.py` imported
    files = {"pkg/__init__.py": "", "other/__init__.py": "", "other/mla_seam.py": "def describe():\n    return 2\n",
             "pkg/model.py": all_names + MLA_IF.replace("def f(", "def build(") + computed,
             "pkg/user.py": STAR_USER}  # fmt: skip
    (tmp_path / "before").mkdir(), (tmp_path / "after").mkdir()
    original, rewritten = project(tmp_path / "before", files), project(tmp_path / "after", files)
    _, said = applied(rewritten)
    assert ("`pkg/user.py` imports `*` from it and binds `mla_seam` itself" in said) == (not all_names), said
    check = "from types import SimpleNamespace as C; from pkg import user\n"
    check += "print(user.build(C(multi_latent_attention=True)), user.describe())"
    ran = [subprocess.run([sys.executable, "-c", check], cwd=root, capture_output=True, text=True, check=True).stdout
           for root in (original, rewritten)]  # fmt: skip
    assert ran[0] == ran[1] == "1 2\n"


BUILDS = "from pkg.mla_impl import MLASelfAttention\n\n\ndef build(config):\n"
BUILDS += "    if config.multi_latent_attention:\n        return MLASelfAttention(config)\n    return None\n"
MLA_CLASS = "class MLASelfAttention:\n    def __init__(self, c):\n        pass\n"
# the spellings of a patch of `pkg.model.MLASelfAttention` in a test, each run as `with <form>:`
PATCH_FORMS = [
    'mock.patch(f"{MODULE}.MLASelfAttention", Fake)',
    'mock.patch(f"pkg.model.{NAME}", Fake)',  # a computed name: any global may be patched
    'mock.patch(target="pkg.model." "MLASelfAttention", new=Fake)',
    'mock.patch.multiple("pkg.model", MLASelfAttention=Fake, create=False)',
    "mock.patch.multiple(model, MLASelfAttention=Fake)",
    "monkeypatched(lambda mp: mp.setattr(model, NAME, Fake))",
    'monkeypatched(lambda mp: mp.delattr("pkg.model.MLASelfAttention"))',
    'mock.patch.object(target=model, attribute="MLASelfAttention", new=Fake)',
]
PATCHING_TEST = """import contextlib
from types import SimpleNamespace
from unittest import mock

import pytest

from pkg import model

MODULE, NAME = "pkg.model", "MLASelf" + "Attention"


class Fake:
    def __init__(self, config):
        pass


@contextlib.contextmanager
def monkeypatched(action):
    with pytest.MonkeyPatch.context() as mp:
        action(mp)
        yield


def check():
    with {form}:
        try:
            return type(model.build(SimpleNamespace(multi_latent_attention=True))).__name__
        except NameError as error:
            return str(error)
"""


@pytest.mark.parametrize("form", PATCH_FORMS)
def test_a_patched_name_stays_where_the_patch_reaches_it(form: str, tmp_path: Path) -> None:
    # moved, the arm would read the adapter's own import: the patch would no longer reach it (or, the
    # builder's import dropped, `mock.patch` would raise AttributeError)
    files = {"pkg/__init__.py": "", "pkg/mla_impl.py": "class MLASelfAttention:\n    def __init__(self, c):\n"
             "        pass\n", "pkg/model.py": BUILDS,
             "tests/test_model.py": PATCHING_TEST.format(form=form)}  # fmt: skip
    (tmp_path / "before").mkdir(), (tmp_path / "after").mkdir()
    original, rewritten = project(tmp_path / "before", files), project(tmp_path / "after", files)
    _, said = applied(rewritten)
    assert "patches or sets by name" in said or "reads as its attribute" in said, said
    check = "from tests.test_model import check; print(check())"
    ran = [subprocess.run([sys.executable, "-c", check], cwd=root, capture_output=True, text=True, check=True).stdout
           for root in (original, rewritten)]  # fmt: skip
    assert ran[0] in ("Fake\n", "name 'MLASelfAttention' is not defined\n") and ran[1] == ran[0]


SOURCE_PATCHED = """from types import SimpleNamespace

import pkg.mla_impl
from pkg import model


def check():
    original, pkg.mla_impl.MLASelfAttention = pkg.mla_impl.MLASelfAttention, dict
    try:
        return type(model.build(SimpleNamespace(multi_latent_attention=True))).__name__
    finally:
        {restore}
"""
# the patch undone by a plain, a tuple, a chained and a one-line assignment (the swap above is a tuple target too)
RESTORES = [
    "pkg.mla_impl.MLASelfAttention = original",
    "pkg.mla_impl.MLASelfAttention, _ = original, None",
    "restored = pkg.mla_impl.MLASelfAttention = original",
    "if original: pkg.mla_impl.MLASelfAttention = original",
]


@pytest.mark.parametrize("restore", RESTORES)
def test_a_name_assigned_on_its_source_module_stays_where_the_builder_reads_it(restore: str, tmp_path: Path) -> None:
    # the builder holds the class it imported; moved, the arm would import the one assigned meanwhile
    files = {"pkg/__init__.py": "", "pkg/mla_impl.py": "class MLASelfAttention:\n    def __init__(self, c):\n"
             "        pass\n", "pkg/model.py": BUILDS,
             "tests/test_model.py": SOURCE_PATCHED.format(restore=restore)}  # fmt: skip
    said, original, rewritten = applied_beside_original(tmp_path, files)
    assert "patches or sets by name" in said, said
    check = "from tests.test_model import check; print(check())"
    ran = printed(check, original, rewritten)
    assert ran[0] == ran[1] == "MLASelfAttention\n"


BUMPS = BUILDS.replace("import MLASelfAttention\n", "import MLASelfAttention\n\nSCALE = 1\n").replace(
    "        return MLASelfAttention(config)", "        hooks.bump()\n        return MLASelfAttention(SCALE)"
)


@pytest.mark.parametrize("assignment", ["model.SCALE = model.SCALE + 1", "model.SCALE += 1"])
def test_a_global_another_module_sets_as_an_attribute_is_never_passed(assignment: str, tmp_path: Path) -> None:
    # the arm calls code that rebinds the builder's own global through its module: passed to the moved arm, the
    # value read at the call would be the old one (1 where the arm read 2)
    files = {"pkg/__init__.py": "", "pkg/mla_impl.py": "class MLASelfAttention:\n    def __init__(self, scale):\n"
             "        self.scale = scale\n", "pkg/model.py": "from pkg import hooks\n" + BUMPS,
             "pkg/hooks.py": f"def bump():\n    from pkg import model\n\n    {assignment}\n"}  # fmt: skip
    (tmp_path / "before").mkdir(), (tmp_path / "after").mkdir()
    original, rewritten = project(tmp_path / "before", files), project(tmp_path / "after", files)
    _, said = applied(rewritten)
    assert "that some file sets as a module attribute or patches by name" in said, said
    check = "from types import SimpleNamespace as C; from pkg import model; c = C(multi_latent_attention=True)\n"
    check += "print([model.build(c).scale for _ in range(2)])"
    ran = [subprocess.run([sys.executable, "-c", check], cwd=root, capture_output=True, text=True, check=True).stdout
           for root in (original, rewritten)]  # fmt: skip
    assert ran[0] == ran[1] == "[2, 3]\n"


# the module's namespace itself: no `.SCALE` in the text, the name a key of the dictionary, the module reached by
# a name, by its name as a string or through an object it defines
NAMESPACE_WRITES = ['from pkg import model\n    vars(model)["SCALE"] += 1',
                    'import pkg.model\n    pkg.model.__dict__["SCALE"] += 1',
                    'import sys\n    namespace = vars(sys.modules["pkg.model"])\n'
                    '    namespace["SCALE"] *= 2',
                    'from pkg.model import build\n    build.__globals__["SCALE"] += 1',
                    'from pkg import model\n    model.__setattr__("SCALE", model.SCALE + 1)',
                    'import inspect\n    from pkg.model import build\n'
                    '    vars(inspect.getmodule(build))["SCALE"] += 1']  # fmt: skip


@pytest.mark.parametrize("write", NAMESPACE_WRITES)
def test_a_global_another_module_rebinds_through_the_modules_namespace_is_never_passed(write: str, tmp_path: Path):
    # as above, but through the namespace dictionary: the arm read 2, the value passed at the call was 1
    builder = "from pkg import hooks\n\nSCALE = 1\n\n\ndef build(config):\n    if config.multi_latent_attention:\n"
    builder += "        hooks.bump()\n        return [config.kv_lora_rank, SCALE]\n    return SCALE\n"
    files = {"pkg/__init__.py": "", "pkg/model.py": builder, "pkg/hooks.py": f"def bump():\n    {write}\n"}
    said, original, rewritten = applied_beside_original(tmp_path, files)
    check = "from types import SimpleNamespace as C; from pkg import model\n"
    check += "print([model.build(C(multi_latent_attention=True, kv_lora_rank=3)) for _ in range(2)])"
    ran = printed(check, original, rewritten)
    assert ran[0] == ran[1] == ("[[3, 2], [3, 4]]\n" if "*=" in write else "[[3, 2], [3, 3]]\n"), ran
    assert "another file holds the module's namespace" in said, said


SCRIPTED = """import torch


@torch.jit.script
def scale(x: torch.Tensor, kv_lora_rank: int, multi_latent_attention: bool) -> torch.Tensor:
    if multi_latent_attention:
        y = x * kv_lora_rank
        return y + 1
    return x


def build(config):
    if config.multi_latent_attention:
        return scale(torch.ones(1), config.kv_lora_rank, True).item()
    return 0.0
"""


def test_code_a_decorator_compiles_never_calls_the_adapter(tmp_path: Path) -> None:
    # TorchScript compiles `scale` from its source at import: a call into the adapter there (its arm moved)
    # failed the import with a RuntimeError. `build` is plain Python: its arm moves.
    files = {"pkg/__init__.py": "", "pkg/model.py": SCRIPTED}
    (tmp_path / "before").mkdir(), (tmp_path / "after").mkdir()
    original, rewritten = project(tmp_path / "before", files), project(tmp_path / "after", files)
    plan, said = applied(rewritten)
    assert "it is in `scale`, which `@torch.jit.script` compiles" in said and plan.moved == 1, said
    check = "import types, pkg.model; print(pkg.model.build(types.SimpleNamespace(multi_latent_attention=1, "
    check += "kv_lora_rank=2)), pkg.model.scale.code.count('mla_seam'))"
    ran = [subprocess.run([sys.executable, "-c", check], cwd=root, capture_output=True, text=True).stdout
           for root in (original, rewritten)]  # fmt: skip
    assert ran[0] == ran[1] == "3.0 0\n"


# the forms of reading a builder's name from another module: as its module's attribute, or by `import *`
READERS = ["from pkg import model\nX = model.", "import pkg.model\nX = pkg.model.", "from . import model as m\nX = m."]
READERS.append("from pkg.model import *  # noqa: F403\nX = ")  # every name the builder binds


@pytest.mark.parametrize("reader", READERS)
def test_a_name_another_module_reads_as_an_attribute_is_left(reader: str, tmp_path: Path) -> None:
    # moving the arm would drop the builder's import, and with it the attribute `pkg.reader` reads
    root = project(tmp_path, {
        "pkg/__init__.py": "", "pkg/mla_impl.py": "class MLATransformerConfig:\n    pass\n",
        "pkg/model.py": GUARDED.replace("from mla_impl", "from pkg.mla_impl"),
        "pkg/reader.py": reader + "MLATransformerConfig\n",
    })  # fmt: skip
    _, said = applied(root)
    assert "another module or a doctest imports from it (or reads as its attribute)" in said
    subprocess.run([sys.executable, "-c", "import pkg.reader"], cwd=root, check=True)


# the forms of reaching a builder's names without naming them in the source: any name may be read
DYNAMIC_READERS = [
    'from pkg import model\nX = getattr(model, "MLATransformerConfig")\n',
    'from pkg import model\nNAME = "MLATransformer" + "Config"\nX = getattr(model, NAME)\n',
    'import pkg.model\nX = vars(pkg.model)["MLATransformer" + "Config"]\n',
    'from . import model as m\nX = m.__dict__["MLATransformer" + "Config"]\n',
    'import importlib\nX = getattr(importlib.import_module("pkg.model"), "MLATransformer" + "Config")\n',
    'import importlib\nX = getattr(importlib.import_module(".model", "pkg"), "MLATransformer" + "Config")\n',
]


@pytest.mark.parametrize("reader", DYNAMIC_READERS)
def test_a_name_another_module_reaches_dynamically_is_left(reader: str, tmp_path: Path) -> None:
    root = project(tmp_path, {
        "pkg/__init__.py": "", "pkg/mla_impl.py": "class MLATransformerConfig:\n    pass\n",
        "pkg/model.py": GUARDED.replace("from mla_impl", "from pkg.mla_impl"),
        "pkg/reader.py": reader,
    })  # fmt: skip
    _, said = applied(root)
    assert "another module or a doctest imports from it (or reads as its attribute)" in said
    subprocess.run([sys.executable, "-c", "import pkg.reader"], cwd=root, check=True)


def test_a_variable_named_like_the_builder_module_is_not_its_module(tmp_path: Path) -> None:
    # `model` here is a parameter, not `pkg.model`: reading its attributes dynamically keeps nothing
    root = project(tmp_path, {
        "pkg/__init__.py": "", "pkg/mla_impl.py": "class MLATransformerConfig:\n    pass\n",
        "pkg/model.py": GUARDED.replace("from mla_impl", "from pkg.mla_impl"),
        "pkg/train.py": "def state(model, name):\n    return getattr(model, name), vars(model), model.__dict__\n",
    })  # fmt: skip
    plan, _ = applied(root)
    assert plan.routed == 1
    check = "from pkg import model, mla_impl; assert model.kind(mla_impl.MLATransformerConfig()) == 1"
    subprocess.run([sys.executable, "-c", check], cwd=root, check=True)


# hand-written code in the adapter binds `sorted` (by name, or through an `import *`), or may (a function
# declaring it `global`): moved there, the arm would call that
REBINDING_ADAPTERS = {
    "import": "import types as sorted  # noqa: F401\n",
    "import *": "from pkg.helpers import *  # noqa: F403\n",
    "global": "def install():\n    global sorted\n    sorted = reversed\n",
}


@pytest.mark.parametrize("adapter", REBINDING_ADAPTERS)
def test_an_arm_reading_a_builtin_the_adapter_rebinds_is_left(adapter: str, tmp_path: Path) -> None:
    builder = "def spec(cfg, names):\n    if cfg.multi_latent_attention:\n"
    builder += "        out = sorted(names)[: cfg.kv_lora_rank]\n    else:\n        out = names\n    return out\n"
    files = {"pkg/__init__.py": "", "pkg/mla_seam.py": REBINDING_ADAPTERS[adapter], "pkg/model.py": builder,
             "pkg/helpers.py": "def sorted(names):\n    return 'mine'\n"}  # fmt: skip
    said, original, rewritten = applied_beside_original(tmp_path, files)
    assert "it reads `sorted`, which the adapter module" in said, said
    check = "import types; from pkg import mla_seam, model\n"
    check += "config = types.SimpleNamespace(multi_latent_attention=1, kv_lora_rank=2)\n"
    check += "getattr(mla_seam, 'install', print)(); print(model.spec(config, 'ba'))"
    ran = printed(check, original, rewritten)
    assert ran[0] == ran[1] and ran[0].endswith("['a', 'b']\n")


# Hand-written adapters holding a function with the very code apply would ask for, which a builder calling
# it by that name would not run: the name is bound again below it, or the function reads a name the adapter
# binds where its builder read a builtin, or an adapter package's submodule of that name, once imported,
# replaces it.
GENERATED = "def multi_latent_attention(config):\n    return getattr(config, 'multi_latent_attention', 0)\n"
PLAIN_ADAPTER = {"pkg/__init__.py": "", "pkg/other.py": ""}
HAND_WRITTEN_ADAPTERS = {
    "redefined": {
        **PLAIN_ADAPTER, "pkg/mla_seam.py": GENERATED + "\n\ndef multi_latent_attention(config):\n    return 'mine'\n"
    },
    "reads-a-rebound-builtin": {
        **PLAIN_ADAPTER, "pkg/mla_seam.py": GENERATED + "\n\ndef getattr(obj, name, default=None):\n    return 'mine'\n"
    },
    "reads-a-builtin-an-import-star-binds": {
        **PLAIN_ADAPTER, "pkg/helpers.py": "def getattr(obj, name, default=None):\n    return 'mine'\n",
        "pkg/mla_seam.py": "from pkg.helpers import *  # noqa: F403\n\n\n" + GENERATED,
    },
    "package-with-that-submodule": {
        "pkg/__init__.py": "", "pkg/mla_seam/__init__.py": GENERATED, "pkg/mla_seam/multi_latent_attention.py": "",
        "pkg/other.py": "import pkg.mla_seam.multi_latent_attention\n",
    },
}  # fmt: skip
USES_GENERATED = "import types\nimport pkg.other\nfrom pkg import model\n\nfor v in (True, 0, None):\n"
USES_GENERATED += "    print(model.f(types.SimpleNamespace(multi_latent_attention=v)))\nprint(model.f(object()))\n"


@pytest.mark.parametrize("adapter", sorted(HAND_WRITTEN_ADAPTERS))
def test_a_hand_written_function_is_reused_only_where_its_name_runs_its_code(adapter: str, tmp_path: Path) -> None:
    builder = "def f(config):\n    if getattr(config, 'multi_latent_attention', 0):\n        return 1\n    return 0\n"
    files = {**HAND_WRITTEN_ADAPTERS[adapter], "pkg/model.py": builder}
    config = f'adapter = "{next(path for path in files if "mla_seam" in path)}"'
    (tmp_path / "before").mkdir()
    (tmp_path / "after").mkdir()
    before, after = project(tmp_path / "before", files, config), project(tmp_path / "after", files, config)
    applied(after)
    ran = [subprocess.run([sys.executable, "-c", USES_GENERATED], cwd=root, capture_output=True, text=True)
           for root in (before, after)]  # fmt: skip
    assert ran[0].returncode == 0 and ran[0].stdout == "1\n0\n0\n0\n", ran[0].stderr
    assert (ran[1].stdout, ran[1].stderr) == (ran[0].stdout, ran[0].stderr)


def test_a_new_function_never_takes_a_name_the_project_reads_from_the_seam(tmp_path: Path) -> None:
    # the adapter re-exports the runtime's functions through a module `__getattr__` (as README suggests):
    # a generated `multi_latent_attention` would shadow the runtime's for `pkg/other.py`, which calls it
    forwarding = "def __getattr__(name):\n    from pkg import runtime\n\n    return getattr(runtime, name)\n"
    files = {"pkg/__init__.py": "", "pkg/mla_seam.py": forwarding, "pkg/model.py": MLA_IF,
             "pkg/runtime.py": "def multi_latent_attention(config):\n    return 'runtime'\n",
             "pkg/other.py": "from pkg import mla_seam\n\n\ndef answer():\n"
                             "    return mla_seam.multi_latent_attention(None)\n"}  # fmt: skip
    (tmp_path / "before").mkdir(), (tmp_path / "after").mkdir()
    original, rewritten = project(tmp_path / "before", files), project(tmp_path / "after", files)
    applied(rewritten)
    assert "mla_seam.multi_latent_attention(" not in (rewritten / "pkg/model.py").read_text()
    check = "import types; from pkg import model, other\n"
    check += "print(model.f(types.SimpleNamespace(multi_latent_attention=1)), other.answer())"
    ran = [subprocess.run([sys.executable, "-c", check], cwd=root, capture_output=True, text=True, check=True).stdout
           for root in (original, rewritten)]  # fmt: skip
    assert ran[0] == ran[1] == "1 runtime\n"


def test_a_package_init_beside_a_module_named_like_the_seam_is_left(tmp_path: Path) -> None:
    # importing pkg.sub.mla_seam binds `mla_seam` in pkg/sub/__init__.py's namespace: the seam calls would read it
    builder = (
        "def f(config):\n    if config.multi_latent_attention:\n        return config.kv_lora_rank\n    return 0\n"
    )
    files = {"pkg/__init__.py": "", "pkg/sub/__init__.py": builder, "pkg/sub/mla_seam.py": "WHAT = 'ours'\n"}
    root = project(tmp_path, files)
    _, said = applied(root)
    assert "its package holds `pkg/sub/mla_seam.py`, which importing binds to `mla_seam`" in said
    assert (root / "pkg/sub/__init__.py").read_text() == builder
    check = "import types, pkg.sub.mla_seam, pkg.sub as s; c = types.SimpleNamespace(multi_latent_attention=1, "
    check += "kv_lora_rank=2); assert s.f(c) == 2 and s.mla_seam.WHAT == 'ours'"
    subprocess.run([sys.executable, "-c", check], cwd=root, check=True)


def test_an_adapter_that_is_the_init_importing_its_builder_is_left(tmp_path: Path) -> None:
    # `pkg/__init__.py` as the adapter runs `build` at import, before the functions apply appends to it exist
    init = "from types import SimpleNamespace\n\nfrom .model import build\n\n"
    init += "DEFAULT = build(SimpleNamespace(multi_latent_attention=False))\n"
    files = {"pkg/__init__.py": init, "pkg/mla_impl.py": MLA_CLASS, "pkg/model.py": BUILDS}
    (tmp_path / "before").mkdir(), (tmp_path / "after").mkdir()
    config = 'adapter = "pkg/__init__.py"\nallow = ["pkg/mla_impl.py"]'
    original, rewritten = project(tmp_path / "before", files, config), project(tmp_path / "after", files, config)
    _, said = applied(rewritten)
    assert "the adapter is the `__init__.py` of its package and imports it (pkg/__init__.py:3" in said, said
    check = "import types, pkg; print(pkg.DEFAULT, type(pkg.build(types.SimpleNamespace(multi_latent_attention=1))))"
    assert printed(check, original, rewritten) == ["None <class 'pkg.mla_impl.MLASelfAttention'>\n"] * 2


YIELDS = "def gen(config):\n    if (yield config).multi_latent_attention:\n        return 1\n    return 0\n\n\n"
YIELDS += "def build(config):\n    g = gen(config)\n    next(g)\n    try:\n        g.send(config)\n"
YIELDS += "    except StopIteration as stop:\n        return stop.value\n"


def test_a_yield_passed_to_a_predicate_keeps_its_parentheses(tmp_path: Path) -> None:
    # `mla_seam.multi_latent_attention(yield config)` does not parse: the file was left as unparseable
    original = make_project(tmp_path / "before", YIELDS.encode())
    rewritten = make_project(tmp_path / "after", YIELDS.encode())
    plan, said = applied(rewritten)
    assert plan.routed == 1 and "multi_latent_attention((yield config))" in (rewritten / "case.py").read_text(), said
    assert behaviour(rewritten) == behaviour(original)


def test_code_of_the_codemods_that_does_not_parse_is_not_blamed_on_the_file(monkeypatch, tmp_path: Path) -> None:
    def failing(*args):
        raise SyntaxError("invalid syntax")

    monkeypatch.setattr("seamfix.codemods.rewrite._rewrite", failing)
    root = make_project(tmp_path / "p", YIELDS.encode())
    plan, said = applied(root)
    assert "case.py: the codemods failed on it (their code does not parse: invalid syntax)" in said, said


NAMED_BY_PATH = {
    "conf/model.yaml": "model:\n  _target_: pkg.model.MLASelfAttention\n",  # Hydra
    "conf/registry.json": '{"mla": "pkg.model.MLASelfAttention"}\n',
    "plugins/setup.cfg": "[options.entry_points]\nattention =\n    mla = pkg.model:MLASelfAttention\n",
}


@pytest.mark.parametrize("config", NAMED_BY_PATH)
def test_a_name_a_configuration_file_names_by_its_dotted_path_stays(config: str, tmp_path: Path) -> None:
    # instantiating `_target_: pkg.model.MLASelfAttention` reads the name from the builder module
    text = NAMED_BY_PATH[config]
    files = {"pkg/__init__.py": "", "pkg/mla_impl.py": MLA_CLASS, "pkg/model.py": BUILDS, config: text}
    said, original, rewritten = applied_beside_original(tmp_path, files)
    assert "or a configuration file names by its dotted path" in said, said
    check = "import importlib; print(getattr(importlib.import_module('pkg.model'), 'MLASelfAttention').__name__)"
    assert printed(check, original, rewritten) == ["MLASelfAttention\n"] * 2


LAZY_INIT = "import importlib\n\n_LAZY = {'build': '.model'}\n\n\ndef __getattr__(name):\n"
LAZY_INIT += "    return getattr(importlib.import_module(_LAZY[name], __name__), name)\n"
# Hugging Face's pattern: the package puts a lazy module object in its own place in `sys.modules`
LAZY_MODULE_INIT = "import importlib\nimport sys\nimport types\n\n_LAZY = {'build': '.model'}\n\n\n"
LAZY_MODULE_INIT += "class _LazyModule(types.ModuleType):\n    def __getattr__(self, name):\n"
LAZY_MODULE_INIT += "        return getattr(importlib.import_module(_LAZY[name], __name__), name)\n\n\n"
LAZY_MODULE_INIT += "_lazy = _LazyModule(__name__)\n_lazy.__path__ = __path__\n"
LAZY_MODULE_INIT += "if True:\n    sys.modules[__name__] = _lazy\n"


DOCTESTED = '''"""Builds attention.

>>> from pkg.model import MLASelfAttention
>>> MLASelfAttention.__name__
'MLASelfAttention'
"""
'''
HELPER_DOCTESTED = '''

def helper():
    """
    >>> import pkg.model
    >>> pkg.model.MLASelfAttention.__name__
    'MLASelfAttention'
    """
'''


@pytest.mark.parametrize(
    ("builder", "page"),
    [(DOCTESTED + BUILDS, None), (BUILDS + HELPER_DOCTESTED, None), (BUILDS, DOCTESTED.replace('"""', ""))],
    ids=["module", "function", "page"],
)
def test_a_name_a_doctest_imports_from_the_builder_is_kept(builder: str, page: str | None, tmp_path: Path) -> None:
    # dropped once the arm moved, the doctest failed: `ImportError: cannot import name 'MLASelfAttention'`
    files = {"pkg/__init__.py": "", "pkg/mla_impl.py": MLA_CLASS, "pkg/model.py": builder}
    said, original, rewritten = applied_beside_original(
        tmp_path, {**files, **({"docs/usage.md": page} if page else {})}
    )
    assert "another module or a doctest imports from it" in said, said
    check = f"import doctest, pkg.model; print(doctest.{'testfile' if page else 'testmod'}("
    check += "'docs/usage.md', module_relative=False))" if page else "pkg.model))"
    assert printed(check, original, rewritten) == ["TestResults(failed=0, attempted=2)\n"] * 2


@pytest.mark.parametrize(
    ("init", "answers"),
    [(LAZY_INIT, "its module `__getattr__`, pkg/__init__.py:6"),
     (LAZY_MODULE_INIT, "the object that pkg/__init__.py:16 puts in its place in `sys.modules`")],
    ids=["module-getattr", "lazy-module"],
)  # fmt: skip
def test_a_builder_is_left_where_the_seams_package_answers_names_of_its_own(init, answers, tmp_path: Path) -> None:
    # `from pkg import mla_seam` asks `pkg.__getattr__("mla_seam")` first: its `KeyError` broke the builder's import
    files = {"pkg/__init__.py": init, "pkg/mla_impl.py": MLA_CLASS, "pkg/model.py": BUILDS}
    said, original, rewritten = applied_beside_original(tmp_path, files)
    assert f"first asks package `pkg` for `mla_seam` ({answers})" in said, said
    check = "import types, pkg; print(type(pkg.build(types.SimpleNamespace(multi_latent_attention=1))).__name__)"
    assert printed(check, original, rewritten) == ["MLASelfAttention\n"] * 2


KERNELS = "print('mla_kernels imported')\n\n\nclass MLAKernel:\n    pass\n\n\nclass MLAHelper:\n    pass\n"
USES_KERNELS = (
    "\n\ndef f(config):\n    if config.multi_latent_attention:\n        return MLAKernel, MLAHelper\n    return 0\n"
)
# the first stays; the second loads nothing new by then: it goes
TWO_IMPORTS = "import os\nfrom pkg.mla_kernels import MLAHelper\nfrom pkg.mla_kernels import MLAKernel\n"
DEFINES_ONLY = KERNELS.replace("print('mla_kernels imported')", '"""Kernels."""')
# dataclasses and subclasses of the module's own plain classes run nothing of the project's; a base that
# defines `__init_subclass__` runs it for each subclass (a registry)
DATACLASSES = "from dataclasses import dataclass, field\n\n\n@dataclass(frozen=True)\nclass MLAKernel:\n"
DATACLASSES += "    ranks: list = field(default_factory=list)\n\n\nclass MLAHelper(MLAKernel):\n    pass\n"
REGISTRY = "class MLAKernel:\n    def __init_subclass__(cls):\n        print('registered', cls.__name__)\n\n\n"
REGISTRY += "class MLAHelper(MLAKernel):\n    pass\n"
LATE_PARENTHESIZED = "from pkg.mla_kernels import (  # noqa: E402 - late\n    MLAKernel,\n    MLAHelper,\n)\n"


@pytest.mark.parametrize(
    ("kernels", "imported", "kept"),
    [
        (KERNELS, "from pkg.mla_kernels import MLAKernel, MLAHelper\n", "MLAKernel  # noqa: F401\n\n"),
        (KERNELS, "from pkg.mla_kernels import (\n    MLAKernel,\n    MLAHelper,\n)\n", "(  # noqa: F401\n"),
        (DEFINES_ONLY, "from pkg.mla_kernels import MLAKernel, MLAHelper\n", None),
        (DATACLASSES, "from pkg.mla_kernels import MLAKernel, MLAHelper\n", None),
        (REGISTRY, "from pkg.mla_kernels import MLAKernel, MLAHelper\n", "MLAKernel  # noqa: F401\n\n"),
        (KERNELS, TWO_IMPORTS, "import MLAHelper  # noqa: F401\n\n"),
        # a comment there already: F401 joins its codes, or follows it (the self-check left the file before)
        (KERNELS, "from pkg.mla_kernels import MLAKernel, MLAHelper  # noqa:E402\n", "# noqa:E402, F401\n"),
        (KERNELS, LATE_PARENTHESIZED, "(  # noqa: E402, F401 - late\n"),
        (KERNELS, "from pkg.mla_kernels import MLAKernel, MLAHelper  # type: ignore\n", "ignore  # noqa: F401\n"),
    ],
    ids=[
        "runs-code",
        "runs-code-parenthesized",
        "defines-only",
        "dataclasses",
        "registry",
        "loaded-by-an-import-kept",
        "noqa-codes",
        "noqa-codes-parenthesized",
        "other-comment",
    ],
)
def test_an_mla_import_only_moved_code_used_stays_when_importing_it_may_run_code(
    kernels: str, imported: str, kept: str | None, tmp_path: Path
) -> None:
    """Dropped, it would no longer run (print, register kernels, patch) when the builder is imported, or
    fail there when its package is missing: it stays, marked for ruff, unless dropping it changes nothing."""
    builder = imported + USES_KERNELS
    files = {"pkg/__init__.py": "", "pkg/mla_kernels.py": kernels, "pkg/model.py": builder}
    (tmp_path / "before").mkdir()
    (tmp_path / "after").mkdir()
    before, after = project(tmp_path / "before", files), project(tmp_path / "after", files)
    plan, _ = applied(after)
    assert plan.moved == 1
    written = (after / "pkg/model.py").read_text()
    assert written.count("pkg.mla_kernels") == (kept is not None) and (kept is None or kept in written), written
    check = "import types\nfrom pkg import model\n"
    check += "print(model.f(types.SimpleNamespace(multi_latent_attention=0)))\n"
    ran = [subprocess.run([sys.executable, "-c", check], cwd=root, capture_output=True, text=True)
           for root in (before, after)]  # fmt: skip
    assert ran[0].returncode == 0, ran[0].stderr
    assert (ran[1].stdout, ran[1].stderr) == (ran[0].stdout, ran[0].stderr)


LONE_CR = b"def build(config, log):\r    if config.multi_latent_attention:\r        log(1)\r"
LONE_CR += b"        return config.kv_lora_rank\r    return 0\r"
# cp932 decodes NEC's and IBM's row-13 symbols (0x8790, 0x8791) to the characters it encodes as 0x81e0, 0x81df
CP932 = b"# -*- coding: cp932 -*-\n# \x87\x90 \x87\x91\ndef build(config, log):\n    note = '\x87\x90'\n"
CP932 += b"    if config.multi_latent_attention:\n        log(note)\n        return config.kv_lora_rank\n"
CP932 += b"    return note\n"
# LibCST keeps a statement's indentation, not a form feed before it (an Emacs page break inside a function)
FORM_FEED = b"def build(config, log):\n    if config.multi_latent_attention:\n        log(config.kv_lora_rank)\n"
FORM_FEED += b"        width = 1\n    else:\n        width = 0\n\x0c    return width\n"
UTF7 = CP932.replace(b"cp932", b"utf-7").replace(b"\x87\x90", b"+AGE-").replace(b"\x87\x91", b"+AGI-")


@pytest.mark.parametrize(
    ("source", "reason"),
    [
        # Python reads a lone CR as a line break; what apply writes would end lines in LF and drop the last CR
        (LONE_CR, "its lines end in a lone CR (classic Mac OS)"),
        (CP932, "its encoding (cp932) does not give back the bytes it decodes from"),
        (UTF7, "its encoding (utf-7) does not give back the bytes it decodes from"),  # `+AGE-` is `a`
        (FORM_FEED, "LibCST does not give back line 7 as it reads it (a form feed in an indentation)"),
    ],
    ids=["lone-cr", "cp932", "utf-7", "form-feed"],
)
def test_bytes_the_codemods_would_not_give_back_are_left_byte_for_byte(source, reason, tmp_path: Path) -> None:
    original = make_project(tmp_path / "before", source)
    rewritten = make_project(tmp_path / "after", source)
    _, said = applied(rewritten)
    assert reason in said
    assert (rewritten / "case.py").read_bytes() == source
    assert behaviour(rewritten) == behaviour(original)


def test_an_arm_with_a_relative_import_is_left(tmp_path: Path) -> None:
    # moved into pkg/mla_seam.py, `from .helpers import` would import pkg.helpers instead of pkg.sub.helpers
    builder = "def spec(cfg):\n    if cfg.multi_latent_attention:\n        from .helpers import WHERE\n"
    builder += "        return WHERE, cfg.kv_lora_rank\n    return None\n"
    root = project(tmp_path, {
        "pkg/__init__.py": "", "pkg/helpers.py": "WHERE = 'pkg'\n", "pkg/sub/__init__.py": "",
        "pkg/sub/helpers.py": "WHERE = 'pkg.sub'\n", "pkg/sub/model.py": builder,
    })  # fmt: skip
    _, said = applied(root)
    assert "it holds a relative import, which would resolve from the adapter's package" in said
    check = "import types; from pkg.sub import model\n"
    check += "assert model.spec(types.SimpleNamespace(multi_latent_attention=1, kv_lora_rank=2)) == ('pkg.sub', 2)"
    subprocess.run([sys.executable, "-c", check], cwd=root, check=True)


def test_a_plain_import_is_shared_and_the_module_imports(tmp_path: Path) -> None:
    root = project(tmp_path, {
        "pkg/__init__.py": "", "pkg/mla_impl.py": "class MLATransformerConfig:\n    pass\n",
        "pkg/model.py": GUARDED.replace("from mla_impl", "from pkg.mla_impl"),
    })  # fmt: skip
    plan, _ = applied(root)
    assert plan.routed == 1
    adapter = (root / "pkg/mla_seam.py").read_text()
    assert "from pkg.mla_impl import MLATransformerConfig" in adapter and "pkg.model" not in adapter
    check = "from pkg import model, mla_impl; assert model.kind(mla_impl.MLATransformerConfig()) == 1"
    subprocess.run([sys.executable, "-c", check], cwd=root, check=True)


def test_a_script_next_to_the_builder_is_never_imported(tmp_path: Path) -> None:
    root = project(tmp_path, {
        "pkg/__init__.py": "", "tools/helper.py": "class MLATransformerConfig:\n    pass\n",
        "tools/run.py": GUARDED.replace("from mla_impl", "from helper"),
    })  # fmt: skip
    _, said = applied(root)
    assert "imported from `helper`, which the adapter must not import" in said
    adapter = root / "pkg/mla_seam.py"
    assert not adapter.exists() or "helper" not in adapter.read_text()


def test_src_layout_imports_the_seam_by_its_package_name(tmp_path: Path) -> None:
    root = project(
        tmp_path,
        {"src/mypkg/__init__.py": "", "src/mypkg/model.py": "def f(cfg):\n    return 1 if cfg.kv_lora_rank else 0\n"},
        'adapter = "src/mypkg/mla_seam.py"',
    )
    applied(root)
    assert (root / "src/mypkg/model.py").read_text().startswith("from mypkg import mla_seam\n")
    check = "import types; from mypkg import model; assert model.f(types.SimpleNamespace(kv_lora_rank=2)) == 1"
    subprocess.run([sys.executable, "-c", check], cwd=root / "src", check=True)


@pytest.mark.parametrize("imports", ["", "import tools\n\n"])
def test_a_builder_of_another_source_root_than_the_adapters_is_left(imports: str, tmp_path: Path) -> None:
    # `mla_seam.py` at the top of a src layout: `src/mypkg` runs (installed, or with `src` on the path)
    # without the project's top folder importable, unless it imports from there already (`tools`)
    files = {"tools.py": "", "src/mypkg/__init__.py": "", "src/mypkg/model.py": imports + MLA_IF}
    (tmp_path / "before").mkdir(), (tmp_path / "after").mkdir()
    original = project(tmp_path / "before", files, 'adapter = "mla_seam.py"')
    rewritten = project(tmp_path / "after", files, 'adapter = "mla_seam.py"')
    _, said = applied(rewritten)
    assert ("imports nothing from the source root `.` that holds the adapter" in said) == (not imports), said
    check = "import types; from mypkg import model; print(model.f(types.SimpleNamespace(multi_latent_attention=1)))"
    ran = [  # the top folder importable only where the builder imports from it
        subprocess.run([sys.executable, "-c", check], cwd=root / "src", capture_output=True, text=True,
                       env={**os.environ, "PYTHONPATH": str(root) if imports else ""}).stdout
        for root in (original, rewritten)
    ]  # fmt: skip
    assert ran[0] == ran[1] == "1\n"


def test_the_seam_import_follows_sys_path_changes_and_first_party_imports(tmp_path: Path) -> None:
    script = '"""Doc."""\nfrom __future__ import annotations\n\nimport os\nimport sys\n\n'
    script += "sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))\n"
    script += "import json\nfrom pkg import helpers\n\n\ndef f(cfg):\n    return 1 if cfg.kv_lora_rank else 0\n"
    root = project(tmp_path, {"pkg/__init__.py": "", "pkg/helpers.py": "", "scripts/train.py": script})
    applied(root)
    lines = (root / "scripts/train.py").read_text().splitlines()
    # into the first-party import of its package, as isort would merge it, below the `sys.path` change
    assert lines.index("from pkg import helpers, mla_seam") > lines.index("import json")
    check = "import types, train; assert train.f(types.SimpleNamespace(kv_lora_rank=2)) == 1"
    subprocess.run([sys.executable, "-c", check], cwd=root / "scripts", check=True)


def test_a_comment_inside_a_multi_line_test_is_no_obstacle(tmp_path: Path) -> None:
    source = "def f(cfg, x):\n    if (cfg.kv_lora_rank  # why\n            + x > 2):\n        return 1\n    return 0\n"
    root = project(tmp_path, {"pkg/__init__.py": "", "pkg/model.py": source})
    plan, _ = applied(root)
    assert plan.routed == 1 and not plan.refused
    compiles(root)


def test_nesting_too_deep_for_the_default_stack_is_rewritten_and_behaves_the_same(tmp_path: Path) -> None:
    chain = " + ".join(["x"] * 900)  # too deep for LibCST at the default recursion limit; Python compiles it
    source = f"def build(config, x):\n    value = {chain}\n    if config.multi_latent_attention:\n"
    source += "        return value + 1\n    return value\n"
    original = make_project(tmp_path / "before", source.encode())
    rewritten = make_project(tmp_path / "after", source.encode())
    plan, _ = applied(rewritten)
    assert plan.routed == 1 and not plan.refused
    compiles(rewritten)
    assert behaviour(rewritten) == behaviour(original)


def test_a_kept_arm_is_said_to_have_its_test_routed_only_when_it_was(tmp_path: Path) -> None:
    arm = "        global calls\n        calls += 1\n        return config.kv_lora_rank\n    return 0\n"
    source = "calls = 0\n\n\ndef routed(config):\n    if config.multi_latent_attention:\n" + arm
    source += "\n\ndef local_flag(config, multi_latent_attention):\n    if multi_latent_attention:\n" + arm
    root = project(tmp_path, {"pkg/__init__.py": "", "pkg/model.py": source})
    plan, _ = applied(root)
    written = (root / "pkg/model.py").read_text().splitlines()
    line = int(plan.kept_arms[0].split(":")[1])  # the lines of the file as written: the seam import moved them
    assert len(plan.kept_arms) == 1 and written[line - 1] == "    if mla_seam.multi_latent_attention(config):"
    [left] = plan.remaining  # `local_flag`'s arm stays and so does its test: not "routed", and said why
    assert written[int(left.split(":")[1]) - 1] == "    if multi_latent_attention:" and "declares a global" in left
    rerun, _ = applied(root)
    assert not rerun.changes and not rerun.kept_arms  # nothing routed on a rerun: no "Routed the test"


def test_a_rewrite_that_fails_the_self_check_is_left_with_the_reason(tmp_path: Path) -> None:
    root = project(tmp_path, {"pkg/__init__.py": "", "pkg/a.py": "x = 1\n", "pkg/b.py": "y = 2\n"})
    broken = FileRewrite("pkg/a.py", b"x = undefined_name\n", routed=1)
    fine = FileRewrite("pkg/b.py", b"y = 3\n", routed=1)
    originals = {relpath: (root / relpath).read_bytes() for relpath in ("pkg/a.py", "pkg/b.py")}
    refuse_failing([broken, fine], originals, ("pkg/mla_seam.py", "pkg.mla_seam"), None, lambda functions: ("", {}))
    assert broken.refused == "self-check: F821 Undefined name `undefined_name`" and broken.data == b"x = 1\n"
    assert fine.refused is None and fine.data == b"y = 3\n"


def test_src_setting_names_modules_from_the_deepest_root(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.seamfix]\nadapter = "lib/mypkg/mla_seam.py"\nsrc = [".", "lib"]\n')
    settings = load_settings(tmp_path)
    assert settings.src == ("", "lib")
    assert settings.adapter_module_parts == ("mypkg", "mla_seam")
    assert settings.module_parts("lib/mypkg/__init__.py") == ("mypkg",)
    assert settings.module_parts("tools/run.py") == ("tools", "run")
    # A root outside the project is allowed, as ruff's: it names the modules of files given from there.
    (tmp_path / "pyproject.toml").write_text('[tool.seamfix]\nsrc = ["../elsewhere"]\n')
    assert load_settings(tmp_path).module_parts("../elsewhere/pkg/m.py") == ("pkg", "m")


# Source modules that give a name another value after a builder imported it: the builder keeps what it imported,
# while a moved arm's own import, run at each call, would get the new value (or call `__getattr__` again).
REBINDING_SOURCES = {
    "global": "def use_fused():\n    global MLASelfAttention\n    MLASelfAttention = Fused\n",
    "globals()": "def use_fused():\n    globals()['MLASelfAttention'] = Fused\n",
    "sys.modules": "import sys\n\n\ndef use_fused():\n    vars(sys.modules[__name__]).update(MLASelfAttention=Fused)\n",
    "__getattr__": "def use_fused():\n    pass\n\n\ndef __getattr__(name):\n    print('resolved', name)\n"
                   "    return Plain\n",
}  # fmt: skip
SOURCE = "class Plain:\n    kind = 'plain'\n\n\nclass Fused:\n    kind = 'fused'\n\n\nMLASelfAttention = Plain\n\n\n"


@pytest.mark.parametrize("rebinding", REBINDING_SOURCES)
def test_a_name_its_source_module_rebinds_after_import_stays_where_the_builder_reads_it(rebinding, tmp_path: Path):
    source = SOURCE + REBINDING_SOURCES[rebinding]
    if rebinding == "__getattr__":
        source = source.replace("MLASelfAttention = Plain\n", "")
    builder = "from pkg.mla_impl import MLASelfAttention\n\n\ndef build(config, log):\n"
    builder += "    if config.multi_latent_attention:\n        log('mla')\n        return MLASelfAttention.kind\n"
    builder += "    return None\n"
    files = {"pkg/__init__.py": "", "pkg/mla_impl.py": source, "pkg/model.py": builder}
    said, original, rewritten = applied_beside_original(tmp_path, files)
    # `vars(module).update(Name=...)` reads as any file's write of the name, before the source module's own code
    assert "imported from `pkg.mla_impl`, which" in said or "patches or sets by name" in said, said
    check = "from types import SimpleNamespace as C; from pkg import mla_impl, model; c = C(multi_latent_attention=1)\n"
    check += "print(model.build(c, print)); mla_impl.use_fused(); print(model.build(c, print))"
    ran = printed(check, original, rewritten)
    assert ran[0] == ran[1]


RETURNS_CLASS = "from pkg.mla_impl import MLASelfAttention\n\n\ndef build(config):\n"
RETURNS_CLASS += "    if config.multi_latent_attention:\n        return MLASelfAttention\n    return None\n"


def test_a_name_from_a_module_some_file_reloads_stays_where_the_builder_reads_it(tmp_path: Path) -> None:
    # `importlib.reload` runs the module again: the builder keeps the class it imported, a moved arm's import
    # would get the new one
    files = {"pkg/__init__.py": "", "pkg/mla_impl.py": "class MLASelfAttention:\n    pass\n",
             "pkg/model.py": RETURNS_CLASS,
             "pkg/hooks.py": "import importlib\n\nimport pkg.mla_impl\n\n\ndef reset():\n"
                             "    importlib.reload(pkg.mla_impl)\n"}  # fmt: skip
    said, original, rewritten = applied_beside_original(tmp_path, files)
    assert "which some file reloads" in said, said
    check = "from types import SimpleNamespace as C; from pkg import hooks, mla_impl, model\n"
    check += "c = C(multi_latent_attention=1); first = model.build(c); hooks.reset()\n"
    check += "print(first is model.build(c), model.build(c) is mla_impl.MLASelfAttention)"
    ran = printed(check, original, rewritten)
    assert ran[0] == ran[1] == "True False\n"


STUBBING_TEST = """import sys
import types
from unittest import mock


def check():
    stub = types.SimpleNamespace(MLASelfAttention=dict)
    with mock.patch.dict(sys.modules, {
        "pkg.mla_impl": stub,
    }):
        from pkg import model
    return model.build(types.SimpleNamespace(multi_latent_attention=True)).__name__
"""


# the stubbed module's name held in a constant: no string literal where `sys.modules` changes
STUBBING_BY_CONSTANT = STUBBING_TEST.replace('"pkg.mla_impl": stub', "MODULE: stub").replace(
    "\n\n\ndef check", '\n\nMODULE = "pkg.mla_impl"\n\n\ndef check'
)


@pytest.mark.parametrize("stubbing", [STUBBING_TEST, STUBBING_BY_CONSTANT], ids=["literal", "constant"])
@pytest.mark.parametrize("imported", ["from pkg.mla_impl import MLASelfAttention", "from pkg import mla_impl"])
def test_a_name_from_a_module_a_test_stubs_in_sys_modules_stays_where_the_builder_reads_it(
    imported, stubbing, tmp_path
):
    # the builder was imported against a stub module (torch or megatron missing on a CPU runner): a moved arm's
    # import, at the call, would get the real module
    builder = RETURNS_CLASS.replace("from pkg.mla_impl import MLASelfAttention", imported)
    if "MLASelfAttention" not in imported:
        builder = builder.replace("return MLASelfAttention", "return mla_impl.MLASelfAttention")
    files = {"pkg/__init__.py": "", "pkg/mla_impl.py": "class MLASelfAttention:\n    pass\n", "pkg/model.py": builder,
             "tests/test_model.py": stubbing}  # fmt: skip
    said, original, rewritten = applied_beside_original(tmp_path, files)
    assert "some file swaps in or out of `sys.modules` (`pkg.mla_impl`)" in said, said
    check = "from tests.test_model import check; print(check())"
    ran = printed(check, original, rewritten)
    assert ran[0] == ran[1] == "dict\n"


def test_a_hand_written_function_bound_again_under_try_is_not_reused(tmp_path: Path) -> None:
    # `try: from pkg.fast import multi_latent_attention` rebinds the function of the requested code: reused, the
    # builder would call `fast`'s (the builder imports the seam already, so the `try` runs nothing new for it)
    adapter = GENERATED + "\n\ndef describe():\n    return 'seam'\n\n\ntry:\n"
    adapter += "    from pkg.fast import multi_latent_attention  # noqa: F811\nexcept ImportError:\n    pass\n"
    builder = "from pkg import mla_seam\n\n\ndef f(config):\n    if getattr(config, 'multi_latent_attention', 0):\n"
    builder += "        return 1\n    return mla_seam.describe()\n"
    files = {"pkg/__init__.py": "", "pkg/fast.py": "def multi_latent_attention(config):\n    return 'fast'\n",
             "pkg/mla_seam.py": adapter, "pkg/model.py": builder}  # fmt: skip
    _, original, rewritten = applied_beside_original(tmp_path, files)
    assert "mla_seam.multi_latent_attention(" not in (rewritten / "pkg/model.py").read_text()
    check = "import types; from pkg import model\n"
    check += "print([model.f(types.SimpleNamespace(multi_latent_attention=v)) for v in (1, 0)])"
    assert printed(check, original, rewritten) == ["[1, 'seam']\n"] * 2


# `from .layers import dense` binds `layers` in the package's namespace (the import system sets the submodule as
# an attribute of its package); no statement of `pkg/__init__.py` binds it, and the adapter does not have it
SUBMODULE_READERS = {
    "arm": "        return [MLASelfAttention(config).__class__.__name__, layers.KIND]\n",
    "predicate": "        return 'mla'\n    if config.multi_latent_attention in layers.MLA_KINDS:\n"
    "        return 'listed'\n",
}


@pytest.mark.parametrize("reader", SUBMODULE_READERS)
def test_a_name_a_submodule_import_binds_in_its_package_stays_where_the_package_reads_it(reader: str, tmp_path):
    init = "from pkg.mla_impl import MLASelfAttention\nfrom .layers import dense\n\n\ndef build(config):\n"
    init += f"    print('build')\n    if config.multi_latent_attention:\n{SUBMODULE_READERS[reader]}    return dense\n"
    files = {"pkg/__init__.py": init, "pkg/layers.py": "KIND = 'layers'\nMLA_KINDS = ('yes',)\ndense = 'dense'\n",
             "pkg/mla_impl.py": "class MLASelfAttention:\n    def __init__(self, config):\n        pass\n"}  # fmt: skip
    said, original, rewritten = applied_beside_original(tmp_path, files)
    check = "import types; from pkg import build\n"
    check += "print([build(types.SimpleNamespace(multi_latent_attention=v)) for v in (True, 'yes', False)])"
    ran = subprocess.run([sys.executable, "-c", check], cwd=rewritten, capture_output=True, text=True).stdout
    assert [ran] == printed(check, original), ran
    if reader == "arm":
        assert "it reads `layers`, which neither the module binds nor a builtin is" in said, said
    else:  # passed; read after the MLA read, as in the test (to the text, `layers` may be unbound there)
        routed = "mla_seam.multi_latent_attention(config) in mla_seam.mla_kinds(layers)"
        assert routed in (rewritten / "pkg/__init__.py").read_text()


@pytest.mark.parametrize("binding", ["layers = 'not loaded yet'", "from . import layers"])
def test_a_package_global_named_like_its_submodule_is_passed_only_when_it_is_that_submodule(binding, tmp_path):
    # importing `pkg.layers` sets `layers` in the package's namespace: passed at the call, the arm's own read
    # (after `load()`) would see the old value; bound by `from . import layers`, it is that module already
    init = f"import importlib\n{binding}\n\n\ndef load():\n    importlib.import_module('pkg.layers')\n\n\n"
    init += "def build(config):\n    if config.multi_latent_attention:\n        load()\n"
    init += "        return [config.kv_lora_rank, type(layers).__name__]\n    return None\n"
    said, original, rewritten = applied_beside_original(tmp_path, {"pkg/__init__.py": init, "pkg/layers.py": ""})
    check = "import types; from pkg import build; print(build(types.SimpleNamespace(multi_latent_attention=1, "
    check += "kv_lora_rank=2)))"
    assert printed(check, original, rewritten) == ["[2, 'module']\n"] * 2
    kept = "it reads `layers`, a name of this package that its submodule `pkg.layers` has:" in said
    assert kept == binding.startswith("layers ="), said


def test_a_global_of_a_module_some_file_reloads_is_never_passed(tmp_path: Path) -> None:
    # the arm calls code that reloads the builder: its own read after that finds the new `STAMP`, a value passed
    # at the call would be the old one
    builder = "from pkg import hooks\n\nSTAMP = object()\n\n\ndef build(config):\n"
    builder += "    if config.multi_latent_attention:\n        first = STAMP\n        hooks.bump()\n"
    builder += "        return [config.kv_lora_rank, first is STAMP]\n"
    hooks = "import importlib\n\n\ndef bump():\n    from pkg import model\n\n    importlib.reload(model)\n"
    files = {"pkg/__init__.py": "", "pkg/model.py": builder, "pkg/hooks.py": hooks}
    said, original, rewritten = applied_beside_original(tmp_path, files)
    check = "from types import SimpleNamespace as C; from pkg import model\n"
    check += "print(model.build(C(multi_latent_attention=True, kv_lora_rank=3)))"
    assert printed(check, original, rewritten) == ["[3, False]\n"] * 2
    assert "some file reloads the module (`importlib.reload`)" in said, said


# a fork's patch manager or plugin setting the upstream class by a computed name or through the module's namespace
# (MindSpeed's `register_patch("megatron.core....MLASelfAttention", Fused)` style), after the builder imported it
SOURCE_REWRITES = {
    "registry": {"pkg/patches.py": "import importlib\n\n\ndef override(path, value):\n"
                 "    module, _, name = path.rpartition('.')\n"
                 "    setattr(importlib.import_module(module), name, value)\n",
                 "pkg/plugin.py": "from pkg.patches import override\n\n\ndef install():\n"
                 "    override('pkg.mla_impl.MLASelfAttention', Fused)\n"},
    "vars": {"pkg/plugin.py": "from pkg import mla_impl\n\n\ndef install(name='MLASelfAttention'):\n"
             "    vars(mla_impl)[name] = Fused\n"},
    "__dict__": {"pkg/plugin.py": "import pkg.mla_impl\n\n\ndef install():\n"
                 "    pkg.mla_impl.__dict__.update(MLASelfAttention=Fused)\n"},
    "exec": {"pkg/plugin.py": "from pkg import mla_impl\n\n\ndef install():\n"
             "    exec('MLASelfAttention = type(\"Fused\", (), {})', vars(mla_impl))\n"},
    "vars update": {"pkg/plugin.py": "from pkg import mla_impl\n\n\ndef install():\n"
                    "    vars(mla_impl).update({'MLASelfAttention': Fused})\n"},
    "its own __setattr__": {"pkg/plugin.py": "import pkg.mla_impl\n\n\ndef install():\n"
                            "    pkg.mla_impl.__setattr__('MLASelfAttention', Fused)\n"},
    "a table's loop": {"pkg/plugin.py": "from pkg import mla_impl\n\n\ndef install():\n"
                       "    for name, new in {'MLASelfAttention': Fused}.items():\n"
                       "        setattr(mla_impl, name, new)\n"},
    # the name written out: a patch by name, as `setattr(mla_impl, "MLASelfAttention", Fused)`
    "object.__setattr__": {"pkg/plugin.py": "from pkg import mla_impl\n\n\ndef install():\n"
                           "    object.__setattr__(mla_impl, 'MLASelfAttention', Fused)\n"},
}  # fmt: skip
PATCHED_BY_NAME = {"object.__setattr__"}


@pytest.mark.parametrize("rewrite", SOURCE_REWRITES)
def test_a_name_its_source_module_has_set_by_a_computed_name_stays_where_the_builder_reads_it(rewrite, tmp_path):
    reason = "patches or sets by name" if rewrite in PATCHED_BY_NAME else "may set by a computed name or through"
    # the builder imported first: it keeps the class, which the plugin then replaces in the source module
    check = "import types; from pkg.model import build; from pkg import plugin; plugin.install()\n"
    assert_plugin_rebinding_stays(tmp_path, SOURCE_REWRITES[rewrite], check, "MLASelfAttention", reason)


def assert_plugin_rebinding_stays(tmp_path, files, check, built, reason):
    """``files`` (a ``pkg/plugin.py`` whose ``install()`` rebinds ``MLASelfAttention`` to its ``Fused`` somewhere)
    beside a builder returning that class under MLA: after ``check``, both trees build ``built``, and apply gave
    ``reason`` for leaving the arm."""
    files = {"pkg/__init__.py": "", "pkg/mla_impl.py": "class MLASelfAttention:\n    pass\n",
             "pkg/model.py": RETURNS_CLASS, **files}  # fmt: skip
    files["pkg/plugin.py"] = "class Fused:\n    pass\n\n\n" + files["pkg/plugin.py"]
    said, original, rewritten = applied_beside_original(tmp_path, files)
    check += "print(build(types.SimpleNamespace(multi_latent_attention=True)).__name__)"
    assert printed(check, original, rewritten) == [f"{built}\n"] * 2
    assert reason in said, said


# a test shadowing a builtin with a global of the builder module (`create=True`: the module has no such name); a
# patch of the builtin itself reaches the adapter too, and the arm moves
BUILTIN_PATCHES = [
    'mock.patch("pkg.model.open", fake, create=True)',
    'mock.patch.object(model, "open", fake, create=True)',
    'mock.patch("builtins.open", fake)',
]


def checked_under_patch(tmp_path: Path, builder: str, fake: str, patch: str, config: str) -> tuple[str, Path, str]:
    """``builder`` as ``pkg/model.py`` beside a test whose ``check()`` builds ``config`` with ``patch`` (of
    ``fake``) active: apply's summary, the rewritten tree, and what ``check()`` printed in both trees (the same)."""
    test = "import types\nfrom unittest import mock\n\nfrom pkg import model\n\n\ndef check():\n"
    test += f"    fake = {fake}\n    with {patch}:\n        return model.build(types.SimpleNamespace({config}))\n"
    files = {"pkg/__init__.py": "", "pkg/model.py": builder, "tests/__init__.py": "", "tests/test_model.py": test}
    said, original, rewritten = applied_beside_original(tmp_path, files)
    check = "from tests.test_model import check; print(check())"
    ran = subprocess.run([sys.executable, "-c", check], cwd=rewritten, capture_output=True, text=True).stdout
    assert [ran] == printed(check, original)
    return said, rewritten, ran


@pytest.mark.parametrize("patch", BUILTIN_PATCHES)
def test_a_builtin_a_test_shadows_on_the_builder_module_keeps_the_arm_that_reads_it(patch: str, tmp_path: Path):
    builder = "def build(config):\n    if config.multi_latent_attention:\n        handle = open(config.path)\n"
    builder += "        return [config.kv_lora_rank, handle.read()]\n    return None\n"
    config = "multi_latent_attention=True, kv_lora_rank=2, path='/nonexistent'"
    said, _, ran = checked_under_patch(tmp_path, builder, "mock.mock_open(read_data='fake')", patch, config)
    assert ran == "[2, 'fake']\n"
    kept = "it reads the builtin `open`, which some file patches or sets by name" in said
    assert kept == ("builtins" not in patch), said


@pytest.mark.parametrize("patch", [p.replace("open", "getattr") for p in BUILTIN_PATCHES[:2]])
def test_a_builtin_a_test_shadows_on_the_builder_module_is_passed_to_the_predicate_reading_it(patch, tmp_path):
    # `getattr` kept in the predicate's body would be the adapter's builtin, not the test's fake
    builder = "def build(config):\n    if getattr(config, 'multi_latent_attention', False):\n        return 'mla'\n"
    builder += "    return 'dense'\n"
    fake = "lambda obj, name, default: 0"
    _, rewritten, ran = checked_under_patch(tmp_path, builder, fake, patch, "multi_latent_attention=True")
    assert ran == "dense\n"
    assert "mla_seam.get_multi_latent_attention(getattr, config)" in (rewritten / "pkg/model.py").read_text()


def test_a_star_import_of_the_builder_shadows_no_builtin(tmp_path: Path) -> None:
    # `from pkg.model import *` copies the module's globals and sets none: `getattr` stays the builtin
    builder = "def build(config):\n    if getattr(config, 'multi_latent_attention', False):\n        return 'mla'\n"
    builder += "    return 'dense'\n"
    files = {"pkg/__init__.py": "", "pkg/model.py": builder, "pkg/compat.py": "from pkg.model import *  # noqa\n"}
    said, original, rewritten = applied_beside_original(tmp_path, files)
    check = "import types; from pkg.compat import build\n"
    check += "print([build(types.SimpleNamespace(multi_latent_attention=v)) for v in (True, False)])"
    assert printed(check, original, rewritten) == ["['mla', 'dense']\n"] * 2
    assert "mla_seam.get_multi_latent_attention(config)" in (rewritten / "pkg/model.py").read_text()


@pytest.mark.parametrize("link", [("pkg/compat.py", "model.py"), ("pkg/legacy", "impl")], ids=["file", "folder"])
def test_a_name_imported_through_a_symlinked_alias_of_the_builder_is_kept(link, tmp_path: Path) -> None:
    # `pkg/compat.py -> model.py` (or a linked folder) imports the builder under a second name: an import of the
    # MLA class through that name needs the builder's import of it, which the moved arm would have dropped
    relpath = "pkg/impl/model.py" if link[1] == "impl" else "pkg/model.py"
    alias = "pkg.legacy.model" if link[1] == "impl" else "pkg.compat"
    files = {"pkg/__init__.py": "", "pkg/impl/__init__.py": "", "pkg/mla_impl.py": MLA_CLASS, relpath: BUILDS,
             "driver.py": f"from {alias} import MLASelfAttention\n\nprint(MLASelfAttention.__name__)\n"}  # fmt: skip
    (tmp_path / "before").mkdir(), (tmp_path / "after").mkdir()
    roots = project(tmp_path / "before", files), project(tmp_path / "after", files)
    for root in roots:
        (root / link[0]).symlink_to(link[1])
    _, said = applied(roots[1])
    ran = [subprocess.run([sys.executable, "driver.py"], cwd=root, capture_output=True, text=True) for root in roots]
    assert [(r.returncode, r.stdout) for r in ran] == [(0, "MLASelfAttention\n")] * 2, ran[1].stderr
    assert "another module or a doctest imports from it" in said, said


def converted_alike(tmp_path: Path, files: dict[str, str]) -> str:
    """Apply's summary for ``files``, after checking that their ``tools/convert.py`` prints the same
    ``MLASelfAttention`` in the original tree and the rewritten one."""
    said, original, rewritten = applied_beside_original(tmp_path, files)
    ran = [subprocess.run([sys.executable, "tools/convert.py"], cwd=root, capture_output=True, text=True)
           for root in (original, rewritten)]  # fmt: skip
    assert [(r.returncode, r.stdout) for r in ran] == [(0, "MLASelfAttention\n")] * 2, ran[1].stderr
    return said


def test_a_name_a_script_imports_from_the_builder_under_a_shorter_name_is_kept(tmp_path: Path) -> None:
    # the script puts `pkg/` on `sys.path` (the root too) and imports `pkg/model.py` as `model` (no project module
    # has that name)
    script = "import os\nimport sys\n\nhere = os.path.dirname(__file__)\n"
    script += "sys.path[:0] = [os.path.join(here, '..', 'pkg'), os.path.join(here, '..')]\n"
    script += "from model import MLASelfAttention  # noqa: E402\n\nprint(MLASelfAttention.__name__)\n"
    files = {"pkg/__init__.py": "", "pkg/mla_impl.py": MLA_CLASS, "pkg/model.py": BUILDS, "tools/convert.py": script}
    said = converted_alike(tmp_path, files)
    assert "another module or a doctest imports from it" in said, said


def test_a_package_module_importing_its_sibling_by_a_bare_name_is_left(tmp_path: Path) -> None:
    # `from mla_impl import ...` in `pkg/model.py`: a tool imports it as `model` with only `pkg/` on `sys.path`, where
    # `from pkg import mla_seam` would raise `ModuleNotFoundError`
    builder = BUILDS.replace("from pkg.mla_impl import", "from mla_impl import")
    script = "import os\nimport sys\nimport types\n\nsys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', "
    script += "'pkg'))\nfrom model import build  # noqa: E402\n\n"
    script += "print(type(build(types.SimpleNamespace(multi_latent_attention=True))).__name__)\n"
    files = {"pkg/__init__.py": "", "pkg/mla_impl.py": MLA_CLASS, "pkg/model.py": builder, "tools/convert.py": script}
    said = converted_alike(tmp_path, files)
    assert "it imports `mla_impl`, a module beside it, by its bare name" in said, said


PLUGIN = "register = None\n"
LIBRARY_IMPORTS = {  # a package module importing the library `click` beside a plugin module `click.py` of its own
    "from a name the sibling lacks": ("from click import echo\n", PLUGIN),
    "from a submodule": ("from click.testing import CliRunner\n", PLUGIN),
    "a submodule": ("import click.testing\n", PLUGIN),
    # Model-Optimizer's plugin star-imports its siblings relatively: as a top-level module it could not import
    "beside a plugin importing relatively": ("from click import echo\n", "from .helpers import *  # noqa: F403\n"),
}


@pytest.mark.parametrize(("library_import", "plugin"), LIBRARY_IMPORTS.values(), ids=LIBRARY_IMPORTS)
def test_a_library_import_named_like_a_sibling_plugin_module_is_no_sibling_import(
    library_import: str, plugin: str, tmp_path: Path
) -> None:
    # Model-Optimizer's `plugins/modeling_eagle.py` imports `from transformers import Cache` beside its own
    # `plugins/transformers.py`: a plain module beside it has no submodules, nor names it does not define, and
    # one importing relatively is never a top-level module
    builder = f"{library_import}\n\ndef width(config):\n    return 2 if config.q_lora_rank is None else 3\n"
    files = {"pkg/__init__.py": "", "pkg/plugins/__init__.py": "", "pkg/plugins/click.py": plugin,
             "pkg/plugins/helpers.py": "", "pkg/plugins/modeling.py": builder}  # fmt: skip
    said, original, rewritten = applied_beside_original(tmp_path, files)
    assert "mla_seam" in (rewritten / "pkg/plugins/modeling.py").read_text(), said
    check = "import types, pkg.plugins.modeling as m; print(m.width(types.SimpleNamespace(q_lora_rank=None)))"
    assert printed(check, original, rewritten) == ["2\n"] * 2


def test_an_import_the_sibling_module_answers_is_still_a_sibling_import(tmp_path: Path) -> None:
    builder = "from click import register\n\n\ndef width(config):\n    return 2 if config.q_lora_rank is None else 3\n"
    files = {"pkg/__init__.py": "", "pkg/plugins/__init__.py": "", "pkg/plugins/click.py": "register = None\n",
             "pkg/plugins/modeling.py": builder}  # fmt: skip
    said, _, rewritten = applied_beside_original(tmp_path, files)
    assert (rewritten / "pkg/plugins/modeling.py").read_text() == builder
    assert "it imports `click`, a module beside it, by its bare name" in said, said


# a builder's own import rebound from elsewhere after the builder imported it: by a patch manager given the
# module's name in a constant (`override(f"{MODEL}.Name", fused)`), or through a function's `__globals__`
BUILDER_REBINDS = {
    "patch-manager": {"pkg/patches.py": "import importlib\n\n\ndef override(path, value):\n"
                      "    module, _, name = path.rpartition('.')\n"
                      "    setattr(importlib.import_module(module), name, value)\n",
                      "pkg/plugin.py": "from pkg.patches import override\n\nMODEL = 'pkg.model'\n\n\ndef install():\n"
                      "    override(f'{MODEL}.MLASelfAttention', Fused)\n"},
    "__globals__": {"pkg/plugin.py": "def install():\n    from pkg.model import build\n\n"
                    "    build.__globals__['MLASelfAttention'] = Fused\n"},
}  # fmt: skip


@pytest.mark.parametrize("rebind", BUILDER_REBINDS)
def test_a_name_another_file_rebinds_in_the_builder_module_stays_where_the_builder_reads_it(rebind, tmp_path):
    # the plugin rebinds the builder module's own global: the builder builds the plugin's class
    check = "import types; from pkg import plugin; plugin.install(); from pkg.model import build\n"
    assert_plugin_rebinding_stays(tmp_path, BUILDER_REBINDS[rebind], check, "Fused",
                                  "another file holds the module's namespace")  # fmt: skip


def test_a_standard_library_import_beside_a_module_of_its_name_is_no_bare_sibling_import(tmp_path: Path) -> None:
    # `import logging` in `pkg/model.py` beside `pkg/logging.py` is the standard library's: the builder is rewritten
    builder = "import logging\n\nlog = logging.getLogger('x')\n\n\ndef build(config):\n"
    builder += "    if config.multi_latent_attention:\n        return config.kv_lora_rank\n    return None\n"
    files = {"pkg/__init__.py": "", "pkg/model.py": builder, "pkg/logging.py": "X = 1\n"}
    said, _, rewritten = applied_beside_original(tmp_path, files)
    assert "by its bare name" not in said and "mla_seam" in (rewritten / "pkg/model.py").read_text(), said


def test_a_builtin_set_as_an_attribute_of_some_other_object_does_not_keep_the_arm(tmp_path: Path) -> None:
    # `layer.type = "mla"` sets an attribute of a layer, not a global `type` of the builder module
    builder = "def build(config):\n    if config.multi_latent_attention:\n"
    builder += "        return [type(config).__name__, config.kv_lora_rank]\n    return None\n"
    files = {"pkg/__init__.py": "", "pkg/model.py": builder, "pkg/other.py": "def f(layer):\n    layer.type = 'mla'\n"}
    said, _, rewritten = applied_beside_original(tmp_path, files)
    assert "mla_seam.mla_build(config)" in (rewritten / "pkg/model.py").read_text(), said
