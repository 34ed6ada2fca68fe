"""`seamfix audit` on a real git repository built in the test."""

import csv
import io
import os
import shutil
import subprocess
import sys
import tempfile

import pytest

from seamfix.audit.diff import hunks_between
from seamfix.audit.git import Git
from seamfix.audit.layout import Layout
from seamfix.audit.projects import Projects
from seamfix_testing import REPO, run_seamfix

ADAPTER = "def uses_mla(config):\n    return bool(config.multi_latent_attention)\n"
BUILDER = (
    "from fork import mla_seam\n\n\ndef build(cfg):\n    if mla_seam.uses_mla(cfg):\n        return 'latent'\n"
    "    return 'dense'\n"
)


def git(repo, *args):
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout


@pytest.fixture
def repo(tmp_path):
    repo = tmp_path / "repo"
    (repo / "fork").mkdir(parents=True)
    (repo / "pyproject.toml").write_text('[tool.seamfix]\nadapter = "fork/mla_seam.py"\n')
    (repo / "fork/__init__.py").write_text("")
    (repo / "fork/mla_seam.py").write_text(ADAPTER)
    (repo / "fork/builder.py").write_text(BUILDER)
    (repo / "fork/util.py").write_text("def helper(x):\n    return x + 1\n")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "user.email", "t@example.com")
    git(repo, "config", "user.name", "t")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "base")
    git(repo, "checkout", "-qb", "upgrade")
    return repo


def commit(repo, message):
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", message)


def audit_json(repo, *args):
    result = run_seamfix("audit", "--format", "json", *args, cwd=repo)
    return result.code, result.json()


def test_mla_conditional_added_in_a_builder_fails(repo):
    (repo / "fork/builder.py").write_text(
        BUILDER.replace("    return 'dense'", "    if cfg.kv_lora_rank:\n        return 1\n    return 'dense'")
    )
    code, report = audit_json(repo)  # default: merge-base with main .. working tree
    assert code == 1 and report["leaked"]
    (file,) = report["files"]
    assert file["path"] == "fork/builder.py" and file["status"] == "modified"
    assert [(h["kind"], h["mla_names"]) for h in file["hunks"]] == [("leak", ["kv_lora_rank"])]
    assert report["width"]["before"]["findings"] == 0 and report["width"]["after"]["findings"] == 1
    text = run_seamfix("audit", cwd=repo)
    assert (
        text.code == 1 and "fork/builder.py:7: MLA code added or changed outside the seam (kv_lora_rank)" in text.stdout
    )


def test_changes_only_in_the_adapter_pass(repo):
    (repo / "fork/mla_seam.py").write_text(
        ADAPTER + "\n\ndef uses_latent_cache(config):\n    return config.cache_mla_latents\n"
    )
    commit(repo, "adapter only")
    code, report = audit_json(repo, "--since", "main", "--until", "HEAD")
    assert code == 0 and not report["leaked"]
    assert report["totals"] == {"seam": 1, "leak": 0, "narrowing": 0, "generic": 0}
    assert report["width"]["after"]["adapter_functions"] == 2 and report["width"]["before"]["adapter_functions"] == 1
    assert report["width"]["after"]["call_sites"] == 1


def test_generic_changes_pass_and_comments_mentioning_mla_are_not_leaks(repo):
    (repo / "fork/util.py").write_text(
        "def helper(x):\n    # MLA would need x + 2 here, see mla_seam\n    return x + 1\n"
    )
    (repo / "fork/builder.py").write_text(BUILDER + "\n\ndef width(cfg):\n    return cfg.hidden_size\n")
    code, report = audit_json(repo, "--since", "main")
    assert code == 0 and report["totals"] == {"seam": 0, "leak": 0, "narrowing": 0, "generic": 2}


def test_mla_words_that_decide_nothing_are_not_leaks(repo):
    """A store into a config dict, a docstring, a log message and a keyword argument name MLA without
    deciding on it: only decision sites (what lint reports) are leaks."""
    (repo / "fork/util.py").write_text(
        'def helper(x, kwargs, cfg):\n    """Adds one; MLA (multi_latent_attention) would need two."""\n'
        "    kwargs['kv_lora_rank'] = 512\n    print('q_lora_rank set')\n"
        "    build(multi_latent_attention=cfg.multi_latent_attention)\n    return x + 1\n"
    )
    code, report = audit_json(repo, "--since", "main")
    assert code == 0 and report["totals"] == {"seam": 0, "leak": 0, "narrowing": 0, "generic": 1}, report


def test_a_changed_line_of_a_multi_line_decision_is_a_leak(repo):
    """The line changed names no MLA word, but it is part of a decision on MLA."""
    before = (
        "def f(cfg, a):\n    if (\n        a > 1\n        and cfg.multi_latent_attention\n    ):\n        return 1\n"
    )
    (repo / "fork/legacy.py").write_text(before)
    commit(repo, "legacy")
    (repo / "fork/legacy.py").write_text(before.replace("a > 1", "a > 2"))
    code, report = audit_json(repo, "--since", "HEAD")
    (hunk,) = report["files"][0]["hunks"]
    assert code == 1 and (hunk["kind"], hunk["mla_names"], hunk["line"]) == ("leak", ["multi_latent_attention"], 3)


def test_a_file_that_does_not_parse_mid_change_still_shows_its_leak(repo):
    (repo / "fork/util.py").write_text("def helper(x):\n    if x.q_lora_rank\n        return x + 1\n")
    code, report = audit_json(repo, "--since", "main")
    assert code == 1 and [(h["kind"], h["mla_names"]) for h in report["files"][0]["hunks"]] == [
        ("leak", ["q_lora_rank"])
    ]


