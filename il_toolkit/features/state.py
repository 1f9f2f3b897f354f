"""How every learner sees an env's state vector and expresses its actions: one spec, one codec.

A :class:`StateFeatures` is plain data (saved in each policy's ``config.json``) with three
batched numpy functions of the raw state ``obs`` ``(B, D)``:

- ``features(obs) -> (B, F)``: the raw entries with each angle (``periodic_dims``) replaced by
  its sine, then the angles' cosines, then the task frame's features (those alone where the
  frame ``replaces_obs``), without the ``ignored_obs`` entries (velocities a learner would copy);
- ``encode_actions(obs, actions) -> encoded``: actions ``(B, Da)`` or chunks ``(B, H, Da)`` as
  the learner regresses them: in the task frame of ``obs``, as offsets from the observation
  entries ``action_reference`` names, or as given;
- ``decode_actions(obs, encoded)``: the inverse, back in the env's units.

Each env declares what it needs beside its registration, as properties of the env class
(``policy_frame``, ``action_reference``, ``velocity_obs``); :func:`state_features_for`
reads them, and a user's env that declares none gets the identity pipeline (angles as
sine/cosine where its Box bounds say so). Normalisation statistics are not part of this
spec: each policy fits them on ``features``/``encode_actions`` of its training data and saves
them with its weights.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
from gymnasium import spaces

from il_toolkit.features.frames import TaskFrame, get_frame


def periodic_dims(space: spaces.Space) -> list[int]:
    """Indices of a flat Box observation bounded by exactly [0, 2π] or [-π, π]: angles, which
    learners see as (sin, cos) so that 0 and 2π look alike (PushT's block angle)."""
    if not isinstance(space, spaces.Box) or len(space.shape) != 1:
        return []
    low, high = np.asarray(space.low, np.float64), np.asarray(space.high, np.float64)
    is_angle = (np.isclose(low, 0) & np.isclose(high, 2 * np.pi)) | (np.isclose(low, -np.pi) & np.isclose(high, np.pi))
    return [int(i) for i in np.flatnonzero(is_angle)]


class FeatureMismatchError(ValueError):
    """A state or action that does not fit the feature pipeline a policy was trained with."""


@dataclass(frozen=True)
class StateFeatures:
    """The feature pipeline of one state vector (see the module docstring); ``obs_dim``/``action_dim``
    are the raw sizes it applies to."""

    obs_dim: int
    action_dim: int
    periodic_dims: tuple[int, ...] = ()
    ignored_obs: tuple[int, ...] = ()
    frame: str | None = None
    action_reference: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "periodic_dims", tuple(int(i) for i in self.periodic_dims))
        object.__setattr__(self, "ignored_obs", tuple(sorted({int(i) for i in self.ignored_obs})))
        if self.action_reference is not None:
            object.__setattr__(self, "action_reference", tuple(int(i) for i in self.action_reference))
        for name, indices in (("periodic_dims", self.periodic_dims), ("ignored_obs", self.ignored_obs),
                              ("action_reference", self.action_reference or ())):
            if any(not 0 <= i < self.obs_dim for i in indices):
                raise ValueError(f"{name} {list(indices)} indexes outside the {self.obs_dim} observation entries")
        if len(self.ignored_obs) == self.obs_dim:
            raise ValueError("ignored_obs hides every observation entry: the policy would see nothing")
        if self.action_reference is not None and len(self.action_reference) != self.action_dim:
            raise ValueError(f"action_reference needs one observation index per action dimension ({self.action_dim}), "
                             f"got {list(self.action_reference)}")
        if self.frame is not None and self.action_reference is not None:
            raise ValueError("give a feature pipeline an action_reference or a task frame, not both: the frame "
                             "expresses the actions itself")
        if self.frame is not None:
            get_frame(self.frame, self.obs_dim, self.action_dim)  # unknown or mis-sized frames fail here

    # -- layout (derived once: ``features`` runs on every action a policy takes) --------------
    @functools.cached_property
    def task_frame(self) -> TaskFrame | None:
        return None if self.frame is None else get_frame(self.frame, self.obs_dim, self.action_dim)

    @functools.cached_property
    def columns(self) -> list[int]:
        """Columns of the full layout (raw with sines, cosines, frame features) the learner sees."""
        ignored = set(self.ignored_obs)
        raw = [i for i in range(self.obs_dim) if i not in ignored]
        cosines = [self.obs_dim + k for k, i in enumerate(self.periodic_dims) if i not in ignored]
        frame = self.task_frame
        start = self.obs_dim + len(self.periodic_dims)
        frame_columns = list(range(start, start + frame.n_features)) if frame is not None else []
        return frame_columns if frame is not None and frame.replaces_obs else raw + cosines + frame_columns

    @property
    def n_features(self) -> int:
        return len(self.columns)

    @property
    def is_identity(self) -> bool:
        """True when ``features`` and the action codec leave data as it is."""
        return not self.periodic_dims and not self.ignored_obs and self.frame is None and self.action_reference is None

    # -- the three functions --------------------------------------------------------------
    def check_obs(self, obs: np.ndarray) -> np.ndarray:
        obs = np.asarray(obs, dtype=np.float64)
        if obs.ndim != 2 or obs.shape[1] != self.obs_dim:
            raise FeatureMismatchError(
                f"state of shape {tuple(obs.shape)} does not fit this feature pipeline, built for {self.obs_dim} entries "
                f"(frame {self.frame!r}): evaluate the policy on the env it was trained on"
            )
        return obs

    def features(self, obs: np.ndarray, dtype: Any = np.float32) -> np.ndarray:
        """``(B, D)`` raw states -> ``(B, F)`` features (float32 unless ``dtype`` says otherwise)."""
        raw = full = self.check_obs(obs)
        if self.periodic_dims:
            angles = raw[:, list(self.periodic_dims)]
            full = np.concatenate([raw, np.cos(angles)], axis=1)
            full[:, list(self.periodic_dims)] = np.sin(angles)
        frame = self.task_frame
        if frame is not None:
            full = np.concatenate([full, frame.features(raw)], axis=1)
        columns = self.columns
        if len(columns) != full.shape[1]:
            full = full[:, columns]
        return full.astype(dtype)

    def encode_actions(self, obs: np.ndarray, actions: np.ndarray) -> np.ndarray:
        """Actions ``(B, Da)`` or chunks ``(B, H, Da)`` in env units -> as the learner regresses
        them, every action of a chunk relative to the one state ``obs[b]`` (float64)."""
        return self._apply(obs, actions, encode=True)

    def decode_actions(self, obs: np.ndarray, encoded: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`encode_actions`."""
        return self._apply(obs, encoded, encode=False)

    def _apply(self, obs: np.ndarray, values: np.ndarray, *, encode: bool) -> np.ndarray:
        obs = self.check_obs(obs)
        values = np.asarray(values, dtype=np.float64)
        chunked = values.ndim == 3
        flat = values.reshape(-1, values.shape[-1]) if chunked else values.reshape(len(values), -1)
        if flat.shape[-1] != self.action_dim:
            raise FeatureMismatchError(f"actions have {flat.shape[-1]} entries; this pipeline expects {self.action_dim}")
        horizon = values.shape[1] if chunked else 1
        rows = np.repeat(obs, horizon, axis=0)
        frame = self.task_frame
        if frame is not None:
            out = frame.encode(rows, flat) if encode else frame.decode(rows, flat)
        elif self.action_reference is not None:
            reference = rows[:, list(self.action_reference)]
            out = flat - reference if encode else flat + reference
        else:
            out = flat
        return out.reshape(values.shape)

    # -- data -----------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["periodic_dims"] = list(self.periodic_dims)
        data["ignored_obs"] = list(self.ignored_obs)
        data["action_reference"] = None if self.action_reference is None else list(self.action_reference)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "StateFeatures":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"feature pipeline config has unknown fields {unknown}; known: {sorted(known)}")
        return cls(**dict(data))

    def check_fits(self, obs_dim: int, action_dim: int, where: str) -> None:
        """Raise :class:`FeatureMismatchError` naming both sides when ``where``'s sizes differ."""
        if (obs_dim, action_dim) != (self.obs_dim, self.action_dim):
            raise FeatureMismatchError(
                f"the policy's feature pipeline (frame {self.frame!r}) is for a {self.obs_dim}-entry state and "
                f"{self.action_dim}-dim actions; {where} has a {obs_dim}-entry state and {action_dim}-dim actions: "
                "evaluate the policy on the env (and obs_type) it was trained on"
            )


def state_features_for(
    env_or_space: Any,
    action_space: spaces.Space | None = None,
    *,
    task_frame: bool = True,
    relative_actions: bool = True,
    drop_velocity_obs: bool = True,
    state_space: spaces.Space | None = None,
) -> StateFeatures:
    """The feature pipeline an env declares (``policy_frame``, ``action_reference``, ``velocity_obs``
    on ``env.unwrapped``), each part switched off by its flag; a bare observation space (or an env
    that declares nothing) gets the identity pipeline, angles as sine/cosine.

    ``state_space``: the Box the pipeline applies to when the observation is a Dict (its state entry).
    """
    unwrapped = getattr(env_or_space, "unwrapped", None)
    observation_space = env_or_space.observation_space if unwrapped is not None else env_or_space
    action_space = action_space if action_space is not None else env_or_space.action_space
    space = state_space if state_space is not None else observation_space
    if not isinstance(space, spaces.Box) or len(space.shape) != 1:
        raise TypeError(f"a state feature pipeline needs a flat Box state, got {space}")
    action_dim = int(np.prod(action_space.shape)) if isinstance(action_space, spaces.Box) else 1
    declares = unwrapped is not None and state_space is None
    frame = getattr(unwrapped, "policy_frame", None) if declares and task_frame else None
    if frame is not None and not isinstance(action_space, spaces.Box):
        frame = None
    reference = getattr(unwrapped, "action_reference", None) if declares and relative_actions and frame is None else None
    ignored: Sequence[int] = getattr(unwrapped, "velocity_obs", ()) if declares and drop_velocity_obs else ()
    return StateFeatures(obs_dim=int(space.shape[0]), action_dim=action_dim, periodic_dims=tuple(periodic_dims(space)),
                         ignored_obs=tuple(ignored), frame=frame, action_reference=reference)
