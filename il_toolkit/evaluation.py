"""Evaluation shared by every policy: per-episode records and aggregates.

Per episode (LeRobot's and imitation's vocabulary): ``sum_reward``, ``max_reward``,
``success``, ``seed``, ``length``. Aggregates: ``mean_return``, ``std_return``,
``pc_success`` (percent), ``avg_max_reward``, and with references a ``normalized_score``
(expert = 1, random = 0, both measured on the very same seeds). Episode ``i`` is reset with
seed ``seed + i``, so every method is scored on the same starts.

``success`` is ``info["is_success"]`` at any step where the env reports it (PushT, ALOHA);
for envs that report nothing (CartPole) an episode succeeds when it reaches the time limit
without terminating (the pole stayed up for the whole horizon).
"""

from __future__ import annotations

import json
import math
import multiprocessing
import os
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import gymnasium as gym
import numpy as np

from il_toolkit.envs import canonical_env_id, make_env
from il_toolkit.policies.base import Policy, check_spaces
from il_toolkit.rollout import Episode, rollout_episode

DEFAULT_EVAL_SEED = 1_000_000


@dataclass(frozen=True)
class EpisodeRecord:
    seed: int
    sum_reward: float
    max_reward: float
    success: bool
    length: int


@dataclass
class EvalResult:
    env_id: str
    episodes: list[EpisodeRecord]
    seconds: float
    references: dict[str, float] | None = None  # {"expert_return": ..., "random_return": ...} on the same seeds
    aggregates: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        returns = np.array([e.sum_reward for e in self.episodes], dtype=np.float64)
        self.aggregates = {
            "n_episodes": len(self.episodes),
            "mean_return": float(returns.mean()),
            "std_return": float(returns.std()),
            # count * 100 / n, not 100 * mean: 114 of 200 is 57.0, where 100 * 0.57 prints 56.99999999999999
            "pc_success": 100.0 * sum(bool(e.success) for e in self.episodes) / len(self.episodes) if self.episodes else math.nan,
            "avg_max_reward": float(np.mean([e.max_reward for e in self.episodes])),
            "mean_length": float(np.mean([e.length for e in self.episodes])),
        }
        if self.references is not None:
            self.aggregates["normalized_score"] = normalized_score(
                self.aggregates["mean_return"], self.references["random_return"], self.references["expert_return"]
            )

    @property
    def mean_return(self) -> float:
        return self.aggregates["mean_return"]

    @property
    def pc_success(self) -> float:
        return self.aggregates["pc_success"]

    def to_dict(self) -> dict[str, Any]:
        return {
            "env_id": self.env_id,
            "seconds": self.seconds,
            "aggregates": self.aggregates,
            "references": self.references,
            "episodes": [asdict(e) for e in self.episodes],
        }

    def to_lerobot(self, video_paths: Sequence[str] = ()) -> dict[str, Any]:
        """This evaluation in LeRobot's ``eval_info.json`` format (``per_episode``, ``aggregated``,
        ``video_paths``), e.g. for ``policy.save_pretrained(folder, eval_info=result.to_lerobot())``."""
        n = max(len(self.episodes), 1)
        return {
            "per_episode": [{"episode_ix": i, "sum_reward": e.sum_reward, "max_reward": e.max_reward,
                             "success": e.success, "seed": e.seed} for i, e in enumerate(self.episodes)],
            "aggregated": {"avg_sum_reward": self.aggregates["mean_return"], "avg_max_reward": self.aggregates["avg_max_reward"],
                           "pc_success": self.aggregates["pc_success"], "eval_s": self.seconds, "eval_ep_s": self.seconds / n},
            "video_paths": list(video_paths),
        }

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2))
        return path

    def summary(self) -> str:
        a = self.aggregates
        text = (
            f"{self.env_id}: return {a['mean_return']:.1f} ± {a['std_return']:.1f}, success {a['pc_success']:.1f}%, "
            f"avg max reward {a['avg_max_reward']:.3f} over {a['n_episodes']} episodes ({self.seconds:.1f} s)"
        )
        if "normalized_score" in a:
            r = self.references or {}
            text += (f", normalised score {a['normalized_score']:.3f} (return {a['mean_return']:.1f} between random "
                     f"{r.get('random_return', float('nan')):.1f} = 0 and the expert's {r.get('expert_return', float('nan')):.1f}"
                     " = 1 on the same seeds)")
        return text


