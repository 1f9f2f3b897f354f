"""CartPole for the toolkit: the gymnasium task, and a fixed-horizon variant.

Adversarial learners (GAIL, AIRL in ``imitation``) reject variable-length episodes, because
the episode length itself leaks reward information. ``FixedHorizonCartPoleEnv`` follows
``seals/CartPole-v0``: it never terminates; the reward is 1 while the pole and cart are
inside the usual limits and 0 outside, and the time limit alone ends the episode.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces
from gymnasium.envs.classic_control.cartpole import CartPoleEnv


class FixedHorizonCartPoleEnv(CartPoleEnv):
    """CartPole that runs for its whole horizon; reward 1 while upright and on the track."""

    def __init__(self, render_mode: str | None = None) -> None:
        super().__init__(render_mode=render_mode)
        high = np.full(4, np.finfo(np.float32).max, dtype=np.float32)
        self.observation_space = spaces.Box(-high, high, dtype=np.float32)

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        obs, _, terminated, truncated, info = super().step(action)
        # CartPoleEnv warns when stepped after termination; that is the point here.
        self.steps_beyond_terminated = None
        info["upright"] = not terminated
        return obs, float(not terminated), False, truncated, info
