"""The interactive DAgger variants: gates, label accounting, ensembles, and whole (tiny) runs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from gymnasium import spaces

from il_toolkit.config.training_config import ConfigError, ILConfig
from il_toolkit.envs import make_env
from il_toolkit.policies import FunctionPolicy, load
from il_toolkit.policies.ensemble import EnsemblePolicy
from il_toolkit.train.il.dagger import DAgger
from il_toolkit.train.il.gates import (BetaGate, EnsembleGate, SimulatedPerson, StepView, action_distance,
                                       threshold_for_rate)
from il_toolkit.train.il.interactive import ExpertFailure, InteractiveActor, labelled_segments
from il_toolkit.train.il.uncertainty import NoveltyIndex, RiskModel, failure_targets

BOX = spaces.Box(-1.0, 1.0, (2,), dtype=np.float32)
OBS = spaces.Box(-10.0, 10.0, (3,), dtype=np.float32)


def _constant(value, obs_space=OBS, action_space=BOX):
    return FunctionPolicy(lambda s: np.asarray(value, dtype=np.float32), obs_space, action_space)


def _fail_rounds(monkeypatch, failures):
    """Make DAgger's round ``i`` raise ``failures[i]`` (the others run); returns the real collect_round."""
    original = DAgger.collect_round

    def collect_round(self, iteration, *args):
        if iteration in failures:
            raise failures[iteration]
        return original(self, iteration, *args)

    monkeypatch.setattr(DAgger, "collect_round", collect_round)
    return original


def _config(tmp_path, **overrides):
    base = dict(dagger_iterations=2, dagger_episodes_per_iter=2, bc_epochs=2, eval_episodes=2,
                output_dir=str(tmp_path / "run"), use_wandb=False, learning_rate=1e-3)
    return ILConfig.dagger(**{**base, **overrides})


def test_action_distance_is_in_half_ranges():
    assert action_distance(np.zeros(2), np.zeros(2), BOX) == 0.0
    assert action_distance(np.array([-1.0, -1.0]), np.array([1.0, 1.0]), BOX) == pytest.approx(2.0)
    assert action_distance(np.array([0.0, 0.0]), np.array([0.5, 0.0]), BOX) == pytest.approx(np.sqrt(0.125))
    assert action_distance(np.array(1), np.array(0), spaces.Discrete(2)) == 1.0


def test_the_simulated_person_reacts_after_a_delay_and_hands_back_after_settling():
    person = SimulatedPerson(BOX, threshold=0.1, reaction_steps=2, settle_steps=3)
    expert = np.zeros(2)
    stray, agree = np.array([0.5, 0.5]), np.array([0.01, 0.0])

    def step(learner, in_control):
        return person.expert_acts(StepView(None, learner, lambda: expert), in_control)

    assert step(stray, False) is False  # noticed, not yet reacted
    assert step(stray, False) is True  # takes over on the second straying step
    assert [step(agree, True) for _ in range(3)] == [True, True, False]  # settles, then hands back
    assert step(stray, False) is False and step(agree, False) is False  # one stray step alone: no takeover
    with pytest.raises(ValueError, match="threshold must be > 0"):
        SimulatedPerson(BOX, threshold=0.0)


