"""``il-bench run SUITE``: validate, skip what is done, measure references, run trials, append.

Timing breakdown of a run (``kind: "run"`` record, also printed): wall-clock; per trial the
time in training, evaluation and dataset collection (summed); the reference evaluations; and
the harness overhead = wall-clock minus all of those (start-up, imports, validation,
checkpoint reloads, bookkeeping). With more than one worker trials overlap, so the sums can
exceed the wall-clock and the overhead share is only meaningful for ``--workers 1``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from il_toolkit.bench.executors import run_jobs
from il_toolkit.bench.references import reference_key
from il_toolkit.bench.results import ResultsFile
from il_toolkit.bench.suite import Suite, Trial, describe, load_suite

VERSIONED_PACKAGES = ("il_toolkit", "torch", "gymnasium", "stable-baselines3", "imitation", "minari", "gym-pusht",
                      "gym-aloha", "mujoco", "numpy", "ray")


@dataclass
class RunSummary:
    suite: str
    results: str
    executor: str
    workers: int
    n_trials: int
    n_skipped: int
    n_ok: int = 0
    n_failed: int = 0
    wall_seconds: float = 0.0
    train_seconds: float = 0.0
    eval_seconds: float = 0.0
    collect_seconds: float = 0.0
    reference_seconds: float = 0.0
    overhead_seconds: float | None = 0.0  # None when trials overlapped (workers > 1)
    overhead_share: float | None = None
    problems: list[str] = field(default_factory=list)

    def text(self) -> str:
        head = f"suite {self.suite}: {self.n_ok} trials ok, {self.n_failed} failed, {self.n_skipped} already done; "
        if self.n_ok + self.n_failed == 0:
            return head + f"nothing to run ({self.wall_seconds:.1f} s); results in {self.results}"
        if self.overhead_share is None:  # trials overlapped: their times add up to more than the wall-clock
            return (head + f"wall-clock {self.wall_seconds:.1f} s with {self.workers} workers (summed over trials: "
                    f"training {self.train_seconds:.1f} s, evaluation {self.eval_seconds:.1f} s, dataset collection "
                    f"{self.collect_seconds:.1f} s; references {self.reference_seconds:.1f} s); results in {self.results}")
        return (head + f"wall-clock {self.wall_seconds:.1f} s = training {self.train_seconds:.1f} s + evaluation "
                f"{self.eval_seconds:.1f} s + dataset collection {self.collect_seconds:.1f} s + references "
                f"{self.reference_seconds:.1f} s + harness overhead {self.overhead_seconds:.1f} s "
                f"({100 * self.overhead_share:.1f}%); results in {self.results}")


def environment_info() -> dict[str, Any]:
    """Package versions and the git revision, recorded in every trial."""
    from importlib.metadata import PackageNotFoundError, version

    versions: dict[str, str | None] = {}
    for package in VERSIONED_PACKAGES:
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = None
    try:
        here = Path(__file__).resolve().parent
        revision = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=here,
                                  check=True, timeout=10).stdout.strip()
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                                    text=True, cwd=here, timeout=10).stdout.strip())
    except (OSError, subprocess.SubprocessError):
        revision, dirty = None, None
    return {"versions": versions, "git_revision": revision, "git_dirty": dirty, "python": sys.version.split()[0]}


def default_results_path(suite_name: str) -> Path:
    """``output/bench/<suite>.jsonl`` under the current directory."""
    return Path("output") / "bench" / f"{suite_name}.jsonl"


def default_workdir(results: Path) -> Path:
    """Checkpoints and trainer logs: ``output/bench/<results stem>/`` (git-ignored), not beside the results."""
    return Path("output") / "bench" / results.stem


def run_suite(
    suite: str | Suite,
    results: str | os.PathLike | None = None,
    *,
    executor: str = "local",
    workers: int = 1,
    address: str | None = None,
    workdir: str | os.PathLike | None = None,
    progress: bool = True,
    use_wandb: bool = False,
    started: float | None = None,
) -> RunSummary:
    """Run every trial of ``suite`` not already finished in ``results``; see the module docstring.
    Raises :class:`ResultsBusyError` while another run writes ``results``."""
    start = time.perf_counter() if started is None else started  # the CLI passes its own start time
    suite_obj = suite if isinstance(suite, Suite) else load_suite(suite)  # every problem reported before any work
    results_path = Path(results) if results is not None else default_results_path(suite_obj.name)
    with _results_run_lock(results_path):
        return _run_pending(suite_obj, results_path, start, executor=executor, workers=workers, address=address,
                            workdir=workdir, progress=progress, use_wandb=use_wandb)


class ResultsBusyError(RuntimeError):
    """Another ``il-bench run`` is writing the same results file."""


def _results_run_lock(results_path: Path) -> Any:
    """One ``il-bench run`` per results file at a time: a second one would run every unfinished
    trial again and write each record twice."""
    from il_toolkit.locks import exclusive

    def busy(pid: str) -> ResultsBusyError:
        return ResultsBusyError(f"{results_path} is being written by another il-bench run (pid {pid}); wait for it "
                                "(a rerun then skips what it finished), or give another --results")

    return exclusive(results_path.parent / f".{results_path.name}.run.lock", busy)


def _run_pending(suite_obj: Suite, results_path: Path, start: float, *, executor: str, workers: int,
                 address: str | None, workdir: str | os.PathLike | None, progress: bool, use_wandb: bool) -> RunSummary:
    from tqdm.auto import tqdm

    from il_toolkit.bench.trial import run_trial

    work = (Path(workdir) if workdir is not None else default_workdir(results_path)).resolve()
    store = ResultsFile(results_path)
    report = store.read()
    for problem in report.problems:
        print(f"warning: {problem}", file=sys.stderr)
    done = report.finished_keys()
    trials = suite_obj.trials()
    pending = [t for t in trials if t.key not in done]
    summary = RunSummary(suite_obj.name, str(results_path), executor, workers, len(trials), len(trials) - len(pending),
                         problems=list(report.problems))
    print(describe(suite_obj, trials), file=sys.stderr)
    print(f"{summary.n_skipped} of {len(trials)} trials already in {results_path}; running {len(pending)} "
          f"({executor} executor, {workers} worker{'s' if workers != 1 else ''})", file=sys.stderr)
    if not pending:
        summary.wall_seconds = time.perf_counter() - start
        return summary

    env_info = environment_info()
    references = {r["key"]: r for r in report.references()}
    summary.reference_seconds = _measure_references(pending, references, store, progress)
    jobs = [(t.to_dict(), references[reference_key(t.env_id, t.eval_seed, t.eval_episodes, t.obs_type)], str(work),
             progress and workers == 1) for t in pending]
    bar = tqdm(total=len(jobs), desc=f"trials ({suite_obj.name})", unit="trial", disable=not progress)
    try:
        for index, record in run_jobs(run_trial, jobs, executor=executor, workers=workers, address=address):
            record.update(env_info, executor=executor, workers=workers)
            store.append(record)
            _account(summary, record)
            if use_wandb:
                log_trial_to_wandb(record, suite_obj.name, work)
            bar.update(1)
            bar.set_postfix_str(_short(record))
            if record["status"] != "ok":
                print(f"\ntrial {record['key']} failed: {record['error']}\n{record.get('traceback', '')}", file=sys.stderr)
    finally:
        bar.close()
        summary.wall_seconds = time.perf_counter() - start
        accounted = summary.train_seconds + summary.eval_seconds + summary.collect_seconds + summary.reference_seconds
        if workers == 1:
            summary.overhead_seconds = summary.wall_seconds - accounted
            summary.overhead_share = summary.overhead_seconds / summary.wall_seconds
        else:
            summary.overhead_seconds = None
        store.append({"kind": "run", **asdict(summary), "finished_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                      **env_info})
    return summary


def _measure_references(pending: list[Trial], references: dict[str, dict[str, Any]], store: ResultsFile,
                        progress: bool) -> float:
    from il_toolkit.bench.references import measure_references

    seconds = 0.0
    needed = sorted({(t.env_id, t.eval_seed, t.eval_episodes, t.obs_type or "") for t in pending})
    for env_id, eval_seed, eval_episodes, obs_type in needed:
        key = reference_key(env_id, eval_seed, eval_episodes, obs_type or None)
        if key in references:
            continue
        t0 = time.perf_counter()
        record = measure_references(env_id, eval_seed, eval_episodes, obs_type=obs_type or None, progress=progress)
        seconds += time.perf_counter() - t0
        store.append(record)
        references[key] = record
        e, r = record["expert"]["aggregates"], record["random"]["aggregates"]
        print(f"reference {env_id}: expert return {e['mean_return']:.1f} success {e['pc_success']:.0f}%, random return "
              f"{r['mean_return']:.1f} success {r['pc_success']:.0f}% ({record['seconds']:.1f} s)", file=sys.stderr)
    return seconds


def _account(summary: RunSummary, record: dict[str, Any]) -> None:
    if record["status"] == "ok":
        summary.n_ok += 1
        summary.train_seconds += record["train_seconds"]
        summary.eval_seconds += record["eval_seconds"]
        summary.collect_seconds += record["collect_seconds"]
    else:
        summary.n_failed += 1


def _short(record: dict[str, Any]) -> str:
    if record["status"] != "ok":
        return f"{record['method']} FAILED"
    score = record["normalized_score"]
    score_text = "n/a" if score is None else f"{score:.2f}"
    return f"{record['env_id'].split('/')[-1]} {record['method']} d{record['n_demos']} s{record['seed']}: score {score_text}"


def log_trial_to_wandb(record: dict[str, Any], suite: str, workdir: Path) -> None:
    """One wandb run per trial, grouped by suite (offline unless WANDB_MODE says otherwise)."""
    try:
        import wandb

        run = wandb.init(
            project="il_toolkit-bench", group=suite, job_type=record["method"], name=record["key"],
            config={k: record[k] for k in ("env_id", "method", "seed", "n_demos", "budget_name", "budget",
                                            "eval_episodes", "eval_seed")},
            dir=str(workdir), mode=os.environ.get("WANDB_MODE", "offline"), reinit="finish_previous",
            settings=wandb.Settings(silent=True),
        )
        if record["status"] == "ok":
            run.summary.update({k: record[k] for k in ("pc_success", "avg_max_reward", "mean_return", "normalized_score",
                                                        "train_seconds", "eval_seconds", "expert_labels")})
            run.summary["latency_ms"] = record["latency_ms"]["mean"]
        run.finish(quiet=True)
    except Exception as exc:  # logging never stops the benchmark
        print(f"warning: wandb logging failed ({type(exc).__name__}: {exc})", file=sys.stderr)
