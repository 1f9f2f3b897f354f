"""Task frames: how a learner sees an env's state observations and expresses its actions,
in coordinates that move with the task instead of the world's.

An env names its frame in ``env.unwrapped.policy_frame`` (a key of :data:`FRAMES`); the
:class:`~il_toolkit.policies.mlp.MLPPolicy` stores that name in its checkpoint. A frame adds
``features(obs)`` to the observation and regresses ``encode(obs, actions)`` in place of the
actions, mapped back with ``decode``. All three are batched numpy functions of the raw
(B, D) observation.

``pusht_block`` (PushT, ``state`` observations ``(agent x, y, block x, y, angle)``): the
scripted expert decides in the block's frame (which edge to push, from where), so the same
situation at another block pose is the same features and the same target. Measured in a
scratch study (200 demonstrations, 100 unseen seeds): 1-nearest-neighbour BC 24% success on
world coordinates, 54% in this frame. Through BC with the toolkit's MLP (512x512x512 GELU, 100
epochs, training seed 0): success 3% either way, average max reward 0.41 -> 0.54.

``pusht_push`` (what PushT's ``policy_frame`` names now; ``pusht_block`` stays for the
checkpoints that use it) adds what the expert's choice of contact actually depends on and
expresses the target where a push is small:

- the pose error's direction, a unit vector in the expert's metric ``(ex, ey, L·eθ)`` with
  ``L`` = 60 px, and ``log(1 + |error|)``. The expert scores contacts by the squared cosine
  between their push and the error, which does not change with the error's size. Success
  needs the last 2 px and 2° right (coverage > 0.95). There the raw error is a few hundredths
  of its standard deviation, and the network cannot tell its direction apart.
- the target relative to the pusher instead of the block's origin, in the block's frame. A
  push is then the few pixels it is, not a sliver of a 100 px offset.
- nothing else: the network sees these features in place of the raw board coordinates
  (``TaskFrame.replaces_obs``), which tie what it learned to where on the board it happened.

Scratch study, same trainer for every variant (mixture head K = 5, BC on 200 demonstrations, 100
epochs, last epoch, training seed 0, 100 unseen seeds):

| features, target | success | avg max reward |
|---|---|---|
| ``pusht_block`` | 29% | 0.730 |
| ``pusht_block``, target relative to the pusher | 38% | 0.857 |
| + error direction and log magnitude | 54% | 0.748 |
| both | **72%** | 0.822 |
| both, raw board coordinates seen as well | 46% | 0.809 |
| both, MSE head instead of the mixture | 39% | 0.738 |
| both, 300 epochs | 80% | 0.891 |

Through the toolkit's BC (``benchmarks/bc_dagger.py``, mixture head, 10% of the episodes held out,
3 training seeds): BC-200 51% at 100 epochs, 68.7% at 400; the best in ``pusht_block``, at 300
epochs, was 25.3%. All of these imitate the expert as it was before ``engage_lateral`` (±3 px).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from il_toolkit.envs.pusht_geometry import COG, GOAL_POSE


def _to_block(vectors: np.ndarray, angle: np.ndarray) -> np.ndarray:
    """World vectors (B, 2) into the frame of a block at ``angle`` (B,) rad: R(angle)^T v."""
    c, s = np.cos(angle), np.sin(angle)
    return np.stack([c * vectors[:, 0] + s * vectors[:, 1], -s * vectors[:, 0] + c * vectors[:, 1]], axis=1)


def _to_world(vectors: np.ndarray, angle: np.ndarray) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.stack([c * vectors[:, 0] - s * vectors[:, 1], s * vectors[:, 0] + c * vectors[:, 1]], axis=1)


_GOAL_COG = GOAL_POSE[:2] + _to_world(COG[None], np.array([GOAL_POSE[2]]))[0]


def pusht_block_features(obs: np.ndarray) -> np.ndarray:
    """(B, 7): the agent in the block's frame (px, 2), the centre-of-gravity error to the goal
    in the block's frame (px, 2), the wrapped angle error (rad) with its sine and cosine."""
    agent, block, angle = obs[:, 0:2], obs[:, 2:4], obs[:, 4]
    cog = block + _to_world(np.broadcast_to(COG, block.shape), angle)
    angle_error = (GOAL_POSE[2] - angle + np.pi) % (2 * np.pi) - np.pi
    return np.concatenate([_to_block(agent - block, angle), _to_block(_GOAL_COG - cog, angle),
                           np.stack([angle_error, np.sin(angle_error), np.cos(angle_error)], axis=1)], axis=1)


