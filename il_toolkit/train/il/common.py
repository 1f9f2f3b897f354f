"""What BC, DAgger and GAIL share: seeding, demonstrations, train/validation splits and
the run directory layout (their command-line flags are :mod:`il_toolkit.train.il.cli`'s)."""

from __future__ import annotations

import contextlib
import random
from pathlib import Path
from typing import Any, Iterator, Sequence

import gymnasium as gym
import numpy as np

from il_toolkit.atomic_files import write_text_atomically
from il_toolkit.config.training_config import ROLLOUT_SEED_OFFSET, SEED_STRIDE, ILConfig
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
    from il_toolkit.train.datasets.minari_io import dataset_metadata, open_dataset, writer_lock

    with writer_lock(dataset_id, wait=True):  # a collect rewrites metadata.json in place: never read it half-written
        meta = dataset_metadata(open_dataset(dataset_id))
    recorded = meta.get("il_toolkit_env_id") or None
    if env_id is None and recorded is None:
        raise SystemExit(f"dataset {dataset_id!r} does not record its env id; pass --env")
    kwargs = dict(meta.get("il_toolkit_env_kwargs") or {})
    if env_id is not None and recorded is not None:
        from il_toolkit.envs import canonical_env_id

        if canonical_env_id(env_id) != recorded:
            warn_other_env(dataset_id, recorded, canonical_env_id(env_id), kwargs)
            kwargs = {}  # another env: its own defaults; the dataset's spaces are checked when loading
    return make_env(env_id or recorded, **kwargs)


def warn_other_env(dataset_id: str, recorded: str, env_id: str, recorded_kwargs: dict[str, Any]) -> None:
    """Say on stderr that ``--env`` names another env than the one ``dataset_id`` was recorded on
    (whose spaces may still fit: a policy for one env trained on another's demonstrations)."""
    import sys

    dropped = f" and without its recorded env arguments {recorded_kwargs}" if recorded_kwargs else ""
    print(f"warning: dataset {dataset_id!r} was recorded on {recorded}, but --env names {env_id}: training in "
          f"{env_id}{dropped}; drop --env (or pass --env {recorded}) to train in the env it was recorded on",
          file=sys.stderr)


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


def mark_trained_in(policy: Any, env: Any) -> None:
    """Record in ``policy`` (``trained_env``, saved with it) the env it was trained in, so that evaluating it in
    another is warned about; an env without an id records nothing."""
    spec = getattr(env, "spec", None)
    if policy is not None and spec is not None:
        policy.trained_env = spec.id


def env_id_of(env: gym.Env) -> str:
    if env.spec is None:
        raise ValueError("the env has no spec (id); make it with gymnasium.make or il_toolkit.envs.make_env")
    return env.spec.id


def demonstration_seeds(config: ILConfig, n_episodes: int) -> list[int]:
    """Reset seeds for expert demonstrations: disjoint per training seed, and far from the
    evaluation seeds (1,000,000 and up)."""
    base = config.seed * SEED_STRIDE
    return list(range(base, base + n_episodes))


def rollout_seeds(config: ILConfig, iteration: int, n_episodes: int) -> list[int]:
    """Reset seeds for DAgger's round ``iteration`` (from 0): new starts every round, none shared
    with the demonstrations of :func:`demonstration_seeds`, so a round never replays a demonstrated
    start."""
    base = config.seed * SEED_STRIDE + ROLLOUT_SEED_OFFSET + iteration * n_episodes
    return list(range(base, base + n_episodes))


def split_episodes(trajectories: Sequence[Any], validation_split: float, rng: np.random.Generator) -> tuple[list, list]:
    """Split whole episodes (not steps, so no episode leaks into both) into train / validation.
    Stretches cut from one rollout (DAgger's aggregate records its reset seed) go to the same side,
    as one episode would; ``validation_split`` is then the share of rollouts."""
    from il_toolkit.train.datasets.minari_io import rollout_seed

    groups: dict[Any, list[int]] = {}
    for i, trajectory in enumerate(trajectories):
        seed = rollout_seed(trajectory)
        groups.setdefault(("episode", i) if seed is None else ("rollout", seed), []).append(i)
    members = list(groups.values())
    n = len(members)
    n_val = int(round(n * validation_split)) if validation_split > 0 and n >= 2 else 0
    if validation_split > 0 and n >= 2:
        n_val = max(1, min(n - 1, n_val))
    order = rng.permutation(n)
    val = sorted(i for g in order[:n_val] for i in members[g])
    train = sorted(i for g in order[n_val:] for i in members[g])
    return [trajectories[i] for i in train], [trajectories[i] for i in val]


def filter_demonstrations(trajectories: Sequence[Any], config: ILConfig) -> list[Any]:
    """The user guide's data-quality filter: keep episodes in the top return percentile."""
    from il_toolkit.train.datasets.minari_io import filter_top_percentile

    kept = list(trajectories)
    if config.demo_top_percentile is not None:
        kept = filter_top_percentile(kept, config.demo_top_percentile)
    return kept


