"""Low-dimensional encoders: proprioception to a token, and a plain MLP."""

from __future__ import annotations

import torch
from torch import nn


def mlp(in_dim: int, hidden: int, out_dim: int, n_hidden: int = 2, activation: type[nn.Module] = nn.SiLU) -> nn.Sequential:
    """``in_dim -> hidden (activation) x n_hidden -> out_dim``."""
    layers: list[nn.Module] = []
    dim = in_dim
    for _ in range(n_hidden):
        layers += [nn.Linear(dim, hidden), activation()]
        dim = hidden
    layers.append(nn.Linear(dim, out_dim))
    return nn.Sequential(*layers)


class StateEncoder(nn.Module):
    """Proprioception ``(B, To, Ds)`` -> one token per observation step ``(B, To, 1, d_model)``."""

    def __init__(self, state_dim: int, d_model: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(state_dim, d_model), nn.SiLU(), nn.Linear(d_model, d_model))

    def forward(self, state: torch.Tensor) -> torch.Tensor:
        return self.net(state)[:, :, None, :]


class SinusoidalTimeEmbedding(nn.Module):
    """Flow time ``t`` in [0, 1], shape ``(B,)`` -> ``(B, d_model)`` (sinusoids, then an MLP)."""

    def __init__(self, d_model: int, scale: float = 1000.0) -> None:
        super().__init__()
        self.d_model = d_model
        self.scale = scale
        self.mlp = nn.Sequential(nn.Linear(d_model, d_model), nn.SiLU(), nn.Linear(d_model, d_model))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        half = self.d_model // 2
        freqs = torch.exp(-torch.arange(half, device=t.device, dtype=torch.float32) * (9.2103 / max(half - 1, 1)))
        angles = (t.float() * self.scale)[:, None] * freqs[None, :]
        emb = torch.cat([angles.sin(), angles.cos()], dim=-1)
        if emb.shape[-1] < self.d_model:
            emb = nn.functional.pad(emb, (0, self.d_model - emb.shape[-1]))
        return self.mlp(emb)
