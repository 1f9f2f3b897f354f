"""State and action normalisation that lives inside the model, so it is saved with it.

Buffers (all saved in ``model.safetensors``): ``state_shift``/``state_scale`` ``(Ds,)`` and
``action_shift``/``action_scale`` ``(Da,)``, or ``(H, Da)`` with ``action_positions = H`` (each
position of an action chunk scaled by its own statistics); ``normalised = (x - shift) / scale``.
``"mean_std"`` uses mean and std; ``"min_max"`` maps [min, max] to [-1, 1]; ``"identity"``
leaves data as is. :meth:`fit` computes them from dataset arrays.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

_EPS = 1e-6
_MIN_POSITION_VALUES = 10  # a chunk position with fewer labelled values takes the statistics of all positions


class Normalizer(nn.Module):
    def __init__(self, state_dim: int, action_dim: int, mode: str = "mean_std", *, action_positions: int | None = None) -> None:
        super().__init__()
        self.mode = mode
        action_shape = (action_dim,) if action_positions is None else (action_positions, action_dim)
        self.register_buffer("state_shift", torch.zeros(max(state_dim, 0)))
        self.register_buffer("state_scale", torch.ones(max(state_dim, 0)))
        self.register_buffer("action_shift", torch.zeros(action_shape))
        self.register_buffer("action_scale", torch.ones(action_shape))
        self.register_buffer("fitted", torch.zeros((), dtype=torch.bool))

    @staticmethod
    def _stats(values: Any, mode: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-dimension ``(shift, scale)``; NaN entries (dimensions a sample does not have, as in
        multi-task datasets) are left out, and a dimension with no values keeps (0, 1)."""
        x = np.asarray(values, dtype=np.float64)
        x = x.reshape(-1, x.shape[-1])
        present = ~np.all(np.isnan(x), axis=0)
        shift, scale = np.zeros(x.shape[-1]), np.ones(x.shape[-1])
        with np.errstate(invalid="ignore"):
            if mode == "mean_std":
                shift[present] = np.nanmean(x[:, present], axis=0)
                scale[present] = np.maximum(np.nanstd(x[:, present], axis=0), _EPS)
            elif mode == "min_max":
                lo, hi = np.nanmin(x[:, present], axis=0), np.nanmax(x[:, present], axis=0)
                shift[present], scale[present] = (hi + lo) / 2, np.maximum((hi - lo) / 2, _EPS)
        return torch.as_tensor(shift).float(), torch.as_tensor(scale).float()

    @property
    def per_position(self) -> bool:
        return self.action_shift.dim() == 2

    def _action_stats(self, actions: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """``(shift, scale)`` shaped like the action buffers. Per position, from chunks ``(N, H, Da)``;
        a position with fewer than ``_MIN_POSITION_VALUES`` labelled values, and every position when
        the actions come without their chunk axis (``(M, Da)``), takes the statistics of all positions."""
        x = np.asarray(actions, dtype=np.float64)
        if x.shape[-1] != self.action_shift.shape[-1]:
            raise ValueError(f"actions have dimension {x.shape[-1]}, the model expects {self.action_shift.shape[-1]}")
        pooled = self._stats(x, self.mode)
        if not self.per_position:
            return pooled
        if x.ndim == 2:
            return pooled[0].expand_as(self.action_shift).clone(), pooled[1].expand_as(self.action_scale).clone()
        if x.ndim != 3 or x.shape[1] != self.action_shift.shape[0]:
            raise ValueError(f"actions of shape {x.shape}: pass chunks (N, {self.action_shift.shape[0]}, "
                             f"{self.action_shift.shape[1]}), NaN where a position has no label, or flat (M, "
                             f"{self.action_shift.shape[1]}) actions (every position then gets their statistics)")
        shifts, scales = [], []
        for position in range(x.shape[1]):
            shift, scale = self._stats(x[:, position], self.mode)
            few = torch.as_tensor((~np.isnan(x[:, position])).sum(axis=0) < _MIN_POSITION_VALUES)
            shifts.append(torch.where(few, pooled[0], shift))
            scales.append(torch.where(few, pooled[1], scale))
        return torch.stack(shifts), torch.stack(scales)

    @torch.no_grad()
    def fit(self, *, actions: Any, states: Any | None = None) -> "Normalizer":
        """Set the statistics from ``actions (N, ..., Da)`` (per position: ``(N, H, Da)`` chunks, NaN
        where a position has no label; other shapes give every position the same statistics) and
        ``states (N, ..., Ds)`` arrays."""
        shift, scale = self._action_stats(actions)
        self.action_shift.copy_(shift)
        self.action_scale.copy_(scale)
        if self.state_shift.numel():
            if states is None:
                raise ValueError("the model has a state input: pass states= to fit its normalisation")
            shift, scale = self._stats(states, self.mode)
            if shift.shape != self.state_shift.shape:
                raise ValueError(f"states have dimension {shift.shape[0]}, the model expects {self.state_shift.shape[0]}")
            self.state_shift.copy_(shift)
            self.state_scale.copy_(scale)
        self.fitted.fill_(True)
        return self

    def normalize_state(self, state: torch.Tensor) -> torch.Tensor:
        return (state - self.state_shift) / self.state_scale

    def _check_chunk(self, action: torch.Tensor) -> None:
        if self.per_position and tuple(action.shape[-2:]) != tuple(self.action_shift.shape):
            raise ValueError(f"actions of shape {tuple(action.shape)}: this normaliser scales chunks (..., "
                             f"{self.action_shift.shape[0]}, {self.action_shift.shape[1]}) position by position")

    def normalize_action(self, action: torch.Tensor) -> torch.Tensor:
        self._check_chunk(action)
        return (action - self.action_shift) / self.action_scale

    def unnormalize_action(self, action: torch.Tensor) -> torch.Tensor:
        self._check_chunk(action)
        return action * self.action_scale + self.action_shift
