import numpy as np
import pytest

from il_toolkit.envs import make_env
from il_toolkit.experts import EXPERT_REGISTRY, ExpertEnvMismatchError, make_expert
from il_toolkit.policies import load
from il_toolkit.registry import UnknownKeyError
from il_toolkit.rollout import rollout_episode

# "Well outside the standard range": gymnasium starts every coordinate in ±0.05.
PERTURBED_LOW = np.array([-1.0, -1.0, -0.15, -0.5])
PERTURBED_HIGH = -PERTURBED_LOW


def _return_from(expert, env, state):
    env.reset(seed=0)
    env.unwrapped.state = state
    obs, total, done = state.astype(np.float32), 0.0, False
    while not done:
        action, _ = expert.predict(obs)
        obs, reward, terminated, truncated, _ = env.step(action)
        total += reward
        done = terminated or truncated
    return total


def test_lqr_scores_500_on_standard_starts():
    env = make_env("CartPole-v1")
    expert = make_expert("CartPole-v1", env)
    assert [rollout_episode(expert, env, seed).sum_reward for seed in range(10)] == [500.0] * 10


def test_lqr_balances_from_perturbed_starts():
    env = make_env("CartPole-v1")
    expert = make_expert("CartPole-v1", env)
    rng = np.random.default_rng(123)
    returns = [_return_from(expert, env, rng.uniform(PERTURBED_LOW, PERTURBED_HIGH)) for _ in range(40)]
    assert np.mean(np.array(returns) == 500.0) >= 0.95


def test_batch_predict_equals_single_predict():
    expert = make_expert("CartPole-v1")
    batch = np.random.default_rng(0).uniform(PERTURBED_LOW, PERTURBED_HIGH, size=(16, 4)).astype(np.float32)
    actions, _ = expert.predict(batch)
    assert actions.shape == (16,)
    assert [int(expert.predict(row)[0]) for row in batch] == actions.tolist()


def test_expert_checkpoint_round_trip(tmp_path):
    expert = make_expert("CartPole-v1")
    restored = load(expert.save(tmp_path / "lqr"))
    batch = np.random.default_rng(1).normal(size=(32, 4)).astype(np.float32)
    np.testing.assert_array_equal(restored.predict(batch)[0], expert.predict(batch)[0])


def test_unknown_expert_name_lists_known_ones():
    with pytest.raises(UnknownKeyError, match="unknown expert 'lqr'; known expert keys: .*cartpole_lqr"):
        make_expert("CartPole-v1", name="lqr")


def test_expert_for_another_env_is_refused():
    other = next((n for n in EXPERT_REGISTRY.keys() if "il_toolkit/CartPole-v1" not in EXPERT_REGISTRY.metadata(n)["env_ids"]), None)
    if other is None:
        with pytest.raises(UnknownKeyError, match="no expert is registered for 'MountainCar-v0'"):
            make_expert("MountainCar-v0")
    else:
        with pytest.raises(ExpertEnvMismatchError, match="not 'il_toolkit/CartPole-v1'"):
            make_expert("CartPole-v1", name=other)
