"""CHURNWATCH_KAFKA_CONFIG reaches every Kafka client churnwatch makes.

No broker: confluent-kafka's Producer, Consumer and AdminClient are replaced,
where churnwatch's modules call them, by fakes that record the configuration
each was built with. Then every place that makes a client is driven: the
production sinks and the tier-1 lane (producers), the input (its admin client
and its consumers), topic creation and the readiness check (admin clients),
erasure and ``churnwatch simulate --kafka`` (producers).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from concurrent.futures import Future
from types import SimpleNamespace
from typing import Any

import orjson
import pytest
from prometheus_client import CollectorRegistry

import churnwatch.erase as erase_module
from churnwatch.cli import main
from churnwatch.erase import erase
from churnwatch.settings import Settings
from churnwatch.topics import ensure_churnwatch_topics
from churnwatch.wiring import events_source, production_sinks
from dataflows.metrics import PipelineMetrics
from featurestore.definitions import load_definitions
from schemas.erasure import new_erasure

BOOTSTRAP = "broker-1:9093,broker-2:9093"
PASSWORD = "pw-from-the-environment"
CONFIG = {
    "security.protocol": "SASL_SSL",
    "sasl.mechanism": "SCRAM-SHA-512",
    "sasl.username": "svc-churnwatch",
    "sasl.password": "${env:KAFKA_PASSWORD}",
    "ssl.ca.location": "/etc/kafka/ca.pem",
}
ENVIRON = {
    "CHURNWATCH_KAFKA_BOOTSTRAP": BOOTSTRAP,
    "CHURNWATCH_KAFKA_CONFIG": orjson.dumps(CONFIG).decode(),
    "CHURNWATCH_REDIS_URL": "redis://redis:6379/0",
    "CHURNWATCH_DATABASE_URL": "postgresql://cw@db/cw",
    "KAFKA_PASSWORD": PASSWORD,
}
BROKERS = 3


class Made:
    """The clients made since the last :meth:`take`, as (kind, config)."""

    def __init__(self) -> None:
        self.clients: list[tuple[str, dict[str, Any]]] = []
        self.new_topics: list[Any] = []

    def take(self) -> list[tuple[str, dict[str, Any]]]:
        clients, self.clients = self.clients, []
        return clients


def fake_client(kind: str, made: Made) -> type:
    class FakeClient:
        def __init__(self, config: dict[str, Any]) -> None:
            made.clients.append((kind, dict(config)))

        def list_topics(self, topic: str | None = None, timeout: float = -1) -> Any:
            names = [topic] if topic else []
            return SimpleNamespace(
                topics={n: SimpleNamespace(partitions={0: None, 1: None}, error=None)
                        for n in names},
                brokers=dict.fromkeys(range(BROKERS)),
            )

        def create_topics(self, new_topics: list[Any], **_: Any) -> dict[str, Future]:
            made.new_topics.extend(new_topics)
            futures = {}
            for topic in new_topics:
                futures[topic.topic] = done = Future()
                done.set_result(None)
            return futures

        def produce(self, *_: Any, **__: Any) -> None:
            pass

        def poll(self, timeout: float = 0) -> int:
            return 0

        def flush(self, timeout: float = 0) -> int:
            return 0

        def __len__(self) -> int:
            return 0

        def assign(self, partitions: list[Any]) -> None:
            pass

        def close(self) -> None:
            pass

    return FakeClient


@pytest.fixture
def made(monkeypatch: pytest.MonkeyPatch) -> Made:
    made = Made()
    for module, name, kind in (
        ("sinks.kafka", "Producer", "producer"),
        ("churnwatch.simulator", "Producer", "producer"),
        ("dataflows.kafka_input", "Consumer", "consumer"),
        ("dataflows.kafka_input", "AdminClient", "admin"),
        ("churnwatch.topics", "AdminClient", "admin"),
    ):
        monkeypatch.setattr(f"{module}.{name}", fake_client(kind, made))
    return made


@pytest.fixture
def settings() -> Settings:
    return Settings.from_env(ENVIRON)


def assert_configured(clients: list[tuple[str, dict[str, Any]]], kind: str) -> None:
    assert clients, "no Kafka client was made"
    for made_kind, config in clients:
        assert made_kind == kind
        assert config["bootstrap.servers"] == BOOTSTRAP
        assert {k: config[k] for k in CONFIG} == {**CONFIG, "sasl.password": PASSWORD}


def test_every_output_producer_gets_the_config(made: Made, settings: Settings) -> None:
    metrics = PipelineMetrics.create(CollectorRegistry())
    sinks = production_sinks(settings, metrics, load_definitions(None))
    kafka_sinks = [sinks.dead_letters, sinks.alerts_kafka, sinks.late_events, sinks.scores_kafka,
                   sinks.workflows_kafka]
    for sink in kafka_sinks:
        sink.build("out", 0, 1)  # type: ignore[union-attr]
    assert sinks.fast_lane is not None
    sinks.fast_lane()
    clients = made.take()
    assert len(clients) == len(kafka_sinks) + 1
    assert_configured(clients, "producer")
    # churnwatch's own producer settings stand beside the configured ones
    assert all(c["acks"] == "all" and c["enable.idempotence"] is True for _, c in clients)


def test_the_input_admin_client_and_consumers_get_the_config(
    made: Made, settings: Settings
) -> None:
    source = events_source(settings, PipelineMetrics.create(CollectorRegistry()), tail=False)
    parts = source.list_parts()
    assert_configured(made.take(), "admin")
    for part in parts:
        source.build_part("in", part, None)
    consumers = made.take()
    assert len(consumers) == len(parts) == 2
    assert_configured(consumers, "consumer")
    assert all(c["group.id"] == "churnwatch-unused" and c["enable.auto.commit"] is False
               for _, c in consumers)


def test_topic_creation_gets_the_config_and_the_replication_settings(
    made: Made, settings: Settings
) -> None:
    ensure_churnwatch_topics(settings)
    assert_configured(made.take(), "admin")
    assert {t.topic for t in made.new_topics} == set(settings.topics.all())
    for topic in made.new_topics:
        assert topic.replication_factor == 3
        assert topic.config["min.insync.replicas"] == "2"
    dead_letters = next(t for t in made.new_topics if t.topic == settings.topics.dead_letters)
    assert "retention.ms" in dead_letters.config  # merged with the retention configs


def test_the_readiness_check_gets_the_config(made: Made, settings: Settings) -> None:
    from churnwatch.app import readiness

    readiness(settings, PipelineMetrics.create(CollectorRegistry()))
    assert_configured(made.take(), "admin")


def test_erasure_gets_the_config(
    made: Made, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    @contextlib.contextmanager
    def no_database(*_: Any, **__: Any) -> Iterator[None]:
        yield None

    monkeypatch.setattr(erase_module, "connect", no_database)
    for name in ("migrate", "record_and_erase", "add_to_receipt"):
        monkeypatch.setattr(erase_module, name, lambda *_, **__: None)
    monkeypatch.setattr(erase_module, "receipt", lambda *_, **__: {})
    # a user's erasure touches no Redis hash: no server needed
    erase(settings, new_erasure("acme", "a1", "u1"), "tests")
    clients = made.take()
    assert_configured(clients, "producer")
    assert clients[0][1]["client.id"] == "churnwatch-erase"


def test_simulate_to_kafka_gets_the_config(
    made: Made, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    for name in [n for n in os.environ if n.startswith("CHURNWATCH_")]:
        monkeypatch.delenv(name)
    for name, value in ENVIRON.items():
        monkeypatch.setenv(name, value)
    assert main(["simulate", "--kafka", "--accounts", "2", "--days", "2"]) == 0
    assert_configured(made.take(), "producer")


def test_a_configured_client_id_wins(made: Made) -> None:
    settings = Settings.from_env({**ENVIRON, "CHURNWATCH_KAFKA_CONFIG": '{"client.id": "team-a"}'})
    metrics = PipelineMetrics.create(CollectorRegistry())
    production_sinks(settings, metrics, load_definitions(None)).dead_letters.build(  # type: ignore[attr-defined]
        "out", 0, 1
    )
    ((_, config),) = made.take()
    assert config["client.id"] == "team-a"
