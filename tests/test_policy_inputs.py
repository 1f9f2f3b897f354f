"""What MLP learners see: they can leave observation entries out (``ignored_obs``; ALOHA names
its arm joint velocities in ``velocity_obs`` and BC/DAgger leave them out by default,
``drop_velocity_obs``) and work in a task frame (``frame``; PushT's block frame, ``task_frame``); standardised entries
are clipped (``obs_clip``)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces

import il_toolkit  # noqa: F401
from il_toolkit.policies import load
from il_toolkit.policies.mlp import MLPPolicy

PUSHT_LIKE = spaces.Box(np.zeros(5), np.array([512.0, 512.0, 512.0, 512.0, 2 * np.pi]), dtype=np.float64)
ACTIONS = spaces.Box(-1.0, 1.0, (2,), np.float32)


def test_ignored_entries_do_not_reach_the_network_and_survive_a_checkpoint(tmp_path):
    policy = MLPPolicy(PUSHT_LIKE, ACTIONS, hidden_sizes=[16], ignored_obs=(1, 4))
    assert policy.model[0].in_features == 3  # entries 0, 2, 3; the angle's sine and cosine both gone
    obs = np.random.default_rng(0).uniform(0, 6, (8, 5))
    changed = obs.copy()
    changed[:, [1, 4]] += 3.0
    np.testing.assert_array_equal(policy.predict(obs)[0], policy.predict(changed)[0])
    other = obs.copy()
    other[:, 0] += 3.0
    assert not np.array_equal(policy.predict(obs)[0], policy.predict(other)[0])
    restored = load(policy.save(tmp_path / "mlp"))
    assert restored.ignored_obs == [1, 4]
    np.testing.assert_array_equal(restored.predict(obs)[0], policy.predict(obs)[0])


def test_ignoring_keeps_the_cosine_of_a_visible_angle():
    policy = MLPPolicy(PUSHT_LIKE, ACTIONS, hidden_sizes=[16], ignored_obs=(0,))
    features = policy.flatten_obs(np.array([[1.0, 2.0, 3.0, 4.0, np.pi / 3]]))
    np.testing.assert_allclose(features[0], [2.0, 3.0, 4.0, np.sin(np.pi / 3), np.cos(np.pi / 3)], rtol=1e-6)


@pytest.mark.parametrize("ignored, message", [((5,), "indexes outside"), (range(5), "would see nothing")])
def test_bad_ignored_entries_are_refused(ignored, message):
    with pytest.raises(ValueError, match=message):
        MLPPolicy(PUSHT_LIKE, ACTIONS, ignored_obs=ignored)


def test_aloha_learners_leave_out_arm_joint_velocities_by_default():
    from il_toolkit.config.training_config import ILConfig
    from il_toolkit.train.il.behavioral_cloning import make_policy

    env = gym.make("il_toolkit/AlohaTransferCube-v0")
    velocities = env.unwrapped.velocity_obs
    assert velocities == (*range(14, 20), *range(21, 27))  # qvel of both arms' six joints; grippers (20, 27) kept
    assert make_policy(env, ILConfig(policy_type="mlp")).ignored_obs == list(velocities)
    assert make_policy(env, ILConfig(policy_type="mlp", drop_velocity_obs=False)).ignored_obs == []
    pusht = gym.make("il_toolkit/PushT-v0", obs_type="state")
    assert make_policy(pusht, ILConfig(policy_type="mlp")).ignored_obs == []  # declares none


def test_pusht_block_frame_round_trips_and_is_invariant_to_where_the_scene_is(tmp_path):
    """The frame's features and encoded targets depend on the agent and target relative to the
    block only (apart from the goal error), and decode inverts encode."""
    from il_toolkit.policies.frames import pusht_block_decode, pusht_block_encode, pusht_block_features

    rng = np.random.default_rng(0)
    obs = rng.uniform(100, 400, (64, 5))
    obs[:, 4] = rng.uniform(0, 2 * np.pi, 64)
    targets = rng.uniform(0, 512, (64, 2))
    np.testing.assert_allclose(pusht_block_decode(obs, pusht_block_encode(obs, targets)), targets, atol=1e-9)
    moved = obs.copy()
    moved[:, [0, 2]] += 17.0  # agent, block and target moved together
    np.testing.assert_allclose(pusht_block_encode(moved, targets + [17.0, 0.0]), pusht_block_encode(obs, targets),
                               atol=1e-9)
    np.testing.assert_allclose(pusht_block_features(moved)[:, :2], pusht_block_features(obs)[:, :2], atol=1e-9)
    at_goal = np.array([[0.0, 0.0, 256.0, 256.0, np.pi / 4]])  # gym-pusht's goal pose
    np.testing.assert_allclose(pusht_block_features(at_goal)[0, 2:], [0, 0, 0, 0, 1], atol=1e-9)


def test_pusht_push_frame_sees_the_error_direction_and_targets_relative_to_the_pusher():
    """Near the goal the error's direction stays a unit vector however small the error, and the
    encoded target is the push itself (target minus pusher, block frame)."""
    from il_toolkit.policies.frames import ERROR_LENGTH_SCALE, pusht_push_decode, pusht_push_encode, pusht_push_features

    goal = np.array([0.0, 0.0, 256.0, 256.0, np.pi / 4])
    near = np.stack([goal + [0, 0, 0.5, 0, 0], goal + [0, 0, 0, 0, -0.01], goal + [0, 0, 40.0, 0, 0]])
    features = pusht_push_features(near)
    assert features.shape == (3, 11)
    np.testing.assert_allclose(np.linalg.norm(features[:, 7:10], axis=1), 1.0, atol=1e-9)
    np.testing.assert_allclose(features[0, 7:10], features[2, 7:10], atol=1e-9)  # same direction, 80x the size
    assert features[1, 9] > 0.5  # turned 0.01 rad clockwise (about the origin; the COG moved 0.45 px): turn back
    np.testing.assert_allclose(features[[0, 2], 10], np.log1p([0.5, 40.0]), atol=1e-9)
    np.testing.assert_allclose(features[1, 10], np.log1p(np.hypot(0.01 * ERROR_LENGTH_SCALE, 0.45)), atol=1e-3)
    obs = np.array([[100.0, 200.0, 300.0, 250.0, np.pi / 2]])
    push = pusht_push_encode(obs, np.array([[100.0, 210.0]]))  # 10 px up the board = +x in a block turned 90°
    np.testing.assert_allclose(push, [[10.0, 0.0]], atol=1e-9)
    np.testing.assert_allclose(pusht_push_decode(obs, push), [[100.0, 210.0]], atol=1e-9)


def test_checkpoints_in_the_older_pusht_block_frame_still_load(tmp_path):
    policy = MLPPolicy(PUSHT_LIKE, ACTIONS, hidden_sizes=[16], frame="pusht_block")
    obs = np.random.default_rng(2).uniform(50, 450, (16, 5))
    policy.fit_normalizer(obs, obs[:, :2] + 3.0)
    restored = load(policy.save(tmp_path / "old"))
    assert restored.frame_name == "pusht_block" and restored.model[0].in_features == 6 + 7
    np.testing.assert_array_equal(restored.predict(obs)[0], policy.predict(obs)[0])


def test_pusht_learners_work_in_the_block_frame_by_default(tmp_path):
    from il_toolkit.config.training_config import ILConfig
    from il_toolkit.train.il.behavioral_cloning import make_policy

    env = gym.make("il_toolkit/PushT-v0", obs_type="state")
    policy = make_policy(env, ILConfig(policy_type="mlp", task_frame=True))
    assert policy.frame_name == "pusht_push" and policy.action_reference is None
    assert policy.model[0].in_features == 11  # the frame's features in place of the board coordinates
    assert policy.flatten_obs(np.full((3, 5), 100.0)).shape == (3, 11)
    assert make_policy(env, ILConfig(policy_type="mlp")).frame_name == "pusht_push"  # the default
    plain = make_policy(env, ILConfig(policy_type="mlp", task_frame=False))
    assert plain.frame is None and plain.action_reference == [0, 1]
    obs = np.random.default_rng(1).uniform(50, 450, (32, 5))
    actions = obs[:, :2] + 5.0
    policy.fit_normalizer(obs, actions)
    restored = load(policy.save(tmp_path / "mlp"))
    assert restored.frame_name == "pusht_push"
    np.testing.assert_array_equal(restored.predict(obs)[0], policy.predict(obs)[0])
    with pytest.raises(ValueError, match="unknown task frame"):
        MLPPolicy(PUSHT_LIKE, ACTIONS, frame="nope")
    with pytest.raises(ValueError, match="for 5 observation and 2 action"):
        MLPPolicy(spaces.Box(-1, 1, (3,)), ACTIONS, frame="pusht_block")


def _fitted_on_a_nearly_constant_entry(obs_clip):
    """Entry 2 hardly moves in the training data (std 1e-5), as ALOHA's cube orientation."""
    box = spaces.Box(-np.inf, np.inf, (3,), np.float64)
    policy = MLPPolicy(box, ACTIONS, hidden_sizes=[16], obs_clip=obs_clip)
    train = np.random.default_rng(0).normal(size=(256, 3)) * [1.0, 1.0, 1e-5] + [0.0, 0.0, 1.0]
    policy.fit_normalizer(train)
    return policy


