"""``[tool.seamfix]``: discovery, validation (exit 2 naming the key), and flags overriding it."""

import pytest

from seamfix_testing import MLA_IF, run_seamfix


def test_nearest_pyproject_with_a_seamfix_table_is_used(project):
    root = project(
        {
            "pyproject.toml": '[tool.seamfix]\nallow = ["pkg/impl.py"]\n',
            "pkg/pyproject.toml": '[project]\nname = "no-seamfix-table"\n',
            "pkg/impl.py": MLA_IF,
            "pkg/builder.py": MLA_IF,
        }
    )
    result = run_seamfix("lint", "--format", "json", ".", cwd=root / "pkg")
    assert result.code == 1
    assert [f["path"] for f in result.json()] == ["builder.py"]


@pytest.mark.parametrize(
    ("table", "named"),
    [
        ('adaptr = "seam.py"', "unknown key `adaptr` (did you mean `adapter`?)"),
        ('select = "SEAM001"', "`select` must be a list of strings"),
        ("adapter = 3", "`adapter` must be a string"),
        ('adapter = "../outside.py"', "`adapter` = '../outside.py' is outside the project"),
        ('select = ["NOPE"]', "`select` has unknown rule selector `NOPE`"),
        ('extend-vocabulary = { colours = ["x"] }', "unknown key `extend-vocabulary.colours`"),
        ("extend-vocabulary = { fields = [1] }", "`extend-vocabulary.fields` must be a list of strings"),
        ("[tool.seamfix.nested", "invalid TOML"),
    ],
)
def test_bad_config_is_a_one_line_error_naming_the_key(project, table, named):
    root = project({"pyproject.toml": f"[tool.seamfix]\n{table}\n", "a.py": MLA_IF})
    result = run_seamfix("lint", cwd=root)
    assert result.code == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "pyproject.toml" in lines[0] and named in lines[0], result.stderr


def test_command_line_overrides_config(project):
    root = project(
        {
            "pyproject.toml": '[tool.seamfix]\nselect = ["SEAM002"]\n',
            "a.py": "from megatron.core.transformer.multi_latent_attention import MLASelfAttention\n" + MLA_IF,
        }
    )
    assert {f["code"] for f in run_seamfix("lint", "--format", "json", cwd=root).json()} == {"SEAM002"}
    override = run_seamfix("lint", "--format", "json", "--select", "SEAM001", cwd=root).json()
    assert {f["code"] for f in override} == {"SEAM001"}
    both = run_seamfix("lint", "--format", "json", "--extend-select", "SEAM001", cwd=root).json()
    assert {f["code"] for f in both} == {"SEAM001", "SEAM002"}
    assert run_seamfix("lint", "--ignore", "SEAM", cwd=root).code == 0


def test_explicit_config_file_and_its_directory_as_root(project):
    root = project(
        {
            "conf/seamfix.toml": 'allow = ["src/impl.py"]\n',
            "src/impl.py": MLA_IF,
            "src/builder.py": MLA_IF,
        }
    )
    # Paths in a config are relative to its directory, so `conf/`'s allow names conf/src/impl.py: nothing allowed.
    result = run_seamfix("lint", "--config", "conf/seamfix.toml", "--format", "json", "src", cwd=root)
    assert sorted(f["path"] for f in result.json()) == ["src/builder.py", "src/impl.py"]
    moved = project({"seamfix.toml": 'allow = ["src/impl.py"]\n'})
    result = run_seamfix("lint", "--config", str(moved / "seamfix.toml"), "--format", "json", "src", cwd=root)
    assert [f["path"] for f in result.json()] == ["src/builder.py"]
    missing = run_seamfix("lint", "--config", "nope.toml", cwd=root)
    assert missing.code == 2 and "nope.toml" in missing.stderr


def test_extend_vocabulary_adds_a_forks_own_names(project):
    source = (
        "def f(cfg):\n    if cfg.absorb_latents:\n        return 1\n"
        "    if cfg.attn_kind == 'deepseek-latent':\n        return 2\n"
    )
    root = project({"a.py": source})
    assert run_seamfix("lint", cwd=root).code == 0
    (root / "pyproject.toml").write_text(
        '[tool.seamfix]\nextend-vocabulary = { fields = ["absorb_latents"], strings = ["deepseek-latent"] }\n'
    )
    assert [f["line"] for f in run_seamfix("lint", "--format", "json", cwd=root).json()] == [2, 4]
    (root / "pyproject.toml").write_text('[tool.seamfix]\nextend-vocabulary = ["absorb_latents"]\n')
    assert [f["line"] for f in run_seamfix("lint", "--format", "json", cwd=root).json()] == [2]


def test_adapter_module_is_the_seam_and_calls_into_it_are_fine(project):
    root = project(
        {
            "pyproject.toml": '[tool.seamfix]\nadapter = "fork/mla_seam.py"\n',
            "fork/__init__.py": "",
            "fork/mla_seam.py": "def uses_mla(config):\n    return bool(config.multi_latent_attention)\n" + MLA_IF,
            "fork/model.py": (
                "from fork import mla_seam\nfrom fork.mla_seam import uses_mla\nfrom . import mla_seam as seam\n"
                "def f(cfg):\n    if mla_seam.uses_mla(cfg) or uses_mla(cfg) or seam.uses_mla(cfg):\n        return 1\n"
            ),
        }
    )
    result = run_seamfix("lint", cwd=root)
    assert result.code == 0, result.stdout
