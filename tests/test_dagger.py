import json

import numpy as np
import pytest
import torch

from il_toolkit import ILConfig
from il_toolkit.envs import make_env
from il_toolkit.policies import FunctionPolicy, SpaceMismatchError
from il_toolkit.train.il.common import ResumeMismatchError, RunBusyError, run_dir_lock
from il_toolkit.train.il.dagger import BetaMixture, DAgger


def _config(tmp_path, **overrides):
    base = dict(dagger_iterations=3, dagger_episodes_per_iter=2, bc_epochs=4, learning_rate=1e-3,
                eval_episodes=5, output_dir=str(tmp_path / "dagger"), use_wandb=False)
    return ILConfig.dagger(**{**base, **overrides})


def _crash_in_round(monkeypatch, iteration: int):
    """Make ``DAgger.collect_round`` raise KeyboardInterrupt in round ``iteration`` (0-based), as a
    run killed there would stop; returns the original, to restore."""
    original = DAgger.collect_round

    def crashing(self, i, *args):
        if i == iteration:
            raise KeyboardInterrupt
        return original(self, i, *args)

    monkeypatch.setattr(DAgger, "collect_round", crashing)
    return original


def test_seed_api_learns_cartpole_and_records_every_round(tmp_path):
    env = make_env("CartPole-v1")

    def expert_policy(state):
        return 1 if state[2] + 0.1 * state[3] > 0 else 0

    trainer = DAgger(env=env, expert_policy=expert_policy, config=_config(tmp_path, bc_epochs=10), progress=False)
    results = trainer.train()
    betas = [r["beta"] for r in results["rounds"]]
    assert betas == pytest.approx([1.0, 2 / 3, 1 / 3])
    assert results["rounds"][0]["round/learner_action_share"] == 0.0
    assert results["rounds"][-1]["round/learner_action_share"] > 0.3
    assert results["eval"]["mean_return"] >= 400
    import minari

    aggregate = minari.MinariDataset(results["dataset_path"])
    assert aggregate.total_episodes == 6 == results["n_episodes"]
    assert aggregate.total_steps == results["expert_labels"]


def test_labels_are_the_experts_even_when_the_learner_acts():
    env = make_env("CartPole-v1")
    expert = FunctionPolicy(lambda s: 1, env.observation_space, env.action_space)
    learner = FunctionPolicy(lambda s: 0, env.observation_space, env.action_space)
    mixture = BetaMixture(expert, learner, beta=0.0, rng=np.random.default_rng(0))
    actions = [int(mixture.predict(env.observation_space.sample())[0]) for _ in range(20)]
    assert actions == [0] * 20 and [int(a) for a in mixture.labels] == [1] * 20


def test_a_crashed_run_resumes_after_its_last_finished_round(tmp_path, monkeypatch):
    config = _config(tmp_path)
    trainer = DAgger("CartPole-v1", None, config, progress=False)
    original = _crash_in_round(monkeypatch, 2)
    with pytest.raises(KeyboardInterrupt):
        trainer.train()
    state = json.loads((tmp_path / "dagger" / "state.json").read_text())
    assert state["completed_rounds"] == 2 and state["episodes"] == 4
    metrics = tmp_path / "dagger" / "metrics.jsonl"
    with metrics.open("a") as f:  # what a round killed in the middle of its fit leaves behind
        f.write('{"step": 999, "train/loss": 9.0, "epoch": 1}\n{"step": 1000, "train/lo')
    monkeypatch.setattr(DAgger, "collect_round", original)
    seen = []
    monkeypatch.setattr(DAgger, "collect_round", lambda self, i, *args: seen.append(i) or original(self, i, *args))
    results = DAgger("CartPole-v1", None, config, progress=False).train()
    assert seen == [2]
    assert results["n_episodes"] == 6 and len(results["rounds"]) == 3
    records = [json.loads(line) for line in metrics.read_text().splitlines()]
    assert [r["round"] for r in records if "round" in r] == [1, 2, 3]  # one record per round
    assert not any(r.get("train/loss") == 9.0 for r in records)  # the killed round's records are gone


def test_resuming_with_other_settings_is_refused(tmp_path):
    DAgger("CartPole-v1", None, _config(tmp_path, dagger_iterations=1), progress=False).train()
    with pytest.raises(ResumeMismatchError, match="different settings \\(bc_epochs\\)"):
        DAgger("CartPole-v1", None, _config(tmp_path, dagger_iterations=1, bc_epochs=5), progress=False).train()