def test_renamed_deleted_and_binary_files(repo):
    git(repo, "mv", "fork/util.py", "fork/helpers.py")
    git(repo, "rm", "-q", "fork/builder.py")
    (repo / "fork/weights.bin").write_bytes(bytes(range(256)) * 4)
    (repo / "fork/notes.txt").write_text("multi_latent_attention everywhere\n")
    commit(repo, "shuffle")
    code, report = audit_json(repo, "--since", "main", "--until", "upgrade")
    by_path = {f["path"]: f for f in report["files"]}
    assert (
        by_path["fork/helpers.py"]["status"] == "renamed" and by_path["fork/helpers.py"]["old_path"] == "fork/util.py"
    )
    assert by_path["fork/weights.bin"]["note"] == "binary"
    assert by_path["fork/notes.txt"]["note"].startswith("not checked")
    deleted = by_path["fork/builder.py"]
    assert deleted["status"] == "deleted"
    # Deleting a builder that called the seam is generic: no MLA name was on its removed lines.
    assert {h["kind"] for h in deleted["hunks"]} == {"generic"}
    assert code == 0 and report["width"]["after"]["call_sites"] == 0


def test_removing_mla_code_outside_the_seam_is_narrowing_not_a_leak(repo):
    (repo / "fork/legacy.py").write_text("def f(cfg):\n    return 1 if cfg.multi_latent_attention else 0\n")
    commit(repo, "legacy")
    git(repo, "rm", "-q", "fork/legacy.py")
    commit(repo, "drop legacy")
    code, report = audit_json(repo, "--since", "HEAD~1", "--until", "HEAD")
    (hunk,) = report["files"][0]["hunks"]
    assert code == 0 and (hunk["kind"], hunk["mla_names"]) == ("narrowing", ["multi_latent_attention"])
    text = run_seamfix("audit", "--since", "HEAD~1", "--until", "HEAD", cwd=repo).stdout
    assert "fork/legacy.py:2: MLA code removed from outside the seam (multi_latent_attention)" in text
    assert "result: the seam held and narrowed: 1 hunk took MLA code out of the code outside it" in text


def test_mla_code_renamed_out_of_the_seam_an_excluded_folder_or_a_test_file_leaks(repo):
    """A rename keeps no hunks of an unedited file: where its new path is judged otherwise, the file is new there."""
    (repo / "pyproject.toml").write_text(
        '[tool.seamfix]\nadapter = "fork/mla_seam.py"\nallow = ["**/fused_mla_*.py"]\nextend-exclude = ["examples"]\n'
    )
    mla_if = "def f(cfg):\n    if cfg.multi_latent_attention:\n        return 1\n    return 0\n"
    moves = {"fork/fused_mla_attn.py": "fork/attn.py", "examples/run.py": "fork/run.py", "tests/test_x.py": "fork/x.py"}
    for number, old in enumerate(moves):
        (repo / old).parent.mkdir(exist_ok=True)
        (repo / old).write_text(mla_if + f"# {number}\n")
    commit(repo, "homes of MLA code")
    for old, new in moves.items():
        git(repo, "mv", old, new)
    commit(repo, "moved into builders")
    code, report = audit_json(repo, "--since", "HEAD~1", "--until", "HEAD")
    by_path = {f["path"]: f for f in report["files"]}
    assert code == 1 and {by_path[old]["status"] for old in moves} == {"deleted"}
    for new in moves.values():
        assert by_path[new]["status"] == "added"
        assert [(h["kind"], h["mla_names"]) for h in by_path[new]["hunks"]] == [("leak", ["multi_latent_attention"])]


def test_mla_code_let_in_by_a_configuration_edit_still_leaks(repo):
    """The configuration is the working tree's; one that the change widens does not hide the MLA code it lets in."""
    mla_if = "def f(cfg):\n    if cfg.multi_latent_attention:\n        return 1\n    return 0\n"
    for name in ("allowed", "ignored", "excluded", "sub/adapter"):
        (repo / "fork" / f"{name}.py").parent.mkdir(exist_ok=True)
        (repo / "fork" / f"{name}.py").write_text("def f(cfg):\n    return 0\n")
    commit(repo, "builders")
    (repo / "pyproject.toml").write_text(
        '[tool.seamfix]\nadapter = "fork/mla_seam.py"\nallow = ["fork/allowed.py"]\n'
        'extend-exclude = ["fork/excluded.py"]\nextend-per-file-ignores = { "fork/ignored.py" = ["SEAM001"] }\n'
    )
    (repo / "fork/sub/pyproject.toml").write_text('[tool.seamfix]\nadapter = "adapter.py"\n')
    for name in ("allowed", "ignored", "excluded", "sub/adapter"):
        (repo / "fork" / f"{name}.py").write_text(mla_if)
    commit(repo, "MLA code, and a configuration that lets it in")
    code, report = audit_json(repo, "--since", "HEAD~1", "--until", "HEAD")
    leaked = {f["path"]: f["note"] for f in report["files"] if f["hunks"] and f["hunks"][0]["kind"] == "leak"}
    assert code == 1 and sorted(leaked) == [
        f"fork/{name}.py" for name in ("allowed", "excluded", "ignored", "sub/adapter")
    ]
    assert set(leaked.values()) == {
        f"a leak under the configuration at {report['since'][:12]}, which this change widens"
    }


def test_a_configuration_edit_that_lets_mla_code_already_there_out_of_the_check_leaks(repo):
    (repo / "fork/legacy.py").write_text("def f(cfg):\n    if cfg.multi_latent_attention:\n        return 1\n")
    commit(repo, "MLA code lint reports")
    (repo / "pyproject.toml").write_text('[tool.seamfix]\nadapter = "fork/mla_seam.py"\nallow = ["fork/legacy.py"]\n')
    code, report = audit_json(repo, "--since", "HEAD")
    (file,) = [f for f in report["files"] if f["path"] == "fork/legacy.py"]
    assert code == 1 and file["status"] == "unchanged"
    assert [(h["kind"], h["mla_names"], h["line"]) for h in file["hunks"]] == [("leak", ["multi_latent_attention"], 2)]


