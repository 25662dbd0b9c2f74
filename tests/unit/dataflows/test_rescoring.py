"""Rescoring of silent accounts at each event-time day close (issue 13, part 5).

A silent account sends nothing to react to, so its input partition's watermark
decides: when it closes a day the account was silent through, the account is
scored again as of that day's end. These run the production dataflow (the
shipped definitions, model and policy) over a testing source.
"""

from __future__ import annotations

import zlib
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any

import pytest
from bytewax.connectors.kafka import KafkaSourceMessage
from bytewax.testing import TestingSink, cluster_main, run_main
from prometheus_client import CollectorRegistry

from churnwatch.errors import ConfigurationError
from churnwatch.settings import Settings
from churnwatch.simulator import simulate
from churnwatch.wiring import flow_config
from dataflows.flow import FlowSinks, build_dataflow
from dataflows.metrics import PipelineMetrics
from dataflows.parse import MessageParser, ParsingSource
from dataflows.shard import AccountShard, DayClosed, ShardConfig, shard_key
from detectors.inactivity import AbsenceTracking
from detectors.usage import InactivityRule
from featurestore.definitions import load_definitions
from schemas.alert import Alert
from schemas.clock import EventClock, day_of
from schemas.erasure import Erasure
from schemas.event import Event, EventLimits
from schemas.score import RiskScore
from tests.builders import event_bytes, make_event
from tests.unit.dataflows.sources import Partitions
from tests.unit.dataflows.test_fast_lane import RecordingWriter, lane

START = datetime(2026, 10, 1, tzinfo=UTC)
NOW = START + timedelta(days=60)


def partitioned(values: list[bytes], keys: list[bytes], partitions: int, batch: int
                ) -> Partitions:
    """The messages spread over ``partitions`` by key (as Kafka keys them), each
    partition in the messages' order, cut in batches of ``batch``."""
    lists: list[list[KafkaSourceMessage[Any, bytes]]] = [[] for _ in range(partitions)]
    for value, key in zip(values, keys, strict=True):
        n = zlib.crc32(key) % partitions
        lists[n].append(KafkaSourceMessage(key=key, value=value, topic="churn.events",
                                           partition=n, offset=len(lists[n])))
    return Partitions([[part[i:i + batch] for i in range(0, len(part), batch)]
                       for part in lists])


def run(source: Partitions, settings: Settings, workers: int = 1) -> dict[str, list[Any]]:
    names = ("scores", "decisions", "alerts")
    out: dict[str, list[Any]] = {name: [] for name in names}
    discard: list[Any] = []
    sinks = FlowSinks(
        dead_letters=TestingSink(discard), alerts_kafka=TestingSink(out["alerts"]),
        alerts_postgres=TestingSink(discard), cancellations=TestingSink(discard),
        late_events=TestingSink(discard), features=TestingSink(discard),
        usage_signals=TestingSink(discard), risk_scores=TestingSink(out["scores"]),
        decisions=TestingSink(out["decisions"]), workflows_kafka=TestingSink(discard),
    )
    config = flow_config(settings, load_definitions())
    flow = build_dataflow(source, sinks, config, PipelineMetrics.create(CollectorRegistry()),
                          clock=lambda: NOW)
    if workers == 1:
        run_main(flow)
    else:
        cluster_main(flow, [], 0, worker_count_per_proc=workers)
    return out


def shard_config(settings: Settings) -> ShardConfig:
    """A shard's config as the production flow builds it (scoring and decisions on)."""
    flow = flow_config(settings, load_definitions())
    assert flow.scoring is not None
    return ShardConfig(flow.account, idle_ttl=flow.idle_state_ttl,
                       flush_interval=timedelta(seconds=5), score=flow.scoring.score,
                       decisions=flow.scoring.decisions, policy=flow.scoring.policy)


