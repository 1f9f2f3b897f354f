"""Pixel policies through an estimate of the full state: recording the state, the estimator, the policy."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gymnasium import spaces

from il_toolkit.envs import make_env
from il_toolkit.model.state_estimator import SpatialSoftmax, StateEstimator, StateEstimatorConfig, keypoint_encoder
from il_toolkit.policies import load
from il_toolkit.policies.checkpoint import CheckpointError
from il_toolkit.policies.estimated_state import EstimatedStatePolicy
from il_toolkit.train.datasets.collect import collect_dataset
from il_toolkit.train.datasets.minari_io import DatasetError, load_demonstrations, load_states
from il_toolkit.train.state_estimation import (
    EstimateNoise,
    estimator_config_for,
    estimator_data,
    expert_frames,
    fit_state_estimator,
    locating_options,
    noise_options,
    recombined_frames,
    state_errors,
    state_trajectories,
    train_estimated_state_policy,
)

PIXELS = {"obs_type": "pixels_agent_pos"}


@pytest.fixture(scope="module")
def pusht_pixels():
    """Two expert episodes of PushT pixels with their recorded states."""
    collect_dataset("il_toolkit/PushT-v0", "test/pusht-pixels-v0", 2, env_kwargs=PIXELS, progress=False)
    env = make_env("il_toolkit/PushT-v0", **PIXELS)
    return env, load_demonstrations("test/pusht-pixels-v0", env), load_states("test/pusht-pixels-v0")


def test_collect_records_the_full_state_beside_pixel_observations(pusht_pixels):
    env, demos, states = pusht_pixels
    for demo, episode_states in zip(demos, states):
        assert episode_states.shape == (len(demo.acts) + 1, 5)
        np.testing.assert_allclose(episode_states[:, :2], demo.obs.get("agent_pos"))
    replay = make_env("il_toolkit/PushT-v0")  # the state env shows the same states from the same seed
    first, _ = replay.reset(seed=0)
    np.testing.assert_allclose(states[0][0], first)


def test_a_dataset_without_recorded_states_names_the_fix():
    collect_dataset("il_toolkit/PushT-v0", "test/pusht-state-v0", 1, progress=False)
    with pytest.raises(DatasetError, match="collect it again with --overwrite"):
        load_states("test/pusht-state-v0")


def test_state_trajectories_train_state_learners_on_the_recorded_states(pusht_pixels):
    _, demos, states = pusht_pixels
    as_states = state_trajectories(demos, states)
    assert as_states[0].obs.shape == states[0].shape
    np.testing.assert_array_equal(as_states[0].acts, demos[0].acts)


def test_noisy_copies_shift_only_the_chosen_entries_by_an_offset_and_a_jitter(pusht_pixels):
    _, demos, states = pusht_pixels
    noise = EstimateNoise(entries=(2, 3), copies=2, offset=5.0, jitter=1.0, seed=0)
    noisy = state_trajectories(demos, states, noise=noise)
    assert len(noisy) == 3 * len(demos)  # the clean episodes, then each copy of all of them
    np.testing.assert_array_equal(noisy[0].obs, states[0])
    for copy in (1, 2):
        shifted = noisy[copy * len(demos)]
        np.testing.assert_array_equal(shifted.acts, demos[0].acts)
        difference = shifted.obs - states[0]
        assert np.all(difference[:, [0, 1, 4]] == 0)
        assert 0.5 < difference[:, 2].std() < 2.0  # the jitter, around one episode-long offset
    assert not np.allclose(noisy[len(demos)].obs, noisy[2 * len(demos)].obs)
    with pytest.raises(ValueError, match=">= 0"):
        EstimateNoise(entries=(2,), offset=-1.0)


def test_noise_options_default_to_the_object_positions_where_the_estimator_locates_them():
    aloha = make_env("il_toolkit/AlohaTransferCube-v0", **ALOHA_SMALL)
    noise = noise_options(aloha)["noise"]
    assert noise.entries == (28, 29, 30) and noise.copies == 2
    assert noise_options(aloha, 0) == {} and noise_options(aloha, 1, (0.01, 0.0))["noise"].offset == 0.01
    pusht = make_env("il_toolkit/PushT-v0", **PIXELS)
    assert noise_options(pusht) == {}
    with pytest.raises(ValueError, match="object_position_entries"):
        noise_options(pusht, 2)
    with pytest.raises(ValueError, match="no noisy copies"):
        noise_options(aloha, 0, (0.01, 0.01))
    with pytest.raises(ValueError, match="two numbers"):
        noise_options(aloha, 2, [0.01])
    with pytest.raises(ValueError, match=">= 0"):
        noise_options(pusht, -1)


def test_the_estimator_copies_what_the_observation_gives_and_finds_the_angle(pusht_pixels):
    env, demos, states = pusht_pixels
    observations, flat = estimator_data(demos, states)
    config = estimator_config_for(env.observation_space, env.unwrapped.state_space, observations, flat)
    assert config.cameras == ("pixels",) and config.given_key == "agent_pos"
    assert config.copied == ((0, 0), (1, 1))
    assert config.periodic == ((4, 0.0),) and config.linear_dims == [2, 3]


def test_spatial_softmax_finds_a_peak():
    features = torch.full((1, 1, 5, 9), -50.0)
    features[0, 0, 4, 2] = 50.0  # row 4 of 5 (y = 1), column 2 of 9 (x = -0.5)
    np.testing.assert_allclose(SpatialSoftmax()(features)[0].numpy(), [-0.5, 1.0], atol=1e-5)


def test_estimates_decode_to_env_units():
    """What the network regresses, decoded: standardised entries back in units, angles from
    (sin, cos) into the space's range, copied entries from the observation."""
    config = StateEstimatorConfig(cameras=("pixels",), state_dim=4, given_key="agent_pos", given_dim=1,
                                  periodic=((3, 0.0),), copied=((0, 0),))
    estimator = StateEstimator(config)
    rng = np.random.default_rng(0)
    states = np.column_stack([rng.uniform(0, 5, 16), rng.normal(10, 3, 16), rng.normal(-2, 1, 16),
                              rng.uniform(0, 2 * np.pi, 16)])
    observations = {"pixels": np.zeros((16, 8, 8, 3), np.uint8), "agent_pos": states[:, :1]}
    estimator.fit_statistics(observations, states)
    targets = estimator.targets(states)
    estimator.forward = lambda obs: targets  # a perfect network
    np.testing.assert_allclose(estimator.estimate(observations), states, atol=1e-5)


