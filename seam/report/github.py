"""GitHub Actions workflow commands: one ``::error`` annotation a finding."""

from __future__ import annotations

from seamfix.findings import Finding


def _data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _property(text: str) -> str:
    return _data(text).replace(":", "%3A").replace(",", "%2C")


def render_github(findings: list[Finding]) -> str:
    return "".join(
        f"::error title={_property(f'seamfix ({f.code})')},file={_property(f.path)},line={f.line},col={f.column},"
        f"endLine={f.end_line},endColumn={f.end_column}::{_data(f'{f.path}:{f.line}:{f.column}: {f.code} {f.message}')}\n"
        for f in findings
    )
