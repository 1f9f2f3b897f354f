"""One writer at a time: an exclusive lock on a file, for datasets and run folders that two
processes must not write at once (their writes would interleave into a corrupt result).
Built on ``filelock`` (POSIX and Windows alike)."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Callable, Iterator

from filelock import FileLock, Timeout


@contextlib.contextmanager
def exclusive(lock_file: Path, busy: Callable[[str], Exception] | None = None,
              on_wait: Callable[[str], None] | None = None) -> Iterator[None]:
    """Hold an exclusive lock on ``lock_file`` (created if missing; the holder's pid is written
    beside it, in ``<lock_file>.pid``). When another process holds it: raise ``busy(pid of the
    holder)`` at once, or with ``busy`` None wait for it (calling ``on_wait(pid of the holder)``
    first). The OS releases the lock when its process ends, killed or not."""
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(lock_file))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        if busy is not None:
            raise busy(_holder(lock_file)) from None
        if on_wait is not None:
            on_wait(_holder(lock_file))
        lock.acquire()
    try:
        _pid_file(lock_file).write_text(str(os.getpid()))
        yield
    finally:
        lock.release()


def _pid_file(lock_file: Path) -> Path:
    return lock_file.with_name(lock_file.name + ".pid")


def _holder(lock_file: Path) -> str:
    """The pid the holder wrote, if that process is alive ("unknown" while the holder is still
    writing it, or for a stale pid left by an earlier holder)."""
    try:
        text = _pid_file(lock_file).read_text().strip()
    except OSError:
        return "unknown"
    if not text.isdigit():
        return "unknown"
    try:
        os.kill(int(text), 0)
    except ProcessLookupError:
        return "unknown"
    except (PermissionError, OSError):  # alive, another user's (or no signal 0 on this OS)
        pass
    return text
