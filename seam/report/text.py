"""``path:line:col: CODE message``, one a line, then a summary (as ruff's concise output)."""

from __future__ import annotations

import json
from collections import Counter

from seamfix.findings import Finding
from seamfix.lint_rules import RULES
from seamfix.report.printable import printable


def render_text(findings: list[Finding]) -> str:
    lines = [f"{printable(f.path)}:{f.line}:{f.column}: {f.code} {f.message}" for f in findings]
    if findings:
        lines.append(f"Found {len(findings)} finding{'s' if len(findings) != 1 else ''}.")
    else:
        lines.append("All checks passed!")
    return "\n".join(lines) + "\n"


def render_statistics(findings: list[Finding], output_format: str) -> str:
    """Counts per rule, most frequent first (ties by code)."""
    counts = sorted(Counter(f.code for f in findings).items(), key=lambda item: (-item[1], item[0]))
    if output_format == "json":
        rows = [{"code": code, "name": RULES[code].name, "count": count} for code, count in counts]
        return json.dumps(rows, indent=2) + "\n"
    width = max((len(str(count)) for _, count in counts), default=1)
    return "".join(f"{count:>{width}}\t{code}\t{RULES[code].name}\n" for code, count in counts)
