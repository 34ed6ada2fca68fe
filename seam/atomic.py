"""Atomic file writes: a reader sees the old bytes or the new ones, never a half-written file.

The new bytes go to a temporary file beside the target, named ``.<name>.<pid>.seamfix.tmp``, which is then
renamed over it. The name says which process wrote it, so that a later run removes the leftovers of one
that was killed (its process is gone) and never those of one still running.
"""

from __future__ import annotations

import errno
import glob
import os
import stat
from pathlib import Path

TEMP_SUFFIX = ".seamfix.tmp"


def temp_path(path: Path) -> Path:
    """Where this process stages the new bytes of ``path``."""
    return path.with_name(f".{path.name}.{os.getpid()}{TEMP_SUFFIX}")


def stage(temp: Path, data: bytes, replaced: os.stat_result | None) -> None:
    """Write ``data`` to the new file ``temp`` and flush it to disk, to replace the file whose status is
    ``replaced``: with exactly its mode and owner (an editor writing in place keeps both: a root container
    rewriting a user's checkout must not leave root's files there; when the owner cannot be kept, raises
    PermissionError). ``replaced`` None: a new file, mode ``0o666`` less the umask (as any editor or
    ``open()`` creates files)."""
    temp.unlink(missing_ok=True)
    descriptor = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o666)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(descriptor, view) :]
        if replaced is not None:
            _keep_owner(descriptor, replaced)
            os.fchmod(descriptor, stat.S_IMODE(replaced.st_mode))
        os.fsync(descriptor)
    except BaseException:
        os.close(descriptor)
        temp.unlink(missing_ok=True)
        raise
    os.close(descriptor)


def _keep_owner(descriptor: int, replaced: os.stat_result) -> None:
    staged = os.fstat(descriptor)
    if (staged.st_uid, staged.st_gid) == (replaced.st_uid, replaced.st_gid):
        return
    try:
        os.fchown(descriptor, replaced.st_uid, replaced.st_gid)
    except PermissionError:
        why = f"cannot keep its owner (uid {replaced.st_uid}, gid {replaced.st_gid})"
        raise PermissionError(errno.EPERM, why) from None


def write_atomic(path: Path, data: bytes, project: Path | None = None) -> None:
    """Replace (or create) ``path`` with ``data`` atomically, keeping an existing file's mode. A symlink is
    not replaced: the file it points to is written. A path inside ``project`` must not lead out of it
    through a symlink (one named outside it is the user's choice). Raises OSError (``IsADirectoryError``
    for a folder)."""
    if os.path.isdir(path):
        raise IsADirectoryError(errno.EISDIR, "is a folder, not a file", str(path))
    target = Path(os.path.realpath(path))
    if project is not None and _inside(os.path.abspath(path), project) and not _inside(target, project.resolve()):
        raise PermissionError(errno.EPERM, f"leads outside the project through a symlink (to {target})", str(path))
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(target.parent, target.name)
    try:
        replaced = os.stat(target)
    except FileNotFoundError:
        replaced = None
    temp = temp_path(target)
    stage(temp, data, replaced)
    try:
        os.replace(temp, target)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def remove_stale_temps(folder: Path, name: str | None = None) -> None:
    """Remove the temporary files of seamfix processes that no longer run: those of ``name``, or all."""
    pattern = f".{glob.escape(name)}.*{TEMP_SUFFIX}" if name is not None else f".*{TEMP_SUFFIX}"
    try:
        leftovers = list(folder.glob(pattern))
    except OSError:
        return
    for leftover in leftovers:
        pid = leftover.name[: -len(TEMP_SUFFIX)].rpartition(".")[2]
        if pid.isdigit() and not _running(int(pid)):
            try:
                leftover.unlink()
            except OSError:
                pass  # another run removed it, or the folder is read-only: nothing this run can do


def _running(pid: int) -> bool:
    if pid == os.getpid():
        return False  # a leftover of this very process can only be from an earlier, failed attempt
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


def _inside(path: str | Path, folder: Path) -> bool:
    return os.path.commonpath([path, folder]) == str(folder)
