"""Several tasks in one chunked dataset, for a VLA conditioned on the instruction.

Tasks differ in state and action sizes (PushT: 2 and 2; ALOHA: 14 and 14) and in what
those numbers mean (board pixels against joint radians), so each task gets its own slots in
one long state vector and one long action vector instead of sharing dimensions::

    state  = [ PushT agent x, y | ALOHA qpos (14) ]          Ds = 16
    action = [ PushT target x, y | ALOHA joint targets (14) ] Da = 16

A task's samples hold zeros in the other tasks' slots and carry ``action_dim_is_pad`` (Da,)
so that the loss ignores those dimensions; :func:`dataset_statistics` reports them as NaN
so that normalisation statistics come from the owning task only. ``task_slots`` records the
layout, ``{instruction: {"state": [start, stop], "action": [start, stop]}}``; the VLA stores
it and :meth:`~il_toolkit.model.vla.VLAModel.for_task` uses it to act in one task's env.
Cameras are shared: every task must have the same camera names and image sizes.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from il_toolkit.model.spec import STATE_KEY
from il_toolkit.train.datasets.lerobot_dataset import ChunkedEpisodeDataset
from il_toolkit.train.datasets.minari_io import DatasetError


def _dim(episode: dict[str, Any], key: str) -> int:
    if key == "action":
        return int(episode["actions"].shape[-1])
    frames = episode["frames"]
    return int(frames[key].shape[-1]) if key in frames else 0


def _outside(size: int, start: int, stop: int) -> np.ndarray:
    """``(size,)`` bool, True everywhere but ``[start, stop)``: the dimensions a task does not own."""
    mask = np.ones(size, bool)
    mask[start:stop] = False
    return mask


def _check_compatible(datasets: Sequence[ChunkedEpisodeDataset]) -> None:
    first = datasets[0]
    for other in datasets[1:]:
        if (other.chunk_size, other.n_obs_steps) != (first.chunk_size, first.n_obs_steps):
            raise DatasetError(
                f"{other.dataset_id} has chunk_size={other.chunk_size}, n_obs_steps={other.n_obs_steps} but "
                f"{first.dataset_id} has {first.chunk_size}, {first.n_obs_steps}: build every task's dataset with the same values"
            )
        images = {k: v.shape[1:] for k, v in first.episodes[0]["frames"].items() if k != STATE_KEY}
        other_images = {k: v.shape[1:] for k, v in other.episodes[0]["frames"].items() if k != STATE_KEY}
        if images != other_images:
            raise DatasetError(
                f"tasks must share cameras and image sizes: {first.dataset_id} has {images}, {other.dataset_id} has "
                f"{other_images}; collect them with the same camera names and image_size"
            )
    for d in datasets:
        if any("task" in episode for episode in d.episodes):
            raise DatasetError(
                f"{d.dataset_id} records an instruction per episode (its env draws one each episode), so it cannot be "
                "one task of a multi-task model told apart by a single instruction: train on it alone")
    instructions = [d.instruction for d in datasets]
    if len(set(instructions)) != len(instructions) or not all(instructions):
        raise DatasetError(
            f"each task needs its own non-empty instruction, got {instructions}; pass instruction=... to the datasets"
        )


class MultiTaskDataset(ChunkedEpisodeDataset):
    """The episodes of several :class:`ChunkedEpisodeDataset` s (one per task), each task in
    its own state/action slots (see the module docstring); samples are the base layout plus
    ``action_dim_is_pad`` and the episode's own ``task``."""

    def __init__(self, datasets: Sequence[ChunkedEpisodeDataset]) -> None:
        if not datasets:
            raise DatasetError("MultiTaskDataset needs at least one dataset")
        _check_compatible(datasets)
        first = datasets[0]
        self.dataset_id = "+".join(d.dataset_id for d in datasets)
        self.split, self.chunk_size, self.n_obs_steps = first.split, first.chunk_size, first.n_obs_steps
        self.instruction = first.instruction
        self.observation_space = self.action_space = None  # no single env has this layout
        self.task_slots: dict[str, dict[str, list[int]]] = {}
        state_at = action_at = 0
        for d in datasets:
            ds, da = _dim(d.episodes[0], STATE_KEY), _dim(d.episodes[0], "action")
            self.task_slots[d.instruction] = {"state": [state_at, state_at + ds], "action": [action_at, action_at + da]}
            state_at, action_at = state_at + ds, action_at + da
        self.state_dim, self.action_dim = state_at, action_at
        placed = (self._place(episode, d.instruction) for d in datasets for episode in d.episodes)
        self.episodes = [{"id": number, **episode} for number, episode in enumerate(placed)]
        self.index = [(e, t) for e, episode in enumerate(self.episodes) for t in range(len(episode["actions"]))]

    def _place(self, episode: dict[str, Any], task: str) -> dict[str, Any]:
        slots = self.task_slots[task]
        s0, s1 = slots["state"]
        a0, a1 = slots["action"]
        steps = len(episode["actions"])
        actions = np.zeros((steps, self.action_dim), np.float32)
        actions[:, a0:a1] = episode["actions"]
        frames = dict(episode["frames"])
        if self.state_dim:
            state = np.zeros((steps, self.state_dim), np.float32)
            if STATE_KEY in frames:
                state[:, s0:s1] = frames[STATE_KEY]
            frames[STATE_KEY] = state
        return {"frames": frames, "actions": actions, "task": task,
                "action_dim_is_pad": _outside(self.action_dim, a0, a1), "state_dim_is_pad": _outside(self.state_dim, s0, s1)}

    def tasks(self) -> list[str]:
        return list(self.task_slots)


def dataset_statistics(dataset: ChunkedEpisodeDataset) -> tuple[np.ndarray, np.ndarray | None]:
    """``(actions (N, Da), states (N, Ds) or None)`` over every frame, for normalisation;
    dimensions a frame's task does not own (multi-task datasets) are NaN."""
    actions, states = [], []
    has_state = STATE_KEY in dataset.episodes[0]["frames"]
    for episode in dataset.episodes:
        act = episode["actions"]
        if "action_dim_is_pad" in episode:
            act = np.where(episode["action_dim_is_pad"], np.nan, act)
        actions.append(act)
        if has_state:
            state = episode["frames"][STATE_KEY]
            if "state_dim_is_pad" in episode:
                state = np.where(episode["state_dim_is_pad"], np.nan, state)
            states.append(state)
    return np.concatenate(actions), (np.concatenate(states) if has_state else None)


__all__ = ["MultiTaskDataset", "dataset_statistics"]
