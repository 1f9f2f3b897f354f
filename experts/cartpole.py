"""An LQR expert for CartPole that balances from far outside the standard start range.

The controller linearises the env's own equations of motion about the upright
equilibrium, solves the discrete-time Riccati equation for the gain ``K`` and pushes in the
direction of the LQR force ``u = -K s`` (CartPole's actions are ±force_mag only). The
state it reads is the observation itself, so it acts from any state DAgger reaches.
"""

from __future__ import annotations

from typing import Any, Mapping

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces

from il_toolkit.policies.base import BasePolicy

# State cost on (x, x_dot, theta, theta_dot) and force cost: weights tuned for the ±10 N
# bang-bang actuator so the cart also returns to the centre of the track.
DEFAULT_Q = (1.0, 1.0, 100.0, 1.0)
DEFAULT_R = 0.1


def _cartpole_derivatives(state: np.ndarray, force: float, p: Mapping[str, float]) -> np.ndarray:
    """d/dt of (x, x_dot, theta, theta_dot) under ``force``, the equations gymnasium integrates."""
    _, x_dot, theta, theta_dot = state
    cos, sin = np.cos(theta), np.sin(theta)
    total_mass = p["masscart"] + p["masspole"]
    polemass_length = p["masspole"] * p["length"]
    temp = (force + polemass_length * theta_dot**2 * sin) / total_mass
    theta_acc = (p["gravity"] * sin - cos * temp) / (
        p["length"] * (4.0 / 3.0 - p["masspole"] * cos**2 / total_mass)
    )
    x_acc = temp - polemass_length * theta_acc * cos / total_mass
    return np.array([x_dot, x_acc, theta_dot, theta_acc])


def lqr_gain(params: Mapping[str, float], q: tuple[float, ...] = DEFAULT_Q, r: float = DEFAULT_R) -> np.ndarray:
    """Discrete-time LQR gain ``K`` (shape (4,)) for the cart-pole linearised at upright."""
    from scipy.linalg import solve_discrete_are

    eps = 1e-6
    origin = np.zeros(4)
    a = np.column_stack(
        [(_cartpole_derivatives(origin + eps * e, 0.0, params) - _cartpole_derivatives(origin - eps * e, 0.0, params)) / (2 * eps) for e in np.eye(4)]
    )
    b = (_cartpole_derivatives(origin, eps, params) - _cartpole_derivatives(origin, -eps, params)) / (2 * eps)
    tau = params["tau"]
    a_d, b_d = np.eye(4) + tau * a, (tau * b).reshape(4, 1)
    q_mat, r_mat = np.diag(q), np.array([[r]])
    p_mat = solve_discrete_are(a_d, b_d, q_mat, r_mat)
    return (np.linalg.solve(r_mat + b_d.T @ p_mat @ b_d, b_d.T @ p_mat @ a_d)).reshape(4)


def cartpole_params(env: gym.Env | None) -> dict[str, float]:
    """Physical parameters read from a CartPole env (gymnasium's defaults without one)."""
    from gymnasium.envs.classic_control.cartpole import CartPoleEnv

    source = env.unwrapped if env is not None else CartPoleEnv()
    return {k: float(getattr(source, k)) for k in ("gravity", "masscart", "masspole", "length", "tau", "force_mag")}


class CartPoleLQRExpert(BasePolicy):
    """Push right (action 1) when the LQR force ``-K·s`` is positive, else left (action 0)."""

    checkpoint_kind = "cartpole_lqr_expert"

    def __init__(self, env: gym.Env | None = None, *, gain: np.ndarray | None = None) -> None:
        observation_space = env.observation_space if env is not None else spaces.Box(-np.inf, np.inf, (4,), np.float32)
        action_space = env.action_space if env is not None else spaces.Discrete(2)
        super().__init__(observation_space, action_space)
        self.gain = np.asarray(gain if gain is not None else lqr_gain(cartpole_params(env)), dtype=np.float64)

    def force(self, observations: np.ndarray) -> np.ndarray:
        """The continuous LQR force for a batch of states, shape (B,)."""
        return -np.asarray(observations, dtype=np.float64) @ self.gain

    def _predict_batch(self, observations: Any, deterministic: bool) -> np.ndarray:
        return (self.force(observations) > 0).astype(np.int64)

    def checkpoint_tensors(self) -> dict[str, torch.Tensor]:
        return {"gain": torch.from_numpy(self.gain.copy())}

    @classmethod
    def from_checkpoint(cls, config, tensors, observation_space, action_space) -> "CartPoleLQRExpert":
        expert = cls(gain=tensors["gain"].numpy())
        expert.observation_space, expert.action_space = observation_space, action_space
        return expert