def normalized_score(mean_return: float, random_return: float, expert_return: float) -> float:
    """``(R - R_random) / (R_expert - R_random)``: expert = 1, random = 0."""
    span = expert_return - random_return
    return float("nan") if abs(span) < 1e-12 else float((mean_return - random_return) / span)


def episode_record(episode: Episode) -> EpisodeRecord:
    return EpisodeRecord(
        seed=int(episode.seed) if episode.seed is not None else -1,
        sum_reward=episode.sum_reward,
        max_reward=float(np.max(episode.rewards)) if episode.rewards else 0.0,
        success=episode.success,
        length=episode.length,
    )


def _env_id(env: gym.Env) -> str:
    return env.spec.id if env.spec is not None else type(env.unwrapped).__name__


def _run_seeds(
    policy: Policy, env: gym.Env, seeds: Sequence[int], *, progress: bool, video_dir: Path | None,
    video_seeds: set[int],
) -> list[EpisodeRecord]:
    from tqdm.auto import tqdm

    records = []
    for seed in tqdm(list(seeds), desc=f"eval {_env_id(env)}", disable=not progress, leave=False, unit="ep"):
        record_video = video_dir is not None and seed in video_seeds
        episode = rollout_episode(policy, env, seed, keep_observations=False, render=record_video)
        if record_video:
            write_video(episode.frames, video_dir / f"episode_seed{seed}.mp4", fps=env.metadata.get("render_fps", 30))
        records.append(episode_record(episode))
    return records


def write_video(frames: Sequence[np.ndarray], path: Path, fps: int = 30) -> Path:
    """Frames (H, W, 3) uint8 to an MP4 file."""
    import imageio

    path.parent.mkdir(parents=True, exist_ok=True)
    imageio.mimsave(path, list(frames), fps=fps, macro_block_size=1)
    return path


def evaluate(
    policy: Policy,
    env: str | gym.Env,
    n_episodes: int = 50,
    seed: int = DEFAULT_EVAL_SEED,
    *,
    env_kwargs: dict[str, Any] | None = None,
    progress: bool = False,
    references: dict[str, float] | None = None,
    video_dir: str | os.PathLike | None = None,
    video_episodes: Sequence[int] = (0,),
) -> EvalResult:
    """Evaluate ``policy`` for ``n_episodes`` on seeds ``seed, seed+1, ...`` in one process.

    The default seed is far from the collection seeds (0, 1, ...) so demonstrations and
    evaluation starts never coincide. ``video_dir`` records the episodes whose index is in
    ``video_episodes`` as MP4 files (the env must render ``rgb_array``).
    """
    owns_env = isinstance(env, str)
    if isinstance(env, str):
        kwargs = dict(env_kwargs or {})
        if video_dir is not None:
            kwargs.setdefault("render_mode", "rgb_array")
        env_obj = make_env(env, **kwargs)
    else:
        env_obj = env
    if env_obj.spec is not None:
        warn_if_trained_elsewhere(getattr(policy, "trained_env", None), env_obj.spec.id)
    policy = policy_for_env(policy, env_obj)
    check_spaces(
        "policy", policy.observation_space, policy.action_space, env_obj.observation_space, env_obj.action_space,
        fix=f"evaluate the policy on the env it was trained on (this env is {_env_id(env_obj)})",
    )
    seeds = [seed + i for i in range(n_episodes)]
    start = time.perf_counter()
    try:
        records = _run_seeds(policy, env_obj, seeds, progress=progress,
                             video_dir=Path(video_dir) if video_dir is not None else None,
                             video_seeds={seed + i for i in video_episodes})
    finally:
        if owns_env:
            env_obj.close()
    return EvalResult(env_id=_env_id(env_obj), episodes=records, seconds=time.perf_counter() - start, references=references)


def warn_if_trained_elsewhere(trained: str | None, env_id: str) -> None:
    """Warn when a policy that records (``trained_env``) it was trained in the env ``trained`` is evaluated in another,
    ``env_id``: their spaces may fit (PushT and the two-target PushT do) while the task differs."""
    if not trained:
        return
    here = canonical_env_id(env_id)
    try:
        trained = canonical_env_id(trained)
    except ValueError:  # an env this process has not registered: compared by its id as saved
        pass
    if here != trained:
        warnings.warn(f"the policy was trained in {trained} and is evaluated in {here}; evaluate it in {trained} "
                      "for the figures its training aimed at", stacklevel=3)


