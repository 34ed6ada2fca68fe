"""``[tool.seamfix]``: discovery, validation (exit 2 naming the key), and flags overriding it."""

import subprocess

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
        ('ignore = ["seam100"]', "`ignore` has unknown rule selector `seam100`"),
        ('extend-vocabulary = { colours = ["x"] }', "unknown key `extend-vocabulary.colours`"),
        ("extend-vocabulary = { fields = [1] }", "`extend-vocabulary.fields` must be a list of strings"),
        ("[tool.seamfix.nested", "invalid TOML"),
        ('per-file-ignores = { "tests/**" = "SEAM001" }', "`per-file-ignores` must be a table of glob"),
        ('extend-per-file-ignores = { "t/*" = ["NOPE"] }', "`per-file-ignores.t/*` has unknown rule selector"),
        ('respect-gitignore = "yes"', "`respect-gitignore` must be a boolean"),
        # A glob ruff cannot parse is an error there too (exit 2), not a pattern that silently matches nothing.
        ('extend-exclude = ["gen/[ab"]', "`extend-exclude` has an invalid glob `gen/[ab`: unclosed character class"),
        ('include = ["{a,b"]', "`include` has an invalid glob `{a,b`: unclosed alternate group"),
        ('per-file-ignores = { "!x}" = ["SEAM001"] }', "`per-file-ignores` has an invalid glob `x}`: unopened"),
        ('allow = ["[]"]', "`allow` has an invalid glob `[]`: unclosed character class"),
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


def test_a_walk_from_above_the_config_files_folder_applies_it_inside(project):
    """`--config fork/seamfix.toml` run from the repository above it: inside `fork/` the adapter is the seam and
    the globs and git's rules hold, as when run from `fork/` (the walk named them `../fork/...` and matched
    nothing: the adapter was reported as a leak)."""
    root = project(
        {
            "fork/seamfix.toml": 'adapter = "mla_seam.py"\nextend-exclude = ["./gen"]\n',
            "fork/mla_seam.py": MLA_IF,
            "fork/gen/specs.py": MLA_IF,
            "fork/scratch.py": MLA_IF,
            "fork/builder.py": MLA_IF,
            ".gitignore": "scratch.py\n",
        }
    )
    git(root, "init", "-q")
    result = run_seamfix("lint", "--config", "fork/seamfix.toml", "--format", "json", cwd=root)
    assert [f["path"] for f in result.json()] == ["fork/builder.py"], result.stderr


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


@pytest.mark.parametrize(
    ("text", "named"),
    [("[tool]\nseamfix = 5\n", "`tool.seamfix` must be a table"), ("tool = 5\n", "`tool` must be a table")],
)
def test_pyproject_of_the_wrong_shape_is_a_one_line_error(project, text, named):
    root = project({"pyproject.toml": text, "a.py": MLA_IF})
    result = run_seamfix("lint", cwd=root)
    lines = result.stderr.strip().splitlines()
    assert result.code == 2 and len(lines) == 1 and "pyproject.toml" in lines[0] and named in lines[0], lines


def test_config_is_found_from_the_checked_paths_not_the_current_directory(project, tmp_path_factory):
    root = project(
        {
            "proj/pyproject.toml": '[tool.seamfix]\nallow = ["pkg/impl.py"]\ncache-dir = "ci-cache"\n',
            "proj/pkg/impl.py": MLA_IF,
            "proj/pkg/builder.py": MLA_IF,
        }
    )
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    result = run_seamfix("lint", "--format", "json", str(root / "proj"), cwd=elsewhere)
    assert [f["path"] for f in result.json()] == [str(root / "proj/pkg/builder.py")]
    assert list((root / "proj/ci-cache").glob("lint-*.bin")) and not list(elsewhere.iterdir())
    one_file = run_seamfix("lint", "--format", "json", str(root / "proj/pkg/impl.py"), cwd=elsewhere)
    assert one_file.code == 0  # the file's own project allows it


def test_seamfix_toml_files_take_precedence_as_ruff_toml_does(project):
    root = project(
        {
            "pyproject.toml": '[tool.seamfix]\nallow = ["a.py"]\n',
            "seamfix.toml": 'allow = ["b.py"]\n',
            ".seamfix.toml": 'allow = ["c.py"]\n',
            "a.py": MLA_IF,
            "b.py": MLA_IF,
            "c.py": MLA_IF,
        }
    )

    def flagged():
        return sorted(f["path"] for f in run_seamfix("lint", "--format", "json", cwd=root).json())

    assert flagged() == ["a.py", "b.py"]
    (root / ".seamfix.toml").unlink()
    assert flagged() == ["a.py", "c.py"]
    (root / "seamfix.toml").unlink()
    assert flagged() == ["b.py", "c.py"]


