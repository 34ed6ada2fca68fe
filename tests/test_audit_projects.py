"""`seamfix audit` over several projects, as `seamfix lint` and `seamfix apply` (ruff's hierarchical
configuration): each changed file is judged under the configuration of the project that governs it.

Differential: one repository holding a root project and two nested ones is audited as a whole, and each project's
files are audited again in a repository of their own (no nesting at all there). Every file must get the same
verdicts both ways, in both of audit's modes (two revisions, and a revision against the working tree), and the
seam's width must be the standalone widths added up."""

from __future__ import annotations

import subprocess
from pathlib import Path

from seamfix_testing import run_seamfix

ROOT_CONFIG = '[tool.seamfix]\nadapter = "fork/mla_seam.py"\n'
SUB_CONFIG = (  # its own adapter, excludes, per-file ignores, vocabulary and source root
    '[tool.seamfix]\nadapter = "src/pkg/seam.py"\nsrc = ["src"]\nextend-exclude = ["generated"]\n'
    'per-file-ignores = { "src/pkg/legacy.py" = ["SEAM001"] }\nextend-vocabulary = { fields = ["absorb_latents"] }\n'
)
OTHER_CONFIG = 'select = ["SEAM002"]\n'  # a seamfix.toml: only MLA imports are its leaks

DENSE = "def build(cfg):\n    return 'dense'\n"
DECIDES = "def build(cfg):\n    if cfg.multi_latent_attention:\n        return 'latent'\n    return 'dense'\n"
ABSORBS = "def build(cfg):\n    if cfg.absorb_latents:\n        return 'absorbed'\n    return 'dense'\n"
CALLS_SEAM = "from pkg import seam\n\n\ndef build(cfg):\n    return seam.uses_mla(cfg)\n"
SEAM = "def uses_mla(cfg):\n    return bool(cfg.multi_latent_attention)\n"
IMPORTS = "from megatron.core.transformer.multi_latent_attention import MLASelfAttention\n"

PROJECTS = {"": ROOT_CONFIG, "sub": SUB_CONFIG, "other": OTHER_CONFIG}
BASE = {
    "pyproject.toml": ROOT_CONFIG,
    "fork/__init__.py": "",
    "fork/mla_seam.py": SEAM,
    "fork/builder.py": DENSE,
    "fork/moving.py": DECIDES,  # moves into `sub`: gone from the root project, new to sub's
    "sub/pyproject.toml": SUB_CONFIG,
    "sub/src/pkg/__init__.py": "",
    "sub/src/pkg/seam.py": SEAM,
    "sub/src/pkg/builder.py": DENSE,
    "sub/src/pkg/legacy.py": DENSE,
    "sub/src/pkg/absorb.py": DENSE,
    "sub/generated/gen.py": DENSE,
    "other/seamfix.toml": OTHER_CONFIG,
    "other/mod.py": DENSE,
    "other/uses.py": DENSE,
}
HEAD = {
    **{path: text for path, text in BASE.items() if path != "fork/moving.py"},
    "fork/builder.py": DECIDES,  # a leak in the root project
    "sub/src/pkg/seam.py": SEAM + "\n\ndef latent(cfg):\n    if cfg.multi_latent_attention:\n        return 1\n",
    "sub/src/pkg/builder.py": CALLS_SEAM,  # a call into sub's own adapter: the seam at work
    "sub/src/pkg/legacy.py": DECIDES,  # SEAM001 ignored for it
    "sub/src/pkg/absorb.py": ABSORBS,  # MLA only in sub's vocabulary
    "sub/src/pkg/moved.py": DECIDES,
    "sub/generated/gen.py": DECIDES,  # excluded by sub
    "other/mod.py": DECIDES,  # a decision, but only SEAM002 is selected there
    "other/uses.py": IMPORTS + DENSE,
}
# what the whole repository's audit must say of each file (kind of each hunk, or the note)
EXPECTED = {
    "fork/builder.py": ["leak"],
    "fork/moving.py": ["narrowing"],
    "sub/src/pkg/seam.py": ["seam"],
    "sub/src/pkg/builder.py": ["generic", "generic"],
    "sub/src/pkg/legacy.py": ["generic"],
    "sub/src/pkg/absorb.py": ["leak"],
    "sub/src/pkg/moved.py": ["leak"],
    "sub/generated/gen.py": "not checked (include/exclude)",
    "other/mod.py": ["generic"],
    "other/uses.py": ["leak"],
}


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout


