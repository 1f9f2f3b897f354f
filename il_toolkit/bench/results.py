"""The results file: append-only JSON lines, one record per trial (and per reference run).

Appends hold an exclusive lock (``filelock``, on ``<file>.lock``) while they write one whole line
with a single ``os.write`` and ``fsync``, so two harness processes never interleave lines. A record
is written only when its trial has finished, so a trial that was interrupted leaves nothing
behind and is run again. A crash in the middle of a write can leave a truncated last line:
readers keep every complete record before it and report the damage (line number, byte
offset); the next append starts on a fresh line.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from filelock import FileLock

SCHEMA_VERSION = 1


@dataclass
class ReadReport:
    """The records of a results file and what could not be read."""

    path: Path
    records: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def trials(self, status: str | None = "ok") -> list[dict[str, Any]]:
        return [r for r in self.records if r.get("kind") == "trial" and (status is None or r.get("status") == status)]

    def references(self) -> list[dict[str, Any]]:
        return [r for r in self.records if r.get("kind") == "reference"]

    def finished_keys(self) -> set[str]:
        """Keys of trials that finished successfully (failed ones are retried)."""
        return {r["key"] for r in self.trials("ok")}


class ResultsFile:
    """Append records to / read records from a JSON-lines results file."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)

    def append(self, record: dict[str, Any]) -> None:
        """Write ``record`` as one line, atomically with respect to other appenders."""
        line = json.dumps(_finite({"schema": SCHEMA_VERSION, **record}), default=_json_default, allow_nan=False) + "\n"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock():
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND | getattr(os, "O_BINARY", 0), 0o644)
            try:
                data = line.encode()
                size = os.fstat(fd).st_size
                if size > 0:
                    os.lseek(fd, size - 1, os.SEEK_SET)
                    if os.read(fd, 1) != b"\n":
                        data = b"\n" + data  # the last write was cut short: start a fresh line
                written = os.write(fd, data)  # O_APPEND: at the end, wherever the read left the offset
                if written != len(data):  # a full disk; never leave half a record
                    os.ftruncate(fd, size)
                    raise OSError(f"short write to {self.path} ({written} of {len(data)} bytes)")
                os.fsync(fd)
            finally:
                os.close(fd)

    def _lock(self) -> FileLock:
        return FileLock(str(self.path) + ".lock")

    def read(self) -> ReadReport:
        """Every complete record; damaged lines are skipped and described in ``problems``."""
        report = ReadReport(self.path)
        if not self.path.exists():
            return report
        with self._lock(), self.path.open("rb") as f:  # never read a line that is being written
            data = f.read()
        offset = 0
        for number, (raw, complete) in enumerate(_lines(data), start=1):
            start, offset = offset, offset + len(raw) + (1 if complete else 0)
            if not raw.strip():
                continue
            if not complete:
                report.problems.append(f"{self.path}: line {number} (byte {start}) is truncated ({len(raw)} bytes, no "
                                       "newline): a write was cut short; read up to it, that record is ignored")
                continue
            try:
                record = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                report.problems.append(f"{self.path}: line {number} (byte {start}) is not valid JSON ({exc}); skipped")
                continue
            if not isinstance(record, dict):
                report.problems.append(f"{self.path}: line {number} is not a JSON object; skipped")
                continue
            report.records.append(record)
        return report


def _lines(data: bytes) -> Iterator[tuple[bytes, bool]]:
    """``(line, ends_with_newline)`` for each line of ``data``."""
    parts = data.split(b"\n")
    for part in parts[:-1]:
        yield part, True
    if parts[-1]:
        yield parts[-1], False


def _finite(value: Any) -> Any:
    """``value`` with NaN and infinities replaced by None (strict JSON has no NaN)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
