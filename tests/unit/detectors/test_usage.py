"""Usage detectors: drop and renewal truth tables, episodes, signal ids and rule parsing."""

from __future__ import annotations

import ast
import dataclasses
import json
import pickle
from datetime import date
from pathlib import Path
from typing import Any

import jsonschema
import pytest

import detectors.usage
from detectors.usage import (
    DEFAULT_DROP_RULES,
    FIELD_KINDS,
    DropRule,
    InactivityRule,
    Observation,
    RenewalRule,
    SignalEpisodes,
    Transition,
    UsageRules,
    make_signal,
    observe_drop,
    observe_renewal,
    parse_usage_rules,
)
from schemas import SCHEMA_DIR
from schemas.alert import AlertTier, Severity
from schemas.signal import SignalType

# Thresholds whose products are exact in binary floating point, so a boundary
# case tests the comparison, not rounding: scaled baseline = 0.25 * 40 = 10,
# fire at <= 5, recovered at >= 7.5, judged from a scaled baseline of 5.
RULE = DropRule(
    SignalType.LOGIN_DROP,
    current="current",
    baseline="baseline",
    baseline_scale=0.25,
    min_baseline=5.0,
    fire_below=0.5,
    recover_above=0.75,
)
LOGIN_DROP = DEFAULT_DROP_RULES[0]


def drop(current: float, baseline: float) -> dict[str, float]:
    return {"current": current, "baseline": baseline}


# --- observe_drop ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("current", "baseline", "firing", "recovered"),
    [
        pytest.param(0.0, 16.0, False, True, id="scaled-baseline-4-below-min-not-judged"),
        pytest.param(0.0, 19.96, False, True, id="scaled-baseline-just-below-min"),
        pytest.param(0.0, 20.0, True, False, id="scaled-baseline-exactly-min-is-judged"),
        pytest.param(0.0, 40.0, True, False, id="no-usage"),
        pytest.param(5.0, 40.0, True, False, id="exactly-at-fire-threshold"),
        pytest.param(5.01, 40.0, False, False, id="just-above-fire-threshold"),
        pytest.param(7.49, 40.0, False, False, id="between-fire-and-recover-band"),
        pytest.param(7.5, 40.0, False, True, id="exactly-at-recover-threshold"),
        pytest.param(12.0, 40.0, False, True, id="above-baseline"),
    ],
)
def test_drop_truth_table(current: float, baseline: float, firing: bool, recovered: bool) -> None:
    observation = observe_drop(RULE, drop(current, baseline))
    assert (observation.firing, observation.recovered) == (firing, recovered)
    assert observation.signal_type is SignalType.LOGIN_DROP
    assert observation.usage == current


@pytest.mark.parametrize(
    ("logins_7d", "baseline_28d", "scaled", "firing", "recovered"),
    [
        # 0.25 turns a 28-day count of 28 into a weekly 7: fire <= 2.45, recover >= 4.9
        pytest.param(2.0, 28.0, 7.0, True, False, id="28-scaled-to-7-fires-at-2"),
        pytest.param(3.0, 28.0, 7.0, False, False, id="28-scaled-to-7-silent-at-3"),
        pytest.param(4.0, 28.0, 7.0, False, False, id="28-scaled-to-7-not-recovered-at-4"),
        pytest.param(5.0, 28.0, 7.0, False, True, id="28-scaled-to-7-recovered-at-5"),
        # 0.25 turns 80 into 20: fire <= 7, recover >= 14 (both products exact)
        pytest.param(7.0, 80.0, 20.0, True, False, id="80-scaled-to-20-fires-at-7"),
        pytest.param(14.0, 80.0, 20.0, False, True, id="80-scaled-to-20-recovered-at-14"),
        pytest.param(0.0, 19.0, 4.75, False, True, id="19-scaled-below-min-5"),
    ],
)
def test_default_login_drop_scales_the_baseline(
    logins_7d: float, baseline_28d: float, scaled: float, firing: bool, recovered: bool
) -> None:
    observation = observe_drop(
        LOGIN_DROP, {"logins_7d": logins_7d, "logins_baseline_28d": baseline_28d}
    )
    assert observation.baseline == scaled
    assert (observation.firing, observation.recovered) == (firing, recovered)


def test_default_login_drop_fires_exactly_at_threshold_for_large_baselines() -> None:
    observation = observe_drop(LOGIN_DROP, {"logins_7d": 63.0, "logins_baseline_28d": 720.0})
    assert observation.firing


# --- observe_renewal -------------------------------------------------------------


def renewal(days: float, logins_7d: float, baseline_28d: float = 40.0) -> dict[str, float]:
    # default rule: scaled baseline 0.25 * 40 = 10, low when logins_7d < 3.5
    return {"days_to_renewal": days, "logins_7d": logins_7d, "logins_baseline_28d": baseline_28d}


