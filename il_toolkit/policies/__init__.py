"""The policy interface, adapters and checkpoint loading.

``POLICY_REGISTRY`` maps a checkpoint's ``kind`` to the class that restores it; loading
never unpickles, it rebuilds the class from ``config.json`` and fills in the tensors.
"""

from __future__ import annotations

import os
from typing import Any

from il_toolkit.policies.adapters import FunctionPolicy, RandomPolicy, SB3Policy, as_policy
from il_toolkit.policies.base import (
    BasePolicy,
    Policy,
    PolicyNotSaveableError,
    SpaceMismatchError,
    check_spaces,
    spaces_from_header,
)
from il_toolkit.policies.checkpoint import CheckpointError, read_checkpoint
from il_toolkit.registry import Registry

POLICY_REGISTRY: Registry[type[BasePolicy]] = Registry("policy kind")
POLICY_REGISTRY.register("sb3", indirect="il_toolkit.policies.adapters:SB3Policy")
POLICY_REGISTRY.register("sb3_frame", indirect="il_toolkit.policies.frame_policy:FrameSB3Policy")
POLICY_REGISTRY.register("mlp", indirect="il_toolkit.policies.mlp:MLPPolicy")
POLICY_REGISTRY.register("cartpole_lqr_expert", indirect="il_toolkit.experts.cartpole:CartPoleLQRExpert")
POLICY_REGISTRY.register("pusht_expert", indirect="il_toolkit.experts.pusht:PushTExpert")
POLICY_REGISTRY.register("aloha_transfer_cube_expert", indirect="il_toolkit.experts.aloha:AlohaTransferCubeExpert")
POLICY_REGISTRY.register("aloha_insertion_expert", indirect="il_toolkit.experts.aloha:AlohaInsertionExpert")
POLICY_REGISTRY.register("flow_matching", indirect="il_toolkit.policies.flow_policy:FlowMatchingPolicy")
POLICY_REGISTRY.register("vla", indirect="il_toolkit.model.vla:VLAModel")
POLICY_REGISTRY.register("ensemble", indirect="il_toolkit.policies.ensemble:EnsemblePolicy")
POLICY_REGISTRY.register("estimated_state", indirect="il_toolkit.policies.estimated_state:EstimatedStatePolicy")
POLICY_REGISTRY.register("instructed", indirect="il_toolkit.policies.instructed:InstructedPolicy")


def load(path: str | os.PathLike) -> BasePolicy:
    """Restore any policy saved with ``Policy.save(path)``.

    Refuses anything but a toolkit checkpoint directory (pickles, SB3 zips, truncated
    weights) with a :class:`CheckpointError` that says what to do instead.
    """
    config, tensors = read_checkpoint(path)
    kind = config.get("kind")
    if kind not in POLICY_REGISTRY:
        raise CheckpointError(
            f"{str(path)!r} holds a policy of kind {kind!r}, which this il_toolkit does not know; "
            f"known kinds: {', '.join(POLICY_REGISTRY.keys())}"
        )
    observation_space, action_space = spaces_from_header(config)
    policy_class = POLICY_REGISTRY.get(kind)
    try:
        policy = policy_class.from_checkpoint(config.get("config", {}), tensors, observation_space, action_space)
    except CheckpointError:
        raise
    except (KeyError, TypeError, ValueError, RuntimeError) as error:  # fields or tensors of another kind
        raise CheckpointError(
            f"{str(path)!r} says it holds a {kind!r} policy, but its config.json and weights do not fit one "
            f"({type(error).__name__}: {error}); was config.json edited, or written by another il_toolkit version? "
            "Save the policy again from the run that trained it"
        ) from error
    policy.trained_env = config.get("trained_env")
    return policy


def load_config(path: str | os.PathLike) -> dict[str, Any]:
    """The validated ``config.json`` of a checkpoint directory."""
    config, _ = read_checkpoint(path)
    return config


__all__ = [
    "POLICY_REGISTRY",
    "BasePolicy",
    "CheckpointError",
    "FunctionPolicy",
    "Policy",
    "PolicyNotSaveableError",
    "RandomPolicy",
    "SB3Policy",
    "SpaceMismatchError",
    "as_policy",
    "check_spaces",
    "load",
    "load_config",
]
