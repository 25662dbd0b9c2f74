"""Signals as data: the definitions file's signals, tier-1 rules and lifecycle mapping,
compiled into the detectors' rules; every reference problem with its file, path and line."""

from __future__ import annotations

import pickle
from datetime import date
from pathlib import Path

import pytest

from detectors.definitions import DetectorRules, compile_detectors
from detectors.lifecycle import DEFAULT_LIFECYCLE, LifecycleRules, detect_change
from detectors.tier1 import DEFAULT_TIER1_RULES, Tier1Rule, detect_cancellation, detect_tier1
from detectors.usage import (
    DropRule,
    InactivityRule,
    Observation,
    RenewalRule,
    SignalEpisodes,
    ThresholdRule,
    Transition,
    UsageRules,
    make_signal,
    observe_all,
    parse_usage_rules,
)
from featurestore.definitions import load_definitions
from featurestore.errors import DefinitionError
from schemas.alert import Severity
from schemas.lifecycle import ChangeKind
from tests.builders import make_event

FEATURES = """\
version: 1
features:
  sessions_7d: {events: [game.played], aggregation: count, window: 7d}
  sessions_baseline_28d: {events: [game.played], aggregation: count, window: 28d, offset: 7d}
  days_since_session: {events: [game.played], aggregation: days_since_last}
  days_to_renewal: {events: [store.renewed], aggregation: days_until, attribute: at, default: 365}
"""


