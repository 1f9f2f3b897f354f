"""Demonstrations in Minari: read and write them, load them as imitation data
(collection itself lives in :mod:`il_toolkit.train.datasets.collect`).

This is the one module that converts Minari episodes into the toolkit's data types:
imitation ``TrajectoryWithRew`` / ``Transitions`` and plain, torch-ready numpy arrays.

Toolkit metadata is stored beside Minari's own keys: ``il_toolkit_env_id``,
``il_toolkit_expert``, ``il_toolkit_seeds`` (one reset seed per episode) and
``il_toolkit_version``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
from pathlib import Path
from typing import Any, Iterator, Sequence

import gymnasium as gym
import numpy as np

from il_toolkit.atomic_files import replace_atomically
from il_toolkit.features.observations import flatten_observations  # noqa: F401  (part of this module's API)
from il_toolkit.policies.spaces import describe, spaces_match


STATE_INFO = "state"  # the Minari info holding the env's full state beside pixel observations, (T+1, D)
# the episode's instruction where the env draws one per episode: its UTF-8 bytes zero-padded, (T+1, L) uint8
# (bytes, not strings: every Minari storage keeps numeric arrays)
INSTRUCTION_INFO = "instruction"
# where a training window may start, (T+1,) uint8 (the last observation's entry is 0): stretches an expert
# acted out from a learner's state mark their first steps only (il_toolkit.train.il.expert_chunks)
CHUNK_START_INFO = "chunk_start"
# (T+1,) uint8, 1 throughout an episode whose actions are a stretch cut out of a longer one (an expert's
# stretch that handed control back, or one a label budget ended): a chunk reaching past its last action (or,
# with an observation history, before its first) has no label there, and those positions are left out of the
# loss (LeRobot's action_is_pad) instead of being padded with the edge action, as a demonstration's ends are
ACTIONS_CUT_INFO = "actions_cut"
# (T+1,) int64: the reset seed of the rollout an episode's stretch was cut from (DAgger's aggregate), so that the
# stretches and branches of one rollout land on the same side of a train/validation split
ROLLOUT_SEED_INFO = "rollout_seed"


def _step_infos(trajectory: Any) -> Any:
    infos = getattr(trajectory, "infos", None)
    return infos if infos is not None and len(infos) and isinstance(infos[0], dict) else None


def chunk_start_mask(trajectory: Any) -> np.ndarray:
    """``(T,)`` bool: the steps of ``trajectory`` at which a training window may start (every step
    unless its infos carry :data:`CHUNK_START_INFO`)."""
    steps = len(trajectory.acts)
    infos = _step_infos(trajectory)
    if infos is None or CHUNK_START_INFO not in infos[0]:
        return np.ones(steps, dtype=bool)
    return np.array([bool(info.get(CHUNK_START_INFO, False)) for info in infos[:steps]])


def actions_cut(trajectory: Any) -> bool:
    """Whether ``trajectory``'s actions stop at a cut (:data:`ACTIONS_CUT_INFO`), not at the episode's end."""
    infos = _step_infos(trajectory)
    return infos is not None and bool(infos[0].get(ACTIONS_CUT_INFO, False))


def rollout_seed(trajectory: Any) -> int | None:
    """The reset seed of the rollout ``trajectory`` was cut from (:data:`ROLLOUT_SEED_INFO`), or None."""
    infos = _step_infos(trajectory)
    seed = None if infos is None else infos[0].get(ROLLOUT_SEED_INFO)
    return None if seed is None else int(seed)


def window_infos(steps: int, starts: Sequence[bool] | None = None, cut: bool = False,
                 seed: int | None = None) -> np.ndarray | None:
    """imitation ``infos`` (one dict per step) carrying :data:`CHUNK_START_INFO` from ``starts`` (T flags),
    :data:`ACTIONS_CUT_INFO` where ``cut`` and :data:`ROLLOUT_SEED_INFO` where ``seed`` is given; None when
    there is nothing to carry."""
    if starts is None and not cut and seed is None:
        return None
    flags = [True] * steps if starts is None else [bool(s) for s in starts]
    extra = {**({ACTIONS_CUT_INFO: True} if cut else {}), **({ROLLOUT_SEED_INFO: int(seed)} if seed is not None else {})}
    return np.array([{CHUNK_START_INFO: s, **extra} for s in flags])


def from_rollout(trajectory: Any, seed: int) -> Any:
    """``trajectory`` marked as cut from the rollout reset with ``seed`` (:data:`ROLLOUT_SEED_INFO`)."""
    import dataclasses

    infos = window_infos(len(trajectory.acts), chunk_start_mask(trajectory), actions_cut(trajectory), seed)
    return dataclasses.replace(trajectory, infos=infos)


class DatasetError(ValueError):
    """A dataset that is missing, corrupt, or does not fit what it is used with."""


class DatasetExistsError(DatasetError):
    """A dataset id that is already taken."""


def datasets_root() -> Path:
    """Where Minari keeps local datasets (``MINARI_DATASETS_PATH`` or ``~/.minari/datasets``)."""
    return Path(os.environ.get("MINARI_DATASETS_PATH", Path.home() / ".minari" / "datasets"))


def dataset_path(dataset_id: str) -> Path:
    from minari.storage.local import get_dataset_path

    return Path(get_dataset_path(dataset_id))


def dataset_exists(dataset_id: str) -> bool:
    return (dataset_path(dataset_id) / "data").exists()


def delete_dataset(dataset_id: str) -> None:
    path = dataset_path(dataset_id)
    if path.exists():
        shutil.rmtree(path)


class DatasetBusyError(DatasetError):
    """A dataset id that another process is writing."""


@contextlib.contextmanager
def writer_lock(dataset_id: str, wait: bool = False) -> Iterator[None]:
    """Hold the right to write ``dataset_id`` (:func:`il_toolkit.locks.exclusive` on a file under
    ``datasets_root()/.locks``, a folder Minari skips). When another process is writing it:
    :class:`DatasetBusyError` at once, or with ``wait`` say so on stderr and wait until it has finished."""
    from il_toolkit.locks import exclusive

    def busy(pid: str) -> DatasetBusyError:
        return DatasetBusyError(f"dataset {dataset_id!r} is in use by another process (pid {pid}), a collection or "
                                "teleop session writing it or a trainer reading it; wait for it to finish, then use "
                                "the dataset (or --append to it), or choose another id")

    def waiting(pid: str) -> None:
        print(f"waiting for another process (pid {pid}) using dataset {dataset_id!r} to finish", file=sys.stderr)

    with exclusive(datasets_root() / ".locks" / (dataset_id.replace("/", "__") + ".lock"),
                   None if wait else busy, waiting):
        yield


def _check_dataset_id(dataset_id: str) -> None:
    from minari.dataset.minari_dataset import parse_dataset_id

    try:
        parse_dataset_id(dataset_id)
    except Exception as exc:  # minari raises bare ValueError/AssertionError with terse text
        raise DatasetError(
            f"invalid dataset id {dataset_id!r} ({exc}); use NAMESPACE/NAME-vN, e.g. cartpole/lqr-v0"
        ) from exc


def open_dataset(dataset_id: str):
    """``minari.load_dataset`` with errors that say what to do."""
    import minari

    _check_dataset_id(dataset_id)
    if not dataset_exists(dataset_id):
        if dataset_path(dataset_id).is_dir():
            raise DatasetError(
                f"dataset {dataset_id!r} at {dataset_path(dataset_id)} holds no episode data: a collect was stopped "
                f"before it wrote any episode; collect it again (`il-toolkit collect --env ENV --dataset-id {dataset_id} "
                "--episodes N --overwrite`)"
            )
        local = sorted(minari.list_local_datasets()) if datasets_root().exists() else []
        raise DatasetError(
            f"no local dataset {dataset_id!r} under {datasets_root()}; collect it with "
            f"`il-toolkit collect --env ENV --dataset-id {dataset_id} --episodes N`. Local datasets: "
            f"{', '.join(local) or '(none)'}"
        )
    try:
        dataset = minari.load_dataset(dataset_id)
    except Exception as exc:
        if (dataset_path(dataset_id) / "data" / METADATA_BACKUP).exists():
            fix = ("its collection was killed while writing it: rerun the same collect command, which recovers the "
                   "episodes written before (or collect it again with --overwrite)")
        else:
            fix = "collect it again with --overwrite"
        raise DatasetError(f"dataset {dataset_id!r} at {dataset_path(dataset_id)} is corrupt or incomplete "
                           f"({type(exc).__name__}: {exc}); {fix}") from exc
    check_episode_data(dataset_id, dataset_metadata(dataset))
    return dataset


def corrupt_data_error(name: str, exc: BaseException) -> DatasetError:
    """The error for a dataset whose episode data cannot be read (``exc``: what reading it raised)."""
    return DatasetError(f"dataset {name!r} is corrupt or incomplete ({type(exc).__name__}: {exc}); collect it again "
                        "with --overwrite")


def episode_data_problem(dataset_id: str, metadata: dict[str, Any]) -> BaseException | None:
    """What makes the episode data of ``dataset_id`` unreadable, or None. Cheap at any size: it opens
    the HDF5 file (a truncated or overwritten file fails there), checks that it holds every episode
    ``metadata`` counts and that the last one holds its steps; it reads no observations. A file
    another process is writing (locked) and formats other than HDF5 are not checked (None)."""
    import h5py

    if metadata.get("data_format", "hdf5") != "hdf5":
        return None
    path = dataset_path(dataset_id) / "data" / "main_data.hdf5"
    total = int(metadata.get("total_episodes", 0) or 0)
    if total == 0:  # no episode yet (a collection starting or with none kept): nothing to read
        return None
    try:
        with h5py.File(path, "r") as file:
            missing = [i for i in range(total) if f"episode_{i}" not in file]
            if missing:
                return ValueError(f"{path.name} lacks {len(missing)} of the {total} episodes its metadata counts, "
                                  f"first episode_{missing[0]}")
            last = file[f"episode_{total - 1}"]
            steps = int(last.attrs.get("total_steps", -1))
            if steps >= 0 and last["rewards"].shape[0] != steps:
                return ValueError(f"episode_{total - 1} holds {last['rewards'].shape[0]} of the {steps} steps it "
                                  "records")
    except BlockingIOError:  # locked by a writer: neither known good nor bad
        return None
    except Exception as exc:  # h5py raises OSError, KeyError, ValueError on damaged files
        return exc
    return None


def check_episode_data(dataset_id: str, metadata: dict[str, Any]) -> None:
    """Refuse a dataset whose episode data cannot be read (:func:`episode_data_problem`) with a
    :class:`DatasetError` that says to collect it again."""
    problem = episode_data_problem(dataset_id, metadata)
    if problem is not None:
        raise corrupt_data_error(dataset_id, problem)


def dataset_metadata(dataset) -> dict[str, Any]:
    return dict(dataset.storage.metadata)


def check_dataset_env(dataset, env: gym.Env | gym.spaces.Space, dataset_id: str | None = None) -> None:
    """Refuse a dataset whose spaces do not fit ``env``; the message names both."""
    name = dataset_id or dataset_metadata(dataset).get("dataset_id", "dataset")
    env_obs = env.observation_space if isinstance(env, gym.Env) else env
    env_act = env.action_space if isinstance(env, gym.Env) else None
    env_id = env.spec.id if isinstance(env, gym.Env) and env.spec is not None else "the env"
    recorded_env = dataset_metadata(dataset).get("il_toolkit_env_id", "another env")
    for what, ours, theirs in (("observation", dataset.observation_space, env_obs), ("action", dataset.action_space, env_act)):
        if theirs is not None and not spaces_match(ours, theirs):
            raise DatasetError(
                f"dataset {name!r} {what} space {describe(ours)} does not match env {env_id} {what} space "
                f"{describe(theirs)}: the dataset was collected on {recorded_env}; collect the dataset from "
                f"the same env id"
            )


def check_spaces_fit(observation_space: gym.spaces.Space, action_space: gym.spaces.Space, env: gym.Env, what: str) -> None:
    """Refuse data whose spaces do not fit ``env``'s; the message names both."""
    env_id = env.spec.id if env.spec is not None else "the env"
    for name, ours, theirs in (("observation", observation_space, env.observation_space), ("action", action_space, env.action_space)):
        if not spaces_match(ours, theirs):
            raise DatasetError(
                f"{what} {name} space {describe(ours)} does not match env {env_id} {name} space {describe(theirs)}; "
                "pick the env (and obs_type) the data was recorded with"
            )


