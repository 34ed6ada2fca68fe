"""Glob semantics (as ruff's include/exclude): names match anywhere, paths from the project root."""

import pytest

from seamfix.globs import GlobSet


@pytest.mark.parametrize(
    ("patterns", "relpath", "expected"),
    [
        (["*.py"], "a/b/c.py", True),
        (["*.py"], "a/b/c.pyi", False),
        (["*.py"], "a/b/c.py.bak", False),
        ([".git"], "x/.git", True),
        ([".git"], "x/.github", False),
        (["gen_*.py"], "tools/gen_specs.py", True),
        (["gen_*.py"], "tools/generate.py", False),
        (["tools/gen_*.py"], "tools/gen_specs.py", True),
        (["tools/gen_*.py"], "sub/tools/gen_specs.py", False),
        (["**/mla/*.py"], "a/b/mla/x.py", True),
        (["**/mla/*.py"], "mla/x.py", True),
        (["fork/**"], "fork/a/b.py", True),
        (["./fork/*.py"], "fork/a.py", True),
        (["fork/*.py"], "fork/sub/a.py", True),  # ruff's `*` crosses `/` in a path
        (["./fork"], "sub/fork", False),  # `./` anchors a name at the project root
        (["gen_*.py"], "gen_x/y.py", True),  # a name pattern also matches the whole path, as ruff's
        (["test_[ab].py"], "test_a.py", True),
        (["test_[!ab].py"], "test_a.py", False),
        (["t?.py"], "t1.py", True),
        (["a.py", "*.pyi"], "x/a.py", True),
    ],
)
def test_matches(patterns, relpath, expected):
    assert GlobSet(patterns).matches(relpath) is expected


def test_matches_within_excludes_everything_below_a_matching_folder():
    excluded = GlobSet(["build", "docs/generated"])
    assert excluded.matches_within("build/lib/a.py")
    assert excluded.matches_within("docs/generated/x.py")
    assert not excluded.matches_within("docs/x.py")
