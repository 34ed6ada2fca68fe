"""Reading a source file's bytes without ever blocking: regular files only."""

from __future__ import annotations

import os
import stat


class NotARegularFile(OSError):
    """A FIFO, socket or device where a source file was expected (reading it could block forever)."""

    def __init__(self) -> None:
        super().__init__("not a regular file")
        self.strerror = "not a regular file"


def read_regular_file(path: str | os.PathLike[str]) -> bytes:
    """The bytes of a regular file. Opened without blocking and checked on the open descriptor, so a FIFO
    that appears between a walk and the read never hangs the caller; a symlink loop raises ``OSError``."""
    descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    try:
        if not stat.S_ISREG(os.fstat(descriptor).st_mode):
            raise NotARegularFile()
        with os.fdopen(descriptor, "rb", closefd=False) as handle:
            return handle.read()
    finally:
        os.close(descriptor)


def read_error(exc: OSError) -> str:
    """How an unreadable file is described after ``<path>: cannot read: ``."""
    return exc.strerror or str(exc)
