"""PushT with two target poses, the one to reach named by an instruction.

Each episode draws a target (``left`` or ``right``) and a phrasing of the instruction that
names it. The observation is PushT's ``state`` (agent x, y, block x, y, angle) and does **not**
say which target is meant: only ``info["instruction"]`` (given at reset and every step) does, so
a policy that ignores the instruction can do no better than pick a target at random.

- ``info["is_success"]``: the instructed target's coverage > 0.95; ``info["reached_other"]``:
  the other target's was at some step. The episode terminates when either target is covered.
- ``instructions``: ``"train"`` (the phrasings demonstrations are recorded with),
  ``"held_out"`` (paraphrases kept apart for testing that unseen wordings still work) or
  ``"withheld"`` (the empty string: what a policy does without the instruction).
- ``target``: fix the target instead of drawing it (``reset(options={"target": ...})`` too).
- ``state_vector()``: the state plus the target pose (x, y, angle), recorded by ``collect`` beside
  each observation: training-only supervision for learners that ground the instruction to a pose.

Only ``state`` observations: gym-pusht draws the target it scores on, so an image would show the
answer the instruction is meant to give.
"""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np

from il_toolkit.envs.pusht import STATE_SPACE, SUCCESS_COVERAGE, PushTEnv

# Both at gym-pusht's target angle, 80 board pixels either side of its target, so that the
# scripted expert reaches either as reliably as the single target (measured in the tests).
TARGETS: dict[str, np.ndarray] = {
    "left": np.array([176.0, 256.0, math.pi / 4]),
    "right": np.array([336.0, 256.0, math.pi / 4]),
}
TRAIN_PHRASINGS = (
    "push the T block onto the {side} target",
    "push the T onto the {side} target",
    "move the T block to the {side} goal",
    "slide the T onto the target on the {side}",
    "put the T block on the {side} target",
    "push the block to the {side} target pose",
)
HELD_OUT_PHRASINGS = (
    "get the T block onto the {side}-hand target",
    "align the T with the goal on the {side}",
    "the {side} target: push the T there",
    "nudge the T-shaped block into the {side} outline",
)
INSTRUCTION_SETS = ("train", "held_out", "withheld")
STATE_WITH_GOAL_SPACE = gym.spaces.Box(
    low=np.concatenate([STATE_SPACE.low, [0.0, 0.0, 0.0]]),
    high=np.concatenate([STATE_SPACE.high, [512.0, 512.0, 2 * np.pi]]), dtype=np.float64)


def phrasings(instructions: str, side: str) -> list[str]:
    """The instructions that name target ``side`` in the set ``instructions``."""
    if instructions == "withheld":
        return [""]
    templates = TRAIN_PHRASINGS if instructions == "train" else HELD_OUT_PHRASINGS
    return [t.format(side=side) for t in templates]


class PushTTwoTargetEnv(PushTEnv):
    """Push the T block onto the target the instruction names (module docstring).

    Actions, reward and time limit are PushT's; the reward is the instructed target's coverage.
    """

    def __init__(self, obs_type: str = "state", render_mode: str | None = "rgb_array", instructions: str = "train",
                 target: str | None = None, **kwargs: Any) -> None:
        if obs_type != "state":
            raise ValueError(f"the two-target PushT has only obs_type='state', got {obs_type!r}: an image shows the "
                             "target gym-pusht scores on, which is what the instruction is meant to say")
        if instructions not in INSTRUCTION_SETS:
            raise ValueError(f"unknown instructions {instructions!r}; choose one of {', '.join(INSTRUCTION_SETS)}")
        if target is not None and target not in TARGETS:
            raise ValueError(f"unknown target {target!r}; choose one of {', '.join(TARGETS)}")
        super().__init__(obs_type=obs_type, render_mode=render_mode, **kwargs)
        self.instructions, self.fixed_target = instructions, target
        self.target, self.instruction = "left", ""
        self._max_other = 0.0

    @property
    def policy_frame(self) -> str | None:
        """None: PushT's block frame measures the error to one fixed target; the target here is in the instruction."""
        return None

    @property
    def goal_frame(self) -> str:
        """How a learner maps this env's state into the frame of a target pose: ``pusht`` in
        :data:`il_toolkit.features.goals.GOAL_FRAMES`."""
        return "pusht"

    @property
    def instruction_per_episode(self) -> bool:
        """True: every episode draws its own instruction (learners must read it per episode)."""
        return True

    @property
    def goal_pose(self) -> np.ndarray:
        """The instructed target's pose (x, y, angle)."""
        return TARGETS[self.target].copy()

    @property
    def goal_dims(self) -> tuple[int, int]:
        """Where the target pose sits in :meth:`state_vector`: entries [5, 8)."""
        return (5, 8)

    @property
    def state_space(self) -> gym.spaces.Box:
        return STATE_WITH_GOAL_SPACE

    def state_vector(self) -> np.ndarray:
        """The state (5) and the instructed target's pose (3): training-only supervision."""
        return np.concatenate([super().state_vector(), self.goal_pose])

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict]:
        options = dict(options or {})
        target = options.pop("target", None) or self.fixed_target
        if target is not None and target not in TARGETS:
            raise ValueError(f"unknown target {target!r}; choose one of {', '.join(TARGETS)}")
        obs, info = super().reset(seed=seed, options=options or None)
        names = list(TARGETS)
        self.target = target or names[int(self.np_random.integers(len(names)))]
        choices = phrasings(self.instructions, self.target)
        self.instruction = choices[int(self.np_random.integers(len(choices)))]
        self.sim.goal_pose = self.goal_pose  # gym-pusht scores and draws the target it holds
        coverage = float(self.sim._get_coverage())
        self._max_coverage, self._max_other = coverage, self._other_coverage()
        return obs, self._info(info, coverage)

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
        obs, reward, terminated, truncated, info = super().step(action)
        other = self._other_coverage()
        self._max_other = max(self._max_other, other)
        info.update(other_coverage=other, reached_other=self._max_other > SUCCESS_COVERAGE)
        return obs, reward, bool(terminated or other > SUCCESS_COVERAGE), truncated, info

    def _other_coverage(self) -> float:
        other = next(name for name in TARGETS if name != self.target)
        self.sim.goal_pose = TARGETS[other]
        try:
            return float(self.sim._get_coverage())
        finally:
            self.sim.goal_pose = self.goal_pose

    def _info(self, info: dict, coverage: float) -> dict:
        return {**super()._info(info, coverage), "instruction": self.instruction, "target": self.target,
                "goal_pose": self.goal_pose, "reached_other": self._max_other > SUCCESS_COVERAGE}