def policy_for_env(policy: Policy, env: gym.Env) -> Policy:
    """The policy to run in ``env``: a multi-task policy (one with ``tasks`` and ``for_task``,
    such as a VLA trained on several tasks) acting in the env of one of its tasks gets that
    task's view (its instruction, state and action slots), and in any other env a ValueError naming
    its tasks; any other policy is returned as is."""
    tasks = getattr(policy, "tasks", ())
    if not tasks or getattr(policy, "task", None) is not None:
        return policy
    from il_toolkit.envs import env_entry

    entry = env_entry(env.spec.id) if env.spec is not None else None
    if entry is None or entry.instruction not in tasks:
        env_name = env.spec.id if env.spec is not None else type(env.unwrapped).__name__
        raise ValueError(
            f"this multi-task policy was trained on the tasks {list(tasks)}; {env_name} is none of them"
            + (f" (its instruction: {entry.instruction!r})" if entry is not None else "")
            + ": evaluate it in the env of one of its tasks, or pick a task with policy.for_task(instruction, ...)")
    return policy.for_task(entry.instruction, env.observation_space, env.action_space)


def evaluate_and_report(
    policy: Policy,
    env: str | gym.Env,
    n_episodes: int,
    path: str | os.PathLike | None = None,
    *,
    env_kwargs: dict[str, Any] | None = None,
    progress: bool = False,
) -> dict[str, float]:
    """What every trainer does after training: :func:`evaluate`, write the per-episode records
    to ``path`` (``eval.json``) when given, print the one-line summary; returns the aggregates."""
    import sys

    result = evaluate(policy, env, n_episodes=n_episodes, env_kwargs=env_kwargs, progress=progress)
    if path is not None:
        result.save(path)
    print(result.summary(), file=sys.stderr)
    return result.aggregates


def flow_policies_in(policy: Any) -> list[Any]:
    """The flow-matching policies that act in ``policy`` (a :class:`FlowMatchingPolicy` or a VLA, whose action head
    is one): itself, or those it acts through (the state policy behind a state estimator or an instruction
    grounder, an ensemble's members)."""
    from il_toolkit.model.vla import VLAModel
    from il_toolkit.policies.flow_policy import FlowMatchingPolicy

    if isinstance(policy, (FlowMatchingPolicy, VLAModel)):
        return [policy]
    inner = [getattr(policy, "state_policy", None), *getattr(policy, "members", ())]
    return [flow for part in inner if part is not None for flow in flow_policies_in(part)]


def set_ode(policy: Policy, ode_steps: int | None = None, solver: str | None = None, *,
            name: str = "the policy") -> Policy:
    """Set the inference settings of the flow-matching policies in ``policy`` (:func:`flow_policies_in`):
    ``ode_steps`` (their ``n_steps``) and ``solver`` (euler, midpoint or rk4), where given; returns
    ``policy``. A policy with no flow-matching policy in it is refused (``ConfigError``, named ``name``)."""
    from il_toolkit.config.training_config import ConfigError
    from il_toolkit.model.flow import SOLVERS

    if ode_steps is None and solver is None:
        return policy
    if ode_steps is not None and int(ode_steps) < 1:
        raise ConfigError(f"--ode-steps (ode_steps) must be at least 1, got {ode_steps}")
    if solver is not None and solver not in SOLVERS:
        raise ConfigError(f"unknown ODE solver {solver!r} (--solver); choose one of {', '.join(SOLVERS)}")
    flows = flow_policies_in(policy)
    if not flows:
        kind = getattr(policy, "checkpoint_kind", type(policy).__name__)
        raise ConfigError(f"--ode-steps and --solver (ode_steps, solver) set the ODE of flow-matching policies "
                          f"(FlowMatchingPolicy or a VLA, also behind a state estimator or an instruction grounder, or "
                          f"in an ensemble), and {name} is a {kind!r} policy, which they do not reach: drop them")
    for flow in flows:
        flow.n_steps = int(ode_steps) if ode_steps is not None else flow.n_steps
        flow.solver = solver if solver is not None else flow.solver
    return policy


