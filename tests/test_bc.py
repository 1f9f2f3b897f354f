import json

import numpy as np
import pytest
import torch

from il_toolkit import BehavioralCloning, ILConfig
from il_toolkit.envs import make_env
from il_toolkit.policies import SpaceMismatchError, load


def _config(tmp_path, **overrides):
    base = dict(bc_epochs=15, learning_rate=1e-3, eval_episodes=10, output_dir=str(tmp_path / "bc"), use_wandb=False)
    return ILConfig.behavioral_cloning(**{**base, **overrides})


def test_seed_api_with_a_function_expert_learns_cartpole(tmp_path):
    """The user guide's snippet (a function expert), on a tiny budget."""
    env = make_env("CartPole-v1")

    def expert_policy(state):
        return 1 if state[2] + 0.1 * state[3] > 0 else 0

    trainer = BehavioralCloning(env=env, config=_config(tmp_path, num_expert_episodes=5), use_wandb=False, progress=False)
    results = trainer.train(expert_policy=expert_policy)
    assert results["eval"]["mean_return"] >= 400
    assert results["n_demo_episodes"] == 5 and results["n_val_transitions"] > 0


def test_bc_from_lqr_demos_writes_a_complete_run(tmp_path, cartpole_demos):
    trainer = BehavioralCloning(env="CartPole-v1", config=_config(tmp_path), progress=False)
    results = trainer.train(trajectories=cartpole_demos)
    out = tmp_path / "bc"
    assert results["eval"]["mean_return"] >= 475
    assert {p.name for p in out.iterdir()} >= {"config.json", "run.json", "metrics.jsonl", "best", "last", "eval.json"}
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(records) == 15 and {"train/loss", "val/loss", "epoch"} <= set(records[0])
    best = min(records, key=lambda r: r["val/loss"])
    assert results["best_epoch"] == best["epoch"]
    eval_json = json.loads((out / "eval.json").read_text())
    assert len(eval_json["episodes"]) == 10 and {"sum_reward", "max_reward", "success", "seed"} <= set(eval_json["episodes"][0])
    assert ILConfig.load(out / "config.json") == trainer.config
    policy = load(out / "best")
    obs = np.random.default_rng(0).normal(scale=0.05, size=(32, 4)).astype(np.float32)
    np.testing.assert_array_equal(policy.predict(obs)[0], trainer.policy.predict(obs)[0])


def test_training_twice_with_one_seed_gives_identical_weights(tmp_path, cartpole_demos):
    weights = []
    for run in range(2):
        trainer = BehavioralCloning(env="CartPole-v1", config=_config(tmp_path / str(run), bc_epochs=2), progress=False)
        trainer.train(trajectories=cartpole_demos, evaluate_policy=False)
        weights.append(torch.nn.utils.parameters_to_vector(trainer.policy.policy.parameters()))
    torch.testing.assert_close(weights[0], weights[1], rtol=0, atol=0)


def test_training_from_a_minari_dataset(tmp_path):
    from il_toolkit.train.datasets.collect import collect_dataset

    collect_dataset("CartPole-v1", "tests/bc-source-v0", 4, progress=False)
    trainer = BehavioralCloning(env="CartPole-v1", config=_config(tmp_path, bc_epochs=2), progress=False)
    results = trainer.train(dataset="tests/bc-source-v0", evaluate_policy=False)
    assert results["n_demo_episodes"] == 4


def test_starting_policy_for_another_env_is_refused(tmp_path, cartpole_demos):
    trainer = BehavioralCloning(env="CartPole-v1", config=_config(tmp_path, bc_epochs=1), progress=False)
    trainer.train(trajectories=cartpole_demos, evaluate_policy=False)
    with pytest.raises(SpaceMismatchError, match="--model_path must point at a policy trained on il_toolkit/PushT-v0"):
        BehavioralCloning(env="PushT-v0", config=_config(tmp_path), policy=load(tmp_path / "bc" / "best"))


def test_wandb_logs_offline_without_an_account(tmp_path, cartpole_demos, monkeypatch):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    trainer = BehavioralCloning(env="CartPole-v1", config=_config(tmp_path, bc_epochs=1), use_wandb=True, progress=False)
    trainer.train(trajectories=cartpole_demos[:3], evaluate_policy=False)
    runs = list((tmp_path / "bc" / "wandb").glob("offline-run-*"))
    assert runs, "expected an offline wandb run directory"


def test_mlp_policy_regresses_continuous_actions(tmp_path):
    """Toolkit MLPPolicy through BC on PushT states: learn 'move to the block' (a = block x, y)."""
    from imitation.data.types import TrajectoryWithRew

    from il_toolkit.policies.mlp import MLPPolicy

    env = make_env("PushT-v0")
    rng = np.random.default_rng(0)
    low, high = [50, 50, 100, 100, 0], [450, 450, 400, 400, 6]

    def episode():
        obs = rng.uniform(low, high, size=(101, 5))
        return TrajectoryWithRew(obs=obs, acts=obs[:-1, 2:4].astype(np.float32), infos=None, terminal=False,
                                 rews=np.zeros(100, np.float32))

    trainer = BehavioralCloning(env, _config(tmp_path, bc_epochs=30, batch_size=32, learning_rate=3e-3), progress=False)
    assert isinstance(trainer.policy, MLPPolicy)
    results = trainer.train(trajectories=[episode() for _ in range(10)], evaluate_policy=False)
    obs = rng.uniform(low, high, size=(64, 5))
    error = np.abs(trainer.policy.predict(obs)[0] - obs[:, 2:4]).mean()
    assert error < 10.0, error  # pixels on a 512-pixel board
    restored = load(results["policy_path"])
    np.testing.assert_allclose(restored.predict(obs)[0], trainer.policy.predict(obs)[0])


