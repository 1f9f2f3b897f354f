"""Collecting demonstrations into Minari, at scale and safely.

- Every finished episode is written to the dataset at once, so a crash or Ctrl-C leaves
  each finished episode readable; the dataset is marked complete
  (``il_toolkit_complete``) only at the end, and rerunning the same command continues
  with the seeds not yet attempted (another first seed is refused).
- ``num_envs`` worker processes roll out episodes in parallel (both cores busy).
- ``only_successful`` keeps successful episodes only (more seeds are tried until
  ``n_episodes`` succeed); ``top_percentile`` keeps the episodes at or above that return
  percentile (the user guide's filter), applied when the collection completes.
- An episode that raises (a MuJoCo physics error, say) is dropped, reported, and
  collection goes on.
- Images are stored losslessly (``jpeg_encoding=False``).
"""

from __future__ import annotations

import multiprocessing
import shutil
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Iterator

import numpy as np
from gymnasium import spaces

from il_toolkit.envs import canonical_env_id, make_env
from il_toolkit.policies.base import Policy

MAX_ATTEMPTS_FACTOR = 4  # give up after trying 4x the requested episodes (+10) seeds


@dataclass(frozen=True)
class CollectionReport:
    dataset_id: str
    env_id: str
    expert: str
    n_episodes: int
    n_steps: int
    mean_return: float
    seconds: float
    path: str
    resumed_from: int = 0
    dropped: dict[int, str] = field(default_factory=dict)  # seed -> why (error, unsuccessful, filtered)
    reused: bool = False  # if_missing found it complete: nothing was collected

    @property
    def steps_per_second(self) -> float:
        return self.n_steps / self.seconds if self.seconds > 0 else float("nan")


@dataclass
class _Result:
    seed: int
    observations: list[Any] | None = None
    actions: list[Any] | None = None
    rewards: list[float] | None = None
    terminated: bool = False
    success: bool = False
    error: str | None = None
    states: list[Any] | None = None  # the env's full state beside each observation (pixel envs)
    instruction: str | None = None  # what the expert was told, where the env's instruction changes per episode


def _rollout(policy: Policy, env: Any, seed: int) -> _Result:
    from il_toolkit.rollout import rollout_episode

    try:
        episode = rollout_episode(policy, env, seed)
    except Exception as exc:  # a simulator blowing up must cost one episode, not the collection
        return _Result(seed=seed, error=f"{type(exc).__name__}: {exc}")
    return _Result(seed, episode.observations, episode.actions, episode.rewards, episode.terminated, episode.success,
                   states=episode.states or None, instruction=episode.instruction)


_WORKER: dict[str, Any] = {}


def _init_worker(env_id: str, env_kwargs: dict[str, Any], expert: str | None, expert_options: dict[str, Any]) -> None:
    import torch

    from il_toolkit.experts import make_expert

    torch.set_num_threads(1)
    env = make_env(env_id, **env_kwargs)
    _WORKER["env"], _WORKER["policy"] = env, make_expert(env_id, env=env, name=expert, **expert_options)


def _worker_rollout(seed: int) -> _Result:
    return _rollout(_WORKER["policy"], _WORKER["env"], seed)


def _results(env_id: str, env_kwargs: dict[str, Any], expert: str | Policy | None, expert_options: dict[str, Any],
             seeds: Iterator[int], num_envs: int) -> Iterator[_Result]:
    from il_toolkit.experts import make_expert

    if num_envs <= 1:
        env = make_env(env_id, **env_kwargs)
        policy = expert if not isinstance(expert, (str, type(None))) else make_expert(env_id, env=env, name=expert, **expert_options)
        for seed in seeds:
            yield _rollout(policy, env, seed)
        env.close()
        return
    if not isinstance(expert, (str, type(None))):
        raise ValueError("num_envs > 1 needs a registered expert name (each worker makes its own expert)")
    context = multiprocessing.get_context("spawn")
    with context.Pool(num_envs, initializer=_init_worker, initargs=(env_id, env_kwargs, expert, expert_options)) as pool:
        yield from pool.imap(_worker_rollout, seeds)


def _expert_name(canonical: str, expert: str | Policy | None) -> str:
    from il_toolkit.experts import DEFAULT_EXPERTS

    if isinstance(expert, str) and expert != "default":
        return expert
    if expert is None or expert == "default":
        return DEFAULT_EXPERTS.get(canonical, "default")
    return type(expert).__name__