def day_closes(scores: list[RiskScore], account: str) -> list[RiskScore]:
    return sorted((s for s in scores if s.account_id == account and not s.shadow
                   and s.trigger_event_id.startswith("day-close:")),
                  key=lambda s: s.score_time)


def quiet_and_busy(silent_from: int = 10, days: int = 21) -> tuple[list[bytes], list[bytes]]:
    """``quiet`` logs in four times a day until day ``silent_from``, then says nothing;
    ``busy`` logs in every two hours throughout, so the partition's days close."""
    values: list[tuple[datetime, bytes, bytes]] = []
    for hour in range(0, days * 24, 2):
        at = START + timedelta(hours=hour)
        values.append((at, b"busy", event_bytes(
            event_id=f"b{hour}", account_id="busy", user_id="u-b",
            event_time=at.isoformat().replace("+00:00", "Z"))))
        if hour % 6 == 0 and hour < silent_from * 24:
            values.append((at + timedelta(minutes=1), b"quiet", event_bytes(
                event_id=f"q{hour}", account_id="quiet", user_id=f"u-{hour % 3}",
                event_time=(at + timedelta(minutes=1)).isoformat().replace("+00:00", "Z"))))
    values.sort(key=lambda v: v[0])
    return [v[2] for v in values], [v[1] for v in values]


def test_a_silent_account_is_rescored_at_each_day_close_and_its_risk_rises() -> None:
    values, keys = quiet_and_busy(silent_from=10, days=21)
    every = Settings(recovery_dir=None, score_min_change=0.0)
    out = run(partitioned(values, keys, 1, 50), every)

    closes = day_closes(out["scores"], "quiet")
    # Days 10 to 19 close while busy's events go on (day 20 closes only past the input's
    # end plus the lateness); each is scored as of its last moment.
    assert [s.trigger_event_id for s in closes] == [
        f"day-close:{(START + timedelta(days=d)).date().isoformat()}" for d in range(10, 20)
    ]
    assert all(s.score_time == START + timedelta(days=d + 1, milliseconds=-1)
               for s, d in zip(closes, range(10, 20), strict=True))
    # its recency grows and its windows empty: the model's risk rises with the silence
    risks = [s.ml_risk for s in closes]
    assert risks[-1] > risks[0] + 0.1, risks
    assert sum(b > a for a, b in pairwise(risks)) >= 7, risks
    # while active it was scored by its events, never at a day close; busy never is
    assert min(s.score_time for s in closes) > START + timedelta(days=10)
    assert not day_closes(out["scores"], "busy")

    # Published on change (the default): the rising risk is published as it moves,
    # and the silent account's published score never lapses.
    published = day_closes(run(partitioned(values, keys, 1, 50), Settings(recovery_dir=None))
                           ["scores"], "quiet")
    assert published and {s.score_id for s in published} <= {s.score_id for s in closes}
    standing = [s for s in out["scores"] if s.account_id == "quiet"]
    assert max(s.expires_at for s in standing) > START + timedelta(days=20)


def test_rescoring_can_be_turned_off_and_is_bounded_below_the_state_ttl() -> None:
    values, keys = quiet_and_busy(silent_from=10, days=15)
    off = Settings(recovery_dir=None, score_min_change=0.0, rescore_silent=timedelta(0))
    assert not day_closes(run(partitioned(values, keys, 1, 50), off)["scores"], "quiet")
    # silent 3 days at most: its last event is at 18:01 on day 9, so days 10 and 11
    # (October 11 and 12) end 1.25 and 2.25 days after it, day 12 3.25 days
    short = Settings(recovery_dir=None, score_min_change=0.0,
                     rescore_silent=timedelta(days=3))
    closes = day_closes(run(partitioned(values, keys, 1, 50), short)["scores"], "quiet")
    assert [s.trigger_event_id[-2:] for s in closes] == ["11", "12"]
    with pytest.raises(ConfigurationError, match="RESCORE_SILENT_SECONDS"):
        flow_config(Settings(recovery_dir=None, rescore_silent=timedelta(days=34)))


