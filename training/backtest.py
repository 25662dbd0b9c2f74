"""The analyst's backtest behind ``churnwatch evaluate``: a model against a history.

1. The history is replayed through the stream's per-account processing
   (:func:`training.dataset.observe_history`, the same code the stream and
   training run), giving each account's features at the end of every day.
2. Observation dates: every ``every_days`` days from ``start`` (default: the
   history's first whole day plus a week). At each, each live account's latest
   score is the model's risk on its features as of that moment (what a score
   computed then gives; the model, not the rule blend), tiered by ``high_at``.
3. Labels: churned (``subscription.cancelled`` or the lifecycle's cancellation)
   within ``horizon_days`` after the date; rows at or after the cancellation and
   rows whose horizon runs past the history are dropped
   (:func:`training.dataset.label_observations`).
4. Metrics over those (account, date) rows: ROC AUC, average precision, top-decile
   lift, base rate; for the high tier, alert precision (share of high-tier
   account-dates followed by a cancellation within the horizon), recall (share of
   the accounts that churn, among those with a labelled row, that had a high-tier
   score within the horizon before cancelling) and the median lead time (days from
   an account's first such high-tier score to its cancellation).

The baseline is the textbook model: logistic regression on ``log1p`` of each event
type's count over the 28 days before the date, plus tenure (days since the
account's first event), computed from the events themselves, not from the
feature definitions. Two ways to fit it, both graded on the very same rows as the
model:

- on the evaluated history, by 2-fold cross-fitting over accounts
  (:func:`cross_fitted_baseline`): the accounts are split in two halves by a hash;
  the baseline fitted on one half scores the other, so no row is scored by a fit
  that saw its account. This favours the baseline, if anything: it is fitted on
  the period and population it is graded on, the model on another history.
- on another history (:func:`fitted_baseline`), the model's training history:
  the model's own footing, rows observed as in the evaluation.
"""

from __future__ import annotations

import bisect
import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt

from accounts.backfill import valid_events
from accounts.config import AccountConfig
from schemas.clock import DAY
from schemas.event import EventLimits, subject_key
from scoring.evaluation import Metrics, evaluate
from training.dataset import Dataset, label_observations, observe_history
from training.train import fit_logistic, split_of

BASELINE_WINDOW_DAYS = 28


@dataclass(frozen=True, slots=True)
class TierOutcome:
    """How the high tier fared: alert precision, recall, median lead time in days."""

    high_at: float
    alerts: int  # high-tier account-dates
    precision: float | None
    churned_accounts: int
    caught_accounts: int
    recall: float | None
    median_lead_days: float | None

    def to_document(self) -> dict[str, Any]:
        return {"high_at": self.high_at, "alerts": self.alerts, "precision": self.precision,
                "churned_accounts": self.churned_accounts,
                "caught_accounts": self.caught_accounts, "recall": self.recall,
                "median_lead_days": self.median_lead_days}


@dataclass(frozen=True, slots=True)
class Backtest:
    """One model's (or the baseline's) grades on the observation rows."""

    name: str
    metrics: Metrics
    high_tier: TierOutcome

    def to_document(self) -> dict[str, Any]:
        return {"name": self.name, "metrics": self.metrics.to_document(),
                "high_tier": self.high_tier.to_document()}


@dataclass(frozen=True, slots=True)
class BacktestReport:
    source: str
    horizon_days: int
    every_days: int
    first_date: datetime | None
    last_date: datetime | None
    results: tuple[Backtest, ...]
    counts: dict[str, int] = field(default_factory=dict)

    def to_document(self) -> dict[str, Any]:
        return {
            "source": self.source, "horizon_days": self.horizon_days,
            "every_days": self.every_days,
            "first_date": None if self.first_date is None else self.first_date.isoformat(),
            "last_date": None if self.last_date is None else self.last_date.isoformat(),
            "results": [r.to_document() for r in self.results], "counts": self.counts,
        }


def tier_outcome(
    accounts: Sequence[str],
    observed_at: npt.NDArray[np.float64],
    labels: npt.NDArray[np.int8],
    risks: npt.ArrayLike,
    cancellations: dict[str, float],
    high_at: float,
) -> TierOutcome:
    """The high tier's alert precision, recall and median lead time (module docstring)."""
    r = np.asarray(risks, dtype=np.float64)
    high = r >= high_at
    y = labels.astype(bool)
    alerts = int(high.sum())
    precision = float(y[high].mean()) if alerts else None
    churned = sorted({a for a, label in zip(accounts, y, strict=True) if label})
    first_high: dict[str, float] = {}
    for account, at, is_high, label in zip(accounts, observed_at.tolist(), high, y,
                                           strict=True):
        if is_high and label and at < first_high.get(account, math.inf):
            first_high[account] = at
    leads = [(cancellations[a] - first_high[a]) / DAY for a in churned if a in first_high]
    return TierOutcome(
        high_at=high_at,
        alerts=alerts,
        precision=precision,
        churned_accounts=len(churned),
        caught_accounts=len(leads),
        recall=len(leads) / len(churned) if churned else None,
        median_lead_days=float(np.median(leads)) if leads else None,
    )