def test_a_resumed_run_goes_on_for_more_rounds_or_stops_where_it_is_and_each_round_keeps_its_time(tmp_path, monkeypatch):
    config = _config(tmp_path, dagger_iterations=1, dagger_beta_schedule="constant", dagger_initial_beta=0.5)
    first = DAgger("CartPole-v1", None, config, progress=False).train()
    seen = []
    original = DAgger.collect_round
    monkeypatch.setattr(DAgger, "collect_round", lambda self, i, *args: seen.append(i) or original(self, i, *args))
    more = DAgger("CartPole-v1", None, _config(tmp_path, dagger_iterations=3, dagger_beta_schedule="constant",
                                               dagger_initial_beta=0.5), progress=False).train()
    assert seen == [1, 2] and len(more["rounds"]) == 3 and more["rounds"][0] == first["rounds"][0]
    assert all(r["round/seconds"] > 0 for r in more["rounds"])
    with pytest.raises(ResumeMismatchError, match="has finished 3 rounds; dagger_iterations=2 asks for fewer"):
        DAgger("CartPole-v1", None, _config(tmp_path, dagger_iterations=2, dagger_beta_schedule="constant",
                                            dagger_initial_beta=0.5), progress=False).train()


def test_a_run_cut_short_can_be_finished_with_the_rounds_it_has(tmp_path, monkeypatch):
    gated = dict(dagger_variant="hg_dagger", dagger_iterations=3)
    _crash_in_round(monkeypatch, 1)
    with pytest.raises(KeyboardInterrupt):
        DAgger("CartPole-v1", None, _config(tmp_path, **gated), progress=False).train()
    monkeypatch.undo()
    monkeypatch.setattr(DAgger, "collect_round", lambda *args: pytest.fail("no round is left to run"))
    results = DAgger("CartPole-v1", None, _config(tmp_path, **{**gated, "dagger_iterations": 1}), progress=False).train()
    assert len(results["rounds"]) == 1 and results["best_round"] == 1


def test_a_linear_beta_run_keeps_its_round_count(tmp_path):
    DAgger("CartPole-v1", None, _config(tmp_path, dagger_iterations=1), progress=False).train()
    with pytest.raises(ResumeMismatchError, match="linear beta schedule decays over dagger_iterations=1 rounds"):
        DAgger("CartPole-v1", None, _config(tmp_path, dagger_iterations=2), progress=False).train()


def test_a_second_run_in_a_busy_output_dir_is_refused_before_it_writes(tmp_path):
    config = _config(tmp_path, dagger_iterations=1)
    with run_dir_lock(config.output_dir):  # flock: a second open of the file conflicts, as another process would
        with pytest.raises(RunBusyError, match="in use by another run"):
            DAgger("CartPole-v1", None, config, progress=False).train()
        assert not (tmp_path / "dagger").exists() or not any((tmp_path / "dagger").iterdir())
    assert DAgger("CartPole-v1", None, config, progress=False).train()["n_episodes"] == 2


def test_a_run_written_before_a_setting_joined_the_signature_still_resumes(tmp_path):
    DAgger("CartPole-v1", None, _config(tmp_path, dagger_iterations=1), progress=False).train()
    path = tmp_path / "dagger" / "state.json"
    state = json.loads(path.read_text())
    for newer in ("policy_activation", "lr_schedule"):
        del state["signature"][newer]
    path.write_text(json.dumps(state))
    results = DAgger("CartPole-v1", None, _config(tmp_path, dagger_iterations=1), progress=False).train()
    assert results["n_episodes"] == 2  # nothing redone
    with pytest.raises(ResumeMismatchError, match="different settings \\(lr_schedule, policy_type\\)"):
        DAgger("CartPole-v1", None, _config(tmp_path, dagger_iterations=1, policy_type="mlp", lr_schedule="cosine"),
               progress=False).train()


def test_expert_with_another_action_space_is_refused(tmp_path):
    env = make_env("CartPole-v1")
    pusht = make_env("PushT-v0")
    wrong = FunctionPolicy(lambda s: np.zeros(2, np.float32), env.observation_space, pusht.action_space)
    with pytest.raises(SpaceMismatchError, match=r"expert action space Box\(2,\) float32 does not match env action space Discrete\(2\)"):
        DAgger(env, wrong, _config(tmp_path), progress=False)


