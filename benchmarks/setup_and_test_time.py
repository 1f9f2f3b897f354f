"""Wall-clock of the README's two commands on a fresh clone of this repository.

Clones HEAD into a temporary directory, then times ``make setup`` (venv, torch, the
project and its pinned stack, system libraries), ``make quick`` (the main job; setup is
already done so this is the job alone, with its suite's summary and each trial's success) and ``make test`` (the
test suite).
pip's download cache is left as it is, so set-up is faster than on a machine that has
never downloaded the packages; the figure says so.

    .venv/bin/python benchmarks/setup_and_test_time.py
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

from _results import write_results

ROOT = Path(__file__).resolve().parents[1]


def timed(command: list[str], cwd: Path) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return seconds, done.stdout


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        clone = Path(tmp) / "il_toolkit"
        subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
        env_note = {"pip_cache": "warm (packages already downloaded once on this machine)", "load_average": os.getloadavg()}
        setup_s, _ = timed(["make", "setup"], clone)
        print(f"make setup (fresh venv): {setup_s:.0f} s")
        quick_s, quick_out = timed(["make", "quick"], clone)
        print(f"make quick (main job, set-up done): {quick_s:.0f} s")
        quick = quick_suite_figures(quick_out, clone / "output" / "bench" / "quick.jsonl")
        print(quick["summary"])
        test_s, out = timed(["make", "test"], clone)
        summary = [line for line in out.splitlines() if " passed" in line][-1:]
        print(f"make test (set-up done): {test_s:.0f} s  {summary[0] if summary else ''}")
    write_results("setup_and_test_time", {
        "make_setup_seconds": setup_s, "make_quick_job_seconds": quick_s, "make_test_seconds": test_s,
        "first_command_total_seconds": setup_s + quick_s, "pytest_summary": summary[0] if summary else None,
        "quick_suite": quick, **env_note,
    })


def quick_suite_figures(output: str, results: Path) -> dict:
    """What the main job printed about its suite (trials, wall-clock split, harness overhead) and each finished
    trial's method, env, seed, success and normalised score, from its results file."""
    summary = next((line for line in output.splitlines() if line.startswith("suite ")), None)
    trials = []
    for line in results.read_text().splitlines() if results.is_file() else []:
        record = json.loads(line)
        if record.get("kind") == "trial" and record.get("status") == "ok":
            trials.append({name: record.get(name) for name in ("method", "env_id", "seed", "pc_success",
                                                                "normalized_score", "train_seconds")})
    return {"summary": summary, "trials": trials}


if __name__ == "__main__":
    main()
