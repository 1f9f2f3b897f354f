"""SB3 policies train in [-1, 1] action units on envs with other Box bounds (PushT's pixels):
the unit maps, the rescaling SB3Policy, the exact conversion of env-unit policies, GAIL/PPO."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gymnasium import spaces
from stable_baselines3.common.policies import ActorCriticPolicy

from il_toolkit.policies import SB3Policy, load
from il_toolkit.policies.spaces import from_unit_actions, is_unit_twin, to_unit_actions, unit_action_space

BOARD = spaces.Box(0.0, 512.0, (2,), np.float32)
OBS = spaces.Box(-np.inf, np.inf, (5,), np.float64)


def random_policy(action_space: spaces.Box, seed: int = 0) -> ActorCriticPolicy:
    torch.manual_seed(seed)
    policy = ActorCriticPolicy(OBS, action_space, lr_schedule=lambda _: 0.0, net_arch=[16, 16])
    with torch.no_grad():
        for p in policy.parameters():
            p.normal_(0, 0.5)
    policy.set_training_mode(False)
    return policy


def test_unit_maps_round_trip_and_only_apply_to_bounded_boxes():
    assert unit_action_space(BOARD) == spaces.Box(-1.0, 1.0, (2,), np.float32)
    assert unit_action_space(spaces.Box(-1.0, 1.0, (3,))) is None
    assert unit_action_space(spaces.Box(-np.inf, np.inf, (3,))) is None
    assert unit_action_space(spaces.Discrete(2)) is None
    actions = np.array([[0.0, 512.0], [256.0, 128.0]], np.float32)
    np.testing.assert_allclose(to_unit_actions(actions, BOARD), [[-1, 1], [0, -0.5]])
    np.testing.assert_allclose(from_unit_actions(to_unit_actions(actions, BOARD), BOARD), actions, atol=1e-4)
    np.testing.assert_array_equal(from_unit_actions([[3.0, -7.0]], BOARD), [[512.0, 0.0]])  # clipped
    assert is_unit_twin(unit_action_space(BOARD), BOARD) and not is_unit_twin(BOARD, BOARD)


def test_rescaling_policy_acts_in_env_units_and_round_trips(tmp_path):
    unit_policy = random_policy(unit_action_space(BOARD))
    policy = SB3Policy(unit_policy, action_space=BOARD)
    assert policy.rescales and policy.action_space == BOARD
    obs = np.random.default_rng(0).normal(size=(20, 5))
    actions, _ = policy.predict(obs)
    unit_actions, _ = unit_policy.predict(obs, deterministic=True)
    np.testing.assert_allclose(actions, from_unit_actions(unit_actions, BOARD))
    assert actions.min() >= 0 and actions.max() <= 512 and np.ptp(actions) > 1
    restored = load(policy.save(tmp_path / "p"))
    assert isinstance(restored, SB3Policy) and restored.rescales and restored.action_space == BOARD
    np.testing.assert_array_equal(restored.predict(obs)[0], actions)
    assert not SB3Policy(random_policy(BOARD)).rescales  # a policy in env units stays as it is


def test_env_unit_policy_converts_exactly():
    from il_toolkit.train.online_rl.ppo_trainer import unit_actor_critic

    raw = random_policy(BOARD)
    converted = unit_actor_critic(SB3Policy(raw), BOARD)
    assert is_unit_twin(converted.action_space, BOARD)
    obs = torch.as_tensor(np.random.default_rng(1).normal(size=(50, 5)), dtype=torch.float32)
    with torch.no_grad():
        raw_dist, unit_dist = raw.get_distribution(obs).distribution, converted.get_distribution(obs).distribution
    half = torch.tensor([256.0, 256.0])
    torch.testing.assert_close(unit_dist.mean * half + half, raw_dist.mean, rtol=1e-4, atol=1e-3)
    torch.testing.assert_close(unit_dist.stddev * half, raw_dist.stddev, rtol=1e-4, atol=1e-4)
    assert unit_actor_critic(SB3Policy(converted, action_space=BOARD), BOARD) is converted


def test_ppo_on_pusht_trains_in_unit_actions_and_starts_where_the_given_policy_was():
    """PPOTrainer from a BC policy kept in board pixels: the generator acts in [-1, 1], and
    before any update the wrapped policy gives the BC policy's (clipped) actions."""
    import gymnasium as gym

    import il_toolkit  # noqa: F401
    from il_toolkit.config.training_config import RLConfig
    from il_toolkit.train.online_rl.ppo_trainer import PPOTrainer

    env = gym.make("il_toolkit/PushT-v0", obs_type="state")
    start = SB3Policy(ActorCriticPolicy(env.observation_space, env.action_space, lr_schedule=lambda _: 0.0,
                                        net_arch=[16, 16]))
    with torch.no_grad():
        start.policy.action_net.bias.copy_(torch.tensor([200.0, 300.0]))
    trainer = PPOTrainer(env, policy=start, config=RLConfig(n_envs=1, n_steps=64, batch_size=32), progress=False)
    assert is_unit_twin(trainer.venv.action_space, env.action_space)
    assert trainer.policy.rescales and trainer.policy.action_space == env.action_space
    obs = np.stack([env.reset(seed=s)[0] for s in range(10)])
    np.testing.assert_allclose(trainer.policy.predict(obs)[0], start.predict(obs)[0], atol=0.05)


