"""dataflows.shard: a shard of accounts gives each account exactly what it would get
alone, routes outputs by destination, and keeps its state bounded and recoverable."""

from __future__ import annotations

import pickle
import zlib
from datetime import UTC, datetime, timedelta

import pytest

from accounts.config import AccountConfig
from accounts.processor import AccountProcessor
from dataflows.shard import (
    EVICTION_CHECK,
    AccountShard,
    ShardConfig,
    shard_key,
    shard_of,
)
from dataflows.state_codec import ZSTD_MAGIC, StateCodec
from detectors.tier1 import DEFAULT_TIER1_RULES
from featurestore.aggregation import CompiledFeatures
from featurestore.definitions import load_definitions
from schemas.alert import Alert
from schemas.dead_letter import LateEvent
from schemas.event import Event
from tests.builders import T0, make_event

CONFIG = AccountConfig(86_400.0, 1_000, DEFAULT_TIER1_RULES, CompiledFeatures(load_definitions()))
NOW = datetime(2026, 10, 2, tzinfo=UTC)
PINNED = 1  # zlib.crc32(b"acme:acct-1") % 64


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


def shard(clock: Clock | None = None, snapshot: object = None) -> AccountShard:
    config = ShardConfig(CONFIG, idle_ttl=timedelta(days=40), flush_interval=timedelta(seconds=5))
    return AccountShard(config, clock or Clock(), snapshot)  # type: ignore[arg-type]


def events(account: str, count: int, **overrides: object) -> list[Event]:
    return [
        make_event(
            event_id=f"{account}-{i}",
            account_id=account,
            event_time=T0 + timedelta(hours=i),
            **overrides,  # type: ignore[arg-type]
        )
        for i in range(count)
    ]


def test_shard_of_is_stable_and_spread() -> None:
    assert shard_of("acme:acct-1", 64) == shard_of("acme:acct-1", 64)
    assert shard_of("acme:acct-1", 64) == PINNED  # a change would reshuffle recovered state
    spread = {shard_of(f"acme:acct-{i}", 64) for i in range(1_000)}
    assert len(spread) == 64
    assert shard_key(7) == "shard-0007"


def test_each_account_gets_what_it_would_get_alone() -> None:
    a = events("a", 30, event_type="billing.payment_failed")
    b = events("b", 30)
    together = shard().process([a[:10] + b[:10], a[10:] + b[10:]])
    alone_a = AccountProcessor(CONFIG).process(a).outputs
    alone_b = AccountProcessor(CONFIG).process(b).outputs
    expected_alerts = [o for o in alone_a + alone_b if isinstance(o, Alert)]
    assert sorted(together.alerts, key=lambda x: x.alert_id) == sorted(
        expected_alerts, key=lambda x: x.alert_id
    )
    assert len(together.alerts) == 30


def test_outputs_are_routed_by_destination() -> None:
    late = make_event(event_id="late", account_id="a", event_time=T0 - timedelta(days=3))
    out = shard().process([events("a", 5), [late], [make_event(
        event_id="cxl", account_id="c", event_type="subscription.cancelled"
    )]])
    assert [type(x) for x in out.late] == [LateEvent]
    assert [c.account_id for c in out.cancellations] == ["c"]
    assert out.late_events == 1 and not out.scores and not out.decided


def test_duplicates_are_counted_not_routed() -> None:
    batch = events("a", 3)
    out = shard().process([batch, batch])
    assert out.duplicates == 3


def test_features_are_written_once_per_flush_interval() -> None:
    clock = Clock()
    account_shard = shard(clock)
    account_shard.process([events("a", 3), events("b", 2)])
    assert account_shard.notify_at() == NOW + timedelta(seconds=5)
    assert not account_shard.on_notify().features  # not due yet
    clock.now = NOW + timedelta(seconds=5)
    flushed = account_shard.on_notify().features
    assert sorted(u.account_id for u in flushed) == ["a", "b"]
    assert not account_shard.on_notify().features  # nothing changed since


def test_idle_accounts_are_forgotten() -> None:
    clock = Clock()
    account_shard = shard(clock)
    account_shard.process([events("a", 2)])
    clock.now = NOW + timedelta(days=20)
    account_shard.process([events("b", 2)])
    clock.now = NOW + timedelta(days=40) + EVICTION_CHECK
    account_shard.on_notify()
    assert len(account_shard) == 1  # a went quiet 40 days ago; b did not


def test_snapshot_restores_every_account_and_writes_features_once_more() -> None:
    account_shard = shard()
    account_shard.process([events("a", 5), events("b", 5)])
    frozen = pickle.loads(pickle.dumps(account_shard.snapshot()))
    restored = shard(snapshot=frozen)
    assert len(restored) == 2
    assert sorted(u.account_id for u in restored.on_eof().features) == ["a", "b"]
    # the restored accounts remember what they saw: the same events are duplicates
    assert restored.process([events("a", 5)]).duplicates == 5


