"""What BC, DAgger and GAIL share: seeding, demonstrations, train/validation splits, the
seed-004 command-line flags and the run directory layout."""

from __future__ import annotations

import argparse
import contextlib
import random
from dataclasses import fields
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import gymnasium as gym
import numpy as np

from il_toolkit.config.training_config import ACTIVATIONS, BETA_SCHEDULES, LR_SCHEDULES, ON_STUCK, POLICY_TYPES, ILConfig
from il_toolkit.envs import make_env


class ResumeMismatchError(ValueError):
    """``output_dir`` holds a run made with a different configuration."""


class RunBusyError(RuntimeError):
    """Another process is running in the same ``output_dir``."""


@contextlib.contextmanager
def run_dir_lock(output_dir: str | Path) -> Iterator[None]:
    """Hold ``output_dir`` for one run (:func:`il_toolkit.locks.exclusive` on ``.<name>.lock`` beside
    it, so that removing the folder cannot remove the lock): two runs resuming from one folder
    would write one dataset and one state file at once."""
    from il_toolkit.locks import exclusive

    def busy(pid: str) -> RunBusyError:
        return RunBusyError(f"{output_dir} is in use by another run (pid {pid}); wait for it to finish (rerun the "
                            "same command then to resume), or pass another --output_dir")

    folder = Path(output_dir).resolve()
    with exclusive(folder.parent / f".{folder.name}.lock", busy):
        yield


def seed_everything(seed: int) -> np.random.Generator:
    """Seed python, numpy and torch (single-threaded: fastest for small models on 2 cores)."""
    import torch

    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    torch.set_num_threads(1)
    return np.random.default_rng(seed)


def resolve_env(env: str | gym.Env) -> gym.Env:
    return make_env(env) if isinstance(env, str) else env


def env_for_dataset(dataset_id: str, env_id: str | None = None) -> gym.Env:
    """The env a Minari dataset was recorded in (with its recorded constructor keywords,
    e.g. ``obs_type``); ``env_id`` overrides the recorded id."""
    from il_toolkit.train.datasets.minari_io import dataset_metadata, open_dataset

    meta = dataset_metadata(open_dataset(dataset_id))
    recorded = meta.get("il_toolkit_env_id") or None
    if env_id is None and recorded is None:
        raise SystemExit(f"dataset {dataset_id!r} does not record its env id; pass --env")
    kwargs = dict(meta.get("il_toolkit_env_kwargs") or {})
    if env_id is not None and recorded is not None:
        from il_toolkit.envs import canonical_env_id

        if canonical_env_id(env_id) != recorded:
            kwargs = {}  # another env: its own defaults; the dataset's spaces are checked when loading
    return make_env(env_id or recorded, **kwargs)


def env_and_dataset(env_id: str | None, dataset: str | None, *, progress: bool = True) -> tuple[gym.Env, str | None]:
    """What a training command line names: the env (the dataset's, with its recorded
    keywords, when ``--dataset`` is given) and the local Minari id (``lerobot/*`` resolved)."""
    if dataset is not None:
        from il_toolkit.train.datasets.lerobot_dataset import resolve_dataset

        dataset = resolve_dataset(dataset, progress=progress)
        return env_for_dataset(dataset, env_id), dataset
    if env_id is None:
        raise SystemExit("give --env ENV_ID (train from its expert) or --dataset DATASET_ID")
    return resolve_env(env_id), None


def env_id_of(env: gym.Env) -> str:
    if env.spec is None:
        raise ValueError("the env has no spec (id); make it with gymnasium.make or il_toolkit.envs.make_env")
    return env.spec.id


def demonstration_seeds(config: ILConfig, n_episodes: int) -> list[int]:
    """Reset seeds for expert demonstrations: disjoint per training seed, and far from the
    evaluation seeds (1,000,000 and up)."""
    base = config.seed * 10_000
    return list(range(base, base + n_episodes))


def split_episodes(trajectories: Sequence[Any], validation_split: float, rng: np.random.Generator) -> tuple[list, list]:
    """Split whole episodes (not steps, so no episode leaks into both) into train / validation."""
    n = len(trajectories)
    n_val = int(round(n * validation_split)) if validation_split > 0 and n >= 2 else 0
    if validation_split > 0 and n >= 2:
        n_val = max(1, min(n - 1, n_val))
    order = rng.permutation(n)
    val = [trajectories[i] for i in sorted(order[:n_val])]
    train = [trajectories[i] for i in sorted(order[n_val:])]
    return train, val


