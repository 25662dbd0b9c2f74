"""Usage detectors: a feature vector in, usage signals out. Pure, no I/O.

Each detector looks at one account's features as of the end of a day and says
whether its condition holds ("firing") and whether the account has recovered.
:class:`SignalEpisodes` turns that into at most one signal per episode: a
signal fires when its condition first holds, and re-arms only once the account
has recovered, so an account hovering around a threshold does not flap.

The rules are data: each usage signal is declared in the definitions file
(``signals:``; compiled by :mod:`detectors.definitions`) as one of the kinds
below, the shipped ones included (:data:`DEFAULT_DROP_RULES` is what the shipped
file declares). Each rule is a small frozen object with an ``observe`` method, so
judging a day costs a few comparisons per signal, never a look at the YAML.

Inactivity (kind ``absence``) is evaluated by
:class:`~detectors.inactivity.InactivityTracker` when the watermark passes, since
a silent account sends no event to react to.

Compiled (:mod:`churnwatch.native`): the day closes judge every signal of every
account each day. The rules and the episodes' snapshot stay plain Python classes
(frozen dataclasses, which mypyc's native classes cannot be; and
:func:`parse_usage_rules` reads and replaces a rule's fields as a dataclass's); an
:class:`Observation`, one per signal per account and closed day, is a native one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import Any

from mypy_extensions import mypyc_attr

from schemas.alert import Severity, deterministic_id
from schemas.signal import SignalType, UsageSignal

# A rule's reason template: the tier-2 alert's reason, formatted with the signal's
# {name}, {value} (the usage or feature value judged) and {baseline} (what it was
# judged against: the scaled baseline, the threshold, the days of an absence).
DROP_REASON = "{name}: {value:g} against a baseline of {baseline:.1f}"
THRESHOLD_REASON = "{name}: {value:g} (threshold {baseline:g})"
RENEWAL_REASON = "{name}: renewal is close and usage is {value:g} against {baseline:.1f}"
ABSENCE_REASON = "no activity for {baseline:g} days"
# The shipped signals' reason, as alerts have always said it.
WEEKLY_REASON = "{name}: {value:g} in the last 7 days vs a baseline of {baseline:.1f}"


@mypyc_attr(native_class=False)  # frozen: see the module's docstring
@dataclass(frozen=True, slots=True)
class DropRule:
    """Usage in the current window fell below a share of its baseline (kind ``drop``).

    ``baseline_scale`` converts the baseline feature to the current window's
    scale: 0.25 turns a 28-day count into a weekly one; 1.0 for distinct
    counts, which do not add up over time.
    """

    signal_type: str
    current: str
    baseline: str
    baseline_scale: float
    min_baseline: float  # below this (scaled) baseline the account is too small to judge
    fire_below: float  # fire when current <= fire_below * baseline
    recover_above: float  # re-arm when current >= recover_above * baseline
    severity: Severity = Severity.MEDIUM
    persist_days: int | None = None  # None: the rules' persist_days
    reason: str = DROP_REASON

    def observe(self, features: Mapping[str, float]) -> Observation:
        current = features[self.current]
        baseline = features[self.baseline] * self.baseline_scale
        judged = baseline >= self.min_baseline
        return Observation(
            self.signal_type,
            firing=judged and _at_most(current, self.fire_below * baseline),
            recovered=not judged or _at_most(self.recover_above * baseline, current),
            usage=current,
            baseline=baseline,
            severity=self.severity,
            persist=self.persist_days or 0,
            reason=self.reason,
        )

    def required_features(self) -> set[str]:
        return {self.current, self.baseline}


@mypyc_attr(native_class=False)  # frozen: see the module's docstring
@dataclass(frozen=True, slots=True)
class ThresholdRule:
    """One feature crossed a fixed value (kind ``threshold``).

    ``below``: fires when the value is under ``threshold``, re-arms once it is at
    least ``recover_at``; else fires when it is over ``threshold`` and re-arms once
    it is at most ``recover_at``. ``recover_at`` None: the threshold itself.
    """

    signal_type: str
    feature: str
    threshold: float
    below: bool = True
    recover_at: float | None = None
    severity: Severity = Severity.MEDIUM
    persist_days: int | None = None
    reason: str = THRESHOLD_REASON

    def observe(self, features: Mapping[str, float]) -> Observation:
        value = features[self.feature]
        limit = self.threshold
        back = limit if self.recover_at is None else self.recover_at
        if self.below:
            firing, recovered = value < limit, value >= back
        else:
            firing, recovered = value > limit, value <= back
        return Observation(
            self.signal_type,
            firing=firing,
            recovered=recovered and not firing,
            usage=value,
            baseline=limit,
            severity=self.severity,
            persist=self.persist_days or 0,
            reason=self.reason,
        )

    def required_features(self) -> set[str]:
        return {self.feature}


@mypyc_attr(native_class=False)  # frozen: see the module's docstring
@dataclass(frozen=True, slots=True)
class RenewalRule:
    """Renewal is close and usage is low (kind ``renewal_risk``).

    Low: below ``below`` times the (scaled) baseline, once the baseline is at
    least ``min_baseline``; without a ``baseline`` feature, below ``below`` itself.
    Re-arms when the condition no longer holds (renewal passed or usage back).
    """

    days_to_renewal: str = "days_to_renewal"
    within_days: float = 30.0
    current: str = "logins_7d"
    baseline: str | None = "logins_baseline_28d"
    baseline_scale: float = 0.25
    below: float = 0.35
    min_baseline: float = 5.0
    severity: Severity = Severity.HIGH
    signal_type: str = SignalType.RENEWAL_AT_RISK
    persist_days: int | None = None
    reason: str = WEEKLY_REASON  # a declared renewal_risk signal's default: RENEWAL_REASON

    def observe(self, features: Mapping[str, float]) -> Observation:
        days = features[self.days_to_renewal]
        current = features[self.current]
        close = 0.0 <= days <= self.within_days
        if self.baseline is None:
            baseline = self.below
            low = current < self.below
        else:
            baseline = features[self.baseline] * self.baseline_scale
            low = baseline >= self.min_baseline and current < self.below * baseline
        return Observation(
            self.signal_type,
            firing=close and low,
            recovered=not close or not low,
            usage=current,
            baseline=baseline,
            severity=self.severity,
            persist=self.persist_days or 0,
            reason=self.reason,
        )

    def required_features(self) -> set[str]:
        names = {self.days_to_renewal, self.current}
        if self.baseline is not None:
            names.add(self.baseline)
        return names


@mypyc_attr(native_class=False)  # frozen: see the module's docstring
@dataclass(frozen=True, slots=True)
class InactivityRule:
    """No activity for ``days`` days (kind ``absence``): ``feature`` is a
    ``days_since_last`` feature, whose events are what counts as activity. Judged on
    the watermark by :class:`~detectors.inactivity.InactivityTracker`."""

    days: float = 7.0
    feature: str = "days_since_last_activity"
    severity: Severity = Severity.HIGH
    signal_type: str = SignalType.INACTIVITY
    reason: str = ABSENCE_REASON


# A rule judged at each day close on the account's features.
DayCloseRule = DropRule | ThresholdRule | RenewalRule

# The shipped signals (featurestore/definitions/default.yaml declares the same; a
# test holds them equal). Thresholds chosen on simulated histories (seeds 7, 11, 23;
# 300 accounts, 50 days) so that ordinary week-to-week noise of steady accounts stays
# below them: the 0.1% quantile of a steady account's weekly login ratio is about 0.45.
DEFAULT_DROP_RULES: tuple[DropRule, ...] = (
    DropRule(
        SignalType.LOGIN_DROP, "logins_7d", "logins_baseline_28d", 0.25, 5.0, 0.35, 0.7,
        reason=WEEKLY_REASON,
    ),
    DropRule(
        SignalType.SEAT_DROP, "active_users_7d", "active_users_baseline_28d", 1.0, 6.0, 0.3, 0.6,
        reason=WEEKLY_REASON,
    ),
    DropRule(
        SignalType.FEATURE_DROP,
        "key_feature_events_7d",
        "key_feature_events_baseline_28d",
        0.25,
        20.0,
        0.1,
        0.5,
        reason=WEEKLY_REASON,
    ),
)
DEFAULT_RENEWAL_RULE = RenewalRule()


@mypyc_attr(native_class=False)  # frozen: see the module's docstring
@dataclass(frozen=True, slots=True)
class UsageRules:
    """Every usage signal, compiled: the day-close rules in declaration order (the
    order signals of one day are emitted in) and the absence rules, in theirs."""

    signals: tuple[DayCloseRule, ...] = (*DEFAULT_DROP_RULES, DEFAULT_RENEWAL_RULE)
    absences: tuple[InactivityRule, ...] = (InactivityRule(),)
    # Consecutive day-close evaluations a condition must hold before it fires, for
    # the rules that do not set their own.
    persist_days: int = 2

    @property
    def drops(self) -> tuple[DropRule, ...]:
        return tuple(r for r in self.signals if isinstance(r, DropRule))

    @property
    def inactivity(self) -> InactivityRule | None:
        """The first absence rule (None: no absence signal)."""
        return self.absences[0] if self.absences else None

    @property
    def renewal(self) -> RenewalRule | None:
        """The first renewal rule (None: no renewal_risk signal)."""
        return next((r for r in self.signals if isinstance(r, RenewalRule)), None)

    def names(self) -> tuple[str, ...]:
        """Every signal's name: the alert rules (and policy triggers) they raise."""
        return tuple(str(r.signal_type) for r in (*self.signals, *self.absences))

    def required_features(self) -> set[str]:
        names: set[str] = set()
        for rule in self.signals:
            names |= rule.required_features()
        return names | {rule.feature for rule in self.absences}