class RunExistsError(ValueError):
    """``output_dir`` holds an earlier run that this one would replace or mix with."""


def own_config(config: ILConfig | None, preset: Any, method: str) -> ILConfig:
    """``config`` for a run of ``method`` ("bc", "dagger", "gail", "vla_bc" ...): ``preset()`` when
    None; a config left at the generic default output directory (``./output/il``) writes to
    ``./output/<method>`` instead, so two methods run with default settings never share one (the
    user's config object is not changed)."""
    if config is None:
        return preset()
    if config.output_dir == ILConfig.__dataclass_fields__["output_dir"].default:
        return config.replace(output_dir=f"./output/{method}")
    return config


def save_interrupted(policy: Any, output_dir: str | Path) -> Path:
    """Ctrl-C during training: keep the weights reached so far as ``output_dir/interrupted/`` (a
    policy like any other: evaluate it, or continue from it with ``--model_path``) and say where."""
    import sys

    path = policy.save(Path(output_dir) / "interrupted")
    print(f"interrupted: the weights so far are saved in {path} (continue with --model_path {path})", file=sys.stderr)
    return path


RESUMABLE = ("dagger",)  # algorithms whose runs continue where they stopped when rerun in their output_dir
RUN_ARTIFACTS = ("best", "last", "interrupted", "rounds", "dataset", "checkpoint", "metrics.jsonl", "eval.json", "run.json",
                 "config.json", "state.json", "risk_data.npz")


def claim_output_dir(output_dir: str | Path, algorithm: str, overwrite: bool) -> None:
    """Make ``output_dir`` this run's: an earlier run there (its ``run.json``) is refused with
    :class:`RunExistsError`, unless it is a resumable run of the same algorithm (DAgger resumes) or
    ``overwrite`` is set, in which case the earlier run's files are removed first (so no
    ``best/`` or metrics of two runs are mixed)."""
    import json
    import shutil

    out = Path(output_dir)
    if out.exists() and not out.is_dir():
        raise RunExistsError(f"--output_dir {str(out)!r} is a file; give a directory")
    run_file = out / "run.json"
    if not run_file.exists():
        return
    try:
        previous = json.loads(run_file.read_text()).get("algorithm", "unknown")
    except ValueError:
        previous = "unknown"
    if previous == algorithm and algorithm in RESUMABLE and not overwrite:
        return
    if not overwrite:
        raise RunExistsError(_earlier_run_message(out, previous))
    for name in RUN_ARTIFACTS:
        target = out / name
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()


def run_finished(output_dir: str | Path) -> bool:
    """Whether the run in ``output_dir`` got as far as saving its policy: ``best/``, which BC, DAgger
    and GAIL save once training is over (its ``config.json`` is written last, so a kill mid-save
    leaves the run unfinished)."""
    from il_toolkit.policies.checkpoint import CONFIG_FILE

    return (Path(output_dir) / "best" / CONFIG_FILE).is_file()


def _earlier_run_message(out: Path, previous: str) -> str:
    """Why ``out`` (holding a ``previous`` run) is refused and what to do: a finished run is
    replaced only with --overwrite; an unfinished one is resumed (DAgger) or started again."""
    replace = "pass --overwrite (overwrite=True) to replace it, or give a new --output_dir"
    if run_finished(out):
        return f"{out} already holds a {previous} run (best/, metrics.jsonl, run.json); {replace}"
    if previous in RESUMABLE or (previous == "flow" and (out / "checkpoint").is_dir()):  # train flow resumes too
        return (f"{out} holds a {previous} run that has not finished (no best/ yet): rerun the train {previous} "
                f"command that started it to resume it, or {replace}")
    kept = (f" (the weights it reached are in {out / 'interrupted'}; --overwrite removes them)"
            if (out / "interrupted").is_dir() else "")
    return (f"{out} holds a {previous} run that was interrupted before it finished (no best/) and cannot be resumed"
            f"{kept}; pass --overwrite (overwrite=True) to start again, or give a new --output_dir")


def write_run_files(output_dir: str | Path, config: ILConfig, extra: dict[str, Any] | None = None) -> Path:
    """``output_dir/config.json`` (the ILConfig) and ``run.json`` (what was run)."""
    import json

    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    config.save(out / "config.json")
    if extra is not None:
        (out / "run.json").write_text(json.dumps(extra, indent=2, default=str))
    return out


def update_run_file(output_dir: str | Path, entries: dict[str, Any]) -> None:
    """Add ``entries`` to ``output_dir/run.json`` (written atomically)."""
    import json

    path = Path(output_dir) / "run.json"
    run = json.loads(path.read_text()) if path.exists() else {}
    write_text_atomically(path, json.dumps({**run, **entries}, indent=2, default=str))
