"""State-feedback experts for the ALOHA tasks, acting in joint space.

Each query reads one ``state`` vector (``[qpos 14, qvel 14, object poses]``, see
:mod:`il_toolkit.envs.aloha_scene`), infers the phase of the task from it alone (where the
objects are relative to the grippers, how far each gripper is closed and whether it is
still moving) and answers with joint targets: for each arm an end-effector goal pose is
computed from the current object poses and the phase, a rate-limited step towards it is
turned into joint angles by damped-least-squares IK, and the gripper is opened or closed.
Nothing depends on a step counter or on having driven the episode, so DAgger can query
the expert from any state the learner reaches, and a batch of states is answered row by row.
Recovery is part of the phase logic: an arm far outside the workspace first returns to its
start pose in joint space, a grasp that jams open is retried from above, an object held
off-centre is carried by where the object is rather than where the hand is.

With a pixel observation the expert reads the state from the env instance it was given
(``env.unwrapped.state_vector()``), so it must be the instance being stepped.

End-effector targets are expressed, like ACT's scripted policies, as the pose of gym-aloha's
mocap frame (see :mod:`il_toolkit.experts.aloha_ik`); the geometry below was measured on
ACT's end-effector demos replayed on MuJoCo 3 with the stiffened weld.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import mujoco
import numpy as np
import torch
from gymnasium import spaces

from il_toolkit.experts.aloha_ik import MOCAP_TO_GRIPPER, ArmIK, quat_error, quat_from_axis_angle, quat_mul, quat_to_mat
from il_toolkit.policies.base import BasePolicy

OPEN, CLOSED = 1.0, 0.0
PICK_RIGHT = quat_from_axis_angle((0, 1, 0), -60)  # ACT's top-down grasp, right arm (mocap frame)
PICK_LEFT = quat_from_axis_angle((0, 1, 0), 60)  # the same for the left arm (ACT's insertion)
HANDOVER_LEFT = quat_from_axis_angle((1, 0, 0), 90)  # left gripper's jaws vertical for the handover
TRANSFER_MEET = np.array([0.0, 0.5, 0.25])  # m, where the right arm presents the cube
CUBE_OFFSET_AT_MEET = np.array([0.0, 0.0, 0.018])  # m, hand minus cube in a centred top grasp
INSERTION_MEET = np.array([0.0, 0.5, 0.15])
HOME_Q = np.array([0.0, -0.96, 1.16, 0.0, -0.3, 0.0])  # gym-aloha's start pose of either arm, rad
# Where each object sits in the tool frame when gripped well (measured on ACT's demos), m.
CUBE_IN_RIGHT = np.array([0.013, 0.0, -0.008])
CUBE_IN_LEFT = np.array([-0.011, 0.0, 0.002])
PEG_IN_RIGHT = np.array([0.009, 0.0, -0.005])
SOCKET_IN_LEFT = np.array([-0.002, 0.0, 0.001])
DESCEND_SPEED = 0.005  # m per step, lowering the open gripper around an object
CARRY_SPEED = 0.006  # m per step while carrying the peg (faster and it slips in the fingers)
CUBE_CARRY_SPEED = 0.012  # m per step, the cube in the right gripper once off the table
SOCKET_CARRY_SPEED = 0.008  # the socket sits firmly in the left gripper
INSERT_SPEED = 0.006  # m per step while pushing the peg in
ALIGN_GAIN = 3.0
ALIGN_PUSH = 0.01  # m, the most an alignment goal overshoots
APPROACH_STANDOFF = 0.16  # m from the socket's centre to the peg's, peg 4 cm clear of the socket
INSERTED_STANDOFF = 0.099  # the peg 2 cm inside the socket, its end pressed lightly on the pin
GRIPPER_OPEN = 0.85  # normalised opening above which the gripper counts as open
GRIPPER_AT_REST = 0.05  # |normalised opening velocity| (1/s) below which the fingers are still
CLOSE_TOLERANCE = 0.006  # m between the object and its grip point before the gripper closes


def grasp_position(obj: np.ndarray, mocap_quat: np.ndarray, arm: str, local: np.ndarray) -> np.ndarray:
    """Tool position (m) that puts ``obj`` at ``local`` in the tool frame, for the orientation ``mocap_quat``."""
    return np.asarray(obj) - quat_to_mat(quat_mul(mocap_quat, MOCAP_TO_GRIPPER[arm])) @ local


@dataclass(frozen=True)
class ArmState:
    """One arm's part of a state vector, with its tool pose from forward kinematics."""

    name: str  # "left" or "right"
    q: np.ndarray  # (6,) rad
    gripper: float  # normalised opening, 0 closed .. ~0.97 fully open
    gripper_vel: float  # normalised opening per second
    tool_pos: np.ndarray  # (3,) m, world
    tool_rot: np.ndarray  # (3, 3) gripper orientation, world

    def local(self, point: np.ndarray) -> np.ndarray:
        """``point`` (world, m) in this arm's tool frame."""
        return self.tool_rot.T @ (np.asarray(point) - self.tool_pos)


