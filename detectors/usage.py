"""Usage detectors: a feature vector in, usage signals out. Pure, no I/O.

Each detector looks at one account's features as of the end of a day and says
whether its condition holds ("firing") and whether the account has recovered.
:class:`SignalEpisodes` turns that into at most one signal per episode: a
signal fires when its condition first holds, and re-arms only once the account
has recovered, so an account hovering around a threshold does not flap.

Inactivity is evaluated by :class:`~detectors.inactivity.InactivityTracker`
when the watermark passes, since a silent account sends no event to react to.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from typing import Any

from schemas.alert import Severity, deterministic_id
from schemas.signal import SignalType, UsageSignal


@dataclass(frozen=True, slots=True)
class DropRule:
    """Usage in the current window fell below a share of its baseline.

    ``baseline_scale`` converts the baseline feature to the current window's
    scale: 0.25 turns a 28-day count into a weekly one; 1.0 for distinct
    counts, which do not add up over time.
    """

    signal_type: SignalType
    current: str
    baseline: str
    baseline_scale: float
    min_baseline: float  # below this (scaled) baseline the account is too small to judge
    fire_below: float  # fire when current <= fire_below * baseline
    recover_above: float  # re-arm when current >= recover_above * baseline
    severity: Severity = Severity.MEDIUM


@dataclass(frozen=True, slots=True)
class RenewalRule:
    """Renewal is close and usage is below its baseline."""

    days_to_renewal: str = "days_to_renewal"
    within_days: float = 30.0
    current: str = "logins_7d"
    baseline: str = "logins_baseline_28d"
    baseline_scale: float = 0.25
    below: float = 0.35
    min_baseline: float = 5.0
    severity: Severity = Severity.HIGH


@dataclass(frozen=True, slots=True)
class InactivityRule:
    """No activity for ``days`` days (the feature holds days since the last activity)."""

    days: float = 7.0
    feature: str = "days_since_last_activity"
    severity: Severity = Severity.HIGH


# Defaults chosen on simulated histories (seeds 7, 11, 23; 300 accounts, 50 days) so
# that ordinary week-to-week noise of steady accounts stays below them: the 0.1%
# quantile of a steady account's weekly login ratio is about 0.45.
DEFAULT_DROP_RULES: tuple[DropRule, ...] = (
    DropRule(SignalType.LOGIN_DROP, "logins_7d", "logins_baseline_28d", 0.25, 5.0, 0.35, 0.7),
    DropRule(
        SignalType.SEAT_DROP, "active_users_7d", "active_users_baseline_28d", 1.0, 6.0, 0.3, 0.6
    ),
    DropRule(
        SignalType.FEATURE_DROP,
        "key_feature_events_7d",
        "key_feature_events_baseline_28d",
        0.25,
        20.0,
        0.1,
        0.5,
    ),
)


@dataclass(frozen=True, slots=True)
class UsageRules:
    """All usage-detector thresholds (from settings)."""

    drops: tuple[DropRule, ...] = DEFAULT_DROP_RULES
    renewal: RenewalRule = field(default_factory=RenewalRule)
    inactivity: InactivityRule = field(default_factory=InactivityRule)
    # Consecutive day-close evaluations a condition must hold before it fires.
    persist_days: int = 2

    def required_features(self) -> set[str]:
        names = {r.current for r in self.drops} | {r.baseline for r in self.drops}
        names |= {self.renewal.days_to_renewal, self.renewal.current, self.renewal.baseline}
        names.add(self.inactivity.feature)
        return names


@dataclass(frozen=True, slots=True)
class Observation:
    """One detector's verdict on one feature vector."""

    signal_type: SignalType
    firing: bool
    recovered: bool
    usage: float
    baseline: float
    severity: Severity


def observe_drop(rule: DropRule, features: Mapping[str, float]) -> Observation:
    current = features[rule.current]
    baseline = features[rule.baseline] * rule.baseline_scale
    judged = baseline >= rule.min_baseline
    return Observation(
        rule.signal_type,
        firing=judged and _at_most(current, rule.fire_below * baseline),
        recovered=not judged or _at_most(rule.recover_above * baseline, current),
        usage=current,
        baseline=baseline,
        severity=rule.severity,
    )


def _at_most(value: float, limit: float) -> bool:
    """``value <= limit``, forgiving float rounding of the product (0.35 * 180)."""
    return value <= limit + 1e-9 * max(1.0, abs(limit))


def observe_renewal(rule: RenewalRule, features: Mapping[str, float]) -> Observation:
    days = features[rule.days_to_renewal]
    current = features[rule.current]
    baseline = features[rule.baseline] * rule.baseline_scale
    close = 0.0 <= days <= rule.within_days
    low = baseline >= rule.min_baseline and current < rule.below * baseline
    return Observation(
        SignalType.RENEWAL_AT_RISK,
        firing=close and low,
        recovered=not close or not low,
        usage=current,
        baseline=baseline,
        severity=rule.severity,
    )


def observe_all(rules: UsageRules, features: Mapping[str, float]) -> list[Observation]:
    """Every feature-based detector's verdict (inactivity is watermark-driven)."""
    observations = [observe_drop(rule, features) for rule in rules.drops]
    observations.append(observe_renewal(rules.renewal, features))
    return observations


