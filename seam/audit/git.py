"""The few git questions audit asks, through git's command line."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

from seamfix.errors import SeamfixError
from seamfix.reading import read_regular_file


class Git:
    """A repository, asked through ``git -C <root>``; any failure is a one-line SeamfixError."""

    def __init__(self, cwd: Path) -> None:
        self.root = Path(self._run(["rev-parse", "--show-toplevel"], cwd=cwd).strip())

    def _run(self, args: list[str], cwd: Path | None = None, input_bytes: bytes | None = None) -> str:
        return self.run_bytes(args, cwd, input_bytes).decode("utf-8", errors="replace")

    def run_bytes(self, args: list[str], cwd: Path | None = None, input_bytes: bytes | None = None) -> bytes:
        try:
            proc = subprocess.run(  # paths are files, as lint's are: `[ab].py` is no glob, `:x.py` no magic
                ["git", "--literal-pathspecs", "-c", "core.quotepath=off", *args],
                cwd=cwd or self.root,
                env={name: value for name, value in os.environ.items() if name != "GIT_DIFF_OPTS"},
                input=input_bytes,
                capture_output=True,
                check=False,
            )
        except OSError as exc:
            raise SeamfixError(f"cannot run git: {exc.strerror or exc}") from None
        if proc.returncode != 0:
            message = proc.stderr.decode("utf-8", errors="replace").strip().splitlines()
            raise SeamfixError(f"git {' '.join(args[:2])}: {message[-1] if message else 'failed'}")
        return proc.stdout

    def resolve(self, rev: str) -> str:
        """The commit a revision names; an unknown revision is an error naming it."""
        try:
            return self._run(["rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"]).strip()
        except SeamfixError:
            raise SeamfixError(f"unknown revision `{rev}`") from None

    def default_base(self) -> str:
        """The merge-base of HEAD with the default branch (origin's HEAD, else main, else master)."""
        for candidate in ("origin/HEAD", "main", "master"):
            try:
                branch = self.resolve(f"refs/{'remotes' if '/' in candidate else 'heads'}/{candidate}")
            except SeamfixError:
                continue
            try:
                return self._run(["merge-base", "HEAD", branch]).strip()
            except SeamfixError:  # unrelated histories, or history a shallow clone cut off
                raise SeamfixError(
                    f"HEAD and {candidate} have no common ancestor in this clone (a shallow clone? fetch more "
                    "history, e.g. `git fetch --unshallow`), or pass --since REV"
                ) from None
        raise SeamfixError("no default branch (origin/HEAD, main or master) to compare with; pass --since REV")

    def diff(self, since: str, until: str | None, paths: list[str]) -> str:
        """Zero-context unified diff with renames found, ``until`` None meaning the working tree. What a user's
        settings would change is given: the `a/` and `b/` prefixes the parser strips (``diff.mnemonicPrefix``,
        ``diff.noprefix``) and hunks kept apart (``diff.interHunkContext`` merges nearby ones, and a hunk
        deleting a decision would hide one changing another; ``GIT_DIFF_OPTS`` is left out of git's environment)."""
        revs = [since] if until is None else [since, until]
        options = ["--no-color", "--no-ext-diff", "--no-textconv", "--src-prefix=a/", "--dst-prefix=b/"]
        options += ["-U0", "--inter-hunk-context=0", "-M"]
        return self._run(["diff", *options, *revs, "--", *paths])

    def untracked(self, paths: list[str]) -> list[str]:
        """Files of the working tree that git does not track and does not ignore (repository paths)."""
        listing = self._run(["ls-files", "-z", "--others", "--exclude-standard", "--full-name", "--", *paths])
        return [path for path in listing.split("\0") if path]

    def files(self, rev: str | None, paths: list[str]) -> list[str]:
        """The files under ``paths`` (all without any) at ``rev``; None: the working tree's tracked files and those
        git does not ignore (repository paths)."""
        if rev is not None:
            listing = self._run(["ls-tree", "-r", "-z", "--name-only", "--full-tree", rev, "--", *paths])
            return [path for path in listing.split("\0") if path]
        listing = self._run(["ls-files", "-z", "--full-name", "--", *paths])
        return [path for path in listing.split("\0") if path] + self.untracked(paths)

    def show(self, rev: str | None, path: str) -> bytes | None:
        """A file's bytes at ``rev`` (None: the working tree), through symbolic links as lint reads it; None where
        it does not exist (or is a link leading out of the tree, a loop, or, in the working tree, not a regular
        file: a FIFO is never opened for reading)."""
        if rev is None:
            try:
                return read_regular_file(self.root / path)
            except OSError:
                return None
        output = self.run_bytes(["cat-file", "--batch", "--follow-symlinks"], input_bytes=f"{rev}:{path}\n".encode())
        header, _, rest = output.partition(b"\n")
        fields = header.split()
        if len(fields) != 3 or fields[1] != b"blob":  # `missing`, `symlink` (out of the tree), `loop`, a folder
            return None
        return rest[: int(fields[2])]

    def tree_files(self, rev: str, wanted: Callable[[str], bool]) -> dict[str, bytes]:
        """The files of a commit whose paths are ``wanted``, path -> bytes: one ``git cat-file --batch`` for
        those blobs only (symlinks and submodules are not files)."""
        listing = self._run(["ls-tree", "-r", "-z", "--full-tree", rev]).split("\0")
        entries = [line.split("\t", 1) for line in listing if line]
        blobs = [
            (meta.split()[2], path)
            for meta, path in entries
            if meta.split()[1] == "blob" and not meta.startswith("120000") and wanted(path)
        ]
        if not blobs:
            return {}
        output = self.run_bytes(["cat-file", "--batch"], input_bytes="".join(f"{sha}\n" for sha, _ in blobs).encode())
        files, offset = {}, 0
        for _, path in blobs:
            header_end = output.index(b"\n", offset)
            size = int(output[offset:header_end].split()[2])
            files[path] = output[header_end + 1 : header_end + 1 + size]
            offset = header_end + 1 + size + 1
        return files

    def exists(self, rev: str, path: str) -> bool:
        """Is ``path`` (relative to the repository root) a file or folder at ``rev``?"""
        try:
            self._run(["cat-file", "-e", f"{rev}:{path}"])
        except SeamfixError:
            return False
        return True

    def first_parent_history(self, count: int) -> list[tuple[str, str, str]]:
        """The last ``count`` commits on HEAD's first-parent line, oldest first: (sha, ISO date, subject)."""
        lines = self._run(["log", "--first-parent", f"-n{count}", "--format=%H%x1f%cI%x1f%s"]).splitlines()
        return [tuple(line.split("\x1f", 2)) for line in reversed(lines)]
