"""What "normalised score" is measured against: the expert and a uniformly random policy,
evaluated with the shared evaluation on the very seeds every method is evaluated on.

``score = (method - random) / (expert - random)`` on the task's per-episode figure
(``sum_reward`` or ``max_reward``, the suite's ``score``), averaged over the evaluation
episodes first: expert = 1, random = 0 (imitation's convention).
"""

from __future__ import annotations

import time
from typing import Any


from il_toolkit.policies import RandomPolicy  # noqa: F401  (re-exported: the harness's references use it)

AGGREGATE_FOR_SCORE = {"sum_reward": "mean_return", "max_reward": "avg_max_reward"}


def reference_key(env_id: str, eval_seed: int, eval_episodes: int, obs_type: str | None = None) -> str:
    env = env_id if obs_type is None else f"{env_id}:{obs_type}"
    return f"{env}|eval{eval_seed}x{eval_episodes}"


def measure_references(env_id: str, eval_seed: int, eval_episodes: int, *, obs_type: str | None = None,
                       progress: bool = False) -> dict[str, Any]:
    """Evaluate the env's default expert and a random policy; returns a ``reference`` record."""
    from il_toolkit.envs import make_env
    from il_toolkit.evaluation import evaluate
    from il_toolkit.experts import DEFAULT_EXPERTS, make_expert

    start = time.perf_counter()
    env = make_env(env_id, **({} if obs_type is None else {"obs_type": obs_type}))
    try:
        expert = make_expert(env_id, env=env)  # experts that read the simulator need this very env
        expert_result = evaluate(expert, env, n_episodes=eval_episodes, seed=eval_seed, progress=progress)
        random_policy = RandomPolicy(env.observation_space, env.action_space, seed=eval_seed)
        random_result = evaluate(random_policy, env, n_episodes=eval_episodes, seed=eval_seed, progress=progress)
    finally:
        env.close()
    return {
        "kind": "reference",
        "key": reference_key(env_id, eval_seed, eval_episodes, obs_type),
        "env_id": env_id,
        "obs_type": obs_type,
        "eval_seed": eval_seed,
        "eval_episodes": eval_episodes,
        "expert_name": DEFAULT_EXPERTS.get(env_id),
        "expert": _summary(expert_result),
        "random": _summary(random_result),
        "seconds": time.perf_counter() - start,
        "eval_seconds": expert_result.seconds + random_result.seconds,
    }


def _summary(result: Any) -> dict[str, Any]:
    data = result.to_dict()
    return {"aggregates": data["aggregates"], "episodes": data["episodes"], "seconds": data["seconds"]}


def normalized_score(aggregates: dict[str, float], reference: dict[str, Any], score: str) -> float | None:
    """``(x - random) / (expert - random)`` for the aggregate behind ``score``; None when the
    expert is no better than random on these seeds (the score would be meaningless)."""
    name = AGGREGATE_FOR_SCORE[score]
    expert = float(reference["expert"]["aggregates"][name])
    random = float(reference["random"]["aggregates"][name])
    if not expert > random:
        return None
    return (float(aggregates[name]) - random) / (expert - random)
