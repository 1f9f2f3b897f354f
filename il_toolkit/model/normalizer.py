"""State and action normalisation that lives inside the model, so it is saved with it.

Buffers (all saved in ``model.safetensors``): ``state_shift``/``state_scale`` ``(Ds,)`` and
``action_shift``/``action_scale`` ``(Da,)``; ``normalised = (x - shift) / scale``.
``"mean_std"`` uses mean and std; ``"min_max"`` maps [min, max] to [-1, 1]; ``"identity"``
leaves data as is. :meth:`fit` computes them from dataset arrays.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

_EPS = 1e-6


class Normalizer(nn.Module):
    def __init__(self, state_dim: int, action_dim: int, mode: str = "mean_std") -> None:
        super().__init__()
        self.mode = mode
        self.register_buffer("state_shift", torch.zeros(max(state_dim, 0)))
        self.register_buffer("state_scale", torch.ones(max(state_dim, 0)))
        self.register_buffer("action_shift", torch.zeros(action_dim))
        self.register_buffer("action_scale", torch.ones(action_dim))
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

    @torch.no_grad()
    def fit(self, *, actions: Any, states: Any | None = None) -> "Normalizer":
        """Set the statistics from ``actions (N, ..., Da)`` and ``states (N, ..., Ds)`` arrays."""
        shift, scale = self._stats(actions, self.mode)
        if shift.shape != self.action_shift.shape:
            raise ValueError(f"actions have dimension {shift.shape[0]}, the model expects {self.action_shift.shape[0]}")
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

    def normalize_action(self, action: torch.Tensor) -> torch.Tensor:
        return (action - self.action_shift) / self.action_scale

    def unnormalize_action(self, action: torch.Tensor) -> torch.Tensor:
        return action * self.action_scale + self.action_shift
