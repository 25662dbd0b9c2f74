"""Compile the definitions file's detector declarations into the detectors' rules.

``featurestore.definitions`` reads the file and checks the shape of its
``signals``, ``tier1`` and ``lifecycle`` sections; this module checks what each
signal means (its kind's settings, and that every feature it names is defined,
of a kind that fits) and builds the frozen rule objects the detectors run: a
:class:`~detectors.usage.DropRule`, :class:`~detectors.usage.ThresholdRule`,
:class:`~detectors.usage.RenewalRule` or :class:`~detectors.usage.InactivityRule`
per signal. The stream judges those, never the YAML, so a declared signal costs
what a hand-written one did.

Every problem is a :class:`~featurestore.errors.DefinitionError` naming the file,
the path in it (``signals.login_drop.current``) and its line.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from detectors.lifecycle import CONTRACT_KINDS, LifecycleRules
from detectors.tier1 import Tier1Rule
from detectors.usage import (
    ABSENCE_REASON,
    DROP_REASON,
    RENEWAL_REASON,
    THRESHOLD_REASON,
    DayCloseRule,
    DropRule,
    InactivityRule,
    RenewalRule,
    ThresholdRule,
    UsageRules,
    check_reason,
)
from featurestore.definitions import Aggregation, FeatureSet, SignalDeclaration
from featurestore.errors import DefinitionError
from schemas.alert import Severity
from schemas.signal import SignalType

# Triggers the scoring raises itself (decisions.policy): no signal may take their names.
RESERVED_TRIGGERS = frozenset({"risk_medium", "risk_high"})
KINDS = ("drop", "threshold", "renewal_risk", "absence")


@dataclass(frozen=True, slots=True)
class DetectorRules:
    """Everything the detectors run, compiled from one definitions file."""

    usage: UsageRules
    tier1: Mapping[str, Tier1Rule]
    lifecycle: LifecycleRules = field(default_factory=LifecycleRules)

    def triggers(self) -> tuple[str, ...]:
        """The alert rules these detectors raise: tier-1 rules, then usage signals."""
        return (*(r.rule for r in self.tier1.values()), *self.usage.names())


def compile_detectors(feature_set: FeatureSet) -> DetectorRules:
    """The rules of ``feature_set``'s declarations; raises :class:`DefinitionError`."""
    tier1 = {
        d.event_type: Tier1Rule(d.rule, d.severity, d.reason) for d in feature_set.tier1
    }
    taken = {rule.rule: f"tier1.{event_type}.rule" for event_type, rule in tier1.items()}
    day_close: list[DayCloseRule] = []
    absences: list[InactivityRule] = []
    for declaration in feature_set.signals:
        path = f"signals.{declaration.name}"
        if declaration.name in RESERVED_TRIGGERS:
            raise feature_set.error(path, "the name of a risk-tier trigger: choose another")
        if declaration.name in taken:
            raise feature_set.error(
                path, f"also the rule of a tier-1 event ({taken[declaration.name]}):"
                " alerts and policy triggers need distinct names"
            )
        rule = _compile_signal(feature_set, declaration)
        if isinstance(rule, InactivityRule):
            absences.append(rule)
        else:
            day_close.append(rule)
    lifecycle_kinds = {}
    for kind, event_types in feature_set.lifecycle.items():
        for i, event_type in enumerate(event_types):
            contract = CONTRACT_KINDS.get(event_type)
            if contract is not None and contract is not kind:
                raise feature_set.error(
                    f"lifecycle.{kind}[{i}]",
                    f"{event_type} is the event contract's {contract} event",
                )
            lifecycle_kinds[event_type] = kind
    return DetectorRules(
        UsageRules(tuple(day_close), tuple(absences)),
        tier1,
        LifecycleRules(lifecycle_kinds),
    )


def _compile_signal(
    feature_set: FeatureSet, declaration: SignalDeclaration
) -> DayCloseRule | InactivityRule:
    compiler = _COMPILERS.get(declaration.kind)
    path = f"signals.{declaration.name}"
    if compiler is None:
        raise feature_set.error(f"{path}.kind", f"must be one of: {', '.join(KINDS)}")
    reader = _Settings(feature_set, declaration)
    rule = compiler(reader)
    reader.refuse_unknown()
    return rule


