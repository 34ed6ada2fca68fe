"""Results of unchanged files, keyed by (path, mtime, size) under a fingerprint of everything else."""

from __future__ import annotations

import hashlib
import marshal
import os
import sys
from pathlib import Path

import seamfix.lint_rules
from seamfix import __version__
from seamfix.atomic import write_atomic
from seamfix.file_checker import CheckOptions
from seamfix.findings import Finding

Entry = tuple[int, int, list[tuple]]


def _source_stamp() -> list[tuple[str, int, int]]:
    """Path, mtime and size of every module and data file of seamfix's linter. With an editable install the
    code changes while the version stays; a cache keyed by the version alone would then serve findings that
    older code computed (a few dozen stats, well under a millisecond)."""
    roots = {Path(seamfix.__file__).parent, Path(seamfix.lint_rules.__file__).parent}
    return sorted(
        (str(path), stat.st_mtime_ns, stat.st_size)
        for root in roots
        for path in root.rglob("*")
        if path.suffix in (".py", ".toml")
        for stat in [path.stat()]
    )


def fingerprint(options: CheckOptions) -> str:
    key = repr(
        (
            __version__,
            _source_stamp(),
            sys.version_info[:2],
            sorted(options.codes),
            options.vocabulary.fingerprint(),
            options.adapter_parts,
        )
    )
    return hashlib.sha256(key.encode()).hexdigest()[:20]


class LintCache:
    """One marshal file per configuration fingerprint in the cache directory (like ``.ruff_cache``)."""

    def __init__(self, directory: Path, options: CheckOptions) -> None:
        self.directory = directory
        self.file = directory / f"lint-{fingerprint(options)}.bin"
        self.entries: dict[str, Entry] = {}
        self.dirty = False
        try:
            loaded = marshal.loads(self.file.read_bytes())
            if isinstance(loaded, dict):
                self.entries = loaded
        except (OSError, EOFError, ValueError, TypeError):
            pass

    def get(self, relpath: str, stat: os.stat_result) -> list[Finding] | None:
        entry = self.entries.get(relpath)
        if entry is None or entry[0] != stat.st_mtime_ns or entry[1] != stat.st_size:
            return None
        return [Finding.from_row(row) for row in entry[2]]

    def put(self, relpath: str, stat: os.stat_result, findings: list[Finding]) -> None:
        self.entries[relpath] = (stat.st_mtime_ns, stat.st_size, [f.row() for f in findings])
        self.dirty = True

    def save(self) -> None:
        if not self.dirty:
            return
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            for name, text in (
                ("CACHEDIR.TAG", "Signature: 8a477f597d28d172789f06886806bc55\n"),
                (".gitignore", "*\n"),
            ):
                marker = self.directory / name
                if not marker.exists():
                    marker.write_text(text)
            write_atomic(self.file, marshal.dumps(self.entries))
        except OSError:
            pass  # a read-only checkout still lints, only without a cache