@pytest.mark.parametrize(
    ("features", "firing"),
    [
        pytest.param(renewal(10, 1), True, id="close-and-low"),
        pytest.param(renewal(0, 1), True, id="renewal-today"),
        pytest.param(renewal(30, 1), True, id="exactly-within-days"),
        pytest.param(renewal(30.5, 1), False, id="just-beyond-within-days"),
        pytest.param(renewal(365, 0), False, id="no-renewal-known-default-365"),
        pytest.param(renewal(-0.5, 0), False, id="renewal-passed"),
        pytest.param(renewal(-10, 0), False, id="renewal-long-passed"),
        pytest.param(renewal(10, 3.4), True, id="just-below-share-of-baseline"),
        pytest.param(renewal(10, 3.5), False, id="exactly-at-share-is-not-below"),
        pytest.param(renewal(10, 10), False, id="usage-at-baseline"),
        pytest.param(renewal(10, 0, 19.0), False, id="baseline-below-min"),
        pytest.param(renewal(10, 0, 20.0), True, id="baseline-exactly-min"),
    ],
)
def test_renewal_truth_table(features: dict[str, float], firing: bool) -> None:
    observation = observe_renewal(RenewalRule(), features)
    assert observation.firing is firing
    assert observation.recovered is not firing
    assert observation.signal_type is SignalType.RENEWAL_AT_RISK
    assert observation.severity is Severity.HIGH


def test_renewal_within_days_follows_the_rule() -> None:
    features = renewal(40, 0)
    assert not observe_renewal(RenewalRule(), features).firing
    assert observe_renewal(RenewalRule(within_days=45.0), features).firing


# --- SignalEpisodes ----------------------------------------------------------------


def observed(
    firing: bool, recovered: bool, kind: SignalType = SignalType.LOGIN_DROP
) -> Observation:
    return Observation(kind, firing, recovered, usage=1.0, baseline=10.0, severity=Severity.MEDIUM)


FIRE = observed(firing=True, recovered=False)
LOW = observed(firing=False, recovered=False)  # not firing, but not recovered either
OK = observed(firing=False, recovered=True)


@pytest.mark.parametrize(
    ("sequence", "emitted"),
    [
        pytest.param([OK, OK], [False, False], id="healthy-never-fires"),
        pytest.param([FIRE], [True], id="first-firing-starts-an-episode"),
        pytest.param([FIRE, FIRE, FIRE], [True, False, False], id="stays-silent-while-firing"),
        pytest.param(
            [FIRE, FIRE, LOW, FIRE], [True, False, False, False], id="no-flapping-around-threshold"
        ),
        pytest.param([FIRE, OK, FIRE], [True, False, True], id="recovery-re-arms"),
        pytest.param(
            [FIRE, LOW, LOW, OK, LOW, FIRE],
            [True, False, False, False, False, True],
            id="re-arms-only-after-recovered",
        ),
        pytest.param([LOW, FIRE], [False, True], id="low-before-firing-is-not-an-episode"),
    ],
)
def test_episodes(sequence: list[Observation], emitted: list[bool]) -> None:
    episodes = SignalEpisodes()
    assert [episodes.update(o) is Transition.FIRED for o in sequence] == emitted


@pytest.mark.parametrize(
    ("sequence", "emitted"),
    [
        pytest.param([FIRE], [False], id="one-firing-day-is-not-enough"),
        pytest.param([FIRE, FIRE], [False, True], id="fires-on-the-second-consecutive-day"),
        pytest.param([FIRE, LOW, FIRE], [False, False, False], id="a-non-firing-day-resets"),
        pytest.param([FIRE, OK, FIRE, FIRE], [False, False, False, True], id="streak-restarts"),
        pytest.param(
            [FIRE, FIRE, FIRE, OK, FIRE, FIRE],
            [False, True, False, False, False, True],
            id="re-armed-episode-needs-a-new-streak",
        ),
    ],
)
def test_episodes_with_persistence(sequence: list[Observation], emitted: list[bool]) -> None:
    episodes = SignalEpisodes(persist=2)
    assert [episodes.update(o) is Transition.FIRED for o in sequence] == emitted


def test_episodes_snapshot_keeps_a_streak() -> None:
    episodes = SignalEpisodes(persist=2)
    assert episodes.update(FIRE) is not Transition.FIRED
    restored = SignalEpisodes(pickle.loads(pickle.dumps(episodes.snapshot())), persist=2)
    assert restored.update(FIRE) is Transition.FIRED


