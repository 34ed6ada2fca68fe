"""An audit as text, JSON, or markdown for a PR comment."""

from __future__ import annotations

import json

from seamfix.audit.audit import GENERIC, KINDS, LEAK, NARROWING, SEAM, AuditReport
from seamfix.audit.width import SeamWidth
from seamfix.report.printable import markdown_code, printable

_WIDTH_ROWS = (
    ("findings", "findings outside the seam"),
    ("call_sites", "seam call sites"),
    ("adapter_functions", "adapter functions"),
    ("adapter_lines", "adapter lines"),
)


def _range(report: AuditReport) -> str:
    return f"{report.since[:12]}..{report.until[:12] if report.until else 'working tree'}"


def _hunks(count: int) -> str:
    return f"{count} hunk{'s' * (count != 1)}"


def _verdict(report: AuditReport) -> str:
    leaked, narrowed = report.total(LEAK), report.total(NARROWING)
    if leaked:
        return f"the seam leaked: {_hunks(leaked)} added or changed MLA code outside the seam"
    if narrowed:
        return f"the seam held and narrowed: {_hunks(narrowed)} took MLA code out of the code outside it"
    return "the seam held: no MLA-related change outside it"


_WHAT = {LEAK: "MLA code added or changed outside the seam", NARROWING: "MLA code removed from outside the seam"}


def _width_change(before: SeamWidth, after: SeamWidth, key: str) -> tuple[int, int, str]:
    old, new = getattr(before, key), getattr(after, key)
    return old, new, f"{new - old:+d}" if new != old else "0"


def render_text(report: AuditReport) -> str:
    lines = [f"seamfix audit {_range(report)}", ""]
    width = max([len(printable(f.relpath)) for f in report.files] + [4])
    lines.append(f"{'file':<{width}}  " + "  ".join(f"{kind:>9}" for kind in KINDS))
    for file in report.files:
        counts = "  ".join(f"{file.count(kind):>9}" for kind in KINDS)
        suffix = f"  ({file.change.status}{', ' + file.note if file.note else ''})"
        lines.append(f"{printable(file.relpath):<{width}}  {counts}{suffix}")
        for verdict in file.hunks:
            if verdict.kind in _WHAT:
                names = ", ".join(verdict.mla_names)
                lines.append(f"    {printable(file.relpath)}:{verdict.line}: {_WHAT[verdict.kind]} ({names})")
    lines.append("")
    lines.append(
        f"total: {report.total(SEAM)} inside the seam, {report.total(LEAK)} leaked outside it, "
        f"{report.total(NARROWING)} narrowing it, {report.total(GENERIC)} generic"
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
        "totals": {kind: report.total(kind) for kind in KINDS},
        "width": {"before": report.before.as_dict(), "after": report.after.as_dict()},
        "leaked": report.leaked,
        "errors": report.errors,
    }
    return json.dumps(data, indent=2) + "\n"


def render_markdown(report: AuditReport) -> str:
    icon = ":x:" if report.leaked else ":white_check_mark:"
    lines = [f"### seamfix audit: {icon} {_verdict(report)}", "", f"`{_range(report)}`", ""]
    lines += [
        "| file | status | inside the seam | leaked | narrowing | generic |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for file in report.files:
        status = file.change.status + (f" ({file.note})" if file.note else "")
        leak = f"**{file.count(LEAK)}**" if file.count(LEAK) else "0"
        counts = f"{file.count(SEAM)} | {leak} | {file.count(NARROWING)} | {file.count(GENERIC)}"
        lines.append(f"| {markdown_code(file.relpath)} | {status} | {counts} |")
    lines += ["", "| seam width | before | after | change |", "| --- | ---: | ---: | ---: |"]
    for key, label in _WIDTH_ROWS:
        old, new, change = _width_change(report.before, report.after, key)
        lines.append(f"| {label} | {old} | {new} | {change} |")
    for kind, title in _WHAT.items():
        hunks = [
            f"- {markdown_code(f'{file.relpath}:{verdict.line}')}: {', '.join(map(markdown_code, verdict.mla_names))}"
            for file in report.files
            for verdict in file.hunks
            if verdict.kind == kind
        ]
        if hunks:
            lines += ["", f"{title}:", *hunks]
    return "\n".join(lines) + "\n"


RENDERERS = {"text": render_text, "json": render_json, "markdown": render_markdown}