def _squares(n: int, rng: np.random.Generator) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """32x32 images of a white 4x4 square at (x, y) pixels; the state is (x, y)."""
    positions = rng.integers(2, 26, size=(n, 2))
    images = np.zeros((n, 32, 32, 3), np.uint8)
    for image, (x, y) in zip(images, positions):
        image[y : y + 4, x : x + 4] = 255
    return {"pixels": images}, positions.astype(np.float64)


@pytest.mark.parametrize("stride", [4, 2])
def test_a_short_fit_locates_an_object(stride):
    rng = np.random.default_rng(0)
    (train, train_states), (test, test_states) = _squares(512, rng), _squares(128, rng)
    space = spaces.Dict({"pixels": spaces.Box(0, 255, (32, 32, 3), np.uint8)})
    state_space = spaces.Box(0.0, 32.0, (2,), np.float64)
    estimator, history = fit_state_estimator(train, train_states, space, state_space, steps=300, batch_size=32,
                                             progress=False, width=8, keypoints=8, hidden=64, stride=stride)
    errors = state_errors(estimator, test, test_states)
    guess_mean = np.mean(np.abs(test_states - train_states.mean(0)))  # about 6 pixels
    assert history.steps == 300 and estimator.config.stride == stride
    assert max(errors["mae/0"], errors["mae/1"]) < guess_mean / 3


def test_locating_first_trains_the_chosen_entries_on_the_given_frames():
    rng = np.random.default_rng(0)
    (frames, frame_states), (test, test_states) = _squares(512, rng), _squares(128, rng)
    blank = {"pixels": np.zeros((64, 32, 32, 3), np.uint8)}  # the main fit sees no object at all
    space = spaces.Dict({"pixels": spaces.Box(0, 255, (32, 32, 3), np.uint8)})
    state_space = spaces.Box(0.0, 32.0, (2,), np.float64)
    sizes = dict(progress=False, width=8, keypoints=8, hidden=64, batch_size=32)
    estimator, history = fit_state_estimator(blank, frame_states[:64], space, state_space, steps=1,
                                             locate=(frames, frame_states, [0, 1]), locate_steps=300, **sizes)
    errors = state_errors(estimator, test, test_states)
    guess_mean = np.mean(np.abs(test_states - frame_states.mean(0)))
    assert history.steps == 1 and max(errors["mae/0"], errors["mae/1"]) < guess_mean / 3
    with pytest.raises(ValueError, match="not regressed as numbers"):
        fit_state_estimator(blank, frame_states[:64], space, state_space, steps=1, locate=(frames, frame_states, [5]),
                            **sizes)