def definitions(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "product.yaml"
    path.write_text(FEATURES + text, encoding="utf-8")
    return path


def compiled(tmp_path: Path, text: str) -> DetectorRules:
    return compile_detectors(load_definitions(definitions(tmp_path, text)))


# --- the shipped file is today's behaviour ----------------------------------------------


def test_the_shipped_file_declares_exactly_the_built_in_rules() -> None:
    rules = compile_detectors(load_definitions())
    assert rules.usage == UsageRules()
    assert dict(rules.tier1) == dict(DEFAULT_TIER1_RULES)
    assert rules.lifecycle == LifecycleRules()
    assert dict(rules.lifecycle.kinds) == dict(DEFAULT_LIFECYCLE)
    assert rules.lifecycle.cancelled == frozenset({"subscription.cancelled"})
    # emitted in this order on a day two fire: the decisions see them in it
    assert rules.usage.names() == (
        "login_drop", "seat_drop", "feature_drop", "renewal_at_risk", "inactivity"
    )
    assert rules.triggers()[:3] == ("payment_failed", "cancel_intent", "downgraded")


def test_the_shipped_reasons_are_the_alert_texts_of_today() -> None:
    rules = compile_detectors(load_definitions()).usage
    day = date(2026, 10, 8)
    login = observe_all(rules, {
        "logins_7d": 2.0, "logins_baseline_28d": 40.0, "active_users_7d": 3.0,
        "active_users_baseline_28d": 3.0, "key_feature_events_7d": 0.0,
        "key_feature_events_baseline_28d": 0.0, "days_to_renewal": 365.0,
    })[0]
    assert login.firing
    alert = make_signal("acme", "a1", login, day, "v1").to_alert()
    assert alert.reasons == ("login_drop: 2 in the last 7 days vs a baseline of 10.0",)
    assert rules.inactivity is not None
    idle = Observation("inactivity", True, False, 0.0, 7.0, Severity.HIGH,
                       reason=rules.inactivity.reason)
    assert make_signal("acme", "a1", idle, day, "v1").to_alert().reasons == (
        "no activity for 7 days",
    )


# --- custom declarations ----------------------------------------------------------------


def test_two_features_and_one_signal_need_nothing_else(tmp_path: Path) -> None:
    rules = compiled(tmp_path, """\
signals:
  session_slump:
    kind: drop
    current: sessions_7d
    baseline: sessions_baseline_28d
    baseline_scale: 0.25
    fire_below: 0.3
""")
    assert rules.usage == UsageRules(
        (DropRule("session_slump", "sessions_7d", "sessions_baseline_28d", 0.25, 0.0, 0.3, 0.3,
                  reason=rules.usage.signals[0].reason),),
        (),
    )
    assert rules.usage.required_features() == {"sessions_7d", "sessions_baseline_28d"}
    assert dict(rules.tier1) == {}
    # the event contract's consent and traits types count, whatever the file says
    assert set(rules.lifecycle.kinds) == {"account.consent_changed", "account.traits_changed"}
    assert rules.lifecycle.cancelled == frozenset()


def test_every_kind_compiles_with_its_settings(tmp_path: Path) -> None:
    rules = compiled(tmp_path, """\
signals:
  few_sessions:
    kind: threshold
    feature: sessions_7d
    below: 2
    recover_at: 4
    severity: low
    persist_days: 3
  renewal_soon:
    kind: renewal_risk
    days_to_renewal: days_to_renewal
    within_days: 7
    current: sessions_7d
    below: 2
    reason: "renewal in a week and {value:g} sessions"
  lapsed:
    kind: absence
    feature: days_since_session
    days: 14
    severity: medium
tier1:
  store.refund_requested: {rule: refund_requested, severity: high, reason: asked for a refund}
lifecycle:
  cancelled: [store.cancelled, store.expired]
  renewed: [store.renewed]
""")
    few, renewal = rules.usage.signals
    assert few == ThresholdRule("few_sessions", "sessions_7d", 2.0, below=True, recover_at=4.0,
                                severity=Severity.LOW, persist_days=3, reason=few.reason)
    assert renewal == RenewalRule(
        days_to_renewal="days_to_renewal", within_days=7.0, current="sessions_7d",
        baseline=None, baseline_scale=1.0, below=2.0, min_baseline=0.0,
        severity=Severity.HIGH, signal_type="renewal_soon",
        reason="renewal in a week and {value:g} sessions",
    )
    assert rules.usage.inactivity == InactivityRule(
        14.0, "days_since_session", Severity.MEDIUM, "lapsed", "no activity for {baseline:g} days"
    )
    assert dict(rules.tier1) == {
        "store.refund_requested": Tier1Rule("refund_requested", Severity.HIGH, "asked for a refund")
    }
    assert rules.lifecycle.cancelled == frozenset({"store.cancelled", "store.expired"})
    assert rules.lifecycle.kinds["store.renewed"] is ChangeKind.RENEWED
    assert rules.triggers() == ("refund_requested", "few_sessions", "renewal_soon", "lapsed")


def test_the_compiled_lifecycle_and_tier1_rules_drive_the_detectors(tmp_path: Path) -> None:
    rules = compiled(tmp_path, """\
tier1:
  store.refund_requested: {rule: refund_requested, severity: medium}
lifecycle:
  cancelled: [store.expired]
  payment_succeeded: [store.charged]
""")
    refund = make_event(event_type="store.refund_requested")
    alert = detect_tier1(refund, rules.tier1)
    assert alert is not None and (alert.rule, alert.severity) == ("refund_requested",
                                                                  Severity.MEDIUM)
    assert detect_tier1(make_event(event_type="billing.payment_failed"), rules.tier1) is None
    expired = make_event(event_type="store.expired", attributes={"reason_code": "price"})
    cancellation = detect_cancellation(expired, rules.lifecycle.cancelled)
    assert cancellation is not None and cancellation.reason_code == "price"
    # the shipped cancellation type means nothing to this product
    assert detect_cancellation(make_event(event_type="subscription.cancelled"),
                               rules.lifecycle.cancelled) is None
    change = detect_change(make_event(event_type="store.charged"), rules.lifecycle.kinds)
    assert change is not None and change.kind is ChangeKind.PAYMENT_SUCCEEDED
    assert detect_change(make_event(event_type="billing.payment_succeeded"),
                         rules.lifecycle.kinds) is None


def test_a_custom_consent_type_counts_only_with_a_boolean_flag(tmp_path: Path) -> None:
    rules = compiled(tmp_path, "lifecycle:\n  consent_changed: [crm.opted_out]\n")
    kinds = rules.lifecycle.kinds
    flagged = make_event(event_type="crm.opted_out", attributes={"contact_allowed": False})
    change = detect_change(flagged, kinds)
    assert change is not None and (change.kind, change.contact_allowed) == (
        ChangeKind.CONSENT, False)
    assert detect_change(make_event(event_type="crm.opted_out"), kinds) is None


# --- each kind, persistence and re-arming -------------------------------------------------


def run(rule: DropRule | ThresholdRule | RenewalRule, days: list[dict[str, float]],
        persist: int = 1) -> list[Transition]:
    """Judge ``rule`` on one feature vector per day, through the episodes."""
    episodes = SignalEpisodes(persist=persist)
    return [episodes.update(rule.observe(values)) for values in days]


F, N, R = Transition.FIRED, Transition.NONE, Transition.RECOVERED


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        pytest.param([3, 1, 1, 3, 1], [N, F, N, R, F], id="fires-below-re-arms-at-threshold"),
        pytest.param([1.99, 2, 2.01], [F, R, N], id="strictly-below"),
    ],
)
def test_threshold_below(values: list[float], expected: list[Transition]) -> None:
    rule = ThresholdRule("few", "x", 2.0)
    assert run(rule, [{"x": v} for v in values]) == expected


