"""The four output formats, --statistics, and exit codes as ruff's."""

import re

import pytest

from seamfix_testing import MLA_IF, run_seamfix

SOURCE = {
    "pkg/model.py": (
        "def f(cfg, table):\n    x = 1 if cfg.multi_latent_attention else 2\n    return table[cfg.q_lora_rank]\n"
    ),
    "pkg/b.py": MLA_IF,
    "pkg/clean.py": "x = 1\n",
}


@pytest.fixture
def root(project):
    return project(SOURCE)


def test_text_lines_are_sorted_and_ruff_shaped(root):
    result = run_seamfix("lint", cwd=root)
    assert result.code == 1
    *lines, summary = result.stdout.splitlines()
    assert summary == "Found 3 findings."
    assert [re.match(r"^([^:]+):(\d+):(\d+): (SEAM\d{3}) \S", line).groups() for line in lines] == [
        ("pkg/b.py", "2", "8", "SEAM001"),
        ("pkg/model.py", "2", "14", "SEAM001"),
        ("pkg/model.py", "3", "18", "SEAM001"),
    ]


def test_json_has_positions_codes_and_relative_paths(root):
    rows = run_seamfix("lint", "--format", "json", cwd=root / "pkg").json()
    assert [
        {k: row[k] for k in ("path", "line", "column", "end_line", "end_column", "code", "name")} for row in rows
    ] == [
        {
            "path": "b.py",
            "line": 2,
            "column": 8,
            "end_line": 2,
            "end_column": 34,
            "code": "SEAM001",
            "name": "mla-conditional",
        },
        {
            "path": "model.py",
            "line": 2,
            "column": 14,
            "end_line": 2,
            "end_column": 40,
            "code": "SEAM001",
            "name": "mla-conditional",
        },
        {
            "path": "model.py",
            "line": 3,
            "column": 18,
            "end_line": 3,
            "end_column": 33,
            "code": "SEAM001",
            "name": "mla-conditional",
        },
    ]
    assert all(row["message"] for row in rows)


def test_github_annotations(root):
    result = run_seamfix("lint", "--format", "github", cwd=root)
    first = result.stdout.splitlines()[0]
    assert first.startswith("::error title=seamfix (SEAM001),file=pkg/b.py,line=2,col=8,endLine=2,endColumn=34::")
    assert first.endswith("pkg/b.py:2:8: SEAM001 `if` test depends on MLA (`cfg.multi_latent_attention`)")


def test_sarif_is_what_github_code_scanning_reads(root):
    log = run_seamfix("lint", "--format", "sarif", cwd=root).json()
    assert log["version"] == "2.1.0" and log["$schema"].endswith("sarif-2.1.0.json")
    (run,) = log["runs"]
    rules = run["tool"]["driver"]["rules"]
    assert run["tool"]["driver"]["name"] == "seamfix"
    assert len({rule["id"] for rule in rules}) == len(rules)
    assert all(rule["shortDescription"]["text"] and rule["help"]["markdown"] for rule in rules)
    assert len(run["results"]) == 3
    for result in run["results"]:
        assert rules[result["ruleIndex"]]["id"] == result["ruleId"]
        assert result["level"] in {"error", "warning", "note"} and result["message"]["text"]
        (location,) = result["locations"]
        artifact = location["physicalLocation"]["artifactLocation"]
        region = location["physicalLocation"]["region"]
        assert artifact["uriBaseId"] == "%SRCROOT%" and not artifact["uri"].startswith("/")
        assert region["startLine"] >= 1 and region["startColumn"] >= 1
        assert (region["endLine"], region["endColumn"]) >= (region["startLine"], region["startColumn"])
        assert len(result["partialFingerprints"]["seamfix/v1"]) == 64
    assert run["originalUriBaseIds"]["%SRCROOT%"]["uri"].startswith("file:///")


def test_statistics(root):
    result = run_seamfix("lint", "--statistics", "--extend-select", "SEAM003", cwd=root)
    assert result.stdout == "3\tSEAM001\tmla-conditional\n"
    assert run_seamfix("lint", "--statistics", "--format", "json", cwd=root).json() == [
        {"code": "SEAM001", "name": "mla-conditional", "count": 3}
    ]


def test_exit_codes(root):
    assert run_seamfix("lint", "pkg/clean.py", cwd=root).code == 0
    assert run_seamfix("lint", cwd=root).code == 1
    assert run_seamfix("lint", "--exit-zero", cwd=root).code == 0
    assert run_seamfix("lint", "--format", "yaml", cwd=root).code == 2
    assert run_seamfix("lint", "--no-such-flag", cwd=root).code == 2


def test_rules_and_rule_commands(root):
    listing = run_seamfix("rules", cwd=root)
    assert listing.code == 0
    assert [line.split()[:3] for line in listing.stdout.splitlines()] == [
        ["SEAM001", "mla-conditional", "on"],
        ["SEAM002", "mla-import", "off"],
        ["SEAM003", "mla-class-use", "off"],
        ["SEAM100", "unused-suppression", "on"],
        ["SEAM901", "syntax-error", "always"],
        ["SEAM902", "undefined-seam-function", "always"],
    ]
    doc = run_seamfix("rule", "SEAM001", cwd=root)
    assert doc.stdout.startswith("# mla-conditional (SEAM001)") and "## Why is this bad?" in doc.stdout
    assert run_seamfix("rule", "mla-import", cwd=root).stdout.startswith("# mla-import (SEAM002)")
    unknown = run_seamfix("rule", "SEAM999", cwd=root)
    assert unknown.code == 2 and "SEAM999" in unknown.stderr
    rows = run_seamfix("rules", "--format", "json", cwd=root).json()
    by_code = {row["code"]: (row["default"], row["always"]) for row in rows}
    assert by_code["SEAM002"] == (False, False) and by_code["SEAM901"] == (True, True)
