"""The ALOHA scenes (gym-aloha's MJCF models) loaded straight into MuJoCo, and what they mean.

One :class:`AlohaScene` holds the ``MjModel``/``MjData`` of a task and answers questions
about the current state: the gym-aloha observation vectors, the package's stage reward
(0-4, computed exactly as ``gym_aloha.tasks.sim`` does) and the toolkit's strict success.

Conventions (gym-aloha's): ``qpos``/``qvel`` vectors are 14 long, per arm 6 joint angles
(rad) then the gripper's normalised finger opening (0 closed, 1 open); objects are free
bodies whose pose is ``(x, y, z, qw, qx, qy, qz)`` in metres, world frame.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import mujoco
import numpy as np

TASKS = ("transfer_cube", "insertion")
CONTROLS = ("joint", "ee")
ARMS = ("left", "right")

# gym-aloha's constants, restated so the physics never imports dm_control.
PUPPET_GRIPPER_POSITION_OPEN = 0.05800
PUPPET_GRIPPER_POSITION_CLOSE = 0.01844
START_ARM_POSE = np.array(
    [0, -0.96, 1.16, 0, -0.3, 0, 0.02239, -0.02239, 0, -0.96, 1.16, 0, -0.3, 0, 0.02239, -0.02239]
)
# Where gym-aloha's end-effector tasks put the mocap bodies at reset (ACT's scripted demos start here).
START_MOCAP_POS = np.array([[-0.31718881, 0.5, 0.29525084], [0.31718881, 0.49999888, 0.29525084]])
START_MOCAP_QUAT = np.array([[1.0, 0, 0, 0], [1.0, 0, 0, 0]])
# MuJoCo 3 makes gym-aloha's soft mocap weld (solimp .25 .25) lag far behind its target;
# this stiffer weld restores the MuJoCo 2.3.7 behaviour ACT's scripted demos rely on.
STIFF_WELD_SOLIMP = (0.95, 0.99, 0.001)
CONTROL_DT = 0.02  # seconds per env step (50 Hz), as in gym-aloha
OBJECT_JOINTS = {"transfer_cube": ("red_box_joint",), "insertion": ("red_peg_joint", "blue_socket_joint")}

# Strict success thresholds.
CUBE_LIFT_Z = 0.05  # m; the cube's centre rests at z = 0.02 on the table
SOCKET_HALF_LENGTH = 0.06  # m, along the socket's x axis
PEG_HALF_LENGTH = 0.06  # m, along the peg's x axis
MIN_INSERTION_DEPTH = 0.01  # m of peg inside the socket
MAX_PEG_OFFSET = 0.01  # m; the socket's 36 mm bore leaves a 20 mm peg ±8 mm of play
MIN_AXIS_ALIGNMENT = 0.95  # |cos| of the angle between peg and socket axes


def normalize_gripper_position(x: np.ndarray | float) -> np.ndarray | float:
    """Finger slide position (m) -> normalised opening (0 closed, 1 open)."""
    return (x - PUPPET_GRIPPER_POSITION_CLOSE) / (PUPPET_GRIPPER_POSITION_OPEN - PUPPET_GRIPPER_POSITION_CLOSE)


def unnormalize_gripper_position(x: np.ndarray | float) -> np.ndarray | float:
    """Normalised opening -> finger slide position target (m)."""
    return x * (PUPPET_GRIPPER_POSITION_OPEN - PUPPET_GRIPPER_POSITION_CLOSE) + PUPPET_GRIPPER_POSITION_CLOSE


def assets_dir() -> Path:
    try:
        import gym_aloha
    except ImportError as exc:  # pragma: no cover - gym-aloha is a dependency
        raise ImportError("the ALOHA envs need gym-aloha's models: pip install gym-aloha==0.1.5") from exc
    return Path(gym_aloha.__file__).parent / "assets"


def xml_path(task: str, control: str) -> Path:
    if task not in TASKS:
        raise ValueError(f"unknown ALOHA task {task!r}; choose one of {', '.join(TASKS)}")
    if control not in CONTROLS:
        raise ValueError(f"unknown control {control!r}; choose 'joint' (joint positions) or 'ee' (mocap end effector)")
    prefix = "bimanual_viperx_end_effector_" if control == "ee" else "bimanual_viperx_"
    return assets_dir() / f"{prefix}{task}.xml"


def load_model(task: str, control: str = "joint") -> mujoco.MjModel:
    """gym-aloha's model for ``task``; in ``ee`` control with the stiffened mocap weld."""
    model = mujoco.MjModel.from_xml_path(str(xml_path(task, control)))
    if control == "ee":
        model.eq_solimp[:, :3] = STIFF_WELD_SOLIMP
    return model


