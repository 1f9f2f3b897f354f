"""The one training loop of the toolkit.

Every toolkit policy trains through :func:`run_training`: the MLP learner (BC and each DAgger
round, through :func:`il_toolkit.train.supervised.fit`), the six flow-matching trainers
(:func:`il_toolkit.train.imitation_learning.loop.train_flow_policy`), the VLA and VLA GAIL's
retraining (:func:`il_toolkit.train.supervised.fit_loader`), VLA GAIL's discriminator and DAgger's
risk model. Only SB3 policies train elsewhere: in ``imitation``'s BC, and in SB3's own PPO.

What differs between them is data, not loop:

- a **step** ``(batch, position) -> metrics`` that takes one gradient step (:class:`GradientStep`
  for a policy with ``compute_loss``; a flow trainer's ``train_step`` with its per-component
  optimizers and clipping);
- a **batch source** (:class:`ArrayBatches`: shuffled passes over arrays; :class:`LoaderBatches`:
  a ``DataLoader``; :class:`SampledBatches`: minibatches drawn with replacement);
- the **budget** (epochs, steps, or both: whichever ends first), the learning-rate schedule,
  what is evaluated at the end of each epoch, and which weights are kept (:data:`KEEP_RULES`).

The loop owns the rest: the schedule over the whole budget, the progress bar, per-step and
per-epoch metrics, periodic checkpoints, resuming from a step, and Ctrl-C (``on_interrupt`` runs,
then the ``KeyboardInterrupt`` goes on).
"""

from __future__ import annotations

import copy
import math
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Mapping, Protocol

import numpy as np
import torch

from il_toolkit.config.training_config import LR_SCHEDULES

UNBOUNDED_STEPS = 2**62  # the step budget of epochs over batches of unknown number
KEEP_RULES = ("best", "last")  # lowest val/loss (train/loss without validation) at an epoch's end; the last step's


@dataclass(frozen=True)
class Position:
    """Where a step falls: ``step`` (0-based, over the whole run), ``epoch`` (0-based) of ``total_epochs``."""

    step: int
    epoch: int
    total_epochs: int


Step = Callable[[Any, Position], Mapping[str, float]]


class BatchSource(Protocol):
    """One epoch's minibatches at a time; ``steps_per_epoch`` is how many an epoch holds."""

    steps_per_epoch: int

    def epoch(self) -> Iterable[Any]: ...


@dataclass
class FitHistory:
    """What a fit did: the epochs and steps run, the best epoch (1-based) by the monitored loss, the
    last epoch's training loss, the kept and the last weights (``best_state`` is None under "last")."""

    epochs: int = 0
    steps: int = 0
    best_epoch: int = 0
    best_val_loss: float = float("inf")
    final_train_loss: float = float("nan")
    best_state: dict[str, torch.Tensor] | None = None
    last_state: dict[str, torch.Tensor] = field(default_factory=dict)
    kept: str = "last"


# -- batch sources ------------------------------------------------------------------------------
@dataclass
class ArrayBatches:
    """Shuffled passes over ``(observations, actions)`` arrays (observations may be a dict of
    arrays); minibatches of ``batch_size`` (at most the data), the last partial one dropped."""

    observations: Any
    actions: np.ndarray
    batch_size: int
    rng: np.random.Generator

    def __post_init__(self) -> None:
        self.size = num_rows(self.observations)
        self.batch_size = min(self.batch_size, self.size)

    @property
    def steps_per_epoch(self) -> int:
        return self.size // self.batch_size

    def epoch(self) -> Iterator[tuple[Any, np.ndarray]]:
        order = self.rng.permutation(self.size)
        for start in range(0, self.size - self.batch_size + 1, self.batch_size):
            index = order[start : start + self.batch_size]
            yield take_rows(self.observations, index), self.actions[index]


@dataclass
class LoaderBatches:
    """Every batch of an iterable (a torch ``DataLoader``), re-iterated each epoch."""

    batches: Iterable[Any]

    @property
    def steps_per_epoch(self) -> int:
        return len(self.batches) if hasattr(self.batches, "__len__") else 0  # type: ignore[arg-type]

    def epoch(self) -> Iterable[Any]:
        return self.batches


