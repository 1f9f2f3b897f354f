"""Metric logging for every trainer: console, ``metrics.jsonl`` beside the checkpoint, and
wandb (offline unless the user set ``WANDB_MODE``; a wandb failure never stops training)."""

from __future__ import annotations

import json
import math
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Mapping, Sequence

from tqdm.auto import tqdm

from il_toolkit.atomic_files import write_text_atomically


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if hasattr(value, "item"):
        return _jsonable(value.item())
    return value


CONSOLE_METRICS = 8  # metrics on one console line; the rest go to metrics.jsonl only


def console_line(metrics: Mapping[str, Any], step: int, first: Sequence[str] = ()) -> str:
    """``[step N] a=1  b=2 ...``: the ``first`` keys, then the others, :data:`CONSOLE_METRICS` at most."""
    keys = [k for k in first if k in metrics] + [k for k in metrics if k not in first]
    shown = "  ".join(f"{k}={metrics[k]:.4g}" if isinstance(metrics[k], float) else f"{k}={metrics[k]}"
                      for k in keys[:CONSOLE_METRICS])
    more = f"  (+{len(keys) - CONSOLE_METRICS} in metrics.jsonl)" if len(keys) > CONSOLE_METRICS else ""
    return f"[step {step}] {shown}{more}"


def _time_of(line: str) -> float:
    """The ``time_s`` of one ``metrics.jsonl`` record (0 for a line without one)."""
    try:
        return float(json.loads(line)["time_s"])
    except (ValueError, TypeError, KeyError):
        return 0.0


def _logged_again(line: str, step: int) -> bool:
    """Whether the ``metrics.jsonl`` record ``line`` is one a run going on from ``step`` logs again (see
    :meth:`MetricLogger.continue_from`); a line that is no record is kept."""
    try:
        record = json.loads(line)
        logged_at = float(record["step"])
    except (ValueError, TypeError, KeyError):
        return False
    return logged_at > step if "train/steps" in record else logged_at >= step


class MetricLogger:
    """Log scalar metrics to the console, ``output_dir/metrics.jsonl`` and wandb."""

    def __init__(
        self,
        output_dir: str | os.PathLike,
        *,
        use_wandb: bool = False,
        project: str = "il_toolkit",
        run_name: str | None = None,
        config: Mapping[str, Any] | None = None,
        console: bool = True,
    ) -> None:
        self.output_dir = Path(output_dir)
        self.output_dir.mkdir(parents=True, exist_ok=True)
        self.path = self.output_dir / "metrics.jsonl"
        self.console = console
        self._start = time.perf_counter()
        self._wandb_run = self._init_wandb(project, run_name, config) if use_wandb else None
        self._continue_from: int | None = None

    def _init_wandb(self, project: str, run_name: str | None, config: Mapping[str, Any] | None):
        try:
            import wandb

            return wandb.init(
                project=project,
                name=run_name,
                config=dict(config or {}),
                dir=str(self.output_dir),
                mode=os.environ.get("WANDB_MODE", "offline"),
                reinit="finish_previous",
                settings=wandb.Settings(silent=True),
            )
        except Exception as exc:  # logging must never stop training
            warnings.warn(f"wandb could not start ({type(exc).__name__}: {exc}); logging to metrics.jsonl only")
            return None

    @property
    def wandb_dir(self) -> str | None:
        return None if self._wandb_run is None else str(self._wandb_run.dir)

    def continue_from(self, step: int) -> None:
        """The run goes on from ``step`` (0: from scratch): before the next record is written, the records such a
        run logs again leave ``metrics.jsonl``: per-step records (logged at each step's 0-based index) from
        ``step`` on, and epoch records (which carry ``train/steps``, logged at the count of steps done) after it;
        ``time_s`` then goes on from the last record kept."""
        self._continue_from = int(step)

    def _drop_records_logged_again(self) -> None:
        step, self._continue_from = self._continue_from, None
        if step is None or not self.path.is_file():
            return
        lines = self.path.read_text().splitlines()
        kept = [line for line in lines if not _logged_again(line, step)]
        if len(kept) != len(lines):
            write_text_atomically(self.path, "".join(f"{line}\n" for line in kept))
        self._start -= max((_time_of(line) for line in kept), default=0.0)  # time_s goes on from the last one kept

    def log(self, metrics: Mapping[str, Any], step: int, console_keys: Sequence[str] = ()) -> None:
        """Append ``metrics`` at ``step`` to ``metrics.jsonl`` (and wandb); the console line shows
        ``console_keys`` first and at most :data:`CONSOLE_METRICS` metrics in all (the file has them all),
        written through tqdm so it never sticks to a progress bar."""
        self._drop_records_logged_again()
        record = {"step": int(step), "time_s": round(time.perf_counter() - self._start, 3)}
        record.update({k: _jsonable(v) for k, v in metrics.items()})
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")
        if self.console:
            tqdm.write(console_line(metrics, step, console_keys), file=sys.stderr)
        if self._wandb_run is not None:
            try:
                self._wandb_run.log(dict(metrics), step=step)
            except Exception as exc:
                warnings.warn(f"wandb.log failed ({exc}); continuing without wandb")
                self._wandb_run = None

    def close(self) -> None:
        if self._wandb_run is not None:
            try:
                self._wandb_run.finish(quiet=True)
            except Exception:
                pass
            self._wandb_run = None
