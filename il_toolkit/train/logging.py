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
from typing import Any, Mapping


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if hasattr(value, "item"):
        return _jsonable(value.item())
    return value


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

    def log(self, metrics: Mapping[str, Any], step: int) -> None:
        record = {"step": int(step), "time_s": round(time.perf_counter() - self._start, 3)}
        record.update({k: _jsonable(v) for k, v in metrics.items()})
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")
        if self.console:
            shown = "  ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in metrics.items())
            print(f"[step {step}] {shown}", file=sys.stderr, flush=True)
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