def _episode_observations(observations: Any) -> Any:
    from imitation.data.types import DictObs

    if isinstance(observations, dict):
        return DictObs(flatten_observations(observations))
    return np.asarray(observations)


def _check_finite(name: str, episode_id: int, values: Any) -> None:
    arrays = values.values() if isinstance(values, dict) else [values]
    for array in arrays:
        array = np.asarray(array)
        if np.issubdtype(array.dtype, np.floating) and not np.all(np.isfinite(array)):
            bad_rows = np.unique(np.argwhere(~np.isfinite(array))[:, 0])[:10].tolist()
            raise DatasetError(
                f"episode {episode_id} has non-finite {name} at steps {bad_rows}; drop or recollect that episode"
            )


def _to_trajectory(episode: Any):
    from imitation.data.types import TrajectoryWithRew

    _check_finite("actions", episode.id, episode.actions)
    _check_finite("observations", episode.id, flatten_observations(episode.observations))
    steps = len(episode.actions)
    stored = episode.infos or {}
    starts, cut, seed = (stored.get(key) for key in (CHUNK_START_INFO, ACTIONS_CUT_INFO, ROLLOUT_SEED_INFO))
    return TrajectoryWithRew(
        obs=_episode_observations(episode.observations),
        acts=np.asarray(episode.actions),
        infos=window_infos(steps, None if starts is None else starts[:steps], cut is not None and bool(cut[0]),
                           None if seed is None else int(seed[0])),
        terminal=bool(episode.terminations[-1]),
        rews=np.asarray(episode.rewards, dtype=np.float32),
    )


