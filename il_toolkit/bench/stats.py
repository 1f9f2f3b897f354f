"""Aggregates over seeds: mean, interquartile mean and a percentile-bootstrap 95% interval."""

from __future__ import annotations

from typing import Sequence

import numpy as np


def iqm(values: Sequence[float]) -> float:
    """Interquartile mean: the mean of the middle 50% (rliable's recommendation). With fewer
    than 4 values nothing is trimmed; fractional trimming follows ``scipy.stats.trim_mean``."""
    from scipy.stats import trim_mean

    x = np.asarray(values, dtype=np.float64)
    if x.size == 0:
        return float("nan")
    return float(trim_mean(x, 0.25))


def bootstrap_ci(values: Sequence[float], *, statistic: str = "mean", level: float = 0.95, n_resamples: int = 2000,
                 seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of ``statistic`` ("mean" or "iqm") over ``values`` (one per
    seed). One value gives a zero-width interval (there is no spread to resample)."""
    x = np.asarray(values, dtype=np.float64)
    if x.size == 0:
        return float("nan"), float("nan")
    if x.size == 1:
        return float(x[0]), float(x[0])
    rng = np.random.default_rng(seed)
    samples = x[rng.integers(0, x.size, size=(n_resamples, x.size))]
    if statistic == "mean":
        stats = samples.mean(axis=1)
    elif statistic == "iqm":
        from scipy.stats import trim_mean

        stats = trim_mean(np.sort(samples, axis=1), 0.25, axis=1)
    else:
        raise ValueError(f"statistic must be 'mean' or 'iqm', got {statistic!r}")
    alpha = (1 - level) / 2
    low, high = np.quantile(stats, [alpha, 1 - alpha])
    return float(low), float(high)


def summarize(values: Sequence[float | None]) -> dict[str, float | int | None]:
    """``n``, ``mean``, ``iqm``, ``ci_low``, ``ci_high`` over the non-None values."""
    kept = [float(v) for v in values if v is not None and np.isfinite(v)]
    if not kept:
        return {"n": 0, "mean": None, "iqm": None, "ci_low": None, "ci_high": None}
    low, high = bootstrap_ci(kept)
    return {"n": len(kept), "mean": float(np.mean(kept)), "iqm": iqm(kept), "ci_low": low, "ci_high": high}
