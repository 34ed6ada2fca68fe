"""What `seamfix apply` writes passes the project's own formatter and import sorter, and nothing else moves."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import types
from pathlib import Path

import libcst
import pytest
from style import new_findings_on_touched_lines, ruff_findings
from test_fixtures import EQUIVALENCE

from seamfix.codemods.context import Seam
from seamfix.codemods.formatting import Style, format_touched, ruff_executable, style_for
from seamfix.codemods.imports import import_seam
from seamfix_testing import REPO, run_seamfix

BLACK_PROJECT = REPO / "fixtures" / "black_project"


def copies(source: Path, tmp_path: Path, extra_config: str = "") -> tuple[Path, Path]:
    """The project twice: as it was, and a copy for apply to rewrite."""
    before, after = tmp_path / "before", tmp_path / "after"
    for root in (before, after):
        shutil.copytree(source, root, ignore=shutil.ignore_patterns("*.after.py"))
        with open(root / "pyproject.toml", "a") as handle:
            handle.write(extra_config)
    return before, after


def applied_copy(tmp_path: Path, files: dict[str, str]) -> tuple[Path, Path]:
    """``files`` written as a project, and a copy of it that apply rewrote."""
    before, after = tmp_path / "before", tmp_path / "after"
    for name, text in files.items():
        (before / name).parent.mkdir(parents=True, exist_ok=True)
        (before / name).write_text(text)
    shutil.copytree(before, after)
    assert run_seamfix("apply", cwd=after).code == 0
    return before, after


def behaviour(root: Path, module: str) -> list:
    proc = subprocess.run([sys.executable, str(EQUIVALENCE), str(root), module], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_demo_at_line_length_120_gains_no_ruff_finding(tmp_path: Path) -> None:
    before, after = copies(REPO / "fixtures" / "demo", tmp_path, "\n[tool.ruff]\nline-length = 120\n")
    assert run_seamfix("apply", cwd=after).code == 1  # one finding is left on purpose (README)
    assert (after / "demo_fork" / "mla_seam.py").exists()
    assert new_findings_on_touched_lines(before, after) == []
    assert ruff_findings(before) == {} and ruff_findings(after) == {}  # the demo is clean before, and after


# Megatron-LM's pyproject.toml: a `[tool.ruff.lint]` for lint rules only, formatting left to black and isort.
RUFF_FOR_LINT_ONLY = '\n[tool.ruff.lint]\nselect = ["S506"]\nignore = ["D417", "D10"]\n'


@pytest.mark.parametrize("extra_config", ["", RUFF_FOR_LINT_ONLY], ids=["black-and-isort", "ruff-lint-beside"])
def test_black_and_isort_project_stays_clean_for_black_and_isort(tmp_path: Path, extra_config: str) -> None:
    tools = [[sys.executable, "-m", "black", "--check", "-q", "."], [sys.executable, "-m", "isort", "--check", "."]]
    before, after = copies(BLACK_PROJECT, tmp_path, extra_config)
    for tool in tools:
        assert subprocess.run(tool, cwd=before, capture_output=True).returncode == 0, tool
    assert run_seamfix("apply", cwd=after).code == 0
    for tool in tools:
        proc = subprocess.run([*tool, "--diff"], cwd=after, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    builder = (after / "mcore" / "layer_specs.py").read_text()
    assert builder == (BLACK_PROJECT / "layer_specs.after.py").read_text()
    assert "'rope'" in builder  # black's skip-string-normalization: quotes stay as they were
    assert behaviour(after, "mcore.layer_specs") == behaviour(before, "mcore.layer_specs")


def test_black_and_isort_settings_become_ruff_settings() -> None:
    style = style_for(BLACK_PROJECT / "mcore" / "layer_specs.py")
    assert style.config is None and style.configured
    assert {"line-length = 100", 'format.quote-style = "preserve"', "format.skip-magic-trailing-comma = true"} <= set(
        style.overrides
    )
    assert style.known_first_party == ("mcore",)


def test_a_ruff_table_that_sets_no_formatting_leaves_it_to_black(tmp_path: Path) -> None:
    """Ruff's lint settings stay in force (its file is read); black's and isort's decide the layout, unless
    ruff's table sets the layout itself."""
    for name, extra in (("lint", ""), ("format", '\n[tool.ruff.format]\nquote-style = "double"\n')):
        shutil.copytree(BLACK_PROJECT, tmp_path / name)
        with open(tmp_path / name / "pyproject.toml", "a") as handle:
            handle.write(RUFF_FOR_LINT_ONLY + extra)
    style = style_for(tmp_path / "lint" / "mcore" / "layer_specs.py")
    assert style.config == tmp_path / "lint" / "pyproject.toml"
    assert {"line-length = 100", 'format.quote-style = "preserve"'} <= set(style.overrides)
    assert style.known_first_party == ("mcore",) and style.own_tools == ("isort", "black")
    assert style_for(tmp_path / "format" / "mcore" / "layer_specs.py").overrides == ()


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        # a long routed header is wrapped at the project's line length; the untouched statement is not formatted
        (
            "def f(config, position):\n    x = {  'a':1 }\n    if position == 'rope' and not config.mla:\n"
            "        return x\n",
            "def f(config, position):\n    x = {  'a':1 }\n"
            "    if position == 'rope' and not seam.multi_latent_attention(config) and position != 'none':\n"
            "        return x\n",
            "def f(config, position):\n    x = {  'a':1 }\n    if (\n        position == \"rope\"\n"
            '        and not seam.multi_latent_attention(config)\n        and position != "none"\n    ):\n'
            "        return x\n",
        ),
        # a file importing a package and its submodule (`torch`, `torch.distributed`: one name, one object) and
        # names bound twice in one run (`try`/`except`-free re-imports) still gets its touched statements formatted
        (
            "import torch\nimport torch.distributed\nfrom a import x\nfrom b import x\n\n\n"
            "def f(config, position):\n    if config.mla:\n        return 1\n",
            "import torch\nimport torch.distributed\nfrom a import x\nfrom b import x\n\n\n"
            "def f(config, position):\n    if seam.multi_latent_attention(config, position, torch.distributed):\n"
            "        return 1\n",
            "import torch\nimport torch.distributed\nfrom a import x\nfrom b import x\n\n\n"
            "def f(config, position):\n    if seam.multi_latent_attention(\n"
            "        config, position, torch.distributed\n"
            "    ):\n        return 1\n",
        ),
        # an `elif` header is formatted as an `elif`
        (
            "def f(a):\n    if a:\n        pass\n    elif a.mla:\n        pass\n",
            "def f(a):\n    if a:\n        pass\n    elif seam.multi_latent_attention( a ):\n        pass\n",
            "def f(a):\n    if a:\n        pass\n    elif seam.multi_latent_attention(a):\n        pass\n",
        ),
        # a multi-line string in the touched statement: indenting it again would change it, so it stays
        (
            "def f(a):\n    x = a.mla\n    return x\n",
            "def f(a):\n    x = (seam.f(a),  '''\nline''')\n    return x\n",
            "def f(a):\n    x = (seam.f(a),  '''\nline''')\n    return x\n",
        ),
    ],
)
def test_only_touched_statements_are_formatted(tmp_path: Path, old: str, new: str, expected: str) -> None:
    (tmp_path / "pyproject.toml").write_text("[tool.ruff]\nline-length = 60\n")
    path = tmp_path / "case.py"
    assert style_for(path) == Style(tmp_path / "pyproject.toml", configured=True)
    (formatted,) = format_touched([(path, old.encode(), new.encode())])
    assert formatted.decode() == expected


