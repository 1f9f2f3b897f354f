"""Scripted state-feedback experts (installed as ``il_toolkit.experts``).

Every expert is a :class:`il_toolkit.policies.Policy` that can be asked for an action in
any state, so DAgger can query it from wherever the learner went.
``EXPERT_REGISTRY`` maps an expert name to its class; each entry's metadata lists the env
ids it serves, and ``DEFAULT_EXPERTS`` names the expert :func:`make_expert` picks.
"""

from __future__ import annotations

import os
from typing import Any

import gymnasium as gym

from il_toolkit.envs import canonical_env_id, make_env
from il_toolkit.registry import Registry, UnknownKeyError

EXPERT_REGISTRY: Registry[type] = Registry("expert")
EXPERT_REGISTRY.register(
    "cartpole_lqr",
    indirect="il_toolkit.experts.cartpole:CartPoleLQRExpert",
    env_ids=("il_toolkit/CartPole-v1", "il_toolkit/CartPoleFixedHorizon-v1"),
    description="LQR on the linearised cart-pole dynamics, bang-bang on the sign of the force",
)
EXPERT_REGISTRY.register(
    "pusht",
    indirect="il_toolkit.experts.pusht:PushTExpert",
    env_ids=("il_toolkit/PushT-v0", "il_toolkit/PushTTwoTarget-v0"),
    description="memoryless pusher: best contact by the closed-form frictionless push response, routed around the T",
)

DEFAULT_EXPERTS: dict[str, str] = {
    "il_toolkit/CartPole-v1": "cartpole_lqr",
    "il_toolkit/CartPoleFixedHorizon-v1": "cartpole_lqr",
}
DEFAULT_EXPERTS["il_toolkit/PushT-v0"] = "pusht"
DEFAULT_EXPERTS["il_toolkit/PushTTwoTarget-v0"] = "pusht"
EXPERT_REGISTRY.register(
    "aloha_transfer_cube",
    indirect="il_toolkit.experts.aloha:AlohaTransferCubeExpert",
    env_ids=("il_toolkit/AlohaTransferCube-v0",),
    description="state feedback in joint space: phase from the state, IK to end-effector goals from the cube pose",
)
EXPERT_REGISTRY.register(
    "aloha_insertion",
    indirect="il_toolkit.experts.aloha:AlohaInsertionExpert",
    env_ids=("il_toolkit/AlohaInsertion-v0",),
    description="state feedback in joint space: picks peg and socket, aligns the peg on the socket's axis",
)
DEFAULT_EXPERTS["il_toolkit/AlohaTransferCube-v0"] = "aloha_transfer_cube"
DEFAULT_EXPERTS["il_toolkit/AlohaInsertion-v0"] = "aloha_insertion"


class ExpertEnvMismatchError(ValueError):
    """An expert asked to act in an env it was not written for."""


def experts_for(env_id: str) -> list[str]:
    """Names of the registered experts that serve ``env_id``."""
    canonical = canonical_env_id(env_id)
    return [name for name in EXPERT_REGISTRY.keys() if canonical in EXPERT_REGISTRY.metadata(name)["env_ids"]]


def make_expert(env_id: str, env: gym.Env | None = None, name: str | None = None, **options: Any):
    """The expert for ``env_id`` (or the one called ``name``, or the saved policy at path ``name``:
    any toolkit checkpoint directory, an RL policy trained with SB3 and saved by
    ``SB3Policy.from_model(model).save(dir)`` included) as a Policy.

    ``env`` is the environment instance the expert will act in; experts that read the
    simulator state (PushT, ALOHA) need the very instance being stepped. Without it a new
    env is made. ``options`` go to the expert's constructor (noise, seed, ...).
    """
    canonical = canonical_env_id(env_id)
    if name is not None and _is_path(name):
        return saved_expert(name, env if env is not None else make_env(canonical), canonical)
    if name is None or name == "default":
        if canonical not in DEFAULT_EXPERTS:
            raise UnknownKeyError(
                f"no expert is registered for {canonical!r}; envs with experts: {', '.join(sorted(DEFAULT_EXPERTS))}"
            )
        name = DEFAULT_EXPERTS[canonical]
    expert_class = EXPERT_REGISTRY.get(name)
    served = EXPERT_REGISTRY.metadata(name)["env_ids"]
    if canonical not in served:
        raise ExpertEnvMismatchError(
            f"expert {name!r} acts in {', '.join(served)}, not {canonical!r}; experts for {canonical!r}: "
            f"{', '.join(experts_for(canonical)) or '(none)'}"
        )
    return expert_class(env if env is not None else make_env(canonical), **options)


def _is_path(name: str) -> bool:
    return os.sep in name or "/" in name or name.endswith(".zip") or os.path.exists(name)


def saved_expert(path: str, env: gym.Env, env_id: str):
    """A saved policy as the expert for ``env`` (spaces checked). SB3 ``.zip`` files are refused:
    they hold pickles, which the toolkit never loads from a file it is handed."""
    from il_toolkit.policies import CheckpointError, check_spaces, load

    if path.endswith(".zip") or os.path.isfile(path):
        raise CheckpointError(
            f"{path!r} is a file; an expert from disk must be a toolkit policy directory (config.json + "
            "model.safetensors). An SB3 .zip holds pickles, which il_toolkit never loads from a file it is handed: in a "
            "session you trust, run `SB3Policy.from_model(PPO.load(path)).save('expert_dir')` "
            "(from il_toolkit.policies import SB3Policy) and pass --expert expert_dir"
        )
    policy = load(path)
    check_spaces("expert", policy.observation_space, policy.action_space, env.observation_space, env.action_space,
                 fix=f"--expert {path} must be a policy trained on {env_id}")
    return policy


__all__ = ["DEFAULT_EXPERTS", "EXPERT_REGISTRY", "ExpertEnvMismatchError", "experts_for", "make_expert"]
