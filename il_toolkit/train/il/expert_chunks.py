"""Chunk labels for a chunked learner in DAgger: the expert's own next actions from a state the
learner reached, rolled out in a branch of the simulation.

A policy that predicts a chunk of ``H`` actions is trained on windows whose target is the next
``H`` actions of an episode. Along a learner's rollout those are the expert's labels of the
states the *learner* went on to visit, and the ALOHA expert's label is "the current joints plus
a bounded step toward the goal": after the first action the target mostly repeats the learner's
own motion. Measured on ALOHA insertion (a flow learner over chunks fitted on 10
demonstrations, 6 rollouts; RMS over the 12 arm joints): the visited-state targets stay within
0.07 rad of the learner's own actions at every position of the chunk, while the expert's own chunk
from the same state lies 0.10 rad from them at the 4th action and 0.17 rad at the 8th.

:class:`ExpertChunks` labels a state with the expert's chunk instead: it saves the simulation
(``env.unwrapped.snapshot()``), lets the expert act for ``horizon + every - 1`` steps, and puts the
simulation back (``restore``), so the episode goes on as if nothing happened. The stretch is
stored as an episode whose first ``every`` steps are marked as chunk starts
(:data:`CHUNK_START_INFO`): each such step's window then holds ``horizon`` actions the expert
really took from there, and no window runs past the stretch's end. Every action of the stretch
counts as an expert label.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import gymnasium as gym
import numpy as np

from il_toolkit.policies.base import Policy
from il_toolkit.train.datasets.minari_io import CHUNK_START_INFO
from il_toolkit.train.il.interactive import checked_expert_action


def can_branch(env: gym.Env) -> bool:
    """Whether ``env`` can save and restore its simulation (``snapshot()``/``restore()`` on the
    unwrapped env, as the ALOHA envs have) and its wrappers leave observations as they are."""
    base = env.unwrapped
    return (callable(getattr(base, "snapshot", None)) and callable(getattr(base, "restore", None))
            and base.observation_space == env.observation_space)


class ExpertChunks:
    """The expert's chunk from the current state of ``env``'s episode, rolled out in a branch.

    Args:
        env: the env the episode runs in (:func:`can_branch` must hold).
        expert: a memoryless expert (its action depends on the observation alone).
        horizon: actions per chunk the learner predicts.
        every: steps between the learner's plans (the actions it executes per chunk); each branch
            holds ``horizon + every - 1`` actions, so the ``every`` windows starting in its first
            steps are whole.
    """

    def __init__(self, env: gym.Env, expert: Policy, horizon: int, every: int) -> None:
        if not can_branch(env):
            raise ValueError(f"{type(env.unwrapped).__name__} cannot save and restore its simulation (snapshot() and "
                             "restore()), so the expert cannot show its chunk from a learner's state: label the "
                             "visited states instead (dagger_chunk_labels='visited')")
        if horizon < 1 or not 1 <= every <= horizon:
            raise ValueError(f"need horizon >= 1 and 1 <= every <= horizon, got horizon {horizon}, every {every}")
        self.sim, self.expert, self.action_space = env.unwrapped, expert, env.action_space
        self.horizon, self.every = horizon, every

    @property
    def length(self) -> int:
        """Expert actions (labels) per branch."""
        return self.horizon + self.every - 1

    def label(self, observation: Any, max_labels: int | None = None) -> Any:
        """The expert's stretch from the current state, as an imitation ``TrajectoryWithRew``
        (at most ``max_labels`` actions; None when that is 0); the simulation is restored after.
        Raises :class:`~il_toolkit.train.il.interactive.ExpertFailure` as a visited-state label would."""
        from imitation.data.types import TrajectoryWithRew

        length = self.length if max_labels is None else min(self.length, max_labels)
        if length <= 0:
            return None
        saved = self.sim.snapshot()
        observations, actions, rewards, ended = [observation], [], [], False
        try:
            for _ in range(length):
                action = checked_expert_action(self.expert, observations[-1], self.action_space)
                observation, reward, ended, _, _ = self.sim.step(action)
                observations.append(observation)
                actions.append(action)
                rewards.append(float(reward))
                if ended:
                    break
        finally:
            self.sim.restore(saved)
        starts = whole_chunk_starts(len(actions), self.horizon, ended) & (np.arange(len(actions)) < self.every)
        return TrajectoryWithRew(obs=np.stack(observations), acts=np.stack(actions), infos=chunk_start_infos(starts),
                                 terminal=bool(ended), rews=np.asarray(rewards, dtype=np.float32))


def whole_chunk_starts(steps: int, horizon: int, ends_episode: bool) -> np.ndarray:
    """``(steps,)`` bool: the steps of a stretch from which ``horizon`` of its actions follow, or
    every step where the stretch ends its episode (there the chunk is padded with the last action,
    as the episode's own end is)."""
    t = np.arange(steps)
    return np.ones(steps, dtype=bool) if ends_episode else t + horizon <= steps


def chunk_start_infos(starts: np.ndarray) -> np.ndarray:
    """imitation ``infos`` (one dict per step) carrying :data:`CHUNK_START_INFO`."""
    return np.array([{CHUNK_START_INFO: bool(s)} for s in starts])


def expert_stretches(trajectory: Any, labels: list[np.ndarray | None], horizon: int) -> list[Any]:
    """:func:`~il_toolkit.train.il.interactive.labelled_segments` of an episode rolled out with
    chunk labels, where the labelled stretches are the steps the expert acted in: each marks as
    chunk starts only the steps :func:`whole_chunk_starts` allows (a stretch the learner took over
    from gives no chunk past its end)."""
    from il_toolkit.train.il.interactive import labelled_segments

    segments = labelled_segments(trajectory, labels)
    reaches_end = bool(labels) and labels[-1] is not None
    return [dataclasses.replace(segment, infos=chunk_start_infos(whole_chunk_starts(
        len(segment.acts), horizon, reaches_end and i == len(segments) - 1))) for i, segment in enumerate(segments)]