class _Settings:
    """One declaration's settings, read with checks; remembers what was read so
    anything else is refused as an unknown key."""

    def __init__(self, feature_set: FeatureSet, declaration: SignalDeclaration) -> None:
        self.feature_set = feature_set
        # The shipped names as their SignalType (a StrEnum: equal to the text, and the
        # same object code written against the enum compares with `is`).
        self.name: str = (
            SignalType(declaration.name)
            if declaration.name in SignalType.__members__.values()
            else declaration.name
        )
        self.kind = declaration.kind
        self.settings: Mapping[str, Any] = declaration.settings
        self.path = f"signals.{declaration.name}"
        self.read: set[str] = set()

    def error(self, key: str, problem: str) -> DefinitionError:
        return self.feature_set.error(f"{self.path}.{key}", problem)

    def feature(
        self, key: str, *, required: bool = True, aggregations: tuple[Aggregation, ...] = ()
    ) -> str | None:
        """A feature name that the file defines (of one of ``aggregations``, if given)."""
        self.read.add(key)
        value = self.settings.get(key)
        if value is None:
            if required:
                raise self.error(key, f"required for a {self.kind} signal: a feature name")
            return None
        if not isinstance(value, str):
            raise self.error(key, "must be a feature name")
        try:
            feature = self.feature_set[value]
        except KeyError:
            raise self.error(
                key, f"names no feature: {value!r} is not defined under features"
            ) from None
        if aggregations and feature.aggregation not in aggregations:
            wanted = " or ".join(str(a) for a in aggregations)
            raise self.error(key, f"{value} is a {feature.aggregation} feature; needs {wanted}")
        return value

    def number(
        self, key: str, default: float | None = None, *, minimum: float = 0.0,
        above: bool = False,
    ) -> float:
        self.read.add(key)
        value = self.settings.get(key)
        if value is None:
            if default is None:
                raise self.error(key, f"required for a {self.kind} signal: a number")
            return default
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.error(key, "must be a number")
        if value < minimum or (above and value == minimum):
            relation = "more than" if above else "at least"
            raise self.error(key, f"must be {relation} {minimum:g}")
        return float(value)

    def optional_number(self, key: str) -> float | None:
        if self.settings.get(key) is None:
            self.read.add(key)
            return None
        return self.number(key, minimum=-float("inf"))

    def severity(self, default: Severity) -> Severity:
        self.read.add("severity")
        value = self.settings.get("severity", str(default))
        try:
            return Severity(value)
        except ValueError:
            choices = ", ".join(s.value for s in Severity)
            raise self.error("severity", f"must be one of {choices}") from None

    def persist_days(self) -> int | None:
        self.read.add("persist_days")
        value = self.settings.get("persist_days")
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise self.error("persist_days", "must be a whole number >= 1")
        return value

    def reason(self, default: str) -> str:
        self.read.add("reason")
        value = self.settings.get("reason", default)
        if not isinstance(value, str) or not value:
            raise self.error("reason", "must be a text")
        try:
            check_reason(value, "reason")
        except ValueError as exc:
            raise self.error("reason", str(exc).removeprefix("reason: ")) from None
        return value

    def refuse_unknown(self) -> None:
        for key in self.settings:
            if key not in self.read:
                known = ", ".join(["kind", *sorted(self.read)])
                raise self.error(key, f"unknown key for a {self.kind} signal (known: {known})")


def _drop(s: _Settings) -> DropRule:
    current, baseline = s.feature("current"), s.feature("baseline")
    assert current is not None and baseline is not None
    fire_below = s.number("fire_below", above=True)
    recover_above = s.number("recover_above", fire_below)
    if recover_above < fire_below:
        raise s.error("recover_above", f"must be at least fire_below ({fire_below:g})")
    return DropRule(
        s.name,
        current,
        baseline,
        baseline_scale=s.number("baseline_scale", 1.0, above=True),
        min_baseline=s.number("min_baseline", 0.0),
        fire_below=fire_below,
        recover_above=recover_above,
        severity=s.severity(Severity.MEDIUM),
        persist_days=s.persist_days(),
        reason=s.reason(DROP_REASON),
    )


def _threshold(s: _Settings) -> ThresholdRule:
    feature = s.feature("feature")
    assert feature is not None
    below, above = s.optional_number("below"), s.optional_number("above")
    if (below is None) == (above is None):
        raise s.feature_set.error(s.path, "a threshold signal takes one of below or above")
    limit = below if below is not None else above
    assert limit is not None
    recover_at = s.optional_number("recover_at")
    if recover_at is not None and (recover_at < limit if below is not None else recover_at > limit):
        side = "at least below" if below is not None else "at most above"
        raise s.error("recover_at", f"must be {side} ({limit:g}): the safe side of the threshold")
    return ThresholdRule(
        s.name,
        feature,
        limit,
        below=below is not None,
        recover_at=recover_at,
        severity=s.severity(Severity.MEDIUM),
        persist_days=s.persist_days(),
        reason=s.reason(THRESHOLD_REASON),
    )


def _renewal(s: _Settings) -> RenewalRule:
    days_to_renewal = s.feature("days_to_renewal")
    current = s.feature("current")
    assert days_to_renewal is not None and current is not None
    baseline = s.feature("baseline", required=False)
    if baseline is None:
        for key in ("baseline_scale", "min_baseline"):
            if key in s.settings:
                raise s.error(key, "only with a baseline")
    return RenewalRule(
        days_to_renewal=days_to_renewal,
        within_days=s.number("within_days"),
        current=current,
        baseline=baseline,
        baseline_scale=s.number("baseline_scale", 1.0, above=True),
        below=s.number("below", above=True),
        min_baseline=s.number("min_baseline", 0.0),
        severity=s.severity(Severity.HIGH),
        signal_type=s.name,
        persist_days=s.persist_days(),
        reason=s.reason(RENEWAL_REASON),
    )


def _absence(s: _Settings) -> InactivityRule:
    feature = s.feature("feature", aggregations=(Aggregation.DAYS_SINCE_LAST,))
    assert feature is not None
    if "persist_days" in s.settings:
        raise s.error("persist_days", "not used by an absence signal: `days` is its persistence")
    return InactivityRule(
        days=s.number("days", above=True),
        feature=feature,
        severity=s.severity(Severity.HIGH),
        signal_type=s.name,
        reason=s.reason(ABSENCE_REASON),
    )


_COMPILERS: dict[str, Callable[[_Settings], DayCloseRule | InactivityRule]] = {
    "drop": _drop,
    "threshold": _threshold,
    "renewal_risk": _renewal,
    "absence": _absence,
}