def load_demonstrations(
    dataset_id: str,
    env: gym.Env | None = None,
    *,
    episode_indices: Sequence[int] | None = None,
    allow_incomplete: bool = False,
):
    """Load a Minari dataset as a list of imitation ``TrajectoryWithRew``.

    With ``env``, the dataset's spaces must fit the env's and its values must be values of them
    (else :class:`DatasetError`). Non-finite observations or actions are refused, naming the
    episode and steps. A dataset being written (a collection, a teleop session) is waited for,
    and the writer waits while it is read (reading an HDF5 file locks it against writes); a
    dataset marked incomplete (its collection was cut short) is refused unless
    ``allow_incomplete``: rerunning the collection finishes it.
    """
    with writer_lock(dataset_id, wait=True):
        dataset = open_dataset(dataset_id)
        if not allow_incomplete and not bool(dataset_metadata(dataset).get("il_toolkit_complete", True)):
            raise DatasetError(
                f"dataset {dataset_id!r} is incomplete: its collection was cut short ({dataset.total_episodes} episodes "
                "so far); rerun the same collect command to finish it (in Python, load_demonstrations(..., "
                "allow_incomplete=True) trains on what is there)")
        return trajectories_from(dataset, dataset_id, env, episode_indices=episode_indices)


def load_states(dataset_id: str, episode_indices: Sequence[int] | None = None, *,
                allow_incomplete: bool = False, env_id: str | None = None) -> list[np.ndarray]:
    """The env's full state beside each observation of each episode, ``(T+1, D)`` float64 (the
    info :data:`STATE_INFO`, recorded by ``collect`` in envs with a ``state_vector()`` whose
    observation is something else, such as PushT and ALOHA pixels). Training-only supervision:
    a policy never reads it when acting. Same waiting and refusals as :func:`load_demonstrations`; ``env_id``: the
    env the states are wanted for, named (beside the one the dataset was recorded on) where they are missing."""
    with writer_lock(dataset_id, wait=True):
        dataset = open_dataset(dataset_id)
        if not allow_incomplete and not bool(dataset_metadata(dataset).get("il_toolkit_complete", True)):
            raise DatasetError(f"dataset {dataset_id!r} is incomplete: rerun the same collect command to finish it")
        recorded_env = dataset_metadata(dataset).get("il_toolkit_env_id")
        return [episode_states(dataset_id, episode, recorded_env, env_id)
                for episode in dataset.iterate_episodes(episode_indices)]


