"""10,000 hostile messages mixed into a real stream: no crash, every one dead-lettered
with a reason, and the valid events processed exactly as without them.

The messages are drawn (seeded) from every kind of poison the parser must
survive: random bytes, truncated JSON, nesting hundreds deep, huge numbers,
NaN and Infinity, duplicate keys, every wrong type per field, control and
invisible characters in ids, absurd and overflowing times, oversized
messages. They go through the production operators (``build_dataflow``)
between the events of a simulated month.
"""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from bytewax.connectors.kafka import KafkaSourceMessage
from bytewax.testing import TestingSink, TestingSource, run_main
from prometheus_client import CollectorRegistry

from churnwatch.settings import Settings
from churnwatch.simulator import simulate
from churnwatch.wiring import flow_config
from dataflows.flow import FlowSinks, build_dataflow
from dataflows.metrics import PipelineMetrics
from featurestore.definitions import load_definitions
from schemas.dead_letter import DeadLetter
from schemas.event import RejectReason
from tests.builders import event_doc

NOW = datetime(2026, 11, 1, tzinfo=UTC)
BAD = 10_000


def poison(rng: random.Random, n: int) -> bytes:
    """One hostile message; its event_id (where it has one) is unique."""
    kind = n % 12
    doc = event_doc(event_id=f"poison-{n}", account_id=f"acct-{rng.randint(1, 30):05d}",
                    event_time="2026-09-10T10:00:00Z")
    if kind == 0:
        return rng.randbytes(rng.randint(0, 300))
    if kind == 1:
        whole = orjson.dumps(doc)
        return whole[: rng.randint(1, len(whole) - 1)]
    if kind == 2:
        depth = rng.randint(5, 1_000)
        return orjson.dumps(doc).replace(b'"attributes":{}', b'"attributes":' + b'{"a":' * depth
                                         + b"1" + b"}" * depth)
    if kind == 3:
        return orjson.dumps(doc).replace(
            b'"attributes":{}', rng.choice([b'"attributes":{"x":NaN}', b'"attributes":{"x":1e999}',
                                            b'"attributes":{"x":-Infinity}'])
        )
    if kind == 4:
        return b'{"tenant_id":"evil",' + orjson.dumps(doc)[1:]
    if kind == 5:
        field = rng.choice(["event_id", "tenant_id", "account_id", "user_id", "event_type",
                            "event_time", "source", "schema_version", "attributes"])
        wrong: list[Any] = [7, 1.5, True, [], "", "x" * 500, ["a"]]
        if field != "attributes":
            wrong += [{}, {"a": 1}]  # an object is a valid attributes value
        if field != "user_id":
            wrong.append(None)  # a null user_id is valid
        doc[field] = rng.choice(wrong)
        return orjson.dumps(doc)
    if kind == 6:
        doc["account_id"] = "acct" + rng.choice(["\n", "\r", "\x00", "\x1b[2J", "\u202e", "\u200b",
                                                 "\u2028", "\x7f", "\ufeff"]) + str(n)
        return orjson.dumps(doc)
    if kind == 7:
        doc["event_time"] = rng.choice(["9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+23:59",
                                        "1900-01-01T00:00:00Z", "2026-02-30T00:00:00Z",
                                        "2999-01-01T00:00:00Z", "yesterday", "2026-09-10"])
        return orjson.dumps(doc)
    if kind == 8:
        doc["attributes"] = {"blob": "x" * rng.randint(70_000, 200_000)}
        return orjson.dumps(doc)
    if kind == 9:
        doc["attributes"] = {"reason_code": "a\x00b"}
        return orjson.dumps(doc)
    if kind == 10:
        doc["schema_version"] = rng.choice([0, 2, 99])
        return orjson.dumps(doc)
    return orjson.dumps([doc])  # not an object


def run(messages: list[bytes]) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {k: [] for k in ("dlq", "ak", "ap", "c", "l", "f", "s")}
    sinks = FlowSinks(*(TestingSink(out[k]) for k in ("dlq", "ak", "ap", "c", "l", "f", "s")))
    settings = Settings(recovery_dir=None, model_dir=None)
    config = flow_config(settings, load_definitions())
    source = TestingSource(
        [KafkaSourceMessage(key=b"k", value=v, topic="t", partition=0, offset=i)
         for i, v in enumerate(messages)],
        batch_size=500,
    )
    flow = build_dataflow(source, sinks, config, PipelineMetrics.create(CollectorRegistry()),
                          clock=lambda: NOW + timedelta(days=30))
    run_main(flow)
    return out


def test_a_poisoned_stream_is_processed_as_a_clean_one() -> None:
    rng = random.Random(12)
    clean = [m.value for m in simulate(accounts=30, days=20, seed=12, malformed_rate=0.0,
                                       duplicate_rate=0.0).messages]
    hostile = [poison(rng, n) for n in range(BAD)]
    mixed = list(clean)
    for message in hostile:
        mixed.insert(rng.randint(0, len(mixed)), message)

    baseline = run(clean)
    poisoned = run(mixed)  # no exception: the flow ran to the end

    letters: list[DeadLetter] = poisoned["dlq"]
    assert len(letters) == BAD and not baseline["dlq"]
    reasons = Counter(str(letter.reason) for letter in letters)
    assert set(reasons) <= {str(r) for r in RejectReason} - {"processing_error"}
    assert len(reasons) >= 7, reasons
    for letter in letters:
        assert letter.detail and len(letter.to_json()) < 1_000_000
    # The valid events, processed exactly as without the poison around them.
    for name in ("ak", "s", "c", "l"):
        assert sorted(map(repr, poisoned[name])) == sorted(map(repr, baseline[name])), name
    assert baseline["ak"]
