"""Where benchmark scripts write their figures: ``benchmarks/results/NAME.json``, with the
machine (and its load when the figures were written), package versions and git revision beside the numbers."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import time
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def environment() -> dict[str, Any]:
    from importlib.metadata import PackageNotFoundError, version

    versions = {}
    for package in ("il_toolkit", "torch", "gymnasium", "stable-baselines3", "imitation", "minari", "mujoco"):
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = None
    try:
        revision = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                  cwd=Path(__file__).parent, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        revision = None
    return {
        "git_revision": revision,
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "load_average_1_5_15_min": [round(x, 2) for x in os.getloadavg()],  # other jobs sharing the machine skew timings
        "versions": versions,
    }


def write_results(name: str, figures: dict[str, Any]) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    path.write_text(json.dumps({"benchmark": name, **figures, "environment": environment()}, indent=2, default=str))
    print(f"wrote {path}")
    return path