def episode_states(dataset_id: str, episode: Any, recorded_env: str | None = None, used_in: str | None = None
                   ) -> np.ndarray:
    """One Minari episode's recorded full states ``(T+1, D)`` float64 (see :func:`load_states`);
    ``recorded_env`` / ``used_in``: the env the dataset was recorded on / is used in, named when it lacks them."""
    infos = episode.infos or {}
    if STATE_INFO not in infos:
        raise DatasetError(_no_states_message(dataset_id, episode.id, recorded_env, used_in))
    values = np.asarray(infos[STATE_INFO], dtype=np.float64)
    if len(values) != len(episode.actions) + 1:
        raise DatasetError(f"dataset {dataset_id!r} episode {episode.id} has {len(values)} states for "
                           f"{len(episode.actions) + 1} observations; collect it again with --overwrite")
    _check_finite(STATE_INFO, episode.id, values)
    return values


def _no_states_message(dataset_id: str, episode_id: int, recorded_env: str | None, used_in: str | None) -> str:
    """Why ``dataset_id`` has no :data:`STATE_INFO` and what to do: train in the env it was recorded on
    when it is used in another (``used_in``), else collect it again."""
    from il_toolkit.envs import canonical_env_id

    if recorded_env and used_in and canonical_env_id(used_in) != recorded_env:
        return (f"dataset {dataset_id!r} was recorded on {recorded_env}, not {used_in}, and has no {STATE_INFO!r} "
                f"info beside its observations (episode {episode_id}), which training in {used_in} needs: train "
                f"in the env it was recorded on (--env {recorded_env}, or no --env), or collect a dataset in "
                f"{used_in} under another id")
    return (f"dataset {dataset_id!r} has no {STATE_INFO!r} info beside its observations (episode {episode_id}): "
            "a state dataset's observations are the state itself; otherwise it was recorded from an env without "
            "state_vector(), by another tool, or before states were recorded: collect it again with --overwrite")


