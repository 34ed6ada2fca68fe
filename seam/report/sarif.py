"""SARIF 2.1.0, as GitHub code scanning accepts it (relative URIs against %SRCROOT%)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from urllib.parse import quote

from seamfix import __version__
from seamfix.findings import Finding
from seamfix.lint_rules import RULES

SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"


def _artifact(path: str) -> dict[str, str]:
    if path.startswith("/"):
        return {"uri": Path(path).as_uri()}
    return {"uri": quote(path), "uriBaseId": "%SRCROOT%"}


def render_sarif(findings: list[Finding]) -> str:
    codes = list(RULES)
    rules = [
        {
            "id": code,
            "name": rule.name,
            "shortDescription": {"text": rule.summary},
            "fullDescription": {"text": rule.doc()},
            "help": {"text": rule.doc(), "markdown": rule.doc()},
            "defaultConfiguration": {"level": "error", "enabled": rule.default_enabled},
            "properties": {"tags": ["mla", "seam"]},
        }
        for code, rule in RULES.items()
    ]
    results = [
        {
            "ruleId": f.code,
            "ruleIndex": codes.index(f.code),
            "level": "error",
            "message": {"text": f.message},
            "locations": [
                {
                    "physicalLocation": {
                        "artifactLocation": _artifact(f.path),
                        "region": {
                            "startLine": f.line,
                            "startColumn": f.column,
                            "endLine": f.end_line,
                            "endColumn": f.end_column,
                        },
                    }
                }
            ],
            "partialFingerprints": {
                "seamfix/v1": hashlib.sha256(f"{f.path}|{f.code}|{f.scope}|{f.content}".encode()).hexdigest()
            },
        }
        for f in findings
    ]
    log = {
        "$schema": SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "seamfix",
                        "version": __version__,
                        "semanticVersion": __version__,
                        "rules": rules,
                    }
                },
                "originalUriBaseIds": {"%SRCROOT%": {"uri": Path.cwd().as_uri() + "/"}},
                "columnKind": "unicodeCodePoints",
                "results": results,
            }
        ],
    }
    return json.dumps(log, indent=2) + "\n"