@dataclass
class SampledBatches:
    """Minibatches of ``batch_size`` indices drawn with replacement from ``range(size)`` by
    ``generator`` and turned into a batch by ``gather(indices)``; an epoch is ``size // batch_size``
    draws (the loop cuts it there)."""

    size: int
    batch_size: int
    gather: Callable[[torch.Tensor], Any]
    generator: torch.Generator

    @property
    def steps_per_epoch(self) -> int:
        return max(1, self.size // self.batch_size)

    def epoch(self) -> Iterator[Any]:
        while True:
            yield self.gather(torch.randint(0, self.size, (self.batch_size,), generator=self.generator))


# -- the default step ---------------------------------------------------------------------------
class GradientStep:
    """One optimizer step on ``loss_fn(batch) -> (loss, metrics)``: AdamW over ``parameters``, or the
    given ``optimizer`` (kept across fits, e.g. GAIL's discriminator's); ``module`` is put in train
    mode first. A tuple batch ``(inputs, targets)`` is passed as two arguments."""

    def __init__(self, loss_fn: Callable[..., tuple[torch.Tensor, Mapping[str, float]]], module: torch.nn.Module,
                 parameters: Iterable[torch.nn.Parameter] = (), *, learning_rate: float = 1e-3,
                 weight_decay: float = 0.0, optimizer: torch.optim.Optimizer | None = None) -> None:
        self.loss_fn, self.module = loss_fn, module
        if optimizer is None:
            optimizer = torch.optim.AdamW(parameters, lr=learning_rate, weight_decay=weight_decay)
        self.optimizers = {"model": optimizer}

    def __call__(self, batch: Any, position: Position) -> dict[str, float]:
        self.module.train()
        loss, metrics = self.loss_fn(*batch) if isinstance(batch, tuple) else self.loss_fn(batch)
        optimizer = self.optimizers["model"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return {"loss": float(loss.detach()), **metrics}


# -- schedules ----------------------------------------------------------------------------------
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


def _schedulers(optimizers: Mapping[str, torch.optim.Optimizer], schedule: str, total_steps: int,
                start_step: int) -> list[torch.optim.lr_scheduler.LRScheduler]:
    """One scheduler per optimizer, advanced to ``start_step`` when resuming."""
    schedulers = [lr_scheduler(optimizer, schedule, total_steps) for optimizer in optimizers.values()]
    if start_step:
        with warnings.catch_warnings():  # advancing without optimizer steps is what resuming means
            warnings.simplefilter("ignore", UserWarning)
            for scheduler in schedulers:
                for _ in range(start_step):
                    scheduler.step()
    return schedulers


# -- the loop -----------------------------------------------------------------------------------
def run_training(
    step: Step,
    batches: BatchSource,
    *,
    optimizers: Mapping[str, torch.optim.Optimizer],
    module: torch.nn.Module,
    epochs: int | None = None,
    steps: int | None = None,
    lr_schedule: str = "constant",
    evaluate: Callable[[], Mapping[str, float]] | None = None,
    keep: str = "last",
    log_step: Callable[[Mapping[str, float], int], None] | None = None,
    on_epoch_end: Callable[[int, dict[str, float]], None] | None = None,
    checkpoint: Callable[[int], None] | None = None,
    checkpoint_every: int = 0,
    on_interrupt: Callable[[int], None] | None = None,
    start_step: int = 0,
    progress: bool = False,
    desc: str = "train",
) -> FitHistory:
    """Run ``step`` on ``batches`` until ``epochs`` passes or ``steps`` steps (whichever ends first;
    at least one of them), the learning rate of every optimizer following ``lr_schedule`` over the
    whole budget, and leave ``module`` at the weights ``keep`` names.

    At each epoch's end: ``train/loss`` (the epoch's mean minibatch loss), ``train/samples`` and
    ``train/steps`` (so far), updated by ``evaluate()`` (e.g. losses over whole splits, ``val/*``),
    go to ``on_epoch_end(epoch, metrics)`` (1-based epoch). ``log_step(metrics, step)`` sees each
    step's metrics. ``checkpoint(steps_done)`` runs every ``checkpoint_every`` steps and at the end;
    Ctrl-C calls ``on_interrupt(steps_done)`` and re-raises. ``start_step`` resumes a run (the
    schedule and epoch count continue from there)."""
    from tqdm.auto import tqdm

    if keep not in KEEP_RULES:
        raise ValueError(f"keep must be one of {', '.join(KEEP_RULES)}; got {keep!r}")
    per_epoch = batches.steps_per_epoch
    total_epochs, total_steps = _budget(epochs, steps, per_epoch)
    schedulers = _schedulers(optimizers, lr_schedule, total_steps, start_step)
    history = FitHistory(steps=start_step, kept=keep)
    if keep == "best":
        history.best_state = copy.deepcopy(module.state_dict())
    by_steps = steps is not None
    bar = tqdm(total=total_steps if by_steps else total_epochs, initial=start_step if by_steps else 0, desc=desc,
               unit="step" if by_steps else "epoch", disable=not progress, leave=False)
    first_epoch = start_step // per_epoch if per_epoch else 0
    try:
        for epoch in range(first_epoch, total_epochs):
            metrics = _run_epoch(step, batches, schedulers, history, epoch, total_epochs, total_steps, per_epoch,
                                 bar if by_steps else None, log_step, checkpoint, checkpoint_every)
            if evaluate is not None:
                metrics.update(evaluate())
            _end_epoch(history, module, epoch + 1, metrics, on_epoch_end)
            if not by_steps:
                bar.update(1)
                bar.set_postfix(loss=f"{metrics['train/loss']:.4f}")
            if history.steps >= total_steps:
                break
    except KeyboardInterrupt:
        bar.close()
        if on_interrupt is not None:
            on_interrupt(history.steps)
        raise
    bar.close()
    history.last_state = {k: v.detach().clone() for k, v in module.state_dict().items()}
    if keep == "best" and history.best_state is not None:
        module.load_state_dict(history.best_state)
    module.eval()
    if checkpoint is not None:
        checkpoint(history.steps)
    return history


def _budget(epochs: int | None, steps: int | None, per_epoch: int) -> tuple[int, int]:
    """``(total_epochs, total_steps)`` from whichever budgets are given."""
    if epochs is None and steps is None:
        raise ValueError("give the fit a budget: epochs, steps, or both")
    if (epochs is not None and epochs < 0) or (steps is not None and steps < 0):
        raise ValueError(f"epochs and steps must be >= 0, got epochs={epochs}, steps={steps}")
    if epochs is None:
        return (max(1, -(-steps // per_epoch)) if per_epoch else 1), steps  # type: ignore[operator]
    if not per_epoch:  # batches of unknown number (a generator): the epochs end when it does
        return epochs, steps if steps is not None else UNBOUNDED_STEPS
    return epochs, min(epochs * per_epoch, steps) if steps is not None else epochs * per_epoch


def _run_epoch(step: Step, batches: BatchSource, schedulers: list[Any], history: FitHistory, epoch: int,
               total_epochs: int, total_steps: int, per_epoch: int, bar: Any,
               log_step: Callable[[Mapping[str, float], int], None] | None,
               checkpoint: Callable[[int], None] | None, checkpoint_every: int) -> dict[str, float]:
    """One pass (cut at the epoch's last step or the budget); returns the epoch's training metrics."""
    total, count = 0.0, 0
    epoch_end = (epoch + 1) * per_epoch if per_epoch else total_steps
    source = iter(batches.epoch())
    while history.steps < min(epoch_end, total_steps):
        batch = next(source, None)  # asked for only when a step will use it: sampling draws from a generator
        if batch is None:
            break
        metrics = step(batch, Position(history.steps, epoch, total_epochs))
        for scheduler in schedulers:
            scheduler.step()
        size = batch_rows(batch)
        total, count = total + float(metrics["loss"]) * size, count + size
        if log_step is not None:
            log_step(metrics, history.steps)
        history.steps += 1
        if bar is not None:
            bar.update(1)
            if history.steps % 50 == 1:
                bar.set_postfix(loss=f"{metrics['loss']:.4f}")
        if checkpoint is not None and checkpoint_every and history.steps % checkpoint_every == 0 \
                and history.steps < total_steps:
            checkpoint(history.steps)
    return {"train/loss": total / max(count, 1), "train/samples": float(count), "train/steps": float(history.steps)}


def _end_epoch(history: FitHistory, module: torch.nn.Module, epoch: int, metrics: dict[str, float],
               on_epoch_end: Callable[[int, dict[str, float]], None] | None) -> None:
    """Record an epoch: the lowest monitored loss (``val/loss``, else ``train/loss``), and its
    weights under the "best" rule."""
    monitored = metrics.get("val/loss", metrics["train/loss"])
    history.epochs, history.final_train_loss = epoch, metrics["train/loss"]
    if monitored < history.best_val_loss:
        history.best_val_loss, history.best_epoch = monitored, epoch
        if history.kept == "best":
            history.best_state = copy.deepcopy(module.state_dict())
    if on_epoch_end is not None:
        on_epoch_end(epoch, metrics)


# -- batches of rows ----------------------------------------------------------------------------
def take_rows(observations: Any, index: np.ndarray) -> Any:
    """Rows ``index`` of an array or of each array in a dict."""
    if isinstance(observations, dict):
        return {k: v[index] for k, v in observations.items()}
    return observations[index]


def num_rows(observations: Any) -> int:
    return len(next(iter(observations.values()))) if isinstance(observations, dict) else len(observations)


def batch_rows(batch: Any) -> int:
    """Samples in a batch: a ``(observations, actions)`` pair, a dict with ``"action"``, or rows."""
    if isinstance(batch, tuple):
        return len(batch[1])
    if isinstance(batch, dict) and "action" in batch:
        return len(batch["action"])
    return num_rows(batch)
