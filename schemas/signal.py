"""Usage signal v1: a row of ``usage_signals`` and the source of a tier-2 alert.

The record only; the detectors that raise signals live in ``detectors``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum

from schemas.alert import Alert, AlertTier, Severity, alert_id


class SignalType(StrEnum):
    """The shipped signals' names. A signal's name is any name the definitions file
    declares (``UsageSignal.signal_type`` is a plain string); these are the defaults."""

    LOGIN_DROP = "login_drop"
    SEAT_DROP = "seat_drop"
    FEATURE_DROP = "feature_drop"
    INACTIVITY = "inactivity"
    RENEWAL_AT_RISK = "renewal_at_risk"


@dataclass(frozen=True, slots=True)
class UsageSignal:
    """A usage signal: a row of ``usage_signals`` and the source of a tier-2 alert."""

    signal_id: str
    tenant_id: str
    account_id: str
    signal_type: str  # the declared signal's name
    usage_count: float
    baseline_count: float
    signal_date: date
    feature_version: str
    severity: Severity
    # The alert's reason, from the signal's declared template; not a column of
    # usage_signals (see to_document).
    reason: str = field(default="", compare=False)

    def to_document(self) -> dict[str, object]:
        """The ``usage_signals`` row: every field but the alert's reason."""
        return {
            "signal_id": self.signal_id,
            "tenant_id": self.tenant_id,
            "account_id": self.account_id,
            "signal_type": str(self.signal_type),
            "usage_count": self.usage_count,
            "baseline_count": self.baseline_count,
            "signal_date": self.signal_date.isoformat(),
            "feature_version": self.feature_version,
            "severity": str(self.severity),
        }

    def to_alert(self, ingested_at: float = 0.0) -> Alert:
        """The tier-2 alert; ``ingested_at``: when the input that revealed it arrived."""
        trigger = f"signal:{self.signal_type}:{self.signal_date.isoformat()}"
        return Alert(
            alert_id=alert_id(self.tenant_id, self.account_id, str(self.signal_type), trigger),
            tenant_id=self.tenant_id,
            account_id=self.account_id,
            tier=AlertTier.USAGE_SIGNAL,
            rule=str(self.signal_type),
            severity=self.severity,
            trigger_event_id=trigger,
            trigger_event_type="usage_signal",
            event_time=_end_of(self.signal_date),
            reasons=(_reason(self),),
            ingested_at=ingested_at,
        )


def _end_of(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=UTC) + timedelta(days=1)


def _reason(signal: UsageSignal) -> str:
    if signal.reason:
        return signal.reason
    if signal.signal_type == SignalType.INACTIVITY:
        return f"no activity for {signal.baseline_count:g} days"
    return (
        f"{signal.signal_type}: {signal.usage_count:g} in the last 7 days "
        f"vs a baseline of {signal.baseline_count:.1f}"
    )
