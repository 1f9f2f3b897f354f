"""``collect`` throughput against the raw env's own steps/s, measured in one run.

For each env (PushT state, CartPole-v1), on the same seeds 0..N-1 and with the env's default
expert:

- ``env_only``: env steps/s with no expert (PushT: pusher held still; CartPole: alternating
  pushes): the simulator's own ceiling;
- ``raw``: env steps/s with the expert driving, nothing recorded (``rollout_episode`` with
  ``keep_observations=False``);
- ``collect_n1`` / ``collect_n2``: ``collect_dataset(..., num_envs=1|2)`` steps/s as its own
  report gives them (timer started before the worker pool is spawned, so ``num_envs=2``
  pays its process start-up), plus the wall-clock of the whole call;
- ``ratio_*``: collect steps/s / raw steps/s (medians over interleaved repeats; the paired
  per-repeat ratios are kept too), and for ``num_envs=2`` also with the measured pool
  start-up (spawning 2 processes that import torch and build env + expert) taken out.

The machine's 2 cores are shared with other engineers, so the 1-minute load average is
recorded before and after each measurement; compare figures only within one run.

    .venv/bin/python benchmarks/collect_throughput.py [--quick]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from typing import Any

from _results import write_results

ENVS = {"pusht_state": ("il_toolkit/PushT-v0", {"obs_type": "state"}), "cartpole": ("CartPole-v1", {})}
EPISODES = {"pusht_state": 40, "cartpole": 40}
QUICK_EPISODES = {"pusht_state": 8, "cartpole": 8}


def load() -> float:
    return round(os.getloadavg()[0], 2)


def measure_env_only(env_id: str, env_kwargs: dict[str, Any], n_steps: int) -> dict[str, float]:
    from il_toolkit.envs import make_env

    env = make_env(env_id, **env_kwargs)
    pusht = env_id.startswith("il_toolkit/PushT")
    env.reset(seed=0)
    steps, start = 0, time.perf_counter()
    while steps < n_steps:
        # PushT: the pusher holds still; CartPole: alternating pushes
        action = env.unwrapped.sim.agent.position if pusht else steps % 2
        _, _, terminated, truncated, _ = env.step(action)
        steps += 1
        if terminated or truncated:
            env.reset(seed=steps)
    seconds = time.perf_counter() - start
    env.close()
    return {"steps": steps, "seconds": seconds, "steps_per_s": steps / seconds}


def measure_raw(env_id: str, env_kwargs: dict[str, Any], n_episodes: int) -> dict[str, float]:
    from il_toolkit.envs import make_env
    from il_toolkit.experts import make_expert
    from il_toolkit.rollout import rollout_episode

    env = make_env(env_id, **env_kwargs)
    expert = make_expert(env_id, env=env)
    steps, start = 0, time.perf_counter()
    for seed in range(n_episodes):
        steps += rollout_episode(expert, env, seed, keep_observations=False).length
    seconds = time.perf_counter() - start
    env.close()
    return {"steps": steps, "seconds": seconds, "steps_per_s": steps / seconds}


def measure_collect(env_id: str, env_kwargs: dict[str, Any], n_episodes: int, num_envs: int, name: str) -> dict[str, float]:
    from il_toolkit.train.datasets.collect import collect_dataset

    start = time.perf_counter()
    report = collect_dataset(env_id, f"bench/{name}-n{num_envs}-v0", n_episodes, num_envs=num_envs, seed=0,
                             overwrite=True, env_kwargs=env_kwargs, progress=False)
    wall = time.perf_counter() - start
    return {"steps": report.n_steps, "seconds": report.seconds, "steps_per_s": report.steps_per_second,
            "wall_s": wall, "wall_steps_per_s": report.n_steps / wall, "episodes": report.n_episodes}


def _sleep(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


def measure_pool_startup(env_id: str, env_kwargs: dict[str, Any], num_envs: int = 2) -> dict[str, float]:
    """Seconds until a ``collect`` worker pool (spawned processes, each making its env and
    expert) answers: the fixed cost ``num_envs > 1`` pays before its first episode."""
    import multiprocessing

    from il_toolkit.train.datasets.collect import _init_worker

    start = time.perf_counter()
    with multiprocessing.get_context("spawn").Pool(num_envs, initializer=_init_worker,
                                                   initargs=(env_id, env_kwargs, None, {})) as pool:
        pool.map(_sleep, [0.2] * num_envs, chunksize=1)
    return {"seconds": time.perf_counter() - start - 0.2}


def timed(fn, *args) -> dict[str, Any]:
    before = load()
    figures = fn(*args)
    return {**figures, "loadavg_1min_before": before, "loadavg_1min_after": load()}


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Median and best steps/s over the repeats, with every run kept."""
    rates = [r["steps_per_s"] for r in runs]
    return {"steps_per_s_median": statistics.median(rates), "steps_per_s_best": max(rates), "steps": runs[0]["steps"],
            "runs": runs}


