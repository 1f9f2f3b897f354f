"""Training an :class:`~il_toolkit.policies.instructed.InstructedPolicy` from demonstrations recorded
with their instruction and goal (``collect`` on an env that draws both per episode, such as
``il_toolkit/PushTTwoTarget-v0``).

1. :func:`instructed_demonstrations` reads a dataset's episodes, the instruction of each and the
   goal pose recorded beside its observations (``state_vector()[goal_dims]``), builds the table of
   goals, and moves every episode into its goal's frame.
2. Any state learner trains on those moved episodes (they look like demonstrations of one goal).
3. :func:`train_instructed_policy` fits the grounder (instruction -> goal of the table) and puts
   the two together.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch
from gymnasium import spaces

from il_toolkit.features.goals import GoalFrame, env_goal_frame, get_goal_frame, goal_table
from il_toolkit.model.grounding import GrounderConfig, InstructionGrounder, augment_instruction
from il_toolkit.policies.base import BasePolicy
from il_toolkit.policies.instructed import InstructedPolicy
from il_toolkit.train.loop import ArrayBatches, FitHistory, GradientStep, run_training


@dataclass
class InstructedDemonstrations:
    """Demonstrations of a goal-by-instruction task. ``trajectories``: as recorded;
    ``in_goal_frame``: the same moved into each episode's goal frame (train the state policy on
    these, in ``action_space``: the env's action bounds moved by every goal, so that no moved
    action is clipped away); ``instructions`` (E strings), ``goal_index`` (E,) into ``goals`` (K, goal_dim)."""

    trajectories: list[Any]
    in_goal_frame: list[Any]
    instructions: list[str]
    goal_index: np.ndarray
    goals: np.ndarray
    goal_frame: str
    action_space: spaces.Space


def goals_of(states: Sequence[np.ndarray], goal_dims: tuple[int, int]) -> np.ndarray:
    """Each episode's goal (E, G): ``state[goal_dims]`` of its recorded states, which must not change."""
    start, stop = goal_dims
    goals = []
    for i, s in enumerate(states):
        g = np.asarray(s, np.float64)[:, start:stop]
        if not np.allclose(g, g[0]):
            raise ValueError(f"episode {i}: the goal recorded in state entries [{start}, {stop}) changes within the "
                             "episode; a goal-by-instruction task keeps one goal per episode")
        goals.append(g[0])
    return np.stack(goals)


def to_goal_frame(trajectories: Sequence[Any], goals: np.ndarray, frame: GoalFrame) -> list[Any]:
    """Each trajectory (state observations, actions) moved into the frame of its goal (E, G)."""
    from imitation.data.types import TrajectoryWithRew

    if len(trajectories) != len(goals):
        raise ValueError(f"{len(trajectories)} trajectories but {len(goals)} goals: give one goal per episode")
    moved = []
    for t, goal in zip(trajectories, goals):
        obs = np.asarray(t.obs, np.float64)
        acts = np.asarray(t.acts, np.float64)
        obs_goals, act_goals = np.broadcast_to(goal, (len(obs), len(goal))), np.broadcast_to(goal, (len(acts), len(goal)))
        moved.append(TrajectoryWithRew(obs=frame.encode(obs, obs_goals), acts=frame.actions_to(acts, act_goals).astype(
            t.acts.dtype), infos=None, terminal=t.terminal, rews=t.rews))
    return moved


def moved_action_space(action_space: spaces.Space, goals: np.ndarray, frame: GoalFrame) -> spaces.Space:
    """``action_space`` widened to hold its corners moved into the frame of each goal (K, G): the
    reference scene's actions for every goal (a Box; other spaces are returned as they are)."""
    if not isinstance(action_space, spaces.Box) or len(action_space.shape) != 1 or action_space.shape[0] > 8:
        return action_space
    low, high = action_space.low.astype(np.float64), action_space.high.astype(np.float64)
    corners = np.array(np.meshgrid(*zip(low, high), indexing="ij")).reshape(len(low), -1).T  # (2^Da, Da)
    moved = np.concatenate([frame.actions_to(corners, np.broadcast_to(g, (len(corners), len(g)))) for g in goals])
    return spaces.Box(low=np.minimum(low, moved.min(0)), high=np.maximum(high, moved.max(0)), dtype=action_space.dtype)


def instructed_demonstrations(dataset_id: str, env: Any, trajectories: Sequence[Any] | None = None
                              ) -> InstructedDemonstrations:
    """Read ``dataset_id`` (recorded in ``env``, which declares ``goal_frame`` and ``goal_dims``);
    ``trajectories``: its demonstrations when already loaded."""
    from il_toolkit.train.datasets.minari_io import load_demonstrations, load_instructions, load_states

    frame_name, goal_dims = env_goal_frame(env, "an instructed policy")
    trajectories = list(trajectories) if trajectories is not None else load_demonstrations(dataset_id, env)
    goals, instructions = goals_of(load_states(dataset_id, env_id=env.spec.id if env.spec is not None else None), goal_dims), load_instructions(dataset_id)
    if not len(trajectories) == len(goals) == len(instructions):
        raise ValueError(f"{dataset_id!r}: {len(trajectories)} episodes, {len(goals)} recorded goals and "
                         f"{len(instructions)} instructions; collect it again with --overwrite")
    table, index = goal_table(goals)
    frame = get_goal_frame(frame_name)
    return InstructedDemonstrations(trajectories, to_goal_frame(trajectories, goals, frame), instructions, index,
                                    table, frame_name, moved_action_space(env.action_space, table, frame))


