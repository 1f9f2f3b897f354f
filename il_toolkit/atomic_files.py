"""Files that are either whole or absent: written to a unique temporary file beside the target, flushed to
disk, then renamed over it (a rename within a directory is atomic), so a process killed at any moment leaves
the old file or the new one, never half of one."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable

_UMASK = os.umask(0o022)  # read once, at import: os.umask can only be read by setting it
os.umask(_UMASK)


def replace_atomically(target: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """``write(temporary_path)``, then put that file in place of ``target``; on failure the temporary file is
    removed and ``target`` is left as it was. Returns ``target``."""
    target = Path(target)
    handle, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(handle)
    temporary = Path(name)
    try:
        os.chmod(temporary, 0o666 & ~_UMASK)  # as an open() would have made it (mkstemp's file is private)
        write(temporary)
        with temporary.open("rb") as written:
            os.fsync(written.fileno())
        os.replace(temporary, target)
    finally:
        if temporary.exists():
            temporary.unlink()
    return target


def write_text_atomically(target: str | os.PathLike, text: str) -> Path:
    """:func:`replace_atomically` for a text file."""
    return replace_atomically(target, lambda path: path.write_text(text))
