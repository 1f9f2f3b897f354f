"""Reflow: coupled (noise, chunk) pairs from a teacher's ODE, and a student that follows them in fewer steps."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from gymnasium import spaces

from il_toolkit.policies import load as load_policy
from il_toolkit.train.imitation_learning.loop import fit_flow_policy, train_flow_policy
from il_toolkit.train.imitation_learning.reflow import coupled_windows, reflow_policy
from il_toolkit.train.imitation_learning.windows import WindowDataset

torch.set_num_threads(1)
KEY = "naive_flow_matching_policy_trainer"
OBS_SPACE = spaces.Box(-5, 5, (2,), np.float32)
ACT_SPACE = spaces.Box(-3, 3, (2,), np.float32)


def _two_mode_demos(episodes: int = 16, steps: int = 12) -> list[SimpleNamespace]:
    """Actions at +-(1, 1) shifted by the observation: two modes for every state, so independent
    (noise, action) pairs cross and a flow-matching model's ODE paths curve."""
    rng = np.random.default_rng(0)
    demos = []
    for episode in range(episodes):
        obs = rng.uniform(-1, 1, size=(steps + 1, 2)).astype(np.float32)
        sign = 1.0 if episode % 2 else -1.0
        acts = sign * np.ones((steps, 2), np.float32) + 0.3 * obs[:-1]
        demos.append(SimpleNamespace(obs=obs, acts=acts))
    return demos


def _teacher(steps: int = 400):
    return train_flow_policy(KEY, _two_mode_demos(), OBS_SPACE, ACT_SPACE, steps=steps, batch_size=64, learning_rate=3e-3,
                             spec_fields={"horizon": 1, "n_obs_steps": 1, "velocity_net": "mlp", "mlp_width": 64})


def test_coupled_windows_hold_the_teachers_ode_endpoint_of_each_noise() -> None:
    teacher = _teacher(steps=20)
    data = WindowDataset.from_trajectories(_two_mode_demos(), teacher)
    pairs = coupled_windows(teacher, data, noises_per_window=3, seed=1, batch_size=50)
    assert len(pairs) == 3 * len(data) and pairs.noise.shape == pairs.chunks.shape == (3 * len(data), 1, 2)
    assert torch.equal(pairs.obs_index[len(data):2 * len(data)], data.obs_index)  # each window once per noise
    rows = torch.tensor([0, 5, len(data) + 5, 3 * len(data) - 1])
    batch = pairs.batch(rows)
    expected = teacher.sampler.sample_actions(pairs.observation_batch(rows), n_steps=teacher.n_steps, noise=batch["action_noise"])
    assert torch.allclose(batch["action"], expected, atol=1e-5)
    assert not torch.allclose(batch["action"][1], batch["action"][2])  # same window, other noise, other chunk
    assert pairs.action_is_pad is None  # every position of a pair is the teacher's


def test_latent_code_families_are_refused_with_the_families_that_work() -> None:
    demos = _two_mode_demos(episodes=2)
    policy = train_flow_policy("cfg_vqvae_flow_matching_trainer_kot", demos, OBS_SPACE, ACT_SPACE, steps=1, batch_size=8,
                               spec_fields={"horizon": 1, "n_obs_steps": 1, "d_model": 16, "codebook_size": 4})
    with pytest.raises(ValueError, match="latent code.*naive_flow_matching_policy_trainer"):
        reflow_policy(policy, demos, steps=1)


def test_sample_actions_starts_from_the_given_noise_and_checks_its_shape() -> None:
    teacher = _teacher(steps=5)
    data = WindowDataset.from_trajectories(_two_mode_demos(), teacher)
    window = data.observation_batch(torch.arange(4))
    noise = torch.randn(4, 1, 2, generator=torch.Generator().manual_seed(3))
    drawn = teacher.sampler.sample_actions(window, generator=torch.Generator().manual_seed(3))
    assert torch.allclose(teacher.sampler.sample_actions(window, noise=noise), drawn)
    with pytest.raises(ValueError, match="expected"):
        teacher.sampler.sample_actions(window, noise=torch.zeros(4, 2, 2))


def test_the_loss_trains_on_the_coupled_noise_where_a_batch_carries_it() -> None:
    teacher = _teacher(steps=5)
    data = WindowDataset.from_trajectories(_two_mode_demos(), teacher)
    batch = data.batch(torch.arange(16))
    trainer = teacher.sampler
    losses = []
    for noise in (torch.zeros(16, 1, 2), torch.full((16, 1, 2), 3.0)):
        trainer.generator = torch.Generator().manual_seed(0)  # the same times both ways
        losses.append(float(trainer.compute_loss({**batch, "action_noise": noise})[0].detach()))
    assert losses[0] != pytest.approx(losses[1])
    with pytest.raises(ValueError, match="action_noise"):
        trainer.compute_loss({**batch, "action_noise": torch.zeros(16, 2, 2)})


def test_reflow_makes_one_step_chunks_land_where_the_teachers_ode_does(tmp_path) -> None:
    teacher = _teacher()
    before = {k: v.clone() for k, v in teacher.model.state_dict().items()}
    student = reflow_policy(teacher, _two_mode_demos(), steps=400, learning_rate=3e-3, batch_size=64, seed=2)
    assert all(torch.equal(before[k], v) for k, v in teacher.model.state_dict().items())  # the teacher is untouched
    data = WindowDataset.from_trajectories(_two_mode_demos(), teacher)
    window = data.observation_batch(torch.arange(len(data)))
    noise = torch.randn(len(data), 1, 2, generator=torch.Generator().manual_seed(9))
    target = teacher.sampler.sample_actions(window, n_steps=64, noise=noise)

    def one_step_error(policy) -> float:
        return float((policy.sampler.sample_actions(window, n_steps=1, noise=noise) - target).pow(2).mean().sqrt())

    assert one_step_error(student) < 0.5 * one_step_error(teacher)
    restored = load_policy(student.save(tmp_path / "student"))
    assert restored.n_steps == teacher.n_steps and restored.trainer_key == KEY


def test_windows_need_the_policy_they_were_built_for() -> None:
    with pytest.raises(ValueError, match="policy"):
        fit_flow_policy(KEY, _two_mode_demos(), OBS_SPACE, ACT_SPACE, steps=1,
                        windows=WindowDataset.from_trajectories(_two_mode_demos(), _teacher(steps=1)))


def test_validation_pairs_are_coupled_too_and_an_env_of_other_spaces_is_refused() -> None:
    from il_toolkit.policies.base import SpaceMismatchError

    teacher, demos = _teacher(steps=5), _two_mode_demos()
    epochs: list[dict] = []
    reflow_policy(teacher, demos[:12], val_trajectories=demos[12:], steps=6, batch_size=64,
                  on_epoch_end=lambda epoch, metrics: epochs.append(metrics))
    assert epochs and all(np.isfinite(m["val/loss"]) for m in epochs)
    with pytest.raises(SpaceMismatchError, match="policy trained on this env"):
        reflow_policy(teacher, demos, steps=1, action_space=spaces.Box(-3, 3, (3,), np.float32))
