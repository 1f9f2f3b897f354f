"""Train any ``TRAINER_REGISTRY`` trainer on demonstrations and get a :class:`FlowMatchingPolicy`.

The glue a CLI command needs (``il-toolkit train flow --trainer KEY --dataset ID``)::

    policy = train_flow_policy("naive_flow_matching_policy_trainer", trajectories,
                               env.observation_space, env.action_space, steps=20_000,
                               spec_fields={"horizon": 16, "n_obs_steps": 2},
                               checkpoint_dir="runs/pusht", checkpoint_every=1000, resume=True,
                               log=lambda metrics, step: wandb.log(metrics, step=step))

With ``checkpoint_dir``, the training state (models + optimizers, ``trainer_state.*``) and the
policy (``policy/``, loadable with ``il_toolkit.policies.load``) are written every
``checkpoint_every`` steps and at the end; ``resume=True`` continues from the saved step.
``progress=True`` shows a bar with the step, the budget, the time left and the loss.
"""

from __future__ import annotations

import functools
import warnings
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import torch
from gymnasium import spaces

from il_toolkit.config.training_config import LR_SCHEDULES, ConfigError
from il_toolkit.features.state import StateFeatures
from il_toolkit.model.spec import FlowModelSpec
from il_toolkit.policies.flow_policy import FlowMatchingPolicy
from il_toolkit.train.datasets.minari_io import chunk_start_mask
from il_toolkit.train.imitation_learning import TRAINER_REGISTRY
from il_toolkit.train.imitation_learning.training_state import has_training_state
from il_toolkit.train.imitation_learning.windows import WindowDataset, check_horizon_fits
from il_toolkit.train.loop import KEEP_RULES, FitHistory, Position, SampledBatches, run_training


def fit_flow_policy(
    trainer_key: str,
    trajectories: Sequence[Any],
    observation_space: spaces.Space,
    action_space: spaces.Space,
    *,
    steps: int,
    batch_size: int = 256,
    learning_rate: float = 3e-4,
    lr_schedule: str = "cosine",
    seed: int = 0,
    spec_fields: Mapping[str, Any] | None = None,
    policy_options: Mapping[str, Any] | None = None,
    features: StateFeatures | None = None,
    log: Callable[[dict[str, float], int], None] | None = None,
    checkpoint_dir: str | Path | None = None,
    checkpoint_every: int = 0,
    resume: bool = False,
    device: str = "cpu",
    progress: bool = False,
    policy: FlowMatchingPolicy | None = None,
    val_trajectories: Sequence[Any] | None = None,
    keep: str = "last",
    on_epoch_end: Callable[[int, dict[str, float]], None] | None = None,
    windows: WindowDataset | None = None,
    val_windows: WindowDataset | None = None,
) -> tuple[FlowMatchingPolicy, FitHistory]:
    """:func:`train_flow_policy`, returning the loop's :class:`~il_toolkit.train.loop.FitHistory` too.

    Train for ``steps`` gradient steps (minibatches of windows drawn with replacement), the
    learning rate following ``lr_schedule`` over the ``steps`` (``"cosine"`` decays it to 0), in the
    toolkit's one loop (:func:`il_toolkit.train.loop.run_training`).

    An epoch is ``windows // batch_size`` steps; at its end ``on_epoch_end(epoch, metrics)`` sees
    ``train/loss`` and, with ``val_trajectories``, ``val/loss`` (the trainer's loss over every
    validation window with fixed noise). ``keep``: "last" (the last step's weights) or "best" (the
    epoch with the lowest ``val/loss``, else ``train/loss``). Ctrl-C with ``checkpoint_dir`` saves
    the training state reached, which ``resume=True`` continues.

    ``features``: the env's feature pipeline (:func:`il_toolkit.policies.flow_policy.default_state_features`);
    None trains on the raw state, as flow policies did before the shared pipeline.
    ``policy``: continue training this policy (fine-tuning): its architecture, features and
    normaliser are kept (its weights were fitted to that normaliser), so ``spec_fields``,
    ``features`` and ``policy_options`` must not be given with it, and ``trainer_key`` must be its own.
    ``windows`` / ``val_windows``: with ``policy``, the training / validation windows already built for
    it (reflow's coupled pairs, :mod:`~il_toolkit.train.imitation_learning.reflow`) instead of those of
    ``trajectories`` / ``val_trajectories``."""
    if steps < 0 or batch_size < 1:
        raise ValueError(f"steps must be >= 0 and batch_size >= 1, got steps={steps}, batch_size={batch_size}")
    if lr_schedule not in LR_SCHEDULES:
        raise ValueError(f"lr_schedule must be one of {LR_SCHEDULES}, got {lr_schedule!r}")
    if keep not in KEEP_RULES:
        raise ValueError(f"keep must be one of {KEEP_RULES}, got {keep!r}")
    if (windows is not None or val_windows is not None) and policy is None:
        raise ValueError("windows are built for a policy (its features and chunk); pass the policy they were built for")
    trainer_class = TRAINER_REGISTRY.get(trainer_key)
    torch.manual_seed(seed)
    if policy is None:
        check_horizon_fits(trajectories, int(dict(spec_fields or {}).get("horizon") or FlowModelSpec.horizon))
        policy = FlowMatchingPolicy.create(
            trainer_key, observation_space, action_space, policy_options={**dict(policy_options or {}), "seed": seed},
            features=features, **dict(spec_fields or {}),
        )
        data = fit_normalizer(policy, trajectories)
    else:
        _check_continuable(policy, trainer_key, observation_space, action_space, spec_fields, features, policy_options)
        data = windows if windows is not None else WindowDataset.from_trajectories(trajectories, policy)
    val_trajectories = [t for t in val_trajectories or () if chunk_start_mask(t).any()]
    val_data = val_windows if val_windows is not None else (
        WindowDataset.from_trajectories(val_trajectories, policy) if val_trajectories else None)
    models = policy.model
    trainer = trainer_class(
        models, trainer_class.build_optimizers(models, lr=learning_rate), None, device,
        generator=torch.Generator(device=device).manual_seed(seed),
    )
    batches = SampledBatches(len(data), batch_size, data.batch, torch.Generator().manual_seed(seed + 1))
    directory = Path(checkpoint_dir) if checkpoint_dir is not None else None
    start = _resume(trainer, directory, learning_rate, batches.generator, seed) if resume and directory is not None else 0

    def step(batch: Any, position: Position) -> dict[str, float]:
        return trainer.train_step(batch, position.epoch, position.total_epochs, position.step)

    def checkpoint(iterations: int) -> None:
        _checkpoint(trainer, policy, directory, max(iterations, start), batches)

    history = run_training(
        step, batches, optimizers=trainer.optimizers, module=models, steps=steps, lr_schedule=lr_schedule,
        evaluate=(lambda: {"val/loss": validation_loss(trainer, val_data)}) if val_data is not None else None,
        keep=keep, log_step=None if log is None else (lambda metrics, i: log(dict(metrics), i)),
        on_epoch_end=on_epoch_end, checkpoint=checkpoint if directory is not None else None,
        checkpoint_every=checkpoint_every, on_interrupt=checkpoint if directory is not None else None,
        start_step=start, progress=progress, desc=f"train {trainer_key}",
    )
    return policy, history


