"""dataflows.logic: the Bytewax adapter times the shard's snapshot as a stage of its own,
and gauges the accounts and state bytes the shards hold."""

from __future__ import annotations

from datetime import timedelta

from prometheus_client import CollectorRegistry

from dataflows.logic import ShardLogic
from dataflows.metrics import PipelineMetrics
from tests.builders import T0, make_event
from tests.unit.dataflows.test_shard import shard


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
