"""How long each command of the README's quick tour takes, and what it scores, run as a new user
would: the installed ``il-toolkit`` command, in a scratch directory with its own datasets. The
teleop and convert-lerobot lines need a person at the window or a LeRobot folder and are skipped.

    .venv/bin/python benchmarks/quick_tour.py

Writes ``benchmarks/results/quick_tour.json`` (wall-clock seconds, exit code and the evaluation's
success and mean return for each command); about 10 minutes on 2 cores.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import write_results  # noqa: E402

IL_TOOLKIT = str(Path(sys.executable).with_name("il-toolkit"))
TOUR = [  # the README's quick tour, in its order; (command, the eval.json it writes or None)
    ("envs", None),
    ("experts", None),
    ("collect --env PushT-v0 --episodes 200 --dataset-id pusht/expert-v0 --num-envs 2", None),
    ("train bc --dataset pusht/expert-v0 --bc_epochs 100 --output_dir ./output/bc --no_wandb", "output/bc/eval.json"),
    ("train dagger --env CartPole-v1 --dagger_iterations 10 --dagger_beta_schedule linear --output_dir ./output/dagger "
     "--no_wandb", "output/dagger/eval.json"),
    ("train gail --env CartPole-v1 --num_expert_episodes 50 --total_timesteps 100000 --output_dir ./output/gail "
     "--no_wandb", "output/gail/eval.json"),
    ("eval --policy ./output/bc/best --env PushT-v0 --episodes 100 --num-envs 2 --video-dir ./output/video "
     "--output ./output/bc_eval.json", "output/bc_eval.json"),
]


def run(command: str, scratch: Path, env: dict[str, str], eval_file: str | None) -> dict:
    start = time.perf_counter()
    done = subprocess.run([IL_TOOLKIT, *command.split()], cwd=scratch, env=env, capture_output=True, text=True)
    row = {"command": f"il-toolkit {command}", "seconds": round(time.perf_counter() - start, 1), "exit_code": done.returncode}
    if eval_file is not None and (scratch / eval_file).exists():
        aggregates = json.loads((scratch / eval_file).read_text())["aggregates"]
        row.update(pc_success=aggregates["pc_success"], mean_return=aggregates["mean_return"],
                   eval_episodes=aggregates["n_episodes"])
    if done.returncode != 0:
        row["stderr_tail"] = done.stderr[-500:]
    print(f"{row['seconds']:7.1f} s  rc={row['exit_code']}  {row.get('pc_success', '')}  {row['command']}", flush=True)
    return row


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        env = {**os.environ, "MINARI_DATASETS_PATH": str(scratch / "datasets")}
        rows = [run(command, scratch, env, eval_file) for command, eval_file in TOUR]
    write_results("quick_tour", {"cpu_count": os.cpu_count(), "rows": rows})


if __name__ == "__main__":
    main()
