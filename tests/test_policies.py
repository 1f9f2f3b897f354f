import json
import pickle
import subprocess
import sys
import zipfile

import numpy as np
import pytest
import torch
from gymnasium import spaces
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.policies import ActorCriticPolicy

from il_toolkit.envs import make_env
from il_toolkit.policies import (
    CheckpointError,
    FunctionPolicy,
    Policy,
    PolicyNotSaveableError,
    SB3Policy,
    as_policy,
    load,
)
from il_toolkit.policies.spaces import is_batched, space_from_json, space_to_json


def _sb3_policy(env, seed=0):
    torch.manual_seed(seed)
    return SB3Policy(ActorCriticPolicy(env.observation_space, env.action_space, lambda _: 1e-3, net_arch=[16, 16]))


@pytest.mark.parametrize("space", [
    spaces.Box(-1.0, 1.0, (3,), np.float32),
    spaces.Box(np.array([0.0, -np.inf]), np.array([1.0, np.inf]), dtype=np.float64),
    spaces.Box(0, 255, (8, 8, 3), np.uint8),
    spaces.Discrete(4, start=1),
    spaces.MultiDiscrete([2, 3]),
    spaces.Dict({"pixels": spaces.Box(0, 255, (4, 4, 3), np.uint8), "agent_pos": spaces.Box(0.0, 512.0, (2,))}),
])
def test_space_json_round_trip(space):
    text = json.dumps(space_to_json(space))
    assert space_from_json(json.loads(text)) == space


def test_function_policy_single_and_batch():
    env = make_env("CartPole-v1")
    policy = FunctionPolicy(lambda s: 1 if s[2] + 0.1 * s[3] > 0 else 0, env.observation_space, env.action_space)
    assert isinstance(policy, Policy)
    obs = np.array([[0, 0, 0.1, 0], [0, 0, -0.1, 0]], dtype=np.float32)
    actions, state = policy.predict(obs)
    assert actions.tolist() == [1, 0] and state is None
    assert int(policy.predict(obs[0])[0]) == 1
    with pytest.raises(PolicyNotSaveableError, match="Register it as an expert"):
        policy.save("/tmp/never")


def test_is_batched_for_dict_observations():
    space = spaces.Dict({"a": spaces.Box(0, 1, (2,)), "b": spaces.Box(0, 1, (3, 3))})
    assert not is_batched({"a": np.zeros(2), "b": np.zeros((3, 3))}, space)
    assert is_batched({"a": np.zeros((5, 2)), "b": np.zeros((5, 3, 3))}, space)


def test_as_policy_accepts_sb3_models_policies_and_functions():
    from stable_baselines3 import PPO

    env = make_env("CartPole-v1")
    model = PPO("MlpPolicy", env, n_steps=64, batch_size=32, seed=0)
    assert isinstance(as_policy(model, env.observation_space, env.action_space), SB3Policy)
    assert isinstance(as_policy(model.policy, env.observation_space, env.action_space), SB3Policy)
    assert isinstance(as_policy(lambda s: 0, env.observation_space, env.action_space), FunctionPolicy)


def test_sb3_policy_round_trip_in_a_fresh_process(tmp_path):
    env = make_env("CartPole-v1")
    policy = _sb3_policy(env)
    obs = np.random.default_rng(0).normal(size=(64, 4)).astype(np.float32)
    np.save(tmp_path / "obs.npy", obs)
    expected, _ = policy.predict(obs)
    policy.save(tmp_path / "policy")
    script = (
        "import sys, numpy as np; import il_toolkit; from il_toolkit.policies import load;"
        f"p = load({str(tmp_path / 'policy')!r}); a, _ = p.predict(np.load({str(tmp_path / 'obs.npy')!r}));"
        "sys.stdout.write(','.join(map(str, a.tolist())))"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    assert out == ",".join(map(str, expected.tolist()))


@pytest.mark.parametrize("policy_class", ["ActorCriticCnnPolicy", "MultiInputActorCriticPolicy"])
def test_sb3_policies_with_a_shared_image_extractor_save_and_load(tmp_path, policy_class):
    """SB3 names a shared NatureCNN three times in its state dict; safetensors refuses shared tensors."""
    from stable_baselines3.common import policies as sb3_policies

    image = spaces.Box(0, 255, (3, 36, 36), np.uint8)
    obs_space = image if policy_class == "ActorCriticCnnPolicy" else spaces.Dict(
        {"pixels": image, "agent_pos": spaces.Box(-1.0, 1.0, (2,), np.float32)})
    torch.manual_seed(0)
    inner = getattr(sb3_policies, policy_class)(obs_space, spaces.Box(-1.0, 1.0, (2,), np.float32), lambda _: 1e-3)
    policy = SB3Policy(inner)
    obs = {k: np.stack([space.sample() for _ in range(4)]) for k, space in obs_space.items()} if isinstance(
        obs_space, spaces.Dict) else np.stack([obs_space.sample() for _ in range(4)])
    restored = load(policy.save(tmp_path / "cnn"))
    assert type(restored.policy).__name__ == policy_class
    np.testing.assert_allclose(restored.predict(obs)[0], policy.predict(obs)[0], atol=1e-6)


def test_sb3_evaluate_policy_accepts_toolkit_policies(tmp_path):
    env = make_env("CartPole-v1")
    loaded = load(_sb3_policy(env).save(tmp_path / "p"))
    mean, std = evaluate_policy(loaded, env, n_eval_episodes=2)
    assert mean > 0


def test_continuous_policy_round_trip(tmp_path):
    env = make_env("PushT-v0")
    policy = _sb3_policy(env, seed=1)
    obs = np.random.default_rng(0).uniform(0, 512, size=(8, 5))
    restored = load(policy.save(tmp_path / "p"))
    np.testing.assert_allclose(restored.predict(obs)[0], policy.predict(obs)[0])


@pytest.fixture
def saved(tmp_path):
    return _sb3_policy(make_env("CartPole-v1")).save(tmp_path / "ckpt")


def test_missing_weights_are_refused(saved):
    (saved / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="missing model.safetensors"):
        load(saved)


def test_truncated_weights_are_refused(saved):
    weights = saved / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])
    with pytest.raises(CheckpointError, match="truncated"):
        load(saved)


