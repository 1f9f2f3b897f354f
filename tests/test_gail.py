import json

import numpy as np
import pytest

from il_toolkit.config.training_config import ILConfig, RLConfig
from il_toolkit.envs import make_env
from il_toolkit.policies import SpaceMismatchError, load


def _config(tmp_path, **overrides):
    base = dict(
        total_timesteps=4096, ppo_n_steps=1024, gail_n_envs=4, gail_demo_batch_size=256, gail_disc_hidden_dim=32,
        gail_disc_updates=2, num_expert_episodes=3, eval_episodes=3, output_dir=str(tmp_path / "gail"), use_wandb=False,
        gail_bc_warm_start_epochs=0,  # these tests exercise GAIL itself; the preset warm-starts with BC
    )
    return ILConfig.gail(**{**base, **overrides})


def _records(path):
    return [json.loads(line) for line in (path / "metrics.jsonl").read_text().splitlines()]


def test_gail_on_cartpole_trains_in_the_fixed_horizon_variant_and_writes_a_run(tmp_path):
    from il_toolkit.train.il.gail import GAIL

    def expert_policy(state):  # the user guide's function expert
        return 1 if state[2] + 0.1 * state[3] > 0 else 0

    trainer = GAIL(env=make_env("CartPole-v1"), config=_config(tmp_path, ppo_n_steps=512), use_wandb=False, progress=False)
    assert trainer.training_env.env_id == "il_toolkit/CartPoleFixedHorizon-v1"
    results = trainer.train(expert_policy=expert_policy, num_expert_episodes=3, total_timesteps=2048)
    out = tmp_path / "gail"
    assert {p.name for p in out.iterdir()} >= {"config.json", "run.json", "metrics.jsonl", "best", "last", "eval.json"}
    run = json.loads((out / "run.json").read_text())
    assert run["training_env_id"] == "il_toolkit/CartPoleFixedHorizon-v1" and run["horizon_handling"] == "fixed-horizon variant"
    assert run["demo_episode_lengths"] == [500]  # demos collected in the never-terminating variant
    records = _records(out)
    assert [r["round"] for r in records] == [1, 2, 3, 4] and results["total_timesteps"] == 2048
    for r in records:
        assert {"disc_loss", "disc_acc", "mean_reward", "gen/train/value_loss", "train/loss"} <= set(r)
        assert r["train/loss"] == r["gen/train/loss"]
        assert 0.0 <= r["disc_acc"] <= 1.0 and r["disc_loss"] > 0 and r["mean_reward"] > 0
    eval_json = json.loads((out / "eval.json").read_text())
    assert eval_json["env_id"] == "il_toolkit/CartPole-v1" and len(eval_json["episodes"]) == 3
    policy = load(out / "best")
    obs = np.random.default_rng(0).normal(scale=0.05, size=(16, 4)).astype(np.float32)
    np.testing.assert_array_equal(policy.predict(obs)[0], trainer.policy.predict(obs)[0])


def test_bc_warm_start_gives_an_expert_level_policy_that_gail_keeps(tmp_path, cartpole_demos):
    from il_toolkit.train.il.gail import GAIL

    config = _config(tmp_path, gail_bc_warm_start_epochs=15, learning_rate=1e-3, eval_episodes=5)
    results = GAIL("CartPole-v1", config, progress=False).train(trajectories=cartpole_demos[:5], total_timesteps=2048)
    assert results["eval"]["mean_return"] >= 400
    records = _records(tmp_path / "gail")
    assert records[0]["bc_warm_start/epochs"] == 15


def test_seed_reward_scale_multiplies_what_ppo_sees(tmp_path, cartpole_demos):
    from il_toolkit.train.il.gail import GAIL

    means = []
    for scale in (1.0, 3.0):
        config = _config(tmp_path / str(scale), gail_reward_scale=scale, total_timesteps=1024)
        GAIL("CartPole-v1", config, progress=False).train(trajectories=cartpole_demos[:2], evaluate_policy=False)
        means.append(_records(tmp_path / str(scale) / "gail")[0]["mean_reward"])
    assert means[1] == pytest.approx(3.0 * means[0], rel=1e-4)


def test_expert_policy_may_be_a_minari_dataset_id(tmp_path):
    from il_toolkit.train.datasets.collect import collect_dataset
    from il_toolkit.train.il.gail import GAIL

    collect_dataset("CartPole-v1", "tests/gail-source-v0", 2, progress=False)
    config = _config(tmp_path, ppo_n_steps=512, gail_n_envs=2)
    results = GAIL("CartPole-v1", config, progress=False).train("tests/gail-source-v0", total_timesteps=512,
                                                              evaluate_policy=False)
    assert results["n_demo_episodes"] == 2 and results["total_timesteps"] == 512
    assert json.loads((tmp_path / "gail" / "run.json").read_text())["dataset"] == "tests/gail-source-v0"


