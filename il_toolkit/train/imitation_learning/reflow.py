"""Reflow: straighten a trained flow policy's ODE so that fewer Euler steps may do what its own did.

Liu, Gong and Liu, "Flow Straight and Fast: Learning to Generate and Transfer Data with Rectified
Flow" (ICLR 2023). A flow-matching model trained on independent (noise, demonstration) pairs
learns paths that curve, because the straight lines between those pairs cross; few Euler steps
then land off the data. Reflow draws noises, takes each through the trained model's own ODE
(the *teacher*) and fine-tunes a copy of the model (the *student*) with plain flow matching on
the resulting (noise, chunk) pairs: lines between coupled pairs cross less than between independent
ones, so the student's paths straighten. Whether its few-step chunks then act as well as the teacher's many-step ones
also depends on how faithfully it learns the teacher's map (``benchmarks/reflow_chunks.py``
measures both; the imitation_learning README gives what they were on ALOHA insertion)::

    from il_toolkit.policies import load
    from il_toolkit.train.imitation_learning.reflow import reflow_policy

    student = reflow_policy(load("runs/insertion/best"), trajectories, steps=10_000)
    student.n_steps = 2  # an inference setting
    student.save("runs/insertion-reflow")

The student keeps the teacher's architecture, features, normaliser and inference settings;
the pairs are made once, before training (``noises_per_window`` per training window).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import torch
from gymnasium import spaces

from il_toolkit.policies.flow_policy import FlowMatchingPolicy
from il_toolkit.train.imitation_learning.defaults import (
    DEFAULT_NOISES_PER_WINDOW, DEFAULT_REFLOW_LEARNING_RATE, DEFAULT_REFLOW_STEPS)
from il_toolkit.train.imitation_learning.windows import WindowDataset


def reflow_problem(policy: FlowMatchingPolicy) -> str | None:
    """Why ``policy`` cannot be reflowed, or ``None``. A latent-code family's chunk depends on a code drawn
    from its prior as it acts, which its training re-derives from the chunk (and CFG drops): the (noise,
    chunk) pairs would not hold for it."""
    from il_toolkit.train.imitation_learning.latent_code import LatentCodeTrainer

    if isinstance(policy.sampler, LatentCodeTrainer):
        return (f"reflow pairs each noise with the chunk the policy's ODE makes from it; {policy.trainer_key} also "
                "draws a latent code per chunk, which reflow does not couple: reflow a policy of another family "
                "(naive_flow_matching_policy_trainer, vfp_single_expert_trainer, mutual_information_estimator_trainer)")
    return None


def coupled_windows(
    teacher: FlowMatchingPolicy,
    data: WindowDataset,
    *,
    noises_per_window: int = DEFAULT_NOISES_PER_WINDOW,
    n_steps: int | None = None,
    solver: str | None = None,
    seed: int = 0,
    batch_size: int = 1024,
    progress: bool = False,
) -> WindowDataset:
    """``data``'s windows, each ``noises_per_window`` (K) times: ``noise`` ``(N * K, H, Da)`` (normalised
    units) drawn from ``seed`` and, as ``chunks``, where ``teacher``'s ODE takes that noise (raw action
    units, relative to the state where the policy has a feature pipeline, as ``data``'s chunks are), with
    its own solver and step count unless ``n_steps`` / ``solver`` are given and its inference options
    (e.g. guidance), as when it acts. Every chunk position is the teacher's, so none is marked padding."""
    if noises_per_window < 1:
        raise ValueError(f"noises_per_window must be >= 1, got {noises_per_window}")
    problem = reflow_problem(teacher)
    if problem:
        raise ValueError(problem)
    spec = teacher.spec
    n_steps = teacher.n_steps if n_steps is None else n_steps
    solver = teacher.solver if solver is None else solver
    teacher._check_inference(n_steps, solver)
    repeat = torch.arange(len(data)).repeat(noises_per_window)
    generator = torch.Generator().manual_seed(seed)
    noise = torch.randn((len(repeat), spec.horizon, spec.action_dim), generator=generator)
    chunks = torch.empty_like(noise)
    from tqdm.auto import tqdm

    starts = range(0, len(repeat), batch_size)
    for begin in tqdm(starts, desc=f"teacher ODE ({n_steps} {solver} steps)", unit="batch", disable=not progress, leave=False):
        rows = repeat[begin : begin + batch_size]
        with torch.inference_mode():
            chunks[begin : begin + len(rows)] = teacher.sampler.sample_actions(
                data.observation_batch(rows), n_steps=n_steps, solver=solver, deterministic=True,
                noise=noise[begin : begin + len(rows)], generator=generator, **teacher.inference_options,
            ).cpu()
    return dataclasses.replace(data.select(repeat), chunks=chunks, action_is_pad=None, noise=noise)


def copy_policy(policy: FlowMatchingPolicy) -> FlowMatchingPolicy:
    """An independent copy of ``policy`` (weights, settings), made as a checkpoint would be."""
    return FlowMatchingPolicy.from_checkpoint(policy.checkpoint_config(), policy.checkpoint_tensors(),
                                              policy.observation_space, policy.action_space)


def reflow_policy(
    teacher: FlowMatchingPolicy,
    trajectories: Sequence[Any],
    *,
    steps: int = DEFAULT_REFLOW_STEPS,
    learning_rate: float = DEFAULT_REFLOW_LEARNING_RATE,
    noises_per_window: int = DEFAULT_NOISES_PER_WINDOW,
    teacher_steps: int | None = None,
    teacher_solver: str | None = None,
    seed: int = 0,
    progress: bool = False,
    val_trajectories: Sequence[Any] | None = None,
    observation_space: spaces.Space | None = None,
    action_space: spaces.Space | None = None,
    **fit_options: Any,
) -> FlowMatchingPolicy:
    """A student: ``teacher`` fine-tuned for ``steps`` with flow matching on its own (noise, chunk) pairs
    (:func:`coupled_windows` over the training windows of ``trajectories``, the demonstrations it was
    trained on; ``val_trajectories``' windows are coupled the same way, with another seed, so that
    ``val/loss`` measures the pairs). The teacher is left unchanged. ``observation_space`` /
    ``action_space``: the env's, checked against the teacher's where given. ``fit_options`` (batch size,
    logging, checkpoints, resuming, keeping the best epoch) are
    :func:`~il_toolkit.train.imitation_learning.loop.fit_flow_policy`'s; a resumed run makes the same
    pairs again (same ``seed``)."""
    from il_toolkit.train.imitation_learning.loop import fit_flow_policy

    problem = reflow_problem(teacher)
    if problem:
        raise ValueError(problem)
    if observation_space is not None or action_space is not None:
        from il_toolkit.policies import check_spaces

        check_spaces("policy to reflow", teacher.observation_space, teacher.action_space,
                     observation_space or teacher.observation_space, action_space or teacher.action_space,
                     fix="--model_path must point at a policy trained on this env")

    def pairs(episodes: Sequence[Any], pair_seed: int) -> WindowDataset:
        return coupled_windows(teacher, WindowDataset.from_trajectories(episodes, teacher),
                               noises_per_window=noises_per_window, n_steps=teacher_steps, solver=teacher_solver,
                               seed=pair_seed, progress=progress)

    student, _ = fit_flow_policy(
        teacher.trainer_key, trajectories, teacher.observation_space, teacher.action_space, steps=steps,
        learning_rate=learning_rate, seed=seed, progress=progress, policy=copy_policy(teacher),
        windows=pairs(trajectories, seed), val_windows=pairs(val_trajectories, seed + 1) if val_trajectories else None,
        **fit_options,
    )
    return student
