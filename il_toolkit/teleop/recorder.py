"""Teleoperated episodes into Minari, on the same crash-safe path as ``collect``.

Each finished episode is written at once (``minari_io.episode_buffer`` +
``minari_io.write_progress``), so every finished episode stays readable whatever happens
next. An episode cut short by closing the window is **discarded**, never written: its
seed, length and reason are listed in the metadata key ``il_toolkit_discarded_episodes``,
and the dataset keeps only whole episodes. When the session ends the dataset is marked
complete (``il_toolkit_complete``); a session that crashed leaves it incomplete, and
``--append`` continues it.

Who acted is stored per step in the episode infos: ``infos["human_acted"]`` is a bool
array of length T, True where ``actions[t]`` came from the person (all True in plain
teleop; in ``--intervene`` sessions, the steps where the person held the takeover control).
:func:`load_human_steps` returns those steps for HG-DAgger. Metadata:
``il_toolkit_operator = "human"``, ``il_toolkit_expert = "human"``,
``il_toolkit_teleop_mode`` ("teleop" or "intervene"), ``il_toolkit_policy`` (the learned
policy's checkpoint path, intervene mode), ``il_toolkit_episode_modes`` (per episode).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

from il_toolkit.train.datasets import minari_io as io

OPERATOR = "human"
HUMAN_ACTED = "human_acted"


@dataclass
class TeleopEpisode:
    """One finished episode: T+1 observations, T actions/rewards, ``human_acted`` (T,) bool."""

    seed: int
    observations: list[Any]
    actions: list[np.ndarray]
    rewards: list[float]
    human_acted: list[bool]
    terminated: bool
    mode: str

    @property
    def length(self) -> int:
        return len(self.actions)


class TeleopRecorder:
    """Writes teleoperated episodes to ``dataset_id``; refuses an existing id unless
    ``append`` (same env, teleop datasets only) or ``overwrite``."""

    def __init__(self, dataset_id: str, env: gym.Env, *, env_id: str, env_kwargs: dict[str, Any], mode: str,
                 policy_path: str | None = None, seed: int = 0, overwrite: bool = False, append: bool = False,
                 description: str | None = None) -> None:
        from il_toolkit import __version__

        io._check_dataset_id(dataset_id)
        if overwrite and append:
            raise io.DatasetError("choose one of overwrite and append")
        self.dataset_id, self.env = dataset_id, env
        self.data_path = io.dataset_path(dataset_id) / "data"
        self.seeds: list[int] = []
        self.attempted: list[int] = []
        self.modes: list[str] = []
        self.discarded: list[dict[str, Any]] = []
        self.human_steps = 0
        if io.dataset_exists(dataset_id):
            if overwrite:
                io.delete_dataset(dataset_id)
            elif not append:
                raise io.DatasetExistsError(
                    f"dataset {dataset_id!r} already exists at {io.dataset_path(dataset_id)}; pass --append to add "
                    "episodes, --overwrite to replace it, or choose another id"
                )
            else:
                self._continue(io.dataset_metadata(io.open_dataset(dataset_id)), env_id, env_kwargs)
        self.next_seed = max([seed - 1, *self.attempted]) + 1
        what = f"HG-DAgger interventions on policy {policy_path}" if mode == "intervene" else "human teleoperation"
        self.metadata = {
            "dataset_id": dataset_id,
            "algorithm_name": f"il_toolkit teleop: {what}",
            "author": {"il_toolkit teleop (human operator)"},
            "code_permalink": "il_toolkit",
            "description": description or f"episodes of {env_id} driven by a person ({what})",
            "il_toolkit_env_id": env_id,
            "il_toolkit_env_kwargs": env_kwargs,
            "il_toolkit_expert": OPERATOR,
            "il_toolkit_operator": OPERATOR,
            "il_toolkit_teleop_mode": mode,
            "il_toolkit_policy": policy_path,
            "il_toolkit_version": __version__,
            "il_toolkit_infos": f"infos['{HUMAN_ACTED}'][t] is True where actions[t] came from the person",
        }

    def _continue(self, meta: dict[str, Any], env_id: str, env_kwargs: dict[str, Any]) -> None:
        recorded = (meta.get("il_toolkit_operator"), meta.get("il_toolkit_env_id"),
                    dict(meta.get("il_toolkit_env_kwargs") or {}))
        if recorded != (OPERATOR, env_id, env_kwargs):
            raise io.DatasetError(
                f"dataset {self.dataset_id!r} holds episodes of {recorded[1]} {recorded[2]} by operator {recorded[0]!r} "
                f"(il_toolkit_operator), not human teleoperation of {env_id} {env_kwargs}; use another dataset id "
                "or --overwrite"
            )
        self.seeds = [int(s) for s in meta.get("il_toolkit_seeds", [])]
        self.attempted = [int(s) for s in meta.get("il_toolkit_attempted_seeds", self.seeds)]
        self.modes = list(meta.get("il_toolkit_episode_modes", []))
        self.discarded = list(meta.get("il_toolkit_discarded_episodes", []))
        self.human_steps = int(meta.get("il_toolkit_human_steps", 0))

    def take_seed(self) -> int:
        """The reset seed for the next episode."""
        seed = self.next_seed
        self.next_seed += 1
        return seed

    def _progress_metadata(self, complete: bool) -> dict[str, Any]:
        return {**self.metadata, "il_toolkit_seeds": self.seeds, "il_toolkit_attempted_seeds": self.attempted,
                "il_toolkit_episode_modes": self.modes, "il_toolkit_discarded_episodes": self.discarded,
                "il_toolkit_human_steps": self.human_steps, "il_toolkit_complete": complete}

    def record(self, episode: TeleopEpisode) -> None:
        """Write one finished episode now."""
        buffer = io.episode_buffer(episode.observations, episode.actions, episode.rewards, episode.terminated, episode.seed)
        buffer = dataclasses.replace(buffer, infos={HUMAN_ACTED: np.asarray(episode.human_acted, dtype=bool)})
        self.seeds.append(episode.seed)
        self.attempted.append(episode.seed)
        self.modes.append(episode.mode)
        self.human_steps += int(np.sum(episode.human_acted))
        io.write_progress(self.data_path, self.env, [buffer], self._progress_metadata(complete=False))

    def discard(self, seed: int, steps: int, reason: str) -> None:
        """Note an episode that is not recorded (only in an existing dataset's metadata)."""
        self.attempted.append(seed)
        self.discarded.append({"seed": seed, "steps": steps, "reason": reason})
        if (self.data_path / "metadata.json").exists():
            io.write_progress(self.data_path, self.env, [], self._progress_metadata(complete=False))

    def finish(self) -> bool:
        """Mark the dataset complete; False when no episode was ever recorded (no dataset)."""
        if not (self.data_path / "metadata.json").exists():
            return False
        final = {k: v for k, v in self._progress_metadata(complete=True).items() if k != "dataset_id"}  # fixed at creation
        io.finalize(self.data_path, final)
        return True


def load_human_steps(dataset_id: str) -> dict[str, Any]:
    """The steps a person chose in a teleop dataset, for HG-DAgger: ``obs`` (N, *obs_shape)
    (dict observations: a dict of such arrays), ``acts`` (N, *act_shape), ``episode``
    (N,) episode index and ``step`` (N,) step index within it."""
    dataset = io.open_dataset(dataset_id)
    obs, acts, episodes, steps = [], [], [], []
    for episode in dataset.iterate_episodes():
        infos = episode.infos or {}
        if HUMAN_ACTED not in infos:
            raise io.DatasetError(
                f"dataset {dataset_id!r} has no infos['{HUMAN_ACTED}']: it was not recorded by `il-toolkit teleop`"
            )
        mask = np.asarray(infos[HUMAN_ACTED], dtype=bool)
        index = np.flatnonzero(mask)
        observations = episode.observations
        if isinstance(observations, dict):
            obs.append({k: np.asarray(v)[index] for k, v in observations.items()})
        else:
            obs.append(np.asarray(observations)[index])
        acts.append(np.asarray(episode.actions)[index])
        episodes.append(np.full(len(index), episode.id))
        steps.append(index)
    if obs and isinstance(obs[0], dict):
        stacked_obs: Any = {k: np.concatenate([o[k] for o in obs]) for k in obs[0]}
    else:
        stacked_obs = np.concatenate(obs)
    return {"obs": stacked_obs, "acts": np.concatenate(acts), "episode": np.concatenate(episodes),
            "step": np.concatenate(steps)}


def human_acted(dataset_id: str) -> list[np.ndarray]:
    """Per episode, the (T,) bool array of steps the person chose."""
    return [np.asarray((e.infos or {}).get(HUMAN_ACTED, []), dtype=bool)
            for e in io.open_dataset(dataset_id).iterate_episodes()]