def test_a_cancelled_account_is_not_rescored_until_it_reactivates() -> None:
    values, keys = quiet_and_busy(silent_from=5, days=16)

    def at(day: float, event_id: str, event_type: str) -> tuple[bytes, bytes]:
        when = (START + timedelta(days=day)).isoformat().replace("+00:00", "Z")
        return event_bytes(event_id=event_id, account_id="quiet", event_type=event_type,
                           event_time=when, attributes={"reason_code": "price"}), b"quiet"

    extra = [at(4.9, "cancel", "subscription.cancelled"),
             at(9.5, "back", "subscription.reactivated")]
    merged = sorted([*zip(values, keys, strict=True), *extra],
                    key=lambda vk: vk[0].split(b'"event_time":"')[1][:24])
    out = run(partitioned([v for v, _ in merged], [k for _, k in merged], 1, 50),
              Settings(recovery_dir=None, score_min_change=0.0))
    closes = day_closes(out["scores"], "quiet")
    # cancelled on day 4: days 5 to 9 (October 6 to 10) go unscored; reactivated on day 9,
    # silent after it: days 10 to 14 (October 11 to 15) are
    assert [s.trigger_event_id[-2:] for s in closes] == ["11", "12", "13", "14", "15"]


def test_rescoring_is_the_same_whatever_the_batching_partitions_and_workers() -> None:
    simulation = simulate(accounts=40, days=16, seed=3, start=START)
    values = [m.value for m in simulation.messages]
    keys = [m.key or b"" for m in simulation.messages]
    settings = Settings(recovery_dir=None)

    def found(source: Partitions, workers: int = 1) -> dict[str, set[Any]]:
        out = run(source, settings, workers)
        return {
            "scores": {(s.score_id, s.risk, s.tier, s.trigger_event_id) for s in out["scores"]},
            "decisions": {repr(d) for d in out["decisions"]},
            "alerts": {a.alert_id for a in out["alerts"]},
        }

    reference = found(partitioned(values, keys, 1, 1_000))
    rescored = {s for s in reference["scores"] if s[3].startswith("day-close:")}
    assert len(rescored) > 20
    assert found(partitioned(values, keys, 1, 7)) == reference
    assert found(partitioned(values, keys, 3, 64)) == reference
    assert found(partitioned(values, keys, 3, 5), workers=2) == reference


def test_the_parse_step_puts_a_day_close_in_every_shard_before_the_event_that_closes_it(
) -> None:
    parser = MessageParser(EventLimits(), lambda: NOW, PipelineMetrics.create(CollectorRegistry()),
                           shards=4, shards_score=True)
    hours = [1, 20, 25, 26, 50]  # with 1 h of lateness, 25:00 closes day 0, 50:00 day 1
    batch = [KafkaSourceMessage(key=None, value=event_bytes(
        event_id=f"e{h}", account_id=f"a{h}",
        event_time=(START + timedelta(hours=h)).isoformat().replace("+00:00", "Z")),
        topic="t", partition=2, offset=n) for n, h in enumerate(hours)]
    source = ParsingSource(Partitions([[batch[:3], batch[3:]]]), parser,
                           day_closes=EventClock(3600.0))
    part = source.build_part("in", "0", None)
    first = dict(item for item in part.next_batch() if type(item) is tuple)
    day0 = day_of(START.timestamp())
    assert sorted(first) == [shard_key(n) for n in range(4)]  # every shard hears of it
    for items in first.values():
        closes = [n for n, item in enumerate(items) if type(item) is DayClosed]
        assert [items[n] for n in closes] == [DayClosed(2, day0)]
        events = [item.event_id for item in items if type(item) is not DayClosed]
        # before e25 (which closed it), after e1 and e20, wherever they are
        assert all(e in {"e1", "e20"} for e in events[:closes[0]])
        assert all(e == "e25" for e in events[closes[0]:])
    # the partition's snapshot keeps the day closed: a resumed one goes on from there
    snapshot = part.snapshot()
    assert snapshot[0] == 1 and snapshot[4] == day0
    resumed = source.build_part("in", "0", snapshot)
    second = [i for item in resumed.next_batch() if type(item) is tuple for i in item[1]]
    assert [i for i in second if type(i) is DayClosed] == [DayClosed(2, day0 + 1)] * 4
    # without scoring, no day closes
    plain = ParsingSource(Partitions([[batch]]), MessageParser(
        EventLimits(), lambda: NOW, PipelineMetrics.create(CollectorRegistry()), shards=4))
    items = [i for item in plain.build_part("in", "0", None).next_batch()
             if type(item) is tuple for i in item[1]]
    assert len(items) == 5 and not any(type(i) is DayClosed for i in items)