def test_training_twice_with_one_seed_gives_identical_weights(tmp_path, cartpole_demos):
    import torch

    from il_toolkit.train.il.gail import GAIL

    weights = []
    for run in range(2):
        config = _config(tmp_path / str(run), ppo_n_steps=512, gail_n_envs=2, gail_disc_noise=0.05)
        trainer = GAIL("CartPole-v1", config, progress=False)
        trainer.train(trajectories=cartpole_demos[:2], total_timesteps=1024, evaluate_policy=False)
        weights.append(torch.nn.utils.parameters_to_vector(trainer.gen_algo.policy.parameters()))
    torch.testing.assert_close(weights[0], weights[1], rtol=0, atol=0)


def test_absorbing_state_for_envs_that_end_early():
    from il_toolkit.train.il.gail import training_env_for

    import gymnasium as gym

    env = gym.make("MountainCar-v0")  # terminates on reaching the flag, time limit 200
    spec = training_env_for(env)
    assert spec.handling == "absorbing state" and spec.horizon == 200
    train_env = spec.make()
    train_env.reset(seed=0)
    steps, done = 0, False
    while not done:
        _, _, terminated, truncated, _ = train_env.step(2)
        steps, done = steps + 1, terminated or truncated
    assert steps == 200 and not terminated


def test_gymnasiums_own_cartpole_trains_in_the_fixed_horizon_variant_too():
    """The user guide's Python API passes gym.make("CartPole-v1"); the CLI passes the toolkit's id."""
    from il_toolkit.train.il.gail import training_env_for

    import gymnasium as gym

    for env in (gym.make("CartPole-v1"), gym.make("CartPole-v1", render_mode="rgb_array")):
        assert training_env_for(env).env_id == "il_toolkit/CartPoleFixedHorizon-v1"
    changed = gym.make("MountainCar-v0", goal_velocity=0.1)  # kwargs of its own: no variant applies
    assert training_env_for(changed).handling == "absorbing state"
    shorter = training_env_for(gym.make("CartPole-v1", max_episode_steps=100))  # not the 500-step task
    assert shorter.handling == "absorbing state" and shorter.horizon == 100


def test_collapse_detector_fires_once_after_a_streak_and_names_the_remedy():
    from il_toolkit.train.il.gail import DiscriminatorCollapseDetector

    detector = DiscriminatorCollapseDetector(patience=3, disc_updates=5, disc_noise=0.0)
    stream = [0.7, 1.0, 1.0, 0.98, 1.0, 1.0, 1.0, 1.0, 1.0, 0.6, 0.995, 1.0, 1.0]
    messages = {i: m for i, acc in enumerate(stream, start=1) if (m := detector.update(acc, i)) is not None}
    assert list(messages) == [7, 13] and detector.fired_rounds == [7, 13]
    assert "--gail_disc_noise" in messages[7] and "--gail_disc_updates" in messages[7] and "(now 5)" in messages[7]


def test_a_collapsing_discriminator_is_reported_in_the_log(tmp_path, cartpole_demos):
    """A near-random generator against a strong discriminator on a tiny batch: accuracy 100%."""
    from il_toolkit.train.il import gail

    config = _config(tmp_path, gail_disc_updates=30, gail_disc_lr=1e-2, gail_demo_batch_size=64, ppo_n_steps=256,
                     total_timesteps=256 * 7, learning_rate=1e-6)
    trainer = gail.GAIL("CartPole-v1", config, progress=False)
    with pytest.warns(UserWarning, match="discriminator collapse"):
        results = trainer.train(trajectories=cartpole_demos[:2], evaluate_policy=False)
    assert results["disc_collapse_rounds"] and "--gail_disc_noise" in results["collapse_warnings"][0]
    flagged = [r for r in _records(tmp_path / "gail") if r.get("disc_collapse")]
    assert flagged and flagged[0]["round"] == results["disc_collapse_rounds"][0]
    assert "discriminator collapse" in flagged[0]["warning"]


def test_model_path_for_another_env_is_refused(tmp_path):
    from il_toolkit.train.il.gail import GAIL
    from il_toolkit.train.online_rl.ppo_trainer import build_ppo
    from stable_baselines3.common.env_util import make_vec_env

    pendulum = build_ppo(make_vec_env("Pendulum-v1", n_envs=1), learning_rate=1e-3, n_steps=64, batch_size=64,
                         n_epochs=1, gamma=0.99, gae_lambda=0.95, clip_range=0.2, ent_coef=0.0, seed=0, device="cpu")
    with pytest.raises(SpaceMismatchError, match="--model_path must point at a policy trained on il_toolkit/CartPole-v1"):
        GAIL("CartPole-v1", _config(tmp_path), policy=pendulum)


