"""Every rule's own VALID / INVALID samples, run by one generic test (as Fixit does)."""

from pathlib import Path

import pytest

from seamfix.config import Settings
from seamfix.engine import lint_source
from seamfix.lint_rules import ALWAYS_ON, RULES
from seamfix.seam_surface import surface_of

ADAPTER = "megatron/core/mla_seam.py"

SAMPLES = [
    pytest.param(code, kind, index, sample, id=f"{code}-{kind}-{index}")
    for code, rule in RULES.items()
    for kind, samples in (("valid", rule.VALID), ("invalid", rule.INVALID))
    for index, sample in enumerate(samples)
]


def enabling(code: str) -> Settings:
    """The default rules plus ``code``: samples are checked as a user with that rule enabled sees them."""
    defaults = frozenset(c for c, rule in RULES.items() if rule.default_enabled)
    return Settings(root=Path.cwd(), adapter=ADAPTER, codes=defaults | {code} | ALWAYS_ON)


@pytest.mark.parametrize(("code", "kind", "index", "sample"), SAMPLES)
def test_rule_sample(code, kind, index, sample):
    """Checked against the rule's ``SAMPLE_ADAPTER`` as the adapter module, or none (a missing adapter)."""
    adapter = getattr(RULES[code], "SAMPLE_ADAPTER", None)
    surface = surface_of(ADAPTER, adapter.encode() if adapter is not None else None)
    source = getattr(sample, "source", sample)
    findings = [f for f in lint_source(source, enabling(code), surface=surface) if f.code == code]
    for finding in findings:  # 1-based positions, as every output format and editor expects them
        assert finding.line >= 1 and finding.column >= 1, finding
        assert (finding.end_line, finding.end_column) >= (finding.line, finding.column), finding
    if kind == "valid":
        assert findings == [], f"{code} flagged a VALID sample: {findings}"
    else:
        assert len(findings) == sample.count, f"{code} INVALID sample gave {findings}"
        if sample.line is not None:
            assert findings[0].line == sample.line


@pytest.mark.parametrize("code", sorted(RULES))
def test_rule_is_documented(code):
    rule = RULES[code]
    assert rule.name == rule.name.lower() and " " not in rule.name and "_" not in rule.name
    doc = rule.doc()
    for heading in ("## What it does", "## Why is this bad?", "## How to fix", "## Example"):
        assert heading in doc, f"{code} doc lacks {heading}"
    assert rule.VALID and rule.INVALID, f"{code} needs VALID and INVALID samples"
