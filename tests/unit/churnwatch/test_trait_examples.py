"""The traits examples: definitions that extend the default with features read from
``account.traits_changed`` events, and a policy whose rules name them and the plan."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

import decisions
import featurestore
from churnwatch.cli import main
from decisions.policy import DecisionContext, load_policy, vocabulary_for
from detectors.lifecycle import detect_change
from featurestore.aggregation import AccountFeatures, CompiledFeatures
from featurestore.definitions import load_definitions
from schemas.event import TRAITS_EVENT_TYPE, Event, EventLimits, parse_event
from tests.builders import event_bytes

DEFINITIONS = Path(featurestore.__file__).parent / "definitions" / "examples" / "b2b-traits.yaml"
POLICY = Path(decisions.__file__).parent / "policies" / "examples" / "b2b-traits.yaml"
NOW = datetime(2026, 11, 2, tzinfo=UTC)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in [n for n in os.environ if n.startswith("CHURNWATCH_")]:
        monkeypatch.delenv(name)


def test_features_check_accepts_the_traits_definitions(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["features", "check", str(DEFINITIONS)]) == 0
    assert "18 features" in capsys.readouterr().out


def test_the_traits_definitions_extend_the_default_unchanged() -> None:
    default, traits = load_definitions(), load_definitions(DEFINITIONS)
    assert traits.features[: len(default.features)] == default.features
    assert [f.name for f in traits.features[len(default.features):]] == [
        "mrr", "seats_licensed", "days_to_renewal_trait"
    ]
    assert traits.version != default.version  # a model of the default is refused with it


def test_policy_check_accepts_the_example_against_the_traits_definitions() -> None:
    assert main(["policy", "check", str(POLICY), "--definitions", str(DEFINITIONS)]) == 0


def test_policy_check_takes_the_definitions_from_the_settings_too(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert main(["policy", "check", str(POLICY)]) == 1  # the default lacks mrr ...
    monkeypatch.setenv("CHURNWATCH_FEATURE_DEFINITIONS", str(DEFINITIONS))
    assert main(["policy", "check", str(POLICY)]) == 0


def traits_event(event_id: str, day: int, **traits: object) -> Event:
    raw = event_bytes(event_id=event_id, event_type=TRAITS_EVENT_TYPE, user_id=None,
                      event_time=f"2026-10-{day:02d}T09:00:00Z", source="segment",
                      attributes=traits)
    event = parse_event(raw, NOW, EventLimits())
    assert isinstance(event, Event)
    return event


def test_traits_become_features_and_a_plan_the_example_policy_decides_on() -> None:
    feature_set = load_definitions(DEFINITIONS)
    features = AccountFeatures(CompiledFeatures(feature_set))
    plan = None
    for event in [
        traits_event("t1", 1, plan="pro", mrr=490.0, seats=12, renewal_date="2027-06-30"),
        traits_event("t2", 20, plan="enterprise", mrr=4900, seats=40,
                     renewal_date="2026-12-01"),
        traits_event("t3", 21, mrr="lots", seats=True),  # no plan, no numbers: no change
    ]:
        features.apply(event, event.event_time.timestamp())
        change = detect_change(event)
        if change is not None:
            plan = change.plan
    as_of = datetime(2026, 10, 22, tzinfo=UTC).timestamp()
    values = dict(zip(feature_set.names, features.values(as_of), strict=True))
    assert (plan, values["mrr"], values["seats_licensed"]) == ("enterprise", 4900.0, 40.0)
    assert values["days_to_renewal_trait"] == 40.0  # 2026-10-22 to 2026-12-01

    policy = load_policy(POLICY, vocabulary_for(
        ["payment_failed", "cancel_intent", "downgraded"], feature_set.names
    ))
    rule = policy.match(DecisionContext("renewal_at_risk", "medium", values, plan))
    assert rule is not None and rule.name == "enterprise-renewal-at-risk"
    rule = policy.match(DecisionContext("cancel_intent", "low", values, "pro"))
    assert rule is not None and rule.name == "cancel-intent-high-value"
    small = {**values, "mrr": 99.0, "seats_licensed": 3.0}
    rule = policy.match(DecisionContext("renewal_at_risk", "medium", small, "pro"))
    assert rule is not None and rule.name == "usage-drop-medium-risk"