@dataclass(slots=True, init=False)
class Observation:
    """One detector's verdict on one feature vector.

    One is made per signal per account and closed day: its ``__init__`` is written
    out for mypyc to compile (see :class:`~accounts.debounce.ScoreRequest`), and so it
    is not frozen; nothing changes an observation once made."""

    signal_type: str
    firing: bool
    recovered: bool
    usage: float
    baseline: float
    severity: Severity
    persist: int  # consecutive firing days before a signal; 0: the episodes' default
    reason: str  # the alert's reason template (see DROP_REASON); "": the generic text

    def __init__(self, signal_type: str, firing: bool, recovered: bool, usage: float,
                 baseline: float, severity: Severity, persist: int = 0, reason: str = ""
                 ) -> None:
        self.signal_type = signal_type
        self.firing = firing
        self.recovered = recovered
        self.usage = usage
        self.baseline = baseline
        self.severity = severity
        self.persist = persist
        self.reason = reason


def observe_drop(rule: DropRule, features: Mapping[str, float]) -> Observation:
    return rule.observe(features)


def _at_most(value: float, limit: float) -> bool:
    """``value <= limit``, forgiving float rounding of the product (0.35 * 180)."""
    return value <= limit + 1e-9 * max(1.0, abs(limit))


def observe_renewal(rule: RenewalRule, features: Mapping[str, float]) -> Observation:
    return rule.observe(features)


