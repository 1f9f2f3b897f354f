"""The ALOHA environments (and their experts): spaces, horizon, cheap state mode, strict success."""

from __future__ import annotations

import time

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import il_toolkit  # noqa: F401  (registers the ids)
from il_toolkit.envs import env_entry
from il_toolkit.experts.aloha_ik import TOOL_OFFSET, quat_to_mat

# after il_toolkit, which sets MUJOCO_GL=egl for headless rendering before mujoco reads it
import mujoco  # noqa: E402  isort: skip

ALOHA_IDS = (
    "il_toolkit/AlohaTransferCube-v0",
    "il_toolkit/AlohaInsertion-v0",
    "il_toolkit/AlohaTransferCubeEE-v0",
    "il_toolkit/AlohaInsertionEE-v0",
)
SMALL = {"image_size": (24, 32)}


@pytest.mark.parametrize("env_id", ALOHA_IDS)
def test_state_env_passes_check_env(env_id: str) -> None:
    env = gym.make(env_id)
    check_env(env.unwrapped, skip_render_check=True)
    env.close()


@pytest.mark.parametrize(
    "obs_type,options",
    [
        ("pixels", {"cameras": ("head",)}),
        ("pixels_agent_pos", {"cameras": ("head", "left_wrist", "right_wrist"), "depth": True}),
    ],
)
def test_camera_envs_pass_check_env(obs_type: str, options: dict) -> None:
    env = gym.make("il_toolkit/AlohaTransferCube-v0", obs_type=obs_type, **SMALL, **options)
    check_env(env.unwrapped, skip_render_check=True)
    env.close()


def test_entries_carry_instructions_and_400_step_horizon() -> None:
    assert env_entry("il_toolkit/AlohaTransferCube-v0").instruction == "transfer the red cube to the other arm"
    assert env_entry("il_toolkit/AlohaInsertion-v0").instruction == "insert the peg into the socket"
    for env_id in ALOHA_IDS:
        assert gym.spec(env_id).max_episode_steps == 400


@pytest.mark.parametrize("env_id,state_dim,action_dim", [
    ("il_toolkit/AlohaTransferCube-v0", 35, 14),
    ("il_toolkit/AlohaInsertion-v0", 42, 14),
    ("il_toolkit/AlohaTransferCubeEE-v0", 35, 16),
])
def test_state_shapes_and_horizon(env_id: str, state_dim: int, action_dim: int) -> None:
    env = gym.make(env_id)
    obs, info = env.reset(seed=3)
    assert obs.shape == (state_dim,) and obs.dtype == np.float64
    assert env.action_space.shape == (action_dim,)
    assert info == {"is_success": False, "stage": 0}
    steps, truncated = 0, False
    if action_dim == 14:  # joint targets: where the joints are
        hold = env.unwrapped.state_vector()[:14]
    else:  # mocap poses: where the mocap bodies are (a random pose would blow up the physics at once)
        data = env.unwrapped.scene.data
        hold = np.concatenate([np.concatenate([data.mocap_pos[i], data.mocap_quat[i], [1.0]]) for i in range(2)])
    while not truncated:
        obs, reward, terminated, truncated, info = env.step(hold)
        assert not terminated
        steps += 1
    assert steps == 400
    assert obs.shape == (state_dim,) and np.all(np.isfinite(obs))
    assert info["is_success"] is False and reward == float(info["stage"])
    env.close()


def test_seed_gives_gym_aloha_object_poses() -> None:
    from gym_aloha.utils import sample_box_pose

    env = gym.make("il_toolkit/AlohaTransferCube-v0")
    obs, _ = env.reset(seed=7)
    np.testing.assert_allclose(obs[28:], sample_box_pose(7))
    again, _ = env.reset(seed=7)
    np.testing.assert_array_equal(obs, again)
    other, _ = env.reset(seed=8)
    assert not np.allclose(other[28:31], obs[28:31])


