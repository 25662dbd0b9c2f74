"""scoring.risk.ScorePublisher: a score is published when it changes something."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from schemas.alert import Alert, AlertTier, Severity
from schemas.score import RiskScore
from scoring.risk import RiskPolicy, ScorePublisher

T0 = datetime(2026, 10, 1, tzinfo=UTC)
POLICY = RiskPolicy(min_change=0.05, refresh_before=timedelta(days=1), ttl=timedelta(days=7))


def score(hours: float = 0.0, risk: float = 0.2, **overrides: object) -> RiskScore:
    at = T0 + timedelta(hours=hours)
    fields: dict[str, object] = {
        "score_id": f"s-{hours}", "tenant_id": "acme", "account_id": "a", "model_version": "m",
        "feature_version": "f", "ml_risk": risk, "rule_risk": 0.0, "risk": risk,
        "tier": POLICY.tier(risk), "reasons": ("logins low",), "score_time": at,
        "expires_at": at + POLICY.ttl, "trigger_event_id": "e",
    }
    fields.update(overrides)
    return RiskScore(**fields)  # type: ignore[arg-type]


TIER1 = Alert("x", "acme", "a", AlertTier.EVENT_RULE, "payment_failed", Severity.HIGH, "e",
              "billing.payment_failed", T0, ("a payment failed",))


@pytest.mark.parametrize(
    ("later", "published"),
    [
        pytest.param(score(1, 0.22), False, id="a-small-move-is-silent"),
        pytest.param(score(1, 0.249), False, id="just-under-the-change"),
        pytest.param(score(1, 0.25), True, id="the-change-itself"),
        pytest.param(score(1, 0.15), True, id="a-move-down-counts-too"),
        pytest.param(score(1, 0.41), True, id="the-tier-changes"),
        pytest.param(score(1, 0.2, reasons=("seats low",)), False,
                     id="reasons-do-not-count-at-a-low-tier"),
        pytest.param(score(1, 0.2, trigger_alert=TIER1), True, id="a-decisive-event"),
        pytest.param(score(5 * 24 + 23, 0.2), False, id="a-day-and-an-hour-before-expiry"),
        pytest.param(score(6 * 24, 0.2), True, id="within-a-day-of-expiry"),
    ],
)
def test_a_score_is_published_when_it_changes_something(
    later: RiskScore, published: bool
) -> None:
    publisher = ScorePublisher()
    assert publisher.publish(score(0, 0.2), POLICY)  # the first always is
    assert publisher.publish(later, POLICY) is published


@pytest.mark.parametrize(
    ("reasons", "published"),
    [
        pytest.param(("seats low", "logins low"), False, id="the-same-set-in-another-order"),
        pytest.param(("logins low", "tickets high"), True, id="another-reason"),
    ],
)
def test_at_a_medium_tier_the_set_of_reasons_counts(
    reasons: tuple[str, ...], published: bool
) -> None:
    publisher = ScorePublisher()
    assert publisher.publish(score(0, 0.5, reasons=("logins low", "seats low")), POLICY)
    assert publisher.publish(score(1, 0.5, reasons=reasons), POLICY) is published


def test_a_flat_account_publishes_nothing_until_expiry_nears() -> None:
    publisher = ScorePublisher()
    hourly = [score(h, 0.2 + (0.01 if h % 2 else 0.0)) for h in range(0, 10 * 24)]
    published = [s.score_time for s in hourly if publisher.publish(s, POLICY)]
    assert published == [T0, T0 + timedelta(days=6)]  # the first, then a refresh
    assert publisher.live_at((T0 + timedelta(days=10)).timestamp())


def test_zero_min_change_publishes_every_score() -> None:
    every = replace(POLICY, min_change=0.0)
    publisher = ScorePublisher()
    assert all(publisher.publish(score(h, 0.2), every) for h in range(50))


def test_the_state_round_trips() -> None:
    publisher = ScorePublisher()
    publisher.publish(score(0, 0.2), POLICY)
    restored = ScorePublisher(publisher.snapshot())
    assert restored.publish(score(1, 0.21), POLICY) is False
    assert restored.publish(score(1, 0.5), POLICY) is True
