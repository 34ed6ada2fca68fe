"""Writing many files as one: after an interruption at any instant, a project is as it was, or completely
rewritten, or the next run completes it.

The write phase of ``seamfix apply``, like a database's:

1. the *journal* (``apply-journal.json`` in the cache folder) records the intent: every target, the hash
   of the bytes that were read, the hash of the new bytes and the temporary file that will hold them;
2. the new bytes are *staged* in those temporary files, beside their targets (a full disk or a read-only
   folder fails here, before anything changed: that file is skipped, or, for the adapter, everything);
3. the journal is marked *committing*, and each temporary is renamed over its target, in order: the
   adapter's files first (functions nothing calls yet are harmless), then the builders calling them.
   Just before each rename the target is read again: a file edited meanwhile is left alone, with an error.
4. the journal is removed.

Ctrl-C and SIGTERM wait for step 3 to end. A run killed before step 3 leaves a *staging* journal, which the
next run rolls back (temporaries removed); one killed during step 3 leaves a *committing* journal, which
the next run rolls forward. One lock per project keeps two applies from interleaving.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from seamfix.atomic import remove_stale_temps, stage, temp_path, write_atomic
from seamfix.cache import make_cache_dir
from seamfix.errors import SeamfixError

FORMAT = "seamfix-apply-journal/1"
JOURNAL_NAME = "apply-journal.json"
LOCK_NAME = "apply.lock"
# Test-only: SIGKILL the process right after its k-th file operation in the write phase (journal saves,
# staged temporaries, renames, the journal's removal), to prove that every instant is recoverable.
STOP_AFTER_WRITES = "SEAMFIX_TEST_STOP_AFTER_WRITES"
_DEFERRED_SIGNALS = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}


@dataclass(frozen=True)
class FileWrite:
    path: Path  # absolute, its folders without symlinks
    display: str
    old: bytes | None  # the bytes read; None for a new file
    new: bytes
    required: bool = False  # the adapter and its package files: when one cannot be written, nothing is


def journal_path(directory: Path) -> Path:
    return directory / JOURNAL_NAME


@contextmanager
def apply_lock(directory: Path) -> Iterator[None]:
    """Hold the project's apply lock (a file in the cache folder) or fail at once."""
    import fcntl

    try:
        make_cache_dir(directory)
        descriptor = os.open(directory / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as exc:
        raise SeamfixError(f"{directory}: cannot create the apply lock: {exc.strerror or exc}") from None
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock = directory / LOCK_NAME
            raise SeamfixError(f"another `seamfix apply` is running in this project (it holds {lock})") from None
        yield
    finally:
        os.close(descriptor)


def recover(directory: Path) -> tuple[list[str], list[str]]:
    """Finish or undo what an interrupted apply left (notes, errors), and remove killed runs' temporaries."""
    journal = journal_path(directory)
    remove_stale_temps(directory)
    try:
        data = json.loads(journal.read_bytes())
        state, entries, folders = data["state"], data["entries"], data["folders"]
    except FileNotFoundError:
        return [], []
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise SeamfixError(f"{journal}: unreadable journal of an interrupted apply ({exc}); delete it") from None
    _Progress.start()
    if state == "staging":
        for entry in entries:
            Path(entry["temp"]).unlink(missing_ok=True)
        _remove_empty(folders)
        notes, errors = ["rolled back an interrupted `seamfix apply`: it had not changed any file"], []
    else:
        done, errors = _replace_all(entries, resumed=True)
        notes = [f"completed an interrupted `seamfix apply`: {done} more files written"]
    journal.unlink()
    return notes, errors


def commit(writes: list[FileWrite], directory: Path) -> list[str]:
    """Write all of ``writes`` (required ones first) as described above; the errors of those skipped."""
    journal = journal_path(directory)
    paths = [write.path for write in writes]
    if len(set(paths)) != len(paths):  # one temporary each: the second staged would replace the first
        twice = next(write.display for write in writes if paths.count(write.path) > 1)
        raise SeamfixError(f"{twice}: two rewrites of one file (through a symlink); nothing was changed")
    folders = _missing_folders(writes)
    entries = [
        {"path": str(w.path), "display": w.display, "temp": str(temp_path(w.path)), "old": _digest(w.old),
         "new": _digest(w.new), "required": w.required}
        for w in writes
    ]  # fmt: skip
    _Progress.start()
    _save(journal, "staging", entries, folders)
    errors: list[str] = []
    staged = []
    unblocked = None  # the signal mask to restore, once Ctrl-C and SIGTERM wait for the renames
    try:
        for folder in folders:
            try:
                os.mkdir(folder)
            except OSError as exc:
                why = f"{folder}: cannot create the folder: {exc.strerror or exc}; nothing was changed"
                raise SeamfixError(why) from None
        for write, entry in zip(writes, entries, strict=True):
            try:
                stage(Path(entry["temp"]), write.new, None if write.old is None else os.stat(write.path))
                _Progress.step()
                staged.append(entry)
            except OSError as exc:
                why = f"{write.display}: cannot write: {exc.strerror or exc}"
                if write.required:
                    raise SeamfixError(f"{why}; nothing was changed") from None
                errors.append(f"{why}; not rewritten")
        unblocked = signal.pthread_sigmask(signal.SIG_BLOCK, _DEFERRED_SIGNALS)
        _save(journal, "committing", staged, folders)
    except BaseException:
        for entry in entries:
            Path(entry["temp"]).unlink(missing_ok=True)
        _remove_empty(folders)
        journal.unlink(missing_ok=True)
        if unblocked is not None:
            signal.pthread_sigmask(signal.SIG_SETMASK, unblocked)
        raise
    try:
        errors += _replace_all(staged, resumed=False)[1]
        journal.unlink()
        _Progress.step()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, unblocked)
    return errors


