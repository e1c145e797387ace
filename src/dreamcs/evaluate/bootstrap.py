"""Percentile bootstrap intervals for the mean of paired differences, flat and hierarchical.

A study has prompts p = 1..P and, per prompt, the paired differences ``d_ps = B_ps - A_ps`` over
the seeds s both variants have. The estimates are

    per prompt:  m_p = mean_s d_ps
    pooled:      m   = mean_p m_p            (every prompt weighs the same, however many seeds)

``bootstrap_mean`` resamples the seeds of one prompt with replacement ``resamples`` times and
takes the percentiles of the resampled means. ``hierarchical_bootstrap_mean`` resamples the
prompts, then the seeds within each drawn prompt (Davison & Hinkley's two-stage bootstrap), so the
interval counts both the prompt-to-prompt and the seed-to-seed spread; a prompt drawn twice gets
two independent seed resamples. Both are deterministic for a given ``numpy.random.Generator``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Interval:
    """A mean with its percentile bootstrap interval (``low``/``high`` None when it cannot be had:
    one observation has no spread to resample)."""

    mean: float
    low: float | None
    high: float | None
    n: int
    """Observations: pairs for a prompt; all pairs for a pooled interval."""

    def contains(self, value: float) -> bool:
        return self.low is not None and self.high is not None and self.low <= value <= self.high


def _percentiles(boot: np.ndarray, confidence: float) -> tuple[float, float]:
    tail = 100.0 * (1.0 - confidence) / 2.0
    low, high = np.percentile(boot, [tail, 100.0 - tail])
    return float(low), float(high)


def _check(resamples: int, confidence: float) -> None:
    if resamples < 1:
        raise ValueError(f"bootstrap: resamples must be >= 1, got {resamples}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"bootstrap: confidence must be in (0, 1), got {confidence}")


def bootstrap_mean(values: Sequence[float] | np.ndarray, rng: np.random.Generator, *, resamples: int = 10_000,
                   confidence: float = 0.95) -> Interval:
    """Mean of ``values`` (N,) and its percentile interval over ``resamples`` resamples of the N values.

    N = 1 gives no interval (``low``/``high`` None) and draws nothing from ``rng``.
    """
    _check(resamples, confidence)
    d = np.asarray(values, dtype=np.float64).reshape(-1)
    if d.size == 0:
        raise ValueError("bootstrap: no values")
    if d.size == 1:
        return Interval(float(d[0]), None, None, 1)
    idx = rng.integers(0, d.size, size=(resamples, d.size))  # (R, N)
    low, high = _percentiles(d[idx].mean(axis=1), confidence)
    return Interval(float(d.mean()), low, high, int(d.size))


def hierarchical_bootstrap_mean(groups: Sequence[Sequence[float] | np.ndarray], rng: np.random.Generator, *,
                                resamples: int = 10_000, confidence: float = 0.95) -> Interval:
    """Mean of the group means and its two-stage interval: groups resampled, then values within.

    ``groups``: P arrays (n_p,), one per prompt. One group of one value gives no interval.
    Memory and time are O(resamples x total values): a drawn group's resampled mean is drawn
    only as often as the group is drawn, and summed per resample with ``bincount``.
    """
    _check(resamples, confidence)
    arrays = [np.asarray(g, dtype=np.float64).reshape(-1) for g in groups]
    if not arrays or any(a.size == 0 for a in arrays):
        raise ValueError("hierarchical bootstrap: every group needs at least one value")
    mean = float(np.mean([a.mean() for a in arrays]))
    n = sum(a.size for a in arrays)
    if len(arrays) == 1 and arrays[0].size == 1:
        return Interval(mean, None, None, n)
    n_groups = len(arrays)
    picks = rng.integers(0, n_groups, size=(resamples, n_groups))  # (R, P) which prompt fills each slot
    counts = _slot_counts(picks, n_groups)  # (R, P) times prompt p was drawn in resample r
    total = np.zeros(resamples)
    for p, a in enumerate(arrays):
        draws = int(counts[:, p].sum())
        if draws == 0:
            continue
        means = a[rng.integers(0, a.size, size=(draws, a.size))].mean(axis=1)  # one seed resample per draw
        owner = np.repeat(np.arange(resamples), counts[:, p])  # the resample each draw belongs to
        total += np.bincount(owner, weights=means, minlength=resamples)
    low, high = _percentiles(total / n_groups, confidence)
    return Interval(mean, low, high, n)


def _slot_counts(picks: np.ndarray, n_groups: int) -> np.ndarray:
    """(R, P) draws -> (R, P) counts: how often each group was drawn in each resample."""
    r = picks.shape[0]
    flat = (np.arange(r)[:, None] * n_groups + picks).reshape(-1)
    return np.bincount(flat, minlength=r * n_groups).reshape(r, n_groups)
