"""ALOHA bimanual tasks (gym-aloha's models and task logic), environment-centric.

Differences from ``gym_aloha/Aloha*-v0``:

- ``obs_type="state"`` (the default) renders nothing: a flat float64 vector
  ``[qpos (14), qvel (14), object poses (7 cube | 14 peg then socket)]`` in gym-aloha's
  conventions (see :mod:`il_toolkit.envs.aloha_scene`). The package renders three 480×640
  cameras inside every step whatever it returns;
- cameras are rendered only for ``obs_type="pixels"`` / ``"pixels_agent_pos"``, only the
  ones in ``cameras`` (``head`` is the package's ``top`` camera; ``left_wrist`` and
  ``right_wrist``, already in the package's arm models, ride on the grippers; any other
  camera of the model by its own name), at
  ``image_size=(H, W)``, with metric depth images too when ``depth=True``;
- ``info["is_success"]`` is a strict check of the current state (cube held by the left
  gripper alone and lifted; peg inside the socket), so the last step's value is the
  end-state verdict; ``info["stage"]`` is the package's 0-4 reward, which is also the reward;
- an episode whose physics blows up (MuJoCo's "simulation is unstable": it then silently resets
  the state, objects included) ends there, ``terminated`` with ``info["physics_diverged"]``
  and no success, instead of going on from a state that is not the episode's;
- ``render_quality="fast"`` (the default) renders without shadows, reflections and
  multisampling: ~15x cheaper in software GL (3 cameras at 96×128: ~20 ms instead of ~340 ms),
  with the same scene otherwise; ``"package"`` keeps gym-aloha's look;
- ``control="ee"`` drives the grippers through gym-aloha's mocap bodies, with the weld
  stiffened so MuJoCo 3 tracks targets as MuJoCo 2.3.7 did;
- episodes are 400 steps (registered ``max_episode_steps``); ACT's scripted insertion needs ~340.

Observation spaces:

- ``state``: ``Box(-inf, inf, (35,) | (42,), float64)``;
- ``pixels``: ``Dict({camera: Box(0, 255, (H, W, 3), uint8)})``;
- ``pixels_agent_pos``: ``Dict(pixels=Dict({camera: ...}), agent_pos=Box((14,), float64))``;
- with ``depth=True`` both pixel types gain ``depth=Dict({camera: Box(0, 10, (H, W, 1), float32)})``
  (metres along the camera axis).

Actions: ``control="joint"``: ``Box((14,), float32)``, per arm 6 absolute joint targets
(rad, within the actuators' ranges) and a gripper opening in [0, 1]; ``control="ee"``:
``Box((16,), float32)``, per arm the target pose of gym-aloha's mocap body, position (m)
and quaternion (w, x, y, z; normalised on use), then the gripper opening. The weld holds the
point 13.5 cm ahead of ``gripper_link`` along its x axis (between the fingertips) on the
mocap position (see :mod:`il_toolkit.experts.aloha_ik`), as in ACT's scripted demos.
"""

from __future__ import annotations

import copy
from typing import Any

import gymnasium as gym
import mujoco
import numpy as np
from gymnasium import spaces

from il_toolkit.envs.aloha_scene import AlohaScene

OBS_TYPES = ("state", "pixels", "pixels_agent_pos")
CAMERA_ALIASES = {"head": "top"}
DEFAULT_CAMERAS = ("head", "left_wrist", "right_wrist")
DEFAULT_IMAGE_SIZE = (480, 640)
RENDER_SIZE = (480, 640)
RENDER_QUALITIES = ("fast", "package")
MAX_DEPTH = 10.0  # m; the far plane of the scene's cameras is well inside this


def sample_object_poses(task: str, seed: int) -> np.ndarray:
    """gym-aloha's initial object poses for ``seed`` (the package's own samplers, same seeds)."""
    from gym_aloha.utils import sample_box_pose, sample_insertion_pose

    if task == "transfer_cube":
        return sample_box_pose(seed)
    return np.concatenate(sample_insertion_pose(seed))