def test_select_on_the_command_line_replaces_the_files_whole_selection(project):
    imports = "from megatron.core.transformer.multi_latent_attention import MLASelfAttention\n"
    root = project(
        {
            "pyproject.toml": '[tool.seamfix]\nextend-select = ["SEAM002"]\nignore = ["SEAM100"]\n',
            "a.py": imports + MLA_IF + "x = 1  # seamfix: ignore[SEAM003]\n",
        }
    )

    def codes(*args):
        return sorted({f["code"] for f in run_seamfix("lint", "--format", "json", *args, cwd=root).json()})

    assert codes() == ["SEAM001", "SEAM002"]
    assert codes("--select", "SEAM001") == ["SEAM001"]  # neither the file's extend-select ...
    assert codes("--select", "SEAM001,SEAM100") == ["SEAM001", "SEAM100"]  # ... nor its ignore apply
    assert codes("--extend-select", "SEAM003") == ["SEAM001", "SEAM002"]


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (("--select", "NOPE"), "command line: `--select` has unknown rule selector `NOPE`"),
        (("--ignore", "SEAM0,XX"), "command line: `--ignore` has unknown rule selector `XX`"),
        (("--adapter", "../seam.py"), "command line: `--adapter` = '../seam.py' is outside the project"),
        (("--per-file-ignores", "tests"), "command line: `--per-file-ignores` takes GLOB:CODES"),
        (("--per-file-ignores", "t[:SEAM001"), "command line: `--per-file-ignores` has an invalid glob `t[`"),
        (("--extend-exclude", "{gen"), "command line: `--extend-exclude` has an invalid glob `{gen`"),
        # Codes are matched exactly, as ruff's: case, spaces and empty items included.
        (("--select", "seam001"), "command line: `--select` has unknown rule selector `seam001`"),
        (
            ("--extend-select", "SEAM001, SEAM002"),
            "command line: `--extend-select` has unknown rule selector ` SEAM002`",
        ),
        (("--select", ""), "command line: `--select` has unknown rule selector ``"),
    ],
)
def test_a_bad_command_line_value_is_blamed_on_the_command_line(project, args, named):
    root = project({"pyproject.toml": '[tool.seamfix]\nselect = ["SEAM001"]\n', "a.py": MLA_IF})
    result = run_seamfix("lint", *args, cwd=root)
    assert result.code == 2 and result.stderr.startswith(f"seamfix: error: {named}")
    assert len(result.stderr.splitlines()) == 1 and "pyproject" not in result.stderr


def test_test_files_default_to_ignoring_the_mla_rules_but_not_the_gate(project):
    seam_call = "from fork import mla_seam\nmla_seam.gone(cfg)\n"
    root = project(
        {
            "pyproject.toml": '[tool.seamfix]\nadapter = "fork/mla_seam.py"\n',
            "fork/mla_seam.py": "def uses_mla(config):\n    return config.multi_latent_attention\n",
            "fork/builder.py": MLA_IF,
            "tests/unit/test_attention.py": MLA_IF,
            "fork/attention_test.py": MLA_IF,
            "fork/test_helpers.py": MLA_IF,
            "conftest.py": MLA_IF + seam_call,
        }
    )

    def flagged(*args):
        result = run_seamfix("lint", "--format", "json", *args, cwd=root)
        return sorted((f["path"], f["code"]) for f in result.json())

    assert flagged() == [("conftest.py", "SEAM902"), ("fork/builder.py", "SEAM001")]
    assert ("fork/builder.py", "SEAM001") not in flagged("--per-file-ignores", "fork/b*.py:SEAM0")
    assert ("fork/builder.py", "SEAM001") in flagged("--per-file-ignores", "!fork/b*.py:SEAM0")
    assert ("fork/builder.py", "SEAM001") not in flagged("--per-file-ignores", "!conftest.py:SEAM001")
    config = root / "pyproject.toml"
    config.write_text(config.read_text() + 'extend-per-file-ignores = { "fork/builder.py" = ["SEAM001"] }\n')
    assert flagged() == [("conftest.py", "SEAM902")]
    config.write_text('[tool.seamfix]\nadapter = "fork/mla_seam.py"\nper-file-ignores = { "conftest.py" = ["SEAM"] }\n')
    assert [path for path, code in flagged() if code == "SEAM001"] == [
        "fork/attention_test.py",
        "fork/builder.py",
        "fork/test_helpers.py",
        "tests/unit/test_attention.py",
    ]