def test_ppo_trainer_and_gail_start_from_a_bc_policy(tmp_path, cartpole_demos, capsys):
    import torch

    from il_toolkit import BehavioralCloning
    from il_toolkit.train.online_rl.ppo_trainer import PPOTrainer

    bc_config = ILConfig.behavioral_cloning(bc_epochs=3, learning_rate=1e-3, output_dir=str(tmp_path / "bc"),
                                            use_wandb=False, policy_type="sb3")
    bc = BehavioralCloning(env="CartPole-v1", config=bc_config, progress=False)
    bc.train(trajectories=cartpole_demos[:3], evaluate_policy=False)
    start = load(tmp_path / "bc" / "best")
    rl = PPOTrainer("CartPole-v1", policy=start, config=RLConfig(
        total_timesteps=512, n_steps=256, batch_size=64, n_epochs=1, learning_rate=1e-5, eval_episodes=2,
        output_dir=str(tmp_path / "ppo")), progress=True)
    before = torch.nn.utils.parameters_to_vector(start.policy.parameters())
    torch.testing.assert_close(torch.nn.utils.parameters_to_vector(rl.model.policy.parameters()), before)
    from il_toolkit.train.il.gail import GAIL  # the user guide's warm start: GAIL(env, policy=bc_trainer.policy)

    gail = GAIL("CartPole-v1", _config(tmp_path), policy=bc.policy, progress=False)
    torch.testing.assert_close(torch.nn.utils.parameters_to_vector(gail.gen_algo.policy.parameters()), before)
    capsys.readouterr()
    results = rl.train()
    assert "PPO il_toolkit/CartPole-v1" in capsys.readouterr().err  # a bar over the timesteps
    after = torch.nn.utils.parameters_to_vector(rl.model.policy.parameters())
    assert results["total_timesteps"] == 512 and not torch.equal(before, after)
    out = tmp_path / "ppo"
    assert {p.name for p in out.iterdir()} >= {"config.json", "run.json", "metrics.jsonl", "best", "last", "eval.json"}
    assert any("rollout/ep_rew_mean" in r or "train/value_loss" in r for r in _records(out))
    assert RLConfig.load(out / "config.json").learning_rate == 1e-5


def _pendulum_teacher(env):
    from il_toolkit.policies import FunctionPolicy

    return FunctionPolicy(lambda s: np.clip(-4.0 * s[..., 1:2] - s[..., 2:3], -2, 2).astype(np.float32),
                          env.observation_space, env.action_space)


def test_ppo_and_gail_start_from_a_policy_that_is_not_sb3_by_distilling_it(tmp_path):
    """The user guide's ``GAIL(env, policy=bc_trainer.policy)`` / ``PPOTrainer`` with BC's MLP (continuous
    actions): the generator starts as a copy learned from the policy's actions in its own states."""
    from il_toolkit.rollout import generate_trajectories
    from il_toolkit.train.il.gail import GAIL
    from il_toolkit.train.online_rl.ppo_trainer import PPOTrainer

    env = make_env("Pendulum-v1")
    teacher = _pendulum_teacher(env)
    config = RLConfig(total_timesteps=256, n_steps=128, batch_size=64, n_epochs=1, output_dir=str(tmp_path / "ppo"),
                      use_wandb=False, eval_episodes=1)
    distilled, fresh = (PPOTrainer(env, policy=p, config=config, progress=False) for p in (teacher, None))
    assert distilled.distilled["distill/transitions"] == 20 * 200 and fresh.distilled is None
    obs = np.concatenate([t.obs[:-1] for t in generate_trajectories(teacher, env, range(100, 103))])
    target = teacher.predict(obs)[0]
    error = {name: float(np.mean((trainer.policy.predict(obs)[0] - target) ** 2))
             for name, trainer in (("distilled", distilled), ("fresh", fresh))}
    assert error["distilled"] < 0.1 * error["fresh"], error  # on unseen rollouts, in the env's units
    assert distilled.train()["distilled"] == distilled.distilled
    assert "distill/action_mse" in _records(tmp_path / "ppo")[0]
    gail = GAIL(env, _config(tmp_path), policy=teacher, progress=False)
    assert gail.distilled["distill/action_mse"] == pytest.approx(distilled.distilled["distill/action_mse"])


def test_cli_help_lists_the_seed_flags(capsys):
    from il_toolkit.train.il.cli import main_gail

    with pytest.raises(SystemExit) as exit_info:
        main_gail(["--help"], prog="il-toolkit train gail")
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for flag in ("--env", "--dataset", "--model_path", "--num_expert_episodes", "--total_timesteps",
                 "--gail_disc_hidden_dim", "--gail_disc_updates", "--gail_disc_lr", "--gail_reward_scale",
                 "--gail_disc_noise", "--gail_bc_warm_start_epochs", "--output_dir"):
        assert flag in text


def test_cli_runs_a_tiny_gail(tmp_path, capsys):
    from il_toolkit.cli import main

    out = tmp_path / "cli"
    code = main(["train", "gail", "--env", "CartPole-v1", "--num_expert_episodes", "2", "--total_timesteps", "1024",
                 "--ppo_n_steps", "512", "--gail_n_envs", "2", "--gail_demo_batch_size", "128",
                 "--gail_disc_hidden_dim", "16", "--gail_disc_updates", "1", "--eval_episodes", "2",
                 "--output_dir", str(out), "--no_wandb", "--no_progress"])
    assert code == 0
    assert json.loads(capsys.readouterr().out)["total_timesteps"] == 1024
    assert (out / "best" / "model.safetensors").exists()
