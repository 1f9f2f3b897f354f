"""One VLA over several tasks: MultiTaskDataset slots, masked loss and state, task views."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gymnasium import spaces
from imitation.data.types import DictObs, Trajectory

from il_toolkit.config.training_config import ILConfig
from il_toolkit.model.vla import VLAModel
from il_toolkit.policies import load
from il_toolkit.train.datasets.lerobot_dataset import create_lerobot_dataloader
from il_toolkit.train.datasets.minari_io import DatasetError
from il_toolkit.train.datasets.multitask import MultiTaskDataset, dataset_statistics
from il_toolkit.train.il.vla import TrajectoryChunkDataset, VLABehavioralCloning

TINY = dict(hidden_size=32, llm_layers=1, n_heads=2, vision_grid=2, vision_width=8, head_dim=32, head_layers=1,
            max_text_tokens=24, image_shift=0, flow_steps=3)
PUSH, LIFT = "push the block", "lift the cube"


@pytest.fixture(autouse=True)
def _single_thread():
    torch.set_num_threads(1)
    torch.manual_seed(0)


def trajectories(state_dim: int, action_dim: int, offset: float, n: int = 3, steps: int = 6, size: int = 16,
                 seed: int = 0) -> list[Trajectory]:
    rng = np.random.default_rng(seed)
    result = []
    for _ in range(n):
        state = rng.uniform(-1, 1, (steps + 1, state_dim)) + offset
        obs = DictObs({"agent_pos": state, "pixels": rng.integers(0, 255, (steps + 1, size, size, 3), dtype=np.uint8)})
        acts = np.tanh(state[:-1, :1]).repeat(action_dim, axis=1) * 10 + offset
        result.append(Trajectory(obs=obs, acts=acts.astype(np.float32), infos=None, terminal=True))
    return result


def two_tasks(size: int = 16) -> MultiTaskDataset:
    push = TrajectoryChunkDataset(trajectories(2, 2, offset=100.0), chunk_size=3, instruction=PUSH)
    lift = TrajectoryChunkDataset(trajectories(3, 4, offset=-1.0, size=size, seed=1), chunk_size=3, instruction=LIFT)
    return MultiTaskDataset([push, lift])


def test_each_task_has_its_own_slots():
    data = two_tasks()
    assert data.task_slots == {PUSH: {"state": [0, 2], "action": [0, 2]}, LIFT: {"state": [2, 5], "action": [2, 6]}}
    assert (data.state_dim, data.action_dim) == (5, 6)
    push, lift = data[0], data[len(data) - 1]
    assert push["task"] == PUSH and lift["task"] == LIFT
    assert push["action"].shape == (3, 6) and push["observation.state"].shape == (1, 5)
    np.testing.assert_array_equal(push["action_dim_is_pad"].numpy(), [False, False, True, True, True, True])
    assert torch.all(push["action"][:, 2:] == 0) and torch.all(push["observation.state"][:, 2:] == 0)
    assert torch.all(lift["action"][:, :2] == 0) and torch.all(lift["action"][:, 2:] < 0)


def test_statistics_come_from_the_owning_task_only():
    data = two_tasks()
    actions, states = dataset_statistics(data)
    assert np.isnan(actions[: 3 * 6, 2:]).all() and not np.isnan(actions[: 3 * 6, :2]).any()
    model = VLAModel.for_dataset(data, **TINY)
    model.fit_normalizer(actions, states)
    push_actions = np.concatenate([e["actions"][:, :2] for e in data.episodes if e["task"] == PUSH])
    centre = (push_actions.max(0) + push_actions.min(0)) / 2
    np.testing.assert_allclose(model.network.normalizer.action_shift[:2].numpy(), centre, rtol=1e-5)
    assert np.all(model.network.normalizer.action_shift[2:].numpy() < 0)  # the lift task's (negative) actions


def fitted_model(data: MultiTaskDataset, **options) -> VLAModel:
    model = VLAModel.for_dataset(data, **TINY, **options)
    model.fit_normalizer(*dataset_statistics(data))
    return model


def test_other_tasks_dimensions_do_not_count():
    data = two_tasks()
    model = fitted_model(data)
    model.model.eval()
    batch = next(iter(create_lerobot_dataloader(data, batch_size=len(data), shuffle=False)))
    with torch.no_grad():
        torch.manual_seed(1)
        base, _ = model.compute_loss(batch)
        changed = dict(batch, action=batch["action"].clone(), **{"observation.state": batch["observation.state"].clone()})
        pads = batch["action_dim_is_pad"][:, None, :].expand_as(changed["action"])
        changed["action"][pads] += 50.0
        changed["observation.state"][batch["task"].index(PUSH), :, 2:] += 50.0  # a push sample's lift-state slots
        torch.manual_seed(1)
        same, _ = model.compute_loss(changed)
    assert float(same) == pytest.approx(float(base), rel=1e-5)


def test_a_task_learns_only_its_horizon_of_each_chunk():
    data = two_tasks()
    model = fitted_model(data, task_options={PUSH: {"horizon": 1, "n_action_steps": 1}})
    model.model.eval()
    batch = next(iter(create_lerobot_dataloader(data, batch_size=len(data), shuffle=False)))
    push = torch.tensor([task == PUSH for task in batch["task"]])
    with torch.no_grad():
        torch.manual_seed(1)
        base, _ = model.compute_loss(batch)
        changed = dict(batch, action=batch["action"].clone())
        changed["action"][push, 1:] += 50.0  # what a push sample's chunk holds after its first action
        torch.manual_seed(1)
        same, _ = model.compute_loss(changed)
        changed["action"][~push, 1:] += 50.0  # the lift task learns its whole chunk
        torch.manual_seed(1)
        other, _ = model.compute_loss(changed)
    assert float(same) == pytest.approx(float(base), rel=1e-5) and float(other) > float(base) + 1.0
    box = lambda n: spaces.Box(-np.inf, np.inf, (n,), np.float32)  # noqa: E731
    assert model.for_task(PUSH, action_space=box(2)).actions_per_plan == 1
    assert model.for_task(LIFT, action_space=box(4)).actions_per_plan == 3
    with pytest.raises(ValueError, match="at most|horizon"):
        fitted_model(data, task_options={PUSH: {"horizon": 1, "n_action_steps": 2}})
    unset = fitted_model(data, task_options={PUSH: {"horizon": 2}})  # never acts past what it learned
    assert unset.for_task(PUSH, action_space=box(2)).actions_per_plan == 2


def test_a_task_view_reads_its_own_slots_whatever_the_instruction():
    """A view acts in its task's env: a paraphrased instruction changes what the language model
    reads, not which slots, pipeline and codec apply."""
    data = two_tasks()
    model = fitted_model(data)
    view = model.for_task(PUSH, action_space=spaces.Box(-np.inf, np.inf, (2,), np.float32))
    obs = {"agent_pos": np.zeros((3, 2)), "pixels": np.zeros((3, 16, 16, 3), np.uint8)}
    batch = view.to_batch(obs)
    assert batch["slot_task"] == [PUSH] * 3
    assert model.network._slot_owners(batch, ["push it, please"] * 3) == [PUSH] * 3
    assert model.network._slot_owners({}, ["push it, please"]) == ["push it, please"]


def test_task_view_acts_in_its_env_and_round_trips(tmp_path):
    data = two_tasks()
    model = fitted_model(data)
    lift_space = spaces.Dict({"agent_pos": spaces.Box(-np.inf, np.inf, (3,)), "pixels": spaces.Box(0, 255, (16, 16, 3), np.uint8)})
    lift_actions = spaces.Box(-50, 50, (4,), np.float32)
    view = model.for_task(LIFT, lift_space, lift_actions)
    assert view.instruction == LIFT and view.network is model.network
    obs = {"agent_pos": np.zeros(3), "pixels": np.zeros((16, 16, 3), np.uint8)}
    view.set_seed(3)
    action, _ = view.predict(obs)
    assert action.shape == (4,)
    restored = load(view.save(tmp_path / "lift"))
    assert restored.task == LIFT and restored.action_space.shape == (4,)
    restored.set_seed(3)
    restored.reset()
    np.testing.assert_array_equal(restored.predict(obs)[0], action)
    with pytest.raises(ValueError, match="no task 'stack the cups'.*lift the cube"):
        model.for_task("stack the cups", lift_space, lift_actions)
    with pytest.raises(ValueError, match="action slots"):
        model.for_task(LIFT, lift_space, spaces.Box(-1, 1, (2,)))


def test_multitask_bc_learns_both_tasks(tmp_path):
    data = two_tasks()
    model = VLAModel.for_dataset(data, action_head="regression", **TINY)
    config = ILConfig.behavioral_cloning(bc_epochs=25, learning_rate=3e-3, output_dir=str(tmp_path / "bc"), seed=0)
    trainer = VLABehavioralCloning(model=model, config=config, use_wandb=False, progress=False)
    losses = trainer.train(create_lerobot_dataloader(data, batch_size=8))["losses"]
    assert np.mean(losses[-3:]) < 0.5 * np.mean(losses[:2]), losses
    assert {PUSH, LIFT} <= trainer.policy.seen_instructions


def test_tasks_with_different_images_are_refused():
    push = TrajectoryChunkDataset(trajectories(2, 2, 0.0), chunk_size=3, instruction=PUSH)
    lift = TrajectoryChunkDataset(trajectories(3, 4, 0.0, size=24), chunk_size=3, instruction=LIFT)
    with pytest.raises(DatasetError, match="same camera names and image_size"):
        MultiTaskDataset([push, lift])
    with pytest.raises(DatasetError, match="own non-empty instruction"):
        MultiTaskDataset([push, TrajectoryChunkDataset(trajectories(2, 2, 0.0), chunk_size=3, instruction=PUSH)])


def test_cli_trains_one_model_on_comma_separated_datasets_and_eval_picks_the_task(tmp_path):
    """``--dataset A,B`` (VLA BC) trains one multi-task model; evaluating it in either task's
    env runs that task's view (its instruction, state and action slots)."""
    from il_toolkit.evaluation import evaluate_checkpoint
    from il_toolkit.train.datasets.collect import collect_dataset
    from il_toolkit.train.il.cli import is_vla_request, run_vla

    pusht = {"obs_type": "state", "max_episode_steps": 30}
    aloha = {"obs_type": "state", "max_episode_steps": 30}
    collect_dataset("il_toolkit/PushT-v0", "test/mt-pusht-v0", 2, env_kwargs=pusht, progress=False)
    collect_dataset("il_toolkit/AlohaTransferCube-v0", "test/mt-aloha-v0", 1, env_kwargs=aloha, progress=False)
    datasets = "test/mt-pusht-v0,test/mt-aloha-v0"
    assert is_vla_request(datasets, None)
    config = ILConfig.behavioral_cloning(bc_epochs=1, batch_size=32, eval_episodes=1, seed=0, bc_validation_split=0.0,
                                         output_dir=str(tmp_path / "bc"))
    result = run_vla("bc", config, env_id="il_toolkit/AlohaTransferCube-v0", dataset=datasets, env_kwargs=aloha,
                     progress=False, chunk_size=4)
    policy = load(result["policy_path"])
    assert set(policy.tasks) == {"push the T block onto the target", "transfer the red cube to the other arm"}
    assert policy.network.config.action_dim == 2 + 14 and result["eval"]["n_episodes"] == 1
    slots = policy.network.config.task_slots  # each task reads its state through its own env's pipeline
    assert slots["push the T block onto the target"]["features"]["frame"] == "pusht_push"
    assert slots["transfer the red cube to the other arm"]["features"]["ignored_obs"]  # arm velocities
    assert policy.network.slot_features.n_features == len(policy.network.normalizer.state_shift)
    evaluation = evaluate_checkpoint(result["policy_path"], "il_toolkit/PushT-v0", n_episodes=1, env_kwargs=pusht)
    assert len(evaluation.episodes) == 1 and evaluation.episodes[0].length > 0
    policy.n_steps, policy.solver = 1, "midpoint"  # inference settings set on the model hold for its tasks' views
    from il_toolkit.envs import make_env

    pusht_env = make_env("il_toolkit/PushT-v0", **pusht)
    view = policy.for_task("push the T block onto the target", pusht_env.observation_space, pusht_env.action_space)
    assert (view.n_steps, view.solver) == (1, "midpoint")
    evaluation = evaluate_checkpoint(result["policy_path"], "il_toolkit/PushT-v0", n_episodes=1, env_kwargs=pusht,
                                     ode_steps=1, solver="midpoint")  # eval --ode-steps / --solver reach a VLA
    assert len(evaluation.episodes) == 1
    with pytest.raises(ValueError, match="none of them.*env of one of its tasks"):
        evaluate_checkpoint(result["policy_path"], "il_toolkit/AlohaInsertion-v0", n_episodes=1,
                            env_kwargs={"obs_type": "state"})