def filter_demonstrations(trajectories: Sequence[Any], config: ILConfig) -> list[Any]:
    """Seed 004's data-quality filter: keep episodes in the top return percentile."""
    from il_toolkit.train.datasets.minari_io import filter_top_percentile

    kept = list(trajectories)
    if config.demo_top_percentile is not None:
        kept = filter_top_percentile(kept, config.demo_top_percentile)
    return kept


# -- command line ----------------------------------------------------------------------
_HELP = {
    "bc_epochs": "training epochs (per DAgger iteration for DAgger)",
    "bc_validation_split": "fraction of demonstration episodes held out for val/loss",
    "learning_rate": "optimizer learning rate",
    "batch_size": "minibatch size",
    "weight_decay": "AdamW weight decay",
    "seed": "training seed (also picks the demonstration starts)",
    "num_expert_episodes": "expert episodes to collect when no --dataset is given",
    "demo_top_percentile": "keep only demonstrations at or above this return percentile (e.g. 70)",
    "dagger_iterations": "number of DAgger iterations",
    "dagger_episodes_per_iter": "episodes collected per DAgger iteration",
    "dagger_beta_schedule": f"beta decay: {', '.join(BETA_SCHEDULES)}",
    "dagger_initial_beta": "starting probability of acting with the expert",
    "gail_disc_hidden_dim": "discriminator hidden layer size",
    "gail_disc_updates": "discriminator updates per policy update",
    "gail_disc_lr": "discriminator learning rate",
    "gail_reward_scale": "multiplier for the GAIL reward",
    "gail_disc_noise": "std of Gaussian noise added to discriminator inputs",
    "total_timesteps": "environment steps for GAIL/PPO",
    "gail_bc_warm_start_epochs": "BC epochs on the demonstrations before GAIL starts (seed's best practice); skipped "
                                 "when GAIL starts from --model_path, which is the warm start then",
    "gail_demo_batch_size": "expert (and generator) samples per discriminator update",
    "gail_n_envs": "parallel envs for the PPO generator (ppo_n_steps is split across them)",
    "ppo_epochs": "PPO epochs per update",
    "ppo_clip_range": "PPO clip range",
    "ppo_gae_lambda": "GAE lambda",
    "ppo_n_steps": "environment steps per PPO update (all envs together)",
    "ppo_gamma": "discount factor",
    "eval_episodes": "evaluation episodes after training",
    "policy_type": "sb3: SB3 actor-critic via imitation's BC; mlp: toolkit MLPPolicy; auto: sb3 for discrete actions",
    "relative_actions": "mlp: regress actions as offsets from the observation entries they target (PushT's agent "
                        "position, ALOHA's joint positions)",
    "drop_velocity_obs": "mlp: leave out the observation entries the env names as copyable velocities (ALOHA's arm "
                         "joint velocities), against the copycat problem",
    "task_frame": "mlp: see the state and express the actions in the env's task frame (PushT: the pusher and the pose "
                  "error in the block's frame, targets relative to the pusher); "
                  "replaces relative_actions where the env has a frame; GAIL: the generator and the discriminator "
                  "work in that frame too",
    "policy_mixture_components": "mlp, continuous actions: > 1 makes the head a mixture of this many Gaussians that acts "
                                 "with its heaviest component, so it picks one of two expert choices instead of their "
                                 "average (PushT, BC-200 in the block frame, one seed: 72 vs 39 percent success)",
    "policy_hidden_sizes": "mlp/sb3: hidden layer widths, e.g. 512 512 512 (default 256 256 for mlp, 64 64 for sb3)",
    "policy_activation": "mlp: hidden-layer activation",
    "lr_schedule": "mlp: learning rate over each fit (each DAgger round): constant, cosine, or onecycle (warm-up, "
                   "then cosine decay)",
    "dagger_warm_start": "continue each round from the last round's weights (imitation's DAgger) instead of training "
                         "a freshly initialised learner on the aggregate (Ross et al.), which generalises better",
    "dagger_stuck_steps": "> 0: a rollout is stuck once each observation for this many steps repeated one of the 20 "
                          "before it (the learner stands still or cycles, and would label the same states to the end); "
                          "0: off",
    "dagger_on_stuck": "what a stuck rollout does: end (the episode stops there) or expert (the expert acts for the "
                       "rest of it, so its labels show the way out)",
    "dagger_label_budget": "> 0: stop once the aggregate (the initial dataset included) holds this many expert labels, "
                           "cutting the rollout in progress (to compare with BC at equal labels); 0: no limit",
    "action_chunk_size": "> 1: train a flow-matching policy that predicts this many actions per observation (ACT-style "
                         "chunking; continuous actions); DAgger retrains it afresh each round",
    "temporal_aggregation": "chunked policies: re-plan every step and average the overlapping chunks (ACT's temporal "
                            "ensembling) instead of executing each chunk in full",
    "output_dir": "where the checkpoint, config, metrics and evaluation are written",
}


