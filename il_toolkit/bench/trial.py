"""One trial from start to record: train through the method's adapter, reload the saved
policy, evaluate it with the shared evaluation (timing every ``predict``), score it.

:func:`run_trial` takes and returns plain data (dicts), so any executor (a process pool,
Ray) can ship it; everything it needs is imported inside.
"""

from __future__ import annotations

import re
import shutil
import socket
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np

from il_toolkit.config.training_config import SEED_STRIDE


def dataset_id(env_id: str, seed: int, n_demos: int, obs_type: str | None = None) -> str:
    """The Minari id of the expert dataset for ``env_id`` (and ``obs_type``), training seed and
    demonstration budget."""
    name = re.sub(r"[^a-z0-9]+", "-", env_id.split("/")[-1].lower()).strip("-")
    if obs_type is not None:
        name += "-" + re.sub(r"[^a-z0-9]+", "-", obs_type.lower())
    return f"il-bench/{name}-expert-s{seed}-n{n_demos}-v0"


def run_dir_name(key: str) -> str:
    """A short directory name for a trial key: env, method, demos, seed and the key's digest."""
    env_id, method, demos, seed, _budget, digest = key.split("|")
    env = re.sub(r"[^a-z0-9]+", "-", env_id.split("/")[-1].lower()).strip("-")
    return f"{env}-{method}-{demos}-{seed}-{digest}"


def ensure_dataset(env_id: str, seed: int, n_demos: int, *, obs_type: str | None = None,
                   progress: bool = False) -> tuple[str, float]:
    """Collect the expert dataset unless a complete one exists; returns ``(dataset_id, seconds
    spent collecting)``, 0 when this call collected nothing (the dataset was complete, collected
    earlier or by the process it waited for). A collection that was cut short is resumed where it
    stopped; trials (and harness processes) that need the same dataset at once collect it once,
    the others wait (``collect_dataset(if_missing=True)``). A dataset under the same id that
    does not hold ``n_demos`` episodes of ``env_id`` by its default expert is refused."""
    from il_toolkit.train.datasets.collect import collect_dataset

    name = dataset_id(env_id, seed, n_demos, obs_type)
    start = time.perf_counter()
    report = collect_dataset(env_id, name, n_demos, seed=seed * SEED_STRIDE, progress=progress,
                             env_kwargs=None if obs_type is None else {"obs_type": obs_type}, if_missing=True,
                             description=f"il-bench: {n_demos} episodes of {env_id} by its default expert, "
                             f"reset seeds from {seed * SEED_STRIDE}")
    return name, 0.0 if report.reused else time.perf_counter() - start


class TimedPolicy:
    """Forwards to ``policy`` and records the wall-clock of every ``predict`` call (seconds)."""

    def __init__(self, policy: Any) -> None:
        self.policy = policy
        self.observation_space = policy.observation_space
        self.action_space = policy.action_space
        self.seconds: list[float] = []
        if hasattr(policy, "set_instruction"):  # rollouts hand it the env's per-episode instruction
            self.set_instruction = policy.set_instruction

    def predict(self, observation: Any, state: Any = None, episode_start: Any = None, deterministic: bool = True):
        start = time.perf_counter()
        out = self.policy.predict(observation, state=state, episode_start=episode_start, deterministic=deterministic)
        self.seconds.append(time.perf_counter() - start)
        return out

    def reset(self) -> None:
        self.policy.reset()

    def save(self, path: Any) -> Any:
        return self.policy.save(path)

    def latency_ms(self) -> dict[str, float]:
        """Per-action latency: mean (what chunked policies cost on average), median and p95."""
        ms = np.asarray(self.seconds) * 1e3
        if ms.size == 0:
            return {"mean": float("nan"), "p50": float("nan"), "p95": float("nan"), "n_calls": 0}
        return {"mean": float(ms.mean()), "p50": float(np.percentile(ms, 50)), "p95": float(np.percentile(ms, 95)),
                "n_calls": int(ms.size)}


def run_trial(trial: dict[str, Any], reference: dict[str, Any], workdir: str, progress: bool = False) -> dict[str, Any]:
    """Run one trial (``Trial.to_dict()``); returns its ``trial`` record, ``status`` "ok" or
    "failed" (with the error). ``reference`` is the env's reference record (normalised score)."""
    from il_toolkit.bench.suite import Trial

    spec = Trial.from_dict(trial)
    started = time.time()
    start = time.perf_counter()
    record: dict[str, Any] = {"kind": "trial", "key": spec.key, **spec.to_dict(), "host": socket.gethostname(),
                              "started_utc": _utc(started)}
    try:
        record.update(_train_and_evaluate(spec, reference, Path(workdir), progress))
        record["status"] = "ok"
    except Exception as exc:  # one failed trial must not stop the suite; it is retried next run
        record.update(status="failed", error=f"{type(exc).__name__}: {exc}",
                      traceback=traceback.format_exc(limit=8))
    record["trial_seconds"] = time.perf_counter() - start
    record["finished_utc"] = _utc(time.time())
    return record


def _train_and_evaluate(spec: Any, reference: dict[str, Any], workdir: Path, progress: bool) -> dict[str, Any]:
    from il_toolkit.bench.methods import METHOD_REGISTRY, TrainRequest
    from il_toolkit.bench.references import normalized_score
    from il_toolkit.evaluation import evaluate
    from il_toolkit.policies import load
    from il_toolkit.train.il.common import seed_everything

    seed_everything(spec.seed)
    output_dir = workdir.resolve() / run_dir_name(spec.key)  # absolute: Minari mangles relative paths
    if output_dir.exists():  # an interrupted attempt: start over, never resume half a trial
        shutil.rmtree(output_dir)
    output_dir.mkdir(parents=True)
    adapter = METHOD_REGISTRY.get(spec.method)
    dataset, collect_seconds = ensure_dataset(spec.env_id, spec.seed, spec.n_demos, obs_type=spec.obs_type,
                                              progress=progress)
    seed_everything(spec.seed)  # collection may have used the global generators
    request = TrainRequest(spec.env_id, dataset, spec.n_demos, spec.seed, dict(spec.budget), str(output_dir), progress,
                           spec.env_kwargs)
    t0 = time.perf_counter()
    outcome = adapter(request)
    train_seconds = time.perf_counter() - t0

    policy = TimedPolicy(load(outcome.policy_path))  # evaluate what was saved, not what is in memory
    t0 = time.perf_counter()
    result = evaluate(policy, spec.env_id, n_episodes=spec.eval_episodes, seed=spec.eval_seed, progress=progress,
                      env_kwargs=spec.env_kwargs)
    eval_seconds = time.perf_counter() - t0
    aggregates = dict(result.aggregates)
    return {
        "dataset_id": request.dataset_id,
        "policy_path": outcome.policy_path,
        "expert_labels": outcome.expert_labels,
        "train_extra": outcome.extra,
        "episodes": [e for e in result.to_dict()["episodes"]],
        "aggregates": aggregates,
        "pc_success": aggregates["pc_success"],
        "avg_max_reward": aggregates["avg_max_reward"],
        "mean_return": aggregates["mean_return"],
        "normalized_score": normalized_score(aggregates, reference, spec.score),
        "collect_seconds": collect_seconds,
        "train_seconds": train_seconds,
        "eval_seconds": eval_seconds,
        "latency_ms": policy.latency_ms(),
    }


def _utc(timestamp: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(timestamp))
