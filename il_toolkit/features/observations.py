"""Observations as data: nested dicts as flat ``"outer/inner"`` paths (how Minari, imitation and the
policies address them), and episodes of observations as the batch vocabulary every learner reads
(``observation.state``, ``observation.images.<camera>``, ``observation.depth.<camera>``)."""

from __future__ import annotations

from typing import Any

import numpy as np

# Dict observation entries that hold the proprioceptive state, in the order they are looked for
STATE_KEYS = ("agent_pos", "state", "qpos", "proprio")


class ObservationKeyError(ValueError):
    """An observation entry with no batch key."""


def flatten_observations(observations: Any, prefix: str = "") -> Any:
    """Nested dicts of arrays -> one flat dict keyed by ``"outer/inner"`` paths (imitation's
    ``DictObs`` holds arrays only, so ALOHA's ``{"pixels": {"head": ...}}`` becomes
    ``{"pixels/head": ...}``: the same path a policy's ``observation_keys`` name). Arrays pass."""
    if not isinstance(observations, dict):
        return np.asarray(observations)
    flat: dict[str, np.ndarray] = {}
    for key, value in observations.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten_observations(value, prefix=f"{name}/"))
        else:
            flat[name] = np.asarray(value)
    return flat


def batch_from_observations(observation: Any) -> dict[str, np.ndarray]:
    """Map one episode's observations (arrays with a leading time axis) to batch keys:
    a vector -> ``observation.state``; an (T, H, W, C) image -> ``observation.images.top``;
    a dict: an entry of :data:`STATE_KEYS` -> state, ``pixels`` (image or dict of
    cameras) or ``pixels/<camera>`` -> ``observation.images.<camera>``, ``depth`` likewise ->
    ``observation.depth.<camera>``."""
    if not isinstance(observation, dict):
        array = np.asarray(observation)
        if array.ndim == 4:
            return {"observation.images.top": np.moveaxis(array, -1, 1)}
        return {"observation.state": array.reshape(len(array), -1).astype(np.float32)}
    out: dict[str, np.ndarray] = {}
    for key, value in observation.items():
        if key in STATE_KEYS:
            out["observation.state"] = np.asarray(value, dtype=np.float32).reshape(len(value), -1)
        elif key.split("/")[0] in ("pixels", "depth"):  # "pixels/<camera>": nested cameras flattened by DictObs
            kind, _, named = key.partition("/")
            prefix = "observation.images." if kind == "pixels" else "observation.depth."
            cameras = value if isinstance(value, dict) else {named or "top": value}
            for camera, frames in cameras.items():
                frames = np.asarray(frames)
                out[prefix + camera] = np.moveaxis(frames if frames.ndim == 4 else frames[..., None], -1, 1)
        else:
            raise ObservationKeyError(f"observation key {key!r} has no batch key; expected {STATE_KEYS}, 'pixels' or 'depth'")
    return out