def test_standardised_entries_are_clipped_so_an_unseen_value_stays_bounded(tmp_path):
    tipped, flipped = np.array([[0.1, -0.2, 0.9]]), np.array([[0.1, -0.2, -1.0]])
    policy = _fitted_on_a_nearly_constant_entry(10.0)
    np.testing.assert_array_equal(policy.predict(tipped)[0], policy.predict(flipped)[0])
    unclipped = _fitted_on_a_nearly_constant_entry(None)
    features = torch.as_tensor(unclipped.flatten_obs(flipped))
    assert float(((features - unclipped.model.obs_mean) / unclipped.model.obs_std).abs().max()) > 1e5
    restored = load(policy.save(tmp_path / "clipped"))
    assert restored.obs_clip == 10.0
    np.testing.assert_array_equal(restored.predict(flipped)[0], policy.predict(flipped)[0])


def test_a_checkpoint_from_before_obs_clip_loads_unclipped_and_bad_clips_are_refused(tmp_path):
    import json

    path = _fitted_on_a_nearly_constant_entry(None).save(tmp_path / "old")
    config = json.loads((path / "config.json").read_text())
    del config["config"]["obs_clip"]
    (path / "config.json").write_text(json.dumps(config))
    assert load(path).obs_clip is None
    with pytest.raises(ValueError, match="obs_clip"):
        MLPPolicy(PUSHT_LIKE, ACTIONS, obs_clip=0.0)