class AlohaEnv(gym.Env):
    """Bimanual ViperX arms: transfer a cube between the grippers, or insert a peg into a socket."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 50}

    def __init__(
        self,
        task: str = "transfer_cube",
        obs_type: str = "state",
        control: str = "joint",
        cameras: tuple[str, ...] | list[str] = DEFAULT_CAMERAS,
        image_size: tuple[int, int] = DEFAULT_IMAGE_SIZE,
        depth: bool = False,
        render_mode: str | None = "rgb_array",
        terminate_on_success: bool = False,
        render_quality: str = "fast",
    ) -> None:
        if obs_type not in OBS_TYPES:
            raise ValueError(f"unknown obs_type {obs_type!r}; choose one of {', '.join(OBS_TYPES)}")
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode {render_mode!r} is not supported; use 'rgb_array' or None")
        height, width = (int(v) for v in image_size)
        if height <= 0 or width <= 0:
            raise ValueError(f"image_size must be two positive ints (height, width), got {image_size!r}")
        self.scene = AlohaScene(task, control)
        self.task, self.control, self.obs_type = task, control, obs_type
        self.cameras = tuple(cameras)
        if obs_type != "state" and not self.cameras:
            raise ValueError(f"obs_type {obs_type!r} needs at least one camera, e.g. cameras=('head',)")
        known = {self.scene.model.camera(i).name for i in range(self.scene.model.ncam)}
        for camera in self.cameras:
            if CAMERA_ALIASES.get(camera, camera) not in known:
                raise ValueError(
                    f"unknown camera {camera!r}; choose from {', '.join(sorted(set(CAMERA_ALIASES) | known))}"
                )
        if render_quality not in RENDER_QUALITIES:
            raise ValueError(f"unknown render_quality {render_quality!r}; choose 'fast' or 'package'")
        self.render_quality = render_quality
        if render_quality == "fast":
            self.scene.model.vis.quality.offsamples = 0
        self.image_size, self.depth = (height, width), bool(depth)
        self.render_mode = render_mode
        self.terminate_on_success = terminate_on_success
        self._renderers: dict[tuple[int, int], Any] = {}
        self.observation_space = self._observation_space()
        self.action_space = self._action_space()

    # -- spaces ------------------------------------------------------------------------
    def _observation_space(self) -> spaces.Space:
        if self.obs_type == "state":
            return self.state_space
        h, w = self.image_size
        images = spaces.Dict({c: spaces.Box(0, 255, (h, w, 3), np.uint8) for c in self.cameras})
        parts: dict[str, spaces.Space] = {}
        if self.obs_type == "pixels":
            parts.update(images.spaces)
        else:
            parts["pixels"] = images
            parts["agent_pos"] = spaces.Box(-np.inf, np.inf, (14,), np.float64)
        if self.depth:
            parts["depth"] = spaces.Dict(
                {c: spaces.Box(0.0, MAX_DEPTH, (h, w, 1), np.float32) for c in self.cameras}
            )
        return spaces.Dict(parts)

    def _action_space(self) -> spaces.Box:
        if self.control == "ee":
            arm_low = np.array([-1, -1, -1, -1, -1, -1, -1, 0], dtype=np.float32)
            arm_high = np.ones(8, dtype=np.float32)
            return spaces.Box(np.tile(arm_low, 2), np.tile(arm_high, 2), dtype=np.float32)
        ranges = self.scene.model.actuator_ctrlrange  # (16, 2): per arm 6 joints, 2 fingers
        low = np.concatenate([ranges[0:6, 0], [0.0], ranges[8:14, 0], [0.0]]).astype(np.float32)
        high = np.concatenate([ranges[0:6, 1], [1.0], ranges[8:14, 1], [1.0]]).astype(np.float32)
        return spaces.Box(low, high, dtype=np.float32)

    # -- gym API -------------------------------------------------------------------------
    @property
    def action_reference(self) -> tuple[int, ...] | None:
        """The observation entries the action targets, for learners that regress actions as
        offsets (:class:`~il_toolkit.policies.mlp.MLPPolicy`): joint targets <- the 14 joint
        positions (``qpos``, the first 14 ``state`` entries). Joint control, ``state`` only."""
        return tuple(range(14)) if self.obs_type == "state" and self.control != "ee" else None

    @property
    def velocity_obs(self) -> tuple[int, ...]:
        """The arm joint velocities in the ``state`` observation (``qvel`` entries 14-27 without
        the two grippers'), which learners leave out by default (``ILConfig.drop_velocity_obs``):
        a servoed arm's next joint target is about its velocity carried on, so a learner that
        sees them copies them and, once stood still, stays still. The gripper velocities stay:
        whether the fingers are still closing is part of the task's state."""
        if self.obs_type != "state":
            return ()
        return tuple(i for i in range(14, 28) if i not in (20, 27))

    @property
    def action_chunk(self) -> int:
        """Actions a chunked learner should predict per step (``il-toolkit train flow``'s default
        horizon, half of it executed): 16, as ACT. A flow policy on transfer-cube state reached 60%
        success with chunks of 16 (8 executed) and 12% predicting one action at a time."""
        return 16

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict]:
        """New episode; ``seed`` gives the same object poses as gym-aloha with that seed.

        ``options={"object_poses": array}`` places the objects explicitly instead.
        """
        super().reset(seed=seed)
        options = options or {}
        if "object_poses" in options:
            poses = np.asarray(options["object_poses"], dtype=np.float64).reshape(-1)
            if poses.shape != (self.scene.object_qpos.size,):
                raise ValueError(
                    f"options['object_poses'] must hold {self.scene.object_qpos.size} numbers "
                    f"(x, y, z, qw, qx, qy, qz per object), got {poses.size}"
                )
        else:
            scene_seed = seed if seed is not None else int(self.np_random.integers(2**31 - 1))
            poses = sample_object_poses(self.task, scene_seed)
        self.scene.reset(poses)
        return self._observation(), self._info()

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
        action = np.asarray(action, dtype=np.float64).reshape(-1)
        if action.shape != self.action_space.shape:
            raise ValueError(f"action must have shape {self.action_space.shape}, got {action.shape}")
        if not np.all(np.isfinite(action)):
            raise ValueError(f"action contains non-finite values: {action}")
        if self.control == "ee":
            self.scene.apply_ee_action(action)
        else:
            self.scene.apply_joint_action(action)
        self.scene.step()
        info = self._info()
        terminated = "physics_diverged" in info or bool(self.terminate_on_success and info["is_success"])
        return self._observation(), float(info["stage"]), terminated, False, info

    def _info(self) -> dict[str, Any]:
        if self.scene.diverged:  # the state is MuJoCo's reset, not the episode's
            return {"is_success": False, "stage": 0, "physics_diverged": True}
        return {"is_success": self.scene.is_success(), "stage": self.scene.stage()}

    def snapshot(self) -> Any:
        """The episode's whole simulation state (a copy of the MuJoCo data), for :meth:`restore`:
        what lets an expert show what it would do from a state the learner reached, then the
        episode go on from there as if nothing happened."""
        return copy.copy(self.scene.data)

    def restore(self, snapshot: Any) -> None:
        """Put the simulation back to ``snapshot`` (from :meth:`snapshot` of this env)."""
        if not isinstance(snapshot, mujoco.MjData) or snapshot.qpos.shape != self.scene.data.qpos.shape:
            raise ValueError("restore() takes a snapshot() of this env")
        mujoco.mj_copyData(self.scene.data, self.scene.model, snapshot)

    @property
    def state_space(self) -> spaces.Box:
        """The space of :meth:`state_vector` (the ``state`` observation's)."""
        return spaces.Box(-np.inf, np.inf, (28 + self.scene.object_qpos.size,), np.float64)

    def state_vector(self) -> np.ndarray:
        """The ``state`` observation, whatever ``obs_type`` is: (35,) or (42,) float64."""
        return np.concatenate([self.scene.agent_qpos(), self.scene.agent_qvel(), self.scene.object_poses()])

    @property
    def object_state_entries(self) -> tuple[int, ...]:
        """The :meth:`state_vector` entries that hold the objects' poses (the cube's 7, or the
        peg's and the socket's 14): what a camera must show, as the agent's joints are measured."""
        return tuple(range(28, 28 + self.scene.object_qpos.size))

    @property
    def object_position_entries(self) -> tuple[int, ...]:
        """The objects' positions (x, y, z in metres) among :attr:`object_state_entries`."""
        return tuple(e for start in range(28, 28 + self.scene.object_qpos.size, 7) for e in range(start, start + 3))

    @property
    def renders_given_states(self) -> bool:
        """Whether :meth:`observe_state` works: joint control. The end-effector scenes also draw
        their mocap targets, which a state does not place."""
        return self.control == "joint"

    def observe_state(self, state: np.ndarray) -> Any:
        """The observation the env would give with the scene in ``state`` (:meth:`state_vector`'s
        layout): the arms and objects posed there, at rest, and rendered on scratch data, without
        simulating. The episode in progress is not touched. For labelled camera frames of states no
        episode reached (:func:`il_toolkit.train.state_estimation.recombined_frames`)."""
        if not self.renders_given_states:
            raise ValueError("observe_state needs control='joint': the end-effector scenes draw their mocap targets, "
                             "which a state does not place")
        state = np.asarray(state, dtype=np.float64)
        if state.shape != self.state_space.shape:
            raise ValueError(f"state must have shape {self.state_space.shape} (state_vector's layout), got {state.shape}")
        if self.obs_type == "state":
            return state.copy()
        return self._observation(self.scene.posed(state[:14], state[28:]))

    def _observation(self, data: Any = None) -> Any:
        """The observation of ``data`` (MuJoCo data; by default the episode's)."""
        if self.obs_type == "state":
            return self.state_vector()
        images = {c: self._render_camera(c, self.image_size, data=data) for c in self.cameras}
        obs: dict[str, Any] = dict(images) if self.obs_type == "pixels" else {
            "pixels": images,
            "agent_pos": self.scene.agent_qpos(data),
        }
        if self.depth:
            obs["depth"] = {c: self._render_camera(c, self.image_size, depth=True, data=data) for c in self.cameras}
        return obs

    # -- rendering -----------------------------------------------------------------------
    def _renderer(self, size: tuple[int, int]):
        import mujoco

        if size not in self._renderers:
            model = self.scene.model
            model.vis.global_.offheight = max(model.vis.global_.offheight, size[0])
            model.vis.global_.offwidth = max(model.vis.global_.offwidth, size[1])
            self._renderers[size] = mujoco.Renderer(model, height=size[0], width=size[1])
        return self._renderers[size]

    def _render_camera(self, camera: str, size: tuple[int, int], depth: bool = False, data: Any = None) -> np.ndarray:
        import mujoco

        renderer = self._renderer(size)
        if depth:
            renderer.enable_depth_rendering()
        try:
            renderer.update_scene(self.scene.data if data is None else data, camera=CAMERA_ALIASES.get(camera, camera))
            if self.render_quality == "fast":
                renderer.scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = False
                renderer.scene.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = False
            image = renderer.render()
        finally:
            if depth:
                renderer.disable_depth_rendering()
        if depth:
            return np.clip(image, 0.0, MAX_DEPTH).astype(np.float32)[..., None]
        return image.copy()

    def render(self) -> np.ndarray | None:
        """The head camera at 480×640 (``render_mode="rgb_array"``)."""
        if self.render_mode is None:
            return None
        return self._render_camera("head", RENDER_SIZE)

    def close(self) -> None:
        # dropping the renderers frees their GL contexts once; an explicit Renderer.close()
        # here makes MuJoCo's EGL context free itself a second time at garbage collection
        self._renderers.clear()
