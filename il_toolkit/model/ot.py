"""Entropic optimal transport between two point clouds (the K-OT term).

``sinkhorn_divergence(x (N, D), y (M, D), epsilon)`` is the debiased Sinkhorn divergence
``OT_eps(x, y) - (OT_eps(x, x) + OT_eps(y, y)) / 2`` with uniform weights and cost
``mean((x_i - y_j)^2)`` (squared distance divided by D, so the scale does not grow with the
chunk size). It is >= 0, zero when the clouds coincide, and differentiable in both inputs.
"""

from __future__ import annotations

import math

import torch


def _cost(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return torch.cdist(x, y).pow(2) / x.shape[-1]


def entropic_ot(x: torch.Tensor, y: torch.Tensor, epsilon: float = 0.05, n_iters: int = 30) -> torch.Tensor:
    """Entropic OT value between uniform clouds (dual objective), by log-domain Sinkhorn."""
    cost = _cost(x, y)
    n, m = cost.shape
    log_a = torch.full((n,), -math.log(n), device=x.device, dtype=cost.dtype)
    log_b = torch.full((m,), -math.log(m), device=x.device, dtype=cost.dtype)
    f = torch.zeros(n, device=x.device, dtype=cost.dtype)
    g = torch.zeros(m, device=x.device, dtype=cost.dtype)
    for _ in range(n_iters):
        f = -epsilon * torch.logsumexp(log_b[None, :] + (g[None, :] - cost) / epsilon, dim=1)
        g = -epsilon * torch.logsumexp(log_a[:, None] + (f[:, None] - cost) / epsilon, dim=0)
    return f.mean() + g.mean()  # the dual objective at the fixed point (uniform weights)


def sinkhorn_divergence(x: torch.Tensor, y: torch.Tensor, epsilon: float = 0.05, n_iters: int = 30) -> torch.Tensor:
    """Debiased Sinkhorn divergence between ``x (N, D)`` and ``y (M, D)``."""
    if x.dim() != 2 or y.dim() != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(f"sinkhorn_divergence takes (N, D) and (M, D) clouds, got {tuple(x.shape)} and {tuple(y.shape)}")
    xy = entropic_ot(x, y, epsilon, n_iters)
    xx = entropic_ot(x, x, epsilon, n_iters)
    yy = entropic_ot(y, y, epsilon, n_iters)
    return xy - 0.5 * (xx + yy)