def _fit_two_choices(mixture_components: int) -> MLPPolicy:
    """The expert goes to +0.6 or to -0.6 at random, whatever the observation (two equally good
    routes): a regressor learns their average, 0; a mixture learns both and picks one."""
    box = spaces.Box(-1.0, 1.0, (2,), np.float32)
    policy = MLPPolicy(box, spaces.Box(-1.0, 1.0, (1,), np.float32), hidden_sizes=[32],
                       mixture_components=mixture_components)
    rng = np.random.default_rng(0)
    obs = rng.uniform(-1, 1, (512, 2))
    acts = rng.choice([-0.6, 0.6], size=(512, 1))
    policy.fit_normalizer(obs)
    torch.manual_seed(0)
    optimizer = torch.optim.Adam(policy.parameters(), lr=1e-2)
    for _ in range(300):
        loss, _ = policy.compute_loss(obs, acts)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return policy


def test_a_mixture_head_picks_one_of_two_expert_choices_where_a_regressor_averages(tmp_path):
    probe = np.random.default_rng(1).uniform(-1, 1, (64, 2))
    averaged = _fit_two_choices(1).predict(probe)[0]
    assert np.abs(averaged).mean() < 0.2  # far from either choice (0.6)
    mixture = _fit_two_choices(3)
    picked = mixture.predict(probe)[0]
    np.testing.assert_allclose(np.abs(picked), 0.6, atol=0.1)
    sampled = mixture.predict(np.repeat(probe[:1], 200, axis=0), deterministic=False)[0]
    assert (sampled > 0.3).mean() > 0.2 and (sampled < -0.3).mean() > 0.2  # both choices, when sampling
    restored = load(mixture.save(tmp_path / "mixture"))
    assert restored.mixture_components == 3
    np.testing.assert_array_equal(restored.predict(probe)[0], picked)


def test_mixture_components_are_checked_and_reach_the_mlp_from_the_config():
    from il_toolkit import ILConfig
    from il_toolkit.config.training_config import ConfigError
    from il_toolkit.envs import make_env
    from il_toolkit.train.il.behavioral_cloning import make_policy

    with pytest.raises(ValueError, match="needs continuous"):
        MLPPolicy(PUSHT_LIKE, spaces.Discrete(3), mixture_components=2)
    with pytest.raises(ValueError, match="positive integer"):
        MLPPolicy(PUSHT_LIKE, ACTIONS, mixture_components=0)
    with pytest.raises(ConfigError, match="policy_mixture_components"):
        ILConfig(policy_mixture_components=0)
    env = make_env("il_toolkit/PushT-v0", obs_type="state")
    policy = make_policy(env, ILConfig(policy_type="mlp", policy_mixture_components=4))
    assert policy.mixture_components == 4 and policy.model[-1].out_features == 4 * (1 + 2 * 2)
    with pytest.raises(ConfigError, match="policy_type='mlp'"):
        make_policy(make_env("CartPole-v1"), ILConfig(policy_mixture_components=4))