def load_instructions(dataset_id: str, episode_indices: Sequence[int] | None = None) -> list[str]:
    """The instruction of each episode (:data:`INSTRUCTION_INFO`, recorded by ``collect`` in envs that
    draw one per episode, such as the two-target PushT). Waits for a writer like :func:`load_demonstrations`."""
    with writer_lock(dataset_id, wait=True):
        dataset = open_dataset(dataset_id)
        if not bool(dataset_metadata(dataset).get("il_toolkit_complete", True)):
            raise DatasetError(f"dataset {dataset_id!r} is incomplete: rerun the same collect command to finish it")
        instructions = []
        for episode in dataset.iterate_episodes(episode_indices):
            text = instruction_of(episode)
            if text is None:
                raise DatasetError(
                    f"dataset {dataset_id!r} records no instruction per episode (episode {episode.id}): it was collected "
                    "in an env whose instruction does not change between episodes, or by another tool; for an "
                    "instruction-following policy collect one in such an env (il-toolkit collect --env "
                    "PushTTwoTarget-v0 ...)")
            instructions.append(text)
    return instructions


def records_states(dataset_id: str) -> bool:
    """Whether the dataset's first episode holds the env's full state beside its observations."""
    with writer_lock(dataset_id, wait=True):
        episode = next(iter(open_dataset(dataset_id).iterate_episodes([0])), None)
    return episode is not None and STATE_INFO in (episode.infos or {})


def trajectories_from(dataset, name: str, env: gym.Env | None = None, *, episode_indices: Sequence[int] | None = None):
    """The episodes of an open ``MinariDataset`` as imitation ``TrajectoryWithRew``."""
    if env is not None:
        check_dataset_env(dataset, env, name)
    try:
        trajectories = [_to_trajectory(episode) for episode in dataset.iterate_episodes(episode_indices)]
    except DatasetError:
        raise
    except Exception as exc:  # h5py/arrow raise OSError, KeyError, ValueError on damaged files
        raise corrupt_data_error(name, exc) from exc
    if not trajectories:
        raise DatasetError(f"dataset {name!r} has no episodes; collect some first")
    if env is not None:
        check_values(trajectories, env, name)
    return trajectories


