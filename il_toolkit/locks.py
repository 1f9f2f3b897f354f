"""One writer at a time: an exclusive lock on a file, for datasets and run folders that two
processes must not write at once (their writes would interleave into a corrupt result)."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any, Callable, Iterator


@contextlib.contextmanager
def exclusive(lock_file: Path, busy: Callable[[str], Exception] | None = None,
              on_wait: Callable[[str], None] | None = None) -> Iterator[None]:
    """Hold an exclusive lock on ``lock_file`` (created if missing, holding the holder's pid).
    When another process holds it: raise ``busy(pid of the holder)`` at once, or with ``busy``
    None wait for it (calling ``on_wait(pid of the holder)`` first). The OS releases the lock
    when its process ends, killed or not; without POSIX locks (Windows) nothing is locked."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_file, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if busy is not None:
                raise busy(_holder(handle)) from None
            if on_wait is not None:
                on_wait(_holder(handle))
            fcntl.flock(handle, fcntl.LOCK_EX)
        handle.truncate(0)
        handle.write(str(os.getpid()))
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _holder(handle: Any) -> str:
    """The pid the lock file names, if that process is alive ("unknown" while the holder is still
    writing it, or for a stale pid left by an earlier holder)."""
    handle.seek(0)
    text = handle.read().strip()
    if not text.isdigit():
        return "unknown"
    try:
        os.kill(int(text), 0)
    except ProcessLookupError:
        return "unknown"
    except PermissionError:  # alive, another user's
        pass
    return text
