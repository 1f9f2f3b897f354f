"""Gymnasium spaces to and from plain JSON, so checkpoints and datasets can describe them
without pickling. Supports Box, Discrete, MultiDiscrete, MultiBinary and Dict."""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
from gymnasium import spaces


def _array_or_scalar(values: np.ndarray) -> Any:
    """A Box bound as one scalar when uniform (keeps pixel spaces small), else a nested list."""
    flat = values.reshape(-1)
    if flat.size and np.all(flat == flat[0]):
        return _json_float(flat[0])
    return [_json_float(v) for v in flat]


def _json_float(v: Any) -> Any:
    v = float(v)
    if np.isinf(v):
        return "inf" if v > 0 else "-inf"
    return v


def _from_json_bound(value: Any, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    if isinstance(value, list):
        return np.array([float(v) for v in value], dtype=np.float64).reshape(shape).astype(dtype)
    return np.full(shape, float(value), dtype=dtype)


def space_to_json(space: spaces.Space) -> dict[str, Any]:
    """Describe ``space`` as a JSON-serialisable dict."""
    if isinstance(space, spaces.Box):
        return {
            "type": "Box",
            "shape": list(space.shape),
            "dtype": str(space.dtype),
            "low": _array_or_scalar(space.low),
            "high": _array_or_scalar(space.high),
        }
    if isinstance(space, spaces.Discrete):
        return {"type": "Discrete", "n": int(space.n), "start": int(space.start)}
    if isinstance(space, spaces.MultiDiscrete):
        return {"type": "MultiDiscrete", "nvec": space.nvec.tolist()}
    if isinstance(space, spaces.MultiBinary):
        return {"type": "MultiBinary", "n": np.asarray(space.n).tolist()}
    if isinstance(space, spaces.Dict):
        return {"type": "Dict", "spaces": {k: space_to_json(s) for k, s in space.spaces.items()}}
    raise TypeError(f"cannot describe space {space!r}: supported are Box, Discrete, MultiDiscrete, MultiBinary, Dict")


def space_from_json(data: dict[str, Any]) -> spaces.Space:
    """Rebuild a space written by :func:`space_to_json`."""
    kind = data.get("type")
    if kind == "Box":
        shape = tuple(int(s) for s in data["shape"])
        dtype = np.dtype(data["dtype"])
        low = _from_json_bound(data["low"], shape, dtype)
        high = _from_json_bound(data["high"], shape, dtype)
        return spaces.Box(low=low, high=high, shape=shape, dtype=dtype)
    if kind == "Discrete":
        return spaces.Discrete(int(data["n"]), start=int(data.get("start", 0)))
    if kind == "MultiDiscrete":
        return spaces.MultiDiscrete(data["nvec"])
    if kind == "MultiBinary":
        return spaces.MultiBinary(data["n"])
    if kind == "Dict":
        return spaces.Dict({k: space_from_json(v) for k, v in data["spaces"].items()})
    raise ValueError(f"unknown space description {data!r}")


def describe(space: spaces.Space) -> str:
    """A short human-readable form, e.g. ``Box(4,) float32`` or ``Discrete(2)``."""
    if isinstance(space, spaces.Box):
        return f"Box{tuple(space.shape)} {space.dtype}"
    if isinstance(space, spaces.Discrete):
        return f"Discrete({space.n})"
    if isinstance(space, spaces.Dict):
        inner = ", ".join(f"{k}: {describe(s)}" for k, s in space.spaces.items())
        return f"Dict({inner})"
    return repr(space)


def spaces_match(a: spaces.Space, b: spaces.Space) -> bool:
    """Whether data from space ``a`` fits space ``b``: same type, shape and dtype (Dict: same
    keys, recursively). Box bounds are not compared, so a policy trained on a fixed-horizon
    variant (unbounded observations) still runs in the bounded original."""
    if type(a) is not type(b):
        return False
    if isinstance(a, spaces.Dict):
        return a.spaces.keys() == b.spaces.keys() and all(spaces_match(a[k], b[k]) for k in a.spaces)
    if isinstance(a, spaces.Box):
        return a.shape == b.shape and a.dtype == b.dtype
    return space_to_json(a) == space_to_json(b)


def is_batched(observation: Any, space: spaces.Space) -> bool:
    """Whether ``observation`` carries a leading batch dimension relative to ``space``."""
    if isinstance(space, spaces.Dict):
        key = next(iter(space.spaces))
        return is_batched(observation[key], space.spaces[key])
    obs = np.asarray(observation)
    if isinstance(space, spaces.Discrete):
        return obs.ndim == 1
    return obs.ndim == len(space.shape) + 1


def add_batch_axis(observation: Any) -> Any:
    """One observation (an array, or a dict of them, nested or not) as a batch of one."""
    if isinstance(observation, Mapping):
        return {k: add_batch_axis(v) for k, v in observation.items()}
    return np.asarray(observation)[None]


def subspace(space: spaces.Space, path: str) -> spaces.Space:
    """The part of a (nested) Dict space at ``"outer/inner"``; ``KeyError`` for a path it lacks."""
    for part in filter(None, path.split("/")):
        if not isinstance(space, spaces.Dict) or part not in space.spaces:
            raise KeyError(part)
        space = space.spaces[part]
    return space


def half_ranges(space: spaces.Box) -> np.ndarray:
    """Half of each dimension's range, flattened (float64); 1 where a bound is infinite or the
    range is empty, so dividing by it is always defined."""
    low, high = space.low.reshape(-1).astype(np.float64), space.high.reshape(-1).astype(np.float64)
    half = (high - low) / 2
    return np.where(np.isfinite(half) & (half > 0), half, 1.0)


class ObservationError(ValueError):
    """An observation that does not fit the space a policy was trained on."""


def check_observation(observation: Any, space: spaces.Space, batched: bool, who: str = "the policy",
                      path: str = "") -> None:
    """Raise :class:`ObservationError` unless ``observation`` (one, or a batch when ``batched``) has
    the shape ``space`` gives and finite numbers: a state of another env, an image of another size,
    or NaN from a broken sensor would otherwise be acted on silently."""
    where = f"observation{path}" if path else "the observation"
    if isinstance(space, spaces.Dict):
        if not isinstance(observation, dict):
            raise ObservationError(f"{who}: {where} must be a dict with keys {sorted(space.spaces)}, got a "
                                   f"{type(observation).__name__}: give it observations of the env it was trained on")
        missing = sorted(set(space.spaces) - set(observation))
        if missing:
            raise ObservationError(f"{who}: {where} needs the keys {sorted(space.spaces)}; {missing} missing: give it "
                                   "observations of the env (and observation type) it was trained on")
        for key, sub in space.spaces.items():
            check_observation(observation[key], sub, batched, who, f"{path}[{key!r}]")
        return
    if not isinstance(space, spaces.Box):
        return
    obs = np.asarray(observation)
    expected = space.shape if not batched else (obs.shape[:1] + space.shape if obs.ndim else space.shape)
    if obs.shape != tuple(expected):
        raise ObservationError(
            f"{who} was trained on {where} of shape {space.shape}, got {obs.shape[1:] if batched else obs.shape}: "
            "give it observations of the env (and observation type) it was trained on")
    if not np.issubdtype(obs.dtype, np.number) and obs.dtype != np.bool_:
        raise ObservationError(f"{who} needs numbers in {where}, got an array of {obs.dtype}")
    if np.issubdtype(obs.dtype, np.floating) and not np.all(np.isfinite(obs)):
        raise ObservationError(f"{who} was given NaN or infinite entries in {where}; it would act on garbage")


# -- [-1, 1] action units for SB3's Gaussian policies -------------------------------------
def unit_action_space(space: spaces.Space) -> spaces.Box | None:
    """The [-1, 1] twin of a Box action space whose bounds are finite and not already [-1, 1]
    (PushT's board pixels, ALOHA's joint ranges), else None. SB3's Gaussian policies start at
    mean 0, std 1, so they explore and learn in these units, not in pixels."""
    if not isinstance(space, spaces.Box) or not (np.all(np.isfinite(space.low)) and np.all(np.isfinite(space.high))):
        return None
    if np.all(space.low == -1.0) and np.all(space.high == 1.0):
        return None
    return spaces.Box(-1.0, 1.0, space.shape, np.float32)


def is_unit_twin(space: spaces.Space, env_space: spaces.Space) -> bool:
    """Whether ``space`` is exactly the [-1, 1] twin of ``env_space`` (bounds compared)."""
    unit = unit_action_space(env_space)
    return (unit is not None and isinstance(space, spaces.Box) and space.shape == unit.shape
            and bool(np.all(space.low == -1.0)) and bool(np.all(space.high == 1.0)))


def to_unit_actions(actions: Any, space: spaces.Box) -> np.ndarray:
    """Env-unit actions ``(..., Da)`` -> [-1, 1] units (linear; the bounds map to -1 and 1)."""
    low, high = np.asarray(space.low, np.float64), np.asarray(space.high, np.float64)
    return (2.0 * (np.asarray(actions, np.float64) - low) / (high - low) - 1.0).astype(np.float32)


def from_unit_actions(actions: Any, space: spaces.Box) -> np.ndarray:
    """[-1, 1] actions ``(..., Da)`` (clipped first) -> env units, in the space's dtype."""
    low, high = np.asarray(space.low, np.float64), np.asarray(space.high, np.float64)
    unit = np.clip(np.asarray(actions, np.float64), -1.0, 1.0)
    return (low + (unit + 1.0) * 0.5 * (high - low)).astype(space.dtype)
