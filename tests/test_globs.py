"""Glob semantics (as ruff's include/exclude): names match anywhere, paths from the project root."""

import pytest

from seamfix.globs import GlobError, GlobSet


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
        # As ruff's globset: `{a,b}` alternates (nested too, an empty branch allowed), `\\` escapes, and a `]`
        # first in a class or a `-` last is a member.
        (["{a,b}.py"], "sub/b.py", True),
        (["{a,b}.py"], "c.py", False),
        (["{a,{b,c}}.py"], "c.py", True),
        (["a{,.py}"], "a.py", True),
        (["{,x/}e.py"], "x/e.py", True),
        (["{,x/}e.py"], "e.py", False),  # globset drops an empty alternative
        (["sub/{deep,tests}"], "sub/tests", True),
        (["sub/{deep,tests}"], "x/sub/tests", False),
        (["{sub/a,c}.py"], "x/c.py", False),  # a `/` anywhere makes it a path pattern here ...
        (["q\\*.py"], "q*.py", True),
        (["q\\*.py"], "qx.py", False),
        (["[]a].py"], "].py", True),
        (["[!]a].py"], "a.py", False),
        (["[a-]*"], "-.py", True),
        (["a,b.py"], "a,b.py", True),  # a comma outside braces is itself
    ],
)
def test_matches(patterns, relpath, expected):
    assert GlobSet(patterns).matches(relpath) is expected


def test_matches_within_excludes_everything_below_a_matching_folder():
    excluded = GlobSet(["build", "docs/generated"])
    assert excluded.matches_within("build/lib/a.py")
    assert excluded.matches_within("docs/generated/x.py")
    assert not excluded.matches_within("docs/x.py")


def test_per_file_ignores_match_every_pattern_against_the_name():
    """... but not in ruff's per-file-ignores, which try each whole pattern on the file's name too."""
    assert GlobSet(["{sub/a,c}.py"], names="always").matches("x/c.py")
    assert not GlobSet(["{sub/a,c}.py"], names="always").matches("x/a.py")


@pytest.mark.parametrize(
    ("pattern", "problem"),
    [
        ("[abc", "unclosed character class"),
        ("[]", "unclosed character class"),
        ("[!]", "unclosed character class"),
        ("{a,[b}", "unclosed character class"),
        ("{a,b", "unclosed alternate group"),
        ("x}.py", "unopened alternate group"),
        ("a\\", "dangling"),
        ("[z-a]", "invalid range"),
    ],
)
def test_a_pattern_ruff_cannot_parse_is_an_error(pattern, problem):
    with pytest.raises(GlobError, match=problem):
        GlobSet([pattern])