def grade(name: str, dataset: Dataset, risks: npt.ArrayLike, cancellations: dict[str, float],
          high_at: float) -> Backtest:
    """Every metric of ``risks`` on the rows of ``dataset``."""
    metrics = evaluate(dataset.y, risks, accounts=len(set(dataset.accounts)))
    outcome = tier_outcome(dataset.accounts, dataset.observed_at, dataset.y, risks,
                           cancellations, high_at)
    return Backtest(name, metrics, outcome)


def observation_rows(
    messages: Iterable[bytes],
    config: AccountConfig,
    limits: EventLimits,
    *,
    horizon_days: int,
    every_days: int = 7,
    start: datetime | None = None,
    now: datetime | None = None,
    source: str = "<messages>",
) -> tuple[Dataset, dict[str, float]]:
    """The labelled (account, date) rows at the weekly observation dates, and each
    account's cancellation time (epoch s)."""
    observations = observe_history(messages, config, limits, every_days=1, min_history_days=1,
                                   now=now, source=source)
    labelled = label_observations(observations, horizon_days)
    cancellations = dict(observations.cancellations)
    if labelled.rows == 0:
        return labelled, cancellations
    first = (start.timestamp() if start is not None
             else math.floor(observations.history_start / DAY) * DAY + 8 * DAY)
    offset = (labelled.observed_at - first) / DAY
    on_grid = (offset >= 0) & (np.mod(np.round(offset), every_days) == 0)
    return labelled.select(on_grid), cancellations


def _event_log(
    messages: Iterable[bytes], limits: EventLimits, now: datetime
) -> tuple[dict[str, dict[str, list[float]]], dict[str, float]]:
    """Per account: each event type's sorted event times, and the first event time."""
    counts: Any = defaultdict(int)
    times: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    first: dict[str, float] = {}
    seen: set[tuple[str, str]] = set()
    for event in valid_events(messages, now, limits, counts):
        key = subject_key(event.tenant_id, event.account_id)
        if (key, event.event_id) in seen:
            continue
        seen.add((key, event.event_id))
        ts = event.event_time.timestamp()
        times[key][event.event_type].append(ts)
        first[key] = min(ts, first.get(key, math.inf))
    for per_type in times.values():
        for values in per_type.values():
            values.sort()
    return times, first


def baseline_features(
    dataset: Dataset, messages: Iterable[bytes], limits: EventLimits, now: datetime,
    types: Sequence[str] | None = None,
) -> tuple[npt.NDArray[np.float64], tuple[str, ...]]:
    """The textbook design: log1p of each event type's count in the 28 days before
    each row's date, and tenure in days (columns: ``types``, default the history's
    event types sorted, then tenure)."""
    times, first = _event_log(messages, limits, now)
    if types is None:
        types = sorted({t for per_type in times.values() for t in per_type})
    types = tuple(types)
    x = np.zeros((dataset.rows, len(types) + 1))
    window = BASELINE_WINDOW_DAYS * DAY
    for i, (account, at) in enumerate(zip(dataset.accounts, dataset.observed_at.tolist(),
                                          strict=True)):
        per_type = times.get(account, {})
        for j, event_type in enumerate(types):
            values = per_type.get(event_type)
            if values:
                x[i, j] = math.log1p(bisect.bisect_left(values, at)
                                     - bisect.bisect_left(values, at - window))
        x[i, -1] = max(at - first.get(account, at), 0.0) / DAY
    return x, (*types, "tenure_days")


def cross_fitted_baseline(
    dataset: Dataset, design: npt.NDArray[np.float64], seed: int = 0, l2: float = 1e-3
) -> npt.NDArray[np.float64]:
    """Each row's baseline risk from a logistic regression fitted on the other half of
    the accounts (2 folds by a hash of ``seed`` and the account key)."""
    fold = np.array([split_of(a, seed, 0.0, 0.5) == 2 for a in dataset.accounts])
    out = np.full(dataset.rows, float(dataset.y.mean()) if dataset.rows else 0.0)
    for held in (True, False):
        fit_rows = fold != held
        y = dataset.y[fit_rows].astype(np.float64)
        if not fit_rows.any() or y.min() == y.max():
            continue  # a single class: the base rate stands
        mean = design[fit_rows].mean(axis=0)
        std = design[fit_rows].std(axis=0)
        std = np.where(std > 1e-12, std, 1.0)
        weights, bias, _ = fit_logistic((design[fit_rows] - mean) / std, y, l2=l2)
        z = ((design[~fit_rows] - mean) / std) @ weights + bias
        out[~fit_rows] = np.exp(-np.logaddexp(0.0, -z))
    return out


def fitted_baseline(
    train_rows: Dataset, train_design: npt.NDArray[np.float64],
    design: npt.NDArray[np.float64], l2: float = 1e-3,
) -> npt.NDArray[np.float64]:
    """The baseline fitted on another history's rows (``train_rows``, e.g. the one the
    model was trained on), scoring ``design``: the model's own footing."""
    y = train_rows.y.astype(np.float64)
    if train_rows.rows == 0 or y.min() == y.max():
        msg = "the baseline's training history needs both churned and retained rows"
        raise ValueError(msg)
    mean = train_design.mean(axis=0)
    std = train_design.std(axis=0)
    std = np.where(std > 1e-12, std, 1.0)
    weights, bias, _ = fit_logistic((train_design - mean) / std, y, l2=l2)
    z = ((design - mean) / std) @ weights + bias
    return np.exp(-np.logaddexp(0.0, -z))


def date_of(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)