def observe_all(rules: UsageRules, features: Mapping[str, float]) -> list[Observation]:
    """Every feature-based detector's verdict (inactivity is watermark-driven)."""
    return [rule.observe(features) for rule in rules.signals]


def make_signal(
    tenant_id: str,
    account_id: str,
    observation: Observation,
    signal_date: date,
    feature_version: str,
) -> UsageSignal:
    reason = ""
    if observation.reason:
        reason = observation.reason.format(
            name=observation.signal_type, value=observation.usage, baseline=observation.baseline
        )
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
        reason=reason,
    )


class Transition(StrEnum):
    NONE = "none"
    FIRED = "fired"
    RECOVERED = "recovered"


@mypyc_attr(native_class=False)  # frozen: see the module's docstring
@dataclass(frozen=True, slots=True)
class EpisodesSnapshot:
    fired: frozenset[str] = frozenset()
    streaks: tuple[tuple[str, int], ...] = ()


class SignalEpisodes:
    """Which signals are armed for one account.

    A signal fires once its condition has held at ``persist`` consecutive
    evaluations (a one-day dip of a small account is noise, a slide is not; a
    rule may set its own, carried by its observations), and re-arms only after an
    evaluation that says the account recovered.
    """

    __slots__ = ("fired", "persist", "streaks")

    def __init__(self, snapshot: EpisodesSnapshot | None = None, *, persist: int = 1) -> None:
        snapshot = snapshot or EpisodesSnapshot()
        self.fired: set[str] = set(snapshot.fired)
        self.streaks: dict[str, int] = dict(snapshot.streaks)
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
        if streak >= (observation.persist or self.persist):
            self.fired.add(kind)
            return Transition.FIRED
        return Transition.NONE

    def raw(self) -> tuple[set[str], dict[str, int]]:
        """The live state, to be pickled at once (never kept: it changes)."""
        return self.fired, self.streaks

    def restore_raw(self, raw: tuple[set[str], dict[str, int]]) -> None:
        self.fired, self.streaks = raw

    def snapshot(self) -> EpisodesSnapshot:
        return EpisodesSnapshot(frozenset(self.fired), tuple(self.streaks.items()))


