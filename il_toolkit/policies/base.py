"""The one policy interface shared by every learner, expert and person in the toolkit.

Modelled on stable-baselines3's ``PolicyPredictor`` so that
``stable_baselines3.common.evaluation.evaluate_policy(policy, env)`` accepts any of them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, ClassVar, Mapping, Protocol, runtime_checkable

import numpy as np
import torch
from gymnasium import spaces

from il_toolkit.policies import checkpoint
from il_toolkit.policies.spaces import (add_batch_axis, check_observation, describe, is_batched, space_from_json,
                                       space_to_json, spaces_match)


@runtime_checkable
class Policy(Protocol):
    """What every policy offers.

    ``predict`` takes one observation, or a batch with a leading dimension, exactly like
    SB3: it returns ``(action, state)`` with the action batched iff the observation was.
    ``reset`` clears per-episode memory (action queues, observation history).
    ``save(path)`` writes a directory of ``config.json`` + ``model.safetensors`` that
    :func:`il_toolkit.policies.load` restores in a new process.
    """

    observation_space: spaces.Space
    action_space: spaces.Space

    def predict(
        self,
        observation: Any,
        state: Any = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = True,
    ) -> tuple[np.ndarray, Any]: ...

    def reset(self) -> None: ...

    def save(self, path: str | os.PathLike) -> Path: ...


class PolicyNotSaveableError(TypeError):
    """A policy that is code rather than parameters (e.g. a plain function)."""


class BasePolicy:
    """Shared plumbing for toolkit policies: batching in ``predict`` and checkpoint I/O.

    Subclasses implement :meth:`_predict_batch` (a batch of observations to a batch of
    actions) and, if they can be saved, set ``checkpoint_kind`` (a key of
    ``POLICY_REGISTRY``) and implement :meth:`checkpoint_config`,
    :meth:`checkpoint_tensors` and :meth:`from_checkpoint`.
    """

    checkpoint_kind: ClassVar[str | None] = None

    def __init__(self, observation_space: spaces.Space, action_space: spaces.Space) -> None:
        self.observation_space = observation_space
        self.action_space = action_space

    # -- acting ------------------------------------------------------------------------
    def predict(
        self,
        observation: Any,
        state: Any = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = True,
    ) -> tuple[np.ndarray, Any]:
        """Act on one observation or a batch; returns ``(action, state)`` like SB3."""
        batched = is_batched(observation, self.observation_space)
        check_observation(observation, self.observation_space, batched, type(self).__name__)
        obs_batch = observation if batched else add_batch_axis(observation)
        actions = self._predict_batch(obs_batch, deterministic=deterministic)
        return (actions if batched else actions[0]), state

    def _predict_batch(self, observations: Any, deterministic: bool) -> np.ndarray:
        raise NotImplementedError

    def reset(self) -> None:
        """Stateless by default."""

    # -- checkpoints -------------------------------------------------------------------
    def checkpoint_config(self) -> dict[str, Any]:
        """JSON-serialisable constructor arguments."""
        return {}

    def checkpoint_tensors(self) -> dict[str, torch.Tensor]:
        """The tensors to store in ``model.safetensors``."""
        return {}

    @classmethod
    def from_checkpoint(
        cls,
        config: dict[str, Any],
        tensors: Mapping[str, torch.Tensor],
        observation_space: spaces.Space,
        action_space: spaces.Space,
    ) -> "BasePolicy":
        raise NotImplementedError

    def save(self, path: str | os.PathLike) -> Path:
        """Write ``config.json`` + ``model.safetensors`` into directory ``path``."""
        if self.checkpoint_kind is None:
            raise PolicyNotSaveableError(
                f"{type(self).__name__} cannot be saved: it is code, not parameters. Register it as an "
                "expert (il_toolkit.experts.EXPERT_REGISTRY) or train a policy from it"
            )
        header = {
            "observation_space": space_to_json(self.observation_space),
            "action_space": space_to_json(self.action_space),
            "config": self.checkpoint_config(),
        }
        return checkpoint.write_checkpoint(
            path, kind=self.checkpoint_kind, header=header, tensors=self.checkpoint_tensors()
        )

    @classmethod
    def load(cls, path: str | os.PathLike) -> "BasePolicy":
        """Restore a policy saved by this class (see :func:`il_toolkit.policies.load`)."""
        from il_toolkit.policies import load

        policy = load(path)
        if not isinstance(policy, cls):
            raise checkpoint.CheckpointError(
                f"{str(path)!r} holds a {type(policy).__name__}, not a {cls.__name__}; "
                "use il_toolkit.policies.load(path) to restore whatever it holds"
            )
        return policy

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(observation_space={describe(self.observation_space)}, "
            f"action_space={describe(self.action_space)})"
        )


class SpaceMismatchError(ValueError):
    """Two spaces that should agree do not; the message names both."""


def check_spaces(
    what: str,
    observation_space: spaces.Space,
    action_space: spaces.Space,
    env_observation_space: spaces.Space,
    env_action_space: spaces.Space,
    fix: str,
) -> None:
    """Raise :class:`SpaceMismatchError` unless ``what``'s spaces equal the env's."""
    for name, ours, theirs in (
        ("observation", observation_space, env_observation_space),
        ("action", action_space, env_action_space),
    ):
        if not spaces_match(ours, theirs):
            raise SpaceMismatchError(
                f"{what} {name} space {describe(ours)} does not match env {name} space {describe(theirs)}: {fix}"
            )


def spaces_from_header(config: Mapping[str, Any]) -> tuple[spaces.Space, spaces.Space]:
    return space_from_json(config["observation_space"]), space_from_json(config["action_space"])
