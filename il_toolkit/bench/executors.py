"""Where trials run: in this process, in a local process pool, or on a Ray cluster.

Every executor takes a picklable function and a list of argument tuples and yields
``(index, result)`` as jobs finish (in completion order). Results must be plain data.
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from typing import Any, Callable, Iterator, Sequence

EXECUTORS = ("local", "ray")

Job = tuple[Any, ...]


def _init_worker() -> None:
    import torch

    from il_toolkit._defaults import apply_environment_defaults

    apply_environment_defaults()
    torch.set_num_threads(1)  # small models on few cores: one thread each is fastest


def run_sequential(fn: Callable[..., Any], jobs: Sequence[Job]) -> Iterator[tuple[int, Any]]:
    """In this process, one job after another (``--workers 1``): no start-up cost, nested progress bars."""
    _init_worker()
    for index, args in enumerate(jobs):
        yield index, fn(*args)


def run_local_pool(fn: Callable[..., Any], jobs: Sequence[Job], workers: int) -> Iterator[tuple[int, Any]]:
    """A pool of ``workers`` fresh (spawned) processes; each imports the toolkit once and runs
    jobs until none are left. Ctrl-C cancels the jobs not yet started."""
    context = multiprocessing.get_context("spawn")  # fork after torch/OpenMP start-up is unsafe
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_init_worker)
    try:
        futures = {pool.submit(fn, *args): index for index, args in enumerate(jobs)}
        pending = set(futures)
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                yield futures[future], future.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def run_ray(fn: Callable[..., Any], jobs: Sequence[Job], workers: int, address: str | None) -> Iterator[tuple[int, Any]]:
    """On Ray: the cluster at ``address`` (``"auto"``, ``"ray://host:10001"``), or a local
    instance with ``workers`` CPUs when no address is given. One CPU per trial."""
    try:
        import ray
    except ImportError as exc:
        raise RuntimeError(
            "--executor ray needs Ray: pip install 'ray==2.60.0' (tested with the project's pinned stack), "
            "or use --executor local"
        ) from exc
    started_here = not ray.is_initialized()
    if started_here:
        if address:
            ray.init(address=address, log_to_driver=True)
        else:
            ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=True)
    remote = ray.remote(num_cpus=1)(_ray_job)
    try:
        refs = {remote.remote(fn, args): index for index, args in enumerate(jobs)}
        pending = list(refs)
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            for ref in done:
                yield refs[ref], ray.get(ref)
    finally:
        if started_here:
            ray.shutdown()


def _ray_job(fn: Callable[..., Any], args: Job) -> Any:
    _init_worker()
    return fn(*args)


def run_jobs(fn: Callable[..., Any], jobs: Sequence[Job], *, executor: str = "local", workers: int = 1,
             address: str | None = None) -> Iterator[tuple[int, Any]]:
    """Dispatch to the executor named ``executor`` (see :data:`EXECUTORS`)."""
    if executor not in EXECUTORS:
        raise ValueError(f"unknown executor {executor!r}; choose one of {', '.join(EXECUTORS)}")
    if workers < 1:
        raise ValueError(f"--workers must be >= 1, got {workers}")
    if executor == "ray":
        return run_ray(fn, jobs, workers, address)
    if address:
        raise ValueError("--address is for --executor ray")
    return run_sequential(fn, jobs) if workers == 1 else run_local_pool(fn, jobs, workers)