def pusht_block_encode(obs: np.ndarray, actions: np.ndarray) -> np.ndarray:
    """(B, 2): the pusher target relative to the block's origin, in the block's frame (px)."""
    return _to_block(actions - obs[:, 2:4], obs[:, 4])


def pusht_block_decode(obs: np.ndarray, encoded: np.ndarray) -> np.ndarray:
    """Inverse of :func:`pusht_block_encode`: pusher targets in board pixels (B, 2)."""
    return _to_world(encoded, obs[:, 4]) + obs[:, 2:4]


# px per radian in the expert's error metric diag(1, 1, L^2) (PushTControlParams.length_scale's default); a
# literal, so that retuning the expert does not change what saved policies see
ERROR_LENGTH_SCALE = 60.0


def pusht_push_features(obs: np.ndarray) -> np.ndarray:
    """(B, 11): :func:`pusht_block_features` (7), then the pose error ``(ex, ey, L·eθ)`` as a
    unit vector (3) and ``log(1 + its norm)`` (1; norm in px)."""
    block = pusht_block_features(obs)
    error = np.concatenate([block[:, 2:4], ERROR_LENGTH_SCALE * block[:, 4:5]], axis=1)
    norm = np.linalg.norm(error, axis=1, keepdims=True)
    return np.concatenate([block, error / np.maximum(norm, 1e-6), np.log1p(norm)], axis=1)


def pusht_push_encode(obs: np.ndarray, actions: np.ndarray) -> np.ndarray:
    """(B, 2): the pusher target relative to the pusher, in the block's frame (px)."""
    return _to_block(actions - obs[:, 0:2], obs[:, 4])


def pusht_push_decode(obs: np.ndarray, encoded: np.ndarray) -> np.ndarray:
    """Inverse of :func:`pusht_push_encode`: pusher targets in board pixels (B, 2)."""
    return _to_world(encoded, obs[:, 4]) + obs[:, 0:2]


@dataclass(frozen=True)
class TaskFrame:
    """One entry of :data:`FRAMES`; ``obs_dim``/``action_dim``: the shapes it applies to;
    ``replaces_obs``: the network sees the features alone, not the raw observation as well."""

    obs_dim: int
    action_dim: int
    n_features: int
    features: Callable[[np.ndarray], np.ndarray]
    encode: Callable[[np.ndarray, np.ndarray], np.ndarray]
    decode: Callable[[np.ndarray, np.ndarray], np.ndarray]
    replaces_obs: bool = False
    # Fixed units for learners that do not standardise on data (SB3 policies in GAIL, see
    # il_toolkit.policies.frame_policy): each feature is divided by its scale, encoded actions by
    # action_scale (then in [-1, 1]). None: the frame serves the toolkit's MLP only.
    feature_scale: tuple[float, ...] | None = None
    action_scale: float | None = None


FRAMES: dict[str, TaskFrame] = {
    "pusht_block": TaskFrame(5, 2, 7, pusht_block_features, pusht_block_encode, pusht_block_decode),
    # scales: board pixels in hundreds, angles and unit vectors as they are; a push target is at most 120 px from the
    # pusher (the expert's largest move)
    "pusht_push": TaskFrame(5, 2, 11, pusht_push_features, pusht_push_encode, pusht_push_decode, replaces_obs=True,
                            feature_scale=(100.0,) * 4 + (1.0,) * 7, action_scale=120.0),
}


def get_frame(name: str, obs_dim: int, action_dim: int) -> TaskFrame:
    """The frame called ``name``, checked against the policy's observation and action sizes."""
    if name not in FRAMES:
        raise ValueError(f"unknown task frame {name!r}; known: {', '.join(sorted(FRAMES))}")
    frame = FRAMES[name]
    if (frame.obs_dim, frame.action_dim) != (obs_dim, action_dim):
        raise ValueError(f"task frame {name!r} is for {frame.obs_dim} observation and {frame.action_dim} action "
                         f"entries; this policy has {obs_dim} and {action_dim}")
    return frame