def test_slotted_features_read_each_task_through_its_own_pipeline():
    from il_toolkit.envs import make_env
    from il_toolkit.features.task_slots import SlottedFeatures
    from il_toolkit.policies.flow_policy import default_state_features

    pusht = default_state_features(make_env("il_toolkit/PushT-v0"))
    slots = {PUSH: {"state": [0, 5], "action": [0, 2], "features": pusht.to_json()},
             LIFT: {"state": [5, 8], "action": [2, 4], "features": None}}
    slotted = SlottedFeatures(slots)
    assert slotted.feature_slots == {PUSH: (0, pusht.n_features), LIFT: (pusht.n_features, pusht.n_features + 3)}
    rng = np.random.default_rng(0)
    raw = np.zeros((3, 8))
    raw[0, :5] = [200.0, 300.0, 250.0, 260.0, 1.0]
    raw[1, 5:] = rng.normal(size=3)
    tasks = [PUSH, LIFT, "an instruction never seen"]
    features = slotted.features(raw, tasks)
    np.testing.assert_allclose(features[0, :pusht.n_features], pusht.features(raw[:1, :5])[0], rtol=1e-6)
    np.testing.assert_allclose(features[1, pusht.n_features:], raw[1, 5:], rtol=1e-6)  # no pipeline: the raw slot
    assert not features[0, pusht.n_features:].any() and not features[2].any()  # unknown task: nothing read
    owned = slotted.owned(tasks)
    assert owned[0].sum() == pusht.n_features and owned[1].sum() == 3 and owned[2].all()
    chunks = rng.normal(size=(3, 4, 4)) * 50 + 250
    encoded = slotted.encode_actions(raw, chunks, tasks)
    np.testing.assert_allclose(encoded[0, :, :2], pusht.encode_actions(raw[:1, :5], chunks[:1, :, :2])[0])
    np.testing.assert_array_equal(encoded[1:], chunks[1:])  # no pipeline / unknown task: unchanged
    np.testing.assert_allclose(slotted.decode_actions(raw, encoded, tasks), chunks)
    with pytest.raises(ValueError, match="5-entry state"):
        SlottedFeatures({PUSH: {"state": [0, 4], "action": [0, 2], "features": pusht.to_json()}})


def test_dagger_and_gail_refuse_a_multitask_model():
    from il_toolkit.train.il.dagger import VLADAgger
    from il_toolkit.train.il.vla import VLAGAIL

    model = fitted_model(two_tasks())
    for algorithm in (VLADAgger, VLAGAIL):
        with pytest.raises(ValueError, match="single-task VLA.*--dataset A,B"):
            algorithm("il_toolkit/PushT-v0", model, env_kwargs={"obs_type": "state"}, progress=False)