def test_a_base_revision_naming_paths_out_of_its_tree_writes_nothing_there(repo, tmp_path, monkeypatch):
    """A crafted commit (``git mktree`` takes a ``..`` entry) cannot make audit write beside its scratch folder."""

    def plumbing(*args, stdin=""):
        return subprocess.run(["git", *args], cwd=repo, input=stdin, check=True, capture_output=True, text=True)

    toml = plumbing("hash-object", "-w", "--stdin", stdin="[tool.seamfix]\n").stdout.strip()
    planted = plumbing("mktree", stdin=f"100644 blob {toml}\tevil.toml\n").stdout.strip()
    outside = plumbing("mktree", stdin=f"040000 tree {planted}\tplanted\n").stdout.strip()
    tree = plumbing("mktree", stdin=git(repo, "ls-tree", "HEAD") + f"040000 tree {outside}\t..\n").stdout.strip()
    crafted = plumbing("commit-tree", tree, "-m", "crafted").stdout.strip()
    assert "../planted/evil.toml" in git(repo, "ls-tree", "-r", "--name-only", crafted)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    git_repo = Git(repo)
    with Projects(git_repo, repo, None, []).configured_at(crafted) as before:
        assert before is not None
    assert os.listdir(scratch) == []


def test_a_configuration_edit_that_widens_nothing_changes_no_verdict(repo):
    """The base revision's configuration is read with its folders (a src layout's default `src`)."""
    (repo / "src/pkg").mkdir(parents=True)
    config = '[tool.seamfix]\nadapter = "src/pkg/mla_seam.py"\n'
    (repo / "pyproject.toml").write_text(config)
    (repo / "src/pkg/mla_seam.py").write_text(ADAPTER)
    (repo / "src/pkg/builder.py").write_text("def build(cfg):\n    return 0\n")
    commit(repo, "a src layout")
    (repo / "pyproject.toml").write_text(config + 'cache-dir = ".cache"\n')
    (repo / "src/pkg/builder.py").write_text(
        "from pkg.mla_seam import uses_mla\n\n\ndef build(cfg):\n    return 1 if uses_mla(cfg) else 0\n"
    )
    code, report = audit_json(repo, "--since", "HEAD")
    assert code == 0 and report["totals"]["leak"] == 0
    git_repo = Git(repo)
    projects = Projects(git_repo, repo, None, [])
    with projects.configured_at(git_repo.resolve("HEAD")) as before:
        assert before.owner("src/pkg/builder.py").judgement("src/pkg/builder.py") == projects.owner(
            "src/pkg/builder.py"
        ).judgement("src/pkg/builder.py")


def test_a_symbolic_link_is_judged_by_what_it_leads_to(repo):
    """Lint reads a linked file through its link; git diffs the path the link names."""
    (repo / "pyproject.toml").write_text(
        '[tool.seamfix]\nadapter = "fork/mla_seam.py"\nallow = ["fork/fused_mla_*.py"]\n'
    )
    (repo / "fork/fused_mla_attn.py").write_text("def f(cfg):\n    if cfg.multi_latent_attention:\n        return 1\n")
    (repo / "fork/attn.py").symlink_to("util.py")
    commit(repo, "a link to generic code")
    (repo / "fork/attn.py").unlink()
    (repo / "fork/attn.py").symlink_to("fused_mla_attn.py")
    commit(repo, "the link now leads to the seam's MLA code")
    code, report = audit_json(repo, "--since", "HEAD~1", "--until", "HEAD")
    (file,) = report["files"]
    assert code == 1 and [(h["kind"], h["mla_names"]) for h in file["hunks"]] == [("leak", ["multi_latent_attention"])]


def test_a_changed_mla_decision_is_a_leak_even_with_the_same_names(repo):
    (repo / "fork/legacy.py").write_text("def f(cfg):\n    return 1 if cfg.q_lora_rank > 0 else 0\n")
    commit(repo, "legacy")
    (repo / "fork/legacy.py").write_text("def f(cfg):\n    return 1 if cfg.q_lora_rank > 8 else 0\n")
    code, report = audit_json(repo, "--since", "HEAD")
    assert code == 1 and [h["kind"] for h in report["files"][0]["hunks"]] == ["leak"]


FED = (
    "def f(cfg, hf):\n    KEY = {key}\n    use = {field}\n    also = use\n    if also or KEY in hf:\n        return 1\n"
)
ATTRIBUTE = (
    "class Block:\n    def __init__(self, cfg):\n        self._latent = cfg.{field}\n\n"
    "    def forward(self, x):\n        return x if self._latent else -x\n"
)
FED_BASE = FED.format(key='"kv_lora_rank"', field="cfg.multi_latent_attention")


@pytest.mark.parametrize(
    ("old", "new", "leaked"),
    [
        (FED_BASE, FED.format(key='"kv_lora_rank"', field="cfg.cache_mla_latents"), ["cache_mla_latents"]),
        (FED_BASE, FED.format(key='"q_lora_rank"', field="cfg.multi_latent_attention"), ['"q_lora_rank"']),
        (FED.format(key="'x'", field="cfg.flag"), FED_BASE, ['"kv_lora_rank"', "multi_latent_attention"]),
        (FED_BASE + "\n\ndef g(cfg):\n    use = cfg.q_lora_rank\n", FED_BASE, []),
        (
            ATTRIBUTE.format(field="multi_latent_attention"),
            ATTRIBUTE.format(field="cache_mla_latents"),
            ["cache_mla_latents"],
        ),
    ],
    ids=[
        "alias-retargeted",
        "label-key-changed",
        "aliases-made-a-decision",
        "another-functions-binding-removed",
        "attribute-alias-retargeted",
    ],
)
def test_a_changed_assignment_feeding_a_decision_is_a_leak(repo, old, new, leaked):
    (repo / "fork/legacy.py").write_text(old)
    commit(repo, "legacy")
    (repo / "fork/legacy.py").write_text(new)
    code, report = audit_json(repo, "--since", "HEAD")
    hunks = report["files"][0]["hunks"]
    assert (code, sorted(name for h in hunks if h["kind"] == "leak" for name in h["mla_names"])) == (
        int(bool(leaked)),
        leaked,
    )


