"""Pure maths of the benchmarks: quantiles of Prometheus histograms, medians of repeats.

Nothing here reads a clock, a file or a socket, so every function is unit-tested
with hand-computed values (tests/unit/benchmarks/test_quantiles.py).
"""

from __future__ import annotations

import math
import statistics

from benchmarks.harness.figures import Figures

Buckets = list[tuple[float, float]]
"""A cumulative histogram: (upper bound ``le``, observations <= ``le``), sorted by ``le``."""


def bucket_quantile(q: float, buckets: Buckets) -> float | None:
    """Quantile ``q`` of a cumulative histogram, linear within the bucket it falls in.

    The same estimate as PromQL's ``histogram_quantile``; None when nothing was observed.
    """
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    lower, below = 0.0, 0.0
    for le, count in buckets:
        if count >= rank:
            if math.isinf(le):
                return lower  # past the last finite bound: that bound is all we know
            if count == below:
                return le
            return lower + (le - lower) * (rank - below) / (count - below)
        lower, below = le, count
    return lower


def share_at_most(bound: float, buckets: Buckets) -> float | None:
    """Exact share of observations <= ``bound`` when ``bound`` is a bucket boundary.

    None when nothing was observed or ``bound`` is not a boundary (then only an
    interpolated estimate would exist, and a target check must not rest on one).
    """
    total = buckets[-1][1] if buckets else 0.0
    if total <= 0:
        return None
    for le, count in buckets:
        if math.isclose(le, bound):
            return count / total
    return None


def largest_at_most(buckets: Buckets) -> float | None:
    """The smallest bucket bound every observation is at or below (an upper bound on the
    largest one; ``inf`` if some passed the last finite bound); None when nothing was
    observed."""
    total = buckets[-1][1] if buckets else 0.0
    if total <= 0:
        return None
    return next(le for le, count in buckets if count >= total)


def bucket_delta(newer: Buckets, older: Buckets) -> Buckets:
    """The observations made between two scrapes of the same histogram."""
    before = dict(older)
    return [(le, count - before.get(le, 0.0)) for le, count in newer]


def median_of(runs: list[Figures]) -> Figures:
    """Median of every numeric figure, all() of the checks, the first run's value otherwise.

    A dict of numbers (peak RSS per process, CPU share per role) gets a median per key.
    """
    merged: Figures = {}
    for key, value in runs[0].items():
        if isinstance(value, bool):  # a check: it holds only if it held in every run
            merged[key] = all(r.get(key) for r in runs)
        elif isinstance(value, int | float):
            numbers = [r[key] for r in runs if isinstance(r.get(key), int | float)]
            merged[key] = statistics.median(numbers) if numbers else None
        elif isinstance(value, dict) and value and all(
            isinstance(v, int | float) and not isinstance(v, bool) for v in value.values()
        ):
            merged[key] = median_of([r.get(key) or {} for r in runs if r.get(key)])
        else:
            merged[key] = value
    return merged


def median_of_numbers(runs: list[Figures]) -> Figures:
    """Median of every top-level number; anything else (flags, dicts) as in the first run.

    The flatter rule of the in-process dataflow benchmark's "median" column, which
    shows top-level figures only.
    """
    merged: Figures = {}
    for key, value in runs[0].items():
        values = [run.get(key) for run in runs]
        if isinstance(value, int | float) and not isinstance(value, bool):
            numbers = [v for v in values if isinstance(v, int | float)]
            merged[key] = statistics.median(numbers) if numbers else None
        else:
            merged[key] = value
    return merged


def ratio(a: float | None, b: float | None) -> float | None:
    """a / b, or None when either is unknown or b is zero."""
    return a / b if a is not None and b else None
