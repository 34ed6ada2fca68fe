"""Baselines: today's findings recorded, so that only new ones fail.

A finding matches a recorded one by file, code, enclosing function and the text of the flagged
expression, not by line: edits above a finding do not break the match. Each record excuses one finding.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from seamfix.atomic import write_atomic
from seamfix.errors import SeamfixError
from seamfix.findings import Finding

FORMAT = "seamfix-baseline/1"
Key = tuple[str, str, str, str]


def _key(relpath: str, finding: Finding) -> Key:
    return (relpath, finding.code, finding.scope, finding.content)


def write_baseline(path: Path, findings: list[tuple[str, Finding]], project: Path | None = None) -> None:
    """Record ``(project-relative path, finding)`` pairs (never through a symlink out of ``project``)."""
    records = sorted(
        ({"path": rel, "code": f.code, "scope": f.scope, "content": f.content, "line": f.line} for rel, f in findings),
        key=lambda r: (r["path"], r["line"], r["code"], r["content"]),
    )
    text = json.dumps({"format": FORMAT, "findings": records}, indent=2) + "\n"
    try:
        write_atomic(path, text.encode(), project)
    except OSError as exc:
        raise SeamfixError(f"{path}: cannot write the baseline: {exc.strerror or exc}") from None


def read_baseline(path: Path) -> Counter[Key]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("format") != FORMAT:
            raise ValueError(f"not a {FORMAT} file")
        return Counter((r["path"], r["code"], r["scope"], r["content"]) for r in data["findings"])
    except OSError as exc:
        raise SeamfixError(f"{path}: cannot read baseline: {exc.strerror or exc}") from None
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise SeamfixError(f"{path}: invalid baseline: {exc}") from None


def new_findings(findings: list[tuple[str, Finding]], recorded: Counter[Key]) -> list[tuple[str, Finding]]:
    """The findings that the baseline does not excuse (in order; each record is used once)."""
    remaining = Counter(recorded)
    fresh = []
    for rel, finding in findings:
        key = _key(rel, finding)
        if remaining[key] > 0:
            remaining[key] -= 1
        else:
            fresh.append((rel, finding))
    return fresh