def bench_env(name: str, n: int, repeats: int) -> dict[str, Any]:
    env_id, env_kwargs = ENVS[name]
    print(f"== {name}: {env_id} {env_kwargs}, {n} episodes (seeds 0..{n - 1}), {repeats} interleaved repeats")
    runs: dict[str, list[dict[str, Any]]] = {k: [] for k in ("env_only", "raw", "collect_n1", "collect_n2")}
    startup = []
    for _ in range(repeats):  # interleaved, so a burst of load from other users hits every measurement alike
        runs["raw"].append(timed(measure_raw, env_id, env_kwargs, n))
        runs["env_only"].append(timed(measure_env_only, env_id, env_kwargs, runs["raw"][-1]["steps"]))
        for num_envs in (1, 2):
            runs[f"collect_n{num_envs}"].append(timed(measure_collect, env_id, env_kwargs, n, num_envs, name))
        startup.append(timed(measure_pool_startup, env_id, env_kwargs)["seconds"])
    row: dict[str, Any] = {"env_id": env_id, "env_kwargs": env_kwargs, "episodes": n, "repeats": repeats}
    row.update({k: summarise(v) for k, v in runs.items()})
    row["pool_startup_s_median"] = statistics.median(startup)
    raw = row["raw"]["steps_per_s_median"]
    for num_envs in (1, 2):
        key = f"collect_n{num_envs}"
        row[f"ratio_n{num_envs}"] = row[key]["steps_per_s_median"] / raw
        row[f"paired_ratios_n{num_envs}"] = [c["steps_per_s"] / r["steps_per_s"] for c, r in zip(runs[key], runs["raw"])]
    n2 = runs["collect_n2"]
    row["ratio_n2_excluding_startup"] = statistics.median(
        c["steps"] / max(c["seconds"] - row["pool_startup_s_median"], 1e-9) for c in n2) / raw
    row["same_steps"] = len({r["steps"] for k in ("raw", "collect_n1", "collect_n2") for r in runs[k]}) == 1
    for label in runs:
        m = row[label]
        loads = [r["loadavg_1min_before"] for r in runs[label]]
        print(f"  {label:<11} {m['steps_per_s_median']:9.0f} steps/s median, {m['steps_per_s_best']:9.0f} best "
              f"({m['steps']} steps per run; load {min(loads)}..{max(loads)})")
    print(f"  collect/raw (medians): num_envs=1 {row['ratio_n1']:.2f}x, num_envs=2 {row['ratio_n2']:.2f}x; "
          f"num_envs=2 without its {row['pool_startup_s_median']:.1f} s pool start-up: {row['ratio_n2_excluding_startup']:.2f}x")
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help=f"episodes per env: {QUICK_EPISODES} instead of {EPISODES}, 1 repeat")
    parser.add_argument("--repeats", type=int, default=None, help="interleaved repeats (default 3, quick 1)")
    parser.add_argument("--envs", nargs="+", choices=sorted(ENVS), default=sorted(ENVS, reverse=True))
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    episodes = QUICK_EPISODES if args.quick else EPISODES
    repeats = args.repeats or (1 if args.quick else 3)
    results: dict[str, Any] = {"quick": args.quick, "cpu_count": os.cpu_count(), "loadavg_at_start": os.getloadavg(),
                               "note": "2 cores shared with other engineers; compare figures within this run only"}
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["MINARI_DATASETS_PATH"] = tmp
        for name in args.envs:
            results[name] = bench_env(name, episodes[name], repeats)
    results["loadavg_at_end"] = os.getloadavg()
    write_results("collect_throughput", results)


if __name__ == "__main__":
    main()