def test_threshold_recover_at_keeps_a_hovering_account_in_its_episode() -> None:
    rule = ThresholdRule("few", "x", 2.0, recover_at=4.0)
    assert run(rule, [{"x": v} for v in [1, 3, 1, 3, 4, 1]]) == [F, N, N, N, R, F]


def test_threshold_above() -> None:
    rule = ThresholdRule("tickets", "x", 5.0, below=False, recover_at=2.0)
    assert run(rule, [{"x": v} for v in [5, 6, 4, 2, 9]]) == [N, F, N, R, F]
    observation = rule.observe({"x": 6.0})
    assert (observation.usage, observation.baseline) == (6.0, 5.0)


def test_renewal_risk_without_a_baseline_compares_usage_to_below() -> None:
    rule = RenewalRule(days_to_renewal="d", within_days=7.0, current="s", baseline=None,
                       below=2.0, signal_type="renewal_soon")
    days = [
        {"d": 10.0, "s": 0.0},  # renewal too far
        {"d": 6.0, "s": 1.0},  # close and low
        {"d": 5.0, "s": 1.0},  # still: one signal per episode
        {"d": 4.0, "s": 2.0},  # usage back to below: not low any more
        {"d": 3.0, "s": 0.0},  # low again
        {"d": -1.0, "s": 0.0},  # renewal passed
    ]
    assert run(rule, days) == [N, F, N, R, F, R]


def test_drop_recover_above_is_the_re_arming_band() -> None:
    rule = DropRule("drop", "c", "b", 1.0, 1.0, fire_below=0.3, recover_above=0.6)
    days = [{"c": c, "b": 10.0} for c in [3, 5, 3, 6, 3]]
    assert run(rule, days) == [F, N, N, R, F]


def test_a_rule_s_own_persist_days_overrides_the_default() -> None:
    own = ThresholdRule("few", "x", 2.0, persist_days=3)
    inherits = ThresholdRule("other", "x", 2.0)
    low = [{"x": 0.0}] * 4
    assert run(own, low, persist=2) == [N, N, F, N]
    assert run(inherits, low, persist=2) == [N, F, N, N]


def test_a_streak_survives_a_snapshot() -> None:
    rule = ThresholdRule("few", "x", 2.0, persist_days=2)
    episodes = SignalEpisodes()
    assert episodes.update(rule.observe({"x": 0.0})) is N
    restored = SignalEpisodes(pickle.loads(pickle.dumps(episodes.snapshot())))
    assert restored.update(rule.observe({"x": 0.0})) is F


def test_a_declared_reason_becomes_the_alert_reason() -> None:
    rule = ThresholdRule("few", "x", 2.0, reason="{name}: only {value:g} (< {baseline:g})")
    signal = make_signal("acme", "a1", rule.observe({"x": 1.0}), date(2026, 10, 8), "v1")
    assert signal.to_alert().reasons == ("few: only 1 (< 2)",)
    assert "reason" not in signal.to_document()  # a usage_signals row has no reason column


# --- overrides by name --------------------------------------------------------------------