def test_the_loss_on_chosen_entries_ignores_the_others():
    config = StateEstimatorConfig(cameras=("pixels",), state_dim=3, given_key="agent_pos", given_dim=1, copied=((0, 0),))
    estimator = StateEstimator(config)
    states = np.random.default_rng(0).normal(size=(8, 3))
    observations = {"pixels": np.zeros((8, 16, 16, 3), np.uint8), "agent_pos": states[:, :1]}
    estimator.fit_statistics(observations, states)
    moved = states.copy()
    moved[:, 2] += 3.0
    assert estimator.loss(observations, states, [1])[0].item() == estimator.loss(observations, moved, [1])[0].item()
    assert estimator.loss(observations, states)[0].item() != estimator.loss(observations, moved)[0].item()
    assert estimator.output_columns([2, 1]) == [1, 0]
    with pytest.raises(ValueError, match="not regressed as numbers"):
        estimator.output_columns([0])  # copied from the observation


def test_the_estimate_is_read_off_the_images_not_the_agents_own_pose():
    """By default the given entries are copied, never read by the MLP: the arm's pose cannot stand
    in for the object's (estimators saved before the option read them, and still do)."""
    config = StateEstimatorConfig(cameras=("pixels",), state_dim=3, given_key="agent_pos", given_dim=1, copied=((0, 0),))
    estimator = StateEstimator(config)
    states = np.random.default_rng(0).normal(size=(8, 3))
    images = np.random.default_rng(1).integers(0, 255, (8, 16, 16, 3), dtype=np.uint8)
    estimator.fit_statistics({"pixels": images, "agent_pos": states[:, :1]}, states)
    one = estimator.estimate({"pixels": images, "agent_pos": states[:, :1]})
    other = estimator.estimate({"pixels": images, "agent_pos": states[:, :1] + 5.0})
    np.testing.assert_allclose(one[:, 1:], other[:, 1:])  # estimated entries: the images alone
    np.testing.assert_allclose(other[:, 0], states[:, 0] + 5.0)  # the given entry: copied
    old = {k: v for k, v in config.to_json().items() if k != "reads_given"}
    assert StateEstimatorConfig.from_json(old).reads_given and not StateEstimatorConfig.from_json(config.to_json()).reads_given


def test_expert_frames_add_labelled_frames_from_other_resets(pusht_pixels):
    env, demos, states = pusht_pixels
    observations, labels = expert_frames("il_toolkit/PushT-v0", 2, env_kwargs=PIXELS, steps=10, every=5)
    assert observations["pixels"].shape == (4, 96, 96, 3) and labels.shape == (4, 5)
    assert len({tuple(label[2:]) for label in labels[::2]}) == 2  # two resets: two block placements
    np.testing.assert_allclose(observations["agent_pos"], labels[:, :2])  # the state beside its own frame
    from il_toolkit.experts.pusht import PushTExpert

    state_policy = PushTExpert()  # acts on (B, 5) states
    policy, report = train_estimated_state_policy(demos, states, state_policy, env.observation_space, env.action_space,
                                                  steps=2, progress=False, extra_frames=(observations, labels))
    assert report["frames"] == sum(len(s) for s in states) + 4
    with pytest.raises(ValueError, match="render them with the demonstrations' env_kwargs"):
        train_estimated_state_policy(demos, states, state_policy, env.observation_space, env.action_space, steps=1,
                                     progress=False, extra_frames=({"pixels": observations["pixels"]}, labels))
    with pytest.raises(ValueError, match="observes its full state"):
        expert_frames("il_toolkit/PushT-v0", 1, steps=1)


def test_decoy_frames_move_the_agent_towards_objects_that_are_not_there():
    """With decoys the expert acts on another reset's object poses: the agent's path no longer
    follows the real object, whose true pose stays the label."""
    real_obs, real = expert_frames("il_toolkit/PushT-v0", 1, env_kwargs=PIXELS, steps=30, every=10)
    decoy_obs, decoy = expert_frames("il_toolkit/PushT-v0", 1, env_kwargs=PIXELS, steps=30, every=10, decoys=True)
    np.testing.assert_allclose(decoy[0], real[0])  # the same reset
    assert not np.allclose(decoy[1:, :2], real[1:, :2])  # the pusher heads elsewhere
    np.testing.assert_allclose(decoy_obs["agent_pos"], decoy[:, :2])  # labels are the real state


