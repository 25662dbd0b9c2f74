"""Ranking and calibration metrics of a churn model, in numpy.

All three ranking metrics treat tied scores the way a score that cannot tell
rows apart deserves: ROC AUC uses average ranks (the Mann-Whitney statistic),
average precision steps once per distinct score (as scikit-learn does), and the
top-decile lift counts a tie group that straddles the cut in proportion to the
share of it that falls inside. Each returns ``nan`` when the labels hold a
single class, where the metric is undefined; :func:`evaluate` turns that into
``None`` so it can be written to JSON.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import numpy.typing as npt

ArrayLike = npt.ArrayLike


@dataclass(frozen=True, slots=True)
class Metrics:
    """How well a model ranks and calibrates on one split (``None``: undefined there)."""

    rows: int
    accounts: int
    positives: int
    base_rate: float | None
    roc_auc: float | None
    average_precision: float | None
    top_decile_lift: float | None
    brier: float | None
    log_loss: float | None

    def to_document(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "accounts": self.accounts,
            "positives": self.positives,
            "base_rate": self.base_rate,
            "roc_auc": self.roc_auc,
            "average_precision": self.average_precision,
            "top_decile_lift": self.top_decile_lift,
            "brier": self.brier,
            "log_loss": self.log_loss,
        }

    @classmethod
    def from_document(cls, document: dict[str, Any]) -> Metrics:
        return cls(**{f.name: document[f.name] for f in fields(cls)})


def _prepare(labels: ArrayLike, scores: ArrayLike) -> tuple[npt.NDArray[np.bool_],
                                                            npt.NDArray[np.float64]]:
    y = np.asarray(labels).ravel()
    s = np.asarray(scores, dtype=np.float64).ravel()
    if y.shape != s.shape:
        msg = f"labels ({y.shape[0]}) and scores ({s.shape[0]}) differ in length"
        raise ValueError(msg)
    if np.isnan(s).any():
        msg = "scores contain NaN"
        raise ValueError(msg)
    return y.astype(bool), s


def _tie_groups(sorted_scores: npt.NDArray[np.float64]) -> tuple[npt.NDArray[np.intp],
                                                                 npt.NDArray[np.intp]]:
    """Start and end (exclusive) of each run of equal values in a sorted array."""
    boundaries = np.flatnonzero(np.diff(sorted_scores)) + 1
    starts = np.concatenate(([0], boundaries)).astype(np.intp)
    ends = np.concatenate((boundaries, [sorted_scores.size])).astype(np.intp)
    return starts, ends


def average_ranks(values: ArrayLike) -> npt.NDArray[np.float64]:
    """1-based ranks, ties given the mean of the ranks they span."""
    v = np.asarray(values, dtype=np.float64).ravel()
    order = np.argsort(v, kind="mergesort")
    starts, ends = _tie_groups(v[order])
    ranks = np.empty(v.size, dtype=np.float64)
    ranks[order] = np.repeat((starts + 1 + ends) / 2.0, ends - starts)
    return ranks


def roc_auc(labels: ArrayLike, scores: ArrayLike) -> float:
    """Probability that a random positive outranks a random negative (ties count half)."""
    y, s = _prepare(labels, scores)
    positives = int(y.sum())
    negatives = y.size - positives
    if positives == 0 or negatives == 0:
        return math.nan
    rank_sum = float(average_ranks(s)[y].sum())
    return (rank_sum - positives * (positives + 1) / 2.0) / (positives * negatives)


def average_precision(labels: ArrayLike, scores: ArrayLike) -> float:
    """Sum over distinct score thresholds, highest first, of precision x recall gained."""
    y, s = _prepare(labels, scores)
    positives = int(y.sum())
    if positives == 0:
        return math.nan
    order = np.argsort(-s, kind="mergesort")
    _, ends = _tie_groups(s[order])
    true_positives = np.cumsum(y[order])[ends - 1]
    precision = true_positives / ends
    recall = true_positives / positives
    return float(np.sum(np.diff(recall, prepend=0.0) * precision))


def top_fraction_lift(labels: ArrayLike, scores: ArrayLike, fraction: float) -> float:
    """Positive rate among the top ``fraction`` of rows by score, over the base rate.

    The top holds ``ceil(fraction * n)`` rows; a tie group cut by that line
    contributes its positives in proportion to the part of it inside.
    """
    if not 0.0 < fraction <= 1.0:
        msg = f"fraction must be in (0, 1], got {fraction}"
        raise ValueError(msg)
    y, s = _prepare(labels, scores)
    positives = int(y.sum())
    if positives == 0 or y.size == 0:
        return math.nan
    top = math.ceil(fraction * y.size)
    order = np.argsort(-s, kind="mergesort")
    starts, ends = _tie_groups(s[order])
    group_positives = np.add.reduceat(y[order].astype(np.float64), starts)
    inside = float(group_positives[ends <= top].sum())
    cut = np.flatnonzero((starts < top) & (ends > top))
    if cut.size:
        g = int(cut[0])
        inside += float(group_positives[g]) * (top - starts[g]) / (ends[g] - starts[g])
    # float(): a cut tie group makes it a numpy float, which JSON writers refuse
    return float((inside / top) / (positives / y.size))


def top_decile_lift(labels: ArrayLike, scores: ArrayLike) -> float:
    """:func:`top_fraction_lift` of the top 10 %: how much richer in churners the
    accounts an account team would call first are than a random pick."""
    return top_fraction_lift(labels, scores, 0.1)


def brier_score(labels: ArrayLike, probabilities: ArrayLike) -> float:
    y, p = _prepare(labels, probabilities)
    if y.size == 0:
        return math.nan
    return float(np.mean((p - y) ** 2))


def log_loss(labels: ArrayLike, probabilities: ArrayLike, eps: float = 1e-12) -> float:
    y, p = _prepare(labels, probabilities)
    if y.size == 0:
        return math.nan
    p = np.clip(p, eps, 1.0 - eps)
    return float(-np.mean(np.where(y, np.log(p), np.log1p(-p))))


def _defined(value: float) -> float | None:
    return None if math.isnan(value) else value


def evaluate(labels: ArrayLike, probabilities: ArrayLike, *, accounts: int) -> Metrics:
    """Every metric of one split; ``probabilities`` are calibrated risks in [0, 1]."""
    y, p = _prepare(labels, probabilities)
    positives = int(y.sum())
    return Metrics(
        rows=int(y.size),
        accounts=accounts,
        positives=positives,
        base_rate=positives / y.size if y.size else None,
        roc_auc=_defined(roc_auc(y, p)),
        average_precision=_defined(average_precision(y, p)),
        top_decile_lift=_defined(top_decile_lift(y, p)),
        brier=_defined(brier_score(y, p)),
        log_loss=_defined(log_loss(y, p)),
    )
