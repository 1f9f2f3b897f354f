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
from il_toolkit.policies.base import BasePolicy, SpaceMismatchError
from il_toolkit.policies.composite import inner_policy_json, load_part, prefixed, restore_inner_policy
from il_toolkit.policies.spaces import describe, spaces_match

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
        return {"estimator": self.estimator.config.to_json(),
                "state_policy": inner_policy_json(self.state_policy, "state policy")}

    def checkpoint_tensors(self) -> dict[str, torch.Tensor]:
        return {**prefixed(ESTIMATOR, self.estimator.state_dict()),
                **prefixed(STATE_POLICY, self.state_policy.checkpoint_tensors())}

    @classmethod
    def from_checkpoint(cls, config: dict[str, Any], tensors: Mapping[str, torch.Tensor],
                        observation_space: spaces.Space, action_space: spaces.Space) -> "EstimatedStatePolicy":
        state_policy = restore_inner_policy(config.get("state_policy") or {}, tensors, STATE_POLICY, action_space,
                                            cls.checkpoint_kind, "state policy")
        estimator = StateEstimator(StateEstimatorConfig.from_json(config.get("estimator") or {}))
        load_part(estimator, tensors, ESTIMATOR, "estimator")
        return cls(estimator, state_policy, observation_space, action_space)

    def __repr__(self) -> str:
        c = self.estimator.config
        return (f"EstimatedStatePolicy(cameras={list(c.cameras)}, state_dim={c.state_dim}, "
                f"state_policy={type(self.state_policy).__name__})")


__all__ = ["EstimatedStatePolicy"]
