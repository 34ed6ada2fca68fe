"""Output formats of ``seamfix lint``: each renders the sorted findings as the text to print."""

from __future__ import annotations

import importlib
from collections.abc import Callable

from seamfix.findings import Finding

# format name -> (module, function); imported on use, so lint pays only for the format it prints.
FORMATS = {
    "text": ("seamfix.report.text", "render_text"),
    "json": ("seamfix.report.json_report", "render_json"),
    "github": ("seamfix.report.github", "render_github"),
    "sarif": ("seamfix.report.sarif", "render_sarif"),
}


def renderer(output_format: str) -> Callable[[list[Finding]], str]:
    module, function = FORMATS[output_format]
    return getattr(importlib.import_module(module), function)
