"""Output formats of ``seamfix lint``: each takes the sorted findings and returns the text to print."""

from seamfix.report.github import render_github
from seamfix.report.json_report import render_json
from seamfix.report.sarif import render_sarif
from seamfix.report.text import render_statistics, render_text

FORMATS = {"text": render_text, "json": render_json, "github": render_github, "sarif": render_sarif}

__all__ = ["FORMATS", "render_statistics"]
