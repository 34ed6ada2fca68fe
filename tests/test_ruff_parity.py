"""Configuration parity with the real ruff, differentially: one project tree is written twice, once configured
as `[tool.ruff]` selecting F401 and once as `[tool.seamfix]` selecting SEAM001 (same globs, selection,
per-file-ignores, gitignore, arguments), every ``.py`` file holding both an unused import and an MLA decision;
both tools must flag the same set of files. Documented differences (README, *Configuration*) are encoded
as cases of their own with each tool's expected answer."""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from fnmatch import fnmatch
from pathlib import Path

import pytest

from seamfix.config import DEFAULT_EXCLUDE
from seamfix.globs import GlobSet
from seamfix_testing import run_seamfix

RUFF = shutil.which("ruff", path=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
BOTH = "import os\n\n\ndef f(cfg):\n    if cfg.multi_latent_attention:\n        return 1\n    return 0\n"
RULE = {"ruff": "F401", "seamfix": "SEAM001"}
PREFIX = {"ruff": "F", "seamfix": "SEAM"}
LINT_KEYS = {"select", "extend-select", "ignore", "per-file-ignores", "extend-per-file-ignores"}
CONFIG_FILE = {"pyproject": "pyproject.toml", "plain": "{tool}.toml", "dot": ".{tool}.toml"}


@dataclass
class Case:
    files: list[str]
    config: dict = field(default_factory=dict)  # seamfix's spelling; codes "RULE" / "PREFIX" stand for either tool's
    kind: str = "pyproject"
    nested: dict[str, dict] = field(default_factory=dict)  # folder: its own configuration (a pyproject.toml)
    git: dict[str, str] | None = None  # ignore files; a repository when set
    args: list[str] = field(default_factory=list)
    cwd: str = "."
    symlinks: list[tuple[str, str]] = field(default_factory=list)  # (target, link)
    other_files: dict[str, str] = field(default_factory=dict)  # contents other than BOTH
    tracked: list[str] = field(default_factory=list)  # files added to git's index
    bases: dict[str, dict] = field(default_factory=dict)  # further configuration files ("{tool}" in the path)
    test_file_default: bool = False  # keep seamfix's default `per-file-ignores` for test files
    repositories: list[str] = field(default_factory=list)  # folders that are git repositories of their own


def _toml(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(_toml(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(key)} = {_toml(item)}" for key, item in value.items()) + "}"
    return json.dumps(value)


def _codes(tool: str, value):
    if isinstance(value, list):
        return [{"RULE": RULE[tool], "PREFIX": PREFIX[tool]}.get(item, item) for item in value]
    if isinstance(value, dict):
        return {key: _codes(tool, item) for key, item in value.items()}
    return value


def config_text(tool: str, config: dict, pyproject: bool, test_file_default: bool = False) -> str:
    """The configuration for ``tool``: ruff's lint keys in its `lint` table, F401 selected unless chosen; seamfix's
    test-file default `per-file-ignores` (a documented difference) off unless chosen."""
    config = {key: _codes(tool, value).format(tool=tool) if key == "extend" else _codes(tool, value)
              for key, value in config.items()}  # fmt: skip
    if tool == "ruff" and "extend" not in config:
        config.setdefault("select", [RULE["ruff"]])
    elif not test_file_default and "extend" not in config:  # an extended file's stands
        config.setdefault("per-file-ignores", {})
    top = [f"{key} = {_toml(value)}" for key, value in config.items() if tool == "seamfix" or key not in LINT_KEYS]
    lint = [f"{key} = {_toml(value)}" for key, value in config.items() if tool == "ruff" and key in LINT_KEYS]
    prefix = "tool.ruff." if pyproject else ""
    text = (f"[tool.{tool}]\n" if pyproject else "") + "".join(line + "\n" for line in top)
    return text + (f"[{prefix}lint]\n" + "".join(line + "\n" for line in lint) if lint else "")


def flagged(tool: str, case: Case, root: Path) -> list[str]:
    """Project-relative paths of the files ``tool`` flags in ``case``, written under ``root``."""
    written = {name: BOTH for name in case.files} | case.other_files
    written[CONFIG_FILE[case.kind].format(tool=tool)] = config_text(
        tool, case.config, case.kind == "pyproject", case.test_file_default
    )
    for name, base in case.bases.items():
        written[name.format(tool=tool)] = config_text(tool, base, pyproject=False)
    for folder, nested in case.nested.items():
        written[f"{folder}/pyproject.toml"] = config_text(tool, nested, pyproject=True)
    for name, text in written.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    for target, link in case.symlinks:
        (root / link).parent.mkdir(parents=True, exist_ok=True)
        os.symlink(target, root / link)
    if case.git is not None:
        subprocess.run(["git", "init", "-q"], cwd=root, check=True)
        for name, text in case.git.items():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_text(text)
        for folder in case.repositories:
            subprocess.run(["git", "init", "-q"], cwd=root / folder, check=True)
        if case.tracked:
            subprocess.run(["git", "add", "-f", *case.tracked], cwd=root, check=True)
    cwd = root / case.cwd
    if tool == "ruff":
        proc = subprocess.run(
            [RUFF, "check", "--no-cache", "--output-format", "json", *case.args],
            cwd=cwd,
            capture_output=True,
            text=True,
        )
        assert proc.returncode in (0, 1), proc.stderr
        return sorted({Path(item["filename"]).relative_to(root).as_posix() for item in json.loads(proc.stdout)})
    result = run_seamfix("lint", "--no-cache", "--jobs", "1", "--format", "json", *case.args, cwd=cwd)
    assert result.code in (0, 1), result.stderr
    return sorted(
        {os.path.normpath(os.path.join(case.cwd, item["path"])).replace(os.sep, "/") for item in result.json()}
    )


def both(case: Case, tmp_path: Path) -> tuple[list[str], list[str]]:
    assert RUFF is not None, "ruff (from the test extras) is not installed"
    (tmp_path / "ruff").mkdir()
    (tmp_path / "seamfix").mkdir()
    return flagged("ruff", case, tmp_path / "ruff"), flagged("seamfix", case, tmp_path / "seamfix")


TREE = ["a.py", "sub/b.py", "sub/deep/c.py", "sub/tests/t.py", "x/sub/d.py", ".hidden/e.py"]
SAME = {
    "plain": Case(TREE),
    "star-crosses-slash-in-exclude": Case(TREE, {"extend-exclude": ["sub/*.py"]}),
    "star-crosses-slash-in-include": Case(TREE, {"include": ["sub/*.py"]}),
    "dot-slash-anchors-a-name": Case(TREE, {"extend-exclude": ["./sub"]}),
    "absolute-outside-matches-nothing": Case(TREE, {"extend-exclude": ["/sub"]}),
    "name-pattern-matches-whole-path": Case(TREE, {"extend-exclude": ["s*b"]}),
    "extend-include": Case([*TREE, "w.pyw", "sub/v.pyw"], {"extend-include": ["*.pyw"]}),
    "extend-include-in-a-base": Case(
        [*TREE, "w.pyw", "sub/v.pyw"],
        {"extend": "cfg/base.toml", "extend-include": ["sub/*.pyw"]},
        bases={"cfg/base.toml": {"extend-include": ["../w.pyw"]}},
    ),
    "exclude-replaces-defaults": Case([*TREE, ".venv/v.py"], {"exclude": ["x"]}),
    "brace-alternatives": Case(TREE, {"extend-exclude": ["{a,b}.py", "sub/{deep,x}"]}),
    "brace-empty-alternative": Case([*TREE, "e.py", "x/e.py"], {"extend-exclude": ["{,x/}e.py", "sub/{,deep/}c.py"]}),
    "brace-alternatives-in-per-file-ignores": Case(TREE, {"per-file-ignores": {"{a,sub/b,{c,e}}.py": ["RULE"]}}),
    "escaped-wildcard": Case([*TREE, "q*.py", "qx.py"], {"extend-exclude": ["q\\*.py"]}),
    "class-with-bracket-and-dash": Case([*TREE, "].py", "-.py"], {"extend-exclude": ["[]-].py"]}),
    "per-file-ignores-star": Case(TREE, {"per-file-ignores": {"sub/*.py": ["RULE"]}}),
    "per-file-ignores-folder-name-covers-nothing": Case(
        TREE, {"per-file-ignores": {"sub": ["RULE"], "x/sub": ["RULE"]}}
    ),
    "per-file-ignores-basename": Case(TREE, {"per-file-ignores": {"c.py": ["RULE"]}}),
    "per-file-ignores-negated": Case(TREE, {"per-file-ignores": {"!sub/*.py": ["RULE"]}}),
    "extend-per-file-ignores": Case(TREE, {"extend-per-file-ignores": {"**/tests/**": ["PREFIX"]}}),
    "ignore": Case(TREE, {"ignore": ["RULE"]}),
    "select-prefix": Case(TREE, {"select": ["PREFIX"]}),
    "select-nothing": Case(TREE, {"select": []}),  # an empty selection selects nothing, not the defaults
    "explicit-excluded-files": Case(TREE, {"extend-exclude": ["sub"]}, args=["sub/b.py", "a.py", "sub"]),
    "force-exclude-flag": Case(TREE, {"extend-exclude": ["deep"]}, args=["--force-exclude", "sub/deep/c.py", "a.py"]),
    "force-exclude-setting": Case(TREE, {"extend-exclude": ["deep"], "force-exclude": True}, args=["sub/deep/c.py"]),
    "explicit-non-py-file": Case(TREE, other_files={"script": BOTH, "notes.txt": BOTH}, args=["script", "a.py"]),
    "src-outside-the-project": Case(TREE, {"src": ["../shared", "/"]}),
    "seamfix-toml-and-pyproject": Case(TREE, {"extend-exclude": ["sub"]}, kind="plain"),
    "dot-seamfix-toml": Case(TREE, {"extend-exclude": ["x"]}, kind="dot"),
    "run-in-a-subfolder": Case(TREE, {"extend-exclude": ["deep"]}, cwd="sub"),
    "nested-gitignores": Case(
        TREE, git={".gitignore": "b.py\n", "sub/.gitignore": "deep/\n", ".git/info/exclude": "e.py\n"}
    ),
    "gitignore-negation": Case(TREE, git={".gitignore": "*.py\n!a.py\n!*/\n"}),
    "gitignore-outside-a-repository": Case(TREE, other_files={".gitignore": "b.py\n"}),
    "respect-gitignore-off": Case(TREE, {"respect-gitignore": False}, git={".gitignore": "sub/\n"}),
    "gitignored-file-given-explicitly": Case(TREE, git={".gitignore": "b.py\n"}, args=["--force-exclude", "sub/b.py"]),
    "nested-configuration": Case(TREE, nested={"sub": {"extend-exclude": ["deep"]}, "x": {"ignore": ["RULE"]}}),
    "nested-configuration-in-an-excluded-folder": Case(TREE, {"extend-exclude": ["sub"]}, nested={"sub": {}}),
    "nested-configuration-of-an-explicit-file": Case(
        TREE,
        {"extend-exclude": ["sub"]},
        nested={"sub": {"extend-exclude": ["deep"]}},
        args=["sub/b.py", "sub/deep/c.py"],
    ),
    "nested-configuration-force-excluded": Case(
        TREE, nested={"sub": {"extend-exclude": ["deep"]}}, args=["--force-exclude", "sub/deep/c.py", "a.py"]
    ),
    # `force-exclude` is a setting of the run, as ruff's: the current directory's configuration's covers the files
    # of nested projects given explicitly, and a nested project's own is not read.
    "force-exclude-setting-covers-nested-projects": Case(
        TREE, {"force-exclude": True}, nested={"sub": {"extend-exclude": ["deep"]}}, args=["sub/deep/c.py", "a.py"]
    ),
    "force-exclude-of-a-nested-project-not-read": Case(
        TREE, nested={"sub": {"extend-exclude": ["deep"], "force-exclude": True}}, args=["sub/deep/c.py", "a.py"]
    ),
    "config-flag-governs-nested-folders": Case(
        TREE, nested={"sub": {"extend-exclude": ["deep"]}}, args=["--config", "pyproject.toml", "."]
    ),
    "run-in-a-nested-project": Case(TREE, {"extend-exclude": ["b.py"]}, nested={"sub": {}}, cwd="sub"),
    "extend-a-base-outside": Case(
        TREE,
        {"extend": "../{tool}-shared/base.toml", "extend-exclude": ["x"]},
        bases={
            "../{tool}-shared/base.toml": {
                "extend-exclude": ["deep", "sub/b.py"],
                "per-file-ignores": {"**/tests/*": ["RULE"], ".hidden/*": ["RULE"], "c.py": ["RULE"]},
            }
        },
    ),
    "extend-a-base-inside-with-selection": Case(
        TREE,
        {"extend": "cfg/base.toml", "extend-per-file-ignores": {"x/*": ["RULE"]}},
        bases={"cfg/base.toml": {"select": ["PREFIX"], "extend-per-file-ignores": {"sub/*.py": ["RULE"]}}},
    ),
    "extend-chain-child-ignores": Case(
        TREE,
        {"extend": "cfg/mid.toml", "ignore": ["RULE"]},
        bases={"cfg/mid.toml": {"extend": "base.toml"}, "cfg/base.toml": {"select": ["RULE"]}},
    ),
    # A repository inside the project: its own ignore files apply inside it, the outer one's do not (as git
    # run inside it says, and ruff's walk).
    "nested-repository": Case(TREE, git={".gitignore": "c.py\n", "sub/.gitignore": "b.py\n"}, repositories=["sub"]),
    # ... while a nested repository in a folder the outer one ignores is ignored whole, as the walk never enters it.
    "repository-in-an-ignored-folder": Case(
        TREE, git={".gitignore": "deep/\ntests\n"}, repositories=["sub/deep", "sub/tests"]
    ),
    # A project (here run from inside it) in a folder its repository ignores: both check its files.
    "project-in-an-ignored-folder": Case(TREE, git={".gitignore": "sub/\n"}, nested={"sub": {}}, cwd="sub"),
    "symlinks": Case(TREE, symlinks=[("a.py", "link.py"), ("sub", "linked_sub")]),
    "symlinks-given-explicitly": Case(
        TREE, symlinks=[("a.py", "link.py"), ("sub", "linked_sub")], args=["link.py", "linked_sub"]
    ),
}


@pytest.mark.parametrize("name", SAME)
def test_flags_the_same_files_as_ruff(name, tmp_path):
    ruff, seamfix = both(SAME[name], tmp_path)
    assert seamfix == ruff


# Intended differences, each documented in the README: (case, what ruff flags, what seamfix flags).
DIFFERENT = {
    # `build` stays excluded by default: a fork's `setup.py build` copies its sources there.
    "build-excluded-by-default": (Case(["a.py", "build/lib/g.py"]), ["a.py", "build/lib/g.py"], ["a.py"]),
    # seamfix lints Python sources only: stubs declare no MLA decisions.
    "stubs-not-included-by-default": (Case(["a.py", "s.pyi"]), ["a.py", "s.pyi"], ["a.py"]),
    # A tracked file stays checked even where .gitignore matches it (git ignores untracked files only).
    "tracked-files-are-never-ignored": (
        Case(["a.py", "sub/b.py"], git={".gitignore": "b.py\n"}, tracked=["sub/b.py"]),
        ["a.py"],
        ["a.py", "sub/b.py"],
    ),
    # SEAM001-SEAM003 are off in test files by default (README, *Test files*); ruff has no such default.
    "test-files-default": (
        Case(["a.py", "tests/t.py", "test_u.py"], test_file_default=True),
        ["a.py", "test_u.py", "tests/t.py"],
        ["a.py"],
    ),
    # `.ignore` files (ripgrep's) are not read.
    "dot-ignore-files-not-read": (
        Case(["a.py", "b.py"], other_files={".ignore": "b.py\n"}),
        ["a.py"],
        ["a.py", "b.py"],
    ),
    # With --force-exclude, ruff matches a project root's own folder name against its `exclude`: a project in a
    # folder named `venv`, `dist` or `build` would have nothing checked by the pre-commit hook. seamfix matches
    # what lies below the root only (here a nested project excluding its own folder's name).
    "project-root-own-name-not-excluded": (
        Case(
            ["a.py", "sub/b.py"],
            nested={"sub": {"extend-exclude": ["sub"]}},
            args=["--force-exclude", "sub/b.py", "a.py"],
        ),
        ["a.py"],
        ["a.py", "sub/b.py"],
    ),
    # A pattern without `/` is matched against names and the project-relative path; ruff also tries it on the
    # absolute path, so `[!a]*.py` (the `/` in front of every absolute path is not `a`) excludes every file there,
    # as `*tmp*` would every file of a project under /tmp. seamfix's answer does not depend on where the project is.
    "slashless-pattern-not-matched-against-the-absolute-path": (
        Case(TREE, {"extend-exclude": ["[!a]*.py"]}),
        [],
        ["a.py"],
    ),
    # `--config`'s folder is the project root; ruff counts a --config file's relative paths from the current folder.
    "config-flag-paths-count-from-its-folder": (
        Case(TREE, {"extend-exclude": ["./deep"]}, args=["--config", "../pyproject.toml"], cwd="sub"),
        ["sub/b.py", "sub/tests/t.py"],
        ["sub/b.py", "sub/deep/c.py", "sub/tests/t.py"],
    ),
    # A folder given explicitly that git ignores is not walked (ruff walks it, as the root of its walk).
    "gitignored-folder-given-explicitly": (
        Case(["a.py", "gen/b.py"], git={".gitignore": "gen/\n"}, args=["gen"]),
        ["gen/b.py"],
        [],
    ),
}


@pytest.mark.parametrize("name", DIFFERENT)
def test_documented_differences_from_ruff(name, tmp_path):
    case, ruff_expected, seamfix_expected = DIFFERENT[name]
    assert both(case, tmp_path) == (ruff_expected, seamfix_expected)


# The random projects: names and patterns drawn from pools that reach the interesting corners (second round:
# default-excluded and spaced folder names, stubs, `{a,b}` / `\\` / `[]...]` globs, nested repositories, symlinks).
FOLDERS = ["pkg", "sub", "tests", "gen", ".hidden", "x", "deep", "node_modules", "site-packages", "a b"]
NAMES = ["a.py", "b.py", "gen_c.py", "test_d.py", "mla.py", "__init__.py", "s.pyi", "q[1].py"]
PATTERNS = [
    "sub", "tests", "deep", "x/", "./sub", "pkg/**", "**/gen_*.py", "sub/*.py", "*/a.py", "gen_*", "[ab].py",
    "?.py", "pkg/sub", "**/tests/**", "*.py", "mla.py", "pkg/*", ".hidden", "t*s", "**/deep/*", "{a,b}.py",
    "sub/{deep,x}", "{pkg,gen}/**", "[!a]?.py", "q\\[1].py", "**/*.pyi", "{gen_*,mla}.py", "[]a].py", "./{sub,x}",
    "{,x/}b.py", "a b",
]  # fmt: skip
GITIGNORE = [
    "b.py", "deep/", "/sub", "gen_*", "!gen_c.py", "pkg/*.py", "*.py\n!a.py", "tests", "/x/", "**/deep", "*.pyi",
    "sub/**/b.py", "!*/", "[ab].py", "x/*/", "mla.py\n!/mla.py", "/*.py",
]  # fmt: skip


def random_case(seed: int) -> Case:
    rng = random.Random(seed)
    files = sorted(
        {"/".join([*rng.sample(FOLDERS, rng.randint(0, 3)), rng.choice(NAMES)]) for _ in range(rng.randint(3, 10))}
    )
    config: dict = {}
    if rng.random() < 0.6:
        config["extend-exclude"] = rng.sample(PATTERNS, rng.randint(1, 2))
    if rng.random() < 0.15:
        config["exclude"] = rng.sample(PATTERNS, 1)
    if rng.random() < 0.2:
        config["include"] = rng.sample(PATTERNS, rng.randint(1, 2))
    elif any(name.endswith(".pyi") for name in files):  # stubs are included by default in ruff only (documented)
        config["include"] = ["*.py", "*.pyi"]
    if rng.random() < 0.6:
        ignores = {("!" if rng.random() < 0.25 else "") + pattern: ["RULE"] for pattern in rng.sample(PATTERNS, 2)}
        config[rng.choice(["per-file-ignores", "extend-per-file-ignores"])] = ignores
    if rng.random() < 0.15:
        config["select"] = [rng.choice(["RULE", "PREFIX"])]
    if rng.random() < 0.1:
        config["ignore"] = ["RULE"]
    if rng.random() < 0.2:
        config["respect-gitignore"] = rng.random() < 0.5
    if rng.random() < 0.2:
        config["force-exclude"] = True
    nested = {}
    folders = sorted({name.rsplit("/", 1)[0] for name in files if "/" in name})
    if folders and rng.random() < 0.3:
        folder, pattern = rng.choice(folders), rng.choice(PATTERNS)
        # A project root's own name matched by its own exclude is a documented difference: left alone.
        if not GlobSet([*DEFAULT_EXCLUDE, pattern]).matches(folder.rsplit("/", 1)[-1]):
            nested[folder] = {"extend-exclude": [pattern], "include": config.get("include", ["*.py"])}
    args: list[str] = []
    roll = rng.random()
    if roll < 0.3:
        args = rng.sample(files, min(len(files), rng.randint(1, 3)))
    elif roll < 0.45:
        args = ["."]
    elif roll < 0.6:
        args = [rng.choice(folders or ["."])]
    # A folder given explicitly that git ignores is a documented difference: the pool leaves it alone.
    given = {part for arg in args for part in arg.split("/")[:-1] + ([arg] if arg in folders else [])}
    pool = [line for line in GITIGNORE if not any(fnmatch(part, line.strip("/")) for part in given)]
    if args and rng.random() < 0.5:
        args.insert(0, "--force-exclude")
    git, repositories = None, []
    if rng.random() < 0.5:
        git = {".gitignore": "\n".join(rng.sample(pool, rng.randint(1, 2))) + "\n"}
        if folders and rng.random() < 0.4:
            git[f"{rng.choice(folders)}/.gitignore"] = rng.choice(pool) + "\n"
        if folders and rng.random() < 0.2:
            repositories = [rng.choice([folder for folder in folders if folder not in nested] or ["."])]
    symlinks = []
    if rng.random() < 0.2:
        target = rng.choice(files + folders)
        symlinks = [(target, "link" + ("" if target in folders else ".py"))]
    return Case(files, config, kind=rng.choice(list(CONFIG_FILE)), nested=nested, git=git, args=args,
                symlinks=symlinks, repositories=[folder for folder in repositories if folder != "."])  # fmt: skip


@pytest.mark.parametrize("seed", range(60))
def test_random_projects_flag_the_same_files_as_ruff(seed, tmp_path):
    case = random_case(seed)
    ruff, seamfix = both(case, tmp_path)
    assert seamfix == ruff, case


@pytest.mark.parametrize("extend", ["a.toml", "missing.toml"])
def test_bad_extend_is_a_configuration_error_in_both(extend, project):
    """A cycle (a.toml extends the file that extends it) or a missing base: exit 2 naming the file, as ruff."""
    root = project(
        {"pyproject.toml": f'[tool.seamfix]\nextend = "{extend}"\n', "a.toml": 'extend = "pyproject.toml"\n'}
    )
    (root / "m.py").write_text(BOTH)
    result = run_seamfix("lint", cwd=root)
    assert result.code == 2 and result.stderr.count("\n") == 1 and "extend" in result.stderr, result.stderr
    (root / "pyproject.toml").write_text(f'[tool.ruff]\nextend = "{extend}"\n')
    assert subprocess.run([RUFF, "check", "--no-cache", "."], cwd=root, capture_output=True).returncode == 2


@pytest.mark.parametrize("pattern", ["gen/[ab", "{a,b", "x}.py", "[]", "[z-a].py", "a\\"])
def test_a_glob_ruff_cannot_parse_is_a_configuration_error_in_both(pattern, project):
    root = project({"a.py": BOTH})
    for tool in ("ruff", "seamfix"):
        (root / "pyproject.toml").write_text(f"[tool.{tool}]\nextend-exclude = [{json.dumps(pattern)}]\n")
        command = [RUFF, "check", "--no-cache"] if tool == "ruff" else [sys.executable, "-m", "seamfix", "lint"]
        proc = subprocess.run(command, cwd=root, capture_output=True, text=True)
        assert proc.returncode == 2 and "glob" in proc.stderr, (tool, proc.stderr)


def test_stdin_and_unreadable_files_differ_from_ruff_as_documented(project):
    """Ruff lints `-` from stdin and warns about a file it cannot read (exit 0 here); seamfix refuses `-` by name
    and reports an unreadable file (a dangling symlink) as an error, exit 2: the gate never passes a file it could not
    check."""
    root = project({"a.py": "import os\n"})
    (root / "gone.py").symlink_to("missing.py")
    (root / "pyproject.toml").write_text('[tool.ruff]\nlint.select = ["F401"]\n[tool.seamfix]\n')
    stdin = subprocess.run([RUFF, "check", "--no-cache", "-"], cwd=root, input=b"import os\n", capture_output=True)
    assert stdin.returncode == 1
    assert run_seamfix("lint", "-", cwd=root).code == 2
    dangling = subprocess.run([RUFF, "check", "--no-cache", "gone.py"], cwd=root, capture_output=True, text=True)
    assert dangling.returncode == 0 and "gone.py" in dangling.stderr
    result = run_seamfix("lint", "gone.py", cwd=root)
    assert result.code == 2 and result.stderr == "seamfix: error: gone.py: cannot read: No such file or directory\n"


def test_show_files_lists_what_each_tool_would_check(tmp_path):
    """`--show-files`, as ruff's: the files a run would check (nested projects, excludes, git's rules), sorted, one a
    line, exit 0, nothing checked. Ruff lists its configuration files too, and absolute paths."""
    case = Case(TREE, {"extend-exclude": ["deep"]}, nested={"x": {}}, git={".gitignore": "e.py\n"})
    ruff, seamfix = both(case, tmp_path)
    ruff_listed = subprocess.run([RUFF, "check", "--show-files"], cwd=tmp_path / "ruff", capture_output=True, text=True)
    shown = run_seamfix("lint", "--show-files", cwd=tmp_path / "seamfix")
    assert shown.code == 0 and shown.stderr == "" and shown.stdout.splitlines() == seamfix
    root = str(tmp_path / "ruff") + os.sep
    assert [line.removeprefix(root) for line in ruff_listed.stdout.splitlines() if line.endswith(".py")] == ruff
    assert seamfix == ruff


@pytest.mark.parametrize("broken", ["[tool.seamfix\n", "[tool.seamfix]\nselect = 5\n"])
def test_a_broken_nested_configuration_leaves_only_its_folder_unchecked(broken, project):
    """Ruff stops the whole run (exit 2, nothing checked); seamfix names the file, exit 2, checks the rest."""
    root = project({"pyproject.toml": "[tool.seamfix]\n", "a.py": BOTH, "sub/b.py": BOTH, "sub/pyproject.toml": broken})
    result = run_seamfix("lint", "--format", "json", cwd=root)
    assert result.code == 2 and "sub/pyproject.toml" in result.stderr and result.stderr.count("\n") == 1
    assert [finding["path"] for finding in result.json()] == ["a.py"]
    (root / "sub/pyproject.toml").write_text(broken.replace("seamfix", "ruff"))
    ruff = subprocess.run([RUFF, "check", "--no-cache", "--output-format", "json"], cwd=root, capture_output=True)
    assert ruff.returncode == 2 and not ruff.stdout.strip()
