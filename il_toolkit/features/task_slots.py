"""Each task's own feature pipeline inside a multi-task model's slot layout.

A multi-task model (:mod:`il_toolkit.train.datasets.multitask`) reads one long state vector in
which every task owns a slot (PushT's 5 entries, then ALOHA's 35) and answers one long action
vector likewise. :class:`SlottedFeatures` lets each task see its slot through the pipeline its
env's other learners use (:class:`~il_toolkit.features.state.StateFeatures`: PushT's block frame,
ALOHA's relative joint targets) and places the results in *feature* slots::

    raw state  [ PushT (5) | ALOHA (35) ]          -> features [ PushT features (9) | ALOHA features (25) ]
    action     [ PushT (2) | ALOHA (14) ]  encoded by each task's codec, slots unchanged

Which task a row belongs to is its instruction, not its numbers, so every function takes the
rows' tasks. A row whose instruction is no task's (an instruction never seen in training) has
zero features and actions that pass through unencoded. Tasks without a pipeline read their raw slot.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from il_toolkit.features.state import StateFeatures


class SlottedFeatures:
    """Per-task pipelines over ``task_slots`` (``{instruction: {"state": [s0, s1], "action": [a0, a1],
    "features": StateFeatures JSON or None}}``)."""

    def __init__(self, task_slots: Mapping[str, Mapping[str, Any]]) -> None:
        self.state_slots: dict[str, tuple[int, int]] = {}
        self.action_slots: dict[str, tuple[int, int]] = {}
        self.pipelines: dict[str, StateFeatures | None] = {}
        self.feature_slots: dict[str, tuple[int, int]] = {}
        at = 0
        for task, slots in task_slots.items():
            (s0, s1), (a0, a1) = slots["state"], slots["action"]
            pipeline = StateFeatures.from_json(slots["features"]) if slots.get("features") else None
            if pipeline is not None:
                pipeline.check_fits(s1 - s0, a1 - a0, f"task {task!r}'s slots")
            width = pipeline.n_features if pipeline is not None else s1 - s0
            self.state_slots[task], self.action_slots[task] = (s0, s1), (a0, a1)
            self.pipelines[task], self.feature_slots[task] = pipeline, (at, at + width)
            at += width
        self.n_features = at

    def _rows(self, tasks: Sequence[str]) -> dict[str, np.ndarray]:
        """Row indices per known task."""
        tasks = np.asarray(list(tasks), dtype=object)
        return {task: np.flatnonzero(tasks == task) for task in self.pipelines if np.any(tasks == task)}

    def features(self, raw: np.ndarray, tasks: Sequence[str]) -> np.ndarray:
        """Raw slotted states ``(B, Ds)`` -> ``(B, n_features)`` float32, each row in its task's feature slot."""
        raw = np.asarray(raw, dtype=np.float64)
        out = np.zeros((len(raw), self.n_features), np.float32)
        for task, rows in self._rows(tasks).items():
            (s0, s1), (f0, f1), pipeline = self.state_slots[task], self.feature_slots[task], self.pipelines[task]
            own = raw[rows, s0:s1]
            out[rows, f0:f1] = pipeline.features(own) if pipeline is not None else own
        return out

    def owned(self, tasks: Sequence[str]) -> np.ndarray:
        """``(B, n_features)`` 1.0 in each row's task's feature slot (every entry for an unknown task)."""
        return self._slot_mask(tasks, self.feature_slots, self.n_features)

    def owned_actions(self, tasks: Sequence[str], action_dim: int) -> np.ndarray:
        """``(B, action_dim)`` 1.0 in each row's task's action slot (every entry for an unknown task)."""
        return self._slot_mask(tasks, self.action_slots, action_dim)

    def _slot_mask(self, tasks: Sequence[str], slots: Mapping[str, tuple[int, int]], width: int) -> np.ndarray:
        mask = np.ones((len(tasks), width), np.float32)
        for task, rows in self._rows(tasks).items():
            start, stop = slots[task]
            mask[rows] = 0.0
            mask[np.ix_(rows, np.arange(start, stop))] = 1.0
        return mask

    def encode_actions(self, raw: np.ndarray, actions: np.ndarray, tasks: Sequence[str]) -> np.ndarray:
        """Slotted actions ``(B, Da)`` or chunks ``(B, H, Da)`` in env units -> each task's slot as its
        codec encodes it relative to the row's state (float64; other entries unchanged)."""
        return self._apply(raw, actions, tasks, encode=True)

    def decode_actions(self, raw: np.ndarray, encoded: np.ndarray, tasks: Sequence[str]) -> np.ndarray:
        """Inverse of :meth:`encode_actions`."""
        return self._apply(raw, encoded, tasks, encode=False)

    def _apply(self, raw: np.ndarray, values: np.ndarray, tasks: Sequence[str], *, encode: bool) -> np.ndarray:
        raw = np.asarray(raw, dtype=np.float64)
        out = np.array(values, dtype=np.float64, copy=True)
        for task, rows in self._rows(tasks).items():
            pipeline = self.pipelines[task]
            if pipeline is None:
                continue
            (s0, s1), (a0, a1) = self.state_slots[task], self.action_slots[task]
            own = out[rows, ..., a0:a1]
            code = pipeline.encode_actions if encode else pipeline.decode_actions
            out[rows, ..., a0:a1] = code(raw[rows, s0:s1], own)
        return out


__all__ = ["SlottedFeatures"]
