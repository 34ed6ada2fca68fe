"""Which files are checked: include / exclude / allow, explicit paths, and odd entries in the tree."""

import os

from seamfix_testing import MLA_IF, run_seamfix


def paths(result):
    return sorted({f["path"] for f in result.json()})


def test_default_excludes_and_include(project):
    root = project(
        {
            "src/a.py": MLA_IF,
            "src/notes.txt": MLA_IF,
            ".venv/lib/b.py": MLA_IF,
            "build/c.py": MLA_IF,
            "node_modules/d.py": MLA_IF,
            ".git/e.py": MLA_IF,
        }
    )
    assert paths(run_seamfix("lint", "--format", "json", cwd=root)) == ["src/a.py"]


def test_include_exclude_and_allow_globs(project):
    root = project(
        {
            "pyproject.toml": (
                "[tool.seamfix]\n"
                'include = ["*.py", "*.pyi"]\n'
                'extend-exclude = ["legacy", "tools/gen_*.py"]\n'
                'allow = ["**/multi_latent_attention.py", "fork/mla/*.py"]\n'
            ),
            "fork/a.py": MLA_IF,
            "fork/stub.pyi": MLA_IF,
            "fork/legacy/old.py": MLA_IF,
            "tools/gen_specs.py": MLA_IF,
            "tools/run.py": MLA_IF,
            "fork/transformer/multi_latent_attention.py": MLA_IF,
            "fork/mla/impl.py": MLA_IF,
        }
    )
    assert paths(run_seamfix("lint", "--format", "json", cwd=root)) == ["fork/a.py", "fork/stub.pyi", "tools/run.py"]


def test_explicit_paths_are_checked_unless_force_exclude(project):
    root = project({"build/gen.py": MLA_IF, "script": MLA_IF})
    assert paths(run_seamfix("lint", "--format", "json", "build/gen.py", "script", cwd=root)) == [
        "build/gen.py",
        "script",
    ]
    result = run_seamfix("lint", "--force-exclude", "build/gen.py", cwd=root)
    assert result.code == 0


def test_output_is_sorted_by_path_and_position(project):
    root = project({"b.py": MLA_IF * 2, "a/z.py": MLA_IF, "a.py": MLA_IF})
    result = run_seamfix("lint", cwd=root)
    lines = result.stdout.splitlines()[:-1]
    keys = [(line.split(":")[0], int(line.split(":")[1])) for line in lines]
    assert keys == sorted(keys) and len(keys) == 4


def test_directory_named_like_a_file_is_walked(project):
    root = project({"weird.py/inner.py": MLA_IF})
    assert paths(run_seamfix("lint", "--format", "json", cwd=root)) == ["weird.py/inner.py"]


def test_symlink_loops_and_dangling_links_are_errors_the_rest_is_checked(project):
    root = project({"good.py": MLA_IF})
    os.symlink("loop.py", root / "loop.py")
    os.symlink("missing.py", root / "dangling.py")
    os.symlink(".", root / "again")  # a directory cycle: not followed
    result = run_seamfix("lint", "--format", "json", cwd=root)
    assert result.code == 2
    assert paths(result) == ["good.py"]
    errors = result.stderr.strip().splitlines()
    assert len(errors) == 2
    assert errors[0].startswith("seamfix: error: dangling.py: cannot read")
    assert errors[1].startswith("seamfix: error: loop.py: cannot read")


def test_fifo_is_not_read(project):
    root = project({"good.py": MLA_IF})
    os.mkfifo(root / "pipe.py")
    result = run_seamfix("lint", cwd=root)
    assert result.code == 2 and "pipe.py: cannot read: not a regular file" in result.stderr


def test_missing_path_is_an_error(project):
    root = project({"good.py": "x = 1\n"})
    result = run_seamfix("lint", "nope.py", "good.py", cwd=root)
    assert result.code == 2 and "nope.py: No such file or directory" in result.stderr


def test_empty_tree_is_clean(project):
    root = project({})
    result = run_seamfix("lint", cwd=root)
    assert (result.code, result.stdout.strip()) == (0, "All checks passed!")


def test_stdin_is_refused_by_name(project):
    """Ruff reads `-` from stdin; seamfix lints files on disk only (README, *Differences from ruff*): one line saying
    so, exit 2, rather than "No such file or directory" for a path the user never meant as a file."""
    root = project({"a.py": MLA_IF})
    for command in ("lint", "apply"):
        result = run_seamfix(command, "-", "a.py", cwd=root)
        assert result.code == 2 and result.stdout == "", result.stdout
        assert result.stderr == "seamfix: error: -: reading from stdin is not supported: give the file's path\n"


def test_a_file_reached_twice_is_reported_once(project):
    """`seamfix lint sub/b.py .` with `sub/` a nested project: the file is checked as given and again when the
    walk of `.` hands `sub/` to its own configuration. Each finding is reported once (ruff 0.17 reports it
    twice), and `--show-files` lists the file once."""
    root = project({"pyproject.toml": "[tool.seamfix]\n", "sub/pyproject.toml": "[tool.seamfix]\n", "sub/b.py": MLA_IF})
    result = run_seamfix("lint", "--format", "json", "sub/b.py", ".", cwd=root)
    assert [f["path"] for f in result.json()] == ["sub/b.py"]
    assert run_seamfix("lint", "--show-files", "sub/b.py", ".", cwd=root).stdout == "sub/b.py\n"