def test_the_actor_counts_labels_interventions_and_hand_backs():
    """A learner that strays on every other pair of steps: the person intervenes, labels only
    the steps they act in, and hands back."""
    calls = {"n": 0}

    def learner_fn(s):
        calls["n"] += 1
        return np.array([0.8, 0.8] if (calls["n"] // 4) % 2 else [0.0, 0.0], dtype=np.float32)

    actor = InteractiveActor(_constant([0.0, 0.0]), FunctionPolicy(learner_fn, OBS, BOX),
                             SimulatedPerson(BOX, threshold=0.1, reaction_steps=1, settle_steps=1))
    actor.reset()
    actions = [actor.predict(np.zeros(3, dtype=np.float32))[0] for _ in range(16)]
    a = actor.account
    assert a.labels == sum(label is not None for label in actor.labels) == a.expert_steps
    assert a.expert_steps + a.learner_steps == 16 and a.expert_queries == 16  # the person watches every step
    assert a.interventions >= 2 and a.hand_backs >= 1 and a.context_switches == a.interventions + a.hand_backs
    assert all(np.allclose(act, 0.0) for act, label in zip(actions, actor.labels) if label is not None)


def test_plain_dagger_labels_every_state_and_a_gate_that_reads_the_learner_asks_no_expert():
    beta = InteractiveActor(_constant([0.0, 0.0]), _constant([0.5, 0.5]), BetaGate(0.0, np.random.default_rng(0)))
    beta.reset()
    for _ in range(5):
        beta.predict(np.zeros(3, dtype=np.float32))
    assert beta.account.labels == 5 and beta.account.learner_steps == 5

    calm = EnsemblePolicy([_constant([0.1, 0.1]), _constant([0.1, 0.1])])
    expert_calls = []
    expert = FunctionPolicy(lambda s: expert_calls.append(1) or np.zeros(2, np.float32), OBS, BOX)
    actor = InteractiveActor(expert, calm, EnsembleGate(calm, disagreement_threshold=0.05))
    actor.reset()
    for _ in range(5):
        actor.predict(np.zeros(3, dtype=np.float32))
    assert actor.account.labels == 0 and not expert_calls


def test_labelled_segments_are_the_runs_of_labelled_steps():
    from imitation.data.types import TrajectoryWithRew

    trajectory = TrajectoryWithRew(obs=np.arange(7, dtype=np.float32)[:, None], acts=np.zeros((6, 1)), infos=None,
                                   terminal=True, rews=np.arange(6, dtype=np.float32))
    one = np.ones(1)
    segments = labelled_segments(trajectory, [one, one, None, None, one, one])
    assert [len(s.acts) for s in segments] == [2, 2]
    np.testing.assert_array_equal(segments[0].obs[:, 0], [0, 1, 2])
    np.testing.assert_array_equal(segments[1].obs[:, 0], [4, 5, 6])
    assert [s.terminal for s in segments] == [False, True]
    assert labelled_segments(trajectory, [None] * 6) == []


def test_a_stretch_handed_back_is_cut_for_a_chunked_learner():
    from imitation.data.types import TrajectoryWithRew

    from il_toolkit.train.datasets.minari_io import actions_cut, chunk_start_mask

    trajectory = TrajectoryWithRew(obs=np.arange(10, dtype=np.float32)[:, None], acts=np.zeros((9, 1)), infos=None,
                                   terminal=False, rews=np.zeros(9, dtype=np.float32))
    one = np.ones(1)
    labels = [one] * 4 + [None] * 2 + [one] * 3
    handed_back, at_the_end = labelled_segments(trajectory, labels, horizon=3)
    assert actions_cut(handed_back) and chunk_start_mask(handed_back).all()  # every window, masked past step 4
    assert not actions_cut(at_the_end) and at_the_end.infos is None  # padded at the episode's end, as a demonstration
    assert all(s.infos is None for s in labelled_segments(trajectory, labels))  # one action per window: nothing to cut
    _, budget_end = labelled_segments(trajectory, labels, horizon=3, cut_short=True)  # a label budget ended the episode
    assert actions_cut(budget_end)
    with pytest.raises(ValueError, match="one per step"):
        labelled_segments(trajectory, labels[:-1])


def test_windows_of_a_cut_episode_mark_the_positions_past_its_end_and_the_loss_leaves_them_out():
    from il_toolkit.policies.flow_policy import FlowMatchingPolicy
    from il_toolkit.train.imitation_learning import TRAINER_REGISTRY
    from il_toolkit.train.imitation_learning.windows import WindowDataset

    episodes = [({"observation.state": np.zeros((3, 2))}, np.arange(3.0)[:, None]),
                ({"observation.state": np.zeros((2, 2))}, np.arange(2.0)[:, None])]
    windows = WindowDataset.from_episodes(episodes, n_obs_steps=1, horizon=3, cut=[False, True])  # no warning: cut
    pad = windows.batch(torch.arange(len(windows)))["action_is_pad"]
    np.testing.assert_array_equal(pad.numpy(), [[0, 0, 0], [0, 0, 0], [0, 0, 0], [0, 0, 1], [0, 1, 1]])
    np.testing.assert_array_equal(windows.batch(torch.tensor([2]))["action"][0, :, 0].numpy(), [2, 2, 2])  # padded
    with pytest.warns(UserWarning, match="padded with their last action"):  # a short episode that is not cut
        assert WindowDataset.from_episodes(episodes, 1, 3, cut=[False, False]).action_is_pad is None
    with pytest.warns(UserWarning, match="1 of 1 episodes"):  # a long cut stretch shows whole chunks: no error
        WindowDataset.from_episodes(episodes, 1, 3, cut=[True, False])
    history = WindowDataset.from_episodes(episodes[:1], n_obs_steps=2, horizon=3, cut=[True])
    np.testing.assert_array_equal(history.action_is_pad.numpy(), [[1, 0, 0], [0, 0, 0], [0, 0, 1]])  # its start too
    assert history.labelled_actions().shape == (7, 1)

    key = "naive_flow_matching_policy_trainer"
    space = spaces.Box(-1, 1, (2,), np.float32)
    policy = FlowMatchingPolicy.create(key, space, spaces.Box(-1, 1, (2,), np.float32), horizon=3, n_obs_steps=1)
    trainer_cls = TRAINER_REGISTRY.get(key)
    batch = {"observation.state": torch.zeros(4, 1, 2), "action": torch.rand(4, 3, 2, generator=torch.Generator().manual_seed(1)),
             "action_is_pad": torch.tensor([[False, False, True]] * 4)}
    other = {**batch, "action": batch["action"].clone()}
    other["action"][:, 2] += 0.5  # differs only where there is no label

    def loss(data):
        trainer = trainer_cls(policy.model, {}, None, "cpu", generator=torch.Generator().manual_seed(0))
        trainer.velocity = lambda x_t, t, context: torch.zeros_like(x_t)  # the net's input sees every position
        return float(trainer.compute_loss(data)[0])

    assert loss(batch) == pytest.approx(loss(other))
    from il_toolkit.model.components import BatchError

    with pytest.raises(BatchError, match="action_is_pad"):
        loss({**batch, "action_is_pad": batch["action_is_pad"][:, :1]})
    unmasked = {k: v for k, v in batch.items() if k != "action_is_pad"}
    assert loss(unmasked) != pytest.approx(loss({**unmasked, "action": other["action"]}))


def test_a_validation_split_keeps_the_stretches_of_one_rollout_together():
    from imitation.data.types import TrajectoryWithRew

    from il_toolkit.train.datasets.minari_io import from_rollout, rollout_seed
    from il_toolkit.train.il.common import split_episodes

    def stretch(seed):
        t = TrajectoryWithRew(obs=np.zeros((3, 1)), acts=np.zeros((2, 1)), infos=None, terminal=False, rews=np.zeros(2))
        return t if seed is None else from_rollout(t, seed)

    episodes = [stretch(None), stretch(None)] + [stretch(seed) for seed in (7, 7, 7, 8, 8, 9)]
    for split_seed in range(5):
        train, val = split_episodes(episodes, 0.4, np.random.default_rng(split_seed))
        assert len(train) + len(val) == 8 and len(val) in (1, 2, 3, 4)
        assert {rollout_seed(t) for t in train} & {rollout_seed(t) for t in val} <= {None}
    assert sum(len(split_episodes(episodes, 0.4, np.random.default_rng(s))[1]) for s in range(5)) > 5  # a rollout in val


def test_chunked_hg_dagger_trains_on_cut_expert_stretches_and_resumes_with_them(tmp_path, monkeypatch):
    from minari import MinariDataset

    from il_toolkit.train.datasets.minari_io import actions_cut, chunk_start_mask, rollout_seed, trajectories_from
    from il_toolkit.train.il.dagger import DATASET_DIR

    env = make_env("il_toolkit/PushT-v0", obs_type="state", max_episode_steps=30)
    config = _config(tmp_path, dagger_variant="hg_dagger", action_chunk_size=4, dagger_intervention_threshold=0.05,
                     dagger_iterations=3)  # round 1 is the expert's alone
    original = _fail_rounds(monkeypatch, {2: KeyboardInterrupt()})
    with pytest.raises(KeyboardInterrupt):
        DAgger(env, None, config, progress=False).train()
    aggregate = trajectories_from(MinariDataset(tmp_path / "run" / DATASET_DIR), "aggregate", env)
    cut = [actions_cut(t) for t in aggregate]  # read back from the Minari aggregate, as a resumed run sees it
    assert any(cut), "the simulated person should have handed back at least once"
    assert not all(cut)  # round 1's whole episodes (and stretches that ran to an episode's end) are padded there
    assert all(chunk_start_mask(t).all() for t in aggregate)  # every step starts a window
    assert all(rollout_seed(t) is not None for t in aggregate)  # the rollout each stretch came from, for the split
    monkeypatch.setattr(DAgger, "collect_round", original)
    results = DAgger(env, None, config, progress=False).train()
    assert len(results["rounds"]) == 3


def test_an_ensemble_means_its_members_measures_their_spread_and_round_trips(tmp_path):
    ensemble = EnsemblePolicy([_constant([-0.5, 0.0]), _constant([0.5, 0.0])])
    np.testing.assert_allclose(ensemble.predict(np.zeros(3, np.float32))[0], [-0.5, 0.0])  # the first member acts
    averaged = EnsemblePolicy(ensemble.members, combine="mean")
    np.testing.assert_allclose(averaged.predict(np.zeros(3, np.float32))[0], [0.0, 0.0])
    three = EnsemblePolicy([_constant([0.9, 0.0]), _constant([0.1, 0.0]), _constant([0.2, 0.0])], combine="medoid")
    np.testing.assert_allclose(three.predict(np.zeros(3, np.float32))[0], [0.2, 0.0])  # closest to the others
    actions = ensemble.member_actions(np.zeros((1, 3), np.float32))
    assert ensemble.disagreement(actions)[0] == pytest.approx(np.sqrt(0.25 / 2))
    votes = EnsemblePolicy([FunctionPolicy(lambda s, a=a: a, OBS, spaces.Discrete(3)) for a in (2, 2, 1)])
    assert int(votes.predict(np.zeros(3, np.float32))[0]) == 2

    from il_toolkit.policies.mlp import MLPPolicy

    members = [MLPPolicy(OBS, BOX, hidden_sizes=[8]) for _ in range(2)]
    saved = EnsemblePolicy(members, combine="mean").save(tmp_path / "ensemble")
    restored = load(saved)
    assert isinstance(restored, EnsemblePolicy) and len(restored.members) == 2 and restored.combine_rule == "mean"
    obs = np.ones(3, np.float32)
    np.testing.assert_allclose(restored.predict(obs)[0], EnsemblePolicy(members, combine="mean").predict(obs)[0],
                               atol=1e-6)


def test_novelty_and_risk_models():
    states = np.random.default_rng(0).normal(size=(200, 3))
    index = NoveltyIndex(lambda x: x, states)
    assert index(states[0]) == pytest.approx(0.0)
    assert index(np.array([50.0, 50.0, 50.0])) > 10 * np.median(index.distances(states, leave_one_out=True))
    np.testing.assert_allclose(failure_targets(3, True, 0.5), [0.25, 0.5, 1.0])
    assert failure_targets(3, False, 0.5).sum() == 0
    # risk is high where the rollouts failed (x > 0) and low where they succeeded
    x = np.random.default_rng(1).uniform(-1, 1, size=(400, 3))
    risk = RiskModel(lambda s: s, BOX, hidden=(32,), seed=0)
    risk.fit(x, np.zeros((400, 2)), (x[:, 0] > 0).astype(float), steps=400)
    assert risk(np.array([0.8, 0, 0]), np.zeros(2)) > 0.8 > 0.2 > risk(np.array([-0.8, 0, 0]), np.zeros(2))
    assert threshold_for_rate(np.arange(100), 0.1) == pytest.approx(89.1)


def test_bad_variant_settings_are_refused_with_the_choices():
    with pytest.raises(ConfigError, match="dagger, hg_dagger, ensemble_dagger, thrifty_dagger"):
        ILConfig(dagger_variant="safe_dagger")
    with pytest.raises(ConfigError, match=r"\(0, 2\]"):
        ILConfig(dagger_intervention_threshold=3.0)
    with pytest.raises(ConfigError, match=r"\(0, 1\]"):
        ILConfig(dagger_target_query_rate=0.0)
    with pytest.raises(ConfigError, match=">= 2"):
        ILConfig(dagger_ensemble_size=1)


def test_hg_dagger_labels_only_where_the_person_acts_and_records_the_account(tmp_path):
    env = make_env("il_toolkit/PushT-v0", obs_type="state", max_episode_steps=30)
    config = _config(tmp_path, dagger_variant="hg_dagger", policy_type="mlp", dagger_intervention_threshold=0.05)
    results = DAgger(env, None, config, progress=False).train()
    labels = results["labels"]
    assert labels["labels"] == results["expert_labels"] < labels["expert_steps"] + labels["learner_steps"] == 120
    assert labels["interventions"] > 0 and labels["learner_steps"] > 0
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["labels"]["labels"] == labels["labels"] and run["dagger_variant"] == "hg_dagger"
    assert all("round/context_switches" in r and "round/expert_share" in r for r in results["rounds"])


def test_ensemble_and_thrifty_dagger_train_and_keep_an_ensemble(tmp_path):
    env = make_env("il_toolkit/PushT-v0", obs_type="state", max_episode_steps=30)
    for variant in ("ensemble_dagger", "thrifty_dagger"):
        config = _config(tmp_path / variant, dagger_variant=variant, policy_type="mlp", dagger_ensemble_size=2,
                         dagger_target_query_rate=0.3)
        trainer = DAgger(env, None, config, progress=False)
        results = trainer.train()
        best = load(results["policy_path"])
        assert isinstance(best, EnsemblePolicy) and len(best.members) == 2
        first, second = results["rounds"]
        assert first["round/expert_share"] == 1.0  # an ensemble fitted on nothing defers to the expert
        assert np.isfinite(second["round/threshold_disagreement"])
        # the thresholds send the target share of the last round's states to the expert, split between two criteria
        query = trainer.query
        states = query.visited if query.visited is not None else query.aggregate_states
        spread = best.disagreement(best.member_actions(states))
        assert np.mean(spread > query.calibrate(trainer.bc.policy)["disagreement"]) == pytest.approx(0.15, abs=0.05)
        if variant == "thrifty_dagger":
            assert (tmp_path / variant / "run" / "risk_data.npz").exists()


def test_a_label_budget_holds_a_gated_variant_to_its_labels(tmp_path):
    env = make_env("il_toolkit/PushT-v0", obs_type="state", max_episode_steps=30)
    config = _config(tmp_path, dagger_variant="hg_dagger", policy_type="mlp", dagger_label_budget=45,
                     dagger_iterations=5)
    results = DAgger(env, None, config, progress=False).train()
    assert results["expert_labels"] == 45


def test_a_failing_expert_drops_the_round_and_nothing_from_it_is_aggregated(tmp_path, capsys):
    env = make_env("il_toolkit/PushT-v0", obs_type="state", max_episode_steps=20)
    expert = FunctionPolicy(lambda s: np.array([900.0, 0.0]), env.observation_space, env.action_space)
    config = _config(tmp_path, policy_type="mlp")
    with pytest.raises(ExpertFailure, match="not an action of"):
        DAgger(env, expert, config, progress=False).train()
    assert "round 1 dropped" in capsys.readouterr().err
    state = json.loads((tmp_path / "run" / "state.json").read_text())
    assert state["episodes"] == 0 and all("dropped" in r for r in state["rounds"])


def test_a_gated_run_resumes_with_its_label_count(tmp_path, monkeypatch):
    env = make_env("il_toolkit/PushT-v0", obs_type="state", max_episode_steps=30)
    config = _config(tmp_path, dagger_variant="hg_dagger", policy_type="mlp", dagger_iterations=3)
    original = _fail_rounds(monkeypatch, {2: KeyboardInterrupt()})
    with pytest.raises(KeyboardInterrupt):
        DAgger(env, None, config, progress=False).train()
    state = json.loads((tmp_path / "run" / "state.json").read_text())
    spent = sum(r["round/expert_labels"] for r in state["rounds"])
    metrics = tmp_path / "run" / "metrics.jsonl"
    with metrics.open("a") as f:  # what a round killed in the middle of its fit leaves behind
        f.write('{"step": 5, "train/loss": 9.0, "epoch": 1}\n{"step": 6, "train/lo')
    monkeypatch.setattr(DAgger, "collect_round", original)
    results = DAgger(env, None, config, progress=False).train()
    assert [r["round"] for r in results["rounds"]] == [1, 2, 3]
    assert results["rounds"][1]["expert_labels"] == spent
    records = [json.loads(line) for line in metrics.read_text().splitlines()]
    assert [r["round"] for r in records if "round" in r] == [1, 2, 3]  # one record per round
    assert not any(r.get("train/loss") == 9.0 for r in records)  # the killed round's epochs are gone


def test_the_command_line_gives_gated_variants_settings_that_suit_the_env():
    from il_toolkit.cli_flags import harmonise
    from il_toolkit.train.il.cli import build_dagger_parser, given_flags, interactive_defaults

    given = given_flags(["--env", "PushT-v0", "--dagger_variant", "hg_dagger", "--bc_epochs=3", "--no-task_frame"],
                        harmonise(build_dagger_parser()))
    assert {"bc_epochs", "task_frame", "dagger_variant", "env"} <= given
    pusht = make_env("il_toolkit/PushT-v0")
    config = interactive_defaults(pusht, ILConfig.dagger(dagger_variant="hg_dagger", bc_epochs=3), given)
    assert (config.policy_type, config.bc_epochs, config.batch_size) == ("flow", 3, 256)  # the flag given wins
    plain = interactive_defaults(pusht, ILConfig.dagger(), frozenset())
    assert plain == ILConfig.dagger()  # plain DAgger keeps its documented defaults
    cartpole = interactive_defaults(make_env("CartPole-v1"), ILConfig.dagger(dagger_variant="hg_dagger"), frozenset())
    assert cartpole.policy_type == "auto" and cartpole.dagger_episodes_per_iter == 5
    hg = ILConfig.dagger(dagger_variant="hg_dagger")
    insertion = interactive_defaults(make_env("il_toolkit/AlohaInsertion-v0"), hg, frozenset({"bc_epochs"}))
    assert (insertion.policy_type, insertion.action_chunk_size, insertion.dagger_warm_start) == ("flow", 8, True)
    assert insertion.bc_epochs == hg.bc_epochs  # the env's own settings, the flags given still win
    mlp = interactive_defaults(make_env("AlohaInsertion-v0"), hg.replace(policy_type="mlp"), frozenset({"policy_type"}))
    assert (mlp.policy_type, mlp.action_chunk_size, mlp.bc_epochs) == ("mlp", 1, 50)  # a learner named: the kind's rest
    transfer = interactive_defaults(make_env("il_toolkit/AlohaTransferCube-v0"), hg, frozenset())
    assert (transfer.policy_type, transfer.action_chunk_size) == ("mlp", hg.action_chunk_size)


def test_review_cases_ensemble_members_start_apart_and_switches_balance(tmp_path):
    env = make_env("il_toolkit/PushT-v0", obs_type="state")
    trainer = DAgger(env, None, _config(tmp_path, dagger_variant="ensemble_dagger", policy_type="mlp",
                                        dagger_ensemble_size=3), progress=False)
    obs = np.stack([env.reset(seed=s)[0] for s in range(5)])
    assert np.all(trainer.bc.policy.disagreement(trainer.bc.policy.member_actions(obs)) > 0)
    with pytest.raises(ValueError, match="use hg_dagger or dagger"):
        DAgger(make_env("il_toolkit/PushT-v0", obs_type="pixels_agent_pos"), None,
               _config(tmp_path / "pix", dagger_variant="ensemble_dagger"), progress=False)
    # the expert takes over at the first step and hands back: one intervention, one hand-back
    always_doubt = EnsemblePolicy([_constant([-0.9, 0.0]), _constant([0.9, 0.0])])
    gate = EnsembleGate(always_doubt, disagreement_threshold=0.5)
    actor = InteractiveActor(_constant([0.0, 0.0]), always_doubt, gate)
    actor.reset()
    actor.predict(np.zeros(3, np.float32))
    gate.disagreement_threshold = 10.0
    actor.predict(np.zeros(3, np.float32))
    assert (actor.account.interventions, actor.account.hand_backs) == (1, 1)


def test_given_flags_follow_the_parser():
    from il_toolkit.cli_flags import harmonise
    from il_toolkit.train.il.cli import build_dagger_parser, given_flags

    parser = harmonise(build_dagger_parser())
    given = given_flags(["--no_wandb", "--dagger_episodes", "3", "--bc-epochs", "2"], parser)
    assert {"use_wandb", "dagger_episodes_per_iter", "bc_epochs"} <= given


def test_a_run_resumes_after_a_dropped_round_with_its_records(tmp_path, monkeypatch):
    env = make_env("il_toolkit/PushT-v0", obs_type="state", max_episode_steps=20)
    config = _config(tmp_path, dagger_variant="hg_dagger", policy_type="flow", dagger_iterations=3)
    original = _fail_rounds(monkeypatch, {0: ExpertFailure("the expert raised RuntimeError: test"),
                                          2: KeyboardInterrupt()})
    with pytest.raises(KeyboardInterrupt):
        DAgger(env, None, config, progress=False).train()
    monkeypatch.setattr(DAgger, "collect_round", original)
    results = DAgger(env, None, config, progress=False).train()  # round 1 saved no policy: resume must not need one
    assert [("dropped" in r) for r in results["rounds"]] == [True, False, False]
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["round"] for r in records if "pc_success" in r] == [2, 3]


def test_rounds_start_from_new_resets_never_a_demonstrated_one(tmp_path, monkeypatch):
    import il_toolkit.train.il.dagger as dagger_module
    from il_toolkit.train.il.common import demonstration_seeds

    started = []
    original = dagger_module.rollout_episode

    def recording(actor, env, seed):
        started.append(seed)
        return original(actor, env, seed)

    monkeypatch.setattr(dagger_module, "rollout_episode", recording)
    env = make_env("il_toolkit/PushT-v0", obs_type="state", max_episode_steps=10)
    config = _config(tmp_path, policy_type="mlp", num_expert_episodes=3, seed=1)
    DAgger(env, None, config, progress=False).train()
    assert len(started) == len(set(started)) == 4  # 2 rounds of 2 episodes
    assert not set(started) & set(demonstration_seeds(config, 3))
    assert all(10_000 <= s < 20_000 for s in started)  # within training seed 1's stride, below evaluation's seeds
    with pytest.raises(ConfigError, match="at most 5000"):
        ILConfig.dagger(dagger_iterations=100, dagger_episodes_per_iter=51)
    with pytest.raises(ConfigError, match="num_expert_episodes must be at most 5000"):
        ILConfig.dagger(num_expert_episodes=5001)
