"""K policies acting as one: the mean of their actions, and how much they disagree.

EnsembleDAgger (Menda et al., 2019) and ThriftyDAgger (Hoque et al., 2021) train K learners
on the same data from different initial weights and read the spread of their actions as the
learner's doubt: where the members disagree, the data did not pin the action down, and that
is where an expert's label is worth most.

Saved as one checkpoint: ``config.json`` lists each member's kind and config, and
``model.safetensors`` holds each member's tensors under ``member<i>.``.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import torch
from gymnasium import spaces

from il_toolkit.policies.base import BasePolicy, PolicyNotSaveableError, check_spaces
from il_toolkit.policies.spaces import half_ranges


COMBINES = ("first", "medoid", "mean")


class EnsemblePolicy(BasePolicy):
    """K policies as one learner: by default the first member acts and the others only say how
    sure the ensemble is (:meth:`disagreement`); ``combine="medoid"`` acts with the member action
    closest to the others, ``"mean"`` with their mean (EnsembleDAgger's rule for unimodal
    learners). Discrete actions: the majority vote, whatever ``combine`` says.

    Why the first member: on PushT (flow-matching members, EnsembleDAgger round 5, 30 unseen
    seeds) single members succeeded 80-87% of the time, their mean 57% and the medoid 63%:
    members that plan different ways round the T, mixed step by step, act between the plans.

    Args:
        members: at least two policies for the same spaces.
        combine: ``"first"``, ``"medoid"`` or ``"mean"`` (continuous actions).
    """

    checkpoint_kind = "ensemble"

    def __init__(self, members: Sequence[BasePolicy], combine: str = "first") -> None:
        if combine not in COMBINES:
            raise ValueError(f"combine must be one of {', '.join(COMBINES)}, got {combine!r}")
        self.combine_rule = combine
        if len(members) < 2:
            raise ValueError(f"an ensemble needs at least 2 members, got {len(members)}")
        first = members[0]
        for i, member in enumerate(members[1:], start=1):
            check_spaces(f"ensemble member {i}", member.observation_space, member.action_space,
                         first.observation_space, first.action_space, fix="every member must act in the same env")
        super().__init__(first.observation_space, first.action_space)
        self.members = list(members)

    def member_actions(self, observations: Any, deterministic: bool = True) -> np.ndarray:
        """Every member's actions for a batch: (K, B, *action_shape)."""
        return np.stack([np.asarray(m.predict(observations, deterministic=deterministic)[0]) for m in self.members])

    def _predict_batch(self, observations: Any, deterministic: bool) -> np.ndarray:
        if self.combine_rule == "first" and not isinstance(self.action_space, spaces.Discrete):
            return np.asarray(self.members[0].predict(observations, deterministic=deterministic)[0])
        return self.combine(self.member_actions(observations, deterministic))

    def combine(self, actions: np.ndarray) -> np.ndarray:
        """(K, B, ...) member actions -> (B, ...) ensemble actions."""
        if isinstance(self.action_space, spaces.Discrete):
            votes = actions.astype(np.int64)
            return np.array([np.bincount(votes[:, b], minlength=int(self.action_space.n)).argmax()
                             for b in range(votes.shape[1])], dtype=self.action_space.dtype)
        if self.combine_rule == "first":
            return actions[0].astype(self.action_space.dtype)
        if self.combine_rule == "mean" or len(self.members) < 3:
            return actions.mean(axis=0).astype(self.action_space.dtype)
        flat = actions.reshape(actions.shape[0], actions.shape[1], -1) / half_ranges(self.action_space)
        spread = np.linalg.norm(flat[:, None] - flat[None, :], axis=-1).sum(axis=1)  # (K, B): distance to the others
        return actions[spread.argmin(axis=0), np.arange(actions.shape[1])].astype(self.action_space.dtype)

    def disagreement(self, actions: np.ndarray) -> np.ndarray:
        """(K, B, ...) member actions -> (B,) spread: for a Box, the root mean over action
        dimensions of the members' variance, each dimension in units of half its range (so 0
        is unanimous and 1 is as far apart as the action space allows); for a Discrete space,
        the share of members outside the majority."""
        if isinstance(self.action_space, spaces.Discrete):
            majority = self.combine(actions)
            return (actions != majority[None]).mean(axis=0).astype(np.float64)
        scaled = actions.reshape(actions.shape[0], actions.shape[1], -1) / half_ranges(self.action_space)
        return np.sqrt(scaled.var(axis=0).mean(axis=-1))

    def reset(self) -> None:
        for member in self.members:
            member.reset()

    # -- checkpoints -----------------------------------------------------------------------
    def checkpoint_config(self) -> dict[str, Any]:
        for member in self.members:
            if member.checkpoint_kind is None:
                raise PolicyNotSaveableError(f"ensemble member {type(member).__name__} cannot be saved")
        return {"combine": self.combine_rule,
                "members": [{"kind": m.checkpoint_kind, "config": m.checkpoint_config()} for m in self.members]}

    def checkpoint_tensors(self) -> dict[str, torch.Tensor]:
        return {f"member{i}.{name}": tensor for i, m in enumerate(self.members)
                for name, tensor in m.checkpoint_tensors().items()}

    @classmethod
    def from_checkpoint(cls, config: dict[str, Any], tensors: Mapping[str, torch.Tensor],
                        observation_space: spaces.Space, action_space: spaces.Space) -> "EnsemblePolicy":
        from il_toolkit.policies import POLICY_REGISTRY
        from il_toolkit.policies.checkpoint import CheckpointError

        members = []
        for i, entry in enumerate(config.get("members", [])):
            kind = entry.get("kind")
            if kind not in POLICY_REGISTRY or kind == cls.checkpoint_kind:
                raise CheckpointError(f"ensemble member {i} has kind {kind!r}, which cannot be restored; known kinds: "
                                      f"{', '.join(k for k in POLICY_REGISTRY.keys() if k != cls.checkpoint_kind)}")
            prefix = f"member{i}."
            own = {name[len(prefix):]: t for name, t in tensors.items() if name.startswith(prefix)}
            members.append(POLICY_REGISTRY.get(kind).from_checkpoint(entry.get("config", {}), own,
                                                                      observation_space, action_space))
        return cls(members, combine=config.get("combine", "mean"))  # checkpoints without the key averaged