CHOICES = {"dagger_beta_schedule": BETA_SCHEDULES, "dagger_on_stuck": ON_STUCK, "policy_type": POLICY_TYPES,
           "lr_schedule": LR_SCHEDULES, "policy_activation": ACTIVATIONS}


def build_parser(prog: str, description: str, preset: ILConfig, field_names: Sequence[str]) -> argparse.ArgumentParser:
    """A parser with seed 004's flags (``--bc_epochs`` ...) for ``field_names``, defaults from ``preset``."""
    parser = argparse.ArgumentParser(
        prog=prog, description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    source = parser.add_argument_group("data and environment")
    source.add_argument("--env", help="gymnasium env id, e.g. CartPole-v1 (see `il-toolkit envs`)")
    source.add_argument("--dataset", help=(
        "Minari dataset id to train from instead of a live expert; lerobot/* ids (lerobot/pusht, ...) train a VLA on "
        "our local expert data, and comma-separated datasets (VLA BC) one multi-task VLA conditioned on each "
        "dataset's instruction"))
    source.add_argument("--expert", default="default", help="expert name for live demonstrations (see `il-toolkit experts`)")
    source.add_argument("--model_path", help="start from this saved policy directory")
    types = {f.name: f.type for f in fields(ILConfig)}
    hyper = parser.add_argument_group("configuration (ILConfig fields)")
    for name in field_names:
        default = getattr(preset, name)
        kind = {"int": int, "float": float, "str": str, "float | None": float}.get(str(types[name]), str)
        kwargs: dict[str, Any] = {"type": kind, "default": default, "help": _HELP.get(name, name)}
        if name in CHOICES:
            kwargs["choices"] = CHOICES[name]
        if name == "policy_hidden_sizes":
            kwargs.update(type=int, nargs="+")
        if str(types[name]) == "bool":
            kwargs = {"action": argparse.BooleanOptionalAction, "default": default, "help": _HELP.get(name, name)}
        hyper.add_argument(f"--{name}", **kwargs)
    logging = parser.add_argument_group("logging")
    logging.set_defaults(use_wandb=preset.use_wandb)
    on = "on" if preset.use_wandb else "off"  # the two flags share one setting: its default is said once
    logging.add_argument("--use_wandb", dest="use_wandb", action="store_true", default=argparse.SUPPRESS,
                         help=f"log to wandb, offline unless WANDB_MODE is set (default: {on})")
    logging.add_argument("--no_wandb", dest="use_wandb", action="store_false", default=argparse.SUPPRESS,
                         help="do not log to wandb")
    logging.add_argument("--no_progress", action="store_true", help="hide progress bars")
    return parser


def config_from_args(args: argparse.Namespace, preset: ILConfig) -> ILConfig:
    """``preset`` with every ILConfig field given on the command line replaced."""
    names = {f.name for f in fields(ILConfig)}
    overrides = {k: v for k, v in vars(args).items() if k in names}
    return preset.replace(**overrides)


def run_cli(parser: argparse.ArgumentParser, preset: ILConfig, train: Callable[..., dict[str, Any]],
            argv: Sequence[str] | None, extra_flags: Sequence[str] = ()) -> int:
    """Parse ``argv`` with a :func:`build_parser` parser, run ``train`` on ``preset`` with the flags given
    (and the ``extra_flags`` a script adds) and print its results as JSON; the CLIs' ``main``."""
    import json

    args = parser.parse_args(argv)
    results = train(config_from_args(args, preset), env_id=args.env, dataset=args.dataset, expert=args.expert,
                    model_path=args.model_path, use_wandb=args.use_wandb, progress=not args.no_progress,
                    **{name: getattr(args, name) for name in extra_flags})
    print(json.dumps(results, indent=2, default=str))
    return 0


def lazy_vla_class(module: str, name: str, vla_name: str) -> Any:
    """A training module's ``__getattr__``: seed 004 imports ``vla_name`` (``VLADAgger`` ...) from
    ``module``, but it lives in :mod:`il_toolkit.train.il.vla`, which builds on these modules."""
    if name == vla_name:
        from il_toolkit.train.il import vla

        return getattr(vla, vla_name)
    raise AttributeError(f"module {module!r} has no attribute {name!r}")


def write_run_files(output_dir: str | Path, config: ILConfig, extra: dict[str, Any] | None = None) -> Path:
    """``output_dir/config.json`` (the ILConfig) and ``run.json`` (what was run)."""
    import json

    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    config.save(out / "config.json")
    if extra is not None:
        (out / "run.json").write_text(json.dumps(extra, indent=2, default=str))
    return out