def _replace_all(entries: list[dict], resumed: bool) -> tuple[int, list[str]]:
    """Rename each staged temporary over its target when the target still holds the bytes that were read;
    after a required entry fails, the rest are left as they are."""
    done, errors, blocked = 0, [], False
    for entry in entries:
        path, temp = Path(entry["path"]), Path(entry["temp"])
        current = _current(path)
        if current == entry["new"]:  # written before the interruption
            temp.unlink(missing_ok=True)
            continue
        if blocked:
            temp.unlink(missing_ok=True)
            continue
        if current != entry["old"] or (resumed and _current(temp) != entry["new"]):
            failure = f"{_changed(current)} since seamfix read it"
        else:
            try:
                os.replace(temp, path)
                done += 1
                _Progress.step()
                continue
            except OSError as exc:
                failure = f"cannot write: {exc.strerror or exc}"
        temp.unlink(missing_ok=True)
        errors.append(f"{entry['display']}: {failure}; not rewritten")
        if entry["required"]:
            blocked = True
            errors.append("the adapter was not written, so no file calling it was rewritten either")
    return done, errors


def _current(path: Path) -> str | None:
    """The hash of a regular file's bytes, None when it does not exist, a marker for anything else."""
    try:
        info = os.lstat(path)
        if not stat.S_ISREG(info.st_mode):
            return "symlink" if stat.S_ISLNK(info.st_mode) else "not a file"
        return _digest(path.read_bytes())
    except FileNotFoundError:
        return None
    except OSError:
        return "unreadable"


def _changed(current: str | None) -> str:
    if current is None:
        return "was deleted"
    if current in ("symlink", "not a file", "unreadable"):
        return f"became {'a ' if current == 'symlink' else ''}{current}"
    return "changed"


def _digest(data: bytes | None) -> str | None:
    return None if data is None else hashlib.sha256(data).hexdigest()


def _missing_folders(writes: list[FileWrite]) -> list[str]:
    """The folders to create, parents first."""
    missing: list[str] = []
    for write in writes:
        folder = write.path.parent
        chain = []
        while not folder.exists() and str(folder) not in missing:
            chain.append(str(folder))
            folder = folder.parent
        missing += reversed(chain)
    return missing


def _remove_empty(folders: list[str]) -> None:
    for folder in reversed(folders):
        try:
            os.rmdir(folder)
        except OSError:
            pass  # not created yet, or something else put a file there


def _save(journal: Path, state: str, entries: list[dict], folders: list[str]) -> None:
    data = {"format": FORMAT, "pid": os.getpid(), "state": state, "folders": folders, "entries": entries}
    try:
        write_atomic(journal, json.dumps(data, indent=1).encode())
    except OSError as exc:
        why = f"{journal}: cannot write the apply journal: {exc.strerror or exc}; nothing was changed"
        raise SeamfixError(why) from None  # the caller undoes the staging
    _Progress.step()


class _Progress:
    """Counts the write phase's file operations for the test-only STOP_AFTER_WRITES hook."""

    limit: int | None = None
    count = 0

    @classmethod
    def start(cls) -> None:
        value = os.environ.get(STOP_AFTER_WRITES, "")
        cls.limit, cls.count = (int(value) if value.isdigit() else None), 0

    @classmethod
    def step(cls) -> None:
        cls.count += 1
        if cls.count == cls.limit:
            os.kill(os.getpid(), signal.SIGKILL)
