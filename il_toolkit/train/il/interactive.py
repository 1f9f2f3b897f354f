"""One interactive rollout step at a time: the learner proposes, a gate decides who acts, and
every expert label, query and hand-over is counted.

:class:`InteractiveActor` is the policy an interactive round rolls out: DAgger's beta mixture
and the gated variants (:mod:`il_toolkit.train.il.gates`) are the same actor with different
gates. :class:`LabelAccount` holds the counts; :func:`labelled_segments` turns an episode into
the expert-labelled stretches a learner trains on.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Protocol

import numpy as np
from gymnasium import spaces

from il_toolkit.policies.base import BasePolicy, Policy
from il_toolkit.policies.ensemble import EnsemblePolicy
from il_toolkit.policies.spaces import add_batch_axis
from il_toolkit.train.il.gates import Gate, StepView


class ExpertFailure(RuntimeError):
    """The expert raised, or answered with an action outside the action space, during a round."""


def checked_expert_action(expert: Policy, observation: Any, action_space: spaces.Space) -> np.ndarray:
    """The expert's action for ``observation``; :class:`ExpertFailure` if the expert raises or the
    action is not finite, has the wrong shape, or lies outside ``action_space``'s bounds."""
    try:
        action = np.asarray(expert.predict(observation, deterministic=True)[0])
    except Exception as error:  # noqa: BLE001 - any failure of user code ends the round the same way
        if getattr(error, "stops_run", False):  # the person closed the window: stop, resume later
            raise
        raise ExpertFailure(f"the expert raised {type(error).__name__}: {error}") from error
    if isinstance(action_space, spaces.Discrete):
        ok = action.size == 1 and float(action.reshape(-1)[0]).is_integer() and \
            action_space.start <= int(action.reshape(-1)[0]) < action_space.start + action_space.n
    elif isinstance(action_space, spaces.Box):
        tolerance = 1e-6 * np.maximum(np.abs(action_space.high), 1.0)
        ok = (action.shape == action_space.shape and bool(np.all(np.isfinite(action)))
              and bool(np.all(action >= action_space.low - tolerance)) and bool(np.all(action <= action_space.high + tolerance)))
    else:
        ok = action_space.contains(action)
    if not ok:
        raise ExpertFailure(f"the expert answered {np.array2string(action, precision=4)}, which is not an action of "
                            f"{action_space}")
    return action


@dataclass
class LabelAccount:
    """What an interactive run spent of its expert.

    ``labels``: states the expert labelled (what a label budget counts); ``expert_queries``: times
    the expert was asked for an action (a simulated person watching asks every step; a gate
    that reads only the learner asks only where the expert acts); ``interventions``: hand-overs
    from the learner to the expert, ``hand_backs`` the other way; ``expert_steps`` and
    ``learner_steps``: executed steps by who acted."""

    labels: int = 0
    expert_queries: int = 0
    interventions: int = 0
    hand_backs: int = 0
    expert_steps: int = 0
    learner_steps: int = 0

    @property
    def context_switches(self) -> int:
        return self.interventions + self.hand_backs

    @property
    def expert_share(self) -> float:
        """The expert's share of executed steps."""
        return self.expert_steps / max(self.expert_steps + self.learner_steps, 1)

    def add(self, other: "LabelAccount") -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    def as_dict(self) -> dict[str, float]:
        return {**asdict(self), "context_switches": self.context_switches, "expert_share": self.expert_share}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "LabelAccount":
        return cls(**{f.name: int(data.get(f.name, 0)) for f in fields(cls)})


class ChunkLabeler(Protocol):
    """Labels a state with the expert's chunk (:class:`~il_toolkit.train.il.expert_chunks.ExpertChunks`)."""

    horizon: int  # actions per chunk
    every: int  # steps between the learner's plans

    def label(self, observation: Any, max_labels: int | None = None) -> Any: ...