def test_episodes_are_per_signal_type() -> None:
    episodes = SignalEpisodes()
    assert episodes.update(FIRE) is Transition.FIRED
    assert episodes.update(observed(True, False, SignalType.SEAT_DROP)) is Transition.FIRED
    assert episodes.update(FIRE) is not Transition.FIRED
    # login_drop recovers (usage is back); seat_drop is still in its episode
    assert episodes.update(OK) is Transition.RECOVERED
    assert episodes.update(FIRE) is Transition.FIRED
    assert episodes.update(observed(True, False, SignalType.SEAT_DROP)) is not Transition.FIRED


def test_episodes_snapshot_restores_armed_state() -> None:
    episodes = SignalEpisodes()
    episodes.update(FIRE)
    restored = SignalEpisodes(episodes.snapshot())
    assert restored.update(FIRE) is Transition.NONE  # still in the episode: no second signal
    restored.update(OK)
    assert restored.update(FIRE) is Transition.FIRED


# --- signals and alerts ----------------------------------------------------------

DAY = date(2026, 10, 8)


def test_signal_ids_are_deterministic_and_input_sensitive() -> None:
    first = make_signal("acme", "a1", FIRE, DAY, "v1").signal_id
    assert first == make_signal("acme", "a1", FIRE, DAY, "v1").signal_id
    others = {
        make_signal("acme", "a2", FIRE, DAY, "v1").signal_id,
        make_signal("globex", "a1", FIRE, DAY, "v1").signal_id,
        make_signal("acme", "a1", observed(True, False, SignalType.SEAT_DROP), DAY, "v1").signal_id,
        make_signal("acme", "a1", FIRE, date(2026, 10, 9), "v1").signal_id,
        make_signal("acme:a1", "", FIRE, DAY, "v1").signal_id,
    }
    assert first not in others and len(others) == 5


def test_signal_carries_the_observation() -> None:
    signal = make_signal("acme", "a1", FIRE, DAY, "v1")
    assert (signal.signal_type, signal.usage_count, signal.baseline_count) == (
        SignalType.LOGIN_DROP,
        1.0,
        10.0,
    )
    assert (signal.signal_date, signal.feature_version, signal.severity) == (
        DAY,
        "v1",
        Severity.MEDIUM,
    )


@pytest.fixture(scope="module")
def alert_validator() -> jsonschema.Draft202012Validator:
    schema = json.loads((SCHEMA_DIR / "alert.v1.schema.json").read_text())
    return jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )


@pytest.mark.parametrize("kind", list(SignalType), ids=str)
def test_signal_becomes_a_tier2_alert(
    kind: SignalType, alert_validator: jsonschema.Draft202012Validator
) -> None:
    firing = observed(True, False, kind)
    signal = make_signal("acme", "a1", firing, DAY, "v1")
    alert = signal.to_alert()
    assert alert.tier is AlertTier.USAGE_SIGNAL
    assert alert.rule == str(kind)
    assert alert.severity is signal.severity
    assert (alert.tenant_id, alert.account_id) == ("acme", "a1")
    assert alert.alert_id == make_signal("acme", "a1", firing, DAY, "v1").to_alert().alert_id
    next_day = make_signal("acme", "a1", firing, date(2026, 10, 9), "v1").to_alert()
    assert alert.alert_id != next_day.alert_id
    errors = [e.message for e in alert_validator.iter_errors(alert.to_document())]
    assert errors == []


# --- parse_usage_rules -----------------------------------------------------------


def by_type(rules: UsageRules) -> dict[SignalType, DropRule]:
    return {rule.signal_type: rule for rule in rules.drops}


def test_empty_document_keeps_every_default() -> None:
    assert parse_usage_rules({}) == UsageRules()


def test_drop_override_changes_only_what_it_names() -> None:
    rules = parse_usage_rules({"login_drop": {"fire_below": 0.2}})
    defaults = by_type(UsageRules())
    changed = by_type(rules)
    assert changed[SignalType.LOGIN_DROP] == dataclasses.replace(
        defaults[SignalType.LOGIN_DROP], fire_below=0.2
    )
    assert changed[SignalType.SEAT_DROP] == defaults[SignalType.SEAT_DROP]
    assert changed[SignalType.FEATURE_DROP] == defaults[SignalType.FEATURE_DROP]
    assert (rules.renewal, rules.inactivity) == (RenewalRule(), InactivityRule())


def test_inactivity_override() -> None:
    rules = parse_usage_rules({"inactivity": {"days": 10}})
    assert rules.inactivity == InactivityRule(days=10.0)
    assert isinstance(rules.inactivity.days, float)
    assert (rules.drops, rules.renewal) == (DEFAULT_DROP_RULES, RenewalRule())


def test_renewal_override() -> None:
    rules = parse_usage_rules({"renewal_at_risk": {"within_days": 45}})
    assert rules.renewal == RenewalRule(within_days=45.0)
    assert (rules.drops, rules.inactivity) == (DEFAULT_DROP_RULES, InactivityRule())


