"""Reflow: straighten a trained flow policy's ODE so that one or two Euler steps act as its ten did.

Liu, Gong and Liu, "Flow Straight and Fast: Learning to Generate and Transfer Data with Rectified
Flow" (ICLR 2023). A flow-matching model trained on independent (noise, demonstration) pairs
learns paths that curve, because the straight lines between those pairs cross; few Euler steps
then land off the data. Reflow draws noises, takes each through the trained model's own ODE
(the *teacher*) and fine-tunes a copy of the model (the *student*) with plain flow matching on
the resulting (noise, chunk) pairs: lines between coupled pairs do not cross, so the student's
paths are nearly straight and its one- and two-step chunks nearly those of the teacher's ODE::

    from il_toolkit.policies import load
    from il_toolkit.train.imitation_learning.reflow import reflow_policy

    student = reflow_policy(load("runs/insertion/policy"), trajectories, steps=10_000)
    student.n_steps = 2  # an inference setting
    student.save("runs/insertion-reflow")

The student keeps the teacher's architecture, features, normaliser and inference settings;
the pairs are made once, before training (``noises_per_window`` per training window).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Sequence

import torch

from il_toolkit.policies.flow_policy import FlowMatchingPolicy
from il_toolkit.train.imitation_learning.windows import WindowDataset

from il_toolkit.train.imitation_learning.defaults import (
    DEFAULT_NOISES_PER_WINDOW, DEFAULT_REFLOW_LEARNING_RATE, DEFAULT_REFLOW_STEPS)


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
    """``data``'s windows, each ``noises_per_window`` times, with ``noise`` ``(N * K, H, Da)`` drawn from
    ``seed`` and, as chunks, where ``teacher``'s ODE takes that noise (its own solver and step count
    unless ``n_steps`` / ``solver`` are given; its inference options, e.g. guidance, as when it acts).
    Positions without a label (``action_is_pad``) stay marked: the teacher's chunk there is not trained."""
    if noises_per_window < 1:
        raise ValueError(f"noises_per_window must be >= 1, got {noises_per_window}")
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
        window = {key: value for key, value in data.batch(rows).items() if key.startswith("observation")}
        with torch.inference_mode():
            chunks[begin : begin + len(rows)] = teacher.sampler.sample_actions(
                window, n_steps=n_steps, solver=solver, deterministic=True, noise=noise[begin : begin + len(rows)],
                **teacher.inference_options,
            ).cpu()
    return WindowDataset(
        observations=data.observations, actions=data.actions, obs_index=data.obs_index[repeat],
        action_index=data.action_index[repeat], chunks=chunks,
        action_is_pad=None if data.action_is_pad is None else data.action_is_pad[repeat], noise=noise,
    )


def copy_policy(policy: FlowMatchingPolicy) -> FlowMatchingPolicy:
    """An independent copy of ``policy`` (weights, settings) through its own checkpoint format."""
    with tempfile.TemporaryDirectory() as tmp:
        return FlowMatchingPolicy.load(policy.save(Path(tmp) / "policy"))


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
    **fit_options: Any,
) -> FlowMatchingPolicy:
    """A student: ``teacher`` fine-tuned for ``steps`` with flow matching on its own (noise, chunk) pairs
    (:func:`coupled_windows` over the training windows of ``trajectories``, the demonstrations it was
    trained on). The teacher is left unchanged. ``fit_options`` (batch size, logging, checkpoints,
    resuming, validation) are :func:`~il_toolkit.train.imitation_learning.loop.fit_flow_policy`'s; a
    resumed run makes the same pairs again (same ``seed``)."""
    from il_toolkit.train.imitation_learning.loop import fit_flow_policy

    student = copy_policy(teacher)
    pairs = coupled_windows(teacher, WindowDataset.from_trajectories(trajectories, teacher),
                            noises_per_window=noises_per_window, n_steps=teacher_steps, solver=teacher_solver,
                            seed=seed, progress=progress)
    student, _ = fit_flow_policy(
        teacher.trainer_key, trajectories, teacher.observation_space, teacher.action_space, steps=steps,
        learning_rate=learning_rate, seed=seed, progress=progress, policy=student, windows=pairs, **fit_options,
    )
    return student