BOUNDS_SLACK = 0.1  # values may overshoot a Box's finite bounds by this share of its range (physics overshoot)


def check_values(trajectories: Sequence[Any], env: gym.Env, name: str) -> None:
    """Refuse a dataset whose values cannot come from ``env``: observations or actions that are not
    finite or lie far outside the env's bounds (more than :data:`BOUNDS_SLACK` of the range past
    them), or actions that are not actions of a Discrete space."""
    for index, trajectory in enumerate(trajectories):
        observations = dict(trajectory.obs.items()) if hasattr(trajectory.obs, "items") else {None: trajectory.obs}
        for key, values in observations.items():
            space = _subspace(env.observation_space, key)
            problem = _out_of_space(np.asarray(values), space) if space is not None else None
            if problem:
                where = "observations" if key is None else f"observations[{key!r}]"
                raise DatasetError(f"dataset {name!r}, episode {index}: {where} {problem}, so they cannot come from "
                                   f"{env.spec.id if env.spec else 'this env'}; collect it again, or train on its own env")
        problem = _out_of_space(np.asarray(trajectory.acts), env.action_space)
        if problem:
            raise DatasetError(f"dataset {name!r}, episode {index}: actions {problem}, so they cannot come from "
                               f"{env.spec.id if env.spec else 'this env'}: collect it again, or train on the env it "
                               "was collected in")


def _subspace(space: gym.Space, key: str | None) -> gym.Space | None:
    """The part of ``space`` a dataset key names (None: the whole space; a key it lacks: None)."""
    from il_toolkit.policies.spaces import subspace

    try:
        return space if key is None else subspace(space, key)
    except KeyError:
        return None


def _out_of_space(values: np.ndarray, space: gym.Space) -> str | None:
    """What is wrong with a (T, ...) array of values of ``space``; None if nothing."""
    if isinstance(space, gym.spaces.Discrete):
        flat = values.reshape(-1)
        bad = ~np.isfinite(flat.astype(np.float64)) | (flat != np.round(flat)) | (flat < space.start) | \
            (flat >= space.start + space.n)
        return f"hold {flat[bad][0].item()}, which is not an action of {space}" if bad.any() else None
    if not isinstance(space, gym.spaces.Box) or not np.issubdtype(values.dtype, np.number) or values.size == 0:
        return None
    low = np.broadcast_to(space.low, space.shape).astype(np.float64)
    high = np.broadcast_to(space.high, space.shape).astype(np.float64)
    if np.issubdtype(values.dtype, np.integer):  # images: their range is enough (and cheap)
        lowest, highest = values.min(), values.max()
        ok = lowest >= low.min() - BOUNDS_SLACK * (high.max() - low.min()) and \
            highest <= high.max() + BOUNDS_SLACK * (high.max() - low.min())
        return None if ok else f"hold values in [{lowest}, {highest}], outside the bounds [{low.min()}, {high.max()}]"
    values = values.astype(np.float64)
    if not np.all(np.isfinite(values)):
        return "hold NaN or infinite entries"
    slack = np.where(np.isfinite(high - low), BOUNDS_SLACK * (high - low), np.inf)
    outside = (values < low - slack) | (values > high + slack)
    if outside.any():
        step, *entry = (int(i) for i in np.argwhere(outside)[0])
        at = tuple(entry)
        name = "" if not entry else f", entry {entry[0]}" if len(entry) == 1 else f", entry {entry}"
        return (f"hold {values[(step, *at)]:.6g} at step {step}{name}, outside "
                f"{'that entry' if entry else 'the space'}'s bounds [{low[at]:.6g}, {high[at]:.6g}]")
    return None


def unstack_observations(observations: Any, n: int) -> list[Any]:
    """``n`` per-step observations from stacked ones (arrays, dicts, or imitation ``DictObs``)."""
    if hasattr(observations, "items"):
        items = dict(observations.items())
        return [{k: v[i] for k, v in items.items()} for i in range(n)]
    return list(observations)[:n]


