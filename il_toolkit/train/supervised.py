"""Supervised fits of toolkit policies (BC, each DAgger round, the VLA) through the one loop.

A trainable policy offers ``compute_loss(...) -> (loss, metrics)``, ``parameters()`` and a
``model`` (``nn.Module``) whose ``state_dict`` is the policy's state. :func:`fit` takes arrays,
:func:`fit_loader` batches from a ``DataLoader``; both run :func:`il_toolkit.train.loop.run_training`.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable

import numpy as np
import torch

from il_toolkit.train.loop import (
    ArrayBatches,
    FitHistory,
    GradientStep,
    LoaderBatches,
    batch_rows,
    lr_scheduler,
    num_rows,
    run_training,
    take_rows,
)

__all__ = ["FitHistory", "evaluate_loader_loss", "evaluate_loss", "fit", "fit_loader", "lr_scheduler"]


def evaluate_loss(policy: Any, observations: Any, actions: np.ndarray, batch_size: int = 4096) -> dict[str, float]:
    """Mean loss and metrics over a whole split, in eval mode, without gradients."""
    policy.model.eval()
    totals: dict[str, float] = {}
    n = num_rows(observations)
    with torch.no_grad():
        for start in range(0, n, batch_size):
            index = np.arange(start, min(n, start + batch_size))
            _, metrics = policy.compute_loss(take_rows(observations, index), actions[index])
            for key, value in metrics.items():
                totals[key] = totals.get(key, 0.0) + value * len(index)
    return {key: value / n for key, value in totals.items()}


def fit(
    policy: Any,
    train: tuple[Any, np.ndarray],
    val: tuple[Any, np.ndarray] | None,
    *,
    epochs: int,
    batch_size: int,
    learning_rate: float,
    weight_decay: float,
    rng: np.random.Generator,
    on_epoch_end: Callable[[int, dict[str, float]], None] | None = None,
    progress: bool = False,
    desc: str = "train",
    lr_schedule: str = "constant",
    keep: str = "best",
) -> FitHistory:
    """Minibatch AdamW on ``train`` = (observations, actions) for ``epochs`` epochs, the learning
    rate following ``lr_schedule`` (:func:`lr_scheduler`) over the whole fit. After each epoch the
    loss over the whole training split (and ``val``) is measured; ``keep="best"`` leaves the policy
    at the lowest validation loss (training loss without ``val``), ``"last"`` at its last step."""
    step = GradientStep(policy.compute_loss, policy.model, policy.parameters(), learning_rate=learning_rate,
                        weight_decay=weight_decay)

    def evaluate() -> dict[str, float]:
        metrics = {f"train/{k}": v for k, v in evaluate_loss(policy, *train).items()}
        if val is not None:
            metrics.update({f"val/{k}": v for k, v in evaluate_loss(policy, *val).items()})
        return metrics

    return run_training(
        step, ArrayBatches(*train, batch_size=batch_size, rng=rng), optimizers=step.optimizers, module=policy.model,
        epochs=epochs, lr_schedule=lr_schedule, evaluate=evaluate, keep=keep, on_epoch_end=on_epoch_end,
        progress=progress, desc=desc,
    )


def evaluate_loader_loss(policy: Any, batches: Iterable[Any]) -> dict[str, float]:
    """Mean loss and metrics over an iterable of batches (e.g. a validation ``DataLoader``),
    in eval mode, without gradients; ``policy.compute_loss(batch)`` reads its own actions."""
    policy.model.eval()
    totals: dict[str, float] = {}
    n = 0
    with torch.no_grad():
        for batch in batches:
            size = batch_rows(batch)
            _, metrics = policy.compute_loss(batch)
            for key, value in metrics.items():
                totals[key] = totals.get(key, 0.0) + value * size
            n += size
    return {key: value / max(n, 1) for key, value in totals.items()}


def fit_loader(
    policy: Any,
    train_batches: Iterable[Any],
    val_batches: Iterable[Any] | None,
    *,
    epochs: int,
    learning_rate: float,
    weight_decay: float,
    on_epoch_end: Callable[[int, dict[str, float]], None] | None = None,
    max_steps: int | None = None,
    progress: bool = False,
    desc: str = "train",
    keep: str = "best",
) -> FitHistory:
    """:func:`fit` for data that does not fit in arrays: minibatches come from
    ``train_batches`` (re-iterated every epoch, e.g. a torch ``DataLoader`` of dict batches
    that ``policy.compute_loss(batch)`` reads). ``train/loss`` is the mean minibatch loss of the
    epoch; ``keep`` as in :func:`fit`. ``max_steps`` stops after that many optimizer steps in total
    (the last epoch may be partial)."""
    step = GradientStep(policy.compute_loss, policy.model, policy.parameters(), learning_rate=learning_rate,
                        weight_decay=weight_decay)

    def evaluate() -> dict[str, float]:
        return {f"val/{k}": v for k, v in evaluate_loader_loss(policy, val_batches).items()}  # type: ignore[arg-type]

    return run_training(
        step, LoaderBatches(train_batches), optimizers=step.optimizers, module=policy.model, epochs=epochs,
        steps=max_steps, evaluate=evaluate if val_batches is not None else None, keep=keep, on_epoch_end=on_epoch_end,
        progress=progress, desc=desc,
    )
