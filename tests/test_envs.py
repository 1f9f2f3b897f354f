import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from il_toolkit.envs import ENVIRONMENTS, UnknownEnvError, canonical_env_id, make_env

LIGHT_ENVS = [e for e in ENVIRONMENTS if not e.id.startswith("il_toolkit/Aloha")]  # ALOHA: tests/test_aloha.py


@pytest.mark.parametrize(
    "env_id,obs_type", [(e.id, o) for e in LIGHT_ENVS for o in e.obs_types], ids=lambda v: str(v)
)
def test_check_env_passes_for_every_obs_type(env_id, obs_type):
    kwargs = {"obs_type": obs_type} if len(next(e for e in ENVIRONMENTS if e.id == env_id).obs_types) > 1 else {}
    env = gym.make(env_id, **kwargs)
    check_env(env.unwrapped, skip_render_check=True)
    obs, _ = env.reset(seed=0)
    assert env.observation_space.contains(obs)


def test_every_entry_is_registered_with_an_instruction():
    for entry in ENVIRONMENTS:
        assert entry.id in gym.registry
        assert entry.instruction


def test_canonical_ids():
    assert canonical_env_id("CartPole-v1") == "il_toolkit/CartPole-v1"
    assert canonical_env_id("PushT-v0") == "il_toolkit/PushT-v0"
    assert canonical_env_id("MountainCar-v0") == "MountainCar-v0"


def test_unknown_env_id_lists_the_toolkit_envs():
    with pytest.raises(UnknownEnvError, match="unknown env id 'CartPol-v1'; the toolkit's envs are: il_toolkit/CartPole-v1"):
        make_env("CartPol-v1")


def test_fixed_horizon_cartpole_runs_its_whole_horizon():
    env = make_env("il_toolkit/CartPoleFixedHorizon-v1")
    env.reset(seed=0)
    rewards, steps, done = [], 0, False
    while not done:
        _, reward, terminated, truncated, _ = env.step(1)  # always push right: the pole falls early
        assert not terminated
        rewards.append(reward)
        steps += 1
        done = truncated
    assert steps == 500
    assert rewards[0] == 1.0 and rewards[-1] == 0.0


def test_pusht_reports_success_and_max_coverage():
    env = make_env("PushT-v0")
    _, info = env.reset(seed=0)
    assert info["is_success"] is False and 0.0 <= info["max_coverage"] <= 1.0
    best = info["max_coverage"]
    for action in np.linspace([100, 100], [400, 400], 20):
        _, _, terminated, _, info = env.step(action.astype(np.float32))
        assert info["max_coverage"] >= best and info["max_coverage"] >= info["coverage"]
        best = info["max_coverage"]
        assert info["is_success"] == (info["coverage"] > 0.95) == terminated


def test_pusht_rejects_unknown_obs_type():
    with pytest.raises(ValueError, match="choose one of state, pixels, pixels_agent_pos"):
        make_env("PushT-v0", obs_type="keypoints")