def test_routing_into_the_seam_with_mla_arguments_is_narrowing(repo):
    (repo / "fork/legacy.py").write_text(
        "def f(cfg, use_mla):\n    if use_mla and cfg.q_lora_rank:\n        return 1\n"
    )
    commit(repo, "legacy")
    (repo / "fork/legacy.py").write_text(
        "from fork import mla_seam\n\n\ndef f(cfg, use_mla):\n    if mla_seam.uses_mla(use_mla):\n        return 1\n"
    )
    code, report = audit_json(repo, "--since", "HEAD")
    assert code == 0 and report["totals"]["narrowing"] == 1 and report["totals"]["leak"] == 0


def test_adoption_of_the_seam_on_the_demo_passes(tmp_path):
    demo = tmp_path / "demo"
    shutil.copytree(REPO / "fixtures" / "demo", demo)
    git(demo, "init", "-q", "-b", "main")
    git(demo, "config", "user.email", "t@example.com")
    git(demo, "config", "user.name", "t")
    commit(demo, "the fork as it is")
    git(demo, "checkout", "-qb", "adopt")
    applied = run_seamfix("apply", cwd=demo)
    assert applied.code in (0, 1) and "Rewrote" in applied.stderr, applied.stderr  # 1: findings it left, named
    commit(demo, "adopt the seam")
    code, report = audit_json(demo, "--since", "main", "--until", "HEAD")
    totals = report["totals"]
    assert code == 0 and not report["leaked"], report
    # each routed decision is a narrowing; an arm moved whole leaves generic code (its MLA classes decide nothing)
    assert totals["leak"] == 0 and totals["narrowing"] >= 8 and totals["seam"] >= 1
    left = applied.stderr.count("\n  ") if "Left" in applied.stderr else 0  # findings apply named and left
    assert report["width"]["before"]["findings"] > report["width"]["after"]["findings"] == left


def test_fifo_and_symlink_loop_in_the_working_tree_are_errors_not_hangs(repo):
    os.mkfifo(repo / "fork/pipe.py")
    os.symlink("loop.py", repo / "fork/loop.py")
    result = run_seamfix("audit", "--since", "main", cwd=repo)
    assert result.code == 2 and "fork/pipe.py: cannot read: not a regular file" in result.stderr
    assert "fork/loop.py: cannot read: Too many levels of symbolic links" in result.stderr
    assert "result: the seam held" in result.stdout


def test_a_path_that_does_not_exist_is_an_error(repo):
    result = run_seamfix("audit", "--since", "main", "fork/nope.py", cwd=repo)
    assert result.code == 2 and "fork/nope.py: No such file or directory" in result.stderr
    git(repo, "rm", "-q", "fork/util.py")  # gone from the disk, but there at the base: a real path
    assert run_seamfix("audit", "--since", "main", "fork/util.py", cwd=repo).code == 0
    outside = run_seamfix("audit", "--since", "main", "..", cwd=repo)
    assert (outside.code, outside.stdout) == (2, "")
    assert outside.stderr == f"seamfix: error: ..: outside the git repository at {repo}\n"


def test_only_the_blobs_of_checked_files_are_read(repo):
    (repo / "fork/weights.bin").write_bytes(bytes(range(256)) * 64)
    commit(repo, "weights")
    files = Git(repo).tree_files("HEAD", lambda path: path.endswith(".py"))
    assert sorted(files) == ["fork/__init__.py", "fork/builder.py", "fork/mla_seam.py", "fork/util.py"]
    assert files["fork/util.py"] == b"def helper(x):\n    return x + 1\n"


def test_unknown_revision_is_a_clear_error(repo):
    result = run_seamfix("audit", "--since", "no-such-rev", cwd=repo)
    assert result.code == 2 and result.stderr.strip() == "seamfix: error: unknown revision `no-such-rev`"
    outside = run_seamfix("audit", cwd=repo.parent)
    assert outside.code == 2 and "not a git repository" in outside.stderr


@pytest.mark.parametrize("option", ["--since", "--until"])
def test_an_empty_revision_is_an_error_not_the_default(repo, option):
    # `--since "$BASE_SHA"` with the variable unset must not audit against another base, or the working tree
    result = run_seamfix("audit", f"{option}=", cwd=repo)
    assert result.code == 2 and f"Invalid value for '{option}': an empty revision" in result.stderr


def test_markdown_for_a_pr_comment(repo):
    (repo / "fork/builder.py").write_text(
        BUILDER.replace("return 'dense'", "return 'mla' if cfg.q_lora_rank else 'dense'")
    )
    result = run_seamfix("audit", "--format", "markdown", cwd=repo)
    assert result.code == 1
    assert result.stdout.startswith("### seamfix audit: :x: the seam leaked: 1 hunk added or changed MLA code")
    assert "| `fork/builder.py` | modified | 0 | **1** | 0 | 0 |" in result.stdout
    assert "| findings outside the seam | 0 | 1 | +1 |" in result.stdout


def test_history_table_and_chart(repo):
    (repo / "fork/builder.py").write_text(
        BUILDER.replace("return 'dense'", "return 'mla' if cfg.q_lora_rank else 'dense'")
    )
    commit(repo, "leak")
    rows = list(csv.DictReader(io.StringIO(run_seamfix("audit", "--history", "5", cwd=repo).stdout)))
    assert [(r["subject"], r["findings"], r["adapter_functions"]) for r in rows] == [
        ("base", "0", "1"),
        ("leak", "1", "1"),
    ]
    assert run_seamfix("audit", "--history", "1", "--format", "json", cwd=repo).json()[0]["subject"] == "leak"
    result = run_seamfix("audit", "--history", "5", "--format", "html", "-o", "width.html", cwd=repo)
    page = (repo / "width.html").read_text()
    assert result.code == 0 and page.startswith("<!doctype html>") and page.count("<polyline") == 4
    assert "<script" not in page and "http://www.w3.org/2000/svg" in page
    bad = run_seamfix("audit", "--history", "5", "--format", "markdown", cwd=repo)
    assert bad.code == 2