@dataclass(frozen=True)
class Goal:
    """Where one arm should go: a mocap-frame pose (ACT's convention) and a gripper command."""

    pos: np.ndarray
    quat: np.ndarray
    gripper: float
    max_speed: float | None = None  # m per step; None for the expert's default
    free: bool = False  # a move through free space: straight in joint space, at the joints' pace


class AlohaStateExpert(BasePolicy):
    """Shared machinery: state parsing, FK, rate-limited IK to joint targets.

    Subclasses implement :meth:`goals` (state -> a :class:`Goal` per arm).

    Args:
        env: the env the expert acts in (its spaces; read for the state with pixel obs).
        max_speed: Cartesian step limit of a goal-directed motion, m per 20 ms step.
        max_turn: orientation step limit, rad per step.
        joint_gain: (per joint, or one for all) the joint command overshoots the IK solution
            by this factor of the remaining error, which beats the servos' joint friction.
        max_joint_step: joint command limit relative to the current angles, rad.
        noise: std of Gaussian noise (rad) added to arm joint targets when
            ``deterministic=False``, for varied demonstrations.
        seed: seeds that noise.
    """

    task: str = ""
    memoryless = True  # state feedback: the action depends on the state alone
    # Tuned per task (the picks differ: a cube alone on the table vs. two objects side by side).
    FREE_MOVE_MIN = 0.03  # m; closer than this even a free move finishes in Cartesian steps
    RISE_BELOW = 0.05  # m above the grasp point below which an arm rises before crossing over
    RISE_TO_APPROACH_HEIGHT = False  # rise straight to the approach height, else by 5 cm a step

    def __init__(
        self,
        env: gym.Env | None = None,
        *,
        max_speed: float = 0.008,
        max_turn: float = 0.06,
        joint_gain: float | tuple[float, ...] = 1.5,
        max_joint_step: float = 0.08,
        noise: float = 0.0,
        seed: int | None = None,
    ) -> None:
        from il_toolkit.envs.aloha_scene import load_model

        n_objects = 7 if self.task == "transfer_cube" else 14
        state_space = spaces.Box(-np.inf, np.inf, (28 + n_objects,), np.float64)
        observation_space = env.observation_space if env is not None else state_space
        action_space = env.action_space if env is not None else None
        if action_space is not None and action_space.shape != (14,):
            raise ValueError(
                f"the ALOHA experts act in joint space (14 actions); this env's actions are {action_space}: "
                "use il_toolkit/AlohaTransferCube-v0 or il_toolkit/AlohaInsertion-v0"
            )
        if action_space is None:
            ranges = load_model(self.task).actuator_ctrlrange
            low = np.concatenate([ranges[0:6, 0], [0.0], ranges[8:14, 0], [0.0]]).astype(np.float32)
            high = np.concatenate([ranges[0:6, 1], [1.0], ranges[8:14, 1], [1.0]]).astype(np.float32)
            action_space = spaces.Box(low, high, dtype=np.float32)
        super().__init__(observation_space, action_space)
        self.env = env
        self.state_dim = state_space.shape[0]
        model = load_model(self.task)
        self.ik = {arm: ArmIK(model, arm) for arm in ("left", "right")}
        self.max_speed, self.max_turn = max_speed, max_turn
        self.joint_gain = np.broadcast_to(np.asarray(joint_gain, dtype=np.float64), (6,)).copy()
        self.max_joint_step = max_joint_step
        self.noise = noise
        self.rng = np.random.default_rng(seed)

    # -- state -------------------------------------------------------------------------
    def _states(self, observations: Any) -> np.ndarray:
        if isinstance(observations, np.ndarray) and observations.shape[-1:] == (self.state_dim,):
            return observations.astype(np.float64).reshape(-1, self.state_dim)
        if self.env is None:
            raise ValueError(
                "this ALOHA expert got non-state observations and has no env to read the state from: "
                "pass the env instance being stepped, make_expert(env_id, env=env)"
            )
        return self.env.unwrapped.state_vector()[None]

    def arm_state(self, state: np.ndarray, arm: str) -> ArmState:
        base = 0 if arm == "left" else 7
        q = state[base : base + 6]
        ik = self.ik[arm]
        ik.data.qpos[ik.qpos_adr] = q
        mujoco.mj_kinematics(ik.model, ik.data)
        pos, quat = ik.tool_pose(ik.data)
        return ArmState(arm, q.copy(), float(state[base + 6]), float(state[14 + base + 6]), pos, quat_to_mat(quat))

    # -- acting --------------------------------------------------------------------------
    def predict(
        self,
        observation: Any,
        state: Any = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = True,
    ) -> tuple[np.ndarray, Any]:
        """Act on a state vector (D,), a batch of them (B, D), or any observation of the env (its state)."""
        if isinstance(observation, np.ndarray) and observation.shape[-1:] == (self.state_dim,):
            actions = self._predict_batch(observation.reshape(-1, self.state_dim), deterministic)
            return (actions if observation.ndim == 2 else actions[0]), state
        return self._predict_batch(observation, deterministic)[0], state

    def goals(self, state: np.ndarray, arms: dict[str, ArmState]) -> dict[str, Goal]:
        raise NotImplementedError

    def _predict_batch(self, observations: Any, deterministic: bool) -> np.ndarray:
        states = self._states(observations)
        return np.stack([self.act(state, deterministic) for state in states]).astype(np.float32)

    def act(self, state: np.ndarray, deterministic: bool = True) -> np.ndarray:
        """Joint action (14,) for one state vector."""
        arms = {arm: self.arm_state(state, arm) for arm in ("left", "right")}
        goals = self.goals(state, arms)
        action = np.empty(14)
        for i, arm in enumerate(("left", "right")):
            if self.lost(arms[arm]):
                q_cmd = self._joint_step(arms[arm], HOME_Q)
            else:
                q_cmd = self._joint_command(arm, arms[arm], goals[arm])
            if not deterministic and self.noise > 0:
                q_cmd = q_cmd + self.rng.normal(0.0, self.noise, 6)
            action[7 * i : 7 * i + 6] = q_cmd
            action[7 * i + 6] = goals[arm].gripper
        return np.clip(action, self.action_space.low, self.action_space.high)

    def pick(
        self,
        arm: ArmState,
        obj: np.ndarray,
        quat: np.ndarray,
        jaw: tuple[float, float, float],
        local: np.ndarray,
        symmetry: float,
        hold_max: float,
    ) -> Goal:
        """Grasp the object at pose ``obj`` (7,) from above: approach, descend open, close.

        ``quat`` is the grasp orientation for an object at zero yaw; it is turned with the
        object's yaw, modulo ``symmetry`` (rad). ``local`` is where the object should sit in the
        tool frame; ``jaw`` bounds "between the fingers"; a gripper that stops closing above
        ``hold_max`` missed or jammed, so it opens and tries again from above.
        """
        quat = yaw_aligned(quat, obj[3:7], symmetry)
        grasp = grasp_position(obj[:3], quat, arm.name, local)
        above = grasp + (0, 0, 0.08)
        over = _near(arm.tool_pos[:2], grasp[:2], 0.012) and arm.tool_pos[2] < above[2] + 0.02
        if over and arm.gripper > GRIPPER_OPEN:
            if _near(arm.local(obj[:3]), local, CLOSE_TOLERANCE):
                return Goal(grasp, quat, CLOSED)
            return Goal(grasp, quat, OPEN, max_speed=DESCEND_SPEED)
        low = arm.tool_pos[2] < grasp[2] + 0.02
        if _in_jaw(arm.local(obj[:3]), jaw) and arm.gripper <= GRIPPER_OPEN and low:
            if arm.gripper_vel < -GRIPPER_AT_REST or arm.gripper <= hold_max:
                return Goal(arm.tool_pos, quat, CLOSED)  # closing on the object: hold still
            return Goal(above, quat, OPEN)  # stalled open or opening: retry from above
        if arm.tool_pos[2] < grasp[2] + self.RISE_BELOW and not _near(arm.tool_pos[:2], grasp[:2], 0.012):
            # rise before crossing over
            if self.RISE_TO_APPROACH_HEIGHT:
                return Goal(np.array([*arm.tool_pos[:2], above[2]]), quat, OPEN)
            return Goal(arm.tool_pos + (0, 0, 0.05), quat, OPEN)
        return Goal(above, quat, OPEN, free=True)

    @staticmethod
    def lost(arm: ArmState) -> bool:
        """Whether the arm is too far out of the task's workspace for Cartesian control to bring it back.

        From such a configuration (after a learner's or a noisy policy's excursion) the arm
        first returns to its start pose in joint space.
        """
        x, y, z = arm.tool_pos
        own_side = x < 0.3 if arm.name == "left" else x > -0.3
        in_box = abs(x) < 0.45 and 0.25 < y < 0.75 and -0.02 < z < 0.45 and own_side
        twisted = abs(arm.q[0]) > 1.0 or abs(arm.q[3]) > 1.0 or abs(arm.q[5]) > 2.5
        return not in_box or twisted

    def _joint_step(self, current: ArmState, q_goal: np.ndarray) -> np.ndarray:
        correction = self.joint_gain * (q_goal - current.q)
        return current.q + np.clip(correction, -self.max_joint_step, self.max_joint_step)

    def _joint_command(self, arm: str, current: ArmState, goal: Goal) -> np.ndarray:
        target_quat = quat_mul(goal.quat, MOCAP_TO_GRIPPER[arm])
        delta = goal.pos - current.tool_pos
        if goal.free and np.linalg.norm(delta) > self.FREE_MOVE_MIN:
            return self._joint_step(current, self.ik[arm].solve(current.q, goal.pos, target_quat))
        # a rate-limited step from where the tool is towards the goal
        speed = goal.max_speed or self.max_speed
        distance = np.linalg.norm(delta)
        step_pos = current.tool_pos + (delta if distance <= speed else delta * speed / distance)
        current_quat = _mat_to_quat(current.tool_rot)
        turn = quat_error(target_quat, current_quat)
        angle = np.linalg.norm(turn)
        step_quat = target_quat if angle <= self.max_turn else _rotate(current_quat, turn * self.max_turn / angle)
        return self._joint_step(current, self.ik[arm].solve(current.q, step_pos, step_quat))

    # -- checkpoints: the expert is code plus these few numbers ---------------------------
    def checkpoint_config(self) -> dict[str, Any]:
        return {
            "max_speed": self.max_speed,
            "max_turn": self.max_turn,
            "joint_gain": self.joint_gain.tolist(),
            "max_joint_step": self.max_joint_step,
            "noise": self.noise,
        }

    def checkpoint_tensors(self) -> dict[str, torch.Tensor]:
        return {}

    @classmethod
    def from_checkpoint(cls, config, tensors, observation_space, action_space) -> "AlohaStateExpert":
        expert = cls(None, **config)
        expert.observation_space, expert.action_space = observation_space, action_space
        return expert


