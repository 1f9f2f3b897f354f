"""Wrappers that end a DAgger rollout early: once it is stuck (:class:`EndWhenStuck`, with the
:class:`StuckDetector` the interactive actor also uses) and once the run's expert-label budget is
spent (:class:`LabelBudget`)."""

from __future__ import annotations

from collections import deque
from typing import Any, Callable

import gymnasium as gym
import numpy as np


class StuckDetector:
    """Whether a rollout is stuck: for ``steps`` steps in a row, each observation has repeated
    one of the ``window`` before it (every entry within 1e-3, absolute and relative to its
    size). Standing still is the cycle of period 1; a deterministic learner in a deterministic
    env that comes back to a state loops through the same states to the end of the episode.
    ``steps`` 0: never."""

    TOLERANCE = 1e-3
    WINDOW = 20  # longest cycle recognised, in steps

    def __init__(self, steps: int, window: int = WINDOW) -> None:
        self.steps, self.window = steps, window
        self.reset()

    def reset(self) -> None:
        self.recent: deque[np.ndarray] = deque(maxlen=self.window)
        self.still = 0  # consecutive steps that repeated a recent observation

    def update(self, observation: Any) -> bool:
        """Record the next observation; True once ``steps`` in a row have repeated recent ones."""
        if self.steps <= 0:
            return False
        flat = np.concatenate([np.asarray(v, dtype=np.float64).ravel() for v in
                               (observation.values() if isinstance(observation, dict) else [observation])])
        repeated = any(np.allclose(flat, past, rtol=self.TOLERANCE, atol=self.TOLERANCE) for past in self.recent)
        self.still = self.still + 1 if repeated else 0
        self.recent.append(flat)
        return self.still >= self.steps


class EndWhenStuck(gym.Wrapper):
    """Truncates an episode once it is stuck (:class:`StuckDetector`) for ``steps`` steps."""

    def __init__(self, env: gym.Env, steps: int) -> None:
        super().__init__(env)
        self.detector = StuckDetector(steps)

    def reset(self, **kwargs: Any):
        self.detector.reset()
        obs, info = self.env.reset(**kwargs)
        self.detector.update(obs)
        return obs, info

    def step(self, action: Any):
        obs, reward, terminated, truncated, info = self.env.step(action)
        if self.detector.update(obs) and not terminated:
            truncated = True
            info = {**info, "stuck": True}
        return obs, reward, terminated, truncated, info


class LabelBudget(gym.Wrapper):
    """Truncates the episode in progress once ``labels`` expert labels have been spent, counted
    across episodes by ``spent()`` (the actor's label count); ``exhausted`` then says no further
    episode should start."""

    def __init__(self, env: gym.Env, labels: int, spent: Callable[[], int]) -> None:
        super().__init__(env)
        self.labels, self.spent = labels, spent

    @property
    def exhausted(self) -> bool:
        return self.spent() >= self.labels

    def step(self, action: Any):
        obs, reward, terminated, truncated, info = self.env.step(action)
        if self.exhausted and not (terminated or truncated):
            truncated = True
            info = {**info, "label_budget": True}
        return obs, reward, terminated, truncated, info
