"""Aggregates over seeds and tasks, computed with rliable (Agarwal et al., 2021, "Deep
Reinforcement Learning at the Edge of the Statistical Precipice"): the mean, the interquartile
mean (IQM) and percentile intervals from rliable's stratified bootstrap, the figures papers report.

Scores are arranged as rliable expects: a matrix ``(runs, tasks)``, one row per training seed and
one column per task; one task's seeds are a ``(runs, 1)`` column. rliable is imported when first
needed (it pulls in ``arch`` and ``statsmodels``, about a second).
"""

from __future__ import annotations

import warnings
from typing import Callable, Sequence

import numpy as np

STATISTICS = ("mean", "iqm")


def _aggregate(statistic: str) -> Callable[[np.ndarray], float]:
    from rliable import metrics

    if statistic == "mean":
        return metrics.aggregate_mean
    if statistic == "iqm":
        return metrics.aggregate_iqm
    raise ValueError(f"statistic must be one of {STATISTICS}, got {statistic!r}")


def _as_matrix(scores: Sequence[float] | np.ndarray) -> np.ndarray:
    """One task's values ``(runs,)`` -> ``(runs, 1)``; a ``(runs, tasks)`` matrix as it is."""
    x = np.asarray(scores, dtype=np.float64)
    return x[:, None] if x.ndim == 1 else x


def iqm(values: Sequence[float] | np.ndarray) -> float:
    """Interquartile mean over every entry: the mean of the middle 50% (``scipy.stats.trim_mean``
    with 25% cut at each end, as rliable's ``aggregate_iqm``; with fewer than 4 values nothing is
    trimmed)."""
    x = _as_matrix(values)
    if x.size == 0:
        return float("nan")
    return float(_aggregate("iqm")(x))


def bootstrap_ci(scores: Sequence[float] | np.ndarray, *, statistic: str = "mean", level: float = 0.95,
                 n_resamples: int = 2000, seed: int = 0) -> tuple[float, float]:
    """rliable's stratified-bootstrap percentile interval of ``statistic`` ("mean" or "iqm").

    ``scores``: one value per seed ``(runs,)`` or a ``(runs, tasks)`` matrix (runs are resampled
    within each task). One run gives a zero-width interval at its aggregate (there is no spread
    to resample). Seeded: the same scores give the same interval.
    """
    from rliable import library

    x = _as_matrix(scores)
    aggregate = _aggregate(statistic)
    if x.size == 0:
        return float("nan"), float("nan")
    if x.shape[0] == 1:
        value = float(aggregate(x))
        return value, value
    saved = np.random.get_state()  # rliable 1.2 draws its resamples from NumPy's global generator
    np.random.seed(seed)
    try:
        with warnings.catch_warnings():  # ... and hands arch the deprecated random_state as well
            warnings.simplefilter("ignore", FutureWarning)
            _, intervals = library.get_interval_estimates(
                {"scores": x}, lambda m: np.array([aggregate(m)]), reps=n_resamples, confidence_interval_size=level,
                random_state=np.random.RandomState(seed),
            )
    finally:
        np.random.set_state(saved)
    low, high = intervals["scores"][:, 0]
    return float(low), float(high)


def summarize(values: Sequence[float | None]) -> dict[str, float | int | None]:
    """``n``, ``mean``, ``iqm``, ``ci_low``, ``ci_high`` (the mean's interval) over the finite,
    non-None values of one task (one per seed)."""
    kept = [float(v) for v in values if v is not None and np.isfinite(v)]
    if not kept:
        return {"n": 0, "mean": None, "iqm": None, "ci_low": None, "ci_high": None}
    low, high = bootstrap_ci(kept)
    return {"n": len(kept), "mean": float(np.mean(kept)), "iqm": iqm(kept), "ci_low": low, "ci_high": high}


def summarize_tasks(scores: np.ndarray) -> dict[str, float | int | None]:
    """Aggregates of a ``(runs, tasks)`` matrix across tasks: ``runs``, ``tasks``, ``mean``,
    ``iqm`` and each one's stratified-bootstrap 95% interval (``mean_ci``, ``iqm_ci``)."""
    x = np.asarray(scores, dtype=np.float64)
    if x.ndim != 2 or x.size == 0:
        raise ValueError(f"scores must be a non-empty (runs, tasks) matrix, got shape {x.shape}")
    return {"runs": int(x.shape[0]), "tasks": int(x.shape[1]),
            "mean": float(x.mean()), "mean_ci": bootstrap_ci(x, statistic="mean"),
            "iqm": iqm(x), "iqm_ci": bootstrap_ci(x, statistic="iqm")}
