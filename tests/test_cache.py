"""The lint cache: results reused for unchanged files, keyed by configuration, never trusted when corrupt."""

import os
import time
from pathlib import Path

import pytest

import seamfix.lint_rules
from seamfix.cache import MAGIC, STALE_AFTER_S, content_digest, decode_entries, encode_entries
from seamfix_testing import MLA_IF, run_seamfix


def lines(result):
    return [(f["path"], f["line"], f["code"]) for f in result.json()]


def cache_file(root, folder=".seamfix_cache"):
    (found,) = (root / folder).glob("lint-*.bin")
    return found


def test_cache_is_written_and_results_are_read_back_from_it(project):
    root = project({"a.py": MLA_IF, "b.py": "x = 1\n"})
    first = run_seamfix("lint", "--format", "json", cwd=root)
    cache = root / ".seamfix_cache"
    assert (cache / "CACHEDIR.TAG").is_file() and (cache / ".gitignore").read_text() == "*\n"
    assert lines(first) == [("a.py", 2, "SEAM001")]
    # A hit serves what the cache holds: an entry edited (and re-sealed) shows in the output.
    entries = decode_entries(cache_file(root).read_bytes())
    digest, rows = entries["a.py"]
    entries["a.py"] = (digest, [row[:7] + ("served from the cache",) + row[8:] for row in rows])
    cache_file(root).write_bytes(encode_entries(entries))
    assert [f["message"] for f in run_seamfix("lint", "--format", "json", cwd=root).json()] == ["served from the cache"]


def test_same_size_edit_in_the_same_second_is_checked_again(project):
    root = project({"a.py": MLA_IF})
    assert lines(run_seamfix("lint", "--format", "json", cwd=root)) == [("a.py", 2, "SEAM001")]
    stat = os.stat(root / "a.py")
    edited = MLA_IF.replace("multi_latent_attention", "plain_attention_flags_")
    assert len(edited) == len(MLA_IF)
    (root / "a.py").write_text(edited)
    os.utime(root / "a.py", ns=(stat.st_atime_ns, stat.st_mtime_ns))  # same size, same mtime
    assert run_seamfix("lint", cwd=root).code == 0
    (root / "a.py").write_text(MLA_IF)
    os.utime(root / "a.py", ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert lines(run_seamfix("lint", "--format", "json", cwd=root)) == [("a.py", 2, "SEAM001")]


def test_deleted_files_and_stale_fingerprints_are_pruned(project):
    root = project({"a.py": MLA_IF, "b.py": MLA_IF})
    assert run_seamfix("lint", cwd=root).code == 1
    assert set(decode_entries(cache_file(root).read_bytes())) == {"a.py", "b.py"}
    (root / "b.py").unlink()
    stale, recent = root / ".seamfix_cache/lint-0000stale.bin", root / ".seamfix_cache/lint-0000recent.bin"
    stale.write_bytes(b"old")
    recent.write_bytes(b"new")
    week_ago = time.time() - STALE_AFTER_S - 60
    os.utime(stale, (week_ago, week_ago))
    assert run_seamfix("lint", "a.py", cwd=root).code == 1
    assert not stale.exists() and recent.exists()
    (current,) = set((root / ".seamfix_cache").glob("lint-*.bin")) - {recent}
    assert set(decode_entries(current.read_bytes())) == {"a.py"}


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


@pytest.mark.parametrize(
    "spoil",
    [
        lambda blob: b"\x00garbage",  # foreign
        lambda blob: blob[: len(blob) // 2],  # truncated
        lambda blob: blob[:-1] + bytes([blob[-1] ^ 1]),  # one bit flipped in the payload
        lambda blob: MAGIC + blob[len(MAGIC) :][::-1],  # header kept, the rest scrambled
        lambda blob: encode_entries({"a.py": "not an entry"}),  # sealed, but not entries of this shape
        lambda blob: encode_entries({"a.py": (content_digest(MLA_IF.encode()), [("too", "short")])}),
    ],
)
def test_corrupt_or_foreign_cache_is_ignored(project, spoil):
    root = project({"a.py": MLA_IF, "pyproject.toml": '[tool.seamfix]\ncache-dir = "cachedir"\n'})
    assert run_seamfix("lint", cwd=root).code == 1
    path = cache_file(root, "cachedir")
    path.write_bytes(spoil(path.read_bytes()))
    result = run_seamfix("lint", "--format", "json", cwd=root)
    assert (result.code, lines(result), result.stderr) == (1, [("a.py", 2, "SEAM001")], "")
    assert decode_entries(path.read_bytes())["a.py"][0] == content_digest(MLA_IF.encode())  # rewritten whole


def test_unwritable_cache_is_ignored(project):
    root = project({"a.py": MLA_IF})
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
