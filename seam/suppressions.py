"""``# seamfix: ignore[CODE, ...]`` comments: which findings they suppress, and which are unused."""

from __future__ import annotations

import io
import re
import tokenize
from dataclasses import dataclass, field

from seamfix.findings import Finding
from seamfix.lint_rules import ALWAYS_ON as UNSUPPRESSIBLE

_DIRECTIVE = re.compile(r"#\s*seamfix:\s*ignore(?:\[(?P<codes>[^\]]*)\])?", re.IGNORECASE)


@dataclass
class Directive:
    line: int
    column: int
    end_column: int
    codes: tuple[str, ...] | None  # None: the bare form, every code
    used: set[str] = field(default_factory=set)


def directives(text: str) -> dict[int, Directive]:
    """The suppression comments of a source text (real comments only, not look-alikes in strings)."""
    found: dict[int, Directive] = {}
    try:
        for token in tokenize.generate_tokens(io.StringIO(text).readline):
            if token.type != tokenize.COMMENT:
                continue
            match = _DIRECTIVE.search(token.string)
            if match is None:
                continue
            raw = match.group("codes")
            codes = None if raw is None else tuple(c.strip().upper() for c in raw.split(",") if c.strip())
            line, column = token.start
            found[line] = Directive(line, column + match.start() + 1, column + match.end() + 1, codes)
    except (tokenize.TokenError, SyntaxError):
        pass
    return found


def apply_directives(
    findings: list[Finding], found: dict[int, Directive], known_codes: frozenset[str]
) -> tuple[list[Finding], list[tuple[Directive, str]]]:
    """Drop suppressed findings; return what is kept and each directive's complaint (for SEAM100)."""
    kept = []
    for finding in findings:
        directive = found.get(finding.line)
        if directive is None or finding.code in UNSUPPRESSIBLE:
            kept.append(finding)
        elif directive.codes is None or finding.code in directive.codes:
            directive.used.add(finding.code)
        else:
            kept.append(finding)
    complaints = []
    for directive in found.values():
        if directive.codes is None:
            if not directive.used:
                complaints.append((directive, "unused blanket `seamfix: ignore` (nothing to suppress)"))
            continue
        unknown = [code for code in directive.codes if code not in known_codes]
        unused = [code for code in directive.codes if code in known_codes and code not in directive.used]
        problems = []
        if unused:
            problems.append(f"unused: {', '.join(unused)}")
        if unknown:
            problems.append(f"unknown: {', '.join(unknown)}")
        if problems:
            complaints.append((directive, f"`seamfix: ignore` suppresses nothing ({'; '.join(problems)})"))
    return kept, complaints
