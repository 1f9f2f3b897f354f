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

from il_toolkit.features.goals import GoalFrame, get_goal_frame
from il_toolkit.model.grounding import GrounderConfig, InstructionGrounder
from il_toolkit.policies.base import BasePolicy
from il_toolkit.policies.instructed import InstructedPolicy
from il_toolkit.train.loop import ArrayBatches, FitHistory, GradientStep, run_training


@dataclass
class InstructedDemonstrations:
    """Demonstrations of a goal-by-instruction task. ``trajectories``: as recorded;
    ``in_goal_frame``: the same moved into each episode's goal frame (train the state policy on
    these); ``instructions`` (E strings), ``goal_index`` (E,) into ``goals`` (K, goal_dim)."""

    trajectories: list[Any]
    in_goal_frame: list[Any]
    instructions: list[str]
    goal_index: np.ndarray
    goals: np.ndarray
    goal_frame: str


def goal_table(episode_goals: np.ndarray, decimals: int = 6) -> tuple[np.ndarray, np.ndarray]:
    """The distinct goals (K, G) among ``episode_goals`` (E, G) (equal to ``decimals`` places; each as first
    recorded, not rounded) and each episode's index into them."""
    goals = np.asarray(episode_goals, np.float64)
    _, first, index = np.unique(np.round(goals, decimals), axis=0, return_index=True, return_inverse=True)
    return goals[first], index.reshape(-1)


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

    moved = []
    for t, goal in zip(trajectories, goals):
        obs = np.asarray(t.obs, np.float64)
        acts = np.asarray(t.acts, np.float64)
        obs_goals, act_goals = np.broadcast_to(goal, (len(obs), len(goal))), np.broadcast_to(goal, (len(acts), len(goal)))
        moved.append(TrajectoryWithRew(obs=frame.encode(obs, obs_goals), acts=frame.actions_to(acts, act_goals).astype(
            t.acts.dtype), infos=None, terminal=t.terminal, rews=t.rews))
    return moved


def instructed_demonstrations(dataset_id: str, env: Any) -> InstructedDemonstrations:
    """Read ``dataset_id`` (recorded in ``env``, which declares ``goal_frame`` and ``goal_dims``)."""
    from il_toolkit.train.datasets.minari_io import load_demonstrations, load_instructions, load_states

    unwrapped = env.unwrapped
    frame_name, goal_dims = getattr(unwrapped, "goal_frame", None), getattr(unwrapped, "goal_dims", None)
    if frame_name is None or goal_dims is None:
        raise ValueError(f"{type(unwrapped).__name__} declares no goal_frame/goal_dims: instructed policies need an env "
                         "whose instruction names a goal pose it records (such as il_toolkit/PushTTwoTarget-v0)")
    trajectories = load_demonstrations(dataset_id, env)
    goals, instructions = goals_of(load_states(dataset_id), goal_dims), load_instructions(dataset_id)
    table, index = goal_table(goals)
    return InstructedDemonstrations(trajectories, to_goal_frame(trajectories, goals, get_goal_frame(frame_name)),
                                    instructions, index, table, frame_name)


def augment_instruction(text: str, rng: np.random.Generator, shuffle: float = 0.5, word_dropout: float = 0.1) -> str:
    """``text`` with its words in a random order (probability ``shuffle``) and each word dropped with
    probability ``word_dropout`` (one is always kept): a grounder trained on these cannot lean on the
    wording around the words that name the goal."""
    words = text.split()
    if len(words) < 2:
        return text
    if rng.random() < shuffle:
        words = [words[i] for i in rng.permutation(len(words))]
    kept = [w for w in words if rng.random() >= word_dropout]
    return " ".join(kept or [words[int(rng.integers(len(words)))]])


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


__all__ = ["InstructedDemonstrations", "augment_instruction", "fit_grounder", "goal_table", "goals_of", "instructed_demonstrations",
           "to_goal_frame", "train_instructed_policy"]