def test_cli_runs_with_the_seed_flags(tmp_path):
    from il_toolkit.cli import main

    out = tmp_path / "cli"
    assert main(["train", "dagger", "--env", "CartPole-v1", "--dagger_iterations", "2", "--dagger_episodes_per_iter", "1",
                 "--dagger_beta_schedule", "exponential", "--dagger_initial_beta", "1.0", "--bc_epochs", "2",
                 "--eval_episodes", "2", "--output_dir", str(out), "--no_wandb", "--no_progress"]) == 0
    state = json.loads((out / "state.json").read_text())
    assert [r["beta"] for r in state["rounds"]] == pytest.approx([1.0, 0.9])


def test_relative_output_dir_writes_and_resumes(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = _config(tmp_path, dagger_iterations=1, output_dir="out/dagger")
    DAgger("CartPole-v1", None, config, progress=False).train()
    assert (tmp_path / "out" / "dagger" / "dataset" / "data" / "metadata.json").exists()
    results = DAgger("CartPole-v1", None, config.replace(dagger_iterations=1), progress=False).train()
    assert results["n_episodes"] == 2


def test_a_crash_after_a_rounds_data_is_written_leaves_a_consistent_aggregate(tmp_path, monkeypatch):
    import minari

    from il_toolkit.train.il.behavioral_cloning import BehavioralCloning

    config = _config(tmp_path)
    original = BehavioralCloning.fit
    calls = []

    def crash_in_second_fit(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt  # round 2's episodes are already in the aggregate
        return original(self, *args, **kwargs)

    monkeypatch.setattr(BehavioralCloning, "fit", crash_in_second_fit)
    with pytest.raises(KeyboardInterrupt):
        DAgger("CartPole-v1", None, config, progress=False).train()
    monkeypatch.setattr(BehavioralCloning, "fit", original)
    results = DAgger("CartPole-v1", None, config, progress=False).train()
    aggregate = minari.MinariDataset(results["dataset_path"])
    assert aggregate.total_episodes == results["n_episodes"] == 6
    state = json.loads((tmp_path / "dagger" / "state.json").read_text())
    assert state["episodes"] == 6 and state["completed_rounds"] == 3


def test_mlp_normaliser_is_refit_on_each_rounds_aggregate(tmp_path, monkeypatch):
    """Later rounds add learner-visited states with the expert's recovery labels; the MLP's
    statistics follow the whole aggregate instead of staying at round 1's expert-only data."""
    from il_toolkit.policies.mlp import MLPPolicy

    sizes = []
    original = MLPPolicy.fit_normalizer

    def counting(self, observations, actions=None):
        sizes.append(len(actions))
        return original(self, observations, actions)

    monkeypatch.setattr(MLPPolicy, "fit_normalizer", counting)
    config = _config(tmp_path, dagger_iterations=2, bc_epochs=1, policy_type="mlp", bc_validation_split=0.0)
    env = make_env("il_toolkit/PushT-v0", obs_type="state", max_episode_steps=20)
    DAgger(env, None, config, progress=False).train()
    assert len(sizes) == 2 and sizes[1] > sizes[0]


def test_best_round_prefers_success_then_return_then_the_later_round():
    rounds = [{"pc_success": 10.0, "mean_reward": 1.0}, {"pc_success": 70.0, "mean_reward": 2.0},
              {"pc_success": 0.0, "mean_reward": 9.0}, {"pc_success": 70.0, "mean_reward": 1.0}]
    assert DAgger.best_round(rounds) == 2
    assert DAgger.best_round([{"pc_success": 0.0, "mean_reward": 5.0}, {"pc_success": 0.0, "mean_reward": 5.0}]) == 2


def test_the_run_keeps_the_round_that_did_best_in_its_own_rollouts(tmp_path, monkeypatch):
    """A learner can get worse in a later round; best/ is the best round's policy, last/ the last."""
    from il_toolkit.policies import load

    scripted = iter([{"mean_return": 100.0, "pc_success": 20.0}, {"mean_return": 500.0, "pc_success": 90.0},
                     {"mean_return": 30.0, "pc_success": 0.0}])
    monkeypatch.setattr(DAgger, "_round_eval", lambda self, iteration: next(scripted))
    results = DAgger("CartPole-v1", None, _config(tmp_path, policy_type="mlp", eval_episodes=2), progress=False).train()
    assert results["best_round"] == 2
    obs = np.random.default_rng(0).normal(size=(64, 4)) * [1.0, 1.0, 0.1, 1.0]
    best, second, last = (load(p) for p in (results["policy_path"], tmp_path / "dagger" / "rounds" / "002",
                                            results["last_policy_path"]))
    np.testing.assert_array_equal(best.predict(obs)[0], second.predict(obs)[0])
    assert (best.model[0].weight != last.model[0].weight).any()


def test_with_an_initial_dataset_the_first_rounds_learner_is_trained_on_it(tmp_path):
    """Ross et al.'s pi_1: given D0, the learner is fitted on it before round 1, so a round-1
    rollout with beta = 0 already balances CartPole instead of acting with random weights."""
    from il_toolkit.train.datasets.collect import collect_dataset

    collect_dataset("CartPole-v1", "tests/dagger-d0-v0", 6, progress=False)
    config = _config(tmp_path, dagger_iterations=1, dagger_beta_schedule="constant", dagger_initial_beta=0.0,
                     bc_epochs=20, policy_type="mlp")
    results = DAgger("CartPole-v1", None, config, progress=False).train(initial_dataset="tests/dagger-d0-v0")
    first = results["rounds"][0]
    assert first["round/learner_action_share"] == 1.0 and first["round/mean_return"] >= 300
    metrics = [json.loads(line) for line in (tmp_path / "dagger" / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics if "round" in m] == [20, 40]


def test_the_learner_is_asked_every_step_so_a_chunked_queue_keeps_time():
    env = make_env("CartPole-v1")
    calls = []
    expert = FunctionPolicy(lambda s: 1, env.observation_space, env.action_space)
    learner = FunctionPolicy(lambda s: calls.append(1) or 0, env.observation_space, env.action_space)
    mixture = BetaMixture(expert, learner, beta=0.5, rng=np.random.default_rng(0))
    actions = [int(mixture.predict(env.observation_space.sample())[0]) for _ in range(40)]
    assert len(calls) == 40 and 0 < mixture.learner_steps < 40 and actions.count(0) == mixture.learner_steps


def test_a_chunked_learner_is_a_flow_policy_retrained_each_round(tmp_path):
    """DAgger: the learner may be a chunked policy; the expert labels every visited state."""
    from il_toolkit.policies import load
    from il_toolkit.policies.flow_policy import FlowMatchingPolicy

    env = make_env("il_toolkit/PushT-v0", obs_type="state", max_episode_steps=20)
    config = _config(tmp_path, dagger_iterations=2, bc_epochs=1, batch_size=16, eval_episodes=1, action_chunk_size=4)
    results = DAgger(env, None, config, progress=False).train()
    assert [r["round/learner_action_share"] > 0 for r in results["rounds"]] == [False, True]
    assert all(isinstance(load(tmp_path / "dagger" / "rounds" / f"{i:03d}"), FlowMatchingPolicy) for i in (1, 2))
    assert results["n_episodes"] == 4 and results["expert_labels"] == 80
    with pytest.raises(ValueError, match="dagger_initial_beta=1"):
        DAgger(env, None, _config(tmp_path / "b", action_chunk_size=4, dagger_initial_beta=0.5), progress=False).train()


@pytest.mark.parametrize("warm_start", [False, True])
def test_a_chunked_learner_continues_from_the_last_rounds_weights_when_warm_started(tmp_path, monkeypatch, warm_start):
    from il_toolkit.train.il.behavioral_cloning import BehavioralCloning

    starts, fitted = [], []
    original = BehavioralCloning.fit_chunked

    def recording(self, *args, start=None, **kwargs):
        starts.append(start)
        history = original(self, *args, start=start, **kwargs)
        fitted.append(self.policy)
        return history

    monkeypatch.setattr(BehavioralCloning, "fit_chunked", recording)
    env = make_env("il_toolkit/PushT-v0", obs_type="state", max_episode_steps=20)
    config = _config(tmp_path, dagger_iterations=2, bc_epochs=1, batch_size=16, eval_episodes=1, action_chunk_size=4,
                     dagger_warm_start=warm_start)
    DAgger(env, None, config, progress=False).train()
    assert starts[0] is None  # round 1's learner: no earlier one
    assert (starts[1] is fitted[0]) == warm_start and (starts[1] is None) != warm_start
    if warm_start:  # the normaliser D0 fitted is kept: the weights were fitted to it
        assert fitted[1] is fitted[0]


def test_a_resumed_warm_started_chunked_learner_continues_from_its_saved_round(tmp_path, monkeypatch):
    from il_toolkit.policies import load
    from il_toolkit.train.il.behavioral_cloning import BehavioralCloning

    env = make_env("il_toolkit/PushT-v0", obs_type="state", max_episode_steps=20)
    config = _config(tmp_path, dagger_iterations=2, bc_epochs=1, batch_size=16, eval_episodes=1, action_chunk_size=4,
                     dagger_warm_start=True)
    original_collect = _crash_in_round(monkeypatch, 1)
    with pytest.raises(KeyboardInterrupt):
        DAgger(env, None, config, progress=False).train()
    monkeypatch.setattr(DAgger, "collect_round", original_collect)
    saved = load(tmp_path / "dagger" / "rounds" / "001")
    starts = []
    original_fit = BehavioralCloning.fit_chunked

    def recording(self, *args, start=None, **kwargs):
        starts.append(None if start is None else {k: v.clone() for k, v in start.model.state_dict().items()})
        return original_fit(self, *args, start=start, **kwargs)

    monkeypatch.setattr(BehavioralCloning, "fit_chunked", recording)
    DAgger(env, None, config, progress=False).train()
    assert len(starts) == 1 and starts[0] is not None  # round 2 continued round 1's saved policy
    assert all(torch.equal(v, saved.model.state_dict()[k]) for k, v in starts[0].items())


@pytest.mark.parametrize("warm_start", [False, True])
def test_each_round_trains_a_fresh_learner_unless_warm_started(tmp_path, monkeypatch, warm_start):
    """Ross et al. train a new policy on the aggregate each round (the default); imitation's
    DAgger continues from the last round's weights (dagger_warm_start). Either way a round keeps
    its last epoch's weights."""
    from il_toolkit.train.il.behavioral_cloning import BehavioralCloning

    starts, ends = [], []
    original = BehavioralCloning.fit

    def recording(self, *args, **kwargs):
        starts.append(self.module[0].weight.detach().clone())
        history = original(self, *args, **kwargs)
        ends.append(history["last_state"]["0.weight"].clone())
        return history

    monkeypatch.setattr(BehavioralCloning, "fit", recording)
    config = _config(tmp_path, dagger_iterations=2, bc_epochs=2, policy_type="mlp", dagger_warm_start=warm_start)
    DAgger("CartPole-v1", None, config, progress=False).train()
    assert torch.equal(starts[1], ends[0]) == warm_start
    from il_toolkit.policies import load  # each round keeps its last epoch's weights, not its lowest validation loss

    assert torch.equal(load(tmp_path / "dagger" / "rounds" / "001").model[0].weight, ends[0])
    if not warm_start:  # a seeded fresh initialisation: reproducible, and other than round 1's
        assert not torch.equal(starts[1], starts[0])
        torch.manual_seed(config.seed * 1000 + 2)
        assert torch.equal(starts[1], torch.nn.Linear(4, 256).weight)


def _standing_learner(env):
    """A PushT learner at a fixed point of its own action map: its target is where the pusher is."""
    return FunctionPolicy(lambda s: np.asarray(s[:2], dtype=np.float32), env.observation_space, env.action_space)


def test_the_stuck_detector_counts_steps_without_motion():
    from il_toolkit.train.il.dagger import StuckDetector

    detector = StuckDetector(3)
    seen = [detector.update(np.array([100.0, 2.0]) + shift) for shift in (0, 1e-5, 0, 0, 5.0, 5.0)]
    assert seen == [False, False, False, True, False, False] and detector.still == 1
    assert not any(StuckDetector(0).update(np.zeros(2)) for _ in range(5))


def test_the_stuck_detector_sees_a_cycle_through_a_few_states():
    from il_toolkit.train.il.dagger import StuckDetector

    a, b = np.array([100.0, 2.0]), np.array([130.0, 2.0])
    detector = StuckDetector(3)
    assert [detector.update(obs) for obs in (a, b, a, b, a)] == [False, False, False, False, True]
    short_memory = StuckDetector(3, window=1)  # a cycle longer than the window is not recognised
    assert not any(short_memory.update(obs) for obs in (a, b) * 5)


def test_a_stuck_rollout_ends_there_when_asked(tmp_path):
    """A learner standing still would label the same state for the rest of the episode."""
    from il_toolkit.rollout import rollout_episode
    from il_toolkit.train.il.dagger import EndWhenStuck

    env = make_env("il_toolkit/PushT-v0", obs_type="state")
    expert = _pusht_expert(env)
    mixture = BetaMixture(expert, _standing_learner(env), beta=0.0, rng=np.random.default_rng(0))
    episode = rollout_episode(mixture, EndWhenStuck(env, 5), seed=3)
    assert episode.truncated and not episode.terminated and episode.length == 5 == len(mixture.labels)
    full = rollout_episode(mixture, env, seed=3)
    assert full.length == 300


def test_the_expert_takes_over_a_stuck_rollout_and_labels_the_way_out(tmp_path):
    from il_toolkit.rollout import rollout_episode
    from il_toolkit.train.il.dagger import StuckDetector

    env = make_env("il_toolkit/PushT-v0", obs_type="state")
    expert = _pusht_expert(env)
    mixture = BetaMixture(expert, _standing_learner(env), beta=0.0, rng=np.random.default_rng(0),
                          takeover_when=StuckDetector(5))
    episode = rollout_episode(mixture, env, seed=3)
    assert mixture.taken_over and mixture.learner_steps == 5
    assert episode.success  # the scripted expert finishes from where the learner stood
    np.testing.assert_array_equal(np.stack(episode.actions[5:]), np.stack(mixture.labels[5:]))
    mixture.reset()
    assert not mixture.taken_over


def test_dagger_reports_stuck_rollouts_and_records_the_setting(tmp_path):
    env = make_env("il_toolkit/PushT-v0", obs_type="state", max_episode_steps=40)
    config = _config(tmp_path, dagger_iterations=1, dagger_episodes_per_iter=2, dagger_initial_beta=0.0,
                     dagger_stuck_steps=5, bc_epochs=1, eval_episodes=1, policy_type="mlp")
    trainer = DAgger(env, None, config, policy=_fitted_standing_mlp(env), progress=False)
    results = trainer.train()
    assert results["rounds"][0]["round/stuck_episodes"] == 2 and results["expert_labels"] == 10  # 5 steps each
    state = json.loads((tmp_path / "dagger" / "state.json").read_text())
    assert state["signature"]["dagger_stuck_steps"] == 5 and state["signature"]["dagger_on_stuck"] == "end"
    with pytest.raises(Exception, match="dagger_on_stuck must be one of end, expert"):
        ILConfig.dagger(dagger_on_stuck="pause")


def _pusht_expert(env):
    from il_toolkit.experts import make_expert

    return make_expert("il_toolkit/PushT-v0", env=env)


def _fitted_standing_mlp(env):
    """An MLP whose every target is its own pusher position (offset 0)."""
    from il_toolkit.policies.mlp import MLPPolicy

    policy = MLPPolicy(env.observation_space, env.action_space, hidden_sizes=[8], action_reference=[0, 1])
    obs = np.random.default_rng(0).uniform(100, 400, (64, 5))
    policy.fit_normalizer(obs, obs[:, :2])
    torch.nn.init.zeros_(policy.model[-1].weight)
    torch.nn.init.zeros_(policy.model[-1].bias)
    policy.model.act_center.zero_()
    return policy


def test_a_label_budget_cuts_the_rollout_that_reaches_it_and_ends_the_run(tmp_path):
    env = make_env("CartPole-v1")

    def expert_policy(state):
        return 1 if state[2] + 0.1 * state[3] > 0 else 0

    config = _config(tmp_path, dagger_iterations=5, dagger_episodes_per_iter=3, dagger_beta_schedule="constant",
                     bc_epochs=1, eval_episodes=1, dagger_label_budget=1300)
    results = DAgger(env, expert_policy, config, progress=False).train()
    rounds = results["rounds"]
    assert len(rounds) < 5 and results["expert_labels"] == 1300 == rounds[-1]["expert_labels"]
    assert sum(r["round/expert_labels"] for r in rounds) == 1300
    import minari

    assert minari.MinariDataset(results["dataset_path"]).total_steps == 1300
    again = DAgger(env, expert_policy, config, progress=False).train()  # resuming a spent run adds nothing
    assert again["expert_labels"] == 1300 and len(again["rounds"]) == len(rounds)


def test_a_label_budget_the_initial_dataset_already_spends_is_refused(tmp_path):
    from il_toolkit.train.datasets.collect import collect_dataset

    collect_dataset("CartPole-v1", "tests/dagger-budget-d0-v0", 6, progress=False)
    config = _config(tmp_path, dagger_label_budget=100)
    with pytest.raises(ValueError, match="spent by the initial dataset alone"):
        DAgger("CartPole-v1", None, config, progress=False).train(initial_dataset="tests/dagger-budget-d0-v0")
    with pytest.raises(Exception, match="dagger_label_budget must be an integer >= 0"):
        ILConfig.dagger(dagger_label_budget=-1)
