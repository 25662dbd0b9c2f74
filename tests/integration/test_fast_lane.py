"""The tier-1 fast lane: decisive events' alerts reach Kafka while a slow sink holds the
worker, and nothing is lost or doubled once it lets go."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import orjson
from bytewax.testing import run_main
from prometheus_client import CollectorRegistry

from churnwatch.app import prepare
from churnwatch.settings import Settings
from churnwatch.wiring import production_config, production_sinks
from dataflows.flow import build_dataflow
from dataflows.kafka_input import EventsSource
from dataflows.metrics import PipelineMetrics
from dataflows.outputs import WriterSink
from featurestore.definitions import load_definitions
from schemas.alert import alert_id
from sinks.postgres import PostgresRiskScoreSink
from tests.builders import event_bytes
from tests.integration.kafka_io import produce_all, read_all
from tests.integration.test_pipeline import postgres_rows

# Logins, then two decisive events, all in one input batch: the first batch's risk
# scores (a decisive event is scored at once) meet the gate below.
STREAM = [
    *((b"a1", event_bytes(event_id=f"l{i}", account_id="a1", event_type="app.login"))
      for i in range(5)),
    (b"a1", event_bytes(event_id="pf", account_id="a1", event_type="billing.payment_failed")),
    (b"a2", event_bytes(event_id="ci", account_id="a2", event_type="subscription.cancel_intent")),
    (b"a2", event_bytes(event_id="ci", account_id="a2", event_type="subscription.cancel_intent")),
]
TIER1 = {
    alert_id("acme", "a1", "payment_failed", "pf"),
    alert_id("acme", "a2", "cancel_intent", "ci"),
}


class GatedWriter:
    """A Postgres writer whose first write waits until the test opens the gate."""

    def __init__(self, inner: Any, entered: threading.Event, gate: threading.Event) -> None:
        self._inner, self._entered, self._gate = inner, entered, gate

    def write_batch(self, items: Sequence[Any]) -> None:
        self._entered.set()
        if not self._gate.wait(120):
            msg = "the test never opened the gate"
            raise TimeoutError(msg)
        self._inner.write_batch(items)

    def close(self) -> None:
        self._inner.close()


def run_with_gated_scores(settings: Settings, entered: threading.Event,
                          gate: threading.Event) -> Callable[[], None]:
    """The production flow over the events topic until drained, its risk_scores sink
    gated; returns the function to run (in a thread)."""
    assert settings.kafka_bootstrap and settings.database_url
    prepare(settings)
    metrics = PipelineMetrics.create(CollectorRegistry())
    feature_set = load_definitions(settings.feature_definitions)
    url, schema = settings.database_url, settings.database_schema
    sinks = dataclasses.replace(
        production_sinks(settings, metrics, feature_set),
        risk_scores=WriterSink(
            "postgres-risk-scores",
            lambda: GatedWriter(PostgresRiskScoreSink(url, schema), entered, gate),
            metrics,
        ),
    )
    source = EventsSource(settings.kafka_bootstrap, settings.topics.events, tail=False,
                          batch_size=settings.input_batch_size)
    flow = build_dataflow(source, sinks, production_config(settings, feature_set, metrics),
                          metrics)
    return lambda: run_main(flow, epoch_interval=settings.snapshot_interval)


def tier1_alerts_on_kafka(settings: Settings) -> list[str]:
    assert settings.kafka_bootstrap
    return [orjson.loads(value)["alert_id"]
            for _, value, _ in read_all(settings.kafka_bootstrap, settings.topics.alerts)
            if orjson.loads(value)["tier"] == 1]


def test_tier1_alerts_reach_kafka_while_a_sink_is_stuck(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings("lane", topic_partitions=1)
    assert settings.tier1_fast_lane and settings.kafka_bootstrap
    entered, gate = threading.Event(), threading.Event()
    run = run_with_gated_scores(settings, entered, gate)
    produce_all(settings.kafka_bootstrap, settings.topics.events, STREAM)
    failures: list[BaseException] = []

    def target() -> None:
        try:
            run()
        except BaseException as exc:
            failures.append(exc)

    worker = threading.Thread(target=target, daemon=True)
    worker.start()
    try:
        assert entered.wait(60), "the risk_scores sink was never written"
        seen: list[str] = []
        deadline = time.monotonic() + 60
        while set(seen) != TIER1 and time.monotonic() < deadline:
            seen = tier1_alerts_on_kafka(settings)
        # The worker is still inside the gated write: the alerts did not wait for it.
        assert not gate.is_set() and worker.is_alive()
        assert sorted(seen) == sorted(TIER1)  # each once: the copy of "ci" was not sent
    finally:
        gate.set()
        worker.join(120)
    assert not failures, failures
    assert not worker.is_alive()
    # Once the sink let go: every tier-1 alert in Postgres, none twice on Kafka.
    rows = postgres_rows(settings, "SELECT alert_id::text FROM alerts WHERE tier = 1")
    assert sorted(r[0] for r in rows) == sorted(TIER1)
    assert sorted(tier1_alerts_on_kafka(settings)) == sorted(TIER1)
    assert postgres_rows(settings, "SELECT count(*) FROM risk_scores")[0][0] >= 2


def test_without_the_lane_tier1_alerts_wait_behind_the_stuck_sink(
    make_settings: Callable[..., Settings],
) -> None:
    """The control: the same run with the lane off sends no alert while the sink is
    stuck, so the test above measures the lane, not the scheduling of sinks."""
    settings = make_settings("nolane", topic_partitions=1, tier1_fast_lane=False)
    assert settings.kafka_bootstrap
    entered, gate = threading.Event(), threading.Event()
    run = run_with_gated_scores(settings, entered, gate)
    produce_all(settings.kafka_bootstrap, settings.topics.events, STREAM)
    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    try:
        assert entered.wait(60), "the risk_scores sink was never written"
        time.sleep(1.0)  # what the lane would have delivered by now
        assert tier1_alerts_on_kafka(settings) == []
    finally:
        gate.set()
        worker.join(120)
    assert sorted(tier1_alerts_on_kafka(settings)) == sorted(TIER1)
