"""A policy that follows instructions naming a goal: a grounder and a state policy in the goal's frame.

``InstructedPolicy(grounder, state_policy, goal_frame)`` acts on the env's state observation and
the instruction it was given since its last :meth:`reset` (:meth:`set_instruction`; rollouts hand
it the env's ``info["instruction"]`` after every reset, and acting without one is an error rather
than a guess). The
:class:`~il_toolkit.model.grounding.InstructionGrounder` reads which goal the instruction names;
the :class:`~il_toolkit.features.goals.GoalFrame` moves the state into that goal's frame, where
``state_policy`` (any policy trained on demonstrations moved the same way: a flow-matching policy,
an MLP) acts, and its action is moved back. So the instruction decides what is right, and one
motor policy serves every goal.

Training (the goal poses recorded beside the demonstrations) is
:func:`il_toolkit.train.instructed.train_instructed_policy`. Saved as one checkpoint: the
grounder's config and the state policy's kind/config/space in ``config.json``, the tensors under
``grounder.`` and ``state_policy.``.
"""

from __future__ import annotations

import logging
from typing import Any, Mapping

import numpy as np
import torch
from gymnasium import spaces

from il_toolkit.features.goals import get_goal_frame
from il_toolkit.model.grounding import GrounderConfig, InstructionGrounder
from il_toolkit.policies.base import BasePolicy, SpaceMismatchError
from il_toolkit.policies.composite import inner_policy_json, load_part, prefixed, restore_inner_policy
from il_toolkit.policies.spaces import describe

logger = logging.getLogger(__name__)
GROUNDER, STATE_POLICY = "grounder.", "state_policy."


class MissingInstructionError(SpaceMismatchError):
    """Asked to act with no instruction since the last reset (an env that gives none, or a wrapper
    that does not forward ``set_instruction``)."""


class InstructedPolicy(BasePolicy):
    """Follow the instruction given with :meth:`set_instruction` (module docstring).

    Args:
        grounder: a trained :class:`InstructionGrounder` whose goals are poses for ``goal_frame``.
        state_policy: a policy trained on states moved into their goal's frame.
        goal_frame: a key of :data:`il_toolkit.features.goals.GOAL_FRAMES` (the env's ``goal_frame``).
        observation_space, action_space: the env's; the state policy acts in the goal frame's
            reference scene, whose action bounds may be wider (moved board corners), not its shape.
    """

    checkpoint_kind = "instructed"

    def __init__(self, grounder: InstructionGrounder, state_policy: BasePolicy, goal_frame: str,
                 observation_space: spaces.Space, action_space: spaces.Space) -> None:
        frame = get_goal_frame(goal_frame)
        if getattr(state_policy.action_space, "shape", None) != getattr(action_space, "shape", None):
            raise SpaceMismatchError(f"the state policy acts in {describe(state_policy.action_space)}, the env in "
                                     f"{describe(action_space)}: train it on the same env's demonstrations")
        if getattr(observation_space, "shape", None) != (frame.state_dim,):
            raise SpaceMismatchError(f"goal frame {goal_frame!r} moves states of {frame.state_dim} entries; the env "
                                     f"observes {describe(observation_space)}")
        if len(grounder.config.goals[0]) != frame.goal_dim:
            raise ValueError(f"the grounder's goals have {len(grounder.config.goals[0])} entries; goal frame "
                             f"{goal_frame!r} takes {frame.goal_dim}")
        super().__init__(observation_space, action_space)
        self.grounder, self.state_policy, self.goal_frame = grounder.eval(), state_policy, goal_frame
        self._frame = frame
        self._warned: set[str] = set()
        self.instruction: str | None = None
        self.goal_index: int | None = None
        self.goal: np.ndarray | None = None

    def set_instruction(self, instruction: str) -> None:
        """Ground ``instruction`` now; later actions go to its goal (a new goal restarts the state
        policy, whose queued actions were planned for the old one). One never seen in training is
        still grounded (to the most likely goal) and logged once as a warning."""
        self.instruction = str(instruction)
        if not self.grounder.is_seen(self.instruction) and self.instruction not in self._warned:
            self._warned.add(self.instruction)
            logger.warning("instruction %r was not seen in training; acting on the goal it is closest to",
                           self.instruction)
        index, goals = self.grounder.ground([self.instruction])
        if self.goal_index is not None and int(index[0]) != self.goal_index:
            self.state_policy.reset()
        self.goal_index, self.goal = int(index[0]), goals[0]

    def predict(self, observation: Any, state: Any = None, episode_start: np.ndarray | None = None,
                deterministic: bool = True) -> tuple[np.ndarray, Any]:
        """As every policy's; rows flagged in ``episode_start`` restart the state policy (the
        instruction stays: one instruction serves the whole batch)."""
        if episode_start is not None and np.any(episode_start):
            self.state_policy.reset()
        return super().predict(observation, state, episode_start, deterministic)

    def _predict_batch(self, observations: Any, deterministic: bool) -> np.ndarray:
        if self.goal is None:
            raise MissingInstructionError(
                "InstructedPolicy has no instruction since its last reset(): act in an env that gives "
                "info['instruction'] at reset (such as il_toolkit/PushTTwoTarget-v0; rollouts hand it over), or call "
                "set_instruction(text) first; a wrapper around the policy must forward set_instruction")
        states = np.asarray(observations, dtype=np.float64)
        goals = np.broadcast_to(self.goal, (len(states), len(self.goal)))
        actions, _ = self.state_policy.predict(self._frame.encode(states, goals), deterministic=deterministic)
        actions = self._frame.decode(np.asarray(actions, dtype=np.float64), goals)
        if isinstance(self.action_space, spaces.Box):
            actions = np.clip(actions, self.action_space.low, self.action_space.high)
        return actions.astype(self.action_space.dtype)

    def reset(self) -> None:
        """A new episode: the state policy restarts and the instruction is forgotten until the next
        :meth:`set_instruction`, so that no episode acts on the one before's."""
        self.state_policy.reset()
        self.instruction, self.goal_index, self.goal = None, None, None

    # -- checkpoints -----------------------------------------------------------------------
    def checkpoint_config(self) -> dict[str, Any]:
        return {"goal_frame": self.goal_frame, "grounder": self.grounder.config.to_json(),
                "state_policy": inner_policy_json(self.state_policy, "state policy")}

    def checkpoint_tensors(self) -> dict[str, torch.Tensor]:
        return {**prefixed(GROUNDER, self.grounder.state_dict()),
                **prefixed(STATE_POLICY, self.state_policy.checkpoint_tensors())}

    @classmethod
    def from_checkpoint(cls, config: dict[str, Any], tensors: Mapping[str, torch.Tensor],
                        observation_space: spaces.Space, action_space: spaces.Space) -> "InstructedPolicy":
        state_policy = restore_inner_policy(config.get("state_policy") or {}, tensors, STATE_POLICY, action_space,
                                            cls.checkpoint_kind, "state policy")
        grounder = InstructionGrounder(GrounderConfig.from_json(config.get("grounder") or {}))
        load_part(grounder, tensors, GROUNDER, "grounder")
        return cls(grounder, state_policy, str(config.get("goal_frame")), observation_space, action_space)

    def __repr__(self) -> str:
        return (f"InstructedPolicy(goal_frame={self.goal_frame!r}, goals={len(self.grounder.config.goals)}, "
                f"instruction={self.instruction!r}, state_policy={type(self.state_policy).__name__})")


__all__ = ["InstructedPolicy", "MissingInstructionError"]
