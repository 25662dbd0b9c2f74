"""Segment and CloudEvents (structured and binary) streams give the dataflow exactly the
outputs of the equivalent native stream: alerts, usage signals, risk scores, decisions."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from bytewax.connectors.kafka import KafkaSourceMessage
from bytewax.testing import TestingSink, TestingSource, run_main
from prometheus_client import CollectorRegistry

from churnwatch.settings import Settings
from churnwatch.simulator import MessageKind, simulate
from churnwatch.wiring import flow_config
from dataflows.flow import FlowSinks, build_dataflow
from dataflows.metrics import PipelineMetrics
from schemas.formats import InputFormat, load_mapping
from sinks.errors import SchemaRegistryUnavailable

SIMULATION = simulate(accounts=30, days=30, seed=4, duplicate_rate=0.0, malformed_rate=0.0)
NOW = SIMULATION.start + timedelta(days=SIMULATION.days + 1)
# The shipped mapping names the simulator's types in Segment's Object Action style.
NAMES = {event_type: name for name, event_type in reversed(
    list(load_mapping().rename.items()))}
MAPPING = """
tenant: [context.tenant, tenantid]
account: [context.groupId, accountid]
user: [userId, userid]
source: [context.source]
event_types:
  rename: {renames}
  default: "{{name}}"