def test_state_mode_renders_nothing_and_is_fast() -> None:
    env = gym.make("il_toolkit/AlohaTransferCube-v0")
    env.reset(seed=0)
    action = env.unwrapped.state_vector()[:14]
    start = time.perf_counter()
    for _ in range(200):
        env.step(action)
    per_step = (time.perf_counter() - start) / 200
    assert env.unwrapped._renderers == {}
    # physics alone is ~0.25 ms/step here; one 480x640 software render alone costs far more than 5 ms
    assert per_step < 5e-3, f"{per_step * 1e3:.2f} ms per state step"
    env.close()


def test_pixels_have_requested_cameras_size_and_depth() -> None:
    env = gym.make("il_toolkit/AlohaInsertion-v0", obs_type="pixels_agent_pos", depth=True, **SMALL)
    obs, _ = env.reset(seed=0)
    assert set(obs) == {"pixels", "agent_pos", "depth"}
    assert set(obs["pixels"]) == {"head", "left_wrist", "right_wrist"}
    for camera, image in obs["pixels"].items():
        assert image.shape == (24, 32, 3) and image.dtype == np.uint8 and image.std() > 0, camera
        depth = obs["depth"][camera]
        assert depth.shape == (24, 32, 1) and depth.dtype == np.float32
        assert 0.0 < depth.min() < depth.max() <= 10.0
    assert obs["agent_pos"].shape == (14,)
    env.close()


def test_fast_render_quality_changes_lighting_only() -> None:
    images = {}
    for quality in ("fast", "package"):
        env = gym.make("il_toolkit/AlohaTransferCube-v0", obs_type="pixels", cameras=("head",), render_quality=quality, **SMALL)
        obs, _ = env.reset(seed=0)
        images[quality] = obs["head"].astype(np.float64)
        env.close()
    assert not np.array_equal(images["fast"], images["package"])  # no shadows, no multisampling
    assert np.abs(images["fast"] - images["package"]).mean() < 10  # but the same scene


def test_unknown_camera_and_obs_type_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown camera 'nose'"):
        gym.make("il_toolkit/AlohaTransferCube-v0", obs_type="pixels", cameras=("nose",))
    with pytest.raises(ValueError, match="unknown obs_type"):
        gym.make("il_toolkit/AlohaTransferCube-v0", obs_type="rgb")
    with pytest.raises(ValueError, match="render_quality"):
        gym.make("il_toolkit/AlohaTransferCube-v0", render_quality="ultra")


def test_ee_variant_has_stiff_weld_and_tracks_the_mocap() -> None:
    env = gym.make("il_toolkit/AlohaTransferCubeEE-v0")
    env.reset(seed=0)
    scene = env.unwrapped.scene
    np.testing.assert_allclose(scene.model.eq_solimp[:, :3], [[0.95, 0.99, 0.001]] * 2)
    identity, closed = (1, 0, 0, 0), 0
    action = np.r_[scene.data.mocap_pos[0] + (0.05, 0, 0), identity, closed, scene.data.mocap_pos[1], identity, closed]
    for _ in range(60):
        env.step(action)
    pos, quat = scene.ee_pose("left")
    tool = pos + quat_to_mat(quat) @ TOOL_OFFSET  # the weld holds the tool frame on the mocap body
    assert np.linalg.norm(tool - action[:3]) < 0.01
    env.close()


def test_strict_success_needs_a_held_lifted_cube() -> None:
    env = gym.make("il_toolkit/AlohaTransferCube-v0")
    env.reset(seed=0)
    scene = env.unwrapped.scene
    assert scene.is_success() is False
    # lift the cube into the air with nothing holding it: not held, so not a success either
    scene.data.qpos[scene.object_qpos[:3]] = (0.0, 0.5, 0.3)
    mujoco.mj_forward(scene.model, scene.data)
    assert scene.is_success() is False
    env.close()


