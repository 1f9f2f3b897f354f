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
stored as an episode whose first ``every`` steps are marked as chunk starts (the info
:data:`~il_toolkit.train.datasets.minari_io.CHUNK_START_INFO`): each such step's window then holds
``horizon`` actions the expert really took from there (a branch a label budget stopped early is
marked cut, :data:`~il_toolkit.train.datasets.minari_io.ACTIONS_CUT_INFO`, and its windows train
only the positions it has). Every action of the stretch counts as an expert label.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np

from il_toolkit.policies.base import Policy
from il_toolkit.rollout import Episode
from il_toolkit.train.datasets.minari_io import window_infos
from il_toolkit.train.il.interactive import checked_expert_action

if TYPE_CHECKING:
    from imitation.data.types import TrajectoryWithRew


def can_branch(env: gym.Env, expert: Any) -> bool:
    """Whether the expert's chunk can be acted out in a branch of ``env``: the unwrapped env can
    save and restore its simulation (``snapshot()``/``restore()``, as the ALOHA envs can), has the
    same spaces as the wrapped one and vector observations (a branch of a camera env would render
    every step of it), and the expert is memoryless (its ``memoryless`` attribute: a branch must not
    change what it does next; a person at the controls is not)."""
    base = env.unwrapped
    return (callable(getattr(base, "snapshot", None)) and callable(getattr(base, "restore", None))
            and base.observation_space == env.observation_space and base.action_space == env.action_space
            and isinstance(env.observation_space, gym.spaces.Box) and bool(getattr(expert, "memoryless", False)))


class ExpertChunks:
    """The expert's chunk from the current state of ``env``'s episode, rolled out in a branch.

    Args:
        env: the env the episode runs in (:func:`can_branch` must hold).
        expert: a memoryless expert (its action depends on the observation alone).
        horizon: actions per chunk the learner predicts.
        every: steps between the learner's plans (the actions it executes per chunk); each branch
            holds ``horizon + every - 1`` actions, so the ``every`` windows starting in its first
            steps are whole (unless a label budget stopped it early: then the positions past its
            end are left out of the loss).
    """

    def __init__(self, env: gym.Env, expert: Policy, horizon: int, every: int) -> None:
        if not can_branch(env, expert):
            raise ValueError(f"the expert ({type(expert).__name__}) cannot act out its chunk in a branch of "
                             f"{type(env.unwrapped).__name__}: that needs an env that saves and restores its simulation "
                             "(snapshot() and restore()) with vector observations, and a memoryless expert (memoryless = "
                             "True: the scripted ALOHA experts); label the visited states instead "
                             "(dagger_chunk_labels='visited')")
        if horizon < 1 or not 1 <= every <= horizon:
            raise ValueError(f"need horizon >= 1 and 1 <= every <= horizon, got horizon {horizon}, every {every}")
        self.sim, self.expert, self.action_space = env.unwrapped, expert, env.action_space
        self.horizon, self.every = horizon, every

    @property
    def length(self) -> int:
        """Expert actions (labels) per branch."""
        return self.horizon + self.every - 1

    def label(self, observation: Any, max_labels: int | None = None) -> TrajectoryWithRew:
        """The expert's stretch from the current state (at most ``max_labels`` actions, at least 1),
        its first ``every`` steps marked as chunk starts and the stretch as cut (a window reaching
        past a branch stopped by ``max_labels`` leaves those positions out of the loss); the
        simulation is restored after. Raises :class:`~il_toolkit.train.il.interactive.ExpertFailure`
        as a visited-state label would."""
        length = self.length if max_labels is None else max(1, min(self.length, max_labels))
        branch = Episode(seed=None, observations=[observation])
        saved = self.sim.snapshot()
        try:
            while branch.length < length and not branch.terminated:
                action = checked_expert_action(self.expert, branch.observations[-1], self.action_space)
                observation, reward, branch.terminated, _, _ = self.sim.step(action)
                branch.observations.append(observation)
                branch.actions.append(action)
                branch.rewards.append(float(reward))
        finally:
            self.sim.restore(saved)
        # a branch the episode's end stopped is padded there, as a demonstration is; one stopped early (a label
        # budget) is cut: its windows train the positions they have labels for
        starts = np.arange(branch.length) < self.every
        return dataclasses.replace(branch.to_trajectory(), infos=window_infos(branch.length, starts,
                                                                              cut=not branch.terminated))

