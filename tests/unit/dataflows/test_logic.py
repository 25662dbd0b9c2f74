"""dataflows.logic: the Bytewax adapter times the shard's snapshot as a stage of its own,
and gauges the accounts and state bytes the shards hold."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

from prometheus_client import CollectorRegistry

from dataflows.logic import ShardLogic
from dataflows.metrics import PipelineMetrics
from dataflows.shard import ShardItem
from tests.builders import T0, make_event
from tests.unit.dataflows.test_shard import Clock, events, scored_shard, shard


def test_the_snapshot_is_timed_as_the_snapshot_shards_stage() -> None:
    registry = CollectorRegistry()
    logic = ShardLogic(shard(), PipelineMetrics.create(registry))
    logic.on_batch([[make_event(event_id=f"e{i}", event_time=T0 + timedelta(hours=i))
                     for i in range(3)]])

    def busy(stage: str) -> float:
        value = registry.get_sample_value("churnwatch_stage_busy_seconds_total",
                                          {"stage": stage})
        return 0.0 if value is None else value

    assert busy("snapshot-shards") == 0.0
    snapshot = logic.snapshot()
    assert snapshot[0]  # the account's packed state
    assert busy("snapshot-shards") > 0.0
    assert busy("process-accounts") > 0.0


def test_the_held_accounts_and_state_bytes_are_gauged_across_the_shards() -> None:
    registry = CollectorRegistry()
    metrics = PipelineMetrics.create(registry)
    first, second = ShardLogic(shard(), metrics), ShardLogic(shard(), metrics)

    def gauged() -> tuple[float | None, float | None, float | None]:
        return (registry.get_sample_value("churnwatch_accounts_held", {"state": "warm"}),
                registry.get_sample_value("churnwatch_accounts_held", {"state": "cold"}),
                registry.get_sample_value("churnwatch_account_state_bytes"))

    first.on_batch([[make_event(account_id=name, event_id=f"{name}-1") for name in "ab"]])
    second.on_batch([[make_event(account_id="c", event_id="c-1")]])
    assert gauged() == (3, 0, 0)  # all live, nothing packed yet
    first.snapshot()
    second.snapshot()
    packed = first._shard.state_bytes + second._shard.state_bytes
    assert packed > 0 and gauged() == (3, 0, packed)
    first.on_batch([[make_event(account_id="a", event_id="a-2",
                                event_time=T0 + timedelta(hours=1))]])
    first.on_eof()  # the features written: nothing keeps b live but news
    first.snapshot()  # b: an epoch went by without it, so it is cold now
    assert gauged()[:2] == (2, 1)
    assert gauged()[2] == first._shard.state_bytes + second._shard.state_bytes


def test_the_published_scores_are_counted_by_tier_and_shadow() -> None:
    """A bundle at a time, with the batch's other counts (no Bytewax step per score):
    the counter holds every score that left, the end of input's flush adding none."""
    registry = CollectorRegistry()
    clock = Clock()
    logic = ShardLogic(scored_shard(clock), PipelineMetrics.create(registry))
    published: Counter[tuple[str, str]] = Counter()
    batch: list[list[ShardItem]] = [
        [*events("a", 6)], [*events("b", 3, event_type="billing.payment_failed")]]
    for out in (*logic.on_batch(batch)[0], *logic.on_eof()[0]):
        published.update((str(score.tier), str(score.shadow).lower()) for score in out.scores)
    assert sum(published.values()) >= 2  # each account's first score at least
    counted = {
        (sample.labels["tier"], sample.labels["shadow"]): sample.value
        for metric in registry.collect() if metric.name == "churnwatch_risk_scores"
        for sample in metric.samples if sample.name.endswith("_total")
    }
    assert counted == published
