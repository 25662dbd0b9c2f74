"""A batch's top reasons, picked row by row in plain loops (compiled: churnwatch.native).

A shard scores a few accounts at a time (about 10 to 35 requests per model call in
the benchmarks' shapes). For so few rows, numpy's sort, gather and comparison, each
a dispatch through code and tables the rest of the batch has pushed out of the CPU's
caches, cost more than the choice itself: 46 us per call in the shard benchmark,
against 16 us for the same calls timed alone, and 139 us with the caches emptied
first. Picking the up to ``k`` largest positive contributions of 10 to 30 values is a
few comparisons per value, in a compiled loop over Python floats.

The rule is :meth:`scoring.model.RiskModel.reasons`'s: positive contributions only
(zero, negative and NaN are no reason), largest first, equal ones in definition
order.
"""

from __future__ import annotations


def top_indexes(row: list[float], k: int) -> list[int]:
    """The indexes of the up to ``k`` largest positive values of ``row``, largest
    first; equal values keep their order in ``row``."""
    values: list[float] = []
    indexes: list[int] = []
    if k <= 0:
        return indexes
    for index, value in enumerate(row):
        if not value > 0.0:  # NaN too
            continue
        if len(values) == k and value <= values[k - 1]:
            continue  # not above the k-th: an equal one came first
        position = len(values)
        while position and values[position - 1] < value:
            position -= 1
        values.insert(position, value)
        indexes.insert(position, index)
        if len(values) > k:
            values.pop()
            indexes.pop()
    return indexes


def top_reasons(rows: list[list[float]], k: int, texts: tuple[str, ...]) -> list[tuple[str, ...]]:
    """Per row of contributions, the texts of its :func:`top_indexes`."""
    return [tuple([texts[i] for i in top_indexes(row, k)]) for row in rows]


def top_reasons_by_side(
    rows: list[list[float]],
    k: int,
    features: list[list[float]],
    means: list[float],
    low: tuple[str, ...],
    high: tuple[str, ...],
) -> list[tuple[str, ...]]:
    """Per row of contributions, the texts of its :func:`top_indexes`, each ``high``
    when the scored row's feature is above its mean, else ``low`` (a tree's credit to
    a feature has no fixed sign)."""
    out: list[tuple[str, ...]] = []
    for row, scored in zip(rows, features, strict=True):
        out.append(tuple([
            high[i] if scored[i] > means[i] else low[i] for i in top_indexes(row, k)
        ]))
    return out
