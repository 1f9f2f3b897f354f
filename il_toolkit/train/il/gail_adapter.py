"""The imitation side of GAIL: the discriminator, imitation's trainer with the user guide's input
noise, the scaled reward PPO sees, and a logger that forwards imitation's records.

Imported only when a GAIL run starts (``imitation`` is heavy to import).
"""

from __future__ import annotations

import tempfile
from typing import Any, Callable, Optional

import numpy as np
import torch
from imitation.algorithms.adversarial.gail import GAIL as ImitationGAIL
from imitation.rewards.reward_nets import BasicRewardNet
from imitation.util import logger as imitation_logger
from imitation.util.networks import RunningNorm

from il_toolkit.train.sb3_glue import capture_writer


def discriminator(observation_space: Any, action_space: Any, hidden_dim: int) -> BasicRewardNet:
    """MLP on (state, action) with two hidden layers of ``hidden_dim`` (the user guide's
    ``Discriminator``), inputs normalised by running statistics; outputs a logit."""
    return BasicRewardNet(
        observation_space, action_space, hid_sizes=(hidden_dim, hidden_dim), normalize_input_layer=RunningNorm
    )


class NoisyGAIL(ImitationGAIL):
    """imitation's GAIL with Gaussian noise on the discriminator's inputs while it trains
    (the user guide's remedy for an overfitting discriminator); the reward PPO sees is noise-free."""

    def __init__(self, *, disc_noise: float = 0.0, **kwargs: Any) -> None:
        self.disc_noise = float(disc_noise)
        super().__init__(**kwargs)

    def logits_expert_is_high(
        self,
        state: torch.Tensor,
        action: torch.Tensor,
        next_state: torch.Tensor,
        done: torch.Tensor,
        log_policy_act_prob: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        if self.disc_noise > 0 and self._reward_net.training:
            state = state + torch.randn_like(state) * self.disc_noise
            action = action + torch.randn_like(action) * self.disc_noise
            next_state = next_state + torch.randn_like(next_state) * self.disc_noise
        return super().logits_expert_is_high(state, action, next_state, done, log_policy_act_prob)


class RewardMeter:
    """Wraps imitation's reward function: multiplies by ``scale`` (``gail_reward_scale``) and
    keeps the running sum so each round can log the mean GAIL reward per step."""

    def __init__(self, reward_fn: Callable[..., np.ndarray], scale: float) -> None:
        self.reward_fn = reward_fn
        self.scale = scale
        self.total = 0.0
        self.count = 0

    def __call__(self, obs: np.ndarray, acts: np.ndarray, next_obs: np.ndarray, dones: np.ndarray) -> np.ndarray:
        rewards = self.scale * self.reward_fn(obs, acts, next_obs, dones)
        self.total += float(np.sum(rewards))
        self.count += len(rewards)
        return rewards

    def pop_mean(self) -> float:
        mean = self.total / max(1, self.count)
        self.total, self.count = 0.0, 0
        return mean


class RecordCapture:
    """imitation's ``HierarchicalLogger`` whose dumped records land in ``self.latest``
    (``mean/gen/...`` for PPO, ``mean/disc/...`` for the discriminator), not on stdout."""

    def __init__(self) -> None:
        from stable_baselines3.common.logger import Logger

        self._tmp = tempfile.TemporaryDirectory(prefix="il_toolkit-gail-")
        self.latest: dict[str, float] = {}
        default = Logger(folder=self._tmp.name, output_formats=[capture_writer(self._store)])
        self.logger = imitation_logger.HierarchicalLogger(default, format_strs=[])

    def _store(self, record: dict[str, Any], step: int) -> None:
        self.latest.update({k: float(v) for k, v in record.items()})

    def pop(self) -> dict[str, float]:
        """Dump pending means and return them with the ``mean/`` prefix removed."""
        self.latest = {}
        self.logger.dump()
        popped = {k.removeprefix("mean/"): v for k, v in self.latest.items()}
        self.latest = {}
        return popped

    def close(self) -> None:
        self.logger.close()
        self._tmp.cleanup()


def make_gail(
    *,
    demonstrations: Any,
    venv: Any,
    gen_algo: Any,
    hidden_dim: int,
    disc_updates: int,
    disc_lr: float,
    disc_noise: float,
    demo_batch_size: int,
    reward_scale: float,
    allow_variable_horizon: bool,
    capture: RecordCapture,
) -> tuple[NoisyGAIL, RewardMeter]:
    """imitation's GAIL on ``venv`` with ``gen_algo`` (an SB3 PPO) and a fresh discriminator.

    The generator's replay buffer holds one round of rollouts (``gen_algo.n_steps *
    venv.num_envs`` transitions); ``demo_batch_size`` is capped at that size.
    """
    round_steps = gen_algo.n_steps * venv.num_envs
    trainer = NoisyGAIL(
        demonstrations=demonstrations,
        demo_batch_size=min(demo_batch_size, round_steps),
        venv=venv,
        gen_algo=gen_algo,
        reward_net=discriminator(venv.observation_space, venv.action_space, hidden_dim),
        n_disc_updates_per_round=disc_updates,
        disc_opt_kwargs={"lr": disc_lr},
        custom_logger=capture.logger,
        allow_variable_horizon=allow_variable_horizon,
        disc_noise=disc_noise,
    )
    meter = RewardMeter(trainer.venv_wrapped.reward_fn, reward_scale)
    trainer.venv_wrapped.reward_fn = meter
    return trainer, meter
