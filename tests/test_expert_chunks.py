"""DAgger's chunk labels: the expert's own chunk from a learner's state, acted out in a branch of
the simulation (env snapshot and restore), the windows a learner trains on, and the round trip
through the aggregate's Minari dataset."""

from types import SimpleNamespace

import numpy as np
import pytest

from il_toolkit import ILConfig
from il_toolkit.envs import make_env
from il_toolkit.experts import make_expert
from il_toolkit.policies import FunctionPolicy
from il_toolkit.train.datasets.minari_io import actions_cut, chunk_start_mask
from il_toolkit.train.il.expert_chunks import ExpertChunks, can_branch
from il_toolkit.train.il.gates import BetaGate
from il_toolkit.train.il.interactive import InteractiveActor

INSERTION = "il_toolkit/AlohaInsertion-v0"


@pytest.fixture(scope="module")
def insertion():
    env = make_env(INSERTION, max_episode_steps=40)
    return env, make_expert(INSERTION, env)


def _expert_steps(env, expert, observation, n):
    actions, observations = [], [observation]
    for _ in range(n):
        actions.append(np.asarray(expert.predict(observations[-1], deterministic=True)[0]))
        observations.append(env.step(actions[-1])[0])
    return np.stack(actions), np.stack(observations)


def test_a_restored_snapshot_replays_the_same_steps(insertion):
    env, expert = insertion
    observation, _ = env.reset(seed=3)
    saved = env.unwrapped.snapshot()
    actions, first = _expert_steps(env, expert, observation, 5)
    env.unwrapped.restore(saved)
    np.testing.assert_array_equal(env.unwrapped.state_vector(), observation)
    again = [observation] + [env.step(a)[0] for a in actions]
    np.testing.assert_array_equal(np.stack(again), first)
    with pytest.raises(ValueError, match="snapshot"):
        env.unwrapped.restore("not a snapshot")


def test_the_expert_shows_its_chunk_in_a_branch_and_the_episode_is_untouched(insertion):
    env, expert = insertion
    observation, _ = env.reset(seed=4)
    chunks = ExpertChunks(env, expert, horizon=4, every=2)
    segment = chunks.label(observation)
    assert len(segment.acts) == chunks.length == 5 and segment.obs.shape[0] == 6
    assert chunk_start_mask(segment).tolist() == [True, True, False, False, False]
    np.testing.assert_array_equal(env.unwrapped.state_vector(), observation)  # restored
    actions, observations = _expert_steps(env, expert, observation, 5)  # what the expert then really does
    np.testing.assert_array_equal(segment.acts, actions)
    np.testing.assert_array_equal(segment.obs, observations)
    cut = chunks.label(observations[-1], max_labels=3)
    assert len(cut.acts) == 3 and chunk_start_mask(cut).tolist() == [True, True, False]
    assert actions_cut(cut)  # its windows leave out the positions past the label budget


def test_an_env_or_expert_that_cannot_branch_is_refused_with_the_fix(insertion):
    env, expert = insertion
    pusht = make_env("il_toolkit/PushT-v0", obs_type="state")
    pusht_expert = make_expert("il_toolkit/PushT-v0", pusht)
    assert can_branch(env, expert) and not can_branch(pusht, pusht_expert)
    with_memory = FunctionPolicy(lambda s: np.asarray(expert.predict(s)[0]), env.observation_space, env.action_space)
    assert not can_branch(env, with_memory)  # not declared memoryless: a branch could change what it does next
    assert not can_branch(make_env(INSERTION, obs_type="pixels"), expert)  # a branch would render every step
    with pytest.raises(ValueError, match="dagger_chunk_labels='visited'"):
        ExpertChunks(pusht, pusht_expert, horizon=4, every=4)
    with pytest.raises(ValueError, match="every"):
        ExpertChunks(env, expert, horizon=4, every=5)


def test_the_actor_labels_chunks_where_the_learner_plans_and_keeps_to_the_label_limit(insertion):
    env, expert = insertion
    observation, _ = env.reset(seed=5)
    learner = FunctionPolicy(lambda s: np.asarray(expert.predict(s)[0]), env.observation_space, env.action_space)
    actor = InteractiveActor(expert, learner, BetaGate(0.0, np.random.default_rng(0)),
                             chunk_labels=ExpertChunks(env, expert, horizon=4, every=4), label_limit=10)
    for _ in range(8):
        observation = env.step(actor.predict(observation)[0])[0]
    assert [len(s.acts) for s in actor.chunk_segments] == [7]  # at step 0; at step 4 a whole chunk no longer fits
    assert actor.out_of_labels and actor.account.labels == actor.account.expert_queries == 7
    assert actor.labels == [None] * 8 and actor.account.learner_steps == 8  # no visited-state labels


def test_where_the_coin_gives_the_expert_a_plan_it_acts_until_the_next_and_every_plan_is_labelled(insertion):
    env, expert = insertion
    observation, _ = env.reset(seed=6)
    learner = FunctionPolicy(lambda s: np.zeros(14, np.float32), env.observation_space, env.action_space)
    actor = InteractiveActor(expert, learner, BetaGate(0.5, np.random.default_rng(1)),
                             chunk_labels=ExpertChunks(env, expert, horizon=4, every=4))
    for _ in range(24):
        observation = env.step(actor.predict(observation)[0])[0]
    held = np.asarray(actor.expert_acted).reshape(6, 4)
    assert (held == held[:, :1]).all() and 0 < held[:, 0].sum() < 6  # who acts is drawn once per plan
    assert len(actor.chunk_segments) == 6 and actor.account.labels == 42  # a branch at every plan, whoever acts
    assert actor.labels == [None] * 24  # the expert's executed actions replay its branches: no extra labels


