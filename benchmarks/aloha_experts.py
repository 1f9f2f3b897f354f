"""ALOHA state-feedback experts: strict success over fixed seeds, from the start and taking over.

    .venv/bin/python benchmarks/aloha_experts.py [--quick] [--episodes N]

For each task: strict success (``info["is_success"]`` at the last of 400 steps) over seeds
0..N-1 (a) from the reset state, (b) when the expert takes over after 100 steps of a noisy
policy (the expert's own action plus Gaussian joint noise of 0.05 rad and a gripper command
flipped with probability 0.2, seeded per episode). Also time per expert query.
Targets: transfer >= 90%, insertion >= 70%. Writes ``benchmarks/results/aloha_experts.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import il_toolkit  # noqa: F401
import gymnasium as gym
import numpy as np

from il_toolkit.experts import make_expert

RESULTS = Path(__file__).parent / "results" / "aloha_experts.json"
TASKS = {"il_toolkit/AlohaTransferCube-v0": 0.9, "il_toolkit/AlohaInsertion-v0": 0.7}
TAKEOVER_STEP = 100
JOINT_NOISE = 0.05
GRIPPER_FLIP = 0.2


def episode(env: gym.Env, expert, seed: int, takeover: bool) -> tuple[bool, float, float, bool]:
    """(strict success at the end, max stage, seconds per expert query, an object fell off the table)."""
    rng = np.random.default_rng(10_000 + seed)
    obs, _ = env.reset(seed=seed)
    max_stage, query_time, queries = 0.0, 0.0, 0
    for step in range(env.spec.max_episode_steps):
        start = time.perf_counter()
        action, _ = expert.predict(obs)
        query_time += time.perf_counter() - start
        queries += 1
        if takeover and step < TAKEOVER_STEP:
            action = action.copy()
            for base in (0, 7):
                action[base : base + 6] += rng.normal(0.0, JOINT_NOISE, 6)
                if rng.random() < GRIPPER_FLIP:
                    action[base + 6] = 1.0 - action[base + 6]
            action = np.clip(action, env.action_space.low, env.action_space.high)
        obs, _, terminated, truncated, info = env.step(action)
        max_stage = max(max_stage, float(info["stage"]))
        if terminated or truncated:
            break
    object_z = env.unwrapped.state_vector()[28:][2::7]
    return bool(info["is_success"]), max_stage, query_time / queries, bool((object_z < -0.05).any())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10 episodes per condition")
    parser.add_argument("--episodes", type=int, default=50)
    args = parser.parse_args()
    n = 10 if args.quick else args.episodes

    report: dict = {"benchmark": "aloha_experts", "episodes": n, "takeover_step": TAKEOVER_STEP, "tasks": {}}
    for env_id, target in TASKS.items():
        env = gym.make(env_id)
        expert = make_expert(env_id, env=env)
        report["tasks"][env_id] = {"target": target}
        for condition, takeover in (("from_reset", False), ("takeover_after_noisy_100", True)):
            start = time.perf_counter()
            rows = [episode(env, expert, seed, takeover) for seed in range(n)]
            success = float(np.mean([r[0] for r in rows]))
            entry = {
                "success": success,
                "failed_seeds": [seed for seed, r in enumerate(rows) if not r[0]],
                "avg_max_stage": float(np.mean([r[1] for r in rows])),
                "ms_per_query": 1e3 * float(np.mean([r[2] for r in rows])),
                "seeds_with_object_off_table": [seed for seed, r in enumerate(rows) if r[3]],
                "target_met": success >= target,
                "wall_s": time.perf_counter() - start,
            }
            report["tasks"][env_id][condition] = entry
            print(
                f"{env_id:<36} {condition:<26} success {success:6.1%} (target {target:.0%}: "
                f"{'met' if entry['target_met'] else 'MISSED'})  avg max stage {entry['avg_max_stage']:.2f}  "
                f"{entry['ms_per_query']:.2f} ms/query  failed seeds {entry['failed_seeds']} "
                f"(object off the table: {entry['seeds_with_object_off_table']})",
                flush=True,
            )
        env.close()
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2))
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
