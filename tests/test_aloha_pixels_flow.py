"""ALOHA's nested pixel observations (``{"pixels": {camera: ...}, "agent_pos": ...}``) from a
Minari dataset through the flow-matching loop: regression for loading such datasets, which
failed (``TypeError: len() of unsized object``) because imitation's ``DictObs`` holds arrays
only; nested dicts are now flattened to ``"pixels/<camera>"`` keys."""

from __future__ import annotations

import numpy as np

import il_toolkit  # noqa: F401  (registers the ids)

ENV_ID = "il_toolkit/AlohaTransferCube-v0"
KWARGS = {"obs_type": "pixels_agent_pos", "cameras": ["head", "left_wrist", "right_wrist"], "image_size": [24, 32]}
# the VFP trainer's camera names (head, left, right) read from the env's cameras
OBSERVATION_KEYS = {
    "observation.images.head": "pixels/head",
    "observation.images.left": "pixels/left_wrist",
    "observation.images.right": "pixels/right_wrist",
    "observation.state": "agent_pos",
}


def test_flatten_observations_joins_nested_keys() -> None:
    from il_toolkit.train.datasets.minari_io import flatten_observations

    flat = flatten_observations({"pixels": {"head": np.zeros((3, 2, 2, 3))}, "agent_pos": np.ones((3, 14))})
    assert sorted(flat) == ["agent_pos", "pixels/head"]
    assert flat["pixels/head"].shape == (3, 2, 2, 3)


def test_three_camera_aloha_dataset_trains_vfp_and_acts(tmp_path) -> None:
    from il_toolkit.envs import make_env
    from il_toolkit.train.datasets.collect import collect_dataset
    from il_toolkit.train.datasets.minari_io import load_demonstrations
    from il_toolkit.train.imitation_learning.loop import train_flow_policy
    from il_toolkit.train.imitation_learning.vfp_single_expert.trainer import VFP_CAMERAS

    collect_dataset(ENV_ID, "test/aloha-pix3-v0", 1, only_successful=True, env_kwargs=KWARGS, progress=False)
    env = make_env(ENV_ID, **KWARGS)
    demos = load_demonstrations("test/aloha-pix3-v0", env=env)
    assert len(demos) == 1 and len(demos[0].obs) == len(demos[0].acts) + 1 == 401
    assert demos[0].obs.get("pixels/left_wrist").shape == (401, 24, 32, 3)
    policy = train_flow_policy(
        "vfp_single_expert_trainer", demos, env.observation_space, env.action_space, steps=2, batch_size=4,
        spec_fields={"cameras": VFP_CAMERAS, "horizon": 4, "n_obs_steps": 2, "d_model": 32, "n_heads": 2,
                     "embedder_layers": 1, "decoder_layers": 1},
        policy_options={"n_action_steps": 2, "n_steps": 2, "observation_keys": OBSERVATION_KEYS},
        checkpoint_dir=tmp_path / "run",
    )
    assert policy.spec.cameras == VFP_CAMERAS and policy.spec.image_size == (24, 32) and policy.spec.state_dim == 14
    obs, _ = env.reset(seed=1_000_000)
    action, _ = policy.predict(obs)  # live, nested observations
    assert action.shape == (14,) and np.all(np.isfinite(action)) and env.action_space.contains(action)
    env.close()


def test_rollout_trajectories_flatten_nested_cameras_and_map_to_batch_keys() -> None:
    """DAgger's rollouts of ALOHA pixels (nested cameras) become trajectories with the same
    "pixels/<camera>" keys as loaded datasets, and the VLA/LeRobot mapping reads them."""
    from il_toolkit.rollout import Episode
    from il_toolkit.train.datasets.lerobot_dataset import flatten_observation

    step = {"pixels": {"head": np.zeros((4, 6, 3), np.uint8), "left_wrist": np.ones((4, 6, 3), np.uint8)},
            "agent_pos": np.zeros(14)}
    episode = Episode(seed=0)
    episode.observations = [step, step, step]
    episode.actions = [np.zeros(14), np.zeros(14)]
    episode.rewards = [0.0, 0.0]
    trajectory = episode.to_trajectory()
    assert sorted(trajectory.obs.keys()) == ["agent_pos", "pixels/head", "pixels/left_wrist"]
    frames = flatten_observation({k: trajectory.obs.get(k) for k in trajectory.obs.keys()})
    assert sorted(frames) == ["observation.images.head", "observation.images.left_wrist", "observation.state"]
    assert frames["observation.images.left_wrist"].shape == (3, 3, 4, 6)
