"""What a project's own linters say about the lines `seamfix apply` wrote: ruff's import sorting (I), line
length (E501) and formatter, each run with the project's settings, before and after."""

from __future__ import annotations

import difflib
import json
import re
import subprocess
from pathlib import Path

from seamfix.codemods.formatting import ruff_executable

_HUNK = re.compile(r"^@@ -(\d+)(?:,\d+)? \+\d+(?:,\d+)? @@")


def ruff_findings(root: Path) -> dict[str, set[tuple[int, str]]]:
    """Per file (relative to ``root``): (line, code) of each I and E501 finding, and (line, "format") for
    each line of a hunk ruff's formatter would change."""
    found: dict[str, set[tuple[int, str]]] = {}
    check = subprocess.run(
        [ruff_executable(), "check", "--no-cache", "--select", "I,E501", "--output-format", "json", "--exit-zero", "."],
        cwd=root, capture_output=True, text=True, check=True,
    )  # fmt: skip
    for diagnostic in json.loads(check.stdout):
        relpath = Path(diagnostic["filename"]).resolve().relative_to(root.resolve()).as_posix()
        for line in range(diagnostic["location"]["row"], diagnostic["end_location"]["row"] + 1):
            found.setdefault(relpath, set()).add((line, diagnostic["code"]))
    for path in sorted(root.rglob("*.py")):
        relpath = path.relative_to(root).as_posix()
        diff = subprocess.run(
            [ruff_executable(), "format", "--no-cache", "--diff", relpath], cwd=root, capture_output=True, text=True
        ).stdout  # fmt: skip
        line = 0
        for text in diff.splitlines():
            hunk = _HUNK.match(text)
            if hunk:
                line = int(hunk[1])
            elif line and text.startswith("-"):
                found.setdefault(relpath, set()).add((line, "format"))  # a line the formatter would change
                line += 1
            elif line and text.startswith(" "):
                line += 1
    return found


def new_findings_on_touched_lines(before: Path, after: Path) -> list[str]:
    """The findings of ``after`` on lines apply wrote (every line of a file it created) that the lines they
    replaced did not have: ``path:line: code``."""
    old, new = ruff_findings(before), ruff_findings(after)
    problems = []
    for relpath, findings in sorted(new.items()):
        original = before / relpath
        old_lines = original.read_text().splitlines() if original.exists() else []
        matcher = difflib.SequenceMatcher(None, old_lines, (after / relpath).read_text().splitlines())
        for tag, old_start, old_end, start, end in matcher.get_opcodes():
            if tag == "equal":
                continue
            had = {code for line, code in old.get(relpath, set()) if old_start < line <= old_end}
            problems += [
                f"{relpath}:{line}: {code}"
                for line, code in sorted(findings)
                if start < line <= end and code not in had
            ]
    return problems
