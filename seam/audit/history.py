"""``seamfix audit --history N``: the seam's width commit by commit, as CSV, JSON or a self-contained HTML chart."""

from __future__ import annotations

import csv
import html
import io
import json
from dataclasses import dataclass

from seamfix.audit.projects import Projects
from seamfix.audit.width import SeamWidth

SERIES = ("findings", "call_sites", "adapter_functions", "adapter_lines")
_COLOURS = ("#d62728", "#1f77b4", "#2ca02c", "#9467bd")


@dataclass(frozen=True)
class Point:
    commit: str
    date: str
    subject: str
    width: SeamWidth


def history(projects: Projects, count: int) -> list[Point]:
    return [
        Point(sha, date, subject, projects.width(sha))
        for sha, date, subject in projects.git.first_parent_history(count)
    ]


def _rows(points: list[Point]) -> list[dict[str, object]]:
    return [{"commit": p.commit, "date": p.date, "subject": p.subject, **p.width.as_dict()} for p in points]


def render_csv(points: list[Point]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=["commit", "date", "subject", *SERIES], lineterminator="\n")
    writer.writeheader()
    writer.writerows(_rows(points))
    return buffer.getvalue()


def render_json(points: list[Point]) -> str:
    return json.dumps(_rows(points), indent=2) + "\n"


def render_html(points: list[Point]) -> str:
    """One small page, no scripts or external files: an SVG line per series (each scaled to its own maximum,
    since adapter lines dwarf the counts) and the table of numbers."""
    width, height, pad = 720, 240, 30
    step = (width - 2 * pad) / max(len(points) - 1, 1)
    lines = []
    for name, colour in zip(SERIES, _COLOURS, strict=True):
        values = [getattr(p.width, name) for p in points]
        top = max(values) or 1
        coords = " ".join(
            f"{pad + i * step:.1f},{height - pad - (height - 2 * pad) * v / top:.1f}" for i, v in enumerate(values)
        )
        lines.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{coords}"/>')
    legend = " ".join(
        f'<span style="color:{colour}">&#9632; {name.replace("_", " ")}</span>'
        for name, colour in zip(SERIES, _COLOURS, strict=True)
    )
    header = "".join(f"<th>{h}</th>" for h in ("commit", "date", "subject", *SERIES))
    body = "".join(
        "<tr>"
        + f"<td><code>{p.commit[:10]}</code></td><td>{html.escape(p.date)}</td><td>{html.escape(p.subject)}</td>"
        + "".join(f"<td>{getattr(p.width, name)}</td>" for name in SERIES)
        + "</tr>"
        for p in points
    )
    return (
        '<!doctype html><html><head><meta charset="utf-8"><title>seamfix: seam width</title></head>'
        '<body style="font-family:sans-serif"><h1>Seam width, last '
        f"{len(points)} commits</h1><p>{legend} (each line scaled to its own maximum)</p>"
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img">'
        f'<rect width="{width}" height="{height}" fill="#fafafa"/>{"".join(lines)}</svg>'
        f'<table border="1" cellpadding="4"><tr>{header}</tr>{body}</table></body></html>\n'
    )


RENDERERS = {"csv": render_csv, "json": render_json, "html": render_html}