def test_corrupted_weights_of_the_same_size_are_refused(saved):
    weights = saved / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-5] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="sha256"):
        load(saved)


def test_missing_config_is_refused(saved):
    (saved / "config.json").unlink()
    with pytest.raises(CheckpointError, match="has no config.json"):
        load(saved)


def test_foreign_json_is_refused(saved):
    (saved / "config.json").write_text(json.dumps({"architectures": ["BertModel"]}))
    with pytest.raises(CheckpointError, match="does not describe an il_toolkit policy"):
        load(saved)


def test_unknown_kind_is_refused(saved):
    config = json.loads((saved / "config.json").read_text())
    config["kind"] = "mystery"
    (saved / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="kind 'mystery'.*known kinds: "):
        load(saved)


class _Boom:
    def __reduce__(self):
        return (pytest.fail, ("the pickle was executed",))


def test_pickle_file_is_refused_without_unpickling(tmp_path):
    path = tmp_path / "policy.pkl"
    path.write_bytes(pickle.dumps(_Boom()))
    with pytest.raises(CheckpointError, match="is a pickle file. il_toolkit never unpickles"):
        load(path)


def test_sb3_zip_is_refused(tmp_path):
    path = tmp_path / "ppo.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("data", "{}")
    with pytest.raises(CheckpointError, match="zip archive"):
        load(path)


def test_missing_path_is_refused(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load(tmp_path / "nothing")


def test_ppo_on_pixels_acts_on_the_envs_channel_last_images_and_reloads(tmp_path, monkeypatch):
    """SB3 trains image policies channel-first; the toolkit policy still presents the env's
    channel-last space, so evaluation after PPO (and a reload) works."""
    import il_toolkit.train.online_rl.ppo_trainer as ppo
    from il_toolkit import RLConfig
    from il_toolkit.policies import as_policy, load

    monkeypatch.setattr(ppo, "distill", lambda *args, **kwargs: {})  # its cost is not what is tested here
    env = make_env("il_toolkit/PushT-v0", obs_type="pixels_agent_pos")
    teacher = as_policy(lambda obs: np.array([256.0, 256.0], np.float32), env.observation_space, env.action_space)
    config = RLConfig(total_timesteps=32, n_steps=32, batch_size=16, n_epochs=1, eval_episodes=1,
                      output_dir=str(tmp_path), use_wandb=False)
    trainer = ppo.PPOTrainer(env, policy=teacher, config=config, progress=False)
    assert trainer.model.policy.observation_space["pixels"].shape == (3, 96, 96)
    assert trainer.policy.observation_space == env.observation_space
    results = trainer.train(total_timesteps=32)
    assert results["eval"]["n_episodes"] == 1
    restored = load(results["policy_path"])
    assert restored.observation_space == env.observation_space
    obs, _ = env.reset(seed=0)
    action, _ = restored.predict(obs)
    assert env.action_space.contains(np.asarray(action, env.action_space.dtype))


def test_save_pretrained_writes_a_hub_folder_that_from_pretrained_reads_offline(tmp_path, monkeypatch):
    """huggingface_hub's mixin: our config.json + model.safetensors, a model card and LeRobot's
    eval_info.json; a repository id is read from the local cache only unless asked."""
    from il_toolkit.evaluation import evaluate
    from il_toolkit.policies.base import BasePolicy
    from il_toolkit.policies.checkpoint import CheckpointError
    from il_toolkit.policies.mlp import MLPPolicy

    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    env = make_env("CartPole-v1")
    policy = MLPPolicy(env.observation_space, env.action_space, hidden_sizes=[8])
    result = evaluate(policy, env, n_episodes=2)
    policy.save_pretrained(tmp_path / "hub", eval_info=result.to_lerobot())
    names = sorted(p.name for p in (tmp_path / "hub").iterdir())
    assert names == ["README.md", "config.json", "eval_info.json", "model.safetensors"]
    info = json.loads((tmp_path / "hub" / "eval_info.json").read_text())
    assert info["aggregated"]["avg_sum_reward"] == result.mean_return and len(info["per_episode"]) == 2
    assert "il_toolkit" in (tmp_path / "hub" / "README.md").read_text()
    restored = BasePolicy.from_pretrained(tmp_path / "hub")
    assert isinstance(restored, MLPPolicy)
    obs, _ = env.reset(seed=0)
    assert restored.predict(obs)[0] == policy.predict(obs)[0]
    with pytest.raises(CheckpointError, match="local_files_only=False"):
        BasePolicy.from_pretrained("nobody/no-such-policy")
