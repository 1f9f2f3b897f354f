"""A pixel policy made of two learned parts: a state estimator and a state policy.

``EstimatedStatePolicy(estimator, state_policy)`` acts on camera observations (PushT's
``pixels_agent_pos``, ALOHA's cameras) by estimating the env's full state from them
(:class:`~il_toolkit.model.state_estimator.StateEstimator`) and handing that state to any policy
trained on the ``state`` observation (a flow-matching policy, an MLP trained by BC or DAgger). The
state policy keeps its own feature pipeline (PushT: the T block's frame), so whatever a learner
reaches from the state carries over to pixels, less what the estimate misses.

Privileged state is used in training only (the estimator's targets, the state policy's inputs);
acting reads the observation alone. Build one with
:func:`il_toolkit.train.state_estimation.train_estimated_state_policy`.

Saved as one checkpoint: ``config.json`` holds the estimator's config and the state policy's
kind, config and spaces; ``model.safetensors`` the estimator's tensors under ``estimator.`` and
the state policy's under ``state_policy.``.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import torch
from gymnasium import spaces

from il_toolkit.features.observations import flatten_observations
from il_toolkit.model.state_estimator import StateEstimator, StateEstimatorConfig
from il_toolkit.policies.base import BasePolicy, PolicyNotSaveableError, SpaceMismatchError
from il_toolkit.policies.spaces import describe, space_from_json, space_to_json, spaces_match

ESTIMATOR, STATE_POLICY = "estimator.", "state_policy."


class EstimatedStatePolicy(BasePolicy):
    """Act on camera observations through an estimate of the full state (module docstring).

    Args:
        estimator: a trained :class:`StateEstimator` for this observation space.
        state_policy: a policy acting on the full state (its observation space is the state's).
        observation_space: the camera env's observation space.
        action_space: the env's (the state policy's must be the same).
    """

    checkpoint_kind = "estimated_state"

    def __init__(self, estimator: StateEstimator, state_policy: BasePolicy, observation_space: spaces.Space,
                 action_space: spaces.Space) -> None:
        if not spaces_match(state_policy.action_space, action_space):
            raise SpaceMismatchError(f"the state policy acts in {describe(state_policy.action_space)}, the env in "
                                     f"{describe(action_space)}: train the state policy on the same env's state")
        state_shape = getattr(state_policy.observation_space, "shape", None)
        if state_shape != (estimator.config.state_dim,):
            raise ValueError(f"the state policy reads observations of shape {state_shape}; the estimator gives states "
                             f"of {estimator.config.state_dim} entries: train both on the same env's state")
        super().__init__(observation_space, action_space)
        self.estimator = estimator.eval()
        self.state_policy = state_policy

    def estimate_state(self, observations: Any) -> np.ndarray:
        """A batch of camera observations -> estimated full states ``(B, state_dim)``."""
        return self.estimator.estimate(flatten_observations(observations))

    def _predict_batch(self, observations: Any, deterministic: bool) -> np.ndarray:
        actions, _ = self.state_policy.predict(self.estimate_state(observations), deterministic=deterministic)
        return np.asarray(actions)

    def reset(self) -> None:
        self.state_policy.reset()

    # -- checkpoints -----------------------------------------------------------------------
    def checkpoint_config(self) -> dict[str, Any]:
        inner = self.state_policy
        if inner.checkpoint_kind is None:
            raise PolicyNotSaveableError(f"the state policy {type(inner).__name__} cannot be saved")
        return {"estimator": self.estimator.config.to_json(),
                "state_policy": {"kind": inner.checkpoint_kind, "config": inner.checkpoint_config(),
                                 "observation_space": space_to_json(inner.observation_space)}}

    def checkpoint_tensors(self) -> dict[str, torch.Tensor]:
        tensors = {ESTIMATOR + k: v for k, v in self.estimator.state_dict().items()}
        tensors.update({STATE_POLICY + k: v for k, v in self.state_policy.checkpoint_tensors().items()})
        return tensors

    @classmethod
    def from_checkpoint(cls, config: dict[str, Any], tensors: Mapping[str, torch.Tensor],
                        observation_space: spaces.Space, action_space: spaces.Space) -> "EstimatedStatePolicy":
        from il_toolkit.policies import POLICY_REGISTRY
        from il_toolkit.policies.checkpoint import CheckpointError

        inner = config.get("state_policy") or {}
        kind = inner.get("kind")
        if kind not in POLICY_REGISTRY or kind == cls.checkpoint_kind:
            raise CheckpointError(f"the state policy has kind {kind!r}, which cannot be restored")
        estimator = StateEstimator(StateEstimatorConfig.from_json(config.get("estimator") or {}))
        own = {k[len(ESTIMATOR):]: v for k, v in tensors.items() if k.startswith(ESTIMATOR)}
        result = estimator.load_state_dict(own, strict=False)
        if result.missing_keys or result.unexpected_keys:
            raise CheckpointError(f"the estimator's weights do not fit its config: missing {result.missing_keys[:5]}, "
                                  f"unexpected {result.unexpected_keys[:5]}; the checkpoint was edited")
        state_tensors = {k[len(STATE_POLICY):]: v for k, v in tensors.items() if k.startswith(STATE_POLICY)}
        state_policy = POLICY_REGISTRY.get(kind).from_checkpoint(
            inner.get("config", {}), state_tensors, space_from_json(inner["observation_space"]), action_space)
        return cls(estimator, state_policy, observation_space, action_space)

    def __repr__(self) -> str:
        c = self.estimator.config
        return (f"EstimatedStatePolicy(cameras={list(c.cameras)}, state_dim={c.state_dim}, "
                f"state_policy={type(self.state_policy).__name__})")


__all__ = ["EstimatedStatePolicy"]
