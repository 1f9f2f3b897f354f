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
        x = torch.as_tensor(np.asarray(values, dtype=np.float64)).reshape(-1, np.asarray(values).shape[-1])
        if mode == "mean_std":
            return x.mean(0).float(), x.std(0, unbiased=False).clamp_min(_EPS).float()
        if mode == "min_max":
            lo, hi = x.min(0).values, x.max(0).values
            return ((hi + lo) / 2).float(), ((hi - lo) / 2).clamp_min(_EPS).float()
        return torch.zeros(x.shape[-1]), torch.ones(x.shape[-1])

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
