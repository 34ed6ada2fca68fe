"""GitHub Actions workflow commands: one ``::error`` annotation a finding."""

from __future__ import annotations

from seamfix.findings import Finding


def _data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _property(text: str) -> str:
    return _data(text).replace(":", "%3A").replace(",", "%2C")


def _annotation(f: Finding) -> str:
    where = f"file={_property(f.path)},line={f.line},col={f.column},endLine={f.end_line},endColumn={f.end_column}"
    text = _data(f"{f.path}:{f.line}:{f.column}: {f.code} {f.message}")
    return f"::error title={_property(f'seamfix ({f.code})')},{where}::{text}\n"


def render_github(findings: list[Finding]) -> str:
    return "".join(_annotation(f) for f in findings)
