"""Convert a LeRobot-format dataset on disk (v2: ``meta/info.json``, parquet episodes,
images inside the parquet or as MP4 videos) into a Minari dataset.

Layout read::

    ROOT/meta/info.json        {"fps", "features": {name: {"dtype", "shape"}}, "data_path", "video_path", "chunks_size"}
    ROOT/meta/tasks.jsonl      {"task_index": 0, "task": "push the T block onto the target"}
    ROOT/data/chunk-000/episode_000000.parquet
    ROOT/videos/chunk-000/observation.image/episode_000000.mp4      (features of dtype "video")

Observation keys become the toolkit's: ``observation.state`` -> ``agent_pos``,
``observation.image`` -> ``pixels``, ``observation.images.<cam>`` -> ``pixels/<cam>``
(a dict of cameras), so a PushT or ALOHA dataset matches the env's ``pixels_agent_pos``
observations. LeRobot stores T frames per episode; Minari wants T+1 observations, so the
last frame is repeated as the final observation.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
from gymnasium import spaces

from il_toolkit.train.datasets.minari_io import DatasetError


def _read_json(path: Path) -> Any:
    if not path.exists():
        raise DatasetError(f"{path} is missing: a LeRobot dataset root holds meta/info.json and data/")
    return json.loads(path.read_text())


def _decode_image(value: Any) -> np.ndarray:
    from PIL import Image

    data = value["bytes"] if isinstance(value, dict) else value
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def _read_video(path: Path) -> np.ndarray:
    import imageio.v3 as iio

    if not path.exists():
        raise DatasetError(f"video {path} is missing")
    return np.stack(list(iio.imiter(path)))


def _observation_key(feature: str) -> tuple[str, ...] | None:
    if feature == "observation.state":
        return ("agent_pos",)
    if feature == "observation.image":
        return ("pixels",)
    if feature.startswith("observation.images."):
        return ("pixels", feature.removeprefix("observation.images."))
    if feature.startswith("observation."):
        return (feature.removeprefix("observation."),)
    return None


def _episode_paths(root: Path, info: dict[str, Any], episode: int) -> Path:
    chunk = episode // int(info.get("chunks_size", 1000))
    template = info.get("data_path", "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet")
    return root / template.format(episode_chunk=chunk, episode_index=episode)


def _episode_observations(root: Path, info: dict[str, Any], table: dict[str, list], episode: int) -> dict[str, Any]:
    observations: dict[str, Any] = {}
    chunk = episode // int(info.get("chunks_size", 1000))
    for feature, spec in info["features"].items():
        target = _observation_key(feature)
        if target is None:
            continue
        if spec["dtype"] == "video":
            template = info.get("video_path", "videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4")
            frames = _read_video(root / template.format(episode_chunk=chunk, video_key=feature, episode_index=episode))
            frames = frames[: len(table["action"])]
        elif spec["dtype"] == "image":
            frames = np.stack([_decode_image(v) for v in table[feature]])
        else:
            frames = np.asarray(table[feature], dtype=np.float64)
        node = observations
        for part in target[:-1]:
            node = node.setdefault(part, {})
        node[target[-1]] = frames
    return observations


def _space_of(observations: dict[str, Any]) -> spaces.Dict:
    def one(value: Any) -> spaces.Space:
        if isinstance(value, dict):
            return spaces.Dict({k: one(v) for k, v in value.items()})
        if value.dtype == np.uint8:
            return spaces.Box(0, 255, value.shape[1:], np.uint8)
        return spaces.Box(-np.inf, np.inf, value.shape[1:], np.float64)

    return spaces.Dict({k: one(v) for k, v in observations.items()})


def _with_final(observations: dict[str, Any]) -> dict[str, Any]:
    return {k: _with_final(v) if isinstance(v, dict) else np.concatenate([v, v[-1:]]) for k, v in observations.items()}


def _at(observations: dict[str, Any], t: int) -> dict[str, Any]:
    return {k: _at(v, t) if isinstance(v, dict) else v[t] for k, v in observations.items()}


def convert_lerobot(root: str | Path, dataset_id: str, *, env_id: str | None = None,
                    env_kwargs: dict[str, Any] | None = None, overwrite: bool = False) -> dict[str, Any]:
    """Convert the LeRobot dataset at ``root`` into Minari dataset ``dataset_id``.

    With ``env_id`` the converted spaces must fit that env (``env_kwargs`` e.g.
    ``{"obs_type": "pixels_agent_pos"}``), and the dataset records it for training.
    Another process writing ``dataset_id`` at the same time: ``DatasetBusyError``.
    """
    from il_toolkit.train.datasets import minari_io

    minari_io._check_dataset_id(dataset_id)
    with minari_io.writer_lock(dataset_id):
        return _convert(root, dataset_id, env_id=env_id, env_kwargs=env_kwargs, overwrite=overwrite)


def _convert(root: str | Path, dataset_id: str, *, env_id: str | None, env_kwargs: dict[str, Any] | None,
             overwrite: bool) -> dict[str, Any]:
    """:func:`convert_lerobot` once it holds the dataset's writer lock."""
    import pyarrow.parquet as pq

    from il_toolkit import __version__
    from il_toolkit.envs import canonical_env_id, make_env
    from il_toolkit.train.datasets import minari_io

    root = Path(root)
    info = _read_json(root / "meta" / "info.json")
    tasks_path = root / "meta" / "tasks.jsonl"
    tasks = {int(t["task_index"]): t["task"] for t in map(json.loads, tasks_path.read_text().splitlines())} if tasks_path.exists() else {}
    if "action" not in info.get("features", {}):
        raise DatasetError(f"{root}/meta/info.json declares no 'action' feature; features: {sorted(info.get('features', {}))}")
    minari_io._check_dataset_id(dataset_id)
    if minari_io.dataset_exists(dataset_id):
        if not overwrite:
            raise minari_io.DatasetExistsError(f"dataset {dataset_id!r} already exists; pass --overwrite or another id")
        minari_io.delete_dataset(dataset_id)
    n_episodes = int(info.get("total_episodes", 0))
    env = make_env(canonical_env_id(env_id), **(env_kwargs or {})) if env_id else None
    data_path = minari_io.dataset_path(dataset_id) / "data"
    instructions, n_steps = set(), 0
    for episode in range(n_episodes):
        table = pq.read_table(_episode_paths(root, info, episode)).to_pydict()
        observations = _with_final(_episode_observations(root, info, table, episode))
        actions = np.asarray(table["action"], dtype=np.float32)
        rewards = np.asarray(table.get("next.reward", np.zeros(len(actions))), dtype=np.float64)
        done = bool(table.get("next.done", [False])[-1])
        observation_space = _space_of(observations)
        action_space = spaces.Box(-np.inf, np.inf, actions.shape[1:], np.float32)
        if env is not None:
            minari_io.check_spaces_fit(observation_space, action_space, env, f"LeRobot dataset {root}")
            observation_space, action_space = env.observation_space, env.action_space
        target = env if env is not None else _SpaceHolder(observation_space, action_space)
        buffer = minari_io.episode_buffer([_at(observations, t) for t in range(len(actions) + 1)], list(actions),
                                          list(rewards), done, None)
        task = tasks.get(int(table["task_index"][0]), "") if "task_index" in table else ""
        instructions.add(task)
        minari_io.write_progress(data_path, target, [buffer], {
            "dataset_id": dataset_id, "algorithm_name": "converted from LeRobot format", "author": {"il_toolkit"},
            "code_permalink": "il_toolkit", "description": f"converted from the LeRobot dataset at {root}",
            "il_toolkit_env_id": canonical_env_id(env_id) if env_id else "", "il_toolkit_env_kwargs": dict(env_kwargs or {}),
            "il_toolkit_expert": "lerobot", "il_toolkit_instruction": sorted(instructions)[0] if len(instructions) == 1 else "",
            "il_toolkit_version": __version__, "il_toolkit_complete": False, "il_toolkit_source": str(root),
        })
        n_steps += len(actions)
    if n_episodes == 0:
        raise DatasetError(f"{root}/meta/info.json reports no episodes")
    minari_io.finalize(data_path, {"il_toolkit_complete": True})
    return {"dataset_id": dataset_id, "episodes": n_episodes, "steps": n_steps, "fps": info.get("fps"),
            "instructions": sorted(instructions)}


class _SpaceHolder:
    """Just the spaces (and no spec) of a dataset converted without an env."""

    spec = None

    def __init__(self, observation_space: spaces.Space, action_space: spaces.Space) -> None:
        self.observation_space, self.action_space = observation_space, action_space