def test_severity_override() -> None:
    rules = parse_usage_rules({"seat_drop": {"severity": "high"}})
    assert by_type(rules)[SignalType.SEAT_DROP].severity is Severity.HIGH


@pytest.mark.parametrize(
    ("document", "persist"),
    [
        pytest.param({}, UsageRules().persist_days, id="default"),
        pytest.param({"persist_days": 1}, 1, id="one"),
        pytest.param({"persist_days": 3, "inactivity": {"days": 10}}, 3, id="with-thresholds"),
    ],
)
def test_persist_days_override(document: dict[str, Any], persist: int) -> None:
    assert parse_usage_rules(document).persist_days == persist


@pytest.mark.parametrize(
    "value", [0, -1, 1.5, "2", True, None], ids=["zero", "negative", "fraction", "string",
                                                 "bool", "null"]
)
def test_bad_persist_days_is_refused_naming_the_key(value: object) -> None:
    with pytest.raises(ValueError, match=r"^persist_days: "):
        parse_usage_rules({"persist_days": value})


def test_overrides_apply_on_top_of_a_base() -> None:
    base = parse_usage_rules({"inactivity": {"days": 10}})
    rules = parse_usage_rules({"login_drop": {"min_baseline": 8}}, base)
    assert rules.inactivity.days == 10.0
    assert by_type(rules)[SignalType.LOGIN_DROP].min_baseline == 8.0


@pytest.mark.parametrize(
    ("document", "named"),
    [
        pytest.param({"login_spike": {}}, "login_spike", id="unknown-signal-type"),
        pytest.param({"login_drop": {"fire_above": 0.2}}, "login_drop.fire_above",
                     id="unknown-threshold"),
        pytest.param({"login_drop": {"signal_type": "seat_drop"}}, "login_drop.signal_type",
                     id="signal-type-is-not-a-threshold"),
        pytest.param({"inactivity": {"days": "10"}}, "inactivity.days", id="string-not-number"),
        pytest.param({"inactivity": {"days": True}}, "inactivity.days", id="bool-not-number"),
        pytest.param({"inactivity": {"days": None}}, "inactivity.days", id="null-not-number"),
        pytest.param({"renewal_at_risk": {"within_days": [45]}}, "renewal_at_risk.within_days",
                     id="list-not-number"),
        pytest.param({"renewal_at_risk": {"current": 7}}, "renewal_at_risk.current",
                     id="number-not-feature-name"),
        pytest.param({"login_drop": 0.2}, "login_drop", id="thresholds-not-an-object"),
        pytest.param({"inactivity": [10]}, "inactivity", id="thresholds-a-list"),
    ],
)
def test_bad_overrides_are_refused_naming_the_key(document: dict[str, Any], named: str) -> None:
    with pytest.raises(ValueError, match=rf"^{named}: "):
        parse_usage_rules(document)


@pytest.mark.parametrize(
    "document", [[], "login_drop", None, 3], ids=["list", "string", "null", "number"]
)
def test_document_must_be_an_object(document: object) -> None:
    with pytest.raises(ValueError, match="JSON object"):
        parse_usage_rules(document)


def test_bad_severity_is_refused_naming_the_key() -> None:
    with pytest.raises(ValueError, match=r"^login_drop\.severity: "):
        parse_usage_rules({"login_drop": {"severity": "urgent"}})


def test_parsing_does_not_modify_the_document() -> None:
    document = {"inactivity": {"days": 10}, "seat_drop": {"severity": "high"}}
    parse_usage_rules(document)
    assert type(document["inactivity"]["days"]) is int
    assert type(document["seat_drop"]["severity"]) is str


def test_the_field_kinds_are_the_rules_annotations() -> None:
    """parse_usage_rules checks an override by FIELD_KINDS, as the compiled classes' own
    annotations cannot say it: the table must say what this file's source does."""
    source = Path(detectors.usage.__file__).with_name("usage.py").read_text()
    written = {
        node.name: {item.target.id: ast.unparse(item.annotation) for item in node.body
                    if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name)}
        for node in ast.parse(source).body if isinstance(node, ast.ClassDef)
    }
    assert {cls.__name__: kinds for cls, kinds in FIELD_KINDS.items()} == {
        name: written[name] for name in ("DropRule", "ThresholdRule", "RenewalRule",
                                         "InactivityRule")
    }
    assert set(FIELD_KINDS) == {DropRule, detectors.usage.ThresholdRule, RenewalRule,
                                InactivityRule}
    for cls, kinds in FIELD_KINDS.items():
        assert list(kinds) == [field.name for field in dataclasses.fields(cls)]
