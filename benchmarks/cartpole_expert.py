"""The CartPole LQR expert: returns from standard starts and from perturbed starts.

Standard: gymnasium's reset (every coordinate uniform in ±0.05). Perturbed: the state is
overwritten after reset with (x, x_dot, theta, theta_dot) uniform in ±(1.0, 1.0, 0.15, 0.5)
("moderate": 20x, 20x, 3x, 10x the standard range) and ±(1.5, 1.5, 0.2, 1.0) ("wide", where
some starts cannot be saved with a ±10 N actuator). Targets: 500 on every standard
start, >= 95% of perturbed starts.

    .venv/bin/python benchmarks/cartpole_expert.py
"""

from __future__ import annotations

import time

import numpy as np

from _results import write_results

RANGES = {"moderate": np.array([1.0, 1.0, 0.15, 0.5]), "wide": np.array([1.5, 1.5, 0.2, 1.0])}


def episode_return(expert, env, seed: int, half_range: np.ndarray | None) -> float:
    obs, _ = env.reset(seed=seed)
    if half_range is not None:
        state = np.random.default_rng(seed).uniform(-half_range, half_range)
        env.unwrapped.state = state
        obs = state.astype(np.float32)
    total, done = 0.0, False
    while not done:
        action, _ = expert.predict(obs)
        obs, reward, terminated, truncated, _ = env.step(action)
        total += reward
        done = terminated or truncated
    return total


def main() -> None:
    from il_toolkit.envs import make_env
    from il_toolkit.experts import make_expert

    env = make_env("CartPole-v1")
    expert = make_expert("CartPole-v1", env)
    figures = {}
    start = time.perf_counter()
    standard = np.array([episode_return(expert, env, s, None) for s in range(100)])
    figures["standard"] = {"episodes": 100, "pc_500": float(100 * np.mean(standard == 500)), "min_return": float(standard.min())}
    print(f"standard starts: {figures['standard']['pc_500']:.0f}% reach 500 (min {standard.min():.0f}) over 100 seeds")
    for name, half_range in RANGES.items():
        returns = np.array([episode_return(expert, env, 10_000 + s, half_range) for s in range(200)])
        figures[name] = {"episodes": 200, "half_range": half_range.tolist(), "pc_500": float(100 * np.mean(returns == 500)),
                         "mean_return": float(returns.mean())}
        print(f"{name} perturbed starts ±{half_range.tolist()}: {figures[name]['pc_500']:.1f}% reach 500 over 200 seeds")
    batch = np.random.default_rng(0).uniform(-RANGES["moderate"], RANGES["moderate"], size=(1, 4)).astype(np.float32)
    n = 2000
    t0 = time.perf_counter()
    for _ in range(n):
        expert.predict(batch[0])
    figures["ms_per_query"] = 1000 * (time.perf_counter() - t0) / n
    figures["seconds"] = time.perf_counter() - start
    figures["gain"] = expert.gain.tolist()
    figures["targets_met"] = {"standard_all_500": figures["standard"]["pc_500"] == 100.0,
                              "moderate_ge_95pc": figures["moderate"]["pc_500"] >= 95.0}
    print(f"{figures['ms_per_query']:.3f} ms per query")
    write_results("cartpole_expert", figures)


if __name__ == "__main__":
    main()