def test_untracked_files_of_the_working_tree_are_audited_as_added(repo):
    (repo / "fork/new_builder.py").write_text("def f(cfg):\n    return 2 if cfg.kv_lora_rank else 1\n")
    (repo / ".gitignore").write_text("scratch/\n")
    (repo / "scratch").mkdir()
    (repo / "scratch/try.py").write_text("x = cfg.multi_latent_attention\n")
    code, report = audit_json(repo)
    by_path = {f["path"]: f for f in report["files"]}
    assert code == 1 and by_path["fork/new_builder.py"]["status"] == "added"
    assert [h["kind"] for h in by_path["fork/new_builder.py"]["hunks"]] == ["leak"]
    assert "scratch/try.py" not in by_path  # git-ignored
    assert audit_json(repo, "--since", "main", "--until", "HEAD")[0] == 0  # commits only: not there


def test_a_python_file_git_calls_binary_is_still_classified(repo):
    # A NUL byte (lint reports the file as SEAM901) or a `-diff` attribute makes git print "Binary files
    # differ" with no hunks: the hunks are found from the two blobs, so such a file cannot hide a leak.
    (repo / "fork/legacy.py").write_bytes(b"x = 1\0\ndef f(cfg):\n    return 1\n")
    (repo / "fork/util.py").write_text("def helper(x):\n    return x + 2\n")
    commit(repo, "binary-looking python")
    (repo / "fork/legacy.py").write_bytes(b"x = 1\0\ndef f(cfg):\n    return 2 if cfg.kv_lora_rank else 1\n")
    (repo / ".gitattributes").write_text("fork/util.py -diff\n")
    (repo / "fork/util.py").write_text("def helper(y):\n    return x + 2\nZ = 0\n\n\nY = cfg.q_lora_rank or 0\n")
    code, report = audit_json(repo, "--since", "HEAD")
    by_path = {f["path"]: f for f in report["files"]}
    assert code == 1, report
    assert [(h["kind"], h["mla_names"], h["line"]) for h in by_path["fork/legacy.py"]["hunks"]] == [
        ("leak", ["kv_lora_rank"], 3)
    ]
    assert by_path["fork/legacy.py"]["note"] == by_path["fork/util.py"]["note"] == ""
    (repo / ".gitattributes").unlink()  # the hunks are the ones git shows of a text file
    assert (
        by_path["fork/util.py"]["hunks"]
        == {f["path"]: f for f in audit_json(repo, "--since", "HEAD")[1]["files"]}["fork/util.py"]["hunks"]
    )
    assert [(h["kind"], h["old_start"], h["new_start"], h["new_count"]) for h in by_path["fork/util.py"]["hunks"]] == [
        ("generic", 1, 1, 1),
        ("leak", 2, 3, 4),
    ]


def test_no_common_ancestor_with_the_default_branch_names_it(repo, tmp_path):
    (repo / "fork/util.py").write_text("def helper(x):\n    return x + 2\n")
    commit(repo, "upgrade")
    clone = tmp_path / "clone"  # CI's shallow checkout of the PR branch, main fetched shallow too
    subprocess.run(["git", "clone", "-q", "--depth", "1", "--branch", "upgrade", f"file://{repo}", str(clone)],
                   check=True, capture_output=True)  # fmt: skip
    git(clone, "fetch", "-q", "--depth", "1", "origin", "main:main")
    git(clone, "remote", "set-head", "origin", "-d")
    result = run_seamfix("audit", cwd=clone)
    assert (result.code, result.stdout) == (2, "")
    assert result.stderr == (
        "seamfix: error: HEAD and main have no common ancestor in this clone (a shallow clone? fetch more "
        "history, e.g. `git fetch --unshallow`), or pass --since REV\n"
    )


def test_unusual_paths_keep_the_text_and_markdown_layout(repo):
    leak = "def f(cfg):\n    return 2 if cfg.kv_lora_rank else 1\n"
    for name in ("a|b.py", "nl\nx.py", "tick`s.py", "-dash.py"):
        (repo / "fork" / name).write_text(leak)
    text = run_seamfix("audit", cwd=repo).stdout
    assert '    "fork/nl\\nx.py":2: MLA code added or changed outside the seam (kv_lora_rank)' in text.splitlines()
    markdown = run_seamfix("audit", "--format", "markdown", cwd=repo).stdout.splitlines()
    rows = [line for line in markdown if "| added |" in line]
    assert [row.replace("\\|", "").count("|") for row in rows] == [7] * 4, rows
    assert "| `fork/a\\|b.py` | added | 0 | **1** | 0 | 0 |" in rows
    assert "| ``fork/tick`s.py`` | added | 0 | **1** | 0 | 0 |" in rows
    assert '| `"fork/nl\\nx.py"` | added | 0 | **1** | 0 | 0 |' in rows
    assert audit_json(repo, "--", "fork/-dash.py")[1]["files"][0]["path"] == "fork/-dash.py"