def git(root, *args):
    subprocess.run(["git", *args], cwd=root, check=True, capture_output=True)


def test_git_ignored_files_are_skipped_unless_respect_gitignore_is_off(project):
    root = project(
        {
            ".gitignore": "generated/\nscratch_*.py\n",
            "generated/specs.py": MLA_IF,
            "scratch_1.py": MLA_IF,
            "tracked_scratch/scratch_2.py": MLA_IF,
            "builder.py": MLA_IF,
        }
    )

    def flagged(*args):
        return sorted(f["path"] for f in run_seamfix("lint", "--format", "json", *args, cwd=root).json())

    everything = ["builder.py", "generated/specs.py", "scratch_1.py", "tracked_scratch/scratch_2.py"]
    assert flagged() == everything  # not a git repository: nothing is ignored
    git(root, "init", "-q")
    git(root, "add", "-f", "tracked_scratch/scratch_2.py")  # tracked files are never ignored, as in git
    assert flagged() == ["builder.py", "tracked_scratch/scratch_2.py"]
    assert flagged("scratch_1.py") == ["scratch_1.py"]  # given explicitly, as ruff: ...
    assert flagged("--force-exclude", "scratch_1.py", "builder.py") == ["builder.py", "scratch_1.py"]  # ... always
    (root / "pyproject.toml").write_text("[tool.seamfix]\nrespect-gitignore = false\n")
    assert flagged() == everything


def test_a_submodule_keeps_the_outer_repositorys_ignore_rules(project):
    """Git refuses to judge paths inside a submodule from the outer repository (``check-ignore`` exits 128 for
    the whole batch): each repository is asked about its own files, so the outer rules still hold."""
    root = project({".gitignore": "scratch.py\n", "scratch.py": MLA_IF, "builder.py": MLA_IF, "lib/mod.py": MLA_IF})
    git(root / "lib", "init", "-q")
    git(root / "lib", "add", "mod.py")
    git(root / "lib", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "lib")
    git(root, "init", "-q")
    git(root, "add", "lib")  # a gitlink: lib is a submodule of the outer repository
    result = run_seamfix("lint", "--format", "json", cwd=root)
    assert sorted(f["path"] for f in result.json()) == ["builder.py", "lib/mod.py"], result.stderr


def test_a_project_inside_a_folder_its_repository_ignores_is_still_checked(project):
    """A fork checked out under a monorepo's ignored `vendor/`: git calls every file below ignored, and the gate
    passed having checked nothing. Ruff matches the patterns against the paths below the project only (its walk
    starts there): the files are checked."""
    root = project(
        {".gitignore": "vendor/\n", "vendor/fork/pyproject.toml": "[tool.seamfix]\n", "vendor/fork/a.py": MLA_IF}
    )
    git(root, "init", "-q")
    result = run_seamfix("lint", "--format", "json", cwd=root / "vendor/fork")
    assert result.code == 1 and [f["path"] for f in result.json()] == ["a.py"], result.stderr


def test_paths_of_two_projects_are_each_checked_with_their_own_configuration(project, tmp_path_factory):
    root = project(
        {
            "one/pyproject.toml": '[tool.seamfix]\nallow = ["impl.py"]\n',
            "one/impl.py": MLA_IF,
            "two/.seamfix.toml": 'allow = ["other.py"]\n',
            "two/impl.py": MLA_IF,
            "two/other.py": MLA_IF,
        }
    )
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    files = [str(root / name) for name in ("one/impl.py", "two/impl.py", "two/other.py")]
    result = run_seamfix("lint", "--format", "json", *files, cwd=elsewhere)
    assert [f["path"] for f in result.json()] == [str(root / "two/impl.py")]
    both = run_seamfix("lint", "--write-baseline", "b.json", *files, cwd=elsewhere)
    assert both.code == 2 and "one project" in both.stderr
