"""The one supervised training loop for toolkit policies (BC, and DAgger through BC).

A trainable policy offers ``compute_loss(observations, actions) -> (loss, metrics)``,
``parameters()`` and a ``model`` (``nn.Module``) whose ``state_dict`` is the policy's state.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import numpy as np
import torch

from il_toolkit.config.training_config import LR_SCHEDULES


def lr_scheduler(optimizer: torch.optim.Optimizer, schedule: str, total_steps: int) -> torch.optim.lr_scheduler.LRScheduler:
    """A per-step learning-rate schedule over ``total_steps`` optimizer steps, relative to the
    optimizer's learning rate: "constant"; "cosine" (decay to 0); "onecycle" (warm up over the
    first 30% from 1/25 of it, then cosine to ~0, as ``torch.optim.lr_scheduler.OneCycleLR``)."""
    if schedule not in LR_SCHEDULES:
        raise ValueError(f"lr_schedule must be one of {', '.join(LR_SCHEDULES)}; got {schedule!r}")
    total = max(1, total_steps)
    if schedule == "constant":
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    if schedule == "cosine":
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 0.5 * (1 + math.cos(math.pi * min(step, total) / total)))
    max_lr = [group["lr"] for group in optimizer.param_groups]
    return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=max_lr, total_steps=total + 1)


@dataclass
class FitHistory:
    epochs: int = 0
    best_epoch: int = 0
    best_val_loss: float = float("inf")
    final_train_loss: float = float("nan")
    best_state: dict[str, torch.Tensor] = field(default_factory=dict)


def _take(observations: Any, index: np.ndarray) -> Any:
    if isinstance(observations, dict):
        return {k: v[index] for k, v in observations.items()}
    return observations[index]


def _num(observations: Any) -> int:
    return len(next(iter(observations.values()))) if isinstance(observations, dict) else len(observations)


def _end_epoch(history: FitHistory, policy: Any, epoch: int, metrics: dict[str, float],
               on_epoch_end: Callable[[int, dict[str, float]], None] | None) -> None:
    """Record an epoch: keep the state with the lowest val/loss (train/loss without validation)."""
    monitored = metrics.get("val/loss", metrics["train/loss"])
    history.epochs, history.final_train_loss = epoch, metrics["train/loss"]
    if monitored < history.best_val_loss:
        history.best_val_loss, history.best_epoch = monitored, epoch
        history.best_state = copy.deepcopy(policy.model.state_dict())
    if on_epoch_end is not None:
        on_epoch_end(epoch, metrics)


def evaluate_loss(policy: Any, observations: Any, actions: np.ndarray, batch_size: int = 4096) -> dict[str, float]:
    """Mean loss and metrics over a whole split, in eval mode, without gradients."""
    policy.model.eval()
    totals: dict[str, float] = {}
    n = _num(observations)
    with torch.no_grad():
        for start in range(0, n, batch_size):
            index = np.arange(start, min(n, start + batch_size))
            _, metrics = policy.compute_loss(_take(observations, index), actions[index])
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
) -> FitHistory:
    """Minibatch AdamW on ``train`` = (observations, actions) for ``epochs`` epochs, the learning
    rate following ``lr_schedule`` (:func:`lr_scheduler`) over the whole fit; keeps the state
    with the lowest validation loss (training loss when there is no validation split)."""
    from tqdm.auto import tqdm

    observations, actions = train
    n = _num(observations)
    if n < batch_size:
        batch_size = n
    optimizer = torch.optim.AdamW(policy.parameters(), lr=learning_rate, weight_decay=weight_decay)
    scheduler = lr_scheduler(optimizer, lr_schedule, epochs * (n // batch_size))
    history = FitHistory(best_state=copy.deepcopy(policy.model.state_dict()))
    for epoch in tqdm(range(1, epochs + 1), desc=desc, unit="epoch", disable=not progress, leave=False):
        policy.model.train()
        order = rng.permutation(n)
        for start in range(0, n - batch_size + 1, batch_size):
            index = order[start : start + batch_size]
            loss, _ = policy.compute_loss(_take(observations, index), actions[index])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()
        metrics = {f"train/{k}": v for k, v in evaluate_loss(policy, observations, actions).items()}
        if val is not None:
            metrics.update({f"val/{k}": v for k, v in evaluate_loss(policy, *val).items()})
        _end_epoch(history, policy, epoch, metrics, on_epoch_end)
    policy.model.eval()
    return history


def evaluate_loader_loss(policy: Any, batches: Iterable[Any]) -> dict[str, float]:
    """Mean loss and metrics over an iterable of batches (e.g. a validation ``DataLoader``),
    in eval mode, without gradients; ``policy.compute_loss(batch)`` reads its own actions."""
    policy.model.eval()
    totals: dict[str, float] = {}
    n = 0
    with torch.no_grad():
        for batch in batches:
            size = _batch_size(batch)
            _, metrics = policy.compute_loss(batch)
            for key, value in metrics.items():
                totals[key] = totals.get(key, 0.0) + value * size
            n += size
    return {key: value / max(n, 1) for key, value in totals.items()}


def _batch_size(batch: Any) -> int:
    return len(batch["action"]) if isinstance(batch, dict) and "action" in batch else _num(batch)


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
) -> FitHistory:
    """:func:`fit` for data that does not fit in arrays: minibatches come from
    ``train_batches`` (re-iterated every epoch, e.g. a torch ``DataLoader`` of dict batches
    that ``policy.compute_loss(batch)`` reads). ``train/loss`` is the mean minibatch loss of the
    epoch; the state with the lowest ``val/loss`` (else ``train/loss``) is kept, as in :func:`fit`.
    ``max_steps`` stops after that many optimizer steps in total (the last epoch may be partial)."""
    from tqdm.auto import tqdm

    optimizer = torch.optim.AdamW(policy.parameters(), lr=learning_rate, weight_decay=weight_decay)
    history = FitHistory(best_state=copy.deepcopy(policy.model.state_dict()))
    steps = 0
    for epoch in tqdm(range(1, epochs + 1), desc=desc, unit="epoch", disable=not progress, leave=False):
        policy.model.train()
        total, count = 0.0, 0
        for batch in train_batches:
            loss, _ = policy.compute_loss(batch)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            size = _batch_size(batch)
            total, count, steps = total + float(loss.detach()) * size, count + size, steps + 1
            if max_steps is not None and steps >= max_steps:
                break
        metrics = {"train/loss": total / max(count, 1), "train/samples": float(count), "train/steps": float(steps)}
        if val_batches is not None:
            metrics.update({f"val/{k}": v for k, v in evaluate_loader_loss(policy, val_batches).items()})
        _end_epoch(history, policy, epoch, metrics, on_epoch_end)
        if max_steps is not None and steps >= max_steps:
            break
    policy.model.eval()
    return history
