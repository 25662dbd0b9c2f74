"""scoring.risk.ScorePublisher: a score is published when it changes something."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from math import asin, sin, sqrt

import pytest

from schemas.alert import Alert, AlertTier, Severity
from schemas.score import RiskScore
from scoring.risk import RiskPolicy, ScorePublisher

T0 = datetime(2026, 10, 1, tzinfo=UTC)
POLICY = RiskPolicy(min_change=0.045, refresh_before=timedelta(days=1), ttl=timedelta(days=7))


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


def risk_moved_up(risk: float, change: float = POLICY.min_change) -> float:
    """The risk exactly ``change`` above ``risk`` on the arcsine-square-root scale."""
    return sin(asin(sqrt(risk)) + change) ** 2


TIER1 = Alert("x", "acme", "a", AlertTier.EVENT_RULE, "payment_failed", Severity.HIGH, "e",
              "billing.payment_failed", T0, ("a payment failed",))


@pytest.mark.parametrize(
    ("later", "published"),
    [
        pytest.param(score(1, 0.22), False, id="a-small-move-is-silent"),
        pytest.param(score(1, risk_moved_up(0.2) - 1e-6), False, id="just-under-the-change"),
        pytest.param(score(1, risk_moved_up(0.2)), True, id="the-change-itself"),
        pytest.param(score(1, 0.16), True, id="a-move-down-counts-too"),
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
    ("before", "after", "published"),
    [
        # The same plain move of 0.02: it passes many accounts down where most of them
        # are, few in the middle (under a plain 0.045 both would be silent).
        pytest.param(0.03, 0.05, True, id="0.02-up-from-0.03-counts"),
        pytest.param(0.05, 0.03, True, id="0.02-down-to-0.03-counts"),
        pytest.param(0.50, 0.52, False, id="0.02-at-0.5-is-silent"),
        pytest.param(0.50, 0.545, True, id="min-change-itself-at-0.5"),
        pytest.param(0.01, 0.018, False, id="0.008-at-0.01-is-silent"),
        pytest.param(0.01, 0.022, True, id="0.012-at-0.01-counts"),
        pytest.param(0.90, 0.92, False, id="0.02-at-0.9-is-silent"),
        pytest.param(0.90, 0.93, True, id="0.03-at-0.9-counts"),
    ],
)
def test_a_move_is_measured_where_it_happens(before: float, after: float, published: bool) -> None:
    publisher = ScorePublisher()
    assert publisher.publish(score(0, before), POLICY)
    assert publisher.publish(score(1, after), POLICY) is published


@pytest.mark.parametrize(
    ("risk", "published", "min_change", "moved"),
    [
        pytest.param(0.3, 0.3, 0.0, True, id="zero-counts-no-move-at-all"),
        pytest.param(0.3, risk_moved_up(0.3, 0.1), 0.1, True, id="symmetric-down"),
        pytest.param(risk_moved_up(0.3, 0.1), 0.3, 0.1, True, id="symmetric-up"),
        pytest.param(1.0 + 1e-9, 0.95, 0.01, True, id="above-one-counts-as-one"),
        pytest.param(-1e-9, 0.05, 0.01, True, id="below-zero-counts-as-zero"),
    ],
)
def test_moved(risk: float, published: float, min_change: float, moved: bool) -> None:
    assert ScorePublisher.moved(risk, published, min_change) is moved


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


@pytest.mark.parametrize("base", [0.02, 0.2, 0.5, 0.9])
def test_a_flat_account_publishes_nothing_until_expiry_nears(base: float) -> None:
    publisher = ScorePublisher()
    # Hourly noise a little under the change (a third of it, either way).
    wobble = risk_moved_up(base, POLICY.min_change / 3) - base
    hourly = [score(h, base + (wobble if h % 2 else 0.0)) for h in range(0, 10 * 24)]
    published = [s.score_time for s in hourly if publisher.publish(s, POLICY)]
    assert published == [T0, T0 + timedelta(days=6)]  # the first, then a refresh
    assert publisher.live_at((T0 + timedelta(days=10)).timestamp())


def test_a_slow_drift_publishes_once_it_adds_up() -> None:
    """Moves are judged against the last published score, not the previous score."""
    publisher = ScorePublisher()
    drift = [score(h, 0.2 + 0.002 * h) for h in range(30)]
    published = [s.risk for s in drift if publisher.publish(s, POLICY)]
    assert len(published) == 2
    assert ScorePublisher.moved(published[1], published[0], POLICY.min_change)


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


def test_a_snapshot_of_the_stored_form_restores() -> None:
    """(tier, risk, reasons, expires_at): the form recovery stores have held all along."""
    expires = (T0 + POLICY.ttl).timestamp()
    restored = ScorePublisher(("low", 0.2, (), expires))
    assert restored.publish(score(1, 0.21), POLICY) is False
    assert restored.publish(score(6 * 24, 0.21), POLICY) is True  # a refresh before expiry
    assert restored.snapshot() == ("low", 0.21, (), (T0 + timedelta(days=13)).timestamp())
