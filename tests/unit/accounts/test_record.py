"""The accounts table's kernel: a batch of an account's events as one record, traits read
under configurable names, lifecycle status, and the order-safe merge of records."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from accounts.record import (
    AccountTraits,
    PendingRecord,
    account_record,
    parse_account_traits,
    score_record,
)
from schemas.account import AccountRecord, AccountStatus, Fact, coalesce_records
from schemas.event import TRAITS_EVENT_TYPE
from schemas.score import RiskScore, RiskTier
from tests.builders import make_event

T0 = datetime(2026, 10, 1, 8, 0, tzinfo=UTC)
DEFAULTS = AccountTraits()


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def traits(hours: float, event_id: str = "", **attributes: Any) -> Any:
    return make_event(event_id=event_id or f"t{hours}", event_type=TRAITS_EVENT_TYPE,
                      event_time=at(hours), attributes=attributes)


def event(event_type: str, hours: float, **attributes: Any) -> Any:
    return make_event(event_id=f"{event_type}{hours}", event_type=event_type,
                      event_time=at(hours), attributes=attributes)


def test_no_events_no_record() -> None:
    assert account_record([], DEFAULTS) is None


def test_traits_fill_every_field_under_the_default_names() -> None:
    record = account_record([
        event("app.login", 1),
        traits(2, company="Acme Corp", plan="pro", mrr=490, renewal_date="2026-12-31",
               owner="agent-a"),
        event("app.login", 0.5),  # late within the batch: first_seen is the earliest
    ], DEFAULTS)
    assert record is not None
    assert (record.tenant_id, record.account_id) == ("acme", "acct-1")
    assert (record.first_seen, record.last_event_at) == (at(0.5), at(2))
    assert record.company_name == Fact("Acme Corp", at(2))
    assert record.plan == Fact("pro", at(2))
    assert record.mrr == Fact(490.0, at(2))
    assert record.renewal_date == Fact(date(2026, 12, 31), at(2))
    assert record.owner == Fact("agent-a", at(2))
    assert record.status is None and record.score is None


@pytest.mark.parametrize(
    ("attributes", "field", "expected"),
    [
        pytest.param({"company_name": "A", "name": "B"}, "company_name", "A", id="first-name-wins"),
        pytest.param({"name": "  Globex  "}, "company_name", "Globex", id="name-trimmed"),
        pytest.param({"mrr": "99.5"}, "mrr", 99.5, id="mrr-numeric-text"),
        pytest.param({"mrr": None}, "mrr", None, id="mrr-null-clears"),
        pytest.param({"renewal_date": "2027-01-15T10:00:00-05:00"}, "renewal_date",
                     date(2027, 1, 15), id="renewal-rfc3339"),
        pytest.param({"renewal_date": "2027-01-15T23:00:00-05:00"}, "renewal_date",
                     date(2027, 1, 16), id="renewal-utc-date"),
    ],
)
def test_trait_values(attributes: dict[str, Any], field: str, expected: object) -> None:
    record = account_record([traits(1, **attributes)], DEFAULTS)
    assert record is not None
    assert getattr(record, field) == Fact(expected, at(1))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "attributes",
    [
        pytest.param({"mrr": "lots"}, id="mrr-text"),
        pytest.param({"mrr": True}, id="mrr-bool"),
        pytest.param({"mrr": -5}, id="mrr-negative"),
        pytest.param({"mrr": float("nan")}, id="mrr-nan"),
        pytest.param({"renewal_date": "next year"}, id="renewal-text"),
        pytest.param({"renewal_date": "2026-02-30"}, id="renewal-no-such-day"),
        pytest.param({"renewal_date": "2026-12-31T00:00:00"}, id="renewal-no-offset"),
        pytest.param({"plan": 3}, id="plan-number"),
        pytest.param({"owner": ""}, id="owner-empty"),
    ],
)
def test_a_trait_of_the_wrong_type_changes_nothing(attributes: dict[str, Any]) -> None:
    record = account_record([traits(1, **attributes)], DEFAULTS)
    assert record is not None
    assert (record.mrr, record.renewal_date, record.plan, record.owner) == (None,) * 4
    assert record.last_event_at == at(1)  # the event still counts as activity


def test_trait_names_are_configurable() -> None:
    custom = parse_account_traits(
        {"mrr": ["monthly_revenue"], "company_name": "org", "owner": []}, DEFAULTS
    )
    assert custom.mrr == ("monthly_revenue",) and custom.company_name == ("org",)
    record = account_record(
        [traits(1, monthly_revenue=120, mrr=999, org="Initech", name="ignored", owner="x")],
        custom,
    )
    assert record is not None
    assert record.mrr == Fact(120.0, at(1))
    assert record.company_name == Fact("Initech", at(1))
    assert record.owner is None  # owner: [] turns the field off
    assert custom.plan == DEFAULTS.plan  # fields not named keep their defaults
    assert parse_account_traits(custom.to_document(), DEFAULTS) == custom


@pytest.mark.parametrize(
    "document",
    [["mrr"], {"revenue": ["mrr"]}, {"mrr": [""]}, {"mrr": [1]}, {"mrr": {"a": 1}}],
    ids=["not-an-object", "unknown-field", "empty-name", "number-name", "object-names"],
)
def test_bad_trait_settings_are_refused(document: object) -> None:
    with pytest.raises(ValueError, match=r"expected|unknown"):
        parse_account_traits(document, DEFAULTS)


def test_lifecycle_events_set_status_plan_and_their_mrr() -> None:
    record = account_record([
        event("subscription.cancelled", 1, reason="price"),
        event("subscription.reactivated", 2),
        event("billing.downgraded", 3, from_plan="pro", to_plan="starter", mrr=49),
    ], DEFAULTS)
    assert record is not None
    assert record.status == Fact(AccountStatus.ACTIVE, at(2))
    assert record.plan == Fact("starter", at(3))
    assert record.mrr == Fact(49.0, at(3))
    cancelled = account_record([event("subscription.cancelled", 5)], DEFAULTS)
    assert cancelled is not None and cancelled.status == Fact(AccountStatus.CANCELLED, at(5))
    # A lifecycle event's company-like attributes are not traits.
    renewed = account_record([event("subscription.renewed", 1, name="x")], DEFAULTS)
    assert renewed is not None and renewed.company_name is None


def test_within_a_batch_the_newest_in_event_time_wins_not_the_last_read() -> None:
    record = account_record([traits(5, plan="enterprise"), traits(3, plan="pro")], DEFAULTS)
    assert record is not None and record.plan == Fact("enterprise", at(5))
    tie = account_record([traits(5, "a", plan="pro"), traits(5, "b", plan="team")], DEFAULTS)
    assert tie is not None and tie.plan == Fact("team", at(5))  # at a tie, the later event


def score(minutes: int, risk: float, score_id: str = "") -> RiskScore:
    when = T0 + timedelta(minutes=minutes)
    return RiskScore(
        score_id=score_id or f"00000000-0000-0000-0000-{minutes:012d}", tenant_id="acme",
        account_id="acct-1", model_version="m1", feature_version="f1", ml_risk=risk,
        rule_risk=0.0, risk=risk, tier=RiskTier.HIGH if risk >= 0.7 else RiskTier.LOW,
        reasons=("login_trend low",), score_time=when, expires_at=when + timedelta(days=7),
        trigger_event_id="e",
    )


def test_merge_is_order_safe_whatever_the_order_of_the_records() -> None:
    batches = [
        account_record([traits(1, plan="pro", mrr=100), event("app.login", 0)], DEFAULTS),
        account_record([traits(4, mrr=300), event("subscription.cancelled", 4)], DEFAULTS),
        account_record([traits(2, plan="team", mrr=200, owner="ann")], DEFAULTS),
    ]
    records = [r for r in batches if r is not None]
    records += [score_record(score(90, 0.8)), score_record(score(30, 0.2))]
    assert len(records) == 5
    forward = coalesce_records(records)
    backward = coalesce_records(list(reversed(records)))
    doubled = coalesce_records(records + records)
    assert forward == backward == doubled
    [merged] = forward
    assert (merged.first_seen, merged.last_event_at) == (at(0), at(4))
    assert merged.plan == Fact("team", at(2))
    assert merged.mrr == Fact(300.0, at(4))
    assert merged.owner == Fact("ann", at(2))
    assert merged.status == Fact(AccountStatus.CANCELLED, at(4))
    assert merged.score is not None and merged.score.risk == 0.8


def test_merge_keeps_accounts_apart_and_scores_tie_break_by_id() -> None:
    other = AccountRecord("acme", "acct-2", first_seen=at(1), last_event_at=at(1))
    low_id, high_id = score(10, 0.1, "00000000-0000-0000-0000-00000000000a"), score(
        10, 0.9, "00000000-0000-0000-0000-00000000000b")
    merged = coalesce_records([score_record(high_id), other, score_record(low_id)])
    assert [r.key for r in merged] == [("acme", "acct-1"), ("acme", "acct-2")]
    assert merged[0].score is not None and merged[0].score.score_id == high_id.score_id


def test_lifecycle_event_types_come_from_the_definitions_mapping() -> None:
    """Another product's lifecycle types (the definitions file's lifecycle section) set the
    status and plan; the default types then mean nothing."""
    from detectors.lifecycle import LifecycleRules
    from schemas.lifecycle import ChangeKind

    rules = LifecycleRules({"membership.ended": ChangeKind.CANCELLED,
                            "membership.changed": ChangeKind.PLAN})
    record = account_record([event("membership.changed", 1, to_plan="family", mrr=12),
                             event("membership.ended", 2)], DEFAULTS, rules.kinds)
    assert record is not None
    assert record.status == Fact(AccountStatus.CANCELLED, at(2))
    assert record.plan == Fact("family", at(1))
    assert record.mrr == Fact(12.0, at(1))
    ignored = account_record([event("subscription.cancelled", 3)], DEFAULTS, rules.kinds)
    assert ignored is not None and ignored.status is None


@pytest.mark.parametrize(
    "batch",
    [
        pytest.param([event("app.login", 5)], id="later-activity"),
        pytest.param([event("app.login", -1)], id="earlier-activity"),
        pytest.param([traits(0.5, plan="basic", owner="agent-b")], id="older-traits"),
        pytest.param([traits(7, plan="enterprise", mrr=990)], id="newer-traits"),
        pytest.param([event("subscription.cancelled", 6)], id="status"),
    ],
)
def test_a_batch_folded_into_a_pending_record_is_the_merge(batch: list[Any]) -> None:
    """A shard's pending record, folded in place, is the records merged in order."""
    first = account_record([traits(1, plan="pro", owner="agent-a"), event("app.login", 3)],
                           DEFAULTS)
    assert first is not None
    pending = PendingRecord("acme", "acct-1")
    pending.add_events([traits(1, plan="pro", owner="agent-a"), event("app.login", 3)],
                       DEFAULTS)
    pending.add_score(score(120, 0.4))
    held = first.merge(score_record(score(120, 0.4)))
    assert pending.record() == held
    own = account_record(batch, DEFAULTS)
    assert own is not None
    pending.add_events(batch, DEFAULTS)
    assert pending.record() == held.merge(own)


def test_a_batch_that_moves_nothing_leaves_the_pending_record() -> None:
    pending = PendingRecord("acme", "acct-1")
    pending.add_events([event("app.login", 1), event("app.login", 4)], DEFAULTS)
    before = pending.record()
    pending.add_events([event("app.login", 2)], DEFAULTS)
    pending.add_events([], DEFAULTS)
    assert pending.record() == before
    assert PendingRecord.of(before).record() == before


@pytest.mark.parametrize(("minutes", "newer"), [(240, True), (60, False)])
def test_a_score_folded_into_a_pending_record_is_the_merge(minutes: int, newer: bool) -> None:
    """The score's record merged in; an older score leaves the record's."""
    pending = PendingRecord("acme", "acct-1")
    pending.add_events([traits(1, plan="pro"), event("app.login", 3)], DEFAULTS)
    pending.add_score(score(120, 0.4))
    held = pending.record()
    published = score(minutes, 0.8)
    pending.add_score(published)
    folded = pending.record()
    assert folded == held.merge(score_record(published))
    assert (folded.score == held.score) is not newer
    assert folded.plan == held.plan and folded.last_event_at == at(3)