def _stack(values: Sequence[Any]) -> Any:
    """Per-step values (arrays, or nested dicts of arrays) stacked along a new time axis."""
    if isinstance(values[0], dict):
        return {k: _stack([v[k] for v in values]) for k in values[0]}
    return np.stack([np.asarray(v) for v in values])


def encode_instruction(text: str, n_steps: int) -> np.ndarray:
    """``text`` as the info :data:`INSTRUCTION_INFO`: its UTF-8 bytes in each of ``n_steps`` rows, (n_steps, L) uint8."""
    codes = np.frombuffer(text.encode("utf-8") or b"\0", dtype=np.uint8)
    return np.repeat(codes[None], n_steps, axis=0)


def instruction_of(episode: Any) -> str | None:
    """The instruction a stored episode was recorded with (:data:`INSTRUCTION_INFO`), or None."""
    codes = (episode.infos or {}).get(INSTRUCTION_INFO)
    if codes is None:
        return None
    return bytes(np.asarray(codes, dtype=np.uint8)[0]).rstrip(b"\0").decode("utf-8", errors="replace")


def episode_buffer(observations: Sequence[Any], actions: Sequence[Any], rewards: Sequence[float],
                   terminated: bool, seed: int | None, states: Sequence[Any] | None = None,
                   instruction: str | None = None, chunk_starts: Sequence[bool] | None = None,
                   cut: bool | None = None, rollout: int | None = None):
    """A Minari ``EpisodeBuffer`` from T+1 observations, T actions and T rewards (stacked at
    once: building it step by step through ``add_step_data`` cost more than writing it);
    ``states``: the env's full state beside each observation, stored as the info :data:`STATE_INFO`;
    ``instruction``: the episode's instruction, stored as :data:`INSTRUCTION_INFO`; ``chunk_starts``:
    T flags, where a training window may start, stored as :data:`CHUNK_START_INFO`; ``cut``: whether the
    actions stop short of where the episode went on, stored as :data:`ACTIONS_CUT_INFO` (None: not stored);
    ``rollout``: the reset seed of the rollout it was cut from, stored as :data:`ROLLOUT_SEED_INFO`."""
    from minari.data_collector import EpisodeBuffer

    if not len(actions):
        raise DatasetError("an episode needs at least one step")
    last = [False] * (len(actions) - 1)
    infos = {STATE_INFO: np.stack([np.asarray(x, np.float64) for x in states])} if states else {}
    if instruction is not None:
        infos[INSTRUCTION_INFO] = encode_instruction(instruction, len(actions) + 1)
    if chunk_starts is not None:
        infos[CHUNK_START_INFO] = np.append(np.asarray(chunk_starts, dtype=np.uint8), np.uint8(0))
    if cut is not None:
        infos[ACTIONS_CUT_INFO] = np.full(len(actions) + 1, int(cut), dtype=np.uint8)
    if rollout is not None:
        infos[ROLLOUT_SEED_INFO] = np.full(len(actions) + 1, rollout, dtype=np.int64)
    return EpisodeBuffer(
        seed=seed,
        observations=_stack(list(observations)),
        actions=_stack(list(actions)),
        rewards=[float(r) for r in rewards],
        terminations=last + [bool(terminated)],
        truncations=last + [not terminated],
        infos=infos,
    )


def write_progress(data_path: str | os.PathLike, env: gym.Env, buffers: Sequence[Any], metadata: dict[str, Any]):
    """Append episode buffers to the Minari storage at ``data_path`` (created on first use,
    images stored losslessly) and update its metadata; returns the ``MinariDataset``."""
    from minari import MinariDataset
    from minari import __version__ as minari_version
    from minari.dataset.minari_storage import MinariStorage

    path = Path(data_path).resolve()  # minari joins relative storage paths onto themselves
    if (path / "metadata.json").exists():
        storage = MinariStorage.read(path)
        metadata = {k: v for k, v in metadata.items() if k != "dataset_id"}  # fixed at creation
    else:
        path.mkdir(parents=True, exist_ok=True)
        storage = MinariStorage.new(path, observation_space=env.observation_space, action_space=env.action_space,
                                    env_spec=env.spec, jpeg_encoding=False)
        metadata = {"minari_version": minari_version, **metadata}
    if buffers:
        storage.update_episodes(list(buffers))
    storage.update_metadata(metadata)
    _back_up_metadata(path)
    return MinariDataset(path)