def collect_dataset(
    env_id: str,
    dataset_id: str,
    n_episodes: int,
    *,
    expert: str | Policy | None = None,
    seed: int = 0,
    overwrite: bool = False,
    append: bool = False,
    num_envs: int = 1,
    only_successful: bool = False,
    top_percentile: float | None = None,
    env_kwargs: dict[str, Any] | None = None,
    expert_options: dict[str, Any] | None = None,
    progress: bool = True,
    description: str | None = None,
    if_missing: bool = False,
) -> CollectionReport:
    """Roll out ``expert`` (a registered expert name, a Policy, or the env's default expert)
    on seeds ``seed, seed+1, ...`` until ``n_episodes`` episodes are kept; write them to the
    Minari dataset ``dataset_id`` as they finish. See the module docstring for the options.
    Another process collecting the same id at the same time gets a ``DatasetBusyError``.

    ``if_missing``: for processes started side by side that all need the same dataset. Wait
    while another process writes it; then return it as it is when complete (``reused``,
    ``seconds`` 0, ``mean_return`` not recomputed: NaN), finish it when it was cut short, or
    collect it when missing. A dataset under the id that another request wrote (another env,
    env kwargs, expert, first seed, ``only_successful`` or ``top_percentile``, or another
    number of episodes) raises ``DatasetError``. Not with ``overwrite`` or ``append``.
    """
    from il_toolkit.train.datasets import minari_io as io

    io._check_dataset_id(dataset_id)
    if if_missing and (overwrite or append):
        raise ValueError("if_missing collects a dataset once for every process that needs it; overwrite or append "
                         "would rewrite or grow it for each of them: choose one")
    with io.writer_lock(dataset_id, wait=if_missing):
        existing = _existing_report(dataset_id, env_id=env_id, n_episodes=n_episodes, expert=expert, seed=seed,
                                    env_kwargs=env_kwargs, only_successful=only_successful,
                                    top_percentile=top_percentile) if if_missing else None
        if existing is not None:
            return existing
        return _collect(env_id, dataset_id, n_episodes, expert=expert, seed=seed, overwrite=overwrite, append=append,
                        num_envs=num_envs, only_successful=only_successful, top_percentile=top_percentile,
                        env_kwargs=env_kwargs, expert_options=expert_options, progress=progress,
                        description=description)


