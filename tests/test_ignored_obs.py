"""MLP learners can leave observation entries out (``ignored_obs``); ALOHA names its arm joint
velocities (``velocity_obs``) and BC/DAgger leave them out by default (``drop_velocity_obs``)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
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
