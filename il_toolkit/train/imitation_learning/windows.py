"""Demonstration episodes -> observation windows and action chunks (diffusion_policy's convention).

For step ``t`` of an episode of ``T`` actions, the window holds observations
``t - To + 1 .. t`` and the chunk actions ``t - To + 1 .. t - To + H`` (indices clipped to the
episode, i.e. edges padded by repetition), so a policy with ``action_offset = To - 1``
executes the chunk from the action at ``t`` on. Arrays are stored once per step and windows
are gathered by index, so images are not duplicated ``To`` times in memory. Where the policy
expresses actions relative to the state (its feature pipeline's action codec), each window's
chunk is encoded relative to the state at ``t``, the one it is planned from, and stored whole.

An episode whose actions are cut out of a longer one (an expert's stretch that handed control
back: the info :data:`~il_toolkit.train.datasets.minari_io.ACTIONS_CUT_INFO`) has no label past
its end nor before its start; its windows' positions there are marked in ``action_is_pad``
``(B, H)`` and left out of the loss (LeRobot's convention), where a demonstration's ends are
padded with its edge actions and trained.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np
import torch

from il_toolkit.model.spec import ACTION_KEY, ACTION_NOISE_KEY, ACTION_PAD_KEY
from il_toolkit.train.datasets.minari_io import DatasetError, actions_cut, chunk_start_mask


@dataclass(frozen=True)
class WindowDataset:
    """``observations[key]`` ``(M, ...)`` per step, ``actions`` ``(M, Da)``; ``obs_index`` ``(N, To)``
    and ``action_index`` ``(N, H)`` pick each window's rows; ``chunks`` ``(N, H, Da)``, when set, holds
    each window's encoded chunk (see the module docstring) and is what :meth:`batch` returns;
    ``action_is_pad`` ``(N, H)`` bool, set when some episode is cut, marks the positions with no label;
    ``noise`` ``(N, H, Da)``, when set, is the (normalised) noise each window's chunk is coupled to
    (reflow: the chunk is where a teacher's ODE took that noise), returned as ``"action_noise"``."""

    observations: Mapping[str, torch.Tensor]
    actions: torch.Tensor
    obs_index: torch.Tensor
    action_index: torch.Tensor
    chunks: torch.Tensor | None = None
    action_is_pad: torch.Tensor | None = None
    noise: torch.Tensor | None = None

    def __len__(self) -> int:
        return int(self.obs_index.shape[0])

    def batch(self, indices: torch.Tensor) -> dict[str, torch.Tensor]:
        """``{batch_key: (B, To, ...), "action": (B, H, Da)}`` for window ``indices`` ``(B,)``, and
        ``"action_is_pad": (B, H)`` where some episode is cut, ``"action_noise": (B, H, Da)`` where coupled."""
        out = self.observation_batch(indices)
        out[ACTION_KEY] = self.chunks[indices] if self.chunks is not None else self.actions[self.action_index[indices]]
        if self.action_is_pad is not None:
            out[ACTION_PAD_KEY] = self.action_is_pad[indices]
        if self.noise is not None:
            out[ACTION_NOISE_KEY] = self.noise[indices]
        return out

    def observation_batch(self, indices: torch.Tensor) -> dict[str, torch.Tensor]:
        """``{batch_key: (B, To, ...)}``: the observation windows ``indices`` ``(B,)``, what a policy acts on."""
        return {key: value[self.obs_index[indices]] for key, value in self.observations.items()}

    def action_chunks(self) -> torch.Tensor:
        """Every window's chunk ``(N, H, Da)`` as :meth:`batch` returns it."""
        return self.chunks if self.chunks is not None else self.actions[self.action_index]

    def labelled_actions(self) -> torch.Tensor:
        """``(M, Da)``: every chunk position that has a label, of every window."""
        chunks = self.action_chunks()
        return chunks.reshape(-1, chunks.shape[-1]) if self.action_is_pad is None else chunks[~self.action_is_pad]

    def labelled_chunks(self) -> torch.Tensor:
        """Every window's chunk ``(N, H, Da)`` in float64, NaN at the positions without a label (normaliser statistics)."""
        chunks = self.action_chunks().double()
        return chunks if self.action_is_pad is None else chunks.masked_fill(self.action_is_pad[..., None], float("nan"))

    def state_rows(self, key: str = "observation.state") -> torch.Tensor | None:
        return self.observations.get(key)

    @classmethod
    def from_episodes(
        cls,
        episodes: Iterable[tuple[Mapping[str, Any], Any] | tuple[Mapping[str, Any], Any, Any]],
        n_obs_steps: int,
        horizon: int,
        encode_chunk: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
        cut: Sequence[bool] | None = None,
    ) -> "WindowDataset":
        """``episodes``: ``(observations {batch_key: (T or T+1, ...)}, actions (T, Da))`` pairs, or
        triples with the raw states ``(T or T+1, D)`` that ``encode_chunk(states (T, D), chunks (T, H, Da))``
        expresses each step's chunk relative to; ``cut``: one flag per episode, whether its actions
        stop at a cut (positions past its end are then marked in ``action_is_pad``, not trained).

        A trailing final observation (``T + 1`` rows, imitation's convention) is dropped.
        """
        obs_parts: dict[str, list[torch.Tensor]] = {}
        act_parts, obs_index, act_index, chunk_parts, pad_parts = [], [], [], [], []
        lengths: list[tuple[int, bool]] = []  # (actions, cut) per episode
        offset = 0
        for index, (observations, actions, *raw) in enumerate(episodes):
            acts = torch.as_tensor(np.asarray(actions, dtype=np.float32))
            steps = acts.shape[0]
            if steps == 0:
                continue
            for key, value in observations.items():
                value = torch.as_tensor(np.asarray(value))
                if value.shape[0] not in (steps, steps + 1):
                    raise ValueError(
                        f"episode has {steps} actions but {value.shape[0]} {key!r} observations; expected {steps} or {steps + 1}"
                    )
                obs_parts.setdefault(key, []).append(value[:steps])
            act_parts.append(acts)
            t = np.arange(steps)
            first = t - (n_obs_steps - 1)
            obs_index.append(offset + np.clip(first[:, None] + np.arange(n_obs_steps), 0, steps - 1))
            unclipped = first[:, None] + np.arange(horizon)
            local = np.clip(unclipped, 0, steps - 1)
            act_index.append(offset + local)
            is_cut = cut is not None and bool(cut[index])
            pad_parts.append((unclipped > steps - 1) | (unclipped < 0) if is_cut else np.zeros_like(local, bool))
            lengths.append((steps, is_cut))
            if encode_chunk is not None:
                states = np.asarray(raw[0], dtype=np.float64)[:steps].reshape(steps, -1)
                chunk = np.asarray(actions, dtype=np.float64).reshape(steps, -1)[local]
                chunk_parts.append(torch.as_tensor(encode_chunk(states, chunk), dtype=torch.float32))
            offset += steps
        if not act_parts:
            raise DatasetError("no episode with at least one action: nothing to train on")
        _check_lengths(lengths, horizon)
        return cls(
            observations={key: torch.cat(parts) for key, parts in obs_parts.items()},
            actions=torch.cat(act_parts),
            obs_index=torch.as_tensor(np.concatenate(obs_index)),
            action_index=torch.as_tensor(np.concatenate(act_index)),
            chunks=torch.cat(chunk_parts) if chunk_parts else None,
            action_is_pad=torch.as_tensor(np.concatenate(pad_parts)) if cut is not None and any(cut) else None,
        )

    @classmethod
    def from_trajectories(cls, trajectories: Sequence[Any], policy: Any) -> "WindowDataset":
        """Windows from imitation trajectories (``.obs`` ``(T+1, ...)``, ``.acts`` ``(T, Da)``),
        mapped to batch keys by ``policy.observation_batch`` so training sees exactly what
        the policy will see when acting."""
        spec = policy.spec

        def plain(obs: Any) -> Any:
            if hasattr(obs, "unwrap"):
                obs = obs.unwrap()
            if isinstance(obs, Mapping):
                return {k: plain(v) for k, v in obs.items()}
            return np.asarray(obs)

        kept = [(t, mask) for t in trajectories for mask in [chunk_start_mask(t)] if mask.any()]
        if trajectories and not kept:
            raise DatasetError(f"none of the {len(trajectories)} episodes has a step a training window may start from "
                             "(their chunk_start info is all false): nothing to train on")
        trajectories = [t for t, _ in kept]
        cut = [actions_cut(t) for t in trajectories]
        features = getattr(policy, "features", None)
        if features is None:
            episodes = ((policy.observation_batch(plain(t.obs)), t.acts) for t in trajectories)
            windows = cls.from_episodes(episodes, spec.n_obs_steps, spec.horizon, cut=cut)
        else:
            triples = ((policy.observation_batch(obs), t.acts, policy.raw_state(obs))
                       for t in trajectories for obs in [plain(t.obs)])
            windows = cls.from_episodes(triples, spec.n_obs_steps, spec.horizon, encode_chunk=policy.encode_actions,
                                        cut=cut)
        starts = np.concatenate([mask for _, mask in kept])
        return windows if starts.all() else windows.select(torch.as_tensor(starts))

    def select(self, keep: torch.Tensor) -> "WindowDataset":
        """The windows where ``keep`` ``(N,)`` bool is set, or those ``keep`` (long) indexes, repeats included
        (the per-step arrays are shared)."""
        return WindowDataset(self.observations, self.actions, self.obs_index[keep], self.action_index[keep],
                             None if self.chunks is None else self.chunks[keep],
                             None if self.action_is_pad is None else self.action_is_pad[keep],
                             None if self.noise is None else self.noise[keep])


def check_horizon_fits(trajectories: Sequence[Any], horizon: int) -> None:
    """Raise the error :func:`_check_lengths` gives when no episode of ``trajectories`` (``.acts`` ``(T, Da)``) holds
    ``horizon`` actions, before anything is built for them (a chunk-sized velocity net can be large)."""
    lengths = [len(t.acts) for t in trajectories]
    if lengths and max(lengths) < horizon:
        _check_lengths([(n, False) for n in lengths], horizon)


def _check_lengths(lengths: Sequence[tuple[int, bool]], horizon: int) -> None:
    """``lengths``: (actions, cut) per episode. Episodes shorter than the chunk are padded by
    repeating their last action (diffusion_policy's convention), which is harmless for a few of
    them; when none reaches the horizon, no chunk in the data shows ``horizon`` real actions and
    the policy would learn the padding. Cut stretches are not padded (their missing positions are
    left out of the loss), so only their length counts."""
    longest = max(n for n, _ in lengths)
    padded = [n for n, cut in lengths if not cut]
    if longest < horizon:
        raise DatasetError(
            f"every episode is shorter than the action chunk (the longest has {longest} actions, the shortest "
            f"{min(n for n, _ in lengths)}; horizon {horizon}): lower the horizon to at most {longest} (--horizon) or "
            "collect longer episodes"
        )
    short = sum(n < horizon for n in padded)
    if short:
        warnings.warn(
            f"{short} of {len(padded)} episodes are shorter than the action chunk (shortest: {min(padded)} actions, "
            f"horizon {horizon}); their chunks are padded with their last action", stacklevel=3)
