"""dataflows.logic: the Bytewax adapter times the shard's snapshot as a stage of its own."""

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
