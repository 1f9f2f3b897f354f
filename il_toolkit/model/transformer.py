"""The transformer info embedder (fuses observation tokens) and the velocity action decoder."""

from __future__ import annotations

import torch
from torch import nn

from il_toolkit.model.encoders import SinusoidalTimeEmbedding, StepSizeEmbedding, with_step_size


def _encoder(d_model: int, n_heads: int, n_layers: int, ff_mult: int, dropout: float) -> nn.TransformerEncoder:
    layer = nn.TransformerEncoderLayer(
        d_model,
        n_heads,
        dim_feedforward=ff_mult * d_model,
        dropout=dropout,
        activation="gelu",
        batch_first=True,
        norm_first=True,
    )
    return nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False)


class InfoEmbedder(nn.Module):
    """Fuse per-source observation tokens into conditioning tokens.

    Input: a list of ``n_sources`` tensors, each ``(B, To, n_tokens_i, d_model)`` (one per
    camera, depth input and the proprioception), and optionally ``dropped`` ``(B, n_sources)``
    booleans: a dropped source's tokens are replaced by a learned "missing" embedding (whole-
    camera dropout). Each token gets a learned source embedding and an observation-step
    embedding. Output: ``(B, N, d_model)`` with ``N = To * sum(n_tokens_i)``.
    """

    def __init__(
        self, n_sources: int, n_obs_steps: int, d_model: int, n_heads: int, n_layers: int, ff_mult: int = 4, dropout: float = 0.0
    ) -> None:
        super().__init__()
        self.source = nn.Parameter(torch.randn(n_sources, d_model) * 0.02)
        self.missing = nn.Parameter(torch.randn(n_sources, d_model) * 0.02)
        self.step = nn.Parameter(torch.randn(n_obs_steps, d_model) * 0.02)
        self.encoder = _encoder(d_model, n_heads, n_layers, ff_mult, dropout)
        self.norm = nn.LayerNorm(d_model)

    def forward(self, sources: list[torch.Tensor], dropped: torch.Tensor | None = None) -> torch.Tensor:
        tokens = []
        for i, x in enumerate(sources):
            if dropped is not None:
                keep = (~dropped[:, i]).to(x.dtype)[:, None, None, None]
                x = x * keep + self.missing[i] * (1.0 - keep)
            x = x + self.source[i] + self.step[: x.shape[1], None, :]
            tokens.append(x.flatten(1, 2))
        return self.norm(self.encoder(torch.cat(tokens, dim=1)))


class ActionDecoder(nn.Module):
    """Predict the velocity of a noisy action chunk.

    ``forward(x_t (B, H, Da), t (B,), cond (B, N, d_model), step_size (B,) | None) -> v (B, H, Da)``.
    The sequence ``[time token, cond tokens, action tokens]`` goes through self-attention; the
    action tokens also get the time embedding added, and positional embeddings over the horizon.
    A shortcut model (``shortcut_steps > 0``) adds the step size's embedding to the time's.
    """

    def __init__(
        self, action_dim: int, horizon: int, d_model: int, n_heads: int, n_layers: int, ff_mult: int = 4,
        dropout: float = 0.0, shortcut_steps: int = 0,
    ) -> None:
        super().__init__()
        self.horizon = horizon
        self.action_in = nn.Linear(action_dim, d_model)
        self.position = nn.Parameter(torch.randn(horizon, d_model) * 0.02)
        self.time = SinusoidalTimeEmbedding(d_model)
        self.step = StepSizeEmbedding(d_model, shortcut_steps) if shortcut_steps else None
        self.encoder = _encoder(d_model, n_heads, n_layers, ff_mult, dropout)
        self.norm = nn.LayerNorm(d_model)
        self.action_out = nn.Linear(d_model, action_dim)

    def forward(
        self, x_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor, step_size: torch.Tensor | None = None
    ) -> torch.Tensor:
        if x_t.shape[1] != self.horizon:
            raise ValueError(f"action chunk has horizon {x_t.shape[1]}, the decoder was built for {self.horizon}")
        time = with_step_size(self.step, step_size, self.time(t))[:, None, :]  # (B, 1, d)
        actions = self.action_in(x_t) + self.position + time
        sequence = torch.cat([time, cond, actions], dim=1)
        out = self.norm(self.encoder(sequence))[:, -self.horizon :]
        return self.action_out(out)