class InteractiveActor(BasePolicy):
    """Rolls out the learner under a gate: each step the learner proposes an action (asked every
    step, so a chunked learner's queue keeps to the clock), the gate says whether the expert acts,
    and the expert's action is recorded as the label where it acts (or everywhere, when the gate
    labels every state). Once ``takeover_when`` (a StuckDetector) fires, the expert acts for the
    rest of the episode. When control returns to the learner its ``reset()`` drops plans made
    before the expert took over.

    With ``chunk_labels`` (an :class:`~il_toolkit.train.il.expert_chunks.ExpertChunks`, for a
    chunked learner under a gate that labels every state: plain DAgger) the labels are chunks, not
    visited states: at each step where the learner plans (every ``chunk_labels.every`` steps) the
    expert acts out its own chunk from there in a branch of the simulation (kept in
    ``chunk_segments``; each of its actions a label), and the gate's choice of who acts holds
    until the next plan, so the expert, where it acts, replays the first actions of its branch.
    A branch needs room for a whole chunk under ``label_limit``; once there is none,
    ``out_of_labels`` is set and no more are taken.

    After each episode, ``labels`` holds one entry per step (the expert's action or None),
    ``expert_acted`` who acted at each step, and ``account`` the running counts."""

    def __init__(self, expert: Policy, learner: Policy | None, gate: Gate, takeover_when: Any = None,
                 chunk_labels: ChunkLabeler | None = None, label_limit: int | None = None) -> None:
        super().__init__(expert.observation_space, expert.action_space)
        self.expert, self.learner, self.gate, self.takeover_when = expert, learner, gate, takeover_when
        self.chunk_labels = chunk_labels if learner is not None and gate.labels_every_state else None
        self.label_limit = label_limit
        self.out_of_labels = False
        self.account = LabelAccount()
        self.labels: list[np.ndarray | None] = []
        self.expert_acted: list[bool] = []
        self.chunk_segments: list[Any] = []
        self.expert_in_control = False
        self.taken_over = False

    def predict(self, observation: Any, state: Any = None, episode_start: Any = None, deterministic: bool = True):
        learner_action, members = self._learner_proposal(observation, deterministic)
        view = StepView(observation, learner_action,
                        lambda: checked_expert_action(self.expert, observation, self.action_space), member_actions=members)
        if self.takeover_when is not None and not self.taken_over:
            self.taken_over = self.takeover_when.update(observation)
        plans = self.chunk_labels is not None and len(self.labels) % self.chunk_labels.every == 0
        if self.chunk_labels is not None and not plans and not self.taken_over:
            expert_acts = self.expert_in_control  # the coin holds until the learner's next plan
        else:
            expert_acts = self.taken_over or self.gate.expert_acts(view, self.expert_in_control)
        in_control_before = self.expert_in_control if self.labels else self.learner is None  # episodes start with the learner
        if expert_acts != in_control_before:
            if expert_acts:
                self.account.interventions += 1
            else:
                self.account.hand_backs += 1
                if not self.gate.labels_every_state:  # a gate that hands over (not DAgger's coin): stale plans go
                    self.learner.reset()
        self.expert_in_control = expert_acts
        if plans and not self.out_of_labels:
            self._label_chunk(observation)
        labels_state = self.chunk_labels is None and (expert_acts or self.gate.labels_every_state)
        label = view.expert_action() if labels_state else None
        action = view.expert_action() if expert_acts else learner_action
        self.labels.append(label)
        self.expert_acted.append(bool(expert_acts))
        self.account.labels += int(label is not None)
        self.account.expert_queries += int(view.expert_asked)
        self.account.expert_steps += int(expert_acts)
        self.account.learner_steps += int(not expert_acts)
        return action, state

    def _label_chunk(self, observation: Any) -> None:
        """The expert's chunk from here, in a branch; none once a whole chunk no longer fits the label limit."""
        room = None if self.label_limit is None else self.label_limit - self.account.labels
        if room is not None and room < self.chunk_labels.horizon:
            self.out_of_labels = True
            return
        segment = self.chunk_labels.label(observation, room)
        self.chunk_segments.append(segment)
        self.account.labels += len(segment.acts)
        self.account.expert_queries += len(segment.acts)

    def _learner_proposal(self, observation: Any, deterministic: bool) -> tuple[np.ndarray | None, np.ndarray | None]:
        if self.learner is None:
            return None, None
        if isinstance(self.learner, EnsemblePolicy):
            members = self.learner.member_actions(add_batch_axis(observation), deterministic)
            return self.learner.combine(members)[0], members[:, 0]
        return np.asarray(self.learner.predict(observation, deterministic=deterministic)[0]), None

    def reset(self) -> None:
        self.expert.reset()
        if self.learner is not None:
            self.learner.reset()
        if self.takeover_when is not None:
            self.takeover_when.reset()
        self.gate.reset()
        self.labels = []
        self.expert_acted = []
        self.chunk_segments = []
        self.expert_in_control = False
        self.taken_over = False


def labelled_segments(trajectory: Any, labels: list[np.ndarray | None], horizon: int = 1,
                      cut_short: bool = False) -> list[Any]:
    """The maximal runs of labelled steps of one episode, as imitation ``TrajectoryWithRew``\\ s
    whose actions are the expert's labels. ``trajectory``: the episode as rolled out (T steps,
    T+1 observations); ``labels``: T entries, None where the expert gave no label. A run ending
    at the episode's last step keeps its ``terminal`` flag; earlier runs are not terminal.

    ``horizon``: actions per chunk of the learner. A run that ends before the episode does (the
    expert handed back, and the learner acted next) has no expert actions past its end, so for a
    chunked learner it is marked as cut
    (:data:`~il_toolkit.train.datasets.minari_io.ACTIONS_CUT_INFO`): a window reaching past the
    hand-back trains the positions it has labels for and leaves the rest out of the loss, where
    padding them with the last action would teach "hold". A run that ends with the episode is
    padded at its end, as a demonstration is, unless ``cut_short`` (a label budget ended the
    episode: the expert would have gone on), when it too is cut."""
    if len(labels) != len(trajectory.acts):
        raise ValueError(f"{len(labels)} labels for an episode of {len(trajectory.acts)} steps: one per step is needed")
    from imitation.data.types import TrajectoryWithRew

    from il_toolkit.train.datasets.minari_io import window_infos

    segments, start = [], None
    for t, label in enumerate([*labels, None]):
        if label is not None and start is None:
            start = t
        elif label is None and start is not None:
            steps, ends_episode = t - start, t == len(labels)
            cut = horizon > 1 and not (ends_episode and not cut_short)
            segments.append(TrajectoryWithRew(
                obs=trajectory.obs[start:t + 1], acts=np.stack(labels[start:t]), infos=window_infos(steps, cut=cut),
                terminal=bool(trajectory.terminal and ends_episode), rews=trajectory.rews[start:t]))
            start = None
    return segments