def make_signal(
    tenant_id: str,
    account_id: str,
    observation: Observation,
    signal_date: date,
    feature_version: str,
) -> UsageSignal:
    return UsageSignal(
        signal_id=deterministic_id(
            "signal", "v1", tenant_id, account_id, str(observation.signal_type),
            signal_date.isoformat(),
        ),
        tenant_id=tenant_id,
        account_id=account_id,
        signal_type=observation.signal_type,
        usage_count=observation.usage,
        baseline_count=observation.baseline,
        signal_date=signal_date,
        feature_version=feature_version,
        severity=observation.severity,
    )


class Transition(StrEnum):
    NONE = "none"
    FIRED = "fired"
    RECOVERED = "recovered"


@dataclass(frozen=True, slots=True)
class EpisodesSnapshot:
    fired: frozenset[SignalType] = frozenset()
    streaks: tuple[tuple[SignalType, int], ...] = ()


class SignalEpisodes:
    """Which signals are armed for one account.

    A signal fires once its condition has held at ``persist`` consecutive
    evaluations (a one-day dip of a small account is noise, a slide is not),
    and re-arms only after an evaluation that says the account recovered.
    """

    __slots__ = ("fired", "persist", "streaks")

    def __init__(self, snapshot: EpisodesSnapshot | None = None, *, persist: int = 1) -> None:
        snapshot = snapshot or EpisodesSnapshot()
        self.fired: set[SignalType] = set(snapshot.fired)
        self.streaks: dict[SignalType, int] = dict(snapshot.streaks)
        self.persist = persist

    def update(self, observation: Observation) -> Transition:
        """FIRED if this observation starts an episode (a signal to emit), RECOVERED
        if it ends one (usage is back: workflows may exit early), else NONE."""
        kind = observation.signal_type
        streak = self.streaks.get(kind, 0) + 1 if observation.firing else 0
        if streak:
            self.streaks[kind] = streak
        else:
            self.streaks.pop(kind, None)
        if kind in self.fired:
            if observation.recovered and not observation.firing:
                self.fired.discard(kind)  # re-armed
                return Transition.RECOVERED
            return Transition.NONE
        if streak >= self.persist:
            self.fired.add(kind)
            return Transition.FIRED
        return Transition.NONE

    def raw(self) -> tuple[set[SignalType], dict[SignalType, int]]:
        """The live state, to be pickled at once (never kept: it changes)."""
        return self.fired, self.streaks

    def restore_raw(self, raw: tuple[set[SignalType], dict[SignalType, int]]) -> None:
        self.fired, self.streaks = raw

    def snapshot(self) -> EpisodesSnapshot:
        return EpisodesSnapshot(frozenset(self.fired), tuple(self.streaks.items()))


def parse_usage_rules(document: object, base: UsageRules | None = None) -> UsageRules:
    """Threshold overrides from JSON; raises ``ValueError`` naming the bad key.

    ``{"inactivity": {"days": 10}, "renewal_at_risk": {"within_days": 45},
    "login_drop": {"fire_below": 0.4, "min_baseline": 8}}`` changes only what
    it names; every other threshold keeps its default.
    """
    base = base or UsageRules()
    if not isinstance(document, dict):
        msg = "usage rules must be a JSON object keyed by signal type"
        raise ValueError(msg)
    drops = {str(rule.signal_type): rule for rule in base.drops}
    renewal, inactivity = base.renewal, base.inactivity
    for key, changes in document.items():
        if key == "persist_days":
            continue
        if not isinstance(changes, dict):
            msg = f"{key}: expected an object of thresholds"
            raise ValueError(msg)
        if key in drops:
            drops[key] = _with(drops[key], key, changes)
        elif key == SignalType.RENEWAL_AT_RISK:
            renewal = _with(renewal, key, changes)
        elif key == SignalType.INACTIVITY:
            inactivity = _with(inactivity, key, changes)
        else:
            msg = f"{key}: unknown signal type (known: {', '.join(s.value for s in SignalType)})"
            raise ValueError(msg)
    persist = document.get("persist_days", base.persist_days)
    if isinstance(persist, bool) or not isinstance(persist, int) or persist < 1:
        msg = "persist_days: must be a whole number >= 1"
        raise ValueError(msg)
    return UsageRules(tuple(drops.values()), renewal, inactivity, persist)


def _with(rule: Any, name: str, requested: dict[str, Any]) -> Any:
    allowed = {f.name for f in dataclasses.fields(rule)} - {"signal_type"}
    changes = dict(requested)  # never modify the caller's document
    for field_name, value in requested.items():
        if field_name not in allowed:
            msg = f"{name}.{field_name}: unknown threshold (known: {', '.join(sorted(allowed))})"
            raise ValueError(msg)
        current = getattr(rule, field_name)
        if isinstance(current, Severity):
            try:
                changes[field_name] = Severity(value)
            except ValueError:
                choices = ", ".join(s.value for s in Severity)
                msg = f"{name}.{field_name}: must be one of {choices}"
                raise ValueError(msg) from None
        elif isinstance(current, float):
            if isinstance(value, bool) or not isinstance(value, int | float):
                msg = f"{name}.{field_name}: must be a number"
                raise ValueError(msg)
            changes[field_name] = float(value)
        elif not isinstance(value, type(current)):
            msg = f"{name}.{field_name}: must be a {type(current).__name__}"
            raise ValueError(msg)
    return dataclasses.replace(rule, **changes)