def yaw_aligned(quat: np.ndarray, obj_quat: np.ndarray, symmetry: float) -> np.ndarray:
    """``quat`` turned about world z by the yaw of ``obj_quat`` (wxyz), folded into ±symmetry/2."""
    w, x, y, z = obj_quat
    yaw = np.arctan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z))
    yaw = (yaw + symmetry / 2) % symmetry - symmetry / 2
    return quat_mul(quat_from_axis_angle((0, 0, 1), np.rad2deg(yaw)), quat)


def _mat_to_quat(rot: np.ndarray) -> np.ndarray:
    out = np.empty(4)
    mujoco.mju_mat2Quat(out, np.ascontiguousarray(rot).reshape(9))
    return out


def _rotate(quat: np.ndarray, rotvec: np.ndarray) -> np.ndarray:
    """``quat`` turned by world-frame rotation vector ``rotvec`` (rad)."""
    angle = np.linalg.norm(rotvec)
    if angle < 1e-12:
        return quat
    return quat_mul(quat_from_axis_angle(tuple(rotvec / angle), np.rad2deg(angle)), quat)


def _near(a: np.ndarray, b: np.ndarray, tol: float) -> bool:
    return bool(np.linalg.norm(np.asarray(a) - np.asarray(b)) < tol)


def _in_jaw(local: np.ndarray, half_extent: tuple[float, float, float]) -> bool:
    return bool(np.all(np.abs(local) < half_extent))