def test_a_finished_silence_s_alert_comes_at_the_next_day_close_whatever_the_batching(
) -> None:
    """An account silent 7 days 3 hours comes back before the next day's start, so only
    the finished silence says so. Its alert goes to the account's shard, among its events
    and scores, at the day close after the watermark passed the silence's due moment,
    not where a batch happened to end; at the end of the input, if no day close comes."""
    rule = InactivityRule(days=7)

    def tracking(snapshot: Any) -> AbsenceTracking:
        return AbsenceTracking([(rule, lambda t: t.startswith("app."))], 3600.0, "v1",
                               snapshot=snapshot)

    def value(n: int, account: str, hours: float) -> bytes:
        when = (START + timedelta(hours=hours)).isoformat().replace("+00:00", "Z")
        return event_bytes(event_id=f"{account}-{n}", account_id=account,
                           event_type="app.login", event_time=when)

    # a: day 0 09:00, then day 7 12:00 (due day 7 09:00), 13:00, 14:00; b speaks daily
    plan = [("a", 9.0), *(("b", 24.0 * d + 10) for d in range(1, 8)), ("a", 180.0),
            ("a", 181.0), ("b", 181.5), ("a", 182.0), ("b", 193.0), ("b", 194.0)]
    values = [value(n, account, hours) for n, (account, hours) in enumerate(plan)]
    keys = [account.encode() for account, _ in plan]

    def shard_items(batch: int, upto: int, with_lane: bool = False) -> list[Any]:
        parser = MessageParser(EventLimits(), lambda: NOW,
                               PipelineMetrics.create(CollectorRegistry()), shards=1,
                               shards_score=True)
        tier1 = lane(RecordingWriter())[0] if with_lane else None
        source = ParsingSource(partitioned(values[:upto], keys[:upto], 1, batch),
                               parser, lane=None if tier1 is None else lambda: tier1,
                               absences=tracking, day_closes=EventClock(3600.0))
        part = source.build_part("in", "0", None)
        items: list[Any] = []
        with pytest.raises(StopIteration):
            while True:
                items += [i for out in part.next_batch() if type(out) is tuple for i in out[1]]
        part.close()
        return [i.event_id if isinstance(i, Event) else i for i in items]

    whole = shard_items(len(plan), len(plan))
    alerts = [n for n, item in enumerate(whole) if isinstance(item, Alert)]
    assert len(alerts) == 1 and whole[alerts[0]].rule == "inactivity"
    # after day 7's close (b's 193:00 closed it), before the event that closed it
    day7 = day_of(START.timestamp()) + 7
    assert whole[alerts[0] - 1] == DayClosed(0, day7) and whole[alerts[0] + 1] == "b-12"
    for batch in (1, 2, 9, 10):
        assert shard_items(batch, len(plan)) == whole
    # without day 7's close: at the end of the input, after every event
    ended = shard_items(3, 12)
    assert isinstance(ended[-1], Alert) and ended[:-1] == [i for i in whole[:alerts[0] - 1]
                                                          if not isinstance(i, Alert)]
    # the same from a partition with the tier-1 lane (a Kafka input read to its end)
    assert shard_items(3, 12, with_lane=True) == ended
    assert shard_items(4, len(plan), with_lane=True) == whole


