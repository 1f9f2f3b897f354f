"""A dataset written by ``il-toolkit collect`` opens with plain ``minari.load_dataset`` (in a
fresh process that never imports il_toolkit), and each episode, replayed from its recorded
seed with its recorded actions, reproduces its recorded return.

    .venv/bin/python benchmarks/minari_roundtrip.py [--episodes 20]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _results import write_results

PLAIN_MINARI = """
import json, sys
import gymnasium as gym
import numpy as np
import minari
dataset = minari.load_dataset(sys.argv[1])
assert "il_toolkit" not in sys.modules
meta = dataset.storage.metadata
env = gym.make("CartPole-v1")
rows = []
for episode, seed in zip(dataset.iterate_episodes(), meta["il_toolkit_seeds"]):
    obs, _ = env.reset(seed=int(seed))
    replayed = 0.0
    for action in episode.actions:
        obs, reward, terminated, truncated, _ = env.step(int(action))
        replayed += reward
    rows.append({"seed": int(seed), "recorded": float(np.sum(episode.rewards)), "replayed": replayed,
                 "first_obs_equal": bool(np.array_equal(episode.observations[0], env.reset(seed=int(seed))[0]))})
print(json.dumps({"total_episodes": dataset.total_episodes, "total_steps": dataset.total_steps,
                  "metadata": {k: meta[k] for k in meta if k.startswith("il_toolkit")}, "rows": rows}, default=list))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--episodes", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "MINARI_DATASETS_PATH": tmp}
        cli = Path(sys.executable).with_name("il-toolkit")
        start = time.perf_counter()
        subprocess.run([str(cli), "collect", "--env", "CartPole-v1", "--episodes", str(args.episodes),
                        "--dataset-id", "bench/cartpole-lqr-v0", "--no-progress"], env=env, check=True)
        collect_seconds = time.perf_counter() - start
        out = subprocess.run([sys.executable, "-c", PLAIN_MINARI, "bench/cartpole-lqr-v0"], env=env,
                             capture_output=True, text=True, check=True)
    report = json.loads(out.stdout.strip().splitlines()[-1])
    rows = report["rows"]
    all_match = all(r["recorded"] == r["replayed"] and r["first_obs_equal"] for r in rows)
    print(f"collect: {report['total_episodes']} episodes, {report['total_steps']} steps in {collect_seconds:.1f} s")
    print(f"toolkit metadata read by plain minari: {report['metadata']}")
    print(f"episodes replaying to their recorded return: {sum(r['recorded'] == r['replayed'] for r in rows)}/{len(rows)}")
    write_results("minari_roundtrip", {
        "episodes": args.episodes,
        "collect_seconds": collect_seconds,
        "total_steps": report["total_steps"],
        "metadata": report["metadata"],
        "all_episodes_replay_to_recorded_returns": all_match,
        "rows": rows,
    })


if __name__ == "__main__":
    main()