def test_threshold_overrides_name_the_declared_signals(tmp_path: Path) -> None:
    rules = compiled(tmp_path, """\
signals:
  few: {kind: threshold, feature: sessions_7d, below: 2}
  lapsed: {kind: absence, feature: days_since_session, days: 14}
""").usage
    changed = parse_usage_rules({"few": {"threshold": 3, "persist_days": 4},
                                 "lapsed": {"days": 10}}, rules)
    assert changed.signals[0] == ThresholdRule("few", "sessions_7d", 3.0, persist_days=4,
                                               reason=rules.signals[0].reason)
    assert changed.inactivity is not None and changed.inactivity.days == 10.0
    known = r"^login_drop: unknown signal type \(known: few, lapsed\)"
    with pytest.raises(ValueError, match=known):
        parse_usage_rules({"login_drop": {"fire_below": 0.2}}, rules)
    with pytest.raises(ValueError, match=r"^few\.reason: "):
        parse_usage_rules({"few": {"reason": "{nope}"}}, rules)


# --- every reference problem: file, path and line -----------------------------------------


REFERENCE_ERRORS = [
    pytest.param(
        "signals:\n  slump: {kind: drop, current: sessions_7, baseline: sessions_baseline_28d,"
        " fire_below: 0.3}\n",
        "signals.slump.current", 8, "names no feature", id="drop-current-undefined",
    ),
    pytest.param(
        "signals:\n  slump:\n    kind: drop\n    current: sessions_7d\n    baseline: nope\n"
        "    fire_below: 0.3\n",
        "signals.slump.baseline", 11, "names no feature", id="drop-baseline-undefined",
    ),
    pytest.param(
        "signals:\n  slump:\n    kind: drop\n    current: sessions_7d\n    fire_below: 0.3\n",
        "signals.slump.baseline", 8, "required", id="drop-baseline-missing",
    ),
    pytest.param(
        "signals:\n  few:\n    kind: threshold\n    feature: sessions_28d\n    below: 2\n",
        "signals.few.feature", 10, "names no feature", id="threshold-feature-undefined",
    ),
    pytest.param(
        "signals:\n  renew:\n    kind: renewal_risk\n    days_to_renewal: renewal_days\n"
        "    within_days: 7\n    current: sessions_7d\n    below: 2\n",
        "signals.renew.days_to_renewal", 10, "names no feature", id="renewal-days-undefined",
    ),
    pytest.param(
        "signals:\n  lapsed:\n    kind: absence\n    feature: sessions_7d\n    days: 14\n",
        "signals.lapsed.feature", 10, "needs days_since_last", id="absence-of-a-count",
    ),
    pytest.param(
        "signals:\n  slump:\n    kind: dip\n", "signals.slump.kind", 9, "must be one of",
        id="unknown-kind",
    ),
    pytest.param(
        "signals:\n  slump:\n    kind: threshold\n    feature: sessions_7d\n    below: 2\n"
        "    fire_below: 3\n",
        "signals.slump.fire_below", 12, "unknown key", id="unknown-key",
    ),
    pytest.param(
        "signals:\n  few:\n    kind: threshold\n    feature: sessions_7d\n    below: 2\n"
        "    above: 9\n",
        "signals.few", 8, "one of below or above", id="below-and-above",
    ),
    pytest.param(
        "signals:\n  few:\n    kind: threshold\n    feature: sessions_7d\n    below: 2\n"
        "    recover_at: 1\n",
        "signals.few.recover_at", 12, "safe side", id="recover-on-the-wrong-side",
    ),
    pytest.param(
        "signals:\n  slump:\n    kind: drop\n    current: sessions_7d\n"
        "    baseline: sessions_baseline_28d\n    fire_below: 0.5\n    recover_above: 0.4\n",
        "signals.slump.recover_above", 13, "at least fire_below", id="recover-below-fire",
    ),
    pytest.param(
        "signals:\n  few:\n    kind: threshold\n    feature: sessions_7d\n    below: 2\n"
        "    severity: urgent\n",
        "signals.few.severity", 12, "must be one of", id="bad-severity",
    ),
    pytest.param(
        "signals:\n  few:\n    kind: threshold\n    feature: sessions_7d\n    below: 2\n"
        "    reason: '{count} sessions'\n",
        "signals.few.reason", 12, "does not format", id="reason-with-an-unknown-field",
    ),
    pytest.param(
        "signals:\n  few:\n    kind: threshold\n    feature: sessions_7d\n    below: two\n",
        "signals.few.below", 11, "must be a number", id="threshold-not-a-number",
    ),
    pytest.param(
        "signals:\n  few:\n    kind: threshold\n    feature: sessions_7d\n    below: 2\n"
        "    persist_days: 0\n",
        "signals.few.persist_days", 12, "whole number", id="persist-days-zero",
    ),
    pytest.param(
        "tier1:\n  store.refund: {rule: refund}\nsignals:\n  refund:\n    kind: threshold\n"
        "    feature: sessions_7d\n    below: 2\n",
        "signals.refund", 10, "tier-1", id="signal-named-like-a-tier1-rule",
    ),
    pytest.param(
        "signals:\n  risk_high: {kind: threshold, feature: sessions_7d, below: 2}\n",
        "signals.risk_high", 8, "risk-tier", id="signal-named-like-a-risk-tier",
    ),
    pytest.param(
        "signals:\n  Slump: {kind: threshold, feature: sessions_7d, below: 2}\n",
        "signals.Slump", 8, "lowercase", id="signal-name-uppercase",
    ),
    pytest.param(
        "tier1:\n  refund: {rule: refund}\n", "tier1.refund", 8, "event type",
        id="tier1-not-an-event-type",
    ),
    pytest.param(
        "tier1:\n  store.refund: {rule: refund}\n  store.chargeback: {rule: refund}\n",
        "tier1.store.chargeback.rule", 9, "already the rule", id="tier1-rule-twice",
    ),
    pytest.param(
        "tier1:\n  store.refund: {rule: refund}\n  store.refund: {rule: other}\n",
        "tier1.store.refund", 9, "duplicate key", id="tier1-event-type-twice",
    ),
    pytest.param(
        "tier1:\n  store.refund: {rule: refund, severity: urgent}\n",
        "tier1.store.refund.severity", 8, "must be one of", id="tier1-bad-severity",
    ),
    pytest.param(
        "lifecycle:\n  churned: [store.cancelled]\n", "lifecycle.churned", 8, "unknown change",
        id="lifecycle-unknown-kind",
    ),
    pytest.param(
        "lifecycle:\n  cancelled: [store.cancelled]\n  renewed:\n    - store.renewed\n"
        "    - store.cancelled\n",
        "lifecycle.renewed[1]", 11, "already means cancelled", id="lifecycle-type-twice",
    ),
    pytest.param(
        "lifecycle:\n  cancelled: [account.consent_changed]\n", "lifecycle.cancelled[0]", 8,
        "event contract", id="lifecycle-remaps-the-contract-s-consent",
    ),
    pytest.param(
        "lifecycle:\n  cancelled: [cancelled]\n", "lifecycle.cancelled[0]", 8, "event type",
        id="lifecycle-not-an-event-type",
    ),
    pytest.param("signalz: {}\n", "signalz", 7, "unknown key", id="unknown-section"),
]


@pytest.mark.parametrize(("text", "path", "line", "problem"), REFERENCE_ERRORS)
def test_every_reference_problem_names_file_path_and_line(
    tmp_path: Path, text: str, path: str, line: int, problem: str
) -> None:
    file = definitions(tmp_path, text)
    assert (FEATURES + text).splitlines()[line - 1].strip()  # the line exists in the file
    with pytest.raises(DefinitionError) as caught:
        compile_detectors(load_definitions(file))
    error = caught.value
    assert (error.source, error.path, error.line) == (str(file), path, line)
    assert problem in error.problem
    assert str(error).startswith(f"{file}: line {line}: {path}: ")


def test_signals_are_not_part_of_the_feature_version(tmp_path: Path) -> None:
    bare = compiled_version(tmp_path, "")
    with_signal = compiled_version(
        tmp_path, "signals:\n  few: {kind: threshold, feature: sessions_7d, below: 2}\n"
    )
    assert bare == with_signal  # a new signal keeps every stored vector and model valid


def compiled_version(tmp_path: Path, text: str) -> str:
    return load_definitions(definitions(tmp_path, text)).version
