"""PushT (gym-pusht underneath), environment-centric.

Differences from ``gym_pusht/PushT-v0``:

- ``info["is_success"]`` is coverage > 0.95 (the package's threshold, stated here so it
  cannot drift), ``info["coverage"]`` the current and ``info["max_coverage"]`` the
  episode's best coverage so far;
- the observation types are ``state`` (agent x, y, block x, y, angle; pixels of a 512×512
  board), ``pixels`` (H×W×3 uint8) and ``pixels_agent_pos`` (dict of both);
- the simulator stays reachable as ``env.unwrapped.sim`` for state-feedback experts.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

OBS_TYPES = ("state", "pixels", "pixels_agent_pos")
SUCCESS_COVERAGE = 0.95
# the package declares float64 bounds as integers; the state space keeps them as float64 arrays
STATE_SPACE = gym.spaces.Box(low=np.zeros(5), high=np.array([512.0, 512.0, 512.0, 512.0, 2 * np.pi]), dtype=np.float64)


class PushTEnv(gym.Env):
    """Push a T-shaped block onto a fixed target pose with a circular pusher.

    Actions: ``Box(0, 512, (2,), float32)``, the pusher's target position in board pixels.
    Reward: coverage / 0.95 clipped to [0, 1]; the episode terminates on success.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(
        self,
        obs_type: str = "state",
        render_mode: str | None = "rgb_array",
        observation_width: int = 96,
        observation_height: int = 96,
    ) -> None:
        if obs_type not in OBS_TYPES:
            raise ValueError(f"unknown obs_type {obs_type!r}; choose one of {', '.join(OBS_TYPES)}")
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode {render_mode!r} is not supported; use 'rgb_array' or None")
        from gym_pusht.envs.pusht import PushTEnv as _Sim

        self.obs_type = obs_type
        self.render_mode = render_mode
        self.sim = _Sim(
            obs_type=obs_type,
            render_mode="rgb_array",
            observation_width=observation_width,
            observation_height=observation_height,
        )
        self.observation_space = self.sim.observation_space
        if obs_type == "state":
            self.observation_space = STATE_SPACE
        self.action_space = self.sim.action_space
        self._max_coverage = 0.0

    @property
    def action_reference(self) -> tuple[int, ...] | None:
        """The observation entries the action targets, for learners that regress actions as
        offsets (:class:`~il_toolkit.policies.mlp.MLPPolicy`): the pusher's target x, y <- the
        agent's x, y. ``state`` observations only."""
        return (0, 1) if self.obs_type == "state" else None

    @property
    def policy_frame(self) -> str | None:
        """The task frame MLP learners see the state in (``ILConfig.task_frame``): the block's,
        :mod:`il_toolkit.features.frames` ``pusht_push``. ``state`` observations only."""
        return "pusht_push" if self.obs_type == "state" else None

    @property
    def action_chunk(self) -> int:
        """Actions a chunked learner should predict per step (``il-toolkit train flow``'s default
        horizon): 1. Success needs the last 2 px and 2 degrees, and the T moves while pushed, so the
        policy re-plans every step: a flow policy with chunks of 16 reached 17% success executing 8,
        68% re-planning every step, against 99% for a horizon of 1 (``benchmarks/flow_state.py``)."""
        return 1

    @property
    def state_space(self) -> gym.spaces.Box:
        """The space of :meth:`state_vector` (the ``state`` observation's)."""
        return STATE_SPACE

    def state_vector(self) -> np.ndarray:
        """The ``state`` observation whatever ``obs_type`` is: agent x, y, block x, y, angle in
        [0, 2π) (float64). Collectors record it beside pixel observations (the Minari info
        ``state``) as training-only supervision: see :mod:`il_toolkit.policies.estimated_state`."""
        sim = self.sim
        return np.array([*sim.agent.position, *sim.block.position, sim.block.angle % (2 * np.pi)], dtype=np.float64)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict]:
        super().reset(seed=seed)
        obs, info = self.sim.reset(seed=seed, options=options)
        coverage = float(self.sim._get_coverage())
        self._max_coverage = coverage
        return obs, self._info(info, coverage)

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
        obs, reward, _, truncated, info = self.sim.step(np.asarray(action, dtype=np.float64))
        coverage = float(info["coverage"])
        self._max_coverage = max(self._max_coverage, coverage)
        info = self._info(info, coverage)
        return obs, float(reward), bool(info["is_success"]), bool(truncated), info

    def _info(self, info: dict, coverage: float) -> dict:
        return {
            **info,
            "coverage": coverage,
            "max_coverage": self._max_coverage,
            "is_success": coverage > SUCCESS_COVERAGE,
        }

    def render(self) -> np.ndarray | None:
        if self.render_mode is None:
            return None
        return self.sim.render()

    def close(self) -> None:
        self.sim.close()
