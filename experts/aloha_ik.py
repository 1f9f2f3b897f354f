"""Quaternion helpers and damped-least-squares inverse kinematics for the ALOHA arms.

The end-effector ("tool") frame is the one gym-aloha's mocap bodies drive: the
``gripper_link`` frame moved ``TOOL_OFFSET`` metres along its own axes, which puts its origin
between the fingers. For the right arm the mocap frame is also turned 180° about z relative
to the gripper (``MOCAP_TO_GRIPPER``), so a mocap pose ``(p, q)`` of ACT's scripted policies
is the tool pose ``(p, q ⊗ MOCAP_TO_GRIPPER[arm])``.
"""

from __future__ import annotations

import mujoco
import numpy as np

TOOL_OFFSET = np.array([0.1347, 0.0, -0.002])  # m, in the gripper_link frame (the weld's relpose)
MOCAP_TO_GRIPPER = {"left": np.array([1.0, 0, 0, 0]), "right": np.array([0.0, 0, 0, 1])}


def quat_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product of wxyz quaternions."""
    out = np.empty(4)
    mujoco.mju_mulQuat(out, np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64))
    return out


def quat_from_axis_angle(axis: tuple[float, float, float], degrees: float) -> np.ndarray:
    out = np.empty(4)
    mujoco.mju_axisAngle2Quat(out, np.asarray(axis, dtype=np.float64), np.deg2rad(degrees))
    return out


def quat_to_mat(q: np.ndarray) -> np.ndarray:
    out = np.empty(9)
    mujoco.mju_quat2Mat(out, np.asarray(q, dtype=np.float64))
    return out.reshape(3, 3)


def quat_error(target: np.ndarray, current: np.ndarray) -> np.ndarray:
    """Rotation vector (3,) in the world frame taking ``current`` to ``target``."""
    diff = quat_mul(target, np.array([current[0], -current[1], -current[2], -current[3]]))
    if diff[0] < 0:
        diff = -diff
    out = np.empty(3)
    mujoco.mju_quat2Vel(out, diff, 1.0)
    return out


class ArmIK:
    """Joint angles (6,) that put one arm's tool frame at a target pose.

    Works on a private ``MjData`` so the simulation is never touched. ``solve`` starts from
    the given joint angles and runs damped least squares on the 6-D pose error.
    """

    def __init__(self, model: mujoco.MjModel, arm: str) -> None:
        self.model, self.arm = model, arm
        self.data = mujoco.MjData(model)
        names = ("waist", "shoulder", "elbow", "forearm_roll", "wrist_angle", "wrist_rotate")
        joints = [model.joint(f"vx300s_{arm}/{n}") for n in names]
        self.qpos_adr = np.array([j.qposadr[0] for j in joints])
        self.dof_adr = np.array([j.dofadr[0] for j in joints])
        self.limits = np.array([model.jnt_range[j.id] for j in joints])
        self.body = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, f"vx300s_{arm}/gripper_link")
        self._jacp = np.zeros((3, model.nv))
        self._jacr = np.zeros((3, model.nv))

    def tool_pose(self, data: mujoco.MjData) -> tuple[np.ndarray, np.ndarray]:
        """Tool position (3,) and gripper quaternion (4,) in ``data``'s current kinematics."""
        rot = data.xmat[self.body].reshape(3, 3)
        return data.xpos[self.body] + rot @ TOOL_OFFSET, data.xquat[self.body].copy()

    def solve(
        self,
        q_start: np.ndarray,
        target_pos: np.ndarray,
        target_quat: np.ndarray,
        iterations: int = 30,
        damping: float = 1e-3,
        rot_weight: float = 0.3,
        tol: float = 1e-4,
    ) -> np.ndarray:
        """Joint angles (6,) reaching ``target_pos`` (m) and gripper orientation ``target_quat``."""
        q = np.clip(np.asarray(q_start, dtype=np.float64).copy(), self.limits[:, 0], self.limits[:, 1])
        weights = np.array([1.0, 1.0, 1.0, rot_weight, rot_weight, rot_weight])
        for _ in range(iterations):
            self.data.qpos[self.qpos_adr] = q
            mujoco.mj_kinematics(self.model, self.data)
            mujoco.mj_comPos(self.model, self.data)
            pos, quat = self.tool_pose(self.data)
            error = np.concatenate([target_pos - pos, quat_error(target_quat, quat)]) * weights
            if np.linalg.norm(error) < tol:
                break
            mujoco.mj_jac(self.model, self.data, self._jacp, self._jacr, pos, self.body)
            jac = np.vstack([self._jacp[:, self.dof_adr], self._jacr[:, self.dof_adr]]) * weights[:, None]
            step = jac.T @ np.linalg.solve(jac @ jac.T + damping * np.eye(6), error)
            q = np.clip(q + step, self.limits[:, 0], self.limits[:, 1])
        return q