def test_an_unsorted_import_block_is_not_sorted(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[tool.ruff]\n")
    old = "import sys\nimport os\n\nx = os.sep, sys.path\n"
    new = "import sys\nimport os\nimport mla_seam\n\nx = os.sep, sys.path, mla_seam\n"
    (untouched,) = format_touched([(tmp_path / "case.py", old.encode(), new.encode())], "mla_seam")
    assert untouched.decode() == new
    old, new = (
        old.replace("import sys\nimport os", "import os\nimport sys"),
        new.replace("sys\nimport os", "os\nimport sys"),
    )
    (fixed,) = format_touched([(tmp_path / "case.py", old.encode(), new.encode())], "mla_seam")
    assert fixed.decode() == "import os\nimport sys\n\nimport mla_seam\n\nx = os.sep, sys.path, mla_seam\n"


ISORT_CLEAN_BUILDERS = {
    # ruff would merge the `from pkg.utils` imports around the `as` one (isort keeps them): not ruff's to sort,
    # so the seam's name joins the package's own import, as isort merges it
    "merged": "import os\n\nfrom pkg import helpers\nfrom pkg.utils import deprecate_args\n"
    "from pkg.utils import divide as core_divide\nfrom pkg.utils import get_rank\n\nfrom .local import thing\n",
    "module order": "import os\n\nfrom pkg.utils import deprecate_args\nfrom pkg.utils import divide as core_divide\n"
    "from pkg.utils import get_rank\n",
    "before relative": "import os\n\nfrom .local import thing\n",
    "a section of its own": "import os\n",
}


@pytest.mark.parametrize("imports", ISORT_CLEAN_BUILDERS.values(), ids=ISORT_CLEAN_BUILDERS)
def test_the_seam_import_goes_where_isort_puts_it(tmp_path: Path, imports: str) -> None:
    config = (
        '[tool.seamfix]\nadapter = "pkg/mla_seam.py"\n\n[tool.isort]\nprofile = "black"\nknown_first_party = ["pkg"]\n'
    )
    files = {"pyproject.toml": config, "pkg/__init__.py": "", "pkg/helpers.py": "", "pkg/local.py": "thing = 1\n",
             "pkg/utils.py": "deprecate_args = divide = get_rank = None\n",
             "pkg/model.py": f"{imports}\n\ndef f(cfg):\n    return 1 if cfg.kv_lora_rank else 0\n"}  # fmt: skip
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    isort = [sys.executable, "-m", "isort", "--check", "--diff", "pkg/model.py"]
    assert subprocess.run(isort, cwd=tmp_path, capture_output=True).returncode == 0
    assert run_seamfix("apply", cwd=tmp_path).code == 0
    proc = subprocess.run(isort, cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout
    assert "mla_seam" in (tmp_path / "pkg/model.py").read_text()


def test_a_seam_import_merged_into_the_package_import_is_not_added_again() -> None:
    context = types.SimpleNamespace(seam=Seam(("pkg", "mla_seam")))  # all that placing the import reads
    once = import_seam(context, libcst.parse_module("import os\n\nfrom pkg import helpers\n"))
    assert once.code == "import os\n\nfrom pkg import helpers, mla_seam\n"
    assert import_seam(context, once).code == once.code  # the next round of routing finds it there


def test_a_namespace_package_split_between_the_project_and_an_install_keeps_its_sections(tmp_path: Path) -> None:
    """Megatron-Bridge's layout: `src/megatron/bridge` is the project, `megatron.core` an installed package
    (third-party to ruff). The seam in `megatron.bridge` must not drag `megatron.core` into first-party, and
    ruff, run from the project's folder, must find its `src` roots as the project's own run does."""
    imports = (
        "import argparse\n\nimport torch\nfrom megatron.core import dist_checkpointing\n\n"
        "from megatron.bridge.training.config import TokenizerConfig\n"
    )
    files = {
        "pyproject.toml": '[tool.seamfix]\nadapter = "src/megatron/bridge/models/mla_seam.py"\n\n'
        "[tool.ruff]\nline-length = 100\n",
        "src/megatron/bridge/models/__init__.py": "",
        "src/megatron/bridge/training/config.py": "TokenizerConfig = None\n",
        "src/megatron/bridge/training/arguments.py": f"{imports}\n\ndef build(args):\n"
        "    if args.multi_latent_attention:\n        return TokenizerConfig\n"
        "    return argparse, torch, dist_checkpointing\n",
    }
    before, after = applied_copy(tmp_path, files)
    rewritten = (after / "src/megatron/bridge/training/arguments.py").read_text()
    assert "from megatron.bridge.models import mla_seam\nfrom megatron.bridge.training.config" in rewritten
    assert new_findings_on_touched_lines(before, after) == []


def test_a_black_formatted_file_of_a_project_configuring_no_formatter_stays_black_clean(tmp_path: Path) -> None:
    """mbridge formats by `isort . && black .` in CI, a script seamfix cannot read: a file that black at its
    defaults leaves as it is gets apply's lines formatted so; a file no formatter made is left as apply wrote."""
    before = tmp_path / "before"
    (before / "fork").mkdir(parents=True)
    (before / "pyproject.toml").write_text('[tool.seamfix]\nadapter = "fork/mla_seam.py"\n')
    (before / "fork" / "__init__.py").write_text("")
    (before / "fork" / "builders.py").write_text(
        "def rotary_width(config):\n    if (\n"
        '        config.position_embedding_type == "rope" and not config.multi_latent_attention\n'
        "    ):  # MLA applies its own RoPE\n        return config.hidden_size * 2\n    return config.kv_channels\n"
    )
    loose = (
        "TABLE = {  'a':1 }\ndef rotary_width(config):\n"
        '    if config.position_embedding_type == "rope" and not config.multi_latent_attention and config.kv_channels:'
        "\n"
        "        return TABLE\n    return None\n"
    )
    (before / "fork" / "loose.py").write_text(loose)
    black = [sys.executable, "-m", "black", "--check", "-q"]
    assert subprocess.run([*black, "fork/builders.py"], cwd=before).returncode == 0
    after = tmp_path / "after"
    shutil.copytree(before, after)
    assert run_seamfix("apply", cwd=after).code == 0
    proc = subprocess.run([*black, "--diff", "fork/builders.py"], cwd=after, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout
    routed = loose.replace("not config.multi_latent_attention", "not mla_seam.multi_latent_attention(config)")
    assert (after / "fork" / "loose.py").read_text() == "from fork import mla_seam\n\n" + routed
    for module in ("fork.builders", "fork.loose"):
        assert behaviour(after, module) == behaviour(before, module)


def _double_quoted_strings(text: str) -> list[str]:
    """Single-line strings in double quotes: what pre-commit's `double-quote-string-fixer` rewrites."""
    import io
    import tokenize

    tokens = tokenize.generate_tokens(io.StringIO(text).readline)
    return [t.string for t in tokens if t.type == tokenize.STRING and t.string[:1] == '"' and t.string[:3] != '"""']


YAPF_OR_ISORT = {
    "isort": "[isort]\nline_length = 120\nknown_first_party = fork\n",
    "yapf": "[yapf]\nbased_on_style = pep8\ncolumn_limit = 120\n",
    "isort-and-yapf": "[isort]\nline_length = 120\n\n[yapf]\nBASED_ON_STYLE = pep8\nCOLUMN_LIMIT = 120\n",
}


@pytest.mark.parametrize("setup_cfg", YAPF_OR_ISORT.values(), ids=YAPF_OR_ISORT)
def test_a_project_formatted_by_isort_or_yapf_keeps_its_quotes(tmp_path: Path, setup_cfg: str) -> None:
    """ms-swift and mcore-bridge format by yapf and isort (`setup.cfg`) and keep single quotes by pre-commit's
    `double-quote-string-fixer`: neither normalizes quotes as black does, so apply keeps the project's own in
    the lines it writes and in the arms it moves into the adapter."""
    before = tmp_path / "before"
    (before / "fork").mkdir(parents=True)
    (before / "pyproject.toml").write_text('[tool.seamfix]\nadapter = "fork/mla_seam.py"\n')
    (before / "setup.cfg").write_text(setup_cfg)
    (before / "fork" / "__init__.py").write_text("")
    (before / "fork" / "rope.py").write_text(
        "def rope_settings(config, scaling):\n"
        "    if config.multi_latent_attention:\n"
        "        config.rope_type = 'rope'  # the transformers implementation\n"
        "        config.mscale_all_dim = 0.\n"
        "        config.cache_mla_latents = False\n"
        "        if scaling and scaling['rope_type'] == 'yarn':\n"
        "            config.mscale = scaling['mscale']\n"
        "    if config.multi_latent_attention and config.rope_type == 'yarn':\n"
        "        return 'yarn'\n"
        "    return config.rope_type\n"
    )
    after = tmp_path / "after"
    shutil.copytree(before, after)
    assert run_seamfix("apply", cwd=after).code == 0
    builder, adapter = (after / "fork" / "rope.py").read_text(), (after / "fork" / "mla_seam.py").read_text()
    assert "mla_seam." in builder and "'rope'" in adapter  # routed, the arm moved
    assert _double_quoted_strings(builder) == [] and _double_quoted_strings(adapter) == []
    assert behaviour(after, "fork.rope") == behaviour(before, "fork.rope")


def test_yapf_settings_become_ruff_settings(tmp_path: Path) -> None:
    """yapf's column limit (or its base style's) is the line length; quotes are left as written."""
    for name, text in (
        ("setup.cfg", "[yapf]\ncolumn_limit = 120\n"),
        (".style.yapf", "[style]\nbased_on_style = google\n"),
    ):
        (tmp_path / name.strip(".")).mkdir()
        (tmp_path / name.strip(".") / name).write_text(text)
    cfg = style_for(tmp_path / "setup.cfg" / "x.py")
    assert cfg.configured and {"line-length = 120", 'format.quote-style = "preserve"'} <= set(cfg.overrides)
    assert "line-length = 80" in style_for(tmp_path / "style.yapf" / "x.py").overrides


NOTICE = "# Copyright 2025 The Fork Authors.\n#\n# Licensed under the Apache License, Version 2.0.\n"
ROUTED = "def rope(config):\n    return 'mla' if config.multi_latent_attention else 'rope'\n"


@pytest.mark.parametrize(
    ("builders", "expected"),
    [
        (
            {"a.py": NOTICE + ROUTED, "b.py": NOTICE + "\n" + ROUTED, "c.py": "# Copyright 2024 Other.\n" + ROUTED},
            NOTICE,
        ),
        ({"a.py": "#!/usr/bin/env python\n# SPDX-License-Identifier: MIT\nimport os\n\n\n" + ROUTED}, None),
        ({"a.py": "# Builds the rotary embedding.\n" + ROUTED}, ""),
    ],
    ids=["commonest", "shebang-spdx", "no-notice"],
)
def test_a_new_adapter_carries_the_builders_copyright_notice(tmp_path: Path, builders: dict, expected) -> None:
    """RLinf selects ruff's CPY001 and Megatron-LM checks copyright headers in CI: every file carries a notice, and
    so must the adapter apply creates (the builders' commonest opening notice; a shebang is left out)."""
    (tmp_path / "fork").mkdir()
    (tmp_path / "pyproject.toml").write_text('[tool.seamfix]\nadapter = "fork/mla_seam.py"\n')
    (tmp_path / "fork" / "__init__.py").write_text("")
    for name, text in builders.items():
        (tmp_path / "fork" / name).write_text(text)
    assert run_seamfix("apply", cwd=tmp_path).code == 0
    adapter = (tmp_path / "fork" / "mla_seam.py").read_text()
    notice = "# SPDX-License-Identifier: MIT\n" if expected is None else expected
    assert adapter.startswith(notice + '"""The MLA seam')
    compile(adapter, "mla_seam.py", "exec")


def test_an_encoding_declaration_above_the_notice_stays_out_of_the_adapter(tmp_path: Path) -> None:
    """The adapter is written in UTF-8: a builder's `# -*- coding: latin-1 -*-` above its notice, copied into it,
    made Python read the moved arm's `"café"` as `"cafÃ©"`."""
    header = b"# -*- coding: latin-1 -*-\n# Copyright 2024 The Fork Authors.\n\n\n"
    builders = {
        "model_a.py": header + b"def width(config):\n    if config.multi_latent_attention:\n"
        b"        return config.kv_lora_rank\n    return 0\n",
        "model_b.py": header + b"def label(config, log):\n    if config.multi_latent_attention:\n"
        b'        log("caf\xe9 %s" % config.kv_lora_rank)\n        log("mla")\n    return "d\xe9j\xe0"\n',
    }  # fmt: skip
    check = (
        "import types, model_a, model_b\nout = []\nfor flag in (True, False):\n"
        "    config = types.SimpleNamespace(multi_latent_attention=flag, kv_lora_rank=4)\n"
        "    out.append((model_a.width(config), model_b.label(config, out.append)))\nprint(ascii(out))\n"
    )
    printed = []
    for tree in ("before", "after"):
        (tmp_path / tree).mkdir()
        (tmp_path / tree / "pyproject.toml").write_text('[tool.seamfix]\nadapter = "mla_seam.py"\n')
        for name, data in builders.items():
            (tmp_path / tree / name).write_bytes(data)
        if tree == "after":
            assert run_seamfix("apply", cwd=tmp_path / tree).code == 0
            adapter = (tmp_path / tree / "mla_seam.py").read_text()
            assert adapter.startswith('# Copyright 2024 The Fork Authors.\n"""The MLA seam'), adapter
        proc = subprocess.run([sys.executable, "-c", check], cwd=tmp_path / tree, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        printed.append(proc.stdout)
    assert printed[1] == printed[0] == "['caf\\xe9 4', 'mla', (4, 'd\\xe9j\\xe0'), (0, 'd\\xe9j\\xe0')]\n"


def test_the_seam_import_of_a_project_configuring_no_formatter_gets_a_section_of_its_own(tmp_path: Path) -> None:
    """MindSpeed's layout: no formatter settings at the root, a builder deep in the package whose imports end
    with a third-party one. Ruff, run from the project's root as its pre-commit does, counts the package as
    first-party: the seam import must not join the third-party section (ruff's I001)."""
    builder = (
        "import warnings\n\nimport pytest\n\n_MASK = None\n\n\ndef compress(config):\n"
        '    if getattr(config, "multi_latent_attention", False):\n        return False\n'
        "    return warnings and pytest and True\n"
    )
    files = {"pyproject.toml": '[tool.seamfix]\nadapter = "fork/mla_seam.py"\n', "fork/__init__.py": "",
             "fork/mask/__init__.py": "", "fork/mask/generate.py": builder}  # fmt: skip
    before, after = applied_copy(tmp_path, files)
    rewritten = (after / "fork/mask/generate.py").read_text()
    assert "import pytest\n\nfrom fork import mla_seam\n\n_MASK" in rewritten
    ruff = [ruff_executable(), "check", "--isolated", "--select", "I001", "--no-cache", "fork/mask/generate.py"]
    proc = subprocess.run(ruff, cwd=after, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout
    assert behaviour(after, "fork.mask.generate") == behaviour(before, "fork.mask.generate")


def test_the_seam_import_stays_above_a_path_change_when_the_package_is_imported_before_it(tmp_path: Path) -> None:
    """Model-Optimizer's DeepSeek PTQ script: the package's imports, then `sys.path.append` of a vendored
    checkout and its imports (`# noqa: E402`). The package is importable before the path change: the seam
    import goes among its imports, not after the vendored ones (ruff's E402 and I001)."""
    builder = (
        "import sys\nfrom pathlib import Path\n\nfrom fork.helpers import helper\n\n"
        'sys.path.append(str(Path(__file__).resolve().parent / "vendor"))\n\n'
        "import vendored  # noqa: E402\n\n\ndef quantize(config):\n    if config.multi_latent_attention:\n"
        "        return vendored.NAME\n    return helper\n"
    )
    files = {"pyproject.toml": '[tool.seamfix]\nadapter = "fork/mla_seam.py"\n\n[tool.ruff]\nline-length = 100\n',
             "fork/__init__.py": "", "fork/helpers.py": "helper = 1\n", "fork/tools/__init__.py": "",
             "fork/tools/vendor/vendored.py": "NAME = 'vendored'\n", "fork/tools/ptq.py": builder}  # fmt: skip
    before, after = applied_copy(tmp_path, files)
    rewritten = (after / "fork/tools/ptq.py").read_text()
    assert "from fork import mla_seam\nfrom fork.helpers import helper\n\nsys.path" in rewritten
    ruff = [ruff_executable(), "check", "--select", "E402,I001", "--no-cache", "fork/tools/ptq.py"]
    proc = subprocess.run(ruff, cwd=after, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout
    assert behaviour(after, "fork.tools.ptq") == behaviour(before, "fork.tools.ptq")