METADATA_BACKUP = "il_toolkit_metadata.json"  # metadata.json as of the last complete write, replaced atomically


def _back_up_metadata(data_path: Path) -> None:
    """Minari rewrites ``metadata.json`` in place, so a kill mid-write leaves it empty or cut: keep
    a copy that is only ever replaced whole (see :func:`recover_metadata`)."""
    backup = (data_path / "metadata.json").read_bytes()
    replace_atomically(data_path / METADATA_BACKUP, lambda path: path.write_bytes(backup))


def recover_metadata(dataset_id: str) -> bool:
    """Repair a dataset whose ``metadata.json`` a kill left empty or cut: restore the copy taken
    after the last complete write and drop any episode stored after it (its write never finished;
    a resumed collection rolls that seed out again). Returns whether anything was repaired. Call
    it holding the dataset's writer lock."""
    import json

    import h5py

    data_path = dataset_path(dataset_id) / "data"
    backup, metadata = data_path / METADATA_BACKUP, data_path / "metadata.json"
    if not backup.exists() or not metadata.exists():
        return False
    try:
        json.loads(metadata.read_text())
        return False
    except ValueError:
        pass
    total = int(json.loads(backup.read_text()).get("total_episodes", 0))
    try:
        with h5py.File(data_path / "main_data.hdf5", "a") as file:
            for name in [n for n in file.keys() if n.startswith("episode_") and int(n.split("_")[1]) >= total]:
                del file[name]
    except (OSError, KeyError, ValueError) as exc:  # the episode file itself is damaged: nothing to recover
        raise corrupt_data_error(dataset_id, exc) from exc
    saved = backup.read_bytes()
    replace_atomically(metadata, lambda path: path.write_bytes(saved))
    return True



def finalize(data_path: str | os.PathLike, metadata: dict[str, Any]) -> None:
    """Update the metadata of a finished dataset (marks it complete)."""
    from minari.dataset.minari_storage import MinariStorage

    path = Path(data_path).resolve()
    MinariStorage.read(path).update_metadata(metadata)
    _back_up_metadata(path)


def to_transitions(trajectories: Sequence[Any]):
    """Flatten trajectories into imitation ``Transitions``."""
    from imitation.data import rollout

    return rollout.flatten_trajectories(list(trajectories))


def to_arrays(trajectories: Sequence[Any]) -> dict[str, np.ndarray]:
    """Flat, torch-ready arrays: ``obs`` (N, *obs_shape), ``acts`` (N, *act_shape),
    ``next_obs`` (N, *obs_shape), ``dones`` (N,), ``rews`` (N,). Dict observations stay
    dicts of arrays."""
    transitions = to_transitions(trajectories)

    def plain(obs: Any) -> Any:
        return {k: np.asarray(v) for k, v in obs.items()} if hasattr(obs, "items") else np.asarray(obs)

    rews = np.concatenate([np.asarray(t.rews) for t in trajectories]).astype(np.float32)
    return {
        "obs": plain(transitions.obs),
        "acts": np.asarray(transitions.acts),
        "next_obs": plain(transitions.next_obs),
        "dones": np.asarray(transitions.dones),
        "rews": rews,
    }


def top_percentile_mask(returns: Sequence[float], percentile: float) -> np.ndarray:
    """Which episodes have a return at or above the ``percentile``-th percentile (the user guide's filter)."""
    returns = np.asarray(returns, dtype=np.float64)
    return returns >= np.percentile(returns, percentile)


def filter_top_percentile(trajectories: Sequence[Any], percentile: float) -> list[Any]:
    """Keep the trajectories in the top return percentile."""
    keep = top_percentile_mask([float(np.sum(t.rews)) for t in trajectories], percentile)
    return [t for t, k in zip(trajectories, keep) if k]


def __getattr__(name: str) -> Any:
    if name in ("collect_dataset", "CollectionReport"):
        raise AttributeError(f"{name} lives in il_toolkit.train.datasets.collect (collection builds on this module): "
                             f"from il_toolkit.train.datasets.collect import {name}, or from il_toolkit import collect_dataset")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