def test_action_chunking_trains_a_chunked_flow_policy(tmp_path):
    """The user guide's best practice: ILConfig(action_chunk_size=..., temporal_aggregation=True)."""
    from il_toolkit.policies.flow_policy import FlowMatchingPolicy

    config = _config(tmp_path, bc_epochs=1, batch_size=64, num_expert_episodes=2, eval_episodes=1,
                     action_chunk_size=4, temporal_aggregation=True)
    trainer = BehavioralCloning("PushT-v0", config, progress=False)
    results = trainer.train()
    policy = load(results["policy_path"])
    assert isinstance(policy, FlowMatchingPolicy)
    assert policy.spec.horizon == 4 and policy.n_action_steps == 1 and policy.temporal_ensemble_coeff == 0.01
    with pytest.raises(ValueError, match="needs continuous actions"):
        BehavioralCloning("CartPole-v1", _config(tmp_path / "cartpole", action_chunk_size=4), progress=False).train()


def test_seed_warm_start_loop_with_train_epoch(tmp_path):
    """The user guide: ``for epoch in range(bc_epochs): bc_trainer.train_epoch()`` then GAIL(env, policy=bc_trainer.policy)."""
    from il_toolkit import GAIL

    trainer = BehavioralCloning("CartPole-v1", _config(tmp_path, num_expert_episodes=3, learning_rate=1e-3), progress=False)
    losses = [trainer.train_epoch()["final_train_loss"] for _ in range(3)]
    assert losses[-1] < losses[0]
    gail = GAIL("CartPole-v1", ILConfig.gail(output_dir=str(tmp_path / "gail"), use_wandb=False), policy=trainer.policy)
    assert gail is not None


@pytest.mark.parametrize("schedule", ["constant", "cosine", "onecycle"])
def test_lr_schedules_span_the_whole_fit(schedule):
    from il_toolkit.train.supervised import lr_scheduler

    optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=1e-3)
    scheduler = lr_scheduler(optimizer, schedule, total_steps=100)
    rates = []
    for _ in range(100):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    if schedule == "constant":
        assert rates == [1e-3] * 100
    elif schedule == "cosine":
        assert rates[0] == pytest.approx(1e-3) and rates[-1] < 1e-5 and all(a >= b for a, b in zip(rates, rates[1:]))
    else:  # warm-up to the peak at 30%, then decay
        peak = int(np.argmax(rates))
        assert rates[0] < 1e-4 and 25 <= peak <= 35 and rates[peak] == pytest.approx(1e-3, rel=1e-2) and rates[-1] < 1e-5
    with pytest.raises(ValueError, match="lr_schedule must be one of"):
        lr_scheduler(optimizer, "step", 10)


def test_mlp_shape_activation_and_schedule_reach_the_policy_and_checkpoint(tmp_path, cartpole_demos):
    config = _config(tmp_path, policy_type="mlp", policy_hidden_sizes=[32, 32, 32], policy_activation="gelu",
                     lr_schedule="onecycle", bc_epochs=3)
    trainer = BehavioralCloning("CartPole-v1", config, progress=False)
    results = trainer.train(trajectories=cartpole_demos, evaluate_policy=False)
    restored = load(results["policy_path"])
    assert restored.hidden_sizes == [32, 32, 32] and restored.activation == "gelu"
    assert isinstance(restored.model[1], torch.nn.GELU)


def test_sb3_policies_refuse_mlp_only_options(tmp_path):
    with pytest.raises(ValueError, match="policy_type='mlp'"):
        BehavioralCloning("CartPole-v1", _config(tmp_path, policy_type="sb3", lr_schedule="cosine"), progress=False)


def test_imitations_bc_leaves_no_folder_in_the_temp_dir(tmp_path, cartpole_demos, monkeypatch):
    """imitation's logger, configured without a folder, would leave /tmp/imitation-<time> behind each fit."""
    import tempfile

    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    config = _config(tmp_path, policy_type="sb3", bc_epochs=1, eval_episodes=1)
    BehavioralCloning("CartPole-v1", config, progress=False).train(trajectories=cartpole_demos)
    assert [p.name for p in scratch.iterdir() if "imitation" in p.name] == []


def test_a_policy_records_the_env_it_was_trained_in_and_evaluating_it_elsewhere_is_warned(tmp_path, cartpole_demos):
    """CartPole and its fixed-horizon variant have the same spaces: only the recorded env tells them apart."""
    import warnings

    from il_toolkit.evaluation import evaluate, evaluate_checkpoint

    trainer = BehavioralCloning(env="CartPole-v1", config=_config(tmp_path, bc_epochs=1), progress=False)
    trainer.train(trajectories=cartpole_demos, evaluate_policy=False)
    policy = load(tmp_path / "bc" / "best")
    assert policy.trained_env == "il_toolkit/CartPole-v1"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        evaluate(policy, "CartPole-v1", n_episodes=1)  # its own env: no word
    with pytest.warns(UserWarning, match="trained in il_toolkit/CartPole-v1 and is evaluated in "
                                         "il_toolkit/CartPoleFixedHorizon-v1"):
        evaluate(policy, "il_toolkit/CartPoleFixedHorizon-v1", n_episodes=1)
    with pytest.warns(UserWarning, match="trained in il_toolkit/CartPole-v1"):
        evaluate_checkpoint(tmp_path / "bc" / "best", "il_toolkit/CartPoleFixedHorizon-v1", n_episodes=2, num_envs=2)
