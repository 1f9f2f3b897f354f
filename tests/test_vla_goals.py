"""A VLA that grounds the instruction to a goal and acts in that goal's frame (the two-target PushT)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from il_toolkit.config.training_config import ILConfig
from il_toolkit.envs import make_env
from il_toolkit.envs.pusht_two_target import TARGETS
from il_toolkit.model.components import BatchError
from il_toolkit.model.spec import ENV_STATE_KEY
from il_toolkit.model.vla import VLAModel
from il_toolkit.policies import load
from il_toolkit.policies.flow_policy import default_state_features
from il_toolkit.train.datasets.collect import collect_dataset
from il_toolkit.train.datasets.lerobot_dataset import ChunkedEpisodeDataset, collate, create_lerobot_dataloader
from il_toolkit.train.il.vla import VLABehavioralCloning

ENV_ID, DATASET = "il_toolkit/PushTTwoTarget-v0", "test/two-target-vla-v0"
SMALL = dict(hidden_size=32, llm_layers=1, n_heads=2, head_dim=32, mlp_width=64, mlp_layers=2, max_text_tokens=48,
             flow_steps=2, grounder_batch=8)


@pytest.fixture(autouse=True)
def _single_thread():
    torch.set_num_threads(1)
    torch.manual_seed(0)


@pytest.fixture(scope="module")
def two_target_data() -> ChunkedEpisodeDataset:
    collect_dataset(ENV_ID, DATASET, 6, progress=False)
    return ChunkedEpisodeDataset(DATASET, "all", chunk_size=1, environment_state=True)


def grounded_vla(data: ChunkedEpisodeDataset, **fields) -> VLAModel:
    features = default_state_features(make_env("il_toolkit/PushT-v0")).to_json()  # the frame's reference env
    return VLAModel.for_dataset(data, features=features, goal_env=make_env(ENV_ID), **{**SMALL, **fields})


def test_the_goal_table_and_instructions_come_from_the_recorded_episodes(two_target_data):
    spec = grounded_vla(two_target_data).config.goal_grounding
    assert spec["frame"] == "pusht" and spec["goal_dims"] == [5, 8]
    recorded = {tuple(np.round(g, 3)) for g in spec["grounder"]["goals"]}
    assert recorded <= {tuple(np.round(t, 3)) for t in TARGETS.values()} and recorded
    assert set(spec["grounder"]["instructions"]) == {e["task"] for e in two_target_data.episodes}


def test_moving_actions_into_a_goals_frame_and_back_is_the_identity(two_target_data):
    goals = grounded_vla(two_target_data).network.goals
    actions = torch.rand(3, 4, 2) * 500
    targets = np.stack([TARGETS["left"], TARGETS["right"], TARGETS["left"]])
    back = goals.actions_from_frame(goals.actions_to_frame(actions, targets), targets)
    np.testing.assert_allclose(back.numpy(), actions.numpy(), atol=1e-3)


def test_it_trains_the_grounder_in_the_loop_and_acts_on_the_instruction_alone(two_target_data, tmp_path):
    model = grounded_vla(two_target_data)
    before = [p.detach().clone() for p in model.network.goals.grounder.head.parameters()]
    config = ILConfig.behavioral_cloning(output_dir=str(tmp_path / "run"), batch_size=16, learning_rate=1e-3)
    result = VLABehavioralCloning(model, config, use_wandb=False, progress=False).train(
        create_lerobot_dataloader(two_target_data, batch_size=16), max_steps=3)
    after = list(model.network.goals.grounder.head.parameters())
    assert not all(torch.equal(b, a) for b, a in zip(before, after))  # the grounder learns in the VLA's loop
    _, metrics = model.network.compute_loss(collate([two_target_data[i] for i in range(8)]))
    assert {"action_loss", "grounding_loss"} <= set(metrics)
    env = make_env(ENV_ID)
    obs, info = env.reset(seed=5)
    policy = load(result["policy_path"])
    for p in (policy, model):
        p.set_instruction(info["instruction"])
        p.set_seed(0)
    np.testing.assert_allclose(policy.predict(obs)[0], model.predict(obs)[0], atol=1e-4)


def test_the_grounded_goal_decides_the_frame_and_the_recorded_state_is_never_read(two_target_data, monkeypatch):
    model = grounded_vla(two_target_data)
    batch = collate([two_target_data[i] for i in range(4)])
    goals = model.network.goals
    plans = {}
    for side in ("left", "right"):
        monkeypatch.setattr(goals, "ground", lambda texts, side=side: np.repeat(TARGETS[side][None], len(texts), 0))
        for recorded in (batch[ENV_STATE_KEY], torch.full_like(batch[ENV_STATE_KEY], 1e4)):
            model.set_seed(0)
            plans.setdefault(side, []).append(model.predict_chunk({**batch, ENV_STATE_KEY: recorded}))
        np.testing.assert_array_equal(*plans[side])
    assert not np.allclose(plans["left"][0], plans["right"][0])


def test_a_head_that_predicts_its_training_targets_gives_back_the_demonstrated_actions(two_target_data, monkeypatch):
    """The moves into the goal's frame, the features, the normaliser and the moves back fit together."""
    model = grounded_vla(two_target_data, action_head="regression")
    VLABehavioralCloning(model, ILConfig.behavioral_cloning(output_dir="unused"), use_wandb=False,
                         progress=False).prepare(two_target_data)
    batch = collate([two_target_data[i] for i in range(0, 60, 10)])
    network = model.network
    goals = network.goals.recorded(network.recorded_state(batch))
    state = network.goals.states_to_frame(network.raw_state(batch), goals)
    actions = network.goals.actions_to_frame(batch["action"].float(), goals)
    target = network.normalizer.normalize_action(network.encode_actions(state, actions, [""] * len(goals)))
    monkeypatch.setattr(network, "_regress", lambda memory: target)
    monkeypatch.setattr(network.goals, "ground", lambda texts: goals)
    np.testing.assert_allclose(model.predict_chunk(batch), batch["action"].numpy(), atol=1e-2)