def test_a_shard_rescores_the_closing_partition_s_accounts_also_after_a_restart() -> None:
    config = shard_config(Settings(recovery_dir=None, score_min_change=0.0))

    def login(account: str, partition: int) -> Event:
        return make_event(event_id=f"{account}-1", account_id=account, partition=partition,
                          event_time=START + timedelta(hours=9))

    day3 = day_of(START.timestamp()) + 3
    shard = AccountShard(config, lambda: NOW)
    shard.process([[login("a", 0)], [login("b", 1)]])
    restored = AccountShard(config, lambda: NOW, shard.snapshot())
    rescored = restored.process([[DayClosed(0, day3)]]).scores
    assert [(s.account_id, s.trigger_event_id) for s in rescored] == [
        ("a", f"day-close:{(START + timedelta(days=3)).date().isoformat()}")]
    assert restored.process([[DayClosed(1, day3)]]).scores[0].account_id == "b"
    # an account erased is not rescored, nor one erased earlier in the same batch
    erased = restored.process([[Erasure("r-1", "acme", "a", None, START), DayClosed(0, day3 + 1)]])
    assert [e.account_id for e in erased.erasures] == ["a"] and not erased.scores


def test_a_shard_whose_accounts_all_went_silent_forgets_them_as_days_close() -> None:
    config = shard_config(Settings(recovery_dir=None))
    shard = AccountShard(config, lambda: NOW)  # the wall clock stands still
    shard.process([[make_event(event_id="a-1", account_id="a", partition=0,
                               event_time=START + timedelta(hours=9))]])
    first = day_of(START.timestamp())
    for day in range(first, first + 40):  # its partition's other accounts live elsewhere
        shard.process([[DayClosed(0, day)]])
    assert len(shard) == 1  # 40 days: not yet past the state's 40-day TTL
    shard.process([[DayClosed(0, first + 41)]])
    assert len(shard) == 0
    # its risk state goes by its own TTL (21 days) after its last news, the last rescore
    # (day 29, 30 days of silence at most)
    assert shard.risk_states == 1
    for day in range(first + 42, first + 53):
        shard.process([[DayClosed(0, day)]])
    assert shard.risk_states == 0


def test_an_account_is_forgotten_on_its_own_partition_s_time_not_a_faster_one_s() -> None:
    # Two partitions read at their own pace (a replay with processes, a backlog): the
    # one far ahead must not make the shard forget the other's accounts.
    config = shard_config(Settings(recovery_dir=None))
    shard = AccountShard(config, lambda: NOW)

    def login(account: str, partition: int, day: int) -> Event:
        return make_event(event_id=f"{account}-{day}", account_id=account, partition=partition,
                          event_time=START + timedelta(days=day, hours=9))

    shard.process([[login("slow", 0, 0)], [login("fast", 1, 0)]])
    for day in range(1, 90):
        shard.process([[login("fast", 1, day)]])  # partition 1 runs 89 days ahead
    assert len(shard) == 2 and shard.risk_states == 2  # partition 0 is still at day 0
    restored = AccountShard(config, lambda: NOW, shard.snapshot())  # the same after a restart
    restored.process([[login("fast", 1, 90)]])
    assert len(restored) == 2
    restored.process([[DayClosed(0, day_of(START.timestamp()) + 41)]])  # now partition 0 is
    assert len(restored) == 1


def test_settings_document_the_rescoring() -> None:
    default = Settings()
    assert default.rescore_silent == timedelta(days=30)
    assert Settings.from_env({"CHURNWATCH_RESCORE_SILENT_SECONDS": "0"}).rescore_silent == (
        timedelta(0)
    )
    assert replace(default, rescore_silent=timedelta(days=2)).rescore_silent.days == 2
