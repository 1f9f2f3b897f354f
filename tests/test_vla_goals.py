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


def grounded_vla(data: ChunkedEpisodeDataset) -> VLAModel:
    features = default_state_features(make_env("il_toolkit/PushT-v0")).to_json()  # the frame's reference env
    return VLAModel.for_dataset(data, features=features, goal_env=make_env(ENV_ID), **SMALL)


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
    config = ILConfig.behavioral_cloning(output_dir=str(tmp_path / "run"), batch_size=16, learning_rate=1e-3)
    result = VLABehavioralCloning(model, config, use_wandb=False, progress=False).train(
        create_lerobot_dataloader(two_target_data, batch_size=16), max_steps=3)
    _, metrics = model.network.compute_loss(collate([two_target_data[i] for i in range(8)]))
    assert metrics["grounding_loss"] > 0
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
