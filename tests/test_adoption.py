"""Adopting the gate on a legacy codebase: suppression comments and a baseline."""

import json

from seamfix_testing import MLA_IF, run_seamfix


def codes_and_lines(result):
    return [(f["path"], f["line"], f["code"]) for f in result.json()]


def test_suppressions_on_the_line_and_unused_ones_reported(project):
    root = project(
        {
            "a.py": (
                "def f(cfg):\n"
                "    if cfg.multi_latent_attention:  # seamfix: ignore[SEAM001]\n"
                "        return 1\n"
                "    if cfg.q_lora_rank:  # seamfix: ignore\n"
                "        return 2\n"
                "    if cfg.kv_lora_rank:  # seamfix: ignore[SEAM002]\n"
                "        return 3\n"
                "    x = 1  # seamfix: ignore[SEAM001]\n"
                "    y = '# seamfix: ignore[SEAM001]'\n"
            )
        }
    )
    assert codes_and_lines(run_seamfix("lint", "--format", "json", cwd=root)) == [
        ("a.py", 6, "SEAM001"),
        ("a.py", 6, "SEAM100"),
        ("a.py", 8, "SEAM100"),
    ]
    assert codes_and_lines(run_seamfix("lint", "--format", "json", "--ignore", "SEAM100", cwd=root)) == [
        ("a.py", 6, "SEAM001")
    ]


def test_baseline_fails_only_on_new_findings_and_survives_edits_above(project):
    root = project({"a.py": MLA_IF, "b.py": MLA_IF})
    written = run_seamfix("lint", "--write-baseline", "seamfix-baseline.json", cwd=root)
    assert written.code == 0
    recorded = json.loads((root / "seamfix-baseline.json").read_text())
    assert [(r["path"], r["code"], r["scope"]) for r in recorded["findings"]] == [
        ("a.py", "SEAM001", "f"),
        ("b.py", "SEAM001", "f"),
    ]
    assert run_seamfix("lint", "--baseline", "seamfix-baseline.json", cwd=root).code == 0

    # Unrelated edits above the finding move it down; it still matches.
    (root / "a.py").write_text("import os\n\n\nCONSTANT = 3\n\n" + MLA_IF)
    assert run_seamfix("lint", "--baseline", "seamfix-baseline.json", cwd=root).code == 0

    # A new MLA conditional, even an identical one in another function, is new.
    (root / "a.py").write_text(MLA_IF + MLA_IF.replace("def f", "def g"))
    result = run_seamfix("lint", "--baseline", "seamfix-baseline.json", "--format", "json", cwd=root)
    assert result.code == 1 and codes_and_lines(result) == [("a.py", 6, "SEAM001")]

    # A second copy inside the same function is also new: each record excuses one finding.
    (root / "b.py").write_text(
        MLA_IF.replace("return 0", "if cfg.multi_latent_attention:\n        return 2\n    return 0")
    )
    result = run_seamfix("lint", "--baseline", "seamfix-baseline.json", "--format", "json", cwd=root)
    assert ("b.py", 4, "SEAM001") in codes_and_lines(result)


def test_baseline_from_config_and_bad_baseline(project):
    root = project({"a.py": MLA_IF, "pyproject.toml": '[tool.seamfix]\nbaseline = "ci/baseline.json"\n'})
    assert run_seamfix("lint", cwd=root).code == 2  # configured but missing: an error, not a silent pass
    assert run_seamfix("lint", "--write-baseline", "ci/baseline.json", cwd=root).code == 0
    assert run_seamfix("lint", cwd=root / "ci").code == 0  # paths in config are relative to the project root
    (root / "ci/baseline.json").write_text("{not json")
    result = run_seamfix("lint", cwd=root)
    assert result.code == 2 and "ci/baseline.json: invalid baseline" in result.stderr