def test_windows_start_only_where_a_stretch_allows():
    from il_toolkit.train.imitation_learning.windows import WindowDataset

    def trajectory(steps, starts=None):
        infos = None if starts is None else np.array([{"chunk_start": s} for s in starts])
        return SimpleNamespace(obs=np.arange(steps + 1, dtype=np.float32)[:, None], acts=np.ones((steps, 2), np.float32),
                               infos=infos)

    policy = SimpleNamespace(spec=SimpleNamespace(n_obs_steps=1, horizon=4), features=None,
                             observation_batch=lambda obs: {"observation.state": obs})
    windows = WindowDataset.from_trajectories([trajectory(6), trajectory(3, [False] * 3),
                                               trajectory(7, [True, True, True, True, False, False, False])], policy)
    assert len(windows) == 6 + 4  # the stretch with no start gives none
    np.testing.assert_array_equal(windows.obs_index[6:, 0].numpy(), [6, 7, 8, 9])  # the stretch's first four steps
    assert windows.batch(np.arange(len(windows)))["action"].shape == (10, 4, 2)
    with pytest.raises(ValueError, match="nothing to train on"):
        WindowDataset.from_trajectories([trajectory(3, [False] * 3)], policy)


def test_dagger_labels_a_chunked_learner_with_the_experts_chunks_on_aloha(tmp_path, monkeypatch):
    import minari

    from il_toolkit.train.datasets.minari_io import trajectories_from
    from il_toolkit.train.il.behavioral_cloning import BehavioralCloning
    from il_toolkit.train.il.dagger import DAgger

    env = make_env(INSERTION, max_episode_steps=24)
    config = ILConfig.dagger(dagger_iterations=2, dagger_episodes_per_iter=1, bc_epochs=1, batch_size=16,
                             eval_episodes=1, action_chunk_size=4, output_dir=str(tmp_path / "dagger"), use_wandb=False,
                             bc_validation_split=0.0)
    original_collect = DAgger.collect_round
    monkeypatch.setattr(DAgger, "collect_round", lambda self, i, *a: (_ for _ in ()).throw(KeyboardInterrupt)
                        if i == 1 else original_collect(self, i, *a))
    with pytest.raises(KeyboardInterrupt):  # killed in round 2: resumed from the dataset round 1 wrote
        DAgger(env, None, config, progress=False).train()
    monkeypatch.setattr(DAgger, "collect_round", original_collect)
    fitted = []
    original_fit = BehavioralCloning.fit_chunked

    def recording(self, train_demos, *args, **kwargs):
        fitted.append([chunk_start_mask(t) for t in train_demos])
        return original_fit(self, train_demos, *args, **kwargs)

    monkeypatch.setattr(BehavioralCloning, "fit_chunked", recording)
    trainer = DAgger(env, None, config, progress=False)
    assert trainer.chunk_labels.length == 7
    results = trainer.train()
    assert results["chunk_labels"] == "expert_chunks"
    first, second = results["rounds"]  # beta 1 (no learner: the expert acts and labels), then 0.5
    assert first["round/expert_labels"] == 24 and second["round/expert_labels"] == 6 * 7  # a branch at every plan
    episodes = trajectories_from(minari.MinariDataset(results["dataset_path"]), "aggregate")
    assert chunk_start_mask(episodes[0]).all() and len(episodes) == 1 + 6
    assert all(len(t.acts) == 7 and chunk_start_mask(t).tolist() == [True] * 4 + [False] * 3 for t in episodes[1:])
    assert [[int(m.sum()) for m in masks] for masks in fitted] == [[24] + [4] * 6]  # round 1's read back on resume


def test_chunk_labels_are_checked():
    from il_toolkit.train.il.dagger import DAgger

    with pytest.raises(ValueError, match="dagger_chunk_labels must be one of"):
        ILConfig.dagger(dagger_chunk_labels="sometimes").validate()
    with pytest.raises(ValueError, match="action_chunk_size above 1"):
        DAgger(make_env(INSERTION), None, ILConfig.dagger(dagger_chunk_labels="expert_chunks", use_wandb=False),
               progress=False)
    visited = DAgger(make_env(INSERTION), None, ILConfig.dagger(action_chunk_size=4, dagger_chunk_labels="visited",
                                                               use_wandb=False), progress=False)
    assert visited.chunk_labels is None and visited.chunk_labels_used == "visited"


def test_a_label_budget_stops_where_no_whole_chunk_fits(tmp_path):
    from il_toolkit.train.il.dagger import DAgger

    env = make_env(INSERTION, max_episode_steps=24)
    config = ILConfig.dagger(dagger_iterations=3, dagger_episodes_per_iter=1, bc_epochs=1, batch_size=16,
                             eval_episodes=1, action_chunk_size=4, output_dir=str(tmp_path / "dagger"), use_wandb=False,
                             bc_validation_split=0.0, dagger_label_budget=24 + 7 * 2 + 3)
    results = DAgger(env, None, config, progress=False).train()
    assert [r["round/expert_labels"] for r in results["rounds"]] == [24, 14]  # 3 labels left: no chunk fits
    assert results["expert_labels"] == 38