ALOHA_SMALL = {"obs_type": "pixels_agent_pos", "cameras": ["head"], "image_size": [24, 32]}


def test_aloha_observes_a_given_state_without_disturbing_its_episode():
    env, twin = (make_env("il_toolkit/AlohaTransferCube-v0", **ALOHA_SMALL) for _ in range(2))
    env.reset(seed=2)
    other = env.unwrapped.state_vector()
    first, _ = env.reset(seed=1)
    twin.reset(seed=1)
    actions = np.random.default_rng(0).uniform(env.action_space.low, env.action_space.high, (5, 14)).astype(np.float32)
    seen = None
    for action in actions:
        seen = env.unwrapped.observe_state(other)  # seed 2's scene, rendered in seed 1's episode
        env.step(action)
        twin.step(action)
    np.testing.assert_array_equal(env.unwrapped.state_vector(), twin.unwrapped.state_vector())  # untouched, exactly
    np.testing.assert_allclose(seen["agent_pos"], other[:14], atol=1e-9)
    reset_2, _ = env.reset(seed=2)
    np.testing.assert_array_equal(seen["pixels"]["head"], reset_2["pixels"]["head"])  # what the env shows there
    assert not np.array_equal(seen["pixels"]["head"], first["pixels"]["head"])
    assert env.unwrapped.object_state_entries == tuple(range(28, 35))
    assert env.unwrapped.object_position_entries == (28, 29, 30)
    with pytest.raises(ValueError, match="state_vector's layout"):
        env.unwrapped.observe_state(other[:10])
    state_env = make_env("il_toolkit/AlohaTransferCube-v0")
    np.testing.assert_array_equal(state_env.unwrapped.observe_state(other), other)  # the state observation: itself
    with pytest.raises(ValueError, match="control='joint'"):
        make_env("il_toolkit/AlohaTransferCubeEE-v0", **ALOHA_SMALL).unwrapped.observe_state(other)


def test_recombined_frames_pair_one_states_arms_with_anothers_objects():
    env = make_env("il_toolkit/AlohaTransferCube-v0", obs_type="state")
    states = []
    for seed in (0, 1):
        env.reset(seed=seed)
        episode = [env.unwrapped.state_vector()]
        for _ in range(3):
            env.step(env.action_space.sample())
            episode.append(env.unwrapped.state_vector())
        states.append(np.stack(episode))
    pool = np.concatenate(states)
    observations, labels = recombined_frames(make_env("il_toolkit/AlohaTransferCube-v0", **ALOHA_SMALL), states, 12)
    assert observations["pixels/head"].shape == (12, 24, 32, 3) and labels.shape == (12, 35)
    np.testing.assert_allclose(observations["agent_pos"], labels[:, :14], atol=1e-9)
    arms_recorded = [np.any(np.all(np.isclose(pool[:, :28], label[:28]), axis=1)) for label in labels]
    assert all(arms_recorded)  # the agent (joints and speeds) of a recorded state
    paired_elsewhere = [not np.any(np.all(np.isclose(pool, label), axis=1)) for label in labels]
    assert sum(paired_elsewhere) >= 6  # mostly objects of another moment or a fresh reset
    with pytest.raises(ValueError, match="cannot render a state"):
        recombined_frames(make_env("il_toolkit/PushT-v0", **PIXELS), [np.zeros((2, 5))], 1)
    with pytest.raises(ValueError, match=r"\(T, 35\)"):
        recombined_frames(make_env("il_toolkit/AlohaTransferCube-v0", **ALOHA_SMALL), [np.zeros((2, 5))], 1)
    assert locating_options(make_env("il_toolkit/PushT-v0", **PIXELS), [np.zeros((2, 5))]) == {}  # default: none
    with pytest.raises(ValueError, match="renders a given state"):
        locating_options(make_env("il_toolkit/PushT-v0", **PIXELS), [np.zeros((2, 5))], 3)
    frames, frame_states, entries = locating_options(make_env("il_toolkit/AlohaTransferCube-v0", **ALOHA_SMALL), states,
                                                     3)["locate"]
    assert entries == (28, 29, 30) and len(frame_states) == len(frames["agent_pos"]) == 3
    capped = locating_options(make_env("il_toolkit/AlohaTransferCube-v0", **ALOHA_SMALL), states, memory_bytes=5 * 2304)
    assert len(capped["locate"][1]) == 4  # a 24x32 camera and 14 joints: 2,318 numbers a frame