def _collect(env_id: str, dataset_id: str, n_episodes: int, *, expert: str | Policy | None, seed: int, overwrite: bool,
             append: bool, num_envs: int, only_successful: bool, top_percentile: float | None,
             env_kwargs: dict[str, Any] | None, expert_options: dict[str, Any] | None, progress: bool,
             description: str | None) -> CollectionReport:
    """:func:`collect_dataset` once it holds the dataset's writer lock."""
    from tqdm.auto import tqdm

    from il_toolkit import __version__
    from il_toolkit.train.datasets import minari_io as io

    if n_episodes <= 0:
        raise io.DatasetError(f"n_episodes must be positive, got {n_episodes}")
    if top_percentile is not None and not 0 <= top_percentile < 100:
        raise io.DatasetError(f"top_percentile must be in [0, 100), got {top_percentile}")
    canonical = canonical_env_id(env_id)
    env_kwargs = dict(env_kwargs or {})
    expert_name = _expert_name(canonical, expert)
    data_path = io.dataset_path(dataset_id) / "data"
    recorded: list[int] = []
    attempted: list[int] = []
    if overwrite:
        io.delete_dataset(dataset_id)  # before reading it: a corrupt dataset must still be replaceable
    elif io.recover_metadata(dataset_id):
        print(f"recovered dataset {dataset_id!r}: its last collection was killed while writing its metadata",
              file=sys.stderr)
    if io.dataset_exists(dataset_id):
        dataset = io.open_dataset(dataset_id)
        meta = io.dataset_metadata(dataset)
        if bool(meta.get("il_toolkit_complete", True)) and not append:
            raise io.DatasetExistsError(
                f"dataset {dataset_id!r} already exists at {io.dataset_path(dataset_id)}; pass --append to add "
                "episodes, --overwrite to replace it, or choose another id"
            )
        _check_same_source(dataset_id, meta, canonical, env_kwargs, expert_name)
        # Minari stores each episode's reset seed with the episode itself: that, not the metadata
        # list (written after the episode), is the truth after a kill between the two writes.
        recorded = [int(e["seed"]) for e in dataset.storage.get_episode_metadata(range(dataset.total_episodes))]
        attempted = sorted(set(recorded) | {int(s) for s in meta.get("il_toolkit_attempted_seeds", [])})
        if not append:
            _check_resume_seed(dataset_id, attempted, seed, len(recorded))
    target = len(recorded) + n_episodes if append else n_episodes
    first_seed = max([seed - 1, *attempted]) + 1
    max_attempts = MAX_ATTEMPTS_FACTOR * target + 10  # failed or unsuccessful episodes are replaced by new seeds
    env = make_env(canonical, **env_kwargs)
    if expert is not None and not isinstance(expert, str):
        from il_toolkit.policies import as_policy

        bare_function = not hasattr(expert, "predict")  # declares no spaces: its first action is checked
        expert = as_policy(expert, env.observation_space, env.action_space)  # a function obs -> action too
        check_expert_actions(expert, env, first_seed, probe=bare_function)
    metadata = {
        "dataset_id": dataset_id,
        "algorithm_name": f"il_toolkit expert: {expert_name}",
        "author": {"il_toolkit"},
        "code_permalink": "il_toolkit",
        "description": description or f"episodes of {canonical} by expert {expert_name}",
        "il_toolkit_env_id": canonical,
        "il_toolkit_env_kwargs": env_kwargs,
        "il_toolkit_expert": expert_name,
        "il_toolkit_instruction": _instruction(canonical),
        "il_toolkit_version": __version__,
        "il_toolkit_only_successful": only_successful,
        "il_toolkit_complete": False,
    }
    dropped: dict[int, str] = {}
    returns: list[float] = []
    n_steps, start = 0, time.perf_counter()
    remaining_attempts = max(0, max_attempts - len(attempted))
    seeds = iter(range(first_seed, first_seed + remaining_attempts))
    bar = tqdm(total=target, initial=len(recorded), desc=f"collect {canonical}", unit="ep", disable=not progress)
    resumed_from = len(recorded)
    if len(recorded) >= target:
        seeds = iter(())  # killed after the last episode but before the end: only finishing is left
    try:
        for result in _results(canonical, env_kwargs, expert, dict(expert_options or {}), seeds, num_envs):
            attempted.append(result.seed)
            if result.error is not None or (only_successful and not result.success):
                dropped[result.seed] = result.error or "unsuccessful"
                if result.error is not None:
                    bar.write(f"episode seed {result.seed} dropped: {result.error}")
                io.write_progress(data_path, env, [], {**metadata, "il_toolkit_seeds": recorded,
                                                       "il_toolkit_attempted_seeds": attempted})
            else:
                buffer = io.episode_buffer(result.observations, result.actions, result.rewards, result.terminated, result.seed,
                                           states=result.states, instruction=result.instruction)
                recorded.append(result.seed)
                io.write_progress(data_path, env, [buffer], {**metadata, "il_toolkit_seeds": recorded,
                                                             "il_toolkit_attempted_seeds": attempted})
                returns.append(float(np.sum(result.rewards)))
                n_steps += len(result.actions)
                bar.update(1)
            if len(recorded) >= target:
                break
    finally:
        bar.close()
        env.close()
    seconds = time.perf_counter() - start
    if len(recorded) < target:
        or_drop = ", or drop --only-successful" if only_successful else ""
        if not recorded:  # nothing to keep: leave no empty dataset behind
            io.delete_dataset(dataset_id)
            raise io.DatasetError(
                f"only 0 of {target} episodes could be kept after {len(attempted)} attempts ({len(dropped)} dropped: "
                f"{dict(list(dropped.items())[:3])}); no dataset was written: fix the expert{or_drop}"
            )
        raise io.DatasetError(
            f"only {len(recorded)} of {target} episodes could be kept after {len(attempted)} attempts "
            f"({len(dropped)} dropped: {dict(list(dropped.items())[:5])}); the finished episodes are in {dataset_id!r}: "
            f"rerun to try more seeds{or_drop}"
        )
    if top_percentile is not None:
        kept = _filter_top_percentile(dataset_id, top_percentile)
        dropped.update({s: f"below return percentile {top_percentile}" for s in recorded if s not in kept})
        recorded = kept
    io.finalize(data_path, {"il_toolkit_seeds": recorded, "il_toolkit_complete": True,
                            "il_toolkit_dropped_seeds": {str(k): v for k, v in dropped.items()}})
    return CollectionReport(
        dataset_id=dataset_id, env_id=canonical, expert=expert_name, n_episodes=len(recorded), n_steps=n_steps,
        mean_return=float(np.mean(returns)) if returns else float("nan"), seconds=seconds,
        path=str(io.dataset_path(dataset_id)), resumed_from=resumed_from, dropped=dropped,
    )