def parse_usage_rules(document: object, base: UsageRules | None = None) -> UsageRules:
    """Threshold overrides from JSON, by signal name; raises ``ValueError`` naming the
    bad key.

    ``{"inactivity": {"days": 10}, "renewal_at_risk": {"within_days": 45},
    "login_drop": {"fire_below": 0.4, "min_baseline": 8}}`` changes only what
    it names; every other threshold keeps the one of ``base`` (the signals the
    definitions file declares; the shipped ones by default).
    """
    base = base or UsageRules()
    if not isinstance(document, dict):
        msg = "usage rules must be a JSON object keyed by signal type"
        raise ValueError(msg)
    rules = {str(rule.signal_type): rule for rule in base.signals}
    absences = {str(rule.signal_type): rule for rule in base.absences}
    for key, changes in document.items():
        if key == "persist_days":
            continue
        if not isinstance(changes, dict):
            msg = f"{key}: expected an object of thresholds"
            raise ValueError(msg)
        if key in rules:
            rules[key] = _with(rules[key], key, changes)
        elif key in absences:
            absences[key] = _with(absences[key], key, changes)
        else:
            known = ", ".join(base.names()) or "none declared"
            msg = f"{key}: unknown signal type (known: {known})"
            raise ValueError(msg)
    persist = document.get("persist_days", base.persist_days)
    if isinstance(persist, bool) or not isinstance(persist, int) or persist < 1:
        msg = "persist_days: must be a whole number >= 1"
        raise ValueError(msg)
    return UsageRules(tuple(rules.values()), tuple(absences.values()), persist)


# Each rule kind's fields, as their annotations are written: what an override of each
# must be. Compiled, a class's own annotations no longer say it (mypyc gives
# ``float | None`` as ``type``); tests/unit/detectors/test_usage.py holds this table to
# the annotations in this file.
FIELD_KINDS: dict[type, dict[str, str]] = {
    DropRule: {
        "signal_type": "str", "current": "str", "baseline": "str", "baseline_scale": "float",
        "min_baseline": "float", "fire_below": "float", "recover_above": "float",
        "severity": "Severity", "persist_days": "int | None", "reason": "str",
    },
    ThresholdRule: {
        "signal_type": "str", "feature": "str", "threshold": "float", "below": "bool",
        "recover_at": "float | None", "severity": "Severity", "persist_days": "int | None",
        "reason": "str",
    },
    RenewalRule: {
        "days_to_renewal": "str", "within_days": "float", "current": "str",
        "baseline": "str | None", "baseline_scale": "float", "below": "float",
        "min_baseline": "float", "severity": "Severity", "signal_type": "str",
        "persist_days": "int | None", "reason": "str",
    },
    InactivityRule: {
        "days": "float", "feature": "str", "severity": "Severity", "signal_type": "str",
        "reason": "str",
    },
}


def _with(rule: Any, name: str, requested: dict[str, Any]) -> Any:
    declared = FIELD_KINDS[type(rule)]
    allowed = set(declared) - {"signal_type"}
    changes = dict(requested)  # never modify the caller's document
    for field_name, value in requested.items():
        if field_name not in allowed:
            msg = f"{name}.{field_name}: unknown threshold (known: {', '.join(sorted(allowed))})"
            raise ValueError(msg)
        kind = declared[field_name]
        optional = "None" in kind
        if value is None and optional:
            continue
        if kind == "Severity":
            try:
                changes[field_name] = Severity(value)
            except ValueError:
                choices = ", ".join(s.value for s in Severity)
                msg = f"{name}.{field_name}: must be one of {choices}"
                raise ValueError(msg) from None
        elif kind.startswith("float"):
            if isinstance(value, bool) or not isinstance(value, int | float):
                msg = f"{name}.{field_name}: must be a number"
                raise ValueError(msg)
            changes[field_name] = float(value)
        elif kind.startswith("int"):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                msg = f"{name}.{field_name}: must be a whole number >= 1"
                raise ValueError(msg)
        elif kind.startswith("bool"):
            if not isinstance(value, bool):
                msg = f"{name}.{field_name}: must be true or false"
                raise ValueError(msg)
        elif not isinstance(value, str):
            msg = f"{name}.{field_name}: must be a str"
            raise ValueError(msg)
        elif field_name == "reason":
            check_reason(value, f"{name}.{field_name}")
    return dataclasses.replace(rule, **changes)


def check_reason(template: str, path: str) -> None:
    """Refuse a reason template that does not format (``ValueError`` naming ``path``)."""
    try:
        template.format(name="signal", value=1.0, baseline=2.0)
    except (KeyError, IndexError, ValueError, AttributeError) as exc:
        msg = (f"{path}: the template does not format ({type(exc).__name__}: {exc});"
               " it may use {name}, {value} and {baseline}")
        raise ValueError(msg) from None
