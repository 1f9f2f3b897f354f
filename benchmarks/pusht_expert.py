"""The PushT scripted expert: success from fresh starts and after random actions, steps, ms/query.

Success = max coverage > 0.95 within 300 steps (the registered episode length). Fresh
starts: seeds 0..N-1 of ``il_toolkit/PushT-v0`` (state obs). Take-over: seeds 10000.., the
first 50 (and 100) actions uniform random on the board, then the expert for the rest of the
300 steps. Diversity: the same with ``action_noise=3`` px and ``randomize_approach=True``.
Targets: >= 95% from fresh starts over 200 seeds, >= 90% after 50 random steps.

    .venv/bin/python benchmarks/pusht_expert.py [--quick]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from _results import write_results

MAX_STEPS = 300


WALLS = (5.0, 506.0)  # gym_pusht's wall segments


def block_through_wall(state: np.ndarray) -> bool:
    """Whether any corner of the T lies beyond a wall (random pushes can tunnel it through)."""
    from il_toolkit.experts.pusht import BAR, STEM

    corners = np.array([(x, y) for x0, x1, y0, y1 in (BAR, STEM) for x in (x0, x1) for y in (y0, y1)])
    c, s = np.cos(state[4]), np.sin(state[4])
    world = state[2:4] + corners @ np.array([[c, s], [-s, c]])
    return bool(np.any((world < WALLS[0]) | (world > WALLS[1])))


def rollout(env, expert, seed: int, random_steps: int, query_times: list[float]) -> dict:
    """One episode; returns success, steps to success (counted from the start), max coverage
    and whether the T was through a wall when the expert took over."""
    obs, _ = env.reset(seed=seed)
    expert.reset()
    rng = np.random.default_rng(seed)
    info: dict = {"max_coverage": 0.0}
    through_wall = False
    for t in range(MAX_STEPS):
        if t == random_steps:
            through_wall = block_through_wall(obs)
        if t < random_steps:
            action = rng.uniform(0, 512, 2)
        else:
            start = time.perf_counter()
            action, _ = expert.predict(obs)
            query_times.append(time.perf_counter() - start)
        obs, _, terminated, truncated, info = env.step(action)
        if info["max_coverage"] > 0.95:
            return {"seed": seed, "success": True, "steps": t + 1, "max_coverage": float(info["max_coverage"]),
                    "through_wall_at_takeover": through_wall}
        if truncated:
            break
    return {"seed": seed, "success": False, "steps": MAX_STEPS, "max_coverage": float(info["max_coverage"]),
            "through_wall_at_takeover": through_wall}


def summarise(name: str, episodes: list[dict], random_steps: int) -> dict:
    success = np.array([e["success"] for e in episodes])
    steps = np.array([e["steps"] for e in episodes if e["success"]])
    figures = {
        "episodes": len(episodes),
        "random_steps": random_steps,
        "pc_success": float(100 * success.mean()),
        "median_steps_to_success": float(np.median(steps)) if len(steps) else None,
        "median_expert_steps_to_success": float(np.median(steps - random_steps)) if len(steps) else None,
        "avg_max_coverage": float(np.mean([e["max_coverage"] for e in episodes])),
        "failed_seeds": [e["seed"] for e in episodes if not e["success"]],
        "through_wall_at_takeover": {
            "episodes": sum(e["through_wall_at_takeover"] for e in episodes),
            "failed": sum(e["through_wall_at_takeover"] for e in episodes if not e["success"]),
        },
    }
    print(
        f"{name:<34} {figures['pc_success']:6.1f}% success over {len(episodes)} seeds, "
        f"median {figures['median_steps_to_success']} steps ({figures['median_expert_steps_to_success']} by the expert), avg max coverage {figures['avg_max_coverage']:.3f}, "
        f"failed seeds {figures['failed_seeds']} ({figures['through_wall_at_takeover']['failed']} of them with the T "
        f"through a wall at take-over; {figures['through_wall_at_takeover']['episodes']} such episodes in all)"
    )
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20 seeds per condition instead of 200")
    args = parser.parse_args()
    n = 20 if args.quick else 200

    from il_toolkit.envs import make_env
    from il_toolkit.experts import make_expert

    env = make_env("il_toolkit/PushT-v0")
    expert = make_expert("il_toolkit/PushT-v0", env)
    diverse = make_expert("il_toolkit/PushT-v0", env, action_noise=3.0, randomize_approach=True, seed=0)
    begin = time.perf_counter()
    query_times: list[float] = []
    conditions = {
        "fresh": (expert, range(n), 0),
        "takeover_after_50_random": (expert, range(10_000, 10_000 + n), 50),
        "takeover_after_100_random": (expert, range(20_000, 20_000 + n), 100),
        "diverse_noise3_randomized": (diverse, range(30_000, 30_000 + n // 2), 0),
    }
    figures: dict = {"success_threshold": "max coverage > 0.95 within 300 steps"}
    for name, (policy, seeds, random_steps) in conditions.items():
        times = query_times if policy is expert else []
        figures[name] = summarise(name, [rollout(env, policy, s, random_steps, times) for s in seeds], random_steps)

    queries = np.array(query_times) * 1000
    figures["ms_per_query"] = {"mean": float(queries.mean()), "p50": float(np.median(queries)),
                               "p99": float(np.percentile(queries, 99)), "queries": int(len(queries))}
    states = np.column_stack([np.random.default_rng(0).uniform(0, 512, (1000, 2)),
                              np.random.default_rng(1).uniform(60, 450, (1000, 2)),
                              np.random.default_rng(2).uniform(0, 2 * np.pi, 1000)])
    start = time.perf_counter()
    expert.predict(states)
    figures["batch_labelling_states_per_s"] = 1000 / (time.perf_counter() - start)
    figures["seconds"] = time.perf_counter() - begin
    figures["targets_met"] = {
        "fresh_ge_95pc_over_200": (not args.quick) and figures["fresh"]["pc_success"] >= 95.0,
        "takeover_50_ge_90pc": (not args.quick) and figures["takeover_after_50_random"]["pc_success"] >= 90.0,
    }
    figures["quick"] = args.quick
    print(f"time per query: mean {figures['ms_per_query']['mean']:.3f} ms, p99 {figures['ms_per_query']['p99']:.3f} ms "
          f"over {figures['ms_per_query']['queries']} queries; batch labelling "
          f"{figures['batch_labelling_states_per_s']:.0f} states/s; total {figures['seconds']:.0f} s")
    write_results("pusht_expert", figures)


if __name__ == "__main__":
    main()