def check_expert_actions(expert: Policy, env: Any, seed: int, *, probe: bool) -> None:
    """Refuse, before any episode, an expert whose declared action space is not the env's kind and
    shape, or (``probe``: a plain function, which declares nothing) whose first action is not one
    (asked on the first seed's reset observation; a policy object is not asked, so its state stays untouched)."""
    from il_toolkit.policies.spaces import describe
    from il_toolkit.train.datasets.minari_io import DatasetError

    declared = getattr(expert, "action_space", None)
    if declared is not None and not _same_kind(declared, env.action_space):
        raise DatasetError(f"the expert acts in {describe(declared)}, but the env's action space is "
                           f"{describe(env.action_space)}: give an expert for this env")
    if probe:
        observation, _ = env.reset(seed=seed)
        action = np.asarray(expert.predict(observation, deterministic=True)[0])
        if not _is_action(action, env.action_space):
            raise DatasetError(f"the expert's first action {action.tolist()} (shape {action.shape}) is not an action of "
                               f"the env's action space {describe(env.action_space)}: fix the expert function")


def _is_action(action: np.ndarray, space: Any) -> bool:
    """Box: the space's shape (values are clipped by envs); Discrete: one integer in range."""
    if isinstance(space, spaces.Box):
        return action.shape == space.shape
    if isinstance(space, spaces.Discrete):
        value = action.reshape(-1)[0] if action.size == 1 else None
        return value is not None and float(value).is_integer() and space.contains(int(value))
    return True


def _same_kind(a: Any, b: Any) -> bool:
    """Same space type and shape (Discrete: same n): dtypes and bounds may differ."""
    if type(a) is not type(b):
        return False
    if isinstance(a, spaces.Discrete):
        return a.n == b.n
    return getattr(a, "shape", None) == getattr(b, "shape", None)


def _existing_report(dataset_id: str, *, env_id: str, n_episodes: int, expert: str | Policy | None, seed: int,
                     env_kwargs: dict[str, Any] | None, only_successful: bool,
                     top_percentile: float | None) -> CollectionReport | None:
    """The report of a complete ``dataset_id`` written by the same request (``reused``); None when
    it is missing, or was cut short with no more episodes than asked. Any other dataset under the
    id raises ``DatasetError``."""
    from il_toolkit.train.datasets import minari_io as io

    if not io.dataset_exists(dataset_id):
        return None
    dataset = io.open_dataset(dataset_id)
    meta = io.dataset_metadata(dataset)
    canonical = canonical_env_id(env_id)
    expert_name = _expert_name(canonical, expert)
    _check_same_source(dataset_id, meta, canonical, dict(env_kwargs or {}), expert_name)
    attempted = meta.get("il_toolkit_attempted_seeds") or meta.get("il_toolkit_seeds") or [seed]
    written = {"first seed": int(min(attempted)), "only_successful": bool(meta.get("il_toolkit_only_successful", False)),
               "top_percentile": meta.get("il_toolkit_top_percentile")}
    asked = {"first seed": seed, "only_successful": only_successful, "top_percentile": top_percentile}
    complete = bool(meta.get("il_toolkit_complete", True))
    if not complete:
        written["top_percentile"] = top_percentile  # applied when the collection completes
    held = dataset.total_episodes
    fits = held <= n_episodes if top_percentile is not None or not complete else held == n_episodes  # the filter keeps fewer
    replace = "delete it (il_toolkit.train.datasets.minari_io.delete_dataset, or collect --overwrite) or choose another id"
    if written != asked:
        differs = ", ".join(f"{k} {written[k]!r} (asked: {asked[k]!r})" for k in asked if written[k] != asked[k])
        raise io.DatasetError(f"dataset {dataset_id!r} was collected with {differs}; {replace}")
    if not fits:
        more = f"add {n_episodes - held} with --append --episodes {n_episodes - held}, or " if held < n_episodes else ""
        raise io.DatasetError(f"dataset {dataset_id!r} holds {held} {'complete' if complete else 'collected'} episodes, "
                              f"not the {n_episodes} asked for; {more}{replace}")
    if not complete:
        return None
    return CollectionReport(
        dataset_id=dataset_id, env_id=canonical, expert=expert_name, n_episodes=held,
        n_steps=int(dataset.total_steps), mean_return=float("nan"), seconds=0.0, path=str(io.dataset_path(dataset_id)),
        resumed_from=held, reused=True,
    )


