"""Instructions that decide what is right: the two-target PushT, goal frames, the grounder and the policy."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from il_toolkit.envs import make_env
from il_toolkit.envs.pusht_two_target import HELD_OUT_PHRASINGS, TARGETS, TRAIN_PHRASINGS
from il_toolkit.experts import make_expert
from il_toolkit.experts.pusht import expert_target
from il_toolkit.features.goals import GOAL_FRAMES
from il_toolkit.policies import load
from il_toolkit.policies.instructed import InstructedPolicy, MissingInstructionError
from il_toolkit.policies.mlp import MLPPolicy
from il_toolkit.rollout import rollout_episode
from il_toolkit.train.datasets.collect import collect_dataset
from il_toolkit.train.datasets.minari_io import DatasetError, load_instructions, load_states
from il_toolkit.train.instructed import fit_grounder, goal_table, instructed_demonstrations, train_instructed_policy

ENV = "il_toolkit/PushTTwoTarget-v0"


@pytest.fixture(scope="module")
def two_target_dataset():
    collect_dataset(ENV, "test/two-target-v0", 4, progress=False)
    return "test/two-target-v0"


def test_the_instruction_names_the_target_and_the_observation_does_not():
    env = make_env(ENV)
    seen = {}
    for seed in range(12):
        obs, info = env.reset(seed=seed)
        assert obs.shape == (5,)
        side = info["target"]
        assert side in info["instruction"] and info["instruction"] in [t.format(side=side) for t in TRAIN_PHRASINGS]
        np.testing.assert_array_equal(env.unwrapped.goal_pose, TARGETS[side])
        np.testing.assert_array_equal(env.unwrapped.state_vector()[5:], TARGETS[side])
        seen[side] = obs
    assert set(seen) == {"left", "right"}
    _, info = make_env(ENV, instructions="held_out").reset(seed=0)
    assert info["instruction"] in [t.format(side=info["target"]) for t in HELD_OUT_PHRASINGS]
    assert make_env(ENV, instructions="withheld").reset(seed=0)[1]["instruction"] == ""
    _, info = env.reset(seed=0, options={"target": "right"})
    assert info["target"] == "right"


def test_bad_env_arguments_are_refused():
    with pytest.raises(ValueError, match="only obs_type='state'"):
        make_env(ENV, obs_type="pixels")
    with pytest.raises(ValueError, match="unknown instructions"):
        make_env(ENV, instructions="some")
    with pytest.raises(ValueError, match="unknown target"):
        make_env(ENV).reset(seed=0, options={"target": "middle"})


def test_the_expert_reaches_the_instructed_target_and_the_episode_ends_on_either():
    env = make_env(ENV)
    expert = make_expert(ENV, env)
    for target in TARGETS:
        env.unwrapped.fixed_target = target
        episode = rollout_episode(expert, env, 3)
        assert episode.success and episode.terminated and not episode.final_info["reached_other"]
    # pushing to the other target ends the episode as a failure
    env.unwrapped.fixed_target = "left"
    env.reset(seed=3)
    wrong = make_expert(ENV, make_env(ENV, target="right"))
    wrong.env.reset(seed=3)
    episode_done, info = False, {}
    for _ in range(300):
        action, _ = wrong.predict(env.unwrapped.state_vector()[:5])
        _, _, terminated, truncated, info = env.step(action)
        if terminated or truncated:
            episode_done = terminated
            break
    assert episode_done and info["reached_other"] and not info["is_success"]


def test_the_pusht_goal_frame_moves_scenes_rigidly_so_the_expert_agrees():
    frame = GOAL_FRAMES["pusht"]
    rng = np.random.default_rng(0)
    states = np.c_[rng.uniform(180, 330, (40, 4)), rng.uniform(0, 2 * np.pi, 40)]
    goals = np.broadcast_to(np.array([176.0, 256.0, np.pi / 4 + 0.3]), (40, 3))
    moved = frame.encode(states, goals)
    np.testing.assert_allclose(frame.encode(np.c_[goals[:, :2], goals[:, :2], goals[:, 2]], goals)[0],
                               [256, 256, 256, 256, np.pi / 4])
    direct = np.stack([expert_target(s, goal=goals[0]) for s in states])
    via_frame = frame.decode(np.stack([expert_target(s) for s in moved]), goals)
    agree = np.linalg.norm(direct - via_frame, axis=1) < 1e-6
    assert agree.mean() >= 0.9  # the rest differ only where the board's edge limits the expert's contacts
    np.testing.assert_allclose(frame.actions_to(via_frame, goals), np.stack([expert_target(s) for s in moved]))


def test_collect_records_each_episodes_instruction_and_goal(two_target_dataset):
    instructions, states = load_instructions(two_target_dataset), load_states(two_target_dataset)
    assert len(instructions) == len(states) == 4
    for text, s in zip(instructions, states):
        side = "left" if "left" in text else "right"
        np.testing.assert_array_equal(s[:, 5:], np.broadcast_to(TARGETS[side], (len(s), 3)))
    collect_dataset("il_toolkit/PushT-v0", "test/one-target-v0", 1, progress=False)
    with pytest.raises(DatasetError, match="records no instruction"):
        load_instructions("test/one-target-v0")


def test_goal_table_and_demonstrations_in_the_goal_frame(two_target_dataset):
    table, index = goal_table(np.array([[1.0, 2.0, 0.5], [3.0, 2.0, 0.5], [1.0, 2.0, 0.5]]))
    assert table.shape == (2, 3) and list(index) == [0, 1, 0]
    demos = instructed_demonstrations(two_target_dataset, make_env(ENV))
    assert demos.goal_frame == "pusht" and len(demos.in_goal_frame) == 4
    for demo, moved, i in zip(demos.trajectories, demos.in_goal_frame, demos.goal_index):
        goal = np.broadcast_to(demos.goals[i], (len(demo.obs), 3))
        np.testing.assert_allclose(moved.obs, GOAL_FRAMES["pusht"].encode(demo.obs, goal))
    with pytest.raises(ValueError, match="declares no goal_frame"):
        instructed_demonstrations(two_target_dataset, make_env("il_toolkit/PushT-v0"))


def test_the_grounder_learns_which_goal_an_instruction_names():
    texts = [t.format(side=side) for t in TRAIN_PHRASINGS for side in ("left", "right")]
    index = np.array([0 if "left" in t else 1 for t in texts])
    grounder, history = fit_grounder(texts, index, np.array([TARGETS["left"], TARGETS["right"]]), steps=100,
                                     batch_size=12, progress=False)
    chosen, goals = grounder.ground(texts)
    assert list(chosen) == list(index), history.final_train_loss
    np.testing.assert_array_equal(goals[0], TARGETS["left" if "left" in texts[0] else "right"])
    assert grounder.is_seen(texts[0]) and not grounder.is_seen("go left")


def test_an_instructed_policy_acts_toward_the_goal_it_is_told_and_saves(two_target_dataset, tmp_path, caplog):
    env = make_env(ENV)
    demos = instructed_demonstrations(two_target_dataset, env)
    state_policy = MLPPolicy(env.observation_space, demos.action_space, hidden_sizes=(16,))
    torch.manual_seed(0)
    policy, report = train_instructed_policy(demos, state_policy, env.observation_space, env.action_space, steps=100,
                                             batch_size=4, learning_rate=3e-3, progress=False)
    assert report["steps"] == 100 and report["train_accuracy"] == 1.0
    obs, info = env.reset(seed=0)
    with pytest.raises(MissingInstructionError, match="no instruction since its last reset"):
        policy.predict(obs)  # never a guess
    moves = {}
    for side in TARGETS:
        policy.set_instruction(f"push the T onto the {side} target")
        assert np.array_equal(policy.goal, TARGETS[side])
        moves[side] = policy.predict(obs)[0]
    policy.reset()
    with pytest.raises(MissingInstructionError, match="no instruction"):
        policy.predict(obs)  # a new episode does not inherit the last one's instruction
    # the state policy acts in the moved scene, whose bounds hold every moved board corner
    assert policy.state_policy.action_space.low[0] < 0 and policy.state_policy.action_space.high[0] > 512
    policy.set_instruction("push the T onto the right target")
    path = policy.save(tmp_path / "instructed")
    restored = load(path)
    assert isinstance(restored, InstructedPolicy) and restored.goal_frame == "pusht"
    assert restored.state_policy.action_space == policy.state_policy.action_space
    restored.set_instruction("push the T onto the right target")
    np.testing.assert_allclose(restored.predict(obs)[0], moves["right"], atol=1e-4)
    with caplog.at_level(logging.INFO, logger="il_toolkit.policies.instructed"):
        restored.set_instruction("shove it rightwards")
    assert "was not seen in training" in caplog.text
    episode = rollout_episode(restored, make_env(ENV, instructions="held_out"), 5)
    assert restored.instruction == episode.instruction and episode.instruction in [
        t.format(side=side) for t in HELD_OUT_PHRASINGS for side in TARGETS]


def test_train_flow_on_a_goal_by_instruction_dataset_saves_an_instructed_policy(two_target_dataset, tmp_path, capsys):
    import json

    from il_toolkit.cli import main

    out = tmp_path / "run"
    assert main(["train", "flow", "--dataset", two_target_dataset, "--steps", "20", "--grounder_steps", "10",
                 "--eval_episodes", "1", "--no_wandb", "--output_dir", str(out)]) == 0
    policy = load(out / "best")
    assert isinstance(policy, InstructedPolicy)
    assert policy.state_policy.checkpoint_config()["features"]["frame"] == "pusht_push"  # the one-target env's
    assert json.loads((out / "grounder.json").read_text())["steps"] == 10
    evaluation = json.loads((out / "eval.json").read_text())
    assert evaluation["env_id"] == "il_toolkit/PushTTwoTarget-v0" and evaluation["aggregates"]["n_episodes"] == 1
    with pytest.raises(SystemExit, match="drop --estimate_state"):
        main(["train", "flow", "--dataset", two_target_dataset, "--estimate_state", "--no_wandb",
              "--output_dir", str(tmp_path / "other")])


def test_chunked_datasets_give_each_episodes_own_instruction(two_target_dataset):
    from il_toolkit.train.datasets.lerobot_dataset import ChunkedEpisodeDataset

    data = ChunkedEpisodeDataset(two_target_dataset, "all", chunk_size=2)
    assert [e["task"] for e in data.episodes] == load_instructions(two_target_dataset)
    assert data[0]["task"] == data.episodes[0]["task"]
    forced = ChunkedEpisodeDataset(two_target_dataset, "all", chunk_size=2, instruction="go")
    assert forced[0]["task"] == "go"  # an instruction given by the caller wins


def test_the_benchmark_method_trains_an_instructed_policy(two_target_dataset, tmp_path):
    from il_toolkit.bench.methods import METHOD_REGISTRY, TrainRequest

    request = TrainRequest(env_id=ENV, dataset_id=two_target_dataset, n_demos=4, seed=0,
                           budget={"flow_steps": 5, "grounder_steps": 3}, output_dir=str(tmp_path))
    outcome = METHOD_REGISTRY.get("flow_instructed")(request)
    assert isinstance(load(outcome.policy_path), InstructedPolicy)
    assert outcome.extra["grounder_steps"] == 3 and outcome.expert_labels > 0


def test_an_instructed_policy_acts_as_its_state_policy_would_at_the_named_goal():
    """The composition itself: with the scripted expert as the state policy (it pushes to gym-pusht's
    target), the instructed policy's action is the expert's for the instructed target."""
    from il_toolkit.experts.pusht import PushTExpert
    from il_toolkit.model.grounding import GrounderConfig, InstructionGrounder

    env = make_env(ENV)
    grounder = InstructionGrounder(GrounderConfig(goals=(tuple(TARGETS["left"]), tuple(TARGETS["right"]))))
    policy = InstructedPolicy(grounder, PushTExpert(), "pusht", env.observation_space, env.action_space)
    rng = np.random.default_rng(0)
    states = np.c_[rng.uniform(180, 330, (30, 4)), rng.uniform(0, 2 * np.pi, 30)]
    for index, side in enumerate(TARGETS):
        policy.reset()
        policy.set_instruction(side)
        policy.goal_index, policy.goal = index, TARGETS[side]  # whatever the untrained grounder says
        acted = policy.predict(states)[0]
        expected = np.stack([expert_target(s, goal=TARGETS[side]) for s in states])
        assert np.mean(np.linalg.norm(acted - expected, axis=1) < 1e-3) >= 0.9


def test_the_harness_timing_wrapper_hands_the_instruction_on(two_target_dataset, tmp_path):
    from il_toolkit.bench.trial import TimedPolicy
    from il_toolkit.policies.mlp import MLPPolicy as Plain

    env = make_env(ENV)
    demos = instructed_demonstrations(two_target_dataset, env)
    policy, _ = train_instructed_policy(demos, Plain(env.observation_space, demos.action_space, hidden_sizes=(8,)),
                                        env.observation_space, env.action_space, steps=2, progress=False)
    timed = TimedPolicy(policy)
    episode = rollout_episode(timed, make_env(ENV, target="right"), 0)
    assert policy.instruction == episode.instruction and "right" in episode.instruction
    assert not hasattr(TimedPolicy(Plain(env.observation_space, env.action_space)), "set_instruction")


def test_learners_that_cannot_read_a_per_episode_instruction_refuse_it(two_target_dataset):
    from il_toolkit.model.vla import VLAModel
    from il_toolkit.train.datasets.lerobot_dataset import ChunkedEpisodeDataset
    from il_toolkit.train.datasets.multitask import MultiTaskDataset
    from il_toolkit.train.il.dagger import VLADAgger

    env = make_env(ENV)
    vla = VLAModel(observation_space=env.observation_space, action_space=env.action_space, cameras=(), state_dim=5,
                   chunk_size=1, hidden_size=32, llm_layers=1, n_heads=2, head_dim=32, head_layers=1)
    with pytest.raises(ValueError, match="draws a new instruction every episode"):
        VLADAgger(ENV, vla)
    collect_dataset("il_toolkit/PushT-v0", "test/one-target-mt-v0", 1, progress=False)
    with pytest.raises(DatasetError, match="records an instruction per episode"):
        MultiTaskDataset([ChunkedEpisodeDataset(two_target_dataset, "all", 1),
                          ChunkedEpisodeDataset("test/one-target-mt-v0", "all", 1)])


def test_evaluating_an_instructed_policy_where_no_instruction_comes_is_a_clear_error(two_target_dataset, tmp_path, capsys):
    from il_toolkit.cli import main

    env = make_env(ENV)
    demos = instructed_demonstrations(two_target_dataset, env)
    policy, _ = train_instructed_policy(demos, MLPPolicy(env.observation_space, demos.action_space, hidden_sizes=(8,)),
                                        env.observation_space, env.action_space, steps=2, progress=False)
    path = policy.save(tmp_path / "instructed")
    assert main(["eval", "--policy", str(path), "--env", "PushT-v0", "--episodes", "1"]) == 2
    assert "gives info['instruction'] at reset" in capsys.readouterr().err
