"""ALOHA env throughput: the toolkit's ``state`` env against gym-aloha's env as shipped, in one run.

    .venv/bin/python benchmarks/aloha_envs.py [--quick]

Every env is stepped with the same hold-the-start-pose joint action. Figures are env
steps per second (one step = 20 ms of simulated time, 10 physics substeps), single thread.
Writes ``benchmarks/results/aloha_envs.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import il_toolkit  # noqa: F401  (sets MUJOCO_GL before any mujoco import)
import gymnasium as gym
import numpy as np

RESULTS = Path(__file__).parent / "results" / "aloha_envs.json"
START_ACTION = np.array([0, -0.96, 1.16, 0, -0.3, 0, 0.1, 0, -0.96, 1.16, 0, -0.3, 0, 0.1], dtype=np.float32)


def steps_per_second(env: gym.Env, n_steps: int, seed: int = 0) -> float:
    """Steps/s of ``env`` over ``n_steps`` steps after one untimed warm-up step."""
    env.reset(seed=seed)
    env.step(START_ACTION)
    start = time.perf_counter()
    for _ in range(n_steps):
        env.step(START_ACTION)
    return n_steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps (for a smoke run)")
    args = parser.parse_args()
    n_package, n_state, n_pixels = (5, 500, 5) if args.quick else (30, 4000, 30)

    import gym_aloha  # noqa: F401  (registers gym_aloha/*)

    rows = []
    package = gym.make("gym_aloha/AlohaTransferCube-v0")
    rows.append(("gym_aloha/AlohaTransferCube-v0 (as shipped, pixels)", n_package, steps_per_second(package, n_package)))
    package.close()
    for env_id in ("il_toolkit/AlohaTransferCube-v0", "il_toolkit/AlohaInsertion-v0"):
        env = gym.make(env_id)
        rows.append((f"{env_id} state", n_state, steps_per_second(env, n_state)))
        env.close()
    for size, quality in (((96, 128), "fast"), ((96, 128), "package"), ((480, 640), "fast")):
        env = gym.make(
            "il_toolkit/AlohaTransferCube-v0", obs_type="pixels_agent_pos", image_size=size, render_quality=quality
        )
        name = f"il_toolkit/AlohaTransferCube-v0 pixels 3 cams {size[0]}x{size[1]} {quality}"
        rows.append((name, n_pixels, steps_per_second(env, n_pixels)))
        env.close()

    package_rate, state_rate = rows[0][2], rows[1][2]
    speedup = state_rate / package_rate
    print(f"{'env':<62} {'steps':>6} {'steps/s':>10}")
    for name, n, rate in rows:
        print(f"{name:<62} {n:>6} {rate:>10.1f}")
    print(f"state env speed-up over gym-aloha as shipped: {speedup:.0f}x (target >= 100x: {'met' if speedup >= 100 else 'MISSED'})")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "benchmark": "aloha_envs",
                "quick": args.quick,
                "machine": platform.platform(),
                "rows": [{"env": name, "steps": n, "steps_per_s": rate} for name, n, rate in rows],
                "state_speedup_vs_gym_aloha": speedup,
                "target_speedup": 100,
                "target_met": speedup >= 100,
            },
            indent=2,
        )
    )
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