def fit_grounder(instructions: Sequence[str], goal_index: np.ndarray, goals: np.ndarray, *, steps: int = 400,
                 batch_size: int = 32, learning_rate: float = 1e-3, seed: int = 0, progress: bool = True,
                 augment: bool = True, **sizes: Any) -> tuple[InstructionGrounder, FitHistory]:
    """Fit a grounder on (instruction, goal index) pairs for ``steps`` AdamW steps (cosine schedule),
    on instructions varied by :func:`augment_instruction` when ``augment``.
    ``sizes``: :class:`GrounderConfig`'s ``llm_model_name``, ``hidden_size``, ``layers``, ``n_heads``."""
    if steps < 1 or batch_size < 1:
        raise ValueError(f"steps and batch_size must be >= 1, got steps={steps}, batch_size={batch_size}")
    torch.manual_seed(seed)
    grounder = InstructionGrounder(GrounderConfig(goals=tuple(map(tuple, goals)),
                                                  instructions=tuple(sorted(set(instructions))), **sizes))

    rng = np.random.default_rng(seed + 1)

    def loss(texts: np.ndarray, targets: np.ndarray) -> tuple[torch.Tensor, dict[str, float]]:
        logits = grounder([augment_instruction(t, rng) if augment else t for t in texts])
        target = torch.as_tensor(targets, dtype=torch.long)
        return torch.nn.functional.cross_entropy(logits, target), {"accuracy": float((logits.argmax(-1) == target).float().mean())}

    step = GradientStep(loss, grounder, grounder.parameters(), learning_rate=learning_rate, weight_decay=1e-4)
    batches = ArrayBatches(np.asarray(instructions, dtype=object), np.asarray(goal_index), batch_size,
                           np.random.default_rng(seed))
    history = run_training(step, batches, optimizers=step.optimizers, module=grounder, steps=steps,
                           lr_schedule="cosine", keep="last", progress=progress, desc="instruction grounder")
    return grounder.eval(), history


def train_instructed_policy(demos: InstructedDemonstrations, state_policy: BasePolicy,
                            observation_space: spaces.Space, action_space: spaces.Space,
                            **fit: Any) -> tuple[InstructedPolicy, dict[str, Any]]:
    """Fit the grounder on ``demos`` and put it in front of ``state_policy`` (trained on
    ``demos.in_goal_frame``). Returns the policy and a report: steps, seconds, final loss, and the
    grounder's accuracy on the training instructions. ``fit``: :func:`fit_grounder`'s options."""
    start = time.perf_counter()
    grounder, history = fit_grounder(demos.instructions, demos.goal_index, demos.goals, **fit)
    index, _ = grounder.ground(demos.instructions)
    report = {"steps": history.steps, "seconds": time.perf_counter() - start, "final_loss": history.final_train_loss,
              "goals": demos.goals.tolist(), "distinct_instructions": len(set(demos.instructions)),
              "train_accuracy": float(np.mean(index == demos.goal_index))}
    return InstructedPolicy(grounder, state_policy, demos.goal_frame, observation_space, action_space), report


def train_flow_instructed_policy(demos: InstructedDemonstrations, observation_space: spaces.Space,
                                 action_space: spaces.Space, *, steps: int | None = None, grounder_steps: int = 400,
                                 batch_size: int = 256, learning_rate: float | None = None, seed: int = 0,
                                 device: str = "cpu", progress: bool = True) -> tuple[InstructedPolicy, dict[str, Any]]:
    """``il-toolkit train flow``'s route on such demonstrations, in one call: a flow-matching policy
    (naive trainer, MLP velocity net) on ``demos.in_goal_frame`` with the goal frame's reference env's
    feature pipeline and ``train flow`` defaults (``steps``/``learning_rate`` override them), then the
    grounder in front. The report adds ``state_policy_seconds`` and ``state_policy_steps`` to
    :func:`train_instructed_policy`'s."""
    from il_toolkit.envs import make_env
    from il_toolkit.policies.flow_policy import default_state_features
    from il_toolkit.train.imitation_learning.defaults import defaults_for, state_policy_spec_fields
    from il_toolkit.train.imitation_learning.loop import train_flow_policy

    reference = make_env(get_goal_frame(demos.goal_frame).reference_env)
    try:
        settings = defaults_for(reference)
        steps = int(steps if steps is not None else settings["steps"])
        start = time.perf_counter()
        state_policy = train_flow_policy(
            "naive_flow_matching_policy_trainer", demos.in_goal_frame, reference.observation_space, demos.action_space,
            steps=steps, batch_size=batch_size, seed=seed, device=device,
            learning_rate=learning_rate if learning_rate is not None else settings["learning_rate"],
            features=default_state_features(reference), progress=progress,
            spec_fields=state_policy_spec_fields(settings),
            policy_options={"n_action_steps": settings["n_action_steps"]})
        state_seconds = time.perf_counter() - start
    finally:
        reference.close()
    policy, report = train_instructed_policy(demos, state_policy, observation_space, action_space, steps=grounder_steps,
                                             seed=seed, progress=progress)
    return policy, {**report, "state_policy_steps": steps, "state_policy_seconds": state_seconds}


__all__ = ["InstructedDemonstrations", "augment_instruction", "fit_grounder", "goal_table", "goals_of",
           "instructed_demonstrations", "moved_action_space", "to_goal_frame", "train_flow_instructed_policy",
           "train_instructed_policy"]
