"""One JSON array of findings (paths relative to the current directory, 1-based positions)."""

from __future__ import annotations

import json

from seamfix.findings import Finding


def render_json(findings: list[Finding]) -> str:
    rows = [
        {
            "path": f.path,
            "line": f.line,
            "column": f.column,
            "end_line": f.end_line,
            "end_column": f.end_column,
            "code": f.code,
            "name": f.name,
            "message": f.message,
            "scope": f.scope,
        }
        for f in findings
    ]
    return json.dumps(rows, indent=2) + "\n"
