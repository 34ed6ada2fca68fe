"""An audit as text, JSON, or markdown for a PR comment."""

from __future__ import annotations

import json

from seamfix.audit.audit import GENERIC, MLA, SEAM, AuditReport
from seamfix.audit.width import SeamWidth

_WIDTH_ROWS = (
    ("findings", "findings outside the seam"),
    ("call_sites", "seam call sites"),
    ("adapter_functions", "adapter functions"),
    ("adapter_lines", "adapter lines"),
)


def _range(report: AuditReport) -> str:
    return f"{report.since[:12]}..{report.until[:12] if report.until else 'working tree'}"


def _verdict(report: AuditReport) -> str:
    leaked = report.total(MLA)
    if leaked:
        return f"the seam leaked: {leaked} MLA-related hunk{'s' * (leaked != 1)} outside the seam"
    return "the seam held: no MLA-related change outside it"


def _width_change(before: SeamWidth, after: SeamWidth, key: str) -> tuple[int, int, str]:
    old, new = getattr(before, key), getattr(after, key)
    return old, new, f"{new - old:+d}" if new != old else "0"


def render_text(report: AuditReport) -> str:
    lines = [f"seamfix audit {_range(report)}", ""]
    width = max([len(f.relpath) for f in report.files] + [4])
    lines.append(f"{'file':<{width}}  {SEAM:>5}  {MLA:>5}  {GENERIC:>7}")
    for file in report.files:
        counts = f"{file.count(SEAM):>5}  {file.count(MLA):>5}  {file.count(GENERIC):>7}"
        suffix = f"  ({file.change.status}{', ' + file.note if file.note else ''})"
        lines.append(f"{file.relpath:<{width}}  {counts}{suffix}")
        for verdict in file.hunks:
            if verdict.kind == MLA:
                names = ", ".join(verdict.mla_names)
                lines.append(f"    {file.relpath}:{verdict.line}: MLA change outside the seam ({names})")
    lines.append("")
    lines.append(
        f"total: {report.total(SEAM)} inside the seam, {report.total(MLA)} MLA-related outside it, "
        f"{report.total(GENERIC)} generic"
    )
    lines.append("")
    lines.append(f"{'seam width':<27}{'before':>8}{'after':>8}{'change':>8}")
    for key, label in _WIDTH_ROWS:
        old, new, change = _width_change(report.before, report.after, key)
        lines.append(f"{label:<27}{old:>8}{new:>8}{change:>8}")
    lines += ["", f"result: {_verdict(report)}"]
    return "\n".join(lines) + "\n"


def render_json(report: AuditReport) -> str:
    data = {
        "since": report.since,
        "until": report.until,
        "files": [
            {
                "path": file.relpath,
                "old_path": file.change.old_path,
                "status": file.change.status,
                "note": file.note,
                "hunks": [
                    {
                        "kind": verdict.kind,
                        "old_start": verdict.hunk.old_start,
                        "old_count": verdict.hunk.old_count,
                        "new_start": verdict.hunk.new_start,
                        "new_count": verdict.hunk.new_count,
                        "mla_names": verdict.mla_names,
                        "line": verdict.line,
                    }
                    for verdict in file.hunks
                ],
            }
            for file in report.files
        ],
        "totals": {kind: report.total(kind) for kind in (SEAM, MLA, GENERIC)},
        "width": {"before": report.before.as_dict(), "after": report.after.as_dict()},
        "leaked": report.leaked,
    }
    return json.dumps(data, indent=2) + "\n"


def render_markdown(report: AuditReport) -> str:
    icon = ":x:" if report.leaked else ":white_check_mark:"
    lines = [f"### seamfix audit: {icon} {_verdict(report)}", "", f"`{_range(report)}`", ""]
    lines += [
        "| file | status | inside the seam | MLA outside the seam | generic |",
        "| --- | --- | ---: | ---: | ---: |",
    ]
    for file in report.files:
        status = file.change.status + (f" ({file.note})" if file.note else "")
        mla = f"**{file.count(MLA)}**" if file.count(MLA) else "0"
        lines.append(f"| `{file.relpath}` | {status} | {file.count(SEAM)} | {mla} | {file.count(GENERIC)} |")
    lines += ["", "| seam width | before | after | change |", "| --- | ---: | ---: | ---: |"]
    for key, label in _WIDTH_ROWS:
        old, new, change = _width_change(report.before, report.after, key)
        lines.append(f"| {label} | {old} | {new} | {change} |")
    leaks = [
        f"- `{file.relpath}:{verdict.line}`: {', '.join(f'`{name}`' for name in verdict.mla_names)}"
        for file in report.files
        for verdict in file.hunks
        if verdict.kind == MLA
    ]
    if leaks:
        lines += ["", "MLA-related changes outside the seam:", *leaks]
    return "\n".join(lines) + "\n"


RENDERERS = {"text": render_text, "json": render_json, "markdown": render_markdown}
