"""A shard's account records (the accounts table): one per account moved since the last
flush, its events and published primary scores folded in, written with the features and
kept in the snapshot until then; none without the accounts sink; none of an account
erased."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from accounts.record import AccountTraits
from dataflows.shard import AccountShard, ShardConfig
from schemas.account import AccountStatus, Fact
from schemas.erasure import Erasure
from schemas.event import TRAITS_EVENT_TYPE
from tests.builders import T0, make_event
from tests.unit.dataflows.test_shard import CONFIG, Clock


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def batch() -> list[object]:
    return [
        make_event(event_id="a1", account_id="a", event_time=at(1)),
        make_event(event_id="a2", account_id="a", event_type=TRAITS_EVENT_TYPE,
                   event_time=at(2), attributes={"plan": "pro", "mrr": 100}),
        make_event(event_id="a2", account_id="a", event_type=TRAITS_EVENT_TYPE,  # a copy
                   event_time=at(2), attributes={"plan": "pro", "mrr": 100}),
        make_event(event_id="b1", account_id="b", event_type="subscription.cancelled",
                   event_time=at(3)),
        make_event(event_id="a3", account_id="a", event_time=at(4)),
    ]


ACCOUNTS = ShardConfig(CONFIG, idle_ttl=timedelta(days=40), flush_interval=timedelta(seconds=5),
                       account_traits=AccountTraits())


def test_one_record_per_account_per_flush() -> None:
    shard = AccountShard(ACCOUNTS, Clock())
    first, second = batch()[:3], batch()[3:]
    assert shard.process([first]).accounts == []  # held until the flush
    assert shard.process([second]).accounts == []  # type: ignore[list-item]
    out = shard.on_eof()
    records = {r.account_id: r for r in out.accounts}
    assert sorted(records) == ["a", "b"] and len(out.accounts) == 2
    a = records["a"]
    assert (a.first_seen, a.last_event_at) == (at(1), at(4))
    assert (a.plan, a.mrr) == (Fact("pro", at(2)), Fact(100.0, at(2)))
    assert records["b"].status == Fact(AccountStatus.CANCELLED, at(3))
    assert shard.on_eof().accounts == []  # written once
    only_records = AccountShard(ACCOUNTS, Clock())
    only_records.process([batch()])  # type: ignore[list-item]
    only_records._dirty.clear()
    assert only_records.on_eof()  # a bundle with only account records is not empty


def test_records_not_yet_written_survive_a_restart() -> None:
    clock = Clock()
    shard = AccountShard(ACCOUNTS, clock)
    shard.process([batch()])  # type: ignore[list-item]
    restored = AccountShard(ACCOUNTS, clock, snapshot=shard.snapshot())
    assert restored.notify_at() <= clock()  # due at once
    records = {r.account_id: r for r in restored.on_notify().accounts}
    assert sorted(records) == ["a", "b"]
    assert records["a"].plan == Fact("pro", at(2))


def test_no_records_without_the_accounts_sink() -> None:
    config = ShardConfig(CONFIG, idle_ttl=timedelta(days=40), flush_interval=timedelta(seconds=5))
    out = AccountShard(config, Clock()).process([batch()])  # type: ignore[list-item]
    assert out.accounts == []


def test_an_account_erased_in_the_batch_has_no_record() -> None:
    config = ShardConfig(CONFIG, idle_ttl=timedelta(days=40),
                         flush_interval=timedelta(seconds=5), account_traits=AccountTraits())
    erasure = Erasure("9c1c7a43-6a0e-4c43-8c1e-6b1f0c7d2a10", "acme", "a", None,
                      datetime(2026, 10, 1, 18, 0, tzinfo=UTC))
    shard = AccountShard(config, Clock())
    shard.process([batch()[:2]])  # type: ignore[list-item]  # held, not yet written
    out = shard.process([[erasure]])  # type: ignore[list-item]
    assert [r.account_id for r in [*out.accounts, *shard.on_eof().accounts]] == []


def test_published_scores_join_their_accounts_record() -> None:
    from churnwatch.settings import Settings
    from churnwatch.wiring import flow_config

    flow = flow_config(Settings())
    assert flow.scoring is not None
    config = ShardConfig(
        flow.account, idle_ttl=flow.idle_state_ttl, flush_interval=timedelta(seconds=5),
        score=flow.scoring.score, decisions=flow.scoring.decisions, policy=flow.scoring.policy,
        account_traits=AccountTraits(),
    )
    shard = AccountShard(config, Clock())
    out = shard.process([[
        make_event(event_id="p1", account_id="a", event_type="billing.payment_failed",
                   event_time=at(1)),
    ]])
    primary = [s for s in out.scores if not s.shadow]
    assert primary, "a decisive event publishes a score"
    [record] = shard.on_eof().accounts
    assert record.score is not None
    assert (record.score.score_id, record.score.risk, record.score.tier) == (
        primary[-1].score_id, primary[-1].risk, str(primary[-1].tier))
    assert record.last_event_at == at(1)
