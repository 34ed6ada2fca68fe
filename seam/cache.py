"""Results of unchanged files, keyed by a hash of the very bytes that were checked, under a fingerprint of
everything else (configuration, the adapter's defined names, seamfix's code)."""

from __future__ import annotations

import hashlib
import marshal
import os
import sys
import time
from pathlib import Path

import seamfix.lint_rules
from seamfix import __version__
from seamfix.atomic import write_atomic
from seamfix.file_checker import CheckOptions
from seamfix.findings import Finding

Entry = tuple[bytes, list[tuple]]  # (content digest, findings as tuples)

# A cache file: this header, the BLAKE2b digest of the payload, then the marshalled entries. A file that
# does not start so, or whose payload does not hash to the digest (truncated, corrupted, another tool's), is
# ignored: marshal must never read bytes that seamfix did not write whole.
MAGIC = b"seamfix-lint-cache\x01"
_DIGEST_SIZE = 32
# Cache files of other fingerprints (another configuration, an older seamfix) unused this long are removed.
STALE_AFTER_S = 7 * 24 * 3600


def content_digest(data: bytes) -> bytes:
    """What an entry is keyed by: a file is re-checked whenever its bytes differ, whatever its mtime."""
    return hashlib.blake2b(data, digest_size=16).digest()


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
            options.surface,
            options.src,
        )
    )
    return hashlib.sha256(key.encode()).hexdigest()[:20]


def decode_entries(blob: bytes) -> dict[str, Entry]:
    """The entries of a cache file's bytes; empty unless header and digest prove seamfix wrote it whole."""
    header = len(MAGIC) + _DIGEST_SIZE
    if len(blob) < header or not blob.startswith(MAGIC):
        return {}
    payload = blob[header:]
    if hashlib.blake2b(payload, digest_size=_DIGEST_SIZE).digest() != blob[len(MAGIC) : header]:
        return {}
    try:
        entries = marshal.loads(payload)
    except (EOFError, ValueError, TypeError):
        return {}
    return entries if isinstance(entries, dict) else {}


def encode_entries(entries: dict[str, Entry]) -> bytes:
    payload = marshal.dumps(entries)
    return MAGIC + hashlib.blake2b(payload, digest_size=_DIGEST_SIZE).digest() + payload


class LintCache:
    """One file per configuration fingerprint in the cache directory (like ``.ruff_cache``). Saving drops
    entries of files that no longer exist, and cache files of other fingerprints unused for a week."""

    def __init__(self, directory: Path, root: Path, options: CheckOptions) -> None:
        self.directory = directory
        self.root = root
        self.file = directory / f"lint-{fingerprint(options)}.bin"
        self.entries: dict[str, Entry] = {}
        self.seen: set[str] = set()
        self.dirty = False
        try:
            self.entries = decode_entries(self.file.read_bytes())
        except OSError:
            pass

    def get(self, relpath: str, digest: bytes) -> list[Finding] | None:
        self.seen.add(relpath)
        entry = self.entries.get(relpath)
        if not isinstance(entry, tuple) or len(entry) != 2 or entry[0] != digest:
            return None
        try:
            return [Finding.from_row(row) for row in entry[1]]
        except (TypeError, ValueError):  # rows of another shape, an unknown kind: check the file again
            return None

    def put(self, relpath: str, digest: bytes, findings: list[Finding]) -> None:
        self.entries[relpath] = (digest, [f.row() for f in findings])
        self.seen.add(relpath)
        self.dirty = True

    def save(self) -> None:
        gone = [relpath for relpath in self.entries if relpath not in self.seen and not (self.root / relpath).exists()]
        for relpath in gone:
            del self.entries[relpath]
        try:
            if self.dirty or gone:
                make_cache_dir(self.directory)
                write_atomic(self.file, encode_entries(self.entries))
            elif self.file.exists():
                os.utime(self.file)  # in use: not stale
            self._prune_stale()
        except OSError:
            pass  # a read-only checkout still lints, only without a cache

    def _prune_stale(self) -> None:
        cutoff = time.time() - STALE_AFTER_S
        for other in self.directory.glob("lint-*.bin"):
            try:
                if other != self.file and other.stat().st_mtime < cutoff:
                    other.unlink()
            except OSError:
                continue


def make_cache_dir(directory: Path) -> None:
    """The cache folder, marked as one for backup tools and ignored by git (as ``.ruff_cache``)."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in (("CACHEDIR.TAG", "Signature: 8a477f597d28d172789f06886806bc55\n"), (".gitignore", "*\n")):
        marker = directory / name
        if not marker.exists():
            marker.write_text(text)
