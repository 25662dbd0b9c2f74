"""An experiment's results per arm: save and churn rates with 95 % confidence intervals.

Pure (counts in, figures out): the counts come from PostgreSQL
(``api.winback.experiment_counts``), and ``churnwatch experiment report`` and
``GET /v1/experiments/{key}`` print or serve what :func:`build_report` makes of them.

Per arm (variant, ``holdout`` included), over the accounts assigned to it:

- ``save rate`` = saved / assigned, ``churn rate`` = churned / assigned (every
  assigned account in the denominator, as assigned: an intention-to-treat
  comparison, so the holdout, which no workflow contacts, compares fairly);
- each with its Wilson score interval (95 %), which stays inside [0, 1] and is
  honest for small counts and rates near 0 or 1, unlike the normal approximation;
- the difference from the control arm (arm minus control) with Newcombe's hybrid
  score interval (his method 10, built from the two Wilson intervals).

Newcombe, R. G. (1998). Two-sided confidence intervals for the single proportion
(Wilson) and Interval estimation for the difference between independent
proportions (method 10). Statistics in Medicine 17, 857-872 and 873-890.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from schemas.event import format_time

# The two-sided 95 % quantile of the standard normal distribution.
Z_95 = 1.959963984540054
CONTROL_ARM = "holdout"


@dataclass(frozen=True, slots=True)
class Interval:
    """An estimate and its confidence interval."""

    value: float
    low: float
    high: float

    def to_document(self) -> dict[str, float]:
        return {"value": self.value, "low": self.low, "high": self.high}


def wilson(successes: int, trials: int, z: float = Z_95) -> Interval | None:
    """The proportion ``successes / trials`` and its Wilson score interval; None for no
    trials (no rate to estimate)."""
    if trials < 0 or not 0 <= successes <= trials:
        msg = f"need 0 <= successes <= trials, got {successes} of {trials}"
        raise ValueError(msg)
    if trials == 0:
        return None
    p = successes / trials
    z2 = z * z
    denominator = 1 + z2 / trials
    centre = (p + z2 / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z2 / (4 * trials * trials)) / denominator
    # At 0 or n successes a bound is exactly 0 or 1: rounding must not move it out.
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == trials else min(1.0, centre + half)
    return Interval(p, low, high)


def difference(arm: Interval | None, control: Interval | None) -> Interval | None:
    """``arm - control`` with Newcombe's hybrid score interval (method 10) from the two
    Wilson intervals; None when either has no trials."""
    if arm is None or control is None:
        return None
    d = arm.value - control.value
    low = d - math.sqrt((arm.value - arm.low) ** 2 + (control.high - control.value) ** 2)
    high = d + math.sqrt((arm.high - arm.value) ** 2 + (control.value - control.low) ** 2)
    return Interval(d, max(-1.0, low), min(1.0, high))


@dataclass(frozen=True, slots=True)
class ArmCounts:
    """One arm's accounts, as counted in PostgreSQL."""

    variant: str
    assigned: int
    saved: int
    lost: int
    churned: int


@dataclass(frozen=True, slots=True)
class ArmReport:
    counts: ArmCounts
    is_control: bool
    save_rate: Interval | None
    churn_rate: Interval | None
    save_rate_vs_control: Interval | None
    churn_rate_vs_control: Interval | None

    def to_document(self) -> dict[str, Any]:
        def doc(interval: Interval | None) -> dict[str, float] | None:
            return None if interval is None else interval.to_document()

        counts = self.counts
        return {
            "variant": counts.variant,
            "control": self.is_control,
            "assigned": counts.assigned,
            "saved": counts.saved,
            "lost": counts.lost,
            "churned": counts.churned,
            "save_rate": doc(self.save_rate),
            "churn_rate": doc(self.churn_rate),
            "save_rate_vs_control": doc(self.save_rate_vs_control),
            "churn_rate_vs_control": doc(self.churn_rate_vs_control),
        }


@dataclass(frozen=True, slots=True)
class ExperimentReport:
    experiment_key: str
    tenant_id: str | None  # None: every tenant
    since: datetime | None
    until: datetime
    control: str | None  # None: no arm of that name was assigned
    arms: tuple[ArmReport, ...]
    confidence: float = 0.95

    def to_document(self) -> dict[str, Any]:
        return {
            "experiment_key": self.experiment_key,
            "tenant_id": self.tenant_id,
            "since": None if self.since is None else format_time(self.since),
            "until": format_time(self.until),
            "control": self.control,
            "confidence": self.confidence,
            "arms": [arm.to_document() for arm in self.arms],
        }


def build_report(
    experiment_key: str,
    counts: Iterable[ArmCounts],
    *,
    until: datetime,
    since: datetime | None = None,
    tenant_id: str | None = None,
    control: str = CONTROL_ARM,
) -> ExperimentReport:
    """The figures of every arm; the control arm first, then the others by name."""
    arms = sorted(counts, key=lambda c: (c.variant != control, c.variant))
    by_variant = {arm.variant: arm for arm in arms}
    control_counts = by_variant.get(control)
    control_save = control_churn = None
    if control_counts is not None:
        control_save = wilson(control_counts.saved, control_counts.assigned)
        control_churn = wilson(control_counts.churned, control_counts.assigned)
    reports = []
    for arm in arms:
        save = wilson(arm.saved, arm.assigned)
        churn = wilson(arm.churned, arm.assigned)
        is_control = arm.variant == control
        reports.append(ArmReport(
            arm, is_control, save, churn,
            None if is_control else difference(save, control_save),
            None if is_control else difference(churn, control_churn),
        ))
    return ExperimentReport(
        experiment_key, tenant_id, since, until,
        control if control_counts is not None else None, tuple(reports),
    )


def _percent(interval: Interval | None, signed: bool = False) -> str:
    if interval is None:
        return "-"
    sign = "+" if signed else ""
    return (f"{interval.value * 100:{sign}.1f}% "
            f"[{interval.low * 100:{sign}.1f}, {interval.high * 100:{sign}.1f}]")


def format_text(report: ExperimentReport) -> str:
    """The report as a table for a terminal."""
    scope = f"tenant {report.tenant_id}" if report.tenant_id else "every tenant"
    since = format_time(report.since) if report.since else "the start"
    lines = [
        f"experiment {report.experiment_key} ({scope}), assigned from {since} until "
        f"{format_time(report.until)}",
        f"control arm: {report.control or '(none assigned)'}; rates with 95% Wilson "
        "intervals; vs control: arm minus control, Newcombe interval",
        "",
    ]
    header = ("arm", "assigned", "saved", "lost", "churned", "save rate", "vs control",
              "churn rate", "vs control")
    rows: list[Sequence[str]] = [header]
    for arm in report.arms:
        counts = arm.counts
        rows.append((
            counts.variant + (" (control)" if arm.is_control else ""),
            str(counts.assigned), str(counts.saved), str(counts.lost), str(counts.churned),
            _percent(arm.save_rate), _percent(arm.save_rate_vs_control, signed=True),
            _percent(arm.churn_rate), _percent(arm.churn_rate_vs_control, signed=True),
        ))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    for row in rows:
        lines.append("  ".join(
            cell.ljust(width) if i == 0 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ).rstrip())
    if len(rows) == 1:
        lines.append("(no account assigned in this window)")
    return "\n".join(lines)
