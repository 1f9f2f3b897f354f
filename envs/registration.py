"""The toolkit's gymnasium ids, as data, and helpers to resolve and make them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym


@dataclass(frozen=True)
class EnvEntry:
    """One registered environment."""

    id: str
    entry_point: str
    max_episode_steps: int | None
    kwargs: dict[str, Any] = field(default_factory=dict)
    obs_types: tuple[str, ...] = ("state",)
    instruction: str = ""
    description: str = ""


ENVIRONMENTS: tuple[EnvEntry, ...] = (
    EnvEntry(
        id="il_toolkit/CartPole-v1",
        entry_point="gymnasium.envs.classic_control.cartpole:CartPoleEnv",
        max_episode_steps=500,
        instruction="balance the pole on the cart",
        description="gymnasium CartPole-v1; terminates when the pole falls",
    ),
    EnvEntry(
        id="il_toolkit/CartPoleFixedHorizon-v1",
        entry_point="il_toolkit.envs.cartpole:FixedHorizonCartPoleEnv",
        max_episode_steps=500,
        instruction="balance the pole on the cart",
        description="CartPole with a fixed 500-step horizon for GAIL/AIRL (seals-style reward)",
    ),
    EnvEntry(
        id="il_toolkit/PushT-v0",
        entry_point="il_toolkit.envs.pusht:PushTEnv",
        max_episode_steps=300,
        kwargs={"obs_type": "state"},
        obs_types=("state", "pixels", "pixels_agent_pos"),
        instruction="push the T block onto the target",
        description="gym-pusht; success = coverage > 0.95",
    ),
    EnvEntry(
        id="il_toolkit/PushTTwoTarget-v0",
        entry_point="il_toolkit.envs.pusht_two_target:PushTTwoTargetEnv",
        max_episode_steps=300,
        kwargs={"obs_type": "state"},
        instruction="push the T block onto the left target",
        description="gym-pusht with a left and a right target; info['instruction'] names the one to reach",
    ),
    EnvEntry(
        id="il_toolkit/AlohaTransferCube-v0",
        entry_point="il_toolkit.envs.aloha:AlohaEnv",
        max_episode_steps=400,
        kwargs={"task": "transfer_cube", "obs_type": "state", "control": "joint"},
        obs_types=("state", "pixels", "pixels_agent_pos"),
        instruction="transfer the red cube to the other arm",
        description="gym-aloha transfer_cube, joint-position control; strict end-state success, package reward in info['stage']",
    ),
    EnvEntry(
        id="il_toolkit/AlohaInsertion-v0",
        entry_point="il_toolkit.envs.aloha:AlohaEnv",
        max_episode_steps=400,
        kwargs={"task": "insertion", "obs_type": "state", "control": "joint"},
        obs_types=("state", "pixels", "pixels_agent_pos"),
        instruction="insert the peg into the socket",
        description="gym-aloha insertion, joint-position control; strict end-state success, package reward in info['stage']",
    ),
    EnvEntry(
        id="il_toolkit/AlohaTransferCubeEE-v0",
        entry_point="il_toolkit.envs.aloha:AlohaEnv",
        max_episode_steps=400,
        kwargs={"task": "transfer_cube", "obs_type": "state", "control": "ee"},
        obs_types=("state", "pixels", "pixels_agent_pos"),
        instruction="transfer the red cube to the other arm",
        description="gym-aloha transfer_cube, end-effector (mocap) control; strict end-state success, package reward in info['stage']",
    ),
    EnvEntry(
        id="il_toolkit/AlohaInsertionEE-v0",
        entry_point="il_toolkit.envs.aloha:AlohaEnv",
        max_episode_steps=400,
        kwargs={"task": "insertion", "obs_type": "state", "control": "ee"},
        obs_types=("state", "pixels", "pixels_agent_pos"),
        instruction="insert the peg into the socket",
        description="gym-aloha insertion, end-effector (mocap) control; strict end-state success, package reward in info['stage']",
    ),
)

# Plain gymnasium ids that mean the same task as one of ours.
ALIASES = {
    "CartPole-v1": "il_toolkit/CartPole-v1",
    "gym_pusht/PushT-v0": "il_toolkit/PushT-v0",
    "gym_aloha/AlohaTransferCube-v0": "il_toolkit/AlohaTransferCube-v0",
    "gym_aloha/AlohaInsertion-v0": "il_toolkit/AlohaInsertion-v0",
}


def register_envs() -> None:
    """Register every toolkit id with gymnasium (idempotent)."""
    for entry in ENVIRONMENTS:
        if entry.id not in gym.registry:
            gym.register(
                id=entry.id,
                entry_point=entry.entry_point,
                max_episode_steps=entry.max_episode_steps,
                kwargs=dict(entry.kwargs),
            )


class UnknownEnvError(ValueError):
    """An env id that neither the toolkit nor gymnasium knows."""


def toolkit_env_ids() -> list[str]:
    return [entry.id for entry in ENVIRONMENTS]


def env_entry(env_id: str) -> EnvEntry | None:
    canonical = canonical_env_id(env_id)
    return next((e for e in ENVIRONMENTS if e.id == canonical), None)


def canonical_env_id(env_id: str) -> str:
    """Map ``CartPole-v1`` or ``PushT-v0`` to the toolkit's id; other ids pass through.

    Raises :class:`UnknownEnvError`, listing the toolkit's ids, for an id gymnasium lacks.
    """
    register_envs()
    if env_id in ALIASES:
        return ALIASES[env_id]
    if "/" not in env_id and f"il_toolkit/{env_id}" in gym.registry:
        return f"il_toolkit/{env_id}"
    if env_id not in gym.registry:
        raise UnknownEnvError(
            f"unknown env id {env_id!r}; the toolkit's envs are: {', '.join(toolkit_env_ids())} "
            "(run `il-toolkit envs` to see them with their spaces)"
        )
    return env_id


class EnvArgumentError(UnknownEnvError):
    """Keyword arguments an env does not take (or values it refuses)."""


def make_env(env_id: str, **kwargs: Any) -> gym.Env:
    """``gym.make`` on the canonical id, with a clear error for unknown ids and for keyword
    arguments the env refuses (``--env-kwarg obs_type=foo``)."""
    canonical = canonical_env_id(env_id)
    try:
        return gym.make(canonical, **kwargs)
    except (TypeError, ValueError) as error:
        if not kwargs:
            raise
        raise EnvArgumentError(f"{canonical} refused the env arguments {kwargs}: {error}") from error
