"""Risk scores as snapshots keep them: pickled, every field comes back."""

from __future__ import annotations

import pickle
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from schemas.alert import Alert, AlertTier, Severity
from schemas.score import RiskScore, RiskTier

AT = datetime(2026, 10, 1, 12, tzinfo=UTC)

# A score pickled before RiskScore had its own __reduce__ (the dataclass's state), as
# snapshots taken until then hold it.
OLD_PICKLE = (
    b"\x80\x05\x95\x1c\x01\x00\x00\x00\x00\x00\x00\x8c\rschemas.score\x94\x8c\tRiskScore\x94"
    b"\x93\x94)\x81\x94]\x94(\x8c\x05sid-1\x94\x8c\x04acme\x94\x8c\x06acct-1\x94\x8c\x02m1"
    b"\x94\x8c\x02f1\x94G?\xd0\x00\x00\x00\x00\x00\x00G?\xe0\x00\x00\x00\x00\x00\x00G?\xe0"
    b"\x00\x00\x00\x00\x00\x00h\x00\x8c\x08RiskTier\x94\x93\x94\x8c\x06medium\x94\x85\x94R"
    b"\x94\x8c\x01a\x94\x8c\x01b\x94\x86\x94\x8c\x08datetime\x94\x8c\x08datetime\x94\x93\x94"
    b"C\n\x07\xea\n\x01\x0c\x00\x00\x00\x00\x00\x94h\x12\x8c\x08timezone\x94\x93\x94h\x12"
    b"\x8c\ttimedelta\x94\x93\x94K\x00K\x00K\x00\x87\x94R\x94\x85\x94R\x94\x86\x94R\x94h\x14"
    b"C\n\x07\xea\n\x08\x0c\x00\x00\x00\x00\x00\x94h\x1d\x86\x94R\x94\x8c\x05evt-1\x94\x89"
    b"G?\xf8\x00\x00\x00\x00\x00\x00G?\xf0\x00\x00\x00\x00\x00\x00G@\x00\x00\x00\x00\x00\x00"
    b"\x00\x86\x94Neb."
)


def make_score(**overrides: object) -> RiskScore:
    fields: dict[str, object] = {
        "score_id": "sid-1", "tenant_id": "acme", "account_id": "acct-1",
        "model_version": "m1", "feature_version": "f1", "ml_risk": 0.25, "rule_risk": 0.5,
        "risk": 0.5, "tier": RiskTier.MEDIUM, "reasons": ("a", "b"), "score_time": AT,
        "expires_at": AT.replace(day=8), "trigger_event_id": "evt-1", "shadow": False,
        "ingested_at": 1.5, "features": (1.0, 2.0), "trigger_alert": None,
    }
    fields.update(overrides)
    return RiskScore(**fields)  # type: ignore[arg-type]


def every_field(score: RiskScore) -> tuple[object, ...]:
    """Equality leaves out ingested_at, features and trigger_alert: these do not."""
    return tuple(getattr(score, name) for name in RiskScore.__dataclass_fields__)


def test_a_pickled_score_keeps_every_field() -> None:
    alert = Alert("al-1", "acme", "acct-1", AlertTier.EVENT_RULE, "payment_failed",
                  Severity.HIGH, "evt-1", "billing.payment_failed", AT, ("failed",), 2.5)
    for score in (make_score(), make_score(trigger_alert=alert, shadow=True)):
        copy = pickle.loads(pickle.dumps(score, protocol=pickle.HIGHEST_PROTOCOL))
        assert every_field(copy) == every_field(score)
        assert copy.tier is score.tier


def test_a_score_pickled_before_its_reduce_still_loads() -> None:
    old = pickle.loads(OLD_PICKLE)
    assert every_field(old) == every_field(make_score())
    assert (old.score_ts, old.expires_ts) == (AT.timestamp(), AT.replace(day=8).timestamp())


def test_a_score_keeps_its_times_in_seconds_however_it_was_made() -> None:
    """Worked out once (the tier, publication and decisions read them), from its times."""
    score = make_score()
    expected = (AT.timestamp(), AT.replace(day=8).timestamp())
    assert (score.score_ts, score.expires_ts) == expected
    later = replace(score, score_time=AT.replace(hour=13))
    assert later.score_ts == AT.replace(hour=13).timestamp()
    for copy in (pickle.loads(pickle.dumps(score)), RiskScore.from_row(score.to_row())):
        assert (copy.score_ts, copy.expires_ts) == expected
    assert later == replace(later)  # not compared: derived from the compared times


def test_a_score_as_a_row_keeps_every_field_and_pickles_without_objects() -> None:
    alert = Alert("al-1", "acme", "acct-1", AlertTier.EVENT_RULE, "payment_failed",
                  Severity.HIGH, "evt-1", "billing.payment_failed", AT, ("failed",), 2.5)
    odd_time = datetime(2026, 10, 1, 12, 0, 0, 999_999, tzinfo=UTC)
    for score in (make_score(), make_score(trigger_alert=alert, shadow=True),
                  make_score(score_time=odd_time, expires_at=datetime(1969, 12, 31, tzinfo=UTC))):
        row = score.to_row()
        copy = RiskScore.from_row(pickle.loads(pickle.dumps(row)))
        assert every_field(copy) == every_field(score)
        assert copy.tier is score.tier
        assert copy.score_time.tzinfo is UTC
    # no datetime or RiskScore in a row without an alert: plain values only
    assert b"datetime" not in pickle.dumps(make_score().to_row())
    assert b"RiskScore" not in pickle.dumps(make_score().to_row())


def test_a_score_compares_and_hashes_by_its_published_fields() -> None:
    """As when it was a frozen dataclass: compiled now, with an __init__ of its own."""
    score = make_score()
    same = make_score(ingested_at=9.0, features=(3.0,))  # fields not compared
    assert same == score and hash(same) == hash(score)
    assert len({score, same, make_score(risk=0.75)}) == 2
    assert make_score(risk=0.75) != score
    with pytest.raises(TypeError):
        RiskScore()  # type: ignore[call-arg]  # a bare score only comes from old pickles
