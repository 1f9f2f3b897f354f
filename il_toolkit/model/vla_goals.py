"""Goal grounding for a VLA: act in the frame of the goal the instruction names.

On a task where the instruction chooses the goal (the two-target PushT: "push the T onto the left
target"), a VLA whose features are in the frame of one fixed goal has to learn the geometry of
every goal from the text: end to end it reached 32% (`benchmarks/instructed_pusht.py`). With
grounding, an :class:`~il_toolkit.model.grounding.InstructionGrounder` inside the VLA picks the
instructed goal from the table of goals seen in training, and the VLA reads its state and predicts
its actions in that goal's frame (:mod:`il_toolkit.features.goals`), where every demonstration
looks like one-goal PushT. In training the goal recorded beside each observation (the simulator's
state, ``observation.environment_state[goal_dims]``) moves the state and the actions, and the
grounder learns to name it from the instruction (varied by
:func:`~il_toolkit.model.grounding.augment_instruction`); acting reads the instruction alone.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from il_toolkit.features.goals import GoalFrame, env_goal_frame, get_goal_frame
from il_toolkit.model.grounding import GrounderConfig, InstructionGrounder, augment_instruction


class VLAGoals(nn.Module):
    """``spec``: ``{"frame": name, "goal_dims": [start, stop], "grounder": GrounderConfig.to_json()}``
    (the goal's entries in the recorded state, the grounder with its goal table)."""

    def __init__(self, spec: Mapping[str, Any]) -> None:
        super().__init__()
        self.frame: GoalFrame = get_goal_frame(spec["frame"])
        start, stop = (int(d) for d in spec["goal_dims"])
        if stop - start != self.frame.goal_dim:
            raise ValueError(f"goal_dims {spec['goal_dims']} hold {stop - start} entries; the {spec['frame']!r} frame's "
                             f"goals have {self.frame.goal_dim}")
        self.goal_dims = (start, stop)
        self.grounder = InstructionGrounder(GrounderConfig.from_json(spec["grounder"]))
        self._rng = np.random.default_rng(0)

    @property
    def table(self) -> np.ndarray:
        """The goals seen in training ``(K, G)``."""
        return self.grounder.goals.cpu().numpy()

    def recorded(self, states: torch.Tensor) -> np.ndarray:
        """Recorded full states ``(B, D)`` -> their goals ``(B, G)``."""
        start, stop = self.goal_dims
        return states[:, start:stop].detach().cpu().numpy().astype(np.float64)

    def ground(self, instructions: Sequence[str]) -> np.ndarray:
        """The goal each instruction names ``(B, G)`` (always one of the table's)."""
        return self.grounder.ground(list(instructions))[1]

    def loss(self, instructions: Sequence[str], goals: np.ndarray) -> torch.Tensor:
        """Cross-entropy of naming each (varied) instruction's recorded goal, the nearest of the table."""
        target = torch.as_tensor(np.abs(goals[:, None, :] - self.table[None]).sum(-1).argmin(1), dtype=torch.long)
        logits = self.grounder([augment_instruction(text, self._rng) for text in instructions])
        return nn.functional.cross_entropy(logits, target.to(logits.device))

    def states_to_frame(self, states: torch.Tensor, goals: np.ndarray) -> torch.Tensor:
        """States ``(B, Ds)`` -> the same scenes moved so that their goal is the frame's reference."""
        moved = self.frame.encode(states.detach().cpu().numpy().astype(np.float64), goals)
        return torch.as_tensor(moved, dtype=torch.float32, device=states.device)

    def actions_to_frame(self, actions: torch.Tensor, goals: np.ndarray) -> torch.Tensor:
        """Action chunks ``(B, H, Da)`` -> the same actions in the goal's frame."""
        return self._move_actions(actions, goals, self.frame.actions_to)

    def actions_from_frame(self, actions: torch.Tensor, goals: np.ndarray) -> torch.Tensor:
        return self._move_actions(actions, goals, self.frame.decode)

    @staticmethod
    def _move_actions(actions: torch.Tensor, goals: np.ndarray, move: Any) -> torch.Tensor:
        b, h, d = actions.shape
        flat = actions.detach().cpu().numpy().astype(np.float64).reshape(b * h, d)
        moved = move(flat, np.repeat(goals, h, axis=0)).reshape(b, h, d)
        return torch.as_tensor(moved, dtype=torch.float32, device=actions.device)


def goal_grounding_spec(env: Any, goals: np.ndarray, instructions: Sequence[str], **grounder: Any) -> dict[str, Any]:
    """``VLAConfig.goal_grounding`` for an env that declares ``goal_frame`` and ``goal_dims`` (the
    two-target PushT), from the table of its goals ``(K, G)`` and the training instructions;
    ``grounder``: :class:`GrounderConfig` sizes."""
    frame, dims = env_goal_frame(env, "goal grounding")
    config = GrounderConfig(goals=tuple(map(tuple, goals)), instructions=tuple(sorted(set(instructions))), **grounder)
    return {"frame": frame, "goal_dims": list(dims), "grounder": config.to_json()}


__all__ = ["VLAGoals", "goal_grounding_spec"]