def test_training_without_the_recorded_goal_names_the_fix(two_target_data):
    without = ChunkedEpisodeDataset(DATASET, "all", chunk_size=1)
    with pytest.raises(ValueError, match="environment_state=True"):
        grounded_vla(without)
    batch = collate([two_target_data[i] for i in range(4)])
    del batch[ENV_STATE_KEY]
    with pytest.raises(BatchError, match="environment_state=True"):
        grounded_vla(two_target_data).network.compute_loss(batch)
    with pytest.raises(ValueError, match="declares no goal_frame"):
        VLAModel.for_dataset(two_target_data, goal_env=make_env("il_toolkit/PushT-v0"), **SMALL)


def test_dagger_and_gail_refuse_it_and_a_wrong_state_size_is_refused(two_target_data):
    from il_toolkit.train.il.dagger import VLADAgger

    model = grounded_vla(two_target_data)
    with pytest.raises(ValueError, match="goal grounding to learn from"):
        VLADAgger(make_env("il_toolkit/PushT-v0"), model, ILConfig.dagger(output_dir="unused"))
    with pytest.raises(ValueError, match="5 entries"):
        model.config.replace(state_dim=7, features=None)


def test_vla_bc_continues_a_grounded_vla_on_its_dataset(two_target_data, tmp_path):
    from il_toolkit.train.il.cli import run_vla

    path = grounded_vla(two_target_data).save(tmp_path / "start")
    config = ILConfig.behavioral_cloning(bc_epochs=1, batch_size=64, eval_episodes=1, bc_validation_split=0.0,
                                         output_dir=str(tmp_path / "more"))
    result = run_vla("bc", config, model_path=str(path), dataset=DATASET, env_id=ENV_ID, progress=False)
    assert load(result["policy_path"]).network.goals is not None and result["eval"]["n_episodes"] == 1