def write_tree(repo: Path, files: dict[str, str]) -> None:
    for path in git(repo, "ls-files").split():
        (repo / path).unlink()
    for path, text in files.items():
        (repo / path).parent.mkdir(parents=True, exist_ok=True)
        (repo / path).write_text(text)


def repository(repo: Path, base: dict[str, str], head: dict[str, str]) -> Path:
    """A repository with ``base`` on main and ``head`` on the checked-out branch `upgrade`."""
    repo.mkdir(parents=True)
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "user.email", "t@example.com")
    git(repo, "config", "user.name", "t")
    for branch, files in (("main", base), ("upgrade", head)):
        if branch != "main":
            git(repo, "checkout", "-qb", branch)
        write_tree(repo, files)
        git(repo, "add", "-A")
        git(repo, "commit", "-qm", branch)
    return repo


def own_files(files: dict[str, str], folder: str) -> dict[str, str]:
    """The files of the project at ``folder``, relative to it, without those of the projects nested in it."""
    prefix = folder + "/" if folder else ""
    deeper = [other + "/" for other in PROJECTS if other != folder and other.startswith(prefix)]
    return {
        path.removeprefix(prefix): text
        for path, text in files.items()
        if path.startswith(prefix) and not any(path.startswith(nested) for nested in deeper)
    }


def verdicts(report: dict, prefix: str = "") -> dict[str, object]:
    """Each file's verdicts (hunk kinds, MLA names, lines; or why it was not classified), by repository path."""
    return {
        prefix + file["path"]: (
            file["status"],
            file["note"],
            [(hunk["kind"], hunk["mla_names"], hunk["line"]) for hunk in file["hunks"]],
        )
        for file in report["files"]
    }


def audit(repo: Path, *args: str) -> tuple[int, dict]:
    result = run_seamfix("audit", "--format", "json", *args, cwd=repo)
    assert result.code in (0, 1), result.stderr
    return result.code, result.json()


def test_each_file_is_judged_as_its_own_project_audited_alone(tmp_path: Path) -> None:
    whole = repository(tmp_path / "whole", BASE, HEAD)
    alone = {
        folder: repository(tmp_path / f"alone-{folder or 'root'}", own_files(BASE, folder), own_files(HEAD, folder))
        for folder in PROJECTS
    }
    for mode in (["--since", "main", "--until", "upgrade"], ["--since", "main"]):  # two revisions; the working tree
        code, report = audit(whole, *mode)
        found = verdicts(report)
        assert {path: [kind for kind, _, _ in hunks] or note for path, (_, note, hunks) in found.items()} == EXPECTED
        assert found["fork/moving.py"][0] == "deleted" and found["sub/src/pkg/moved.py"][0] == "added"
        expected, widths = {}, []
        for folder, repo in alone.items():
            alone_code, alone_report = audit(repo, *mode)
            expected.update(verdicts(alone_report, folder + "/" if folder else ""))
            widths.append(alone_report["width"])
        assert found == expected
        assert code == 1 and report["totals"]["leak"] == 4
        for side in ("before", "after"):
            assert report["width"][side] == {key: sum(w[side][key] for w in widths) for key in widths[0][side]}
    # paths of two projects, none of them the root's: each path judged by its own project, the root's not audited
    _, two = audit(whole, "--since", "main", "sub/src/pkg", "other/uses.py")
    given = {path: verdict for path, verdict in expected.items() if path.startswith(("sub/src/pkg", "other/uses"))}
    assert verdicts(two) == given
    # a nested project given alone is reported as in its own repository
    _, sub = audit(whole, "--since", "main", "sub")
    assert verdicts(sub, "sub/") == {path: verdict for path, verdict in expected.items() if path.startswith("sub/")}
    assert sub["width"] == audit(alone["sub"], "--since", "main")[1]["width"]


