"""Evaluation shared by every policy: per-episode records and aggregates.

Per episode (LeRobot's and imitation's vocabulary): ``sum_reward``, ``max_reward``,
``success``, ``seed``, ``length``. Aggregates: ``mean_return``, ``std_return``,
``pc_success`` (percent), ``avg_max_reward``. Episode ``i`` is reset with seed
``seed + i``, so every method is scored on the same starts.

``success`` is ``info["is_success"]`` at any step where the env reports it (PushT, ALOHA);
for envs that report nothing (CartPole) an episode succeeds when it reaches the time limit
without terminating (the pole stayed up for the whole horizon).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from il_toolkit.envs import make_env
from il_toolkit.policies.base import Policy, check_spaces
from il_toolkit.rollout import Episode, rollout_episode


@dataclass(frozen=True)
class EpisodeRecord:
    seed: int
    sum_reward: float
    max_reward: float
    success: bool
    length: int


@dataclass
class EvalResult:
    env_id: str
    episodes: list[EpisodeRecord]
    seconds: float
    aggregates: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        returns = np.array([e.sum_reward for e in self.episodes], dtype=np.float64)
        self.aggregates = {
            "n_episodes": len(self.episodes),
            "mean_return": float(returns.mean()),
            "std_return": float(returns.std()),
            "pc_success": float(100.0 * np.mean([e.success for e in self.episodes])),
            "avg_max_reward": float(np.mean([e.max_reward for e in self.episodes])),
            "mean_length": float(np.mean([e.length for e in self.episodes])),
        }

    @property
    def mean_return(self) -> float:
        return self.aggregates["mean_return"]

    @property
    def pc_success(self) -> float:
        return self.aggregates["pc_success"]

    def to_dict(self) -> dict[str, Any]:
        return {
            "env_id": self.env_id,
            "seconds": self.seconds,
            "aggregates": self.aggregates,
            "episodes": [asdict(e) for e in self.episodes],
        }

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2))
        return path

    def summary(self) -> str:
        a = self.aggregates
        return (
            f"{self.env_id}: return {a['mean_return']:.1f} ± {a['std_return']:.1f}, success {a['pc_success']:.1f}%, "
            f"avg max reward {a['avg_max_reward']:.3f} over {a['n_episodes']} episodes ({self.seconds:.1f} s)"
        )


def episode_record(episode: Episode) -> EpisodeRecord:
    return EpisodeRecord(
        seed=int(episode.seed) if episode.seed is not None else -1,
        sum_reward=episode.sum_reward,
        max_reward=float(np.max(episode.rewards)) if episode.rewards else 0.0,
        success=episode.success,
        length=episode.length,
    )


def evaluate(
    policy: Policy,
    env: str | gym.Env,
    n_episodes: int = 50,
    seed: int = 1_000_000,
    *,
    env_kwargs: dict[str, Any] | None = None,
    progress: bool = False,
) -> EvalResult:
    """Evaluate ``policy`` for ``n_episodes`` on seeds ``seed, seed+1, ...``.

    The default seed is far from the collection seeds (0, 1, ...) so demonstrations and
    evaluation starts never coincide.
    """
    from tqdm.auto import tqdm

    owns_env = isinstance(env, str)
    env_obj = make_env(env, **(env_kwargs or {})) if isinstance(env, str) else env
    env_id = env_obj.spec.id if env_obj.spec is not None else type(env_obj.unwrapped).__name__
    check_spaces(
        "policy", policy.observation_space, policy.action_space, env_obj.observation_space, env_obj.action_space,
        fix=f"evaluate the policy on the env it was trained on (this env is {env_id})",
    )
    start = time.perf_counter()
    try:
        episodes = [
            episode_record(rollout_episode(policy, env_obj, seed + i, keep_observations=False))
            for i in tqdm(range(n_episodes), desc=f"eval {env_id}", disable=not progress, leave=False)
        ]
    finally:
        if owns_env:
            env_obj.close()
    return EvalResult(env_id=env_id, episodes=episodes, seconds=time.perf_counter() - start)
