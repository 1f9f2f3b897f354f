"""The one episode loop: every rollout in the toolkit (evaluation, demonstrations,
collection into Minari) goes through :func:`rollout_episode`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import gymnasium as gym
import numpy as np

from il_toolkit.features.observations import flatten_observations
from il_toolkit.policies.base import Policy


@dataclass
class Episode:
    """One episode: ``observations`` has T+1 entries (the last is the final observation),
    ``actions`` and ``rewards`` T."""

    seed: int | None
    observations: list[Any] = field(default_factory=list)
    actions: list[np.ndarray] = field(default_factory=list)
    rewards: list[float] = field(default_factory=list)
    terminated: bool = False
    truncated: bool = False
    reported_success: bool | None = None  # None: the env never reported info["is_success"]
    frames: list[np.ndarray] = field(default_factory=list)  # env.render() after reset and each step, if asked
    states: list[np.ndarray] = field(default_factory=list)  # privileged_state(env) beside each observation, if any
    instruction: str | None = None  # info["instruction"] at reset, for envs whose instruction changes per episode
    final_info: dict[str, Any] = field(default_factory=dict)  # the info of the last step (or of the reset)

    @property
    def length(self) -> int:
        return len(self.rewards)

    @property
    def success(self) -> bool:
        """``info["is_success"]`` at any step where the env reports it; otherwise reaching the
        time limit without terminating (CartPole: the pole stayed up for the whole horizon)."""
        if self.reported_success is not None:
            return self.reported_success
        return self.truncated and not self.terminated

    @property
    def sum_reward(self) -> float:
        return float(np.sum(self.rewards))

    def to_trajectory(self):
        """As an imitation ``TrajectoryWithRew``."""
        from imitation.data.types import DictObs, TrajectoryWithRew

        if isinstance(self.observations[0], dict):
            # DictObs holds arrays only: nested cameras become "pixels/<camera>" keys, as when loading from Minari
            steps = [flatten_observations(o) for o in self.observations]
            obs: Any = DictObs({k: np.stack([step[k] for step in steps]) for k in steps[0]})
        else:
            obs = np.stack(self.observations)
        return TrajectoryWithRew(
            obs=obs,
            acts=np.stack(self.actions),
            infos=None,
            terminal=self.terminated,
            rews=np.asarray(self.rewards, dtype=np.float32),
        )


def privileged_state(env: gym.Env) -> np.ndarray | None:
    """The env's full state (``env.unwrapped.state_vector()``) where the observation is something
    else (pixels): training-only supervision for learners that estimate it from the pixels. None
    for envs that declare no ``state_vector`` and where the observation is that state already."""
    read = getattr(env.unwrapped, "state_vector", None)
    if read is None:
        return None
    space, state_space = env.observation_space, getattr(env.unwrapped, "state_space", None)
    if state_space is not None and isinstance(space, gym.spaces.Box) and space.shape == state_space.shape:
        return None
    state = np.asarray(read(), dtype=np.float64)
    if isinstance(space, gym.spaces.Box) and space.shape == state.shape:
        return None
    return state


def rollout_episode(
    policy: Policy,
    env: gym.Env,
    seed: int | None,
    *,
    keep_observations: bool = True,
    deterministic: bool = True,
    render: bool = False,
) -> Episode:
    """Run ``policy`` in ``env`` from ``env.reset(seed=seed)`` until the episode ends;
    an env that gives ``info["instruction"]`` at reset has it handed to the policy's
    ``set_instruction`` (where it has one) and kept in the episode; ``render`` keeps ``env.render()`` frames (the env must have ``render_mode="rgb_array"``).
    With ``keep_observations``, :func:`privileged_state` is kept beside each observation where
    the env has one."""
    obs, info = env.reset(seed=seed)
    policy.reset()
    episode = Episode(seed=seed, instruction=info.get("instruction"))
    if episode.instruction is not None and hasattr(policy, "set_instruction"):
        policy.set_instruction(episode.instruction)
    if render:
        episode.frames.append(env.render())
    if "is_success" in info:
        episode.reported_success = bool(info["is_success"])
    if keep_observations:
        _keep(episode, env, obs)
    done = False
    while not done:
        action, _ = policy.predict(obs, deterministic=deterministic)
        obs, reward, terminated, truncated, info = env.step(action)
        episode.rewards.append(float(reward))
        if keep_observations:
            episode.actions.append(np.asarray(action))
            _keep(episode, env, obs)
        if render:
            episode.frames.append(env.render())
        if "is_success" in info:
            episode.reported_success = bool(episode.reported_success) or bool(info["is_success"])
        done = terminated or truncated
    episode.terminated, episode.truncated, episode.final_info = bool(terminated), bool(truncated), dict(info)
    return episode


def _keep(episode: Episode, env: gym.Env, obs: Any) -> None:
    episode.observations.append(obs)
    state = privileged_state(env)
    if state is not None:
        episode.states.append(state)


def generate_trajectories(
    policy: Policy,
    env: gym.Env,
    seeds: Sequence[int],
    *,
    progress: bool = False,
    desc: str = "rollouts",
):
    """Roll out one episode per seed; returns imitation ``TrajectoryWithRew`` objects."""
    from tqdm.auto import tqdm

    return [
        rollout_episode(policy, env, seed).to_trajectory()
        for seed in tqdm(list(seeds), desc=desc, unit="ep", disable=not progress, leave=False)
    ]