def test_the_width_history_adds_up_each_project_under_its_own_configuration(tmp_path: Path) -> None:
    def widths(repo: Path) -> list[list[int]]:
        rows = run_seamfix("audit", "--history", "2", "--format", "json", cwd=repo).json()
        return [[row[key] for key in ("findings", "call_sites", "adapter_functions", "adapter_lines")] for row in rows]

    whole = widths(repository(tmp_path / "whole", BASE, HEAD))
    alone = [
        widths(repository(tmp_path / f"alone-{folder or 'root'}", own_files(BASE, folder), own_files(HEAD, folder)))
        for folder in PROJECTS
    ]
    assert whole == [[sum(column) for column in zip(*rows, strict=True)] for rows in zip(*alone, strict=True)]
    assert whole[0] != whole[1]


def test_a_broken_nested_configuration_is_one_error_and_the_other_projects_are_audited(tmp_path: Path) -> None:
    broken = "[tool.seamfix]\nadapter = 5\n"
    whole = repository(
        tmp_path / "whole", {**BASE, "sub/pyproject.toml": broken}, {**HEAD, "sub/pyproject.toml": broken}
    )
    result = run_seamfix("audit", "--since", "main", "--format", "json", cwd=whole)
    assert result.code == 2, result.stderr
    error = f"{whole}/sub/pyproject.toml: [tool.seamfix]: `adapter` must be a string, not int"
    assert result.stderr == f"seamfix: error: {error}\n"
    found = verdicts(result.json())
    assert {path: hunks for path, (_, _, hunks) in found.items() if not path.startswith("sub/")} == {
        "fork/builder.py": [("leak", ["multi_latent_attention"], 2)],
        "fork/moving.py": [("narrowing", ["multi_latent_attention"], 2)],
        "other/mod.py": [("generic", [], 2)],
        "other/uses.py": [("leak", ["MLASelfAttention", "multi_latent_attention"], 1)],
    }
    # sub's files are listed, not judged by the root's configuration in its stead
    assert {note for path, (_, note, hunks) in found.items() if path.startswith("sub/") and not hunks} == {
        "not audited: its project's configuration has an error"
    }
    assert not any(hunks for path, (_, _, hunks) in found.items() if path.startswith("sub/"))
    # `--config` makes one file govern every folder, as lint's: the nested files are the root's, judged by it
    governed = run_seamfix("audit", "--since", "main", "--format", "json", "--config", "pyproject.toml", cwd=whole)
    kinds = {file["path"]: [hunk["kind"] for hunk in file["hunks"]] for file in governed.json()["files"]}
    assert (governed.code, governed.stderr) == (1, "")
    assert kinds["sub/src/pkg/seam.py"] == kinds["sub/generated/gen.py"] == ["leak"]
    assert kinds["sub/src/pkg/moved.py"] == []  # a move within one project: a rename, followed


def test_a_configuration_above_the_repository_governs_its_files_only(tmp_path: Path) -> None:
    """Found as ruff finds it (the nearest above), the project's root above the repository's: its files are
    judged by it and named as in the repository, and nothing outside the repository is measured."""
    (tmp_path / "pyproject.toml").write_text('[tool.seamfix]\nadapter = "repo/fork/mla_seam.py"\n')
    (tmp_path / "elsewhere.py").write_text(DECIDES)  # in the project, not in the repository
    own = own_files(BASE, "")
    repo = repository(tmp_path / "repo", {**own, "pyproject.toml": ""}, {**own_files(HEAD, ""), "pyproject.toml": ""})
    code, report = audit(repo, "--since", "main")
    assert code == 1 and {file["path"]: [hunk["kind"] for hunk in file["hunks"]] for file in report["files"]} == {
        "fork/builder.py": ["leak"],
        "fork/moving.py": ["narrowing"],
    }
    assert report["width"]["after"]["findings"] == 1 and report["width"]["after"]["adapter_functions"] == 1