def test_a_snapshot_repickles_only_touched_accounts() -> None:
    account_shard = shard()
    account_shard.process([events("a", 5), events("b", 5)])
    first = account_shard.snapshot()[0]
    # b's kept bytes marked: an epoch that packed b again would overwrite them
    account_shard._frozen["acme:b"] = b"kept as they were"
    account_shard.process([events("a", 6)[5:]])
    second = account_shard.snapshot()[0]
    assert second["acme:b"] == b"kept as they were"
    assert second["acme:a"] != first["acme:a"]


def test_accounts_an_epoch_went_by_without_go_cold_and_come_back_the_same() -> None:
    clock = Clock()
    cooled, warm = shard(clock), shard(clock)
    a, b = events("a", 30, event_type="billing.payment_failed"), events("b", 30)
    for account_shard in (cooled, warm):
        account_shard.process([a[:10], b[:10]])
    cooled.snapshot()
    assert cooled.warm == 2  # both had news this epoch
    clock.now = NOW + timedelta(seconds=5)
    assert cooled.on_notify().features == warm.on_notify().features  # nothing pending now
    assert cooled.process([a[10:20]]) == warm.process([a[10:20]])
    cooled.snapshot()
    assert cooled.warm == 1 and len(cooled) == 2  # b: its bytes only
    # b comes back from its bytes and carries on exactly as the never-cooled b
    assert cooled.process([b[10:], a[20:]]) == warm.process([b[10:], a[20:]])
    assert cooled.on_eof() == warm.on_eof()


def test_a_restart_writes_again_only_the_features_pending_at_the_snapshot() -> None:
    clock = Clock()
    account_shard = shard(clock)
    account_shard.process([events("a", 5), events("b", 5)])
    clock.now = NOW + timedelta(seconds=5)
    account_shard.on_notify()  # both written
    account_shard.process([events("a", 6)[5:]])  # a changed again, not yet written
    restored = shard(clock, snapshot=pickle.loads(pickle.dumps(account_shard.snapshot())))
    assert restored.warm == 0  # nothing unpickled until it is needed
    assert [u.account_id for u in restored.on_notify().features] == ["a"]
    # a snapshot from before the pending set was kept: every account, as before
    processors, risks, *_ = account_shard.snapshot()
    assert len(shard(clock, snapshot=(processors, risks)).on_notify().features) == 2
    # ... and from before the states were compressed: the pickles themselves
    plain = {subject: StateCodec().unpack(blob) for subject, blob in processors.items()}
    assert all(len(plain[s]) > len(processors[s]) for s in plain)  # compressed now
    old = shard(clock, snapshot=(plain, risks))
    assert old.process([events("a", 6)]).duplicates == 6  # a remembers its events
    # ... and from when they were compressed with zlib (they are zstd frames now)
    assert all(blob[:4] == ZSTD_MAGIC for blob in processors.values())
    zlibbed = {subject: zlib.compress(state, 1) for subject, state in plain.items()}
    assert all(blob[:4] != ZSTD_MAGIC for blob in zlibbed.values())
    older = shard(clock, snapshot=(zlibbed, risks))
    assert older.process([events("a", 6)]).duplicates == 6


@pytest.mark.parametrize("shards", [1, 8, 64])
def test_the_shard_count_does_not_change_outputs(shards: int) -> None:
    streams = [events(f"acct-{i}", 12, event_type="billing.payment_failed") for i in range(20)]
    by_shard: dict[int, list[Event]] = {}
    for stream in streams:
        for event in stream:
            by_shard.setdefault(shard_of(event.subject, shards), []).append(event)
    alerts = []
    for group in by_shard.values():
        alerts += shard().process([group]).alerts
    assert len(alerts) == 240
    assert len({a.alert_id for a in alerts}) == 240


def test_a_recovery_directory_keeps_its_shard_count(tmp_path: object) -> None:
    from pathlib import Path

    from dataflows.run import RecoveryLayoutError, recovery_config

    directory = Path(str(tmp_path)) / "recovery"
    assert recovery_config(directory, 1, shards=64) is not None
    assert recovery_config(directory, 1, shards=64) is not None  # the same: fine
    with pytest.raises(RecoveryLayoutError, match="holds state for 64 shards, not 16"):
        recovery_config(directory, 1, shards=16)


def on_day(account: str, *days: float, **overrides: object) -> list[Event]:
    return [
        make_event(
            event_id=f"{account}-{day}",
            account_id=account,
            event_time=T0 + timedelta(days=day),
            **overrides,  # type: ignore[arg-type]
        )
        for day in days
    ]


def test_accounts_idle_in_event_time_are_forgotten_while_the_wall_clock_stands() -> None:
    account_shard = shard()  # a replay: the wall clock does not move
    account_shard.process([on_day("a", 0)])
    account_shard.process([on_day("b", 20, 39)])
    assert len(account_shard) == 2  # a's newest event is 39 days behind: kept
    account_shard.process([on_day("b", 41)])
    assert len(account_shard) == 1  # 41 days (minus the lateness) past it: forgotten
    # the snapshot carries the event times: a restored shard forgets by them too
    account_shard.process([on_day("c", 42)])
    restored = shard(snapshot=pickle.loads(pickle.dumps(account_shard.snapshot())))
    restored.process([on_day("d", 82)])
    assert len(restored) == 2  # b is 41 days behind d, c 40: b goes