class AlohaTransferCubeExpert(AlohaStateExpert):
    """Right arm picks the cube from the table and presents it; the left arm takes it over.

    Phases, inferred from the state: right gripper not holding the cube -> approach above
    it, descend, close; right holding -> carry it to the meeting point; left waits beside
    that point, moves in once the cube is there, closes; once the left holds it, the right
    opens and withdraws, then the left pulls the cube away.
    """

    checkpoint_kind = "aloha_transfer_cube_expert"
    task = "transfer_cube"
    FREE_MOVE_MIN = 0.1
    RISE_BELOW = 0.03
    RISE_TO_APPROACH_HEIGHT = True

    # cube (40 mm) in the tool frame when gripped: right ~(0.014, 0, -0.009), left ~(-0.011, -0.003, 0.002)
    JAW = (0.035, 0.02, 0.035)
    HOLD_OPENING = 0.72  # a gripper closed on the cube reads ~0.55-0.60; fully open ~0.97
    MIN_OPENING = 0.3  # below this the gripper closed on nothing

    def holds(self, arm: ArmState, cube: np.ndarray) -> bool:
        return (
            _in_jaw(arm.local(cube), self.JAW)
            and self.MIN_OPENING < arm.gripper < self.HOLD_OPENING
        )

    def goals(self, state: np.ndarray, arms: dict[str, ArmState]) -> dict[str, Goal]:
        cube = state[28:31]
        left, right = arms["left"], arms["right"]
        left_holds, right_holds = self.holds(left, cube), self.holds(right, cube)
        right_near_cube = _in_jaw(right.local(cube), self.JAW)
        return {"left": self._left(cube, left, left_holds, right_holds, right_near_cube),
                "right": self._right(state[28:35], right, left_holds, right_holds)}

    def _right(self, cube_pose: np.ndarray, right: ArmState, left_holds: bool, right_holds: bool) -> Goal:
        lifted = cube_pose[2] > 0.1
        if left_holds and lifted:
            if right.gripper < 0.9:  # let go first, in place
                return Goal(right.tool_pos, PICK_RIGHT, OPEN)
            return Goal(TRANSFER_MEET + (0.12, 0, 0.02), PICK_RIGHT, OPEN)
        if right_holds:
            # bring the cube (not the hand: the cube may sit off-centre in the fingers) to the meeting point
            speed = CUBE_CARRY_SPEED if cube_pose[2] > 0.06 else None  # gently until clear of the table
            goal = TRANSFER_MEET + (right.tool_pos - cube_pose[:3]) - CUBE_OFFSET_AT_MEET
            return Goal(goal, PICK_RIGHT, CLOSED, max_speed=speed)
        return self.pick(right, cube_pose, PICK_RIGHT, self.JAW, CUBE_IN_RIGHT, np.pi / 2, self.HOLD_OPENING)

    def _left(
        self, cube: np.ndarray, left: ArmState, left_holds: bool, right_holds: bool, right_near_cube: bool
    ) -> Goal:
        wait = TRANSFER_MEET + (-0.08, 0, -0.02)
        if left_holds and cube[2] > 0.1:
            if right_near_cube:
                return Goal(left.tool_pos, HANDOVER_LEFT, CLOSED)  # hold still while the right lets go
            return Goal(TRANSFER_MEET + (-0.1, 0, -0.0), HANDOVER_LEFT, CLOSED)
        presented = right_holds and cube[2] > 0.15 and _near(cube[:2], TRANSFER_MEET[:2], 0.015)
        if not presented and not _in_jaw(left.local(cube), self.JAW):
            return Goal(wait, HANDOVER_LEFT, OPEN, free=True)
        grasp = grasp_position(cube, HANDOVER_LEFT, "left", CUBE_IN_LEFT)
        pre = grasp + (-0.06, 0, 0)
        local = left.local(cube)
        if _in_jaw(local, self.JAW) and left.gripper <= GRIPPER_OPEN:
            if left.gripper_vel < -GRIPPER_AT_REST or left.gripper <= self.HOLD_OPENING:
                return Goal(left.tool_pos, HANDOVER_LEFT, CLOSED)  # closing on the cube: hold still
            return Goal(pre, HANDOVER_LEFT, OPEN)  # stalled open: back off and retry
        if _in_jaw(local, self.JAW) and local[0] <= CUBE_IN_LEFT[0] + CLOSE_TOLERANCE:  # deep enough
            return Goal(grasp, HANDOVER_LEFT, CLOSED)
        # A funnel along the tool's x axis: advance only while the cube is centred between the
        # jaws, otherwise slide sideways onto the axis at the current depth.
        lateral = local[1:] - CUBE_IN_LEFT[1:]
        ahead = local[0] > CUBE_IN_LEFT[0] - 0.02
        if ahead and np.abs(lateral).max() < 0.006 and left.gripper > GRIPPER_OPEN:
            return Goal(grasp, HANDOVER_LEFT, OPEN, max_speed=0.006)
        if ahead and np.abs(lateral).max() < 0.02 and left.gripper > GRIPPER_OPEN:
            sideways = left.tool_rot @ np.array([0.0, *lateral])
            push = np.clip((ALIGN_GAIN - 1.0) * sideways, -ALIGN_PUSH, ALIGN_PUSH)
            return Goal(left.tool_pos + sideways + push, HANDOVER_LEFT, OPEN, max_speed=0.006)
        return Goal(pre, HANDOVER_LEFT, OPEN, max_speed=0.004)


