"""The analysis lint, apply and audit share: one answer, from source text, without LibCST."""

import subprocess
import sys
from pathlib import Path

from seamfix.analysis.seam_bindings import absolute_module
from seamfix.config import Settings
from seamfix.engine import check_options
from seamfix.file_checker import FileChecker
from seamfix.findings import FindingKind


def test_lint_and_audit_run_without_libcst():
    """LibCST is apply's alone: the analysis, the linter and audit never import it."""
    probe = (
        "import sys\nimport seamfix.analysis.decisions, seamfix.engine, seamfix.audit.audit\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'libcst' or m.startswith('seamfix.codemods')))"
    )
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == "[]"


def test_decision_sites_have_a_typed_kind_and_exact_spans():
    source = (
        "def f(cfg, table, flag):\n"
        "    if flag and cfg.multi_latent_attention:\n"
        "        return table[cfg.q_lora_rank is None]\n"
        "    return [c for c in table if c.kv_lora_rank]\n"
    )
    checker = FileChecker(check_options(Settings(root=Path.cwd())))
    sites = checker.sites(source.encode(), "case.py")
    assert [(s.kind, s.line, s.column, s.end_line, s.end_column, s.atom) for s in sites] == [
        (FindingKind.IF_TEST, 2, 8, 2, 43, (2, 17, 2, 43)),
        (FindingKind.SUBSCRIPT_SLICE, 3, 22, 3, 45, (3, 22, 3, 37)),
        (FindingKind.COMPREHENSION_FILTER, 4, 33, 4, 47, (4, 33, 4, 47)),
    ]
    # does not parse: no sites (the caller falls back to the words); no MLA word at all: nothing to parse
    assert checker.sites(b"if cfg.multi_latent_attention\n    pass\n", "case.py") is None
    assert checker.sites(b"def f(:\n", "case.py") == []


def test_relative_imports_resolve_against_the_package():
    assert absolute_module(("pkg", "sub"), 1, "mla_seam") == "pkg.sub.mla_seam"
    assert absolute_module(("pkg", "sub"), 2, None) == "pkg"
    assert absolute_module(("pkg", "sub"), 2, "x.y") == "pkg.x.y"
    assert absolute_module(("pkg",), 0, "a.b") == "a.b"
