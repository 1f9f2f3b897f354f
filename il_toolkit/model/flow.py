"""Stateless flow-matching primitives: time sampling, the linear path, ODE solvers.

One time convention for the whole code base: ``t = 0`` is noise, ``t = 1`` is data,

    x_t = t * x1 + (1 - t) * x0,        target velocity  v = x1 - x0,

and sampling integrates ``dx/dt = v(x, t)`` from ``t = 0`` (noise) to ``t = 1`` (data). Models
only supply the velocity function; the number of ODE steps and the solver are chosen at call
time, never stored in a checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

VelocityFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""``velocity(x, t) -> v`` with ``x`` of shape ``(B, ...)``, ``t`` of shape ``(B,)`` in [0, 1]."""

SOLVERS = ("euler", "midpoint", "rk4")


@dataclass(frozen=True)
class TimeDistribution:
    """How training times are drawn: ``"uniform"`` on [0, 1] or ``"beta"`` with ``(alpha, beta)``.

    Beta(1.0, 1.5) puts more mass near ``t = 0`` (the noisy end), where velocity is hardest.
    """

    kind: str = "uniform"
    alpha: float = 1.0
    beta: float = 1.0

    def __post_init__(self) -> None:
        if self.kind not in ("uniform", "beta"):
            raise ValueError(f"time distribution kind must be 'uniform' or 'beta', got {self.kind!r}")
        if self.alpha <= 0 or self.beta <= 0:
            raise ValueError(f"Beta parameters must be positive, got alpha={self.alpha}, beta={self.beta}")

    def sample(
        self, batch_size: int, *, device: torch.device | str = "cpu", generator: torch.Generator | None = None
    ) -> torch.Tensor:
        if self.kind == "uniform":
            return sample_time_uniform(batch_size, device=device, generator=generator)
        return sample_time_beta(batch_size, self.alpha, self.beta, device=device, generator=generator)


def sample_time_uniform(
    batch_size: int, *, device: torch.device | str = "cpu", generator: torch.Generator | None = None
) -> torch.Tensor:
    """``(B,)`` times drawn uniformly from [0, 1)."""
    return torch.rand(batch_size, device=device, generator=generator)


def sample_time_beta(
    batch_size: int,
    alpha: float,
    beta: float,
    *,
    device: torch.device | str = "cpu",
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """``(B,)`` times drawn from Beta(alpha, beta).

    When ``alpha == 1`` or ``beta == 1`` the inverse CDF is closed-form and the draw honours
    ``generator``; otherwise it goes through Gamma variates from torch's global generator.
    """
    if alpha <= 0 or beta <= 0:
        raise ValueError(f"Beta parameters must be positive, got alpha={alpha}, beta={beta}")
    if alpha == 1.0 or beta == 1.0:
        u = torch.rand(batch_size, device=device, generator=generator)
        if alpha == 1.0:  # CDF 1 - (1 - x)^beta
            return 1.0 - (1.0 - u).pow(1.0 / beta)
        return u.pow(1.0 / alpha)  # beta == 1: CDF x^alpha
    dist = torch.distributions.Beta(
        torch.tensor(float(alpha), device=device), torch.tensor(float(beta), device=device)
    )
    return dist.sample((batch_size,))


def _broadcast_time(t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``t`` of shape ``(B,)`` reshaped to ``(B, 1, ..., 1)`` to broadcast against ``like``."""
    if t.dim() == 0:
        t = t.expand(like.shape[0])
    if t.shape[0] != like.shape[0]:
        raise ValueError(f"time has batch size {t.shape[0]} but x has {like.shape[0]}")
    return t.reshape(t.shape[0], *([1] * (like.dim() - 1))).to(like.dtype)


def interpolate(x0: torch.Tensor, x1: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """The point ``x_t = t * x1 + (1 - t) * x0`` on the linear path; ``t`` is ``(B,)``."""
    tb = _broadcast_time(t, x1)
    return tb * x1 + (1.0 - tb) * x0


def target_velocity(x0: torch.Tensor, x1: torch.Tensor) -> torch.Tensor:
    """The constant velocity ``x1 - x0`` of the linear path."""
    return x1 - x0


def flow_matching_pair(x0: torch.Tensor, x1: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(x_t, v_target)`` for noise ``x0``, data ``x1`` and times ``t``."""
    return interpolate(x0, x1, t), target_velocity(x0, x1)


def predicted_endpoint(x_t: torch.Tensor, t: torch.Tensor, velocity: torch.Tensor) -> torch.Tensor:
    """One-step estimate of the data point: ``x1_hat = x_t + (1 - t) * v``."""
    return x_t + (1.0 - _broadcast_time(t, x_t)) * velocity


def integrate(
    velocity: VelocityFn,
    x0: torch.Tensor,
    *,
    n_steps: int = 10,
    solver: str = "euler",
) -> torch.Tensor:
    """Integrate ``dx/dt = velocity(x, t)`` from ``t = 0`` (``x0``, noise) to ``t = 1`` (data).

    ``n_steps`` equal steps of ``solver`` (``"euler"``: 1 velocity call per step,
    ``"midpoint"``: 2, ``"rk4"``: 4). Returns a tensor shaped like ``x0``.
    """
    if n_steps < 1:
        raise ValueError(f"n_steps must be >= 1, got {n_steps}")
    if solver not in SOLVERS:
        raise ValueError(f"unknown ODE solver {solver!r}; choose one of {', '.join(SOLVERS)}")
    batch = x0.shape[0]
    h = 1.0 / n_steps
    x = x0

    def at(time: float) -> torch.Tensor:
        return torch.full((batch,), time, device=x0.device, dtype=x0.dtype)

    for i in range(n_steps):
        t = i * h
        if solver == "euler":
            x = x + h * velocity(x, at(t))
        elif solver == "midpoint":
            k1 = velocity(x, at(t))
            x = x + h * velocity(x + 0.5 * h * k1, at(t + 0.5 * h))
        else:
            k1 = velocity(x, at(t))
            k2 = velocity(x + 0.5 * h * k1, at(t + 0.5 * h))
            k3 = velocity(x + 0.5 * h * k2, at(t + 0.5 * h))
            k4 = velocity(x + h * k3, at(t + h))
            x = x + (h / 6.0) * (k1 + 2 * k2 + 2 * k3 + k4)
    return x


def velocity_calls(n_steps: int, solver: str) -> int:
    """How many velocity evaluations ``integrate`` makes (function evaluations, NFE)."""
    if solver not in SOLVERS:
        raise ValueError(f"unknown ODE solver {solver!r}; choose one of {', '.join(SOLVERS)}")
    return n_steps * {"euler": 1, "midpoint": 2, "rk4": 4}[solver]
