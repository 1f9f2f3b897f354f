"""The T block's geometry and physics in gym-pusht, in one place for everything that reasons
about the block: the env's task frame (:mod:`il_toolkit.features.frames`) and the scripted
expert (:mod:`il_toolkit.experts.pusht`). Units: board pixels, radians."""

from __future__ import annotations

import math

import numpy as np

# Geometry and physics of gym_pusht's PushTEnv (add_tee with scale 30, length 4; add_circle
# radius 15; goal_pose). Units: board pixels, radians. tests/test_pusht_expert.py checks these
# against the simulator.
BAR = (-60.0, 60.0, 0.0, 30.0)  # xmin, xmax, ymin, ymax in the block's body frame
STEM = (-15.0, 15.0, 30.0, 120.0)
COG = np.array([0.0, 45.0])  # centre of gravity in the body frame
MASS = 1.0
MOMENT = 3000.0  # about the centre of gravity
AGENT_RADIUS = 15.0
GOAL_POSE = np.array([256.0, 256.0, math.pi / 4])  # body origin x, y, angle
BOARD = (0.0, 512.0)
STATE_DIM = 5