def test_risk_states_idle_in_event_time_are_forgotten() -> None:
    account_shard = scored_shard(Clock())
    account_shard.process([on_day("a", 0, event_type="billing.payment_failed")])
    assert account_shard.risk_states == 1  # a high tier and a decision to remember
    def held() -> set[str]:
        return set(account_shard._risk) | set(account_shard._risk_frozen)

    account_shard.process([on_day("b", 20)])
    assert "acme:a" in held()  # 20 days: within the policy's 21-day memory
    account_shard.process([on_day("b", 22)])
    assert "acme:a" not in held()  # 22 days
    # cold (not unpickled), a risk state goes by its own TTL all the same; a cancelled
    # account's decisions are remembered 90 days (a final invoice must not dun it)
    account_shard.process([on_day("c", 100, event_type="billing.payment_failed"),
                           on_day("d", 100, event_type="billing.payment_failed")])
    account_shard.process([[make_event(event_id="d-cancel", account_id="d",
                                       event_type="subscription.cancelled",
                                       event_time=T0 + timedelta(days=100, hours=1))]])
    account_shard.snapshot()
    account_shard.snapshot()  # an epoch without news: both risk states are cold
    assert not account_shard._risk
    account_shard.process([on_day("b", 120)])
    assert {"acme:c", "acme:d"} <= held()  # 20 days
    account_shard.process([on_day("b", 122)])
    assert "acme:c" not in held() and "acme:d" in held()  # 22 days
    account_shard.process([on_day("b", 189)])
    assert "acme:d" in held()  # 89 days
    account_shard.process([on_day("b", 191)])
    assert "acme:d" not in held()  # 91 days


def scored_shard(
    clock: Clock, warm_accounts: int | None = None, snapshot: object = None
) -> AccountShard:
    from churnwatch.settings import Settings
    from churnwatch.wiring import flow_config

    flow = flow_config(Settings())
    assert flow.scoring is not None
    config = ShardConfig(
        flow.account,
        idle_ttl=flow.idle_state_ttl,
        flush_interval=timedelta(seconds=5),
        score=flow.scoring.score,
        decisions=flow.scoring.decisions,
        policy=flow.scoring.policy,
        warm_accounts=warm_accounts,
    )
    return AccountShard(config, clock, snapshot)  # type: ignore[arg-type]


def test_under_the_warm_cap_an_epoch_without_news_leaves_accounts_live() -> None:
    clock = Clock()
    capped, cooled = scored_shard(clock, warm_accounts=10), scored_shard(clock)
    a = events("a", 20, event_type="billing.payment_failed")
    b = events("b", 20)
    for account_shard in (capped, cooled):
        account_shard.process([a[:10], b[:10]])
        account_shard.snapshot()
    clock.now = NOW + timedelta(seconds=5)
    assert capped.on_notify() == cooled.on_notify()  # both written: nothing pending
    for account_shard in (capped, cooled):
        account_shard.process([a[10:15]])
    assert capped.snapshot()[0] == cooled.snapshot()[0]  # the same bytes either way
    # the capped shard keeps b live (its bytes current), the uncapped one only its bytes
    assert (capped.warm, len(capped._risk)) == (2, 2)
    assert (cooled.warm, len(cooled._risk)) == (1, 1)
    assert capped.process([b[10:], a[15:]]) == cooled.process([b[10:], a[15:]])
    clock.now = NOW + timedelta(seconds=10)
    assert capped.on_notify() == cooled.on_notify()
    assert capped.on_eof() == cooled.on_eof()


def test_past_the_warm_cap_the_least_recent_accounts_go_cold_and_act_the_same() -> None:
    clock = Clock()
    capped, free = scored_shard(clock, warm_accounts=2), scored_shard(clock)
    names = ["a", "b", "c", "d", "e"]
    kinds = ["billing.payment_failed", "feature.used", "user.login"]
    history = {n: events(n, 24, event_type=kinds[i % 3]) for i, n in enumerate(names)}
    for step in range(4):  # each batch: a few events of every account, then two again
        batch = [history[n][step * 5:step * 5 + 5] for n in names]
        batch.append(history["a"][step * 5 + 5:step * 5 + 6])
        assert capped.process(batch) == free.process(batch)
        # at most two live: the two a batch ran last (it runs them in order of first news)
        assert list(capped._accounts) == ["acme:d", "acme:e"] and len(capped._risk) <= 2
        if step == 1:
            assert capped.snapshot()[0] == free.snapshot()[0]  # the same bytes, packed early
    clock.now = NOW + timedelta(seconds=5)
    assert capped.on_notify() == free.on_notify()  # the cold ones' features, thawed to write
    assert capped.warm == 2  # and not kept live
    assert capped.on_eof() == free.on_eof()
    restored = scored_shard(clock, 2, pickle.loads(pickle.dumps(capped.snapshot())))
    batch = [history[n][20:] for n in names]
    assert restored.process(batch) == free.process(batch)