"""


def native_events() -> list[dict[str, Any]]:
    return [orjson.loads(m.value) for m in SIMULATION.messages if m.kind == MessageKind.VALID]


def as_segment(event: dict[str, Any]) -> tuple[bytes, list[tuple[str, bytes]]]:
    document = {
        "type": "track",
        "event": NAMES[event["event_type"]],
        "messageId": event["event_id"],
        "timestamp": event["event_time"],
        "userId": event.get("user_id"),
        "properties": event["attributes"],
        "context": {"groupId": event["account_id"], "tenant": event["tenant_id"],
                    "source": event["source"]},
    }
    return orjson.dumps(document), []


def as_structured_cloudevent(event: dict[str, Any]) -> tuple[bytes, list[tuple[str, bytes]]]:
    document = {
        "specversion": "1.0", "id": event["event_id"], "source": event["source"],
        "type": event["event_type"], "time": event["event_time"],
        "tenantid": event["tenant_id"], "accountid": event["account_id"],
        "datacontenttype": "application/json", "data": event["attributes"],
    }
    if event.get("user_id"):
        document["userid"] = event["user_id"]
    return orjson.dumps(document), [("content-type", b"application/cloudevents+json")]


def as_binary_cloudevent(event: dict[str, Any]) -> tuple[bytes, list[tuple[str, bytes]]]:
    headers = [
        ("ce_specversion", b"1.0"), ("ce_id", event["event_id"].encode()),
        ("ce_source", event["source"].encode()), ("ce_type", event["event_type"].encode()),
        ("ce_time", event["event_time"].encode()),
        ("ce_tenantid", event["tenant_id"].encode()),
        ("ce_accountid", event["account_id"].encode()),
        ("content-type", b"application/json"),
    ]
    if event.get("user_id"):
        headers.append(("ce_userid", event["user_id"].encode()))
    return orjson.dumps(event["attributes"]), headers


def as_native(event: dict[str, Any]) -> tuple[bytes, list[tuple[str, bytes]]]:
    return orjson.dumps(event), []


def collecting_sinks() -> tuple[dict[str, list[Any]], FlowSinks]:
    """Sinks that keep what the comparison reads, by output."""
    names = ("dlq", "alerts", "signals", "scores", "decided", "features")
    out: dict[str, list[Any]] = {name: [] for name in names}
    discard: list[Any] = []
    sinks = FlowSinks(
        dead_letters=TestingSink(out["dlq"]), alerts_kafka=TestingSink(out["alerts"]),
        alerts_postgres=TestingSink(discard), cancellations=TestingSink(discard),
        late_events=TestingSink(discard), features=TestingSink(out["features"]),
        usage_signals=TestingSink(out["signals"]), risk_scores=TestingSink(out["scores"]),
        decisions=TestingSink(out["decided"]), workflows_kafka=TestingSink(discard),
    )
    return out, sinks


def run(convert: Any, input_format: InputFormat, tmp_path: Path) -> dict[str, list[Any]]:
    mapping = tmp_path / "mapping.yaml"
    renames = orjson.dumps({name: t for t, name in NAMES.items()}).decode()
    mapping.write_text(MAPPING.format(renames=renames))
    settings = Settings(input_format=input_format, input_mapping=mapping)
    out, sinks = collecting_sinks()
    messages = []
    for offset, event in enumerate(native_events()):
        value, headers = convert(event)
        messages.append(KafkaSourceMessage(key=None, value=value, topic="events", partition=0,
                                           offset=offset, headers=headers))
    flow = build_dataflow(TestingSource(messages, batch_size=500), sinks,
                          flow_config(settings), PipelineMetrics.create(CollectorRegistry()),
                          clock=lambda: NOW)
    run_main(flow)
    return out


def ids(out: dict[str, list[Any]]) -> dict[str, Any]:
    """What each output holds, as comparable values (ids, and the features' values)."""
    return {
        "alerts": sorted(a.alert_id for a in out["alerts"]),
        "signals": sorted(s.signal_id for s in out["signals"]),
        "scores": sorted((s.score_id, s.risk) for s in out["scores"]),
        "decided": sorted(repr(d) for d in out["decided"]),
        "features": sorted((u.tenant_id, u.account_id, u.values) for u in out["features"]),
    }


@pytest.fixture(scope="module")
def native(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = run(as_native, InputFormat.NATIVE, tmp_path_factory.mktemp("native"))
    assert not out["dlq"]
    outputs = ids(out)
    assert outputs["alerts"] and outputs["signals"] and outputs["scores"] and outputs["decided"]
    return outputs


@pytest.mark.parametrize(("convert", "input_format"), [
    pytest.param(as_segment, InputFormat.SEGMENT, id="segment"),
    pytest.param(as_structured_cloudevent, InputFormat.CLOUDEVENTS, id="cloudevents-structured"),
    pytest.param(as_binary_cloudevent, InputFormat.CLOUDEVENTS, id="cloudevents-binary"),
    pytest.param(as_segment, InputFormat.AUTO, id="auto-segment"),
    pytest.param(as_binary_cloudevent, InputFormat.AUTO, id="auto-cloudevents"),
    pytest.param(as_native, InputFormat.AUTO, id="auto-native"),
])
def test_a_foreign_stream_gives_the_native_streams_outputs(
    convert: Any, input_format: InputFormat, native: dict[str, Any], tmp_path: Path
) -> None:
    out = run(convert, input_format, tmp_path)
    assert [letter.detail for letter in out["dlq"]][:3] == []
    assert ids(out) == native


class FlakyFraming:
    """Registry framing whose registry is down for the first ``failures`` batches."""

    def __init__(self, inner: Any, failures: int) -> None:
        self.inner, self.failures = inner, failures

    def prepare(self, values: Any) -> None:
        if self.failures:
            self.failures -= 1
            raise SchemaRegistryUnavailable("connection refused")
        self.inner.prepare(values)

    def payload(self, value: bytes) -> Any:
        return self.inner.payload(value)


def test_registry_framed_input_waits_out_an_outage_and_refuses_other_schema_types(
    native: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from confluent_kafka.schema_registry import SchemaRegistryClient

    from dataflows import parse
    from dataflows.outputs import RetryPolicy
    from schemas import SCHEMA_DIR
    from schemas.event import EventLimits
    from schemas.formats import Decoder
    from schemas.framing import frame
    from sinks.schema_registry import RegistryFraming
    from tests.fake_registry import FakeSchemaRegistry

    waits: list[float] = []
    monkeypatch.setattr(parse, "REGISTRY_RETRY", RetryPolicy(sleep=waits.append))
    avro = orjson.dumps({"type": "record", "name": "E", "fields": []}).decode()
    with FakeSchemaRegistry() as registry:
        json_id = registry.register("events-value", (SCHEMA_DIR / "event.v1.schema.json")
                                    .read_text())
        avro_id = registry.register("legacy-value", avro, "AVRO")
        client = SchemaRegistryClient({"url": registry.url, "max.retries": 0, "timeout": 5})
        framing = FlakyFraming(RegistryFraming(client), failures=2)
        events = native_events()
        values = [frame(json_id, orjson.dumps(e)) if i % 2 else orjson.dumps(e)
                  for i, e in enumerate(events)]
        values.append(frame(avro_id, b'{"event_id": "x"}'))
        config = dataclasses.replace(
            flow_config(Settings()),
            decoder=Decoder(InputFormat.NATIVE, load_mapping(), EventLimits(), framing),
        )
        out, sinks = collecting_sinks()
        messages = [KafkaSourceMessage(key=None, value=v, topic="events", partition=0,
                                       offset=i) for i, v in enumerate(values)]
        run_main(build_dataflow(TestingSource(messages, batch_size=500), sinks, config,
                                PipelineMetrics.create(CollectorRegistry()), clock=lambda: NOW))
    assert framing.failures == 0 and len(waits) == 2  # the first batch waited twice
    [refused] = out["dlq"]  # only the Avro-framed message; nothing for the outage
    assert "AVRO" in refused.detail and refused.value == values[-1]
    assert ids(out) == native
