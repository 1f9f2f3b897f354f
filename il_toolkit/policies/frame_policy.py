"""SB3 policies that act in an env's task frame (:mod:`il_toolkit.features.frames`), for GAIL's
generator: the network sees the frame's features in fixed units and outputs the frame's encoded
action in [-1, 1]; the env keeps its own observations and actions.

- :class:`FrameUnits`: the fixed-unit maps between an env's raw (observation, action) and the
  network's (features, [-1, 1] action), batched numpy.
- :class:`FrameEnv`: a gymnasium wrapper that shows a learner those units (PPO trains in it).
- :class:`FrameSB3Policy`: the trained SB3 policy behind the toolkit interface, acting on the
  raw env; its checkpoint is the SB3 policy's plus the frame's name.

Why: on PushT state, an SB3 (64, 64) Gaussian policy trained by BC on board coordinates reached 0%
success; in the ``pusht_push`` frame, 12% from 50 demonstrations (200 epochs) and 32% with (256,
256) from 200 (scratch study, 50 evaluation seeds).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces

from il_toolkit.policies.adapters import SB3Policy
from il_toolkit.policies.base import BasePolicy
from il_toolkit.features.frames import TaskFrame
from il_toolkit.features.state import StateFeatures
from il_toolkit.policies.spaces import to_unit_actions


@dataclass(frozen=True)
class FrameUnits:
    """The env's feature pipeline (:class:`~il_toolkit.features.state.StateFeatures` with task frame
    ``name``) in the frame's fixed units, for an env with ``action_space`` (a Box): raw observations
    (B, D) to features (B, F) divided by the frame's ``feature_scale``, and [-1, 1] actions (B, A),
    times its ``action_scale``, decoded to env actions clipped to the env's bounds, and back.
    Fixed units, not statistics: PPO keeps training the network on states the demonstrations never
    showed, and its Gaussian head needs actions in [-1, 1]."""

    name: str
    features: StateFeatures
    action_space: spaces.Box

    @classmethod
    def for_env(cls, name: str, observation_space: spaces.Space, action_space: spaces.Space) -> "FrameUnits":
        features = StateFeatures(int(np.prod(observation_space.shape)), int(np.prod(action_space.shape)), frame=name)
        frame = features.task_frame
        if frame.feature_scale is None or frame.action_scale is None or not frame.replaces_obs:
            raise ValueError(f"task frame {name!r} has no fixed units for SB3 policies; use a frame that has "
                             "(pusht_push) or turn task_frame off")
        return cls(name, features, action_space)

    @property
    def frame(self) -> TaskFrame:
        return self.features.task_frame

    @property
    def feature_space(self) -> spaces.Box:
        return spaces.Box(-np.inf, np.inf, (self.features.n_features,), np.float32)

    @property
    def unit_space(self) -> spaces.Box:
        return spaces.Box(-1.0, 1.0, (self.features.action_dim,), np.float32)

    def _raw(self, raw: np.ndarray) -> np.ndarray:
        return np.asarray(raw, np.float64).reshape(-1, self.features.obs_dim)

    def observe(self, raw: np.ndarray) -> np.ndarray:
        features = self.features.features(self._raw(raw), dtype=np.float64)
        return (features / np.asarray(self.frame.feature_scale)).astype(np.float32)

    def to_env(self, raw: np.ndarray, unit: np.ndarray) -> np.ndarray:
        unit = np.asarray(unit, np.float64).reshape(-1, self.features.action_dim)
        decoded = self.features.decode_actions(self._raw(raw), np.clip(unit, -1.0, 1.0) * self.frame.action_scale)
        return np.clip(decoded, self.action_space.low, self.action_space.high).astype(self.action_space.dtype)

    def transitions(self, transitions: Any) -> Any:
        """imitation ``Transitions`` of the raw env as a :class:`FrameEnv` learner sees them."""
        return dataclasses.replace(transitions, obs=self.observe(transitions.obs),
                                   next_obs=self.observe(transitions.next_obs),
                                   acts=self.to_unit(transitions.obs, transitions.acts))

    def to_unit(self, raw: np.ndarray, actions: np.ndarray) -> np.ndarray:
        actions = np.asarray(actions, np.float64).reshape(-1, self.features.action_dim)
        encoded = self.features.encode_actions(self._raw(raw), actions)
        return np.clip(encoded / self.frame.action_scale, -1.0, 1.0).astype(np.float32)


def in_learner_units(transitions: Any, policy: SB3Policy | FrameSB3Policy) -> Any:
    """imitation ``Transitions`` of the raw env as the SB3 network inside ``policy`` sees them: the
    task frame's features and actions (:class:`FrameSB3Policy`), actions in [-1, 1] (an
    :class:`SB3Policy` that rescales to the env's Box bounds), else as they are."""
    if isinstance(policy, FrameSB3Policy):
        return policy.units.transitions(transitions)
    if policy.rescales:
        return dataclasses.replace(transitions, acts=to_unit_actions(transitions.acts, policy.action_space))
    return transitions