@functools.wraps(fit_flow_policy, assigned=())  # its signature, this docstring
def train_flow_policy(*args: Any, **kwargs: Any) -> FlowMatchingPolicy:
    """Train any ``TRAINER_REGISTRY`` trainer on ``trajectories`` and return the policy; the
    arguments are :func:`fit_flow_policy`'s."""
    return fit_flow_policy(*args, **kwargs)[0]


def validation_loss(trainer: Any, data: WindowDataset, batch_size: int = 1024, seed: int = 0) -> float:
    """The trainer's loss over every window of ``data`` with fixed noise and times (``seed``), so that
    epochs compare; without gradients, in eval mode."""
    generator, trainer.generator = trainer.generator, torch.Generator(device=trainer.device).manual_seed(seed)
    trainer.models.eval()
    total = 0.0
    try:
        with torch.no_grad():
            for begin in range(0, len(data), batch_size):
                indices = torch.arange(begin, min(len(data), begin + batch_size))
                loss, _ = trainer.compute_loss(data.batch(indices))
                total += float(loss) * len(indices)
    finally:
        trainer.generator = generator
    return total / max(len(data), 1)


def _check_continuable(policy: FlowMatchingPolicy, trainer_key: str, observation_space: spaces.Space,
                       action_space: spaces.Space, *settings: Any) -> None:
    """A policy to fine-tune must be of ``trainer_key``'s family, for these spaces, with no new architecture."""
    from il_toolkit.policies import check_spaces

    if policy.trainer_key != trainer_key:
        raise ConfigError(f"the starting policy was trained by {policy.trainer_key}, not {trainer_key}: pass "
                         f"--trainer {policy.trainer_key} to continue it")
    check_spaces("starting policy", policy.observation_space, policy.action_space, observation_space, action_space,
                 fix="--model_path must point at a policy trained on this env")
    if any(settings):
        raise ConfigError("a starting policy keeps its own architecture, features and execution settings; do not "
                         "pass spec_fields, features or policy_options with it")


def _resume(trainer: Any, directory: Path, learning_rate: float, batch_generator: torch.Generator, seed: int) -> int:
    """The step a run continues from: the training state's in ``directory`` (models, optimizers and random state
    restored into ``trainer`` and ``batch_generator``), else 0."""
    if not has_training_state(directory):
        if (directory / "policy").exists():
            warnings.warn(f"{directory} holds a policy but no training state to resume from: training starts again "
                          "from step 0", stacklevel=3)
        return 0
    fresh = batch_generator.get_state()
    start = trainer.load_training_state(directory, generators={"batches": batch_generator})["iterations"]
    _restart_learning_rate(trainer, learning_rate)
    if torch.equal(batch_generator.get_state(), fresh):  # a state saved before it held the sampler's: as those resumed
        batch_generator.manual_seed(seed + 1 + start)
    return start


def _restart_learning_rate(trainer: Any, lr: float) -> None:
    """A resumed trainer's optimizers hold the decayed rate of their last step; the schedule is
    re-applied from the base rate."""
    for optimizer in trainer.optimizers.values():
        for group in optimizer.param_groups:
            group["lr"] = group["initial_lr"] = lr


def fit_normalizer(policy: FlowMatchingPolicy, trajectories: Sequence[Any]) -> WindowDataset:
    """Fit ``policy``'s normaliser on the windows of ``trajectories`` as the policy sees them (its
    features, its encoded action chunks) and return those windows."""
    data = WindowDataset.from_trajectories(trajectories, policy)
    states = data.state_rows()
    states = None if states is None or policy.spec.state_dim == 0 else states.float().numpy()
    policy.model["normalizer"].fit(actions=data.labelled_chunks().numpy(), states=states)
    return data


def _checkpoint(trainer: Any, policy: FlowMatchingPolicy, directory: Path, iterations: int,
                batches: SampledBatches) -> None:
    trainer.save_training_state(directory, epoch=iterations // batches.steps_per_epoch, iterations=iterations,
                                generators={"batches": batches.generator})
    policy.save(directory / "policy")
