"""On-call surface on the local stack: /metrics, /healthz, /readyz, logs, scale-out."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import orjson
import psycopg
import pytest

from churnwatch.localstack import LocalStack, free_port
from churnwatch.settings import Settings
from churnwatch.simulator import produce, simulate, write_jsonl
from tests.builders import event_bytes
from tests.integration.conftest import create_events_topic
from tests.integration.kafka_io import produce_all
from tests.integration.ops_http import get, samples, total, up, wait_for
from tests.integration.outputs import (
    Document,
    decision_documents,
    decision_id,
    differences,
    distinct_documents,
    file_documents,
    message_id,
    score_id,
    topic_documents,
)
from tests.integration.processes import run_churnwatch, start_churnwatch

MARKER = "s3cr3t-payload-marker"


def test_metrics_health_readiness_and_logs(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    # Redis of its own, so stopping it disturbs no other test.
    base = make_settings("ops", metrics_port=free_port(), log_format="json")
    own_redis = LocalStack(base.replace(redis_url=None), tmp_path / "redis")
    settings = own_redis.start()
    try:
        create_events_topic(settings)
        assert settings.kafka_bootstrap
        stream = [
            event_bytes(event_id=f"e{i}", account_id=f"a{i % 5}", user_id=f"u{i}",
                        event_type="billing.payment_failed" if i % 10 == 0 else "app.login",
                        attributes={"note": MARKER})
            for i in range(200)
        ]
        stream.append(b"not json " + MARKER.encode())
        produce_all(settings.kafka_bootstrap, settings.topics.events,
                    [(b"a", value) for value in stream])

        proc = start_churnwatch(settings, "run")  # tailing: a service
        port = settings.metrics_port
        try:
            wait_for(lambda: up(port), what="the ops server")
            assert get(f"http://127.0.0.1:{port}/healthz")[0] == 200
            wait_for(lambda: total(samples(port), "churnwatch_ingest_messages_total") == 201,
                     what="all messages counted")
            wait_for(lambda: get(f"http://127.0.0.1:{port}/readyz")[0] == 200, what="ready")
            # Counted downstream of the input (after the account kernels): wait for them
            # too, or a slower server (a real PostgreSQL) reads them before they move.
            wait_for(lambda: total(samples(port), "churnwatch_alerts_total", tier="1") >= 20,
                     what="tier-1 alerts counted")
            values = samples(port)
            assert total(values, "churnwatch_ingest_rejected_total", reason="not_json") == 1
            assert total(values, "churnwatch_ingest_events_total", tenant="acme",
                         event_type="app.login") == 180
            assert total(values, "churnwatch_alerts_total", tier="1") == 20
            wait_for(lambda: total(samples(port), "churnwatch_alert_latency_seconds_count",
                                   tier="1", since="ingest") == 20, what="latency observed")
            assert total(values, "churnwatch_stage_batch_seconds_count",
                         stage="parse-events") > 0
            wait_for(
                lambda: (v := samples(port)) and total(
                    v, "churnwatch_sink_records_written_total", sink="postgres-alerts"
                ) == total(v, "churnwatch_alerts_total"),
                what="every alert written to Postgres",
            )
            assert total(values, "churnwatch_feature_info") == 1
            assert total(values, "churnwatch_input_last_poll_timestamp_seconds") > time.time() - 60

            own_redis.stop()  # Redis goes away: not ready any more
            wait_for(lambda: get(f"http://127.0.0.1:{port}/readyz")[0] == 503,
                     what="readiness to flip")
            _, body = get(f"http://127.0.0.1:{port}/readyz")
            checks = orjson.loads(body)["checks"]
            assert checks["redis"] != "ok" and checks["kafka"] == "ok"
            assert checks["postgres"] == "ok"
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                output, _ = proc.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                output, _ = proc.communicate()
    finally:
        own_redis.stop()

    # Logs: JSON lines, correlation ids, and never a payload.
    assert MARKER not in output
    records = [orjson.loads(line) for line in output.splitlines() if line.startswith("{")]
    emitted = [r for r in records if r.get("msg") == "alert emitted" and r.get("tier") == 1]
    assert len(emitted) == 20
    assert all(r["alert_id"] and r["event_id"].startswith("e") for r in emitted)


def alert_ids(settings: Settings) -> set[str]:
    assert settings.database_url
    with psycopg.connect(settings.database_url) as conn:
        return {r[0] for r in conn.execute(
            f"SELECT alert_id::text FROM {settings.database_schema}.alerts")}


@pytest.mark.parametrize("processes", [2])
def test_processes_over_partitions_and_a_file_replay_give_the_same_outputs(
    make_settings: Callable[..., Settings], processes: int, tmp_path: Path
) -> None:
    # Scoring and the default policy on (the settings' defaults): scores, decisions,
    # workflow triggers and signals are compared, not only alerts.
    single = make_settings("one")
    cluster = make_settings("many")
    cluster = cluster.replace(topics=replace(cluster.topics, events=single.topics.events))
    assert single.model_dir is not None and single.policy_file is not None
    create_events_topic(single)
    create_events_topic(cluster)
    assert single.kafka_bootstrap
    simulation = simulate(accounts=300, days=40, seed=5)
    produce(simulation, single.kafka_bootstrap, single.topics.events)
    history = tmp_path / "history.jsonl"
    write_jsonl(simulation, history)

    one = run_churnwatch(single, "run", "--until-drained")
    many = run_churnwatch(cluster, "run", "--until-drained", "--processes", str(processes))
    replayed = tmp_path / "replayed"
    run_churnwatch(single, "replay", "--events", str(history), "--out", str(replayed))

    assert "process 0 drained" in many and "process 1 drained" in many
    drained = [ln for ln in many.splitlines() if ln.startswith("drained: ")]
    assert drained and f"messages={len(simulation.messages)}" in drained[-1]
    expected = alert_ids(single)
    assert len(expected) > 100
    got = alert_ids(cluster)
    assert got == expected, (
        f"{len(got - expected)} alert(s) only with {processes} processes, "
        f"{len(expected - got)} only with one"
    )
    assert "messages=" in one
    assert {a["alert_id"] for a in file_documents(replayed, "alerts")} == expected

    # Decisions (the tables of either run, the replay's file), scores, workflow triggers
    # and signals (the topics of either run, the replay's files): the same documents, ids
    # and content.
    found: dict[str, dict[str, list[Document]]] = {
        label: {
            "scores": topic_documents(settings, settings.topics.scores),
            "workflows": topic_documents(settings, settings.topics.workflows),
            "decisions": decision_documents(settings),
        }
        for label, settings in (("1 process", single), (f"{processes} processes", cluster))
    }
    found["file replay"] = {
        name: file_documents(replayed, name) for name in ("scores", "workflows", "decisions")
    }
    for name, id_of in (("decisions", decision_id), ("scores", score_id),
                        ("workflows", message_id)):
        reference = distinct_documents(found["1 process"][name], id_of)
        for label, documents in found.items():
            other = distinct_documents(documents[name], id_of)
            assert other == reference, (
                f"{name}, {label} against 1 process: {differences(other, reference, id_of)}"
            )
    scores = found["1 process"]["scores"]
    assert len({d["score_id"] for d in scores}) > 100
    assert {d["tier"] for d in scores} >= {"low", "high"}
    assert {d["message_type"] for d in found["1 process"]["workflows"]} == {"trigger", "signal"}
    decisions = found["1 process"]["decisions"]
    assert len(decisions) == len(expected)  # one per alert
    assert {d["decision"] for d in decisions} >= {"start_workflow", "holdout", "ignore"}