def _instruction(env_id: str) -> str:
    from il_toolkit.envs import env_entry

    entry = env_entry(env_id)
    return entry.instruction if entry is not None else ""


def _check_same_source(dataset_id: str, meta: dict[str, Any], env_id: str, env_kwargs: dict[str, Any], expert: str) -> None:
    from il_toolkit.train.datasets.minari_io import DatasetError

    recorded = (meta.get("il_toolkit_env_id"), dict(meta.get("il_toolkit_env_kwargs") or {}), meta.get("il_toolkit_expert"))
    if recorded != (env_id, env_kwargs, expert):
        raise DatasetError(
            f"dataset {dataset_id!r} was collected from env {recorded[0]} {recorded[1]} by expert {recorded[2]}, not "
            f"env {env_id} {env_kwargs} by expert {expert}; use another dataset id or --overwrite"
        )


def _check_resume_seed(dataset_id: str, attempted: list[int], seed: int, held: int) -> None:
    """A collection cut short resumes on the seeds it was started with: refuse another ``seed``
    (its first attempted seed is the one it started with)."""
    from il_toolkit.train.datasets.minari_io import DatasetError

    if attempted and min(attempted) != seed:
        raise DatasetError(
            f"dataset {dataset_id!r} was started with --seed {min(attempted)} and its collection was cut short after "
            f"{held} episodes; rerun with --seed {min(attempted)} to finish it, or pass --overwrite to collect it again "
            f"from --seed {seed}"
        )


def _filter_top_percentile(dataset_id: str, percentile: float) -> list[int]:
    """Rewrite the dataset with only the episodes at or above the return percentile; returns
    the kept seeds. The filtered copy is built beside the data and swapped in by renames."""
    from minari import MinariDataset

    from il_toolkit.train.datasets import minari_io as io

    data_path = io.dataset_path(dataset_id) / "data"
    dataset = MinariDataset(data_path)
    episodes = list(dataset.iterate_episodes())
    mask = io.top_percentile_mask([float(np.sum(e.rewards)) for e in episodes], percentile)
    keep = [e for e, k in zip(episodes, mask) if k]
    meta = io.dataset_metadata(dataset)
    staging = data_path.with_name("data.filtered")
    shutil.rmtree(staging, ignore_errors=True)
    seeds = [int(m["seed"]) for m in dataset.storage.get_episode_metadata([int(e.id) for e in keep])]
    buffers = [io.episode_buffer(io.unstack_observations(e.observations, len(e.actions) + 1), list(e.actions),
                                 list(e.rewards), bool(e.terminations[-1]), seed, states=(e.infos or {}).get(io.STATE_INFO),
                                 instruction=io.instruction_of(e))
               for e, seed in zip(keep, seeds)]
    kept_seeds = seeds
    carried = {k: v for k, v in meta.items() if k.startswith("il_toolkit") or k in ("algorithm_name", "author",
                                                                                       "code_permalink", "description")}
    env = make_env(meta["il_toolkit_env_id"], **dict(meta.get("il_toolkit_env_kwargs") or {}))
    io.write_progress(staging, env, buffers, {"dataset_id": dataset_id, **carried, "il_toolkit_seeds": kept_seeds,
                                              "il_toolkit_top_percentile": percentile})
    env.close()
    old = data_path.with_name("data.unfiltered")
    data_path.rename(old)
    staging.rename(data_path)
    shutil.rmtree(old)
    return kept_seeds