@dataclass(frozen=True)
class ArmIndex:
    """Addresses of one arm in ``qpos``/``qvel``/``ctrl`` and its geoms."""

    qpos: np.ndarray  # 6 arm joints then the two finger slides, shape (8,)
    qvel: np.ndarray  # shape (8,)
    finger_geoms: frozenset[int]  # both finger geoms of this arm's gripper
    geoms: frozenset[int]  # every geom of the arm
    gripper_body: int  # the ``gripper_link`` body (the end-effector frame)


# MuJoCo resets mjData after any of these (a non-finite or huge position, velocity or acceleration)
_BLOW_UP_WARNINGS = (mujoco.mjtWarning.mjWARN_BADQPOS, mujoco.mjtWarning.mjWARN_BADQVEL, mujoco.mjtWarning.mjWARN_BADQACC)


class AlohaScene:
    """A task's model and data plus the queries every ALOHA component shares."""

    def __init__(self, task: str, control: str = "joint") -> None:
        self.task, self.control = task, control
        self.model = load_model(task, control)
        self.data = mujoco.MjData(self.model)
        self.n_substeps = int(round(CONTROL_DT / self.model.opt.timestep))
        self.arms = {arm: self._arm_index(arm) for arm in ARMS}
        self._scratch: mujoco.MjData | None = None  # for posed()
        self.object_qpos = np.concatenate(
            [self._joint_qpos_slice(name) for name in OBJECT_JOINTS[task]]
        )  # (7,) or (14,)
        self.object_qvel = np.concatenate([self._joint_qvel_slice(name) for name in OBJECT_JOINTS[task]])
        geom = lambda name: mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_GEOM, name)  # noqa: E731
        self.table_geom = geom("table")
        self.package_finger_geoms = (geom("vx300s_left/10_left_gripper_finger"), geom("vx300s_right/10_right_gripper_finger"))
        if task == "transfer_cube":
            self.cube_geom = geom("red_box")
            self.cube_body = self.model.geom_bodyid[self.cube_geom]
        else:
            self.peg_geom = geom("red_peg")
            self.pin_geom = geom("pin")
            self.socket_geoms = frozenset(geom(f"socket-{i}") for i in range(1, 5))
            self.peg_body = self.model.geom_bodyid[self.peg_geom]
            self.socket_body = self.model.geom_bodyid[self.pin_geom]

    # -- layout ------------------------------------------------------------------------
    def _joint_qpos_slice(self, name: str) -> np.ndarray:
        joint = self.model.joint(name)
        width = {0: 7, 1: 4, 2: 1, 3: 1}[int(joint.type[0])]
        return np.arange(joint.qposadr[0], joint.qposadr[0] + width)

    def _joint_qvel_slice(self, name: str) -> np.ndarray:
        joint = self.model.joint(name)
        width = {0: 6, 1: 3, 2: 1, 3: 1}[int(joint.type[0])]
        return np.arange(joint.dofadr[0], joint.dofadr[0] + width)

    def _arm_index(self, arm: str) -> ArmIndex:
        names = ("waist", "shoulder", "elbow", "forearm_roll", "wrist_angle", "wrist_rotate", "left_finger", "right_finger")
        joints = [self.model.joint(f"vx300s_{arm}/{n}") for n in names]
        prefix = f"vx300s_{arm}/"
        geoms = frozenset(i for i in range(self.model.ngeom) if (self.model.geom(i).name or "").startswith(prefix))
        fingers = frozenset(
            mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_GEOM, f"{prefix}10_{side}_gripper_finger")
            for side in ("left", "right")
        )
        return ArmIndex(
            qpos=np.array([j.qposadr[0] for j in joints]),
            qvel=np.array([j.dofadr[0] for j in joints]),
            finger_geoms=fingers,
            geoms=geoms,
            gripper_body=mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_BODY, f"{prefix}gripper_link"),
        )

    # -- reset and step ----------------------------------------------------------------
    def reset(self, object_poses: np.ndarray) -> None:
        """Arms at gym-aloha's start pose, objects at ``object_poses`` ((7,) or (14,))."""
        mujoco.mj_resetData(self.model, self.data)
        self.data.qpos[:16] = START_ARM_POSE
        self.data.qpos[self.object_qpos] = object_poses
        if self.control == "joint":
            self.data.ctrl[:] = START_ARM_POSE
        else:
            self.data.mocap_pos[:] = START_MOCAP_POS
            self.data.mocap_quat[:] = START_MOCAP_QUAT
            closed = PUPPET_GRIPPER_POSITION_CLOSE
            self.data.ctrl[:] = (closed, -closed, closed, -closed)
        mujoco.mj_forward(self.model, self.data)

    def posed(self, agent_qpos: np.ndarray, object_poses: np.ndarray) -> mujoco.MjData:
        """Scratch data (reused by the next call) with the arms at ``agent_qpos`` (:meth:`agent_qpos`'s
        layout, (14,)) and the objects at ``object_poses``, at rest, positions computed: for
        rendering a state without simulating. The scene's own ``data`` is not touched."""
        if self._scratch is None:
            self._scratch = mujoco.MjData(self.model)
        data = self._scratch
        mujoco.mj_resetData(self.model, data)
        for i, arm in enumerate(ARMS):
            index = self.arms[arm].qpos
            data.qpos[index[:6]] = agent_qpos[7 * i : 7 * i + 6]
            finger = unnormalize_gripper_position(agent_qpos[7 * i + 6])
            data.qpos[index[6:8]] = (finger, -finger)
        data.qpos[self.object_qpos] = object_poses
        mujoco.mj_forward(self.model, data)
        return data

    def apply_joint_action(self, action: np.ndarray) -> None:
        """``action`` (14,): per arm 6 joint targets (rad) and a normalised gripper target."""
        ctrl = np.empty(16)
        for i, base in enumerate((0, 7)):
            finger = unnormalize_gripper_position(action[base + 6])
            ctrl[8 * i : 8 * i + 6] = action[base : base + 6]
            ctrl[8 * i + 6 : 8 * i + 8] = (finger, -finger)
        self.data.ctrl[:] = ctrl

    def apply_ee_action(self, action: np.ndarray) -> None:
        """``action`` (16,): per arm xyz (m), quaternion wxyz and a normalised gripper target."""
        fingers = []
        for i in range(2):
            part = action[8 * i : 8 * i + 8]
            quat = np.asarray(part[3:7], dtype=np.float64)
            norm = np.linalg.norm(quat)
            self.data.mocap_pos[i] = part[:3]
            self.data.mocap_quat[i] = quat / norm if norm > 1e-8 else (1.0, 0.0, 0.0, 0.0)
            finger = unnormalize_gripper_position(part[7])
            fingers += [finger, -finger]
        self.data.ctrl[:] = fingers

    def step(self) -> None:
        """Advance one control period (``CONTROL_DT`` seconds)."""
        mujoco.mj_step(self.model, self.data, nstep=self.n_substeps)

    @property
    def diverged(self) -> bool:
        """Whether the physics blew up since the last reset (a non-finite or huge position,
        velocity or acceleration, which a learner's joint targets can provoke; seen on transfer
        cube while a grasped cube was carried). MuJoCo then resets the whole state to the model's
        defaults on its own (warnings BADQPOS, BADQVEL, BADQACC), so nothing after it belongs to
        the episode."""
        return any(self.data.warning[w].number > 0 for w in _BLOW_UP_WARNINGS)

    # -- observations --------------------------------------------------------------------
    def agent_qpos(self, data: mujoco.MjData | None = None) -> np.ndarray:
        """gym-aloha's ``qpos`` (14,): joint angles and normalised gripper openings (of ``data``,
        by default the scene's)."""
        out = np.empty(14)
        for i, arm in enumerate(ARMS):
            q = (self.data if data is None else data).qpos[self.arms[arm].qpos]
            out[7 * i : 7 * i + 6] = q[:6]
            out[7 * i + 6] = normalize_gripper_position(q[6])
        return out

    def agent_qvel(self) -> np.ndarray:
        """gym-aloha's ``qvel`` (14,): joint velocities (rad/s) and normalised gripper velocity (1/s)."""
        out = np.empty(14)
        for i, arm in enumerate(ARMS):
            v = self.data.qvel[self.arms[arm].qvel]
            out[7 * i : 7 * i + 6] = v[:6]
            out[7 * i + 6] = v[6] / (PUPPET_GRIPPER_POSITION_OPEN - PUPPET_GRIPPER_POSITION_CLOSE)
        return out

    def object_poses(self) -> np.ndarray:
        """gym-aloha's ``env_state``: object poses, (7,) cube or (14,) peg then socket."""
        return self.data.qpos[self.object_qpos].copy()

    def ee_pose(self, arm: str) -> tuple[np.ndarray, np.ndarray]:
        """World position (3,) and quaternion wxyz (4,) of ``arm``'s gripper_link."""
        body = self.arms[arm].gripper_body
        return self.data.xpos[body].copy(), self.data.xquat[body].copy()

    # -- contacts, stage and success -----------------------------------------------------
    def contact_pairs(self) -> set[tuple[int, int]]:
        """Unordered geom-id pairs in contact now (each pair stored both ways round)."""
        n = self.data.ncon
        g1, g2 = self.data.contact.geom1[:n], self.data.contact.geom2[:n]
        return {(int(a), int(b)) for a, b in zip(g1, g2)} | {(int(b), int(a)) for a, b in zip(g1, g2)}

    def stage(self) -> int:
        """The package's reward (0-4), computed as ``gym_aloha.tasks.sim`` computes it."""
        pairs = self.contact_pairs()
        touching = lambda a, group: any((a, b) in pairs for b in group)  # noqa: E731
        # the package looks at one finger geom per gripper
        left_finger, right_finger = self.package_finger_geoms
        if self.task == "transfer_cube":
            touch_left = (self.cube_geom, left_finger) in pairs
            touch_right = (self.cube_geom, right_finger) in pairs
            on_table = (self.cube_geom, self.table_geom) in pairs
            reward = 0
            if touch_right:
                reward = 1
            if touch_right and not on_table:
                reward = 2
            if touch_left:
                reward = 3
            if touch_left and not on_table:
                reward = 4
            return reward
        touch_right = (self.peg_geom, right_finger) in pairs
        touch_left = touching(left_finger, self.socket_geoms)
        peg_on_table = (self.peg_geom, self.table_geom) in pairs
        socket_on_table = touching(self.table_geom, self.socket_geoms)
        peg_touch_socket = touching(self.peg_geom, self.socket_geoms)
        reward = 0
        if touch_left and touch_right:
            reward = 1
        if touch_left and touch_right and not peg_on_table and not socket_on_table:
            reward = 2
        if peg_touch_socket and not peg_on_table and not socket_on_table:
            reward = 3
        if (self.peg_geom, self.pin_geom) in pairs:
            reward = 4
        return reward

    def is_success(self) -> bool:
        """The strict end-state check.

        Transfer: the cube touches both fingers of the left gripper, nothing of the right
        arm, not the table, and its centre is above ``CUBE_LIFT_Z``. Insertion: the peg's
        axis is aligned with the socket's, its centre within ``MAX_PEG_OFFSET`` of the bore's
        axis, and at least ``MIN_INSERTION_DEPTH`` of it inside the socket.
        """
        if self.task == "transfer_cube":
            pairs = self.contact_pairs()
            cube = self.cube_geom
            held = all((cube, g) in pairs for g in self.arms["left"].finger_geoms)
            touches_right = any((cube, g) in pairs for g in self.arms["right"].geoms)
            on_table = (cube, self.table_geom) in pairs
            lifted = self.data.xpos[self.cube_body][2] > CUBE_LIFT_Z
            return bool(held and not touches_right and not on_table and lifted)
        return self.insertion_depth() >= MIN_INSERTION_DEPTH

    def peg_in_socket_frame(self) -> tuple[np.ndarray, float]:
        """The peg's centre in the socket's frame (3,) and |cos| between their x axes."""
        socket_rot = self.data.xmat[self.socket_body].reshape(3, 3)
        peg_rot = self.data.xmat[self.peg_body].reshape(3, 3)
        offset = socket_rot.T @ (self.data.xpos[self.peg_body] - self.data.xpos[self.socket_body])
        return offset, float(abs(socket_rot[:, 0] @ peg_rot[:, 0]))

    def insertion_depth(self) -> float:
        """How far (m) the peg reaches into the socket's bore; negative when it is not in it."""
        offset, alignment = self.peg_in_socket_frame()
        if alignment < MIN_AXIS_ALIGNMENT or np.abs(offset[1:]).max() > MAX_PEG_OFFSET:
            return -1.0
        return float(SOCKET_HALF_LENGTH + PEG_HALF_LENGTH - abs(offset[0]))
