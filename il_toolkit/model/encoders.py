"""Low-dimensional encoders: proprioception to a token, a plain MLP, flow time and ODE step size."""

from __future__ import annotations

import math

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
    """Flow time ``t`` in [0, 1], shape ``(B,)`` -> ``(B, d_model)``: sinusoids, then an MLP (``with_mlp=True``)
    or the sinusoids as they are (``with_mlp=False``, for a net whose first layer is a learned map of them anyway).

    Without autograd on the CPU, a ``t`` shared by the whole batch (an ODE solver's, or a shortcut model's
    no-grad targets') takes its sinusoids from a table kept per value: they depend on nothing trained, and
    computing them is ~8 small tensor ops per velocity call. (On a GPU the check would cost a host sync.)
    """

    _MAX_CACHED = 256  # distinct (value, device) rows kept; the table is emptied when full

    def __init__(self, d_model: int, scale: float = 1000.0, with_mlp: bool = True) -> None:
        super().__init__()
        self.d_model = d_model
        self.scale = scale
        self.mlp = nn.Sequential(nn.Linear(d_model, d_model), nn.SiLU(), nn.Linear(d_model, d_model)) if with_mlp else None
        self._cached: dict[tuple[float, torch.device], torch.Tensor] = {}

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        cached = not torch.is_grad_enabled() and t.device.type == "cpu" and one_value(t)
        features = self._cached_sinusoids(t) if cached else self.sinusoids(t)
        if self.mlp is None:  # a copy of a cached row, not the table itself: a caller may write to what it gets
            return features.clone() if cached else features
        return self.mlp(features)

    def _cached_sinusoids(self, t: torch.Tensor) -> torch.Tensor:
        """:meth:`sinusoids` of a ``t`` holding one value, as a read-only view ``(B, d_model)`` of the table."""
        key = (float(t[0]), t.device)
        row = self._cached.get(key)
        if row is None:
            if len(self._cached) >= self._MAX_CACHED:
                self._cached.clear()
            row = self._cached[key] = self.sinusoids(t[:1])
        return row.expand(t.shape[0], -1)

    def sinusoids(self, t: torch.Tensor) -> torch.Tensor:
        """``(B,)`` -> ``(B, d_model)``: sines and cosines of ``t * scale`` at geometric frequencies."""
        half = self.d_model // 2
        freqs = torch.exp(-torch.arange(half, device=t.device, dtype=torch.float32) * (9.2103 / max(half - 1, 1)))
        angles = (t.float() * self.scale)[:, None] * freqs[None, :]
        emb = torch.cat([angles.sin(), angles.cos()], dim=-1)
        if emb.shape[-1] < self.d_model:
            emb = nn.functional.pad(emb, (0, self.d_model - emb.shape[-1]))
        return emb


def one_value(values: torch.Tensor) -> bool:
    """Whether a ``(B,)`` tensor (``B >= 1``) holds one value throughout (an ODE solver's time or step size)."""
    return values.dim() == 1 and values.shape[0] > 0 and (values.shape[0] == 1 or bool((values == values[0]).all()))


class StepSizeEmbedding(nn.Module):
    """ODE step size ``d``, shape ``(B,)``, -> ``(B, d_model)``: what a shortcut model (Frans et al. 2024) is told.

    ``d`` enters as its number of halvings ``log2(1 / d)`` scaled by ``log2(max_steps)`` to [0, 1]: 0 for one step
    over the whole path, 1 for the smallest step ``1 / max_steps``. Steps below that, and ``d = 0`` (the
    instantaneous velocity that plain flow matching learns), count as the smallest.
    """

    def __init__(self, d_model: int, max_steps: int) -> None:
        super().__init__()
        if max_steps < 2:
            raise ValueError(f"max_steps must be >= 2, got {max_steps}")
        self.max_steps = max_steps
        self.embed = SinusoidalTimeEmbedding(d_model)

    def forward(self, step_size: torch.Tensor) -> torch.Tensor:
        d = step_size.float().clamp(1.0 / self.max_steps, 1.0)
        return self.embed(torch.log2(1.0 / d) / math.log2(self.max_steps))


def with_step_size(
    embedding: StepSizeEmbedding | None, step_size: torch.Tensor | None, time: torch.Tensor
) -> torch.Tensor:
    """A velocity net's time embedding ``time`` ``(B, d_model)`` plus that of ``step_size`` ``(B,)``.

    A net built without a step-size embedding (plain flow matching) takes no step size and gets ``time`` as it
    is; one built with it treats a missing step size as the smallest (the instantaneous velocity).
    """
    if embedding is None:
        if step_size is not None:
            raise ValueError("this velocity net was built without step-size conditioning (shortcut_steps=0): "
                             "it cannot be asked for a step of a given size")
        return time
    if step_size is None:
        step_size = torch.zeros(time.shape[0], device=time.device)
    return time + embedding(step_size)
