"""The lint cache: results reused for unchanged files, keyed by configuration, never trusted when corrupt."""

import os
from pathlib import Path

import seamfix.lint_rules
from seamfix_testing import MLA_IF, run_seamfix


def lines(result):
    return [(f["path"], f["line"], f["code"]) for f in result.json()]


def test_cache_is_written_reused_and_invalidated(project):
    root = project({"a.py": MLA_IF, "b.py": "x = 1\n"})
    first = run_seamfix("lint", "--format", "json", cwd=root)
    cache = root / ".seamfix_cache"
    assert (cache / "CACHEDIR.TAG").is_file() and (cache / ".gitignore").read_text() == "*\n"
    assert len(list(cache.glob("lint-*.bin"))) == 1
    assert lines(run_seamfix("lint", "--format", "json", cwd=root)) == lines(first) == [("a.py", 2, "SEAM001")]

    # Same size and mtime, different content: a cache hit proves results are read back from the cache ...
    stat = os.stat(root / "a.py")
    (root / "a.py").write_text(MLA_IF.replace("multi_latent_attention", "plain_attention_flags_"))
    os.utime(root / "a.py", ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert lines(run_seamfix("lint", "--format", "json", cwd=root)) == [("a.py", 2, "SEAM001")]
    # ... and --no-cache, or any edit that changes the mtime, sees the file as it is.
    assert run_seamfix("lint", "--no-cache", cwd=root).code == 0
    (root / "b.py").write_text(MLA_IF)
    assert lines(run_seamfix("lint", "--format", "json", cwd=root)) == [("a.py", 2, "SEAM001"), ("b.py", 2, "SEAM001")]


def test_configuration_is_part_of_the_key(project):
    root = project({"a.py": "from megatron.core.transformer.multi_latent_attention import MLASelfAttention\n"})
    assert run_seamfix("lint", cwd=root).code == 0
    assert lines(run_seamfix("lint", "--format", "json", "--extend-select", "SEAM002", cwd=root)) == [
        ("a.py", 1, "SEAM002")
    ]
    (root / "pyproject.toml").write_text('[tool.seamfix]\nextend-vocabulary = { classes = ["Dense"] }\n')
    (root / "b.py").write_text("def f(x):\n    return 1 if isinstance(x, Dense) else 0\n")
    assert lines(run_seamfix("lint", "--format", "json", cwd=root)) == [("b.py", 2, "SEAM001")]
    assert len(list((root / ".seamfix_cache").glob("lint-*.bin"))) == 3


def test_corrupt_or_unwritable_cache_is_ignored(project):
    root = project({"a.py": MLA_IF, "pyproject.toml": '[tool.seamfix]\ncache-dir = "cachedir"\n'})
    assert run_seamfix("lint", cwd=root).code == 1
    (cache_file,) = (root / "cachedir").glob("lint-*.bin")
    cache_file.write_bytes(b"\x00garbage")
    assert lines(run_seamfix("lint", "--format", "json", cwd=root)) == [("a.py", 2, "SEAM001")]
    (root / "blocked").write_text("a file where the cache folder would go")
    result = run_seamfix("lint", "--cache-dir", "blocked/cache", cwd=root)
    assert result.code == 1 and result.stderr == ""
    assert run_seamfix("lint", "--no-cache", "--cache-dir", "fresh", cwd=root).code == 1
    assert not (root / "fresh").exists()


def test_a_change_to_seamfix_own_code_is_part_of_the_key(project):
    """An editable install keeps its version while its rules change: their files' stamps key the cache too."""
    root = project({"a.py": MLA_IF})
    assert run_seamfix("lint", cwd=root).code == 1
    rule_module = sorted(Path(seamfix.lint_rules.__file__).parent.glob("*.py"))[-1]
    stat = rule_module.stat()
    try:
        os.utime(rule_module, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
        assert run_seamfix("lint", cwd=root).code == 1
    finally:
        os.utime(rule_module, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert len(list((root / ".seamfix_cache").glob("lint-*.bin"))) == 2