def test_a_submodule_is_named_as_one(repo, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    (other / "m.py").write_text("x = cfg.kv_lora_rank if cfg.kv_lora_rank else 1\n")
    git(other, "init", "-q")
    git(other, "add", ".")
    git(other, "-c", "user.email=t@example.com", "-c", "user.name=t", "commit", "-qm", "other")
    git(repo, "-c", "protocol.file.allow=always", "submodule", "add", "-q", str(other), "fork/vendored")
    commit(repo, "vendor")
    code, report = audit_json(repo, "--since", "main", "--until", "HEAD")
    by_path = {f["path"]: f for f in report["files"]}
    assert code == 0 and (by_path["fork/vendored"]["status"], by_path["fork/vendored"]["note"]) == (
        "added",
        "submodule (audit its own repository)",
    )


def test_reformatting_an_mla_decision_is_no_leak(repo):
    # Line endings, spacing, line breaks inside brackets and comments change no code: a formatter run or a
    # line-ending normalization in an upgrade PR must not read as changed MLA decisions.
    (repo / "fork/crlf.py").write_bytes(b"def f(cfg):\r\n    return 1 if cfg.multi_latent_attention else 0\r\n")
    (repo / "fork/wrap.py").write_text("def f(cfg, y):\n    x = (cfg.q_lora_rank > 0 and y)\n    return x\n")
    (repo / "fork/note.py").write_text("def f(cfg):\n    if cfg.kv_lora_rank:\n        return 1\n")
    commit(repo, "before formatting")
    (repo / "fork/crlf.py").write_bytes(b"def f(cfg):\n    return 1 if cfg.multi_latent_attention else 0\n")
    (repo / "fork/wrap.py").write_text(
        "def f(cfg, y):\n    x = (\n        cfg.q_lora_rank  >  0\n        and y\n    )\n    return x\n"
    )
    (repo / "fork/note.py").write_text("def f(cfg):\n    if cfg.kv_lora_rank:  # latent KV\n        return 1\n")
    code, report = audit_json(repo, "--since", "HEAD")
    assert code == 0, report
    assert {f["path"]: [h["kind"] for h in f["hunks"]] for f in report["files"]} == {
        "fork/crlf.py": ["generic"],
        "fork/note.py": ["generic"],
        "fork/wrap.py": ["generic"],
    }
    (repo / "fork/note.py").write_text("def f(cfg):\n    if cfg.kv_lora_rank or 1:  # latent KV\n        return 1\n")
    assert audit_json(repo, "--since", "HEAD")[0] == 1  # a changed decision still leaks
    (repo / "fork/block.py").write_text(
        "def f(cfg):\n    if cfg.q:\n        pass\n    if cfg.kv_lora_rank:\n        return 1\n"
    )
    commit(repo, "a decision after a block")
    (repo / "fork/block.py").write_text(
        "def f(cfg):\n    if cfg.q:\n        pass\n        if cfg.kv_lora_rank:\n            return 1\n"
    )
    assert audit_json(repo, "--since", "HEAD")[0] == 1  # and so does one moved into another block


# Code as written before a formatter: two-space blocks, wrapped calls, redundant parentheses, one-line bodies,
# single quotes, a misaligned docstring, a backslash continuation; MLA decisions all over it.
UNFORMATTED = """import os
def build(cfg, x):
  '''Build.
      Indented oddly.'''
  if cfg.multi_latent_attention and (x > 1):
      y = 1
  else:
      y = 2

  if (cfg.q_lora_rank is None):   # no q LoRA
      z = 3
  return foo(cfg.kv_lora_rank, x,
             y, z)


class Layer:
    def f(self, cfg):
        rank = cfg.get('kv_lora_rank', 0)
        if rank > 0 and cfg.multi_latent_attention: return 1
        width = cfg.kv_lora_rank + \\
            cfg.qk_pos_emb_head_dim
        return {'a': 1, 'b': cfg.q_lora_rank if cfg.q_lora_rank else 0, 'c': width, 'd': 4, 'e': 5, 'fffffffff': 6}
"""


@pytest.mark.parametrize("formatter", [["ruff", "format"], ["black", "-q"]], ids=["ruff", "black"])
def test_a_formatter_run_is_no_leak_and_a_change_next_to_it_still_is(repo, formatter):
    # The trees compared are the code's, not its layout: a formatter run changes none, whatever it re-indents,
    # re-wraps or un-parenthesizes; a real change among its hunks is still found, and only that one.
    (repo / "fork/model.py").write_text(UNFORMATTED)
    commit(repo, "before formatting")
    subprocess.run([sys.executable, "-m", *formatter, "fork/model.py"], cwd=repo, check=True)
    assert git(repo, "diff", "-U0").count("\n@@") >= 4, "the formatter changed the file in several places"
    code, report = audit_json(repo, "--since", "HEAD")
    assert code == 0 and {h["kind"] for h in report["files"][0]["hunks"]} == {"generic"}, report
    formatted = (repo / "fork/model.py").read_text()
    (repo / "fork/model.py").write_text(formatted.replace("q_lora_rank is None", "q_lora_rank is not None"))
    code, report = audit_json(repo, "--since", "HEAD")
    leaks = [h for h in report["files"][0]["hunks"] if h["kind"] == "leak"]
    assert code == 1 and [h["mla_names"] for h in leaks] == [["q_lora_rank"]], report


def test_a_decision_moved_out_of_its_block_leaks_where_its_line_kept_its_text(repo):
    # Re-indented from two spaces to four, the inner `if` leaves `if cfg.q:` with its own line unchanged: git's
    # hunks hold only the lines below it, yet the decision moved.
    (repo / "fork/moved.py").write_text(
        "def f(cfg):\n  if cfg.q:\n    a = 1\n    if cfg.kv_lora_rank:\n      return 1\n  return 0\n"
    )
    commit(repo, "a decision inside a block")
    (repo / "fork/moved.py").write_text(
        "def f(cfg):\n    if cfg.q:\n        a = 1\n    if cfg.kv_lora_rank:\n        return 1\n    return 0\n"
    )
    assert "+    if cfg.kv_lora_rank:" not in git(repo, "diff", "-U0")
    code, report = audit_json(repo, "--since", "HEAD")
    assert code == 1 and [(h["kind"], h["line"]) for h in report["files"][0]["hunks"]] == [
        ("generic", 2),
        ("leak", 4),
    ], report


@pytest.mark.parametrize(
    "old, new, changed",
    [
        pytest.param(  # git splits the re-indented block at its blank line; the change beside it is one
            "def f(cfg):\n  if cfg.multi_latent_attention:\n      y = 1\n\n      y += 1\n  z = cfg.kv_lora_rank > 0\n",
            "def f(cfg):\n    if cfg.multi_latent_attention:\n        y = 1\n\n        y += 1\n"
            "    z = cfg.kv_lora_rank > 8\n",
            [([], []), ([6], [6])],
            id="re-indented-beside-a-change",
        ),
        pytest.param(
            "def f(cfg):\n    if cfg.q:\n        a = 1\n        if cfg.kv_lora_rank:\n            return 1\n",
            "def f(cfg):\n    if cfg.q:\n        a = 1\n    if cfg.kv_lora_rank:\n        return 1\n",
            [([4, 5], [4, 5])],
            id="moved-out-of-a-block",
        ),
        pytest.param(
            "def f(cfg):\n    if cfg.q:\n        a = 1\n    if cfg.kv_lora_rank:\n        return 1\n",
            "def f(cfg):\n    if cfg.q:\n        a = 1\n        if cfg.kv_lora_rank:\n            return 1\n",
            [([4, 5], [4, 5])],
            id="moved-into-a-block",
        ),
        pytest.param(  # git moves the `else:` line, not the decision's: the decision still changed blocks
            "def f(cfg):\n    if cfg.q:\n        a = 1\n        if cfg.kv_lora_rank:\n            return 1\n"
            "    else:\n        b = 2\n",
            "def f(cfg):\n    if cfg.q:\n        a = 1\n    else:\n        if cfg.kv_lora_rank:\n            return 1\n"
            "        b = 2\n",
            [([4, 5], []), ([], [5, 6])],
            id="moved-across-else",
        ),
        pytest.param(
            "def f(cfg):\n    if cfg.q:\n        a = 1\n        if cfg.kv_lora_rank:\n            return 1\n"
            "    elif cfg.z:\n        b = 2\n",
            "def f(cfg):\n    if cfg.q:\n        a = 1\n    elif cfg.z:\n        if cfg.kv_lora_rank:\n"
            "            return 1\n        b = 2\n",
            [([4, 5], []), ([], [5, 6])],
            id="moved-across-elif",
        ),
        pytest.param(  # the `if` changed (its body did): its parentheses alone change no tree
            "def f(cfg):\n    if (cfg.kv_lora_rank):\n        x = 1\n        return x\n",
            "def f(cfg):\n    if cfg.kv_lora_rank:\n        x = 1\n        return x + 1\n",
            [([], []), ([4], [4])],
            id="parentheses-of-a-changed-statement",
        ),
        pytest.param(  # two statements on one line: the changed one counts
            "def f(cfg):\n    a = cfg.q; b = 1 if cfg.kv_lora_rank else 2\n",
            "def f(cfg):\n    a = cfg.z; b = 1 if cfg.kv_lora_rank else 2\n",
            [([2], [2])],
            id="semicolon",
        ),
        pytest.param(
            'def f(cfg):\n    """Doc\n       more."""\n    return (1 if\n       cfg.kv_lora_rank else 2)\n\n\nX = 1\n',
            'def f(cfg):\n    """Doc\n    more."""\n    return 1 if cfg.kv_lora_rank else 2  # wrapped\n\n\nX = 2\n',
            [([], []), ([8], [7])],
            id="docstring-wrap-and-comment",
        ),
        pytest.param(
            "def f(cfg):\n    if cfg.kv_lora_rank:\n        a = 1\n    b = 2\n",
            "def f(cfg):\n    b = 2\n    if cfg.kv_lora_rank:\n        a = 1\n",
            [([], [2]), ([4], [])],
            id="reordered",
        ),
        pytest.param(  # the test of a one-line `if` is on its body's line
            "def f(cfg):\n    if cfg.a: return 1\n",
            "def f(cfg):\n    if cfg.kv_lora_rank: return 1\n",
            [([2], [2])],
            id="one-line-compound",
        ),
        pytest.param(  # a re-indented header over a changed body; then a changed header
            "def f(cfg):\n  if cfg.kv_lora_rank:\n      a = 1\n\n      b = 2\n",
            "def f(cfg):\n    if cfg.kv_lora_rank:\n        a = 1\n\n        b = 3\n",
            [([], []), ([5], [5])],
            id="header-re-indented",
        ),
        pytest.param(
            "def f(cfg):\n  if cfg.kv_lora_rank:\n      a = 1\n\n      b = 2\n",
            "def f(cfg):\n    if cfg.kv_lora_rank > 1:\n        a = 1\n\n        b = 3\n",
            [([2], [2]), ([5], [5])],
            id="header-changed",
        ),
        pytest.param(
            "def f(cfg):\n    if cfg.a:\n        x = 1\n    elif cfg.kv_lora_rank:\n        x = 2\n",
            "def f(cfg):\n    if cfg.a:\n        x = 1\n    if cfg.kv_lora_rank:\n        x = 2\n",
            [([4, 5], [4, 5])],
            id="elif-made-if",
        ),
        pytest.param(
            "def f(cfg):\n    try:\n        x = 1\n    except (KeyError):\n        x = cfg.kv_lora_rank\n\n"
            "    x += 1\n",
            "def f(cfg):\n    try:\n        x = 1\n    except KeyError:\n        x = cfg.kv_lora_rank\n\n    x += 2\n",
            [([], []), ([7], [7])],
            id="except-clause",
        ),
        pytest.param(  # a formatter's re-indent and a decision moved out of its block, in one change
            "def f(cfg):\n  if cfg.q:\n    a = 1\n    if cfg.kv_lora_rank:\n      return 1\n  return 0\n",
            "def f(cfg):\n    if cfg.q:\n        a = 1\n    if cfg.kv_lora_rank:\n        return 1\n    return 0\n",
            [([], []), ([4, 5], [4, 5])],
            id="re-indented-and-moved-out",
        ),
        pytest.param(
            "def f(cfg):\n  if cfg.q:\n    a = 1\n\n  if cfg.kv_lora_rank:\n    return 1\n  return 0\n",
            "def f(cfg):\n    if cfg.q:\n        a = 1\n\n        if cfg.kv_lora_rank:\n            return 1\n"
            "    return 0\n",
            [([], []), ([5, 6], [5, 6])],
            id="re-indented-and-moved-in",
        ),
        pytest.param(  # a line of a string that reads as a comment is code; a comment is not
            'def f(cfg):\n    x = """a\n# b\n"""\n    # note\n    return x if cfg.kv_lora_rank else 0\n',
            'def f(cfg):\n    x = """a\n# c\n"""\n    # a note\n    return x if cfg.kv_lora_rank else 0\n',
            [([2, 3, 4], [2, 3, 4]), ([], [])],
            id="comment-like-string-line",
        ),
        pytest.param(  # definitions reordered: what each decides is the same
            "def f(cfg):\n    return 1 if cfg.kv_lora_rank else 0\n\n\ndef g(x):\n    return x\n",
            "def g(x):\n    return x\n\n\ndef f(cfg):\n    return 1 if cfg.kv_lora_rank else 0\n",
            [([], []), ([], [])],
            id="definitions-reordered",
        ),
        pytest.param(  # two definitions of one name: the later one wins, so their order decides
            "def f(cfg):\n    return cfg.kv_lora_rank\n\n\ndef f(cfg):\n    return 0\n",
            "def f(cfg):\n    return 0\n\n\ndef f(cfg):\n    return cfg.kv_lora_rank\n",
            [([], [1, 2]), ([5, 6], [])],
            id="same-name-definitions-reordered",
        ),
        pytest.param(
            "def f(cfg):\n    if cfg.kv_lora_rank:\n        x = 1\n    else:\n        x = 2\n    return x\n",
            "def f(cfg):\n    x = 1 if cfg.kv_lora_rank else 2\n    return x\n",
            [([], [])],
            id="if-made-a-conditional-expression",
        ),
        pytest.param(
            "def f(cfg):\n    if cfg.a:\n        return 0\n    elif cfg.kv_lora_rank:\n        return 1\n"
            "    else:\n        return 2\n",
            "def f(cfg):\n    return 0 if cfg.a else 1 if cfg.kv_lora_rank else 2\n",
            [([], [])],
            id="elif-returns-made-conditional-expressions",
        ),
        pytest.param(  # the arms swapped: a changed decision
            "def f(cfg):\n    if cfg.kv_lora_rank:\n        x = 1\n    else:\n        x = 2\n    return x\n",
            "def f(cfg):\n    x = 2 if cfg.kv_lora_rank else 1\n    return x\n",
            [([2, 3, 4, 5], [2])],
            id="conditional-expression-arms-swapped",
        ),
        pytest.param("def f(cfg:\n    pass\n", "def f(cfg):\n    pass\n", [None], id="a-side-does-not-parse"),
    ],
)
def test_each_hunk_counts_the_lines_of_the_statements_it_changes(old, new, changed):
    # ([], []) for a hunk that only lays code out anew; a statement moved counts whole, its first line included
    # where git left that line's text as it was; None where a side does not parse (tokens are compared then)
    hunks = hunks_between(old.encode(), new.encode())
    layout = Layout(old.encode(), new.encode(), hunks)
    assert [layout.changed_lines(index) for index in range(len(hunks))] == changed


def test_paths_are_literal_not_git_pathspecs(repo):
    leak = "def f(cfg):\n    return 2 if cfg.kv_lora_rank else 1\n"
    for name in ("[ab].py", "a.py", "*.py"):
        (repo / "fork" / name).write_text(leak)
    commit(repo, "names git would read as globs")
    for given in ("fork/[ab].py", "fork/*.py"):
        code, report = audit_json(repo, "--since", "main", "--until", "HEAD", given)
        assert [f["path"] for f in report["files"]] == [given], given
    (repo / "fork/a.py").write_text(leak + "X = 1\n")  # untracked listing and working tree, too
    assert [f["path"] for f in audit_json(repo, "--since", "main", "fork/[ab].py")[1]["files"]] == ["fork/[ab].py"]


@pytest.mark.parametrize("setting", ["diff.mnemonicPrefix", "diff.noprefix"])
def test_the_users_diff_prefix_settings_change_no_path(repo, setting):
    git(repo, "config", setting, "true")
    (repo / "fork/util.py").write_text("def helper(x):\n    return x + 1 if x.kv_lora_rank else x\n")
    code, report = audit_json(repo)  # the working tree: mnemonic prefixes would be c/ and w/
    assert code == 1 and [(f["path"], f["status"]) for f in report["files"]] == [("fork/util.py", "modified")]


@pytest.mark.parametrize("widened", ["config", "environment"])
def test_hunks_stay_apart_whatever_the_users_diff_context(repo, monkeypatch, widened):
    # one hunk changing a decision and one deleting another: merged, the deletion would hide the change
    (repo / "fork/legacy.py").write_text(
        "def f(cfg):\n    if cfg.q_lora_rank > 0:\n        a = 1\n    if cfg.q_lora_rank > 1:\n        b = 2\n"
    )
    commit(repo, "legacy")
    (repo / "fork/legacy.py").write_text("def f(cfg):\n    if cfg.q_lora_rank > 8:\n        a = 1\n")
    if widened == "config":
        git(repo, "config", "diff.interHunkContext", "10")
    else:
        monkeypatch.setenv("GIT_DIFF_OPTS", "--unified=3")
    code, report = audit_json(repo, "--since", "HEAD")
    assert code == 1 and [h["kind"] for h in report["files"][0]["hunks"]] == ["leak", "narrowing"]


def test_a_decision_deleted_beside_a_changed_one_does_not_hide_the_change(repo):
    (repo / "fork/legacy.py").write_text(
        "def f(cfg):\n    x = 1 if cfg.q_lora_rank > 0 else 2\n    y = 1 if cfg.q_lora_rank > 1 else 2\n"
    )
    commit(repo, "legacy")
    (repo / "fork/legacy.py").write_text("def f(cfg):\n    x = 1 if cfg.q_lora_rank > 8 else 2\n")
    code, report = audit_json(repo, "--since", "HEAD")
    assert code == 1 and [h["kind"] for h in report["files"][0]["hunks"]] == ["leak"]
