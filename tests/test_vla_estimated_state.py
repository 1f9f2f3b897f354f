"""A VLA whose camera is read by a state estimator learned, in the same loop, from the recorded state."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from il_toolkit.config.training_config import ILConfig
from il_toolkit.envs import make_env
from il_toolkit.model.components import BatchError
from il_toolkit.model.spec import ENV_STATE_KEY
from il_toolkit.model.vla import VLAModel
from il_toolkit.policies import load
from il_toolkit.policies.flow_policy import default_state_features
from il_toolkit.train.datasets.collect import collect_dataset
from il_toolkit.train.datasets.lerobot_dataset import ChunkedEpisodeDataset, collate, create_lerobot_dataloader
from il_toolkit.train.il.vla import VLABehavioralCloning

ENV_ID, PIXELS, DATASET = "il_toolkit/PushT-v0", {"obs_type": "pixels_agent_pos"}, "test/pusht-vla-pixels-v0"
SMALL = dict(hidden_size=32, llm_layers=1, n_heads=2, head_dim=32, mlp_width=64, mlp_layers=2, max_text_tokens=24,
             flow_steps=2, estimator_batch=8)
ESTIMATOR = {"width": 8, "keypoints": 8, "hidden": 32}


@pytest.fixture(autouse=True)
def _single_thread():
    torch.set_num_threads(1)
    torch.manual_seed(0)


@pytest.fixture(scope="module")
def pixel_data() -> ChunkedEpisodeDataset:
    collect_dataset(ENV_ID, DATASET, 2, env_kwargs=PIXELS, progress=False)
    return ChunkedEpisodeDataset(DATASET, "all", chunk_size=1, environment_state=True)


def estimating_vla(data: ChunkedEpisodeDataset) -> VLAModel:
    features = default_state_features(make_env(ENV_ID)).to_json()
    return VLAModel.for_dataset(data, features=features, estimate_state=True, estimator_options=ESTIMATOR, **SMALL)


def batch_of(data: ChunkedEpisodeDataset, n: int = 16) -> dict:
    return collate([data[i] for i in range(n)])


def test_the_dataset_carries_the_recorded_state_and_the_estimator_copies_the_agents_position(pixel_data):
    sample = pixel_data[0]
    assert sample[ENV_STATE_KEY].shape == (1, 5)
    np.testing.assert_allclose(sample[ENV_STATE_KEY][0, :2], sample["observation.state"][0])
    config = estimating_vla(pixel_data).config
    estimator = config.state_estimator
    assert estimator["copied"] == [[0, 0], [1, 1]] and estimator["periodic"] == [[4, 0.0]]
    assert estimator["cameras"] == ["observation.images.top"] and config.state_dim == 5
    assert not config.camera_tokens and config.velocity_net == "mlp"


def test_it_trains_both_parts_in_one_loop_and_acts_on_pixels_after_reloading(pixel_data, tmp_path):
    model = estimating_vla(pixel_data)
    config = ILConfig.behavioral_cloning(output_dir=str(tmp_path / "run"), batch_size=16, learning_rate=1e-3)
    before = {k: v.clone() for k, v in model.network.estimator.state_dict().items()}
    result = VLABehavioralCloning(model, config, use_wandb=False, progress=False).train(
        create_lerobot_dataloader(pixel_data, batch_size=16), max_steps=3)
    after = model.network.estimator.state_dict()
    assert bool(after["fitted"]) and not torch.equal(before["head.0.weight"], after["head.0.weight"])
    _, metrics = model.network.compute_loss(batch_of(pixel_data))
    assert metrics["estimator_loss"] > 0 and metrics["action_loss"] > 0
    policy = load(result["policy_path"])
    env = make_env(ENV_ID, **PIXELS)
    obs, _ = env.reset(seed=3)
    for p in (policy, model):
        p.set_seed(0)
    np.testing.assert_allclose(policy.predict(obs)[0], model.predict(obs)[0], atol=1e-5)


def test_acting_reads_the_cameras_and_never_the_recorded_state(pixel_data):
    model = estimating_vla(pixel_data)
    model.fit_normalizer(np.zeros((4, 2)), np.random.default_rng(0).uniform(0, 500, (4, 5)), given=np.zeros((4, 2)))
    batch = batch_of(pixel_data, 4)
    plans = []
    for recorded in (batch[ENV_STATE_KEY], torch.full_like(batch[ENV_STATE_KEY], 1e4)):
        model.set_seed(0)
        plans.append(model.predict_chunk({**batch, ENV_STATE_KEY: recorded}))
    np.testing.assert_array_equal(*plans)
    estimate = model.network.raw_state(batch)
    np.testing.assert_allclose(estimate[:, :2], batch["observation.state"][:, 0])  # the given entries are copied


def test_training_without_the_recorded_state_names_the_fix(pixel_data):
    without = ChunkedEpisodeDataset(DATASET, "all", chunk_size=1)
    with pytest.raises(ValueError, match="environment_state=True"):
        estimating_vla(without)
    model = estimating_vla(pixel_data)
    batch = batch_of(pixel_data, 4)
    del batch[ENV_STATE_KEY]
    with pytest.raises(BatchError, match="environment_state=True"):
        model.network.compute_loss(batch)


def test_an_estimator_that_does_not_fit_the_vla_is_refused(pixel_data):
    config = estimating_vla(pixel_data).config
    with pytest.raises(ValueError, match="cameras"):
        config.replace(cameras=("wrist",))
    with pytest.raises(ValueError, match="full state's size"):
        config.replace(state_dim=2, features=None)
    with pytest.raises(ValueError, match="no vision backbone"):
        config.replace(vision_model_name="google/siglip-base-patch16-224")
    camera_pipeline = default_state_features(make_env(ENV_ID, **PIXELS)).to_json()  # the agent's position only
    with pytest.raises(ValueError, match="full state.*obs_type='state'"):
        VLAModel.for_dataset(pixel_data, features=camera_pipeline, estimate_state=True)


def test_dagger_and_gail_refuse_it_naming_what_to_do(pixel_data):
    from il_toolkit.train.il.dagger import VLADAgger
    from il_toolkit.train.il.vla import VLAGAIL

    model = estimating_vla(pixel_data)
    for trainer in (VLADAgger, VLAGAIL):
        with pytest.raises(ValueError, match="record no simulator state.*VLA BC"):
            trainer(make_env(ENV_ID, **PIXELS), model, ILConfig.dagger(output_dir="unused"))


def test_train_bc_estimate_state_trains_and_evaluates_it_in_the_camera_env(pixel_data, tmp_path, capsys):
    import json

    from il_toolkit.policies import load_config
    from il_toolkit.train.il.cli import main_bc

    out = tmp_path / "bc"
    code = main_bc(["--dataset", DATASET, "--estimate_state", "--bc_epochs", "1", "--batch_size", "16",
                    "--eval_episodes", "1", "--bc_validation_split", "0", "--output_dir", str(out), "--no_wandb",
                    "--no_progress"])
    assert code == 0
    results = json.loads(capsys.readouterr().out)
    config = load_config(results["policy_path"])["config"]["vla"]
    assert config["state_estimator"]["cameras"] == ["observation.images.top"]
    assert config["chunk_size"] == 1 and config["features"]["frame"] == "pusht_push"  # PushT's state settings
    assert results["eval"]["n_episodes"] == 1  # evaluated in the env the camera dataset was recorded in


def test_several_cameras_and_observation_windows(tmp_path):
    """ALOHA's shape: three cameras, windows of two observations, a 14-entry given state inside a
    35-entry full state; the newest frame of each window is what the estimator reads."""
    from il_toolkit.model.state_estimator import StateEstimatorConfig

    rng = np.random.default_rng(0)
    cameras = ("head", "left_wrist", "right_wrist")
    full = rng.normal(size=(64, 35))
    estimator = StateEstimatorConfig.infer([f"observation.images.{c}" for c in cameras], "observation.state",
                                           full[:, :14], full, spaces_box(35), **ESTIMATOR)
    assert estimator.copied == tuple((i, i) for i in range(14))
    model = VLAModel(action_dim=14, cameras=cameras, state_dim=35, image_size=(24, 32), chunk_size=4,
                     state_estimator=estimator.to_json(), **SMALL)
    batch = {f"observation.images.{c}": torch.from_numpy(rng.integers(0, 255, (8, 2, 3, 24, 32), dtype=np.uint8))
             for c in cameras}
    batch.update({"observation.state": torch.from_numpy(full[:8, None, :14].repeat(2, 1)).float(),
                  ENV_STATE_KEY: torch.from_numpy(full[:8, None].repeat(2, 1)).float(),
                  "action": torch.randn(8, 4, 14), "task": ["transfer the cube"] * 8})
    model.fit_normalizer(np.asarray(batch["action"]), full[:8], given=full[:8, :14])
    loss, metrics = model.compute_loss(batch)
    loss.backward()
    assert torch.isfinite(loss) and "estimator_loss" in metrics
    estimate = model.network.raw_state(batch)
    assert estimate.shape == (8, 35)
    np.testing.assert_allclose(estimate[:, :14], full[:8, :14], atol=1e-5)
    assert model.predict_chunk(batch).shape == (8, 4, 14)
    missing = {k: v for k, v in batch.items() if k != "observation.images.head"}
    with pytest.raises(BatchError, match="cameras"):
        model.predict_chunk(missing)
    with pytest.raises(BatchError, match="cameras"):
        model.compute_loss(missing)
    restored = load(model.save(tmp_path / "vla"))
    for policy in (model, restored):
        policy.set_seed(0)
    np.testing.assert_allclose(restored.predict_chunk(batch), model.predict_chunk(batch), atol=1e-5)


def spaces_box(n: int):
    from gymnasium import spaces

    return spaces.Box(-np.inf, np.inf, (n,), np.float64)


def test_the_benchmark_method_trains_a_vla_that_acts_on_pixels(pixel_data, tmp_path):
    from il_toolkit.bench.methods import METHOD_REGISTRY, TrainRequest

    request = TrainRequest(env_id=ENV_ID, dataset_id=DATASET, n_demos=2, seed=0, budget={"vla_steps": 2, "batch_size": 8},
                           output_dir=str(tmp_path), env_kwargs=PIXELS)
    outcome = METHOD_REGISTRY.get("vla")(request)
    policy = load(outcome.policy_path)
    assert isinstance(policy, VLAModel) and policy.network.estimator is not None
    assert outcome.expert_labels == len(pixel_data) and outcome.extra["steps"] == 2
    obs, _ = make_env(ENV_ID, **PIXELS).reset(seed=0)
    assert policy.predict(obs)[0].shape == (2,)
