"""Usage signal v1: a row of ``usage_signals`` and the source of a tier-2 alert.

The record only; the detectors that raise signals live in ``detectors``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum

from schemas.alert import Alert, AlertTier, Severity, alert_id


class SignalType(StrEnum):
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
    signal_type: SignalType
    usage_count: float
    baseline_count: float
    signal_date: date
    feature_version: str
    severity: Severity

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
    if signal.signal_type is SignalType.INACTIVITY:
        return f"no activity for {signal.baseline_count:g} days"
    return (
        f"{signal.signal_type}: {signal.usage_count:g} in the last 7 days "
        f"vs a baseline of {signal.baseline_count:.1f}"
    )
