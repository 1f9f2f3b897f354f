"""Datasets as the user guide loads them: ``PushTDataset(split=..., chunk_size=...)``, the ALOHA
equivalents and ``create_lerobot_dataloader``, reading our own Minari demonstrations.

No dataset hub is reachable, so the LeRobot ids the user guide names map to datasets collected
locally by our scripted experts (see :data:`LEROBOT_ALIASES`); asking for one prints what
it maps to and collects it on first use. A LeRobot-format dataset a user has on disk
converts to Minari with :func:`il_toolkit.train.datasets.lerobot_convert.convert_lerobot`.

A sample (LeRobot / diffusion-policy vocabulary, see :mod:`il_toolkit.model.spec`)::

    "observation.state"            (To, Ds) float32      proprioception
    "observation.images.<camera>"  (To, C, H, W) uint8   one entry per camera
    "observation.environment_state" (To, D) float32     the simulator's full state (with
                                                         ``environment_state=True``; training-time
                                                         supervision, never an input when acting)
    "action"                       (chunk_size, Da)      actions t .. t+chunk_size-1
    "action_is_pad"                (chunk_size,) bool     True past the episode's end
    "task"                         str                   the episode's instruction
    "action_dim_is_pad"            (Da,) bool            only in multi-task datasets: action
                                                         dimensions another task owns (see
                                                         :mod:`il_toolkit.train.datasets.multitask`)
    "episode_index", "frame_index" int

with ``To = n_obs_steps`` (the window ends at frame t, padded by repeating frame 0).
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from il_toolkit.features.observations import STATE_KEYS, ObservationKeyError, batch_from_observations  # noqa: F401
from il_toolkit.model.spec import ENV_STATE_KEY
from il_toolkit.train.datasets.minari_io import DatasetError, dataset_metadata, episode_states, instruction_of, open_dataset


@dataclass(frozen=True)
class LocalSource:
    """Where a LeRobot hub id is served from here: a Minari dataset our expert collects."""

    env_id: str
    dataset_id: str
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    episodes: int = 200


LEROBOT_ALIASES: dict[str, LocalSource] = {
    "lerobot/pusht": LocalSource("il_toolkit/PushT-v0", "pusht/expert-pixels-v0", {"obs_type": "pixels_agent_pos"}, 200),
    "lerobot/aloha_sim_transfer_cube_scripted": LocalSource(
        "il_toolkit/AlohaTransferCube-v0", "aloha/transfer-cube-pixels-v0",
        {"obs_type": "pixels_agent_pos", "image_size": [96, 128]}, 50),
    "lerobot/aloha_sim_insertion_scripted": LocalSource(
        "il_toolkit/AlohaInsertion-v0", "aloha/insertion-pixels-v0",
        {"obs_type": "pixels_agent_pos", "image_size": [96, 128]}, 50),
}


def resolve_dataset(name: str, *, collect_missing: bool = True, progress: bool = True) -> str:
    """The local Minari id for ``name``: a LeRobot alias (collected on first use, with a
    message saying so) or a Minari id, returned as is."""
    from il_toolkit.train.datasets.minari_io import dataset_exists, dataset_metadata, open_dataset

    source = LEROBOT_ALIASES.get(name)
    if source is None:
        if "/" in name and not re.search(r"-v\d+$", name):  # a hub id (lerobot/..., jxu124/OpenX-Embodiment), no Minari id
            raise DatasetError(
                f"{name!r} looks like a Hugging Face dataset id; hub datasets are not downloaded. Offline stand-ins "
                f"collected by our experts: {', '.join(LEROBOT_ALIASES)}; a LeRobot dataset already on disk converts "
                "with `il-toolkit convert-lerobot`; your own demonstrations record with `il-toolkit collect` (an "
                "expert) or `il-toolkit teleop` (a person). Minari ids end in -vN (e.g. pusht/expert-v0)."
            )
        return name
    print(f"{name}: hub datasets are not downloaded; using the local Minari dataset {source.dataset_id} "
          f"({source.env_id} {source.env_kwargs}, collected by our scripted expert)", file=sys.stderr)
    if dataset_exists(source.dataset_id) and dataset_metadata(open_dataset(source.dataset_id)).get(
            "il_toolkit_complete", True):
        return source.dataset_id
    if not collect_missing:  # missing, or a first collection that was cut short (collect resumes it)
        raise DatasetError(f"{source.dataset_id} is not collected yet; run il-toolkit collect --env {source.env_id} ...")
    from il_toolkit.train.datasets.collect import collect_dataset

    print(f"collecting {source.episodes} episodes into {source.dataset_id} (once: a run started beside this one waits "
          "for it, or this one for that)", file=sys.stderr)
    collect_dataset(source.env_id, source.dataset_id, source.episodes, env_kwargs=source.env_kwargs,
                    only_successful=True, progress=progress, if_missing=True)
    return source.dataset_id


def flatten_observation(observation: Any) -> dict[str, np.ndarray]:
    """:func:`il_toolkit.features.observations.batch_from_observations`, with an observation it cannot
    map reported as a :class:`DatasetError`."""
    try:
        return batch_from_observations(observation)
    except ObservationKeyError as exc:
        raise DatasetError(str(exc)) from exc


class ChunkedEpisodeDataset:
    """A torch map-style dataset of (observation window, action chunk) samples from a
    Minari dataset, split by whole episodes into ``train`` / ``val``. Each sample's ``task`` is
    ``instruction`` when given, else the instruction its episode was recorded with (envs that draw
    one per episode, such as the two-target PushT), else the dataset's. With ``environment_state``
    each sample also holds the env's full state recorded beside the observation (``collect`` records
    it for camera observations of envs with a ``state_vector()``), the supervision a VLA's state
    estimator learns from."""

    def __init__(
        self,
        dataset_id: str,
        split: str = "train",
        chunk_size: int = 10,
        n_obs_steps: int = 1,
        val_fraction: float = 0.1,
        seed: int = 0,
        instruction: str | None = None,
        environment_state: bool = False,
    ) -> None:
        if split not in ("train", "val", "all"):
            raise ValueError(f"split must be 'train', 'val' or 'all', got {split!r}")
        if chunk_size < 1 or n_obs_steps < 1:
            raise ValueError(f"chunk_size and n_obs_steps must be >= 1, got {chunk_size}, {n_obs_steps}")
        from il_toolkit.envs import env_entry

        dataset = open_dataset(dataset_id)
        meta = dataset_metadata(dataset)
        entry = env_entry(meta["il_toolkit_env_id"]) if meta.get("il_toolkit_env_id") else None
        self.dataset_id, self.split = dataset_id, split
        self.chunk_size, self.n_obs_steps = chunk_size, n_obs_steps
        self.instruction = instruction or meta.get("il_toolkit_instruction") or (entry.instruction if entry else "")
        self.observation_space, self.action_space = dataset.observation_space, dataset.action_space
        order = np.random.default_rng(seed).permutation(dataset.total_episodes)
        n_val = max(1, int(round(val_fraction * len(order)))) if len(order) > 1 and val_fraction > 0 else 0
        chosen = {"train": order[n_val:], "val": order[:n_val], "all": order}[split]
        self.env_id = meta.get("il_toolkit_env_id") or None
        self.episodes = []
        for episode in dataset.iterate_episodes(sorted(int(i) for i in chosen)):
            frames = flatten_observation(episode.observations)
            if environment_state:
                frames[ENV_STATE_KEY] = episode_states(dataset_id, episode).astype(np.float32)
            record = {"id": int(episode.id), "frames": {k: v[:-1] for k, v in frames.items()},
                      "actions": np.asarray(episode.actions, dtype=np.float32).reshape(len(episode.actions), -1)}
            recorded = instruction_of(episode)  # envs that draw an instruction per episode (two-target PushT)
            if recorded is not None and not instruction:
                record["task"] = recorded
            self.episodes.append(record)
        if not self.episodes:
            raise DatasetError(f"split {split!r} of {dataset_id!r} has no episodes (the dataset has {len(order)})")
        self.index = [(e, t) for e, episode in enumerate(self.episodes) for t in range(len(episode["actions"]))]

    @property
    def state_space(self):
        """The env's full-state space (its ``obs_type="state"`` observation space), what
        ``observation.environment_state`` holds; needs the env the dataset was recorded in."""
        if self.env_id is None:
            raise DatasetError(f"{self.dataset_id!r} does not say which env recorded it, so its state space is unknown")
        from il_toolkit.envs import make_env

        env = make_env(self.env_id, obs_type="state")
        try:
            return env.observation_space
        finally:
            env.close()

    @property
    def keys(self) -> list[str]:
        return sorted(self.episodes[0]["frames"])

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> dict[str, Any]:
        import torch

        e, t = self.index[i]
        episode = self.episodes[e]
        window = np.clip(np.arange(t - self.n_obs_steps + 1, t + 1), 0, None)
        steps = np.arange(t, t + self.chunk_size)
        last = len(episode["actions"]) - 1
        sample: dict[str, Any] = {key: torch.from_numpy(frames[window]) for key, frames in episode["frames"].items()}
        sample["action"] = torch.from_numpy(episode["actions"][np.clip(steps, None, last)])
        sample["action_is_pad"] = torch.from_numpy(steps > last)
        if "action_dim_is_pad" in episode:
            sample["action_dim_is_pad"] = torch.from_numpy(episode["action_dim_is_pad"])
        sample.update(task=episode.get("task", self.instruction), episode_index=episode["id"], frame_index=t)
        return sample


class PushTDataset(ChunkedEpisodeDataset):
    """PushT demonstrations as the user guide loads them (``lerobot/pusht`` -> our expert's data)."""

    def __init__(self, split: str = "train", chunk_size: int = 10, n_obs_steps: int = 1,
                 dataset: str = "lerobot/pusht", **kwargs: Any) -> None:
        super().__init__(resolve_dataset(dataset), split, chunk_size, n_obs_steps, **kwargs)


class AlohaTransferCubeDataset(ChunkedEpisodeDataset):
    """ALOHA transfer-cube demonstrations (three cameras + joint positions)."""

    def __init__(self, split: str = "train", chunk_size: int = 100, n_obs_steps: int = 1,
                 dataset: str = "lerobot/aloha_sim_transfer_cube_scripted", **kwargs: Any) -> None:
        super().__init__(resolve_dataset(dataset), split, chunk_size, n_obs_steps, **kwargs)


class AlohaInsertionDataset(ChunkedEpisodeDataset):
    """ALOHA insertion demonstrations (three cameras + joint positions)."""

    def __init__(self, split: str = "train", chunk_size: int = 100, n_obs_steps: int = 1,
                 dataset: str = "lerobot/aloha_sim_insertion_scripted", **kwargs: Any) -> None:
        super().__init__(resolve_dataset(dataset), split, chunk_size, n_obs_steps, **kwargs)


def collate(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack tensors, keep strings and ints as lists / tensors."""
    import torch

    batch: dict[str, Any] = {}
    for key in samples[0]:
        values = [s[key] for s in samples]
        if isinstance(values[0], torch.Tensor):
            batch[key] = torch.stack(values)
        elif isinstance(values[0], (int, np.integer)):
            batch[key] = torch.tensor(values)
        else:
            batch[key] = values
    return batch


def create_lerobot_dataloader(dataset: ChunkedEpisodeDataset, batch_size: int = 32, shuffle: bool | None = None,
                              num_workers: int = 0, drop_last: bool = False, seed: int = 0):
    """A torch ``DataLoader`` over ``dataset`` (shuffled for the train split by default)."""
    import torch
    from torch.utils.data import DataLoader

    if shuffle is None:
        shuffle = dataset.split == "train"
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, num_workers=num_workers,
                      drop_last=drop_last, collate_fn=collate, generator=generator)