def frame_units_for(env: gym.Env) -> FrameUnits | None:
    """The env's task frame (``env.unwrapped.policy_frame``) in fixed units, or None without one."""
    name = getattr(env.unwrapped, "policy_frame", None)
    return None if name is None else FrameUnits.for_env(name, env.observation_space, env.action_space)


class FrameEnv(gym.Wrapper):
    """``env`` as a frame learner sees it: observations are :meth:`FrameUnits.observe`'s features,
    actions are [-1, 1] frame actions (mapped by :meth:`FrameUnits.to_env` at the raw observation)."""

    def __init__(self, env: gym.Env, units: FrameUnits) -> None:
        super().__init__(env)
        self.units = units
        self.observation_space = units.feature_space
        self.action_space = units.unit_space
        self._raw: np.ndarray | None = None

    def reset(self, **kwargs: Any) -> tuple[np.ndarray, dict]:
        raw, info = self.env.reset(**kwargs)
        self._raw = np.asarray(raw)
        return self.units.observe(raw)[0], info

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        raw, reward, terminated, truncated, info = self.env.step(self.units.to_env(self._raw, action)[0])
        self._raw = np.asarray(raw)
        return self.units.observe(raw)[0], reward, terminated, truncated, info


class FrameSB3Policy(BasePolicy):
    """An SB3 policy trained in a :class:`FrameEnv`, acting on the raw env.

    ``inner``: an :class:`SB3Policy` on the frame's features with [-1, 1] actions;
    ``observation_space``/``action_space``: the env's."""

    checkpoint_kind = "sb3_frame"

    def __init__(self, inner: SB3Policy, frame: str, observation_space: spaces.Space, action_space: spaces.Space) -> None:
        super().__init__(observation_space, action_space)
        self.inner = inner
        self.units = FrameUnits.for_env(frame, observation_space, action_space)

    def _predict_batch(self, observations: Any, deterministic: bool) -> np.ndarray:
        unit, _ = self.inner.predict(self.units.observe(observations), deterministic=deterministic)
        return self.units.to_env(observations, unit)

    def checkpoint_config(self) -> dict[str, Any]:
        frame = self.units.frame
        return {"frame": self.units.name, "feature_scale": list(frame.feature_scale), "action_scale": frame.action_scale,
                "inner": self.inner.checkpoint_config()}

    def checkpoint_tensors(self) -> dict[str, torch.Tensor]:
        return self.inner.checkpoint_tensors()

    @classmethod
    def from_checkpoint(cls, config: dict[str, Any], tensors: Mapping[str, torch.Tensor],
                        observation_space: spaces.Space, action_space: spaces.Space) -> "FrameSB3Policy":
        units = FrameUnits.for_env(config["frame"], observation_space, action_space)
        saved = (tuple(config.get("feature_scale", ())), config.get("action_scale"))
        if saved != (tuple(units.frame.feature_scale), units.frame.action_scale):
            from il_toolkit.policies.checkpoint import CheckpointError

            raise CheckpointError(
                f"this {config['frame']!r} policy was trained with feature scales {list(saved[0])} and action scale "
                f"{saved[1]}; this version of the frame uses {list(units.frame.feature_scale)} and "
                f"{units.frame.action_scale}: load it with the il_toolkit version that saved it, or train it again"
            )
        inner = SB3Policy.from_checkpoint(config["inner"], tensors, units.feature_space, units.unit_space)
        return cls(inner, config["frame"], observation_space, action_space)
