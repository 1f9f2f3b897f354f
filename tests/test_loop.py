"""The one training loop (il_toolkit.train.loop): budgets, schedules, kept weights, checkpoints,
resuming and Ctrl-C, and the fits that run through it."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from il_toolkit import BehavioralCloning, ILConfig
from il_toolkit.config.training_config import ConfigError
from il_toolkit.train.loop import ArrayBatches, GradientStep, SampledBatches, run_training


class Line(torch.nn.Module):
    """y = w x: a one-parameter model whose loss is easy to reason about."""

    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))

    def loss(self, x: np.ndarray, y: np.ndarray) -> tuple[torch.Tensor, dict[str, float]]:
        loss = ((self.w * torch.as_tensor(x) - torch.as_tensor(y)) ** 2).mean()
        return loss, {"loss": float(loss.detach())}


def _line_fit(keep: str = "last", epochs: int | None = 5, steps: int | None = None, **kwargs):
    torch.manual_seed(0)
    model = Line()
    x = np.linspace(-1, 1, 32).astype(np.float32)
    step = GradientStep(model.loss, model, model.parameters(), learning_rate=0.1, weight_decay=0.0)
    batches = ArrayBatches(x, 2 * x, batch_size=8, rng=np.random.default_rng(0))
    history = run_training(step, batches, optimizers=step.optimizers, module=model, epochs=epochs, steps=steps,
                           keep=keep, **kwargs)
    return model, history


def test_an_epoch_budget_runs_every_batch_of_every_epoch():
    records = []
    model, history = _line_fit(epochs=3, on_epoch_end=lambda epoch, metrics: records.append((epoch, metrics)))
    assert (history.epochs, history.steps) == (3, 12)
    assert [epoch for epoch, _ in records] == [1, 2, 3]
    assert [m["train/steps"] for _, m in records] == [4.0, 8.0, 12.0]
    assert records[-1][1]["train/loss"] < records[0][1]["train/loss"]


def test_a_step_budget_cuts_the_last_epoch_short():
    _, history = _line_fit(epochs=None, steps=10)
    assert (history.steps, history.epochs) == (10, 3)
    _, both = _line_fit(epochs=5, steps=6)  # whichever ends first
    assert both.steps == 6


def test_best_keeps_the_lowest_validation_epoch_and_last_the_last():
    calls = iter([3.0, 1.0, 2.0, 5.0])  # validation loss per epoch: the second epoch is best
    weights = []
    torch.manual_seed(0)
    model = Line()
    x = np.linspace(-1, 1, 32).astype(np.float32)
    step = GradientStep(model.loss, model, model.parameters(), learning_rate=0.1, weight_decay=0.0)
    history = run_training(step, ArrayBatches(x, 2 * x, batch_size=8, rng=np.random.default_rng(0)),
                           optimizers=step.optimizers, module=model, epochs=4, keep="best",
                           evaluate=lambda: {"val/loss": next(calls)},
                           on_epoch_end=lambda epoch, metrics: weights.append(float(model.w.detach())))
    assert history.best_epoch == 2 and history.best_val_loss == 1.0
    assert float(model.w.detach()) == pytest.approx(weights[1])
    assert float(history.last_state["w"]) == pytest.approx(weights[3])

    last, last_history = _line_fit(keep="last", epochs=4)
    assert last_history.best_state is None and float(last.w.detach()) == pytest.approx(float(last_history.last_state["w"]))


def test_an_unknown_keep_rule_or_no_budget_is_refused():
    with pytest.raises(ValueError, match="keep must be one of best, last"):
        _line_fit(keep="median")
    with pytest.raises(ValueError, match="give the fit a budget"):
        _line_fit(epochs=None, steps=None)
    with pytest.raises(ConfigError, match="keep_weights must be one of auto, best, last"):
        ILConfig(keep_weights="median")


def _sampled_fit(steps: int, start_step: int = 0, **kwargs):
    torch.manual_seed(0)
    model = Line()
    x = torch.linspace(-1, 1, 40)
    rates = []

    def loss(inputs, targets):
        return ((model.w * inputs - targets) ** 2).mean(), {}

    step = GradientStep(loss, model, model.parameters(), learning_rate=0.1, weight_decay=0.0)

    def recorded(batch, position):
        rates.append(step.optimizers["model"].param_groups[0]["lr"])
        return step(batch, position)

    batches = SampledBatches(40, 8, lambda i: (x[i], 2 * x[i]), torch.Generator().manual_seed(0))
    history = run_training(recorded, batches, optimizers=step.optimizers, module=model, steps=steps,
                           lr_schedule="cosine", start_step=start_step, **kwargs)
    return rates, history


def test_a_resumed_run_continues_the_schedule_where_it_stopped():
    full, _ = _sampled_fit(12)
    resumed, history = _sampled_fit(12, start_step=5)
    assert resumed == pytest.approx(full[5:]) and history.steps == 12
    assert full[0] == pytest.approx(0.1) and full[-1] < 0.01


def test_checkpoints_come_every_n_steps_and_at_the_end():
    saved = []
    _sampled_fit(12, checkpoint=saved.append, checkpoint_every=5)
    assert saved == [5, 10, 12]


def test_ctrl_c_hands_the_steps_done_to_on_interrupt_and_goes_on():
    interrupted = []
    torch.manual_seed(0)
    model = Line()
    x = np.linspace(-1, 1, 32).astype(np.float32)
    step = GradientStep(model.loss, model, model.parameters(), learning_rate=0.1, weight_decay=0.0)

    def breaking(batch, position):
        if position.step == 6:
            raise KeyboardInterrupt
        return step(batch, position)

    with pytest.raises(KeyboardInterrupt):
        run_training(breaking, ArrayBatches(x, 2 * x, batch_size=8, rng=np.random.default_rng(0)),
                     optimizers=step.optimizers, module=model, epochs=5, on_interrupt=interrupted.append)
    assert interrupted == [6]


def test_an_interrupted_flow_fit_saves_its_state_and_resumes_from_it(tmp_path, monkeypatch):
    from il_toolkit.envs import make_env
    from il_toolkit.train.imitation_learning.base import FlowMatchingTrainer
    from il_toolkit.train.imitation_learning.loop import train_flow_policy

    env = make_env("il_toolkit/PushT-v0")
    trajectories = _pusht_demos(env, 3)
    original = FlowMatchingTrainer.train_step

    def breaking(self, data, epoch, total_epochs, iterations):
        if iterations == 7:
            raise KeyboardInterrupt
        return original(self, data, epoch, total_epochs, iterations)

    monkeypatch.setattr(FlowMatchingTrainer, "train_step", breaking)
    kwargs = dict(steps=12, batch_size=32, checkpoint_dir=tmp_path / "ckpt", checkpoint_every=100, resume=True)
    with pytest.raises(KeyboardInterrupt):
        train_flow_policy("naive_flow_matching_policy_trainer", trajectories, env.observation_space,
                          env.action_space, **kwargs)
    assert json.loads((tmp_path / "ckpt" / "trainer_state.json").read_text())["iterations"] == 7
    monkeypatch.setattr(FlowMatchingTrainer, "train_step", original)
    seen = []
    train_flow_policy("naive_flow_matching_policy_trainer", trajectories, env.observation_space, env.action_space,
                      log=lambda metrics, step: seen.append(step), **kwargs)
    assert seen == list(range(7, 12))
    assert json.loads((tmp_path / "ckpt" / "trainer_state.json").read_text())["iterations"] == 12


def _pusht_demos(env, n: int):
    from il_toolkit.experts import make_expert
    from il_toolkit.rollout import rollout_episode

    expert = make_expert("il_toolkit/PushT-v0", env=env)
    return [rollout_episode(expert, env, seed).to_trajectory() for seed in range(n)]


def test_a_flow_learner_logs_one_record_per_epoch_with_validation_and_keeps_by_the_config(tmp_path):
    from il_toolkit.envs import make_env

    env = make_env("il_toolkit/PushT-v0")
    demos = _pusht_demos(env, 4)
    for keep in ("auto", "best"):
        config = ILConfig(output_dir=str(tmp_path / keep), use_wandb=False, policy_type="flow", bc_epochs=3,
                          batch_size=64, bc_validation_split=0.25, keep_weights=keep, eval_episodes=1)
        results = BehavioralCloning(env, config, progress=False).train(trajectories=demos, evaluate_policy=False)
        records = [json.loads(line) for line in (tmp_path / keep / "metrics.jsonl").read_text().splitlines()]
        assert [r["epoch"] for r in records] == [1, 2, 3]
        assert all(np.isfinite(r["val/loss"]) for r in records)
        assert results["best_selected_by"] == ("last epoch" if keep == "auto" else "val/loss")


def test_keep_weights_applies_to_bc_and_to_dagger_rounds(tmp_path, cartpole_demos):
    from il_toolkit import DAgger

    config = ILConfig(output_dir=str(tmp_path / "bc"), use_wandb=False, policy_type="mlp", bc_epochs=3,
                      keep_weights="last", eval_episodes=1)
    results = BehavioralCloning("CartPole-v1", config, progress=False).train(trajectories=cartpole_demos,
                                                                            evaluate_policy=False)
    assert results["best_selected_by"] == "last epoch"
    best_round = ILConfig(output_dir=str(tmp_path / "dagger"), use_wandb=False, policy_type="mlp", bc_epochs=2,
                          dagger_iterations=1, dagger_episodes_per_iter=1, keep_weights="best", eval_episodes=1)
    dagger = DAgger("CartPole-v1", config=best_round, progress=False)
    history = dagger._fit(list(cartpole_demos)[:4], _NullLogger())
    assert history["selected_by"] == "val/loss"


class _NullLogger:
    def log(self, *args, **kwargs) -> None:
        pass