def _worker(args: tuple[str, str, dict[str, Any], list[int], dict[str, Any]]) -> list[EpisodeRecord]:
    import torch

    from il_toolkit.policies import load

    torch.set_num_threads(1)
    policy_path, env_id, env_kwargs, seeds, ode = args
    env = make_env(env_id, **env_kwargs)
    try:
        policy = set_ode(load(policy_path), **ode, name=repr(policy_path))
        return _run_seeds(policy_for_env(policy, env), env, seeds, progress=False, video_dir=None, video_seeds=set())
    finally:
        env.close()


def evaluate_checkpoint(
    policy_path: str | os.PathLike,
    env_id: str,
    n_episodes: int = 50,
    seed: int = DEFAULT_EVAL_SEED,
    *,
    num_envs: int = 1,
    env_kwargs: dict[str, Any] | None = None,
    progress: bool = False,
    normalize: bool = False,
    video_dir: str | os.PathLike | None = None,
    video_episodes: Sequence[int] = (0,),
    ode_steps: int | None = None,
    solver: str | None = None,
) -> EvalResult:
    """Evaluate a saved policy, with ``num_envs`` env processes each running a share of the
    seeds (the records are identical to a single-process run on the same seeds). ``ode_steps`` and
    ``solver``: evaluate a flow-matching policy at these inference settings instead of its saved ones
    (:func:`set_ode`)."""
    from il_toolkit.policies import load, load_config

    ode = {"ode_steps": ode_steps, "solver": solver}
    in_process = num_envs <= 1 or video_dir is not None
    policy = None
    if in_process or ode_steps is not None or solver is not None:  # settings it cannot take: refused before any episode
        policy = set_ode(load(policy_path), **ode, name=repr(str(policy_path)))
    references = reference_returns(env_id, n_episodes, seed, env_kwargs=env_kwargs) if normalize else None
    if in_process:
        import torch

        # as in _worker; PushT MLP, 10 episodes beside a training run on 2 cores: 3.0 s, against 47.3 s on 2 threads
        torch.set_num_threads(1)
        return evaluate(policy, env_id, n_episodes, seed, env_kwargs=env_kwargs, progress=progress,
                        references=references, video_dir=video_dir, video_episodes=video_episodes)
    warn_if_trained_elsewhere(policy.trained_env if policy is not None else load_config(policy_path).get("trained_env"),
                              env_id)
    seeds = [seed + i for i in range(n_episodes)]
    shares = [seeds[i::num_envs] for i in range(num_envs)]
    start = time.perf_counter()
    context = multiprocessing.get_context("spawn")
    with context.Pool(num_envs) as pool:
        parts = pool.map(_worker, [(str(policy_path), env_id, dict(env_kwargs or {}), share, ode)
                                   for share in shares if share])
    records = sorted((r for part in parts for r in part), key=lambda r: r.seed)
    return EvalResult(env_id=canonical_env_id(env_id), episodes=records, seconds=time.perf_counter() - start, references=references)


_REFERENCE_CACHE: dict[tuple, dict[str, float]] = {}


def reference_returns(env_id: str, n_episodes: int, seed: int = DEFAULT_EVAL_SEED, *,
                      env_kwargs: dict[str, Any] | None = None) -> dict[str, float]:
    """Mean returns of the env's registered expert and of uniform random actions on the same
    evaluation seeds: the 1 and 0 of the normalised score."""
    from il_toolkit.experts import make_expert
    from il_toolkit.policies import RandomPolicy

    key = (env_id, n_episodes, seed, json.dumps(env_kwargs or {}, sort_keys=True))
    if key not in _REFERENCE_CACHE:
        env = make_env(env_id, **(env_kwargs or {}))
        random_policy = RandomPolicy(env.observation_space, env.action_space, seed=seed)
        expert = make_expert(env_id, env=env)
        seeds = [seed + i for i in range(n_episodes)]
        kwargs = dict(progress=False, video_dir=None, video_seeds=set())
        _REFERENCE_CACHE[key] = {
            "expert_return": float(np.mean([r.sum_reward for r in _run_seeds(expert, env, seeds, **kwargs)])),
            "random_return": float(np.mean([r.sum_reward for r in _run_seeds(random_policy, env, seeds, **kwargs)])),
        }
        env.close()
    return dict(_REFERENCE_CACHE[key])