def test_object_entries_are_what_resets_change_and_the_observation_does_not_give():
    from il_toolkit.rollout import privileged_state
    from il_toolkit.train.state_estimation import _object_entries

    env = make_env("il_toolkit/PushT-v0", **PIXELS)
    env.reset(seed=5)
    other = privileged_state(env)
    obs, _ = env.reset(seed=6)
    np.testing.assert_array_equal(_object_entries(obs, privileged_state(env), other), [2, 3, 4])  # the block


def test_the_keypoint_maps_resolution_follows_the_stride():
    images = torch.zeros(2, 3, 48, 64)
    for stride in (4, 2):
        maps = keypoint_encoder(8, 4, stride)[:-1](images)  # all but the spatial softmax
        assert maps.shape == (2, 4, 48 // stride, 64 // stride)
    with pytest.raises(ValueError, match="stride must be one of"):
        StateEstimatorConfig(cameras=("pixels",), state_dim=2, stride=8)


def test_the_pixel_policy_acts_as_its_state_policy_on_the_estimate_and_reloads(pusht_pixels, tmp_path):
    from il_toolkit.experts.pusht import PushTExpert

    env, demos, states = pusht_pixels
    observations, flat = estimator_data(demos, states)
    config = estimator_config_for(env.observation_space, env.unwrapped.state_space, observations, flat, width=8)
    estimator = StateEstimator(config)
    estimator.fit_statistics(observations, flat)
    state_policy = PushTExpert()  # acts on (B, 5) states
    policy = EstimatedStatePolicy(estimator, state_policy, env.observation_space, env.action_space)
    obs, _ = env.reset(seed=5)
    estimate = policy.estimate_state({k: v[None] for k, v in obs.items()})
    np.testing.assert_allclose(estimate[0, :2], obs["agent_pos"])  # copied, not estimated
    np.testing.assert_allclose(policy.predict(obs)[0], state_policy.predict(estimate[0])[0])
    restored = load(policy.save(tmp_path / "pixels_policy"))
    assert isinstance(restored, EstimatedStatePolicy)
    np.testing.assert_allclose(restored.predict(obs)[0], policy.predict(obs)[0])


def test_a_state_policy_for_another_env_is_refused(pusht_pixels):
    from il_toolkit.experts.pusht import PushTExpert

    env, demos, states = pusht_pixels
    config = StateEstimatorConfig(cameras=("pixels",), state_dim=4)
    with pytest.raises(ValueError, match="train both on the same env's state"):
        EstimatedStatePolicy(StateEstimator(config), PushTExpert(), env.observation_space, env.action_space)


def test_an_edited_checkpoint_is_refused(pusht_pixels, tmp_path):
    import json

    from il_toolkit.experts.pusht import PushTExpert

    env, demos, states = pusht_pixels
    observations, flat = estimator_data(demos, states)
    estimator = StateEstimator(estimator_config_for(env.observation_space, env.unwrapped.state_space, observations,
                                                    flat, width=8))
    path = EstimatedStatePolicy(estimator, PushTExpert(), env.observation_space, env.action_space).save(tmp_path / "p")
    config = json.loads((path / "config.json").read_text())
    config["config"]["estimator"]["keypoints"] = 7
    (path / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="do not fit"):
        load(path)


def test_train_flow_estimate_state_saves_a_policy_that_acts_on_pixels(pusht_pixels, tmp_path):
    from il_toolkit.train.imitation_learning.cli import build_parser, train

    args = build_parser().parse_args(["--dataset", "test/pusht-pixels-v0", "--estimate_state", "--steps", "20",
                                      "--estimator_steps", "5", "--eval_episodes", "1", "--validation_split", "0.5",
                                      "--no_wandb", "--output_dir", str(tmp_path)])
    result = train(args)
    policy = load(result["policy_path"])
    assert isinstance(policy, EstimatedStatePolicy)
    assert policy.state_policy.observation_space.shape == (5,)
    assert result["state_estimator"]["validation"]["episodes"] == 1
    assert (tmp_path / "estimator.json").exists() and result["eval"]["n_episodes"] == 1
    assert result["state_policy_episodes"] == 1  # no noisy copies on PushT
    args.noisy_copies = 2
    with pytest.raises(SystemExit, match="--noisy_copies / --state_noise: .*object_position_entries"):
        train(args)


def test_train_flow_estimate_state_on_aloha_locates_the_objects_on_recombined_frames(tmp_path):
    from il_toolkit.train.imitation_learning.cli import build_parser, train

    collect_dataset("il_toolkit/AlohaTransferCube-v0", "test/aloha-pixels-v0", 1, env_kwargs=ALOHA_SMALL, progress=False)
    args = build_parser().parse_args(["--dataset", "test/aloha-pixels-v0", "--estimate_state", "--steps", "2",
                                      "--estimator_steps", "2", "--recombined_frames", "8", "--locate_steps", "3",
                                      "--eval_episodes", "0", "--no_wandb", "--output_dir", str(tmp_path)])
    result = train(args)
    report = result["state_estimator"]
    assert report["frames"] == 401 + 8 and report["locate_steps"] == 3  # the episode's frames and the recombined ones
    assert result["state_policy_episodes"] == 3  # the episode and its two noisy copies (the default on ALOHA)
    assert isinstance(load(result["policy_path"]), EstimatedStatePolicy)


def test_estimate_state_on_a_state_dataset_says_it_is_not_needed(tmp_path):
    from il_toolkit.train.imitation_learning.cli import build_parser, train

    collect_dataset("il_toolkit/PushT-v0", "test/pusht-state-only-v0", 1, progress=False)
    args = build_parser().parse_args(["--dataset", "test/pusht-state-only-v0", "--estimate_state", "--no_wandb",
                                      "--output_dir", str(tmp_path)])
    with pytest.raises(SystemExit, match="drop --estimate_state"):
        train(args)


def test_only_envs_whose_observation_is_not_the_state_record_it():
    from il_toolkit.rollout import privileged_state

    assert privileged_state(make_env("il_toolkit/PushT-v0")) is None  # the observation is the state
    assert privileged_state(make_env("CartPole-v1")) is None  # no state_vector()
    pixels = make_env("il_toolkit/PushT-v0", **PIXELS)
    pixels.reset(seed=0)
    assert privileged_state(pixels).shape == (5,)


def test_train_flow_suggests_estimate_state_for_camera_datasets_that_record_it(pusht_pixels):
    from il_toolkit.train.imitation_learning.cli import suggest_estimate_state

    env, _, _ = pusht_pixels
    assert suggest_estimate_state("test/pusht-pixels-v0", env)
    collect_dataset("il_toolkit/PushT-v0", "test/pusht-state-tip-v0", 1, progress=False)
    assert not suggest_estimate_state("test/pusht-state-tip-v0", make_env("il_toolkit/PushT-v0"))


def test_the_benchmark_method_trains_a_pixel_policy_through_the_estimated_state(pusht_pixels, tmp_path):
    from il_toolkit.bench.methods import METHOD_REGISTRY, TrainRequest

    request = TrainRequest(env_id="il_toolkit/PushT-v0", dataset_id="test/pusht-pixels-v0", n_demos=2, seed=0,
                           budget={"flow_steps": 5, "estimator_steps": 3}, output_dir=str(tmp_path), env_kwargs=PIXELS)
    outcome = METHOD_REGISTRY.get("flow_estimated_state")(request)
    policy = load(outcome.policy_path)
    assert isinstance(policy, EstimatedStatePolicy) and outcome.extra["estimator_steps"] == 3
    assert outcome.expert_labels == sum(len(d.acts) for d in pusht_pixels[1])


def test_entries_the_state_policy_never_reads_are_not_estimated():
    config = StateEstimatorConfig(cameras=("pixels",), state_dim=3, unused=(1,))
    assert config.estimated_dims == [0, 2] and config.output_dim == 2
    estimator = StateEstimator(config)
    states = np.array([[0.0, 4.0, 1.0], [2.0, 8.0, 3.0]])
    observations = {"pixels": np.zeros((2, 8, 8, 3), np.uint8)}
    estimator.fit_statistics(observations, states)
    targets = estimator.targets(states)
    estimator.forward = lambda obs: targets
    np.testing.assert_allclose(estimator.estimate(observations), [[0.0, 6.0, 1.0], [2.0, 6.0, 3.0]], atol=1e-5)
