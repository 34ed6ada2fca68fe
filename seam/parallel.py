"""One map over worker processes, shared by lint and apply.

A failure while handling one item (a RecursionError on a deeply nested expression, a MemoryError, a bug)
is that item's result, never the end of the run. Workers ignore Ctrl-C (the parent alone reports it and
stops them) and die with their parent, even when it is killed.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


@dataclass(frozen=True)
class Failed:
    """Why handling one item raised instead of returning."""

    reason: str


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def worker_count(jobs: int | None, items: int, min_items_per_worker: int) -> int:
    """Processes worth starting for ``items`` (0 or 1: work in this process)."""
    return min(jobs or available_cores(), items // min_items_per_worker)


def map_items(
    function: Callable[[Item], Result],
    items: Sequence[Item],
    *,
    workers: int,
    initializer: Callable[..., None],
    initargs: tuple[Any, ...] = (),
    chunksize: int = 1,
) -> Iterator[tuple[Item, Result | Failed]]:
    """``(item, function(item) or Failed)`` for every item, in completion order; over ``workers`` processes
    when there are at least two, after ``initializer(*initargs)`` in each."""
    if workers <= 1:
        initializer(*initargs)
        for index in range(len(items)):
            yield items[index], _guarded(function, items, index)[1]
        return
    import multiprocessing  # small runs never pay for it

    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else None)
    start = partial(_start_worker, os.getpid(), initializer, initargs, items)
    with _signals_held():
        pool = context.Pool(workers, initializer=start)
    with pool:  # leaving it stops the workers
        for index, result in pool.imap_unordered(partial(_guarded, function, None), range(len(items)), chunksize):
            yield items[index], result


_items: Sequence[Any] = ()  # a worker's copy of the items, so that only indexes travel to it


# SIGHUP, like Ctrl-C, reaches the whole process group when the terminal closes: the parent handles both
_GROUP_SIGNALS = {signal.SIGINT, getattr(signal, "SIGHUP", signal.SIGINT)}
_HELD = {*_GROUP_SIGNALS, signal.SIGTERM}


@contextmanager
def _signals_held() -> Iterator[None]:
    """Ctrl-C and SIGTERM held back (not lost) while the pool forks its workers, which are born with them
    held too, until ``_start_worker`` sets what they do in a worker. Ctrl-C reaches the whole process group
    but only the parent handles it: a worker interrupted while holding the pool's queue lock would leave
    the parent waiting forever."""
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, _HELD)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _start_worker(parent: int, initializer: Callable[..., None], initargs: tuple, items: Sequence[Any]) -> None:
    global _items
    for signum in _GROUP_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # how the pool stops its workers
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _HELD)
    _die_with_parent()
    if os.getppid() != parent:  # the parent died before the line above took effect
        os._exit(1)
    _items = items
    initializer(*initargs)


def _die_with_parent() -> None:
    """Ask Linux to kill this process when its parent dies (elsewhere the pool's own shutdown must do)."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _guarded(function: Callable[[Any], Any], items: Sequence[Any] | None, index: int) -> tuple[int, Any]:
    item = (items if items is not None else _items)[index]
    try:
        return index, call_with_room(function, item)
    except RecursionError:
        return index, Failed("too deeply nested to analyse (RecursionError)")
    except MemoryError:
        return index, Failed("out of memory while analysing it")
    except Exception as exc:  # noqa: BLE001 - one file's failure is its result, the others go on
        return index, Failed(f"internal error: {type(exc).__name__}: {exc}")


# Valid code can nest deeper than Python's default limit (a 3,000-term `a + b + ...` is one: `ast.parse`
# recurses once per term). The rare item that hits it is tried once more on a thread with room for that.
DEEP_RECURSION_LIMIT = 60_000
DEEP_STACK_BYTES = 512 * 1024 * 1024


def call_with_room(function: Callable[..., Result], *args: Any) -> Result:
    """``function(*args)``; where that runs out of recursion room here (valid but deeply nested input: a long
    chain of ``+``), again on a thread with room for it."""
    try:
        return function(*args)
    except RecursionError:
        return call_with_deep_stack(function, *args)


def call_with_deep_stack(function: Callable[..., Result], *args: Any) -> Result:
    """``function(*args)`` on a thread with room for deep recursion (a RecursionError there is real)."""
    import threading

    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append(function(*args))
        except BaseException as exc:  # noqa: BLE001 - handed to the calling thread
            outcome.append(exc)

    limit, stack = sys.getrecursionlimit(), threading.stack_size()
    try:
        threading.stack_size(DEEP_STACK_BYTES)
        sys.setrecursionlimit(max(limit, DEEP_RECURSION_LIMIT))
        thread = threading.Thread(target=run, name="seamfix-deep")
        thread.start()
        thread.join()
    finally:
        sys.setrecursionlimit(limit)
        threading.stack_size(stack)
    if isinstance(outcome[0], BaseException):
        raise outcome[0]
    return outcome[0]