def test_gail_on_pusht_compares_demonstrations_in_generator_units(tmp_path):
    from il_toolkit.config.training_config import ILConfig
    from il_toolkit.train.datasets.minari_io import to_transitions
    from il_toolkit.train.il.gail import GAIL

    config = ILConfig.gail(gail_n_envs=1, ppo_n_steps=64, num_expert_episodes=1, output_dir=str(tmp_path), seed=0,
                           task_frame=False)  # board coordinates (the frame's units: tests/test_frame_policy.py)
    gail = GAIL("il_toolkit/PushT-v0", config, progress=False)
    assert gail.policy.rescales and is_unit_twin(gail.venv.action_space, gail.env.action_space)
    demos = gail.demonstrations(num_expert_episodes=1)
    raw = to_transitions(demos)
    unit = gail._in_generator_units(raw)
    assert np.abs(unit.acts).max() <= 1.0 and np.abs(raw.acts).max() > 1.0
    np.testing.assert_allclose(from_unit_actions(unit.acts, gail.env.action_space), raw.acts, atol=1e-3)


def test_mlp_regresses_offsets_from_the_referenced_observation_entries(tmp_path):
    """PushT declares that its action targets the agent's position; an MLP told so learns
    the (small) offset, standardised on data, and gives back absolute targets."""
    import gymnasium as gym

    import il_toolkit  # noqa: F401
    from il_toolkit.policies.mlp import MLPPolicy

    env = gym.make("il_toolkit/PushT-v0", obs_type="state")
    assert env.unwrapped.action_reference == (0, 1)
    assert gym.make("il_toolkit/PushT-v0", obs_type="pixels").unwrapped.action_reference is None
    assert gym.make("il_toolkit/AlohaTransferCube-v0").unwrapped.action_reference == tuple(range(14))
    rng = np.random.default_rng(0)
    obs = rng.uniform(50, 450, (512, 5))
    obs[:, 4] = rng.uniform(0, 2 * np.pi, 512)
    actions = (obs[:, :2] + 10.0 * np.tanh(obs[:, 2:4] / 100 - 2.5)).astype(np.float32)  # within 10 px of the agent
    policy = MLPPolicy(env.observation_space, env.action_space, hidden_sizes=[64], action_reference=(0, 1))
    policy.fit_normalizer(obs, actions)
    assert policy.model.act_scale.max() < 20  # offsets' spread, not the board's 256
    optimizer = torch.optim.Adam(policy.parameters(), lr=3e-3)
    for _ in range(300):
        loss, _ = policy.compute_loss(obs, actions)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    predicted, _ = policy.predict(obs)
    assert np.abs(predicted - actions).mean() < 1.5  # pixels
    restored = load(policy.save(tmp_path / "mlp"))
    np.testing.assert_array_equal(restored.predict(obs)[0], predicted)
    with pytest.raises(ValueError, match="one observation index per action dimension"):
        MLPPolicy(env.observation_space, env.action_space, action_reference=(0,))


def test_bc_fine_tunes_a_unit_policy_on_demonstrations_in_its_units(tmp_path):
    """GAIL -> BC chaining on PushT: an SB3 policy acting in [-1, 1] is trained on the
    demonstrations mapped to [-1, 1] (trained on pixels it would sit clipped at a corner)."""
    import gymnasium as gym

    import il_toolkit  # noqa: F401
    from il_toolkit.config.training_config import ILConfig
    from il_toolkit.train.il.behavioral_cloning import BehavioralCloning

    env = gym.make("il_toolkit/PushT-v0", obs_type="state")
    start = SB3Policy(ActorCriticPolicy(env.observation_space, unit_action_space(env.action_space),
                                        lr_schedule=lambda _: 0.0, net_arch=[32, 32]), action_space=env.action_space)
    config = ILConfig.behavioral_cloning(bc_epochs=30, batch_size=64, learning_rate=3e-3, num_expert_episodes=3,
                                         bc_validation_split=0.0, output_dir=str(tmp_path), use_wandb=False)
    trainer = BehavioralCloning(env, config, policy=start, progress=False)
    results = trainer.train(evaluate_policy=False)
    demos = trainer.demonstrations(num_expert_episodes=3)
    policy = load(results["policy_path"])
    assert isinstance(policy, SB3Policy) and policy.rescales
    obs = np.concatenate([d.obs[:-1] for d in demos])
    acts = np.concatenate([d.acts for d in demos])
    assert np.abs(policy.predict(obs)[0] - acts).mean() < 60  # pixels; clipped at a corner it is ~250