def test_insertion_depth_geometry() -> None:
    env = gym.make("il_toolkit/AlohaInsertion-v0")
    env.reset(seed=0)
    scene = env.unwrapped.scene
    assert scene.is_success() is False
    socket = scene.object_poses()[7:10]
    # a peg placed 1.5 cm deep along the socket's axis (kinematics only) counts as inserted
    scene.data.qpos[scene.object_qpos[:3]] = socket + (0.06 + 0.06 - 0.015, 0, 0)
    mujoco.mj_kinematics(scene.model, scene.data)
    assert scene.insertion_depth() == pytest.approx(0.015, abs=1e-6) and scene.is_success()
    # the same depth but 2 cm off the bore's axis does not
    scene.data.qpos[scene.object_qpos[:3]] = socket + (0.105, 0.02, 0)
    mujoco.mj_kinematics(scene.model, scene.data)
    assert not scene.is_success()
    env.close()


def _rollout(env: gym.Env, expert, seed: int, steps: int = 400) -> dict:
    obs, info = env.reset(seed=seed)
    for _ in range(steps):
        action, _ = expert.predict(obs)
        obs, _, _, _, info = env.step(action)
    return info


def test_transfer_expert_succeeds_strictly_on_fixed_seeds() -> None:
    from il_toolkit.experts import make_expert

    env = gym.make("il_toolkit/AlohaTransferCube-v0")
    expert = make_expert("il_toolkit/AlohaTransferCube-v0", env=env)
    successes = [_rollout(env, expert, seed)["is_success"] for seed in (0, 1, 4)]
    assert all(successes), successes
    env.close()


def test_transfer_expert_is_state_feedback() -> None:
    """Same state, same answer, however the episode got there; batches answer row by row."""
    from il_toolkit.experts import make_expert

    env = gym.make("il_toolkit/AlohaTransferCube-v0")
    expert = make_expert("il_toolkit/AlohaTransferCube-v0", env=env)
    obs, _ = env.reset(seed=2)
    states = [obs]
    for _ in range(60):
        obs, *_ = env.step(expert.predict(obs)[0])
        states.append(obs)
    batch, _ = expert.predict(np.stack(states[::20]))
    fresh = make_expert("il_toolkit/AlohaTransferCube-v0")
    singles = np.stack([fresh.predict(s)[0] for s in states[::20]])
    np.testing.assert_allclose(batch, singles, atol=1e-6)
    assert batch.shape == (4, 14) and env.action_space.contains(batch[0])
    env.close()


def test_expert_reads_the_state_behind_pixel_observations(tmp_path) -> None:
    from il_toolkit.experts import make_expert
    from il_toolkit.policies import load

    env = gym.make("il_toolkit/AlohaTransferCube-v0", obs_type="pixels", cameras=("head",), **SMALL)
    expert = make_expert("il_toolkit/AlohaTransferCube-v0", env=env)
    obs, _ = env.reset(seed=0)
    action, _ = expert.predict(obs)
    restored = load(expert.save(tmp_path / "expert"))
    np.testing.assert_allclose(restored.predict(env.unwrapped.state_vector())[0], action, atol=1e-6)
    env.close()


def test_insertion_expert_inserts_strictly() -> None:
    from il_toolkit.experts import make_expert

    env = gym.make("il_toolkit/AlohaInsertion-v0")
    expert = make_expert("il_toolkit/AlohaInsertion-v0", env=env)
    info = _rollout(env, expert, seed=0)
    assert info["is_success"], (env.unwrapped.scene.insertion_depth(), info)
    env.close()


def test_blown_up_physics_ends_the_episode_without_success() -> None:
    """MuJoCo resets the whole state when the physics diverges; the episode must end there."""
    env = gym.make("il_toolkit/AlohaTransferCube-v0")
    env.reset(seed=0)
    scene = env.unwrapped.scene
    _, _, terminated, _, info = env.step(env.action_space.sample())
    assert not terminated and "physics_diverged" not in info
    scene.data.qvel[:] = 1e160  # far past what MuJoCo accepts (1e10): it warns and resets the state
    _, reward, terminated, truncated, info = env.step(env.action_space.sample())
    assert terminated and not truncated and info["physics_diverged"] and not info["is_success"] and reward == 0.0
    env.reset(seed=0)
    assert not scene.diverged
