"""Policies made of parts (a learned module in front of a state policy: :class:`EstimatedStatePolicy`,
:class:`InstructedPolicy`): how the parts go into one checkpoint and come back out.

A part's tensors are stored under a prefix (``"estimator."``, ``"state_policy."``); the inner state
policy's kind, config and spaces are stored in the outer policy's config (:func:`inner_policy_json`)
and rebuilt from there (:func:`restore_inner_policy`).
"""

from __future__ import annotations

from typing import Any, Mapping

import torch
from gymnasium import spaces
from torch import nn

from il_toolkit.policies.base import BasePolicy, PolicyNotSaveableError
from il_toolkit.policies.checkpoint import CheckpointError
from il_toolkit.policies.spaces import space_from_json, space_to_json


def prefixed(prefix: str, tensors: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``tensors`` with every name under ``prefix``."""
    return {prefix + name: value for name, value in tensors.items()}


def under(prefix: str, tensors: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The tensors stored under ``prefix``, with the prefix taken off their names."""
    return {name[len(prefix):]: value for name, value in tensors.items() if name.startswith(prefix)}


def load_part(module: nn.Module, tensors: Mapping[str, torch.Tensor], prefix: str, what: str) -> nn.Module:
    """Fill ``module`` with the tensors under ``prefix``; a missing or extra tensor is a
    :class:`CheckpointError` naming ``what``."""
    result = module.load_state_dict(under(prefix, tensors), strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise CheckpointError(f"the {what}'s weights do not fit its config: missing {result.missing_keys[:5]}, "
                              f"unexpected {result.unexpected_keys[:5]}; the checkpoint was edited: train it again")
    return module


def inner_policy_json(policy: BasePolicy, what: str) -> dict[str, Any]:
    """What rebuilds ``policy`` inside another policy's config: its kind, config and spaces."""
    if policy.checkpoint_kind is None:
        raise PolicyNotSaveableError(f"the {what} {type(policy).__name__} cannot be saved")
    return {"kind": policy.checkpoint_kind, "config": policy.checkpoint_config(),
            "observation_space": space_to_json(policy.observation_space),
            "action_space": space_to_json(policy.action_space)}


def restore_inner_policy(data: Mapping[str, Any], tensors: Mapping[str, torch.Tensor], prefix: str,
                         action_space: spaces.Space, outer_kind: str, what: str) -> BasePolicy:
    """The policy :func:`inner_policy_json` described, with its tensors from under ``prefix``;
    ``action_space`` where the config has none (checkpoints written before it was stored)."""
    from il_toolkit.policies import POLICY_REGISTRY

    kind = data.get("kind")
    if kind not in POLICY_REGISTRY or kind == outer_kind:
        raise CheckpointError(f"the {what} has kind {kind!r}, which cannot be restored: the checkpoint was edited or "
                              "written by another version; train it again")
    inner_actions = space_from_json(data["action_space"]) if "action_space" in data else action_space
    return POLICY_REGISTRY.get(kind).from_checkpoint(
        data.get("config", {}), under(prefix, tensors), space_from_json(data["observation_space"]), inner_actions)


__all__ = ["inner_policy_json", "load_part", "prefixed", "restore_inner_policy", "under"]