class AlohaInsertionExpert(AlohaStateExpert):
    """Left arm picks the socket, right arm the peg; both lift, the right aligns the peg with the socket's bore and pushes it in.

    The alignment is closed-loop on the object poses: the right arm's goal is the tool
    pose that would put the peg, as it sits in the hand now, on the socket's axis.
    """

    checkpoint_kind = "aloha_insertion_expert"
    task = "insertion"

    PEG_JAW = (0.035, 0.02, 0.035)
    SOCKET_JAW = (0.035, 0.03, 0.035)
    HELD_JAW = (0.06, 0.06, 0.06)  # a held object may slide or pivot in the fingers
    PEG_HOLD_OPENING = (0.2, 0.55)  # a gripper closed on the 20 mm peg reads ~0.35
    SOCKET_HOLD_OPENING = (0.45, 0.8)  # closed on the socket's 40 mm wall ~0.66

    def holds(self, arm: ArmState, point: np.ndarray, jaw: tuple, opening: tuple[float, float]) -> bool:
        return (
            _in_jaw(arm.local(point), jaw)
            and opening[0] < arm.gripper < opening[1]
        )

    def goals(self, state: np.ndarray, arms: dict[str, ArmState]) -> dict[str, Goal]:
        peg, socket = state[28:35], state[35:42]
        left, right = arms["left"], arms["right"]
        right_holds = self.holds(right, peg[:3], self.HELD_JAW, self.PEG_HOLD_OPENING)
        left_holds = self.holds(left, socket[:3], self.HELD_JAW, self.SOCKET_HOLD_OPENING)
        if left_holds:
            left_goal = Goal(INSERTION_MEET + (-0.1, 0, 0), PICK_LEFT, CLOSED, max_speed=SOCKET_CARRY_SPEED)
        else:
            left_goal = self.pick(
                left, socket, PICK_LEFT, self.SOCKET_JAW, SOCKET_IN_LEFT, np.pi, self.SOCKET_HOLD_OPENING[1]
            )
        if right_holds:
            right_goal = self._insert(peg, socket, right, left_holds)
        else:
            right_goal = self.pick(right, peg, PICK_RIGHT, self.PEG_JAW, PEG_IN_RIGHT, np.pi, self.PEG_HOLD_OPENING[1])
        return {"left": left_goal, "right": right_goal}

    def _insert(self, peg: np.ndarray, socket: np.ndarray, right: ArmState, left_holds: bool) -> Goal:
        presented = INSERTION_MEET + (0.1, 0, 0)
        if not left_holds or peg[2] < 0.08:
            return Goal(presented, PICK_RIGHT, CLOSED, max_speed=CARRY_SPEED)
        socket_rot = quat_to_mat(socket[3:])
        offset = socket_rot.T @ (peg[:3] - socket[:3])  # the peg in the socket's frame
        # A funnel: the better the peg sits on the bore's axis, the deeper it is sent.
        lateral = float(np.linalg.norm(offset[1:]))
        standoff = INSERTED_STANDOFF + (APPROACH_STANDOFF - INSERTED_STANDOFF) * float(
            np.clip((lateral - 0.002) / 0.004, 0.0, 1.0)
        )
        peg_goal = socket[:3] + socket_rot @ np.array([standoff, 0.0, 0.0])
        # translate the hand by the peg's error; the grip orientation stays world-fixed, so a
        # peg pivoting in the fingers cannot feed back into the wrist
        # (overshooting small errors by ALIGN_GAIN, up to ALIGN_PUSH: the servos leave a few
        # millimetres of error without it)
        error = peg_goal - peg[:3]
        lateral_error = socket_rot.T @ error * (0.0, 1.0, 1.0)  # never overshoot along the bore: the pin is there
        push = socket_rot @ np.clip((ALIGN_GAIN - 1.0) * lateral_error, -ALIGN_PUSH, ALIGN_PUSH)
        tool_goal = right.tool_pos + error + push
        near = lateral < 0.006 and offset[0] < APPROACH_STANDOFF + 0.01
        return Goal(tool_goal, PICK_RIGHT, CLOSED, max_speed=INSERT_SPEED if near else CARRY_SPEED)
