"""Goal frames: a state seen from a goal pose, so that one state policy serves every goal.

A :class:`GoalFrame` moves a batch of states rigidly, so that the goal the states are meant to reach
lands on a reference pose (the one goal of the frame's ``reference_env``), and moves the
policy's actions back. A state policy trained
on the moved states of demonstrations (for PushT: the task PushT always sets, its target at
gym-pusht's pose) then acts for any goal: the goal-conditioned policy is
``decode(state_policy(encode(state, goal)), goal)``. Envs name their frame in
``env.unwrapped.goal_frame`` and say where the goal sits in their ``state_vector()`` with
``goal_dims``; :class:`~il_toolkit.policies.instructed.InstructedPolicy` uses both.

``pusht``: states (agent x, y, block x, y, angle), goals and actions in board pixels and radians.
A rigid motion of the pusher, the block and the target together leaves the push physics unchanged
(the walls aside), which is why a PushT policy learnt at one target serves another.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from il_toolkit.envs.pusht_geometry import GOAL_POSE


def _rotate(vectors: np.ndarray, angle: np.ndarray) -> np.ndarray:
    """Rotate (B, 2) vectors by (B,) radians."""
    c, s = np.cos(angle), np.sin(angle)
    return np.stack([c * vectors[:, 0] - s * vectors[:, 1], s * vectors[:, 0] + c * vectors[:, 1]], axis=1)


def pusht_actions_to_reference(points: np.ndarray, goals: np.ndarray) -> np.ndarray:
    """Board positions (B, 2) (pusher targets, the agent, the block) in the scene whose target is
    ``goals`` (B, 3) -> where the same rigid motion that takes that target onto gym-pusht's
    (256, 256, π/4) puts them."""
    return _rotate(points - goals[:, :2], GOAL_POSE[2] - goals[:, 2]) + GOAL_POSE[:2]


def pusht_actions_from_reference(points: np.ndarray, goals: np.ndarray) -> np.ndarray:
    """The inverse of :func:`pusht_actions_to_reference`: positions in the reference scene -> board pixels."""
    return _rotate(points - GOAL_POSE[:2], goals[:, 2] - GOAL_POSE[2]) + goals[:, :2]


def pusht_to_reference(states: np.ndarray, goals: np.ndarray) -> np.ndarray:
    """(B, 5) PushT states with target poses ``goals`` (B, 3) -> the same scenes moved so that the
    target is gym-pusht's; angles in [0, 2π)."""
    out = np.array(states, dtype=np.float64, copy=True)
    for at in (0, 2):  # agent, block
        out[:, at:at + 2] = pusht_actions_to_reference(states[:, at:at + 2], goals)
    out[:, 4] = (states[:, 4] + GOAL_POSE[2] - goals[:, 2]) % (2 * np.pi)
    return out


@dataclass(frozen=True)
class GoalFrame:
    """One entry of :data:`GOAL_FRAMES`: ``goal_dim`` numbers per goal, ``state_dim`` per state;
    ``encode(states, goals)``, ``actions_to(actions, goals)`` into the reference scene and
    ``decode(actions, goals)`` out of it, all batched numpy. ``reference_env``: the env whose one
    goal is the reference (its feature pipeline and training defaults suit the moved states)."""

    reference_env: str
    state_dim: int
    goal_dim: int
    encode: Callable[[np.ndarray, np.ndarray], np.ndarray]
    actions_to: Callable[[np.ndarray, np.ndarray], np.ndarray]
    decode: Callable[[np.ndarray, np.ndarray], np.ndarray]


GOAL_FRAMES: dict[str, GoalFrame] = {
    "pusht": GoalFrame("il_toolkit/PushT-v0", 5, 3, pusht_to_reference, pusht_actions_to_reference,
                       pusht_actions_from_reference),
}


def goal_table(episode_goals: np.ndarray, decimals: int = 6) -> tuple[np.ndarray, np.ndarray]:
    """The distinct goals (K, G) among ``episode_goals`` (E, G) (equal to ``decimals`` places; each as first
    recorded, not rounded) and each episode's index into them."""
    goals = np.asarray(episode_goals, np.float64)
    _, first, index = np.unique(np.round(goals, decimals), axis=0, return_index=True, return_inverse=True)
    return goals[first], index.reshape(-1)


def env_goal_frame(env: Any, user: str) -> tuple[str, tuple[int, int]]:
    """``(goal_frame, goal_dims)`` an env declares (its instruction names a goal pose it records in
    ``state_vector()[goal_dims]``); a ValueError saying that ``user`` needs them otherwise."""
    unwrapped = env.unwrapped
    frame, dims = getattr(unwrapped, "goal_frame", None), getattr(unwrapped, "goal_dims", None)
    if frame is None or dims is None:
        raise ValueError(f"{type(unwrapped).__name__} declares no goal_frame/goal_dims: {user} needs an env whose "
                         "instruction names a goal pose it records (such as il_toolkit/PushTTwoTarget-v0)")
    return frame, (int(dims[0]), int(dims[1]))


def get_goal_frame(name: str) -> GoalFrame:
    if name not in GOAL_FRAMES:
        raise ValueError(f"unknown goal frame {name!r}; known: {', '.join(sorted(GOAL_FRAMES))}")
    return GOAL_FRAMES[name]
