"""Crash recovery: SIGKILL mid-stream again and again, then the uninterrupted outputs exactly."""

from __future__ import annotations

import os
import random
import signal
import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta

import orjson
import psycopg
import pytest

from churnwatch.settings import Settings
from churnwatch.simulator import MessageKind, SimulatedMessage, Simulation, produce, simulate
from dataflows.shard_log import SHARD_LOG_FOLDER
from dataflows.state_codec import DICTIONARY_FOLDER
from tests.integration.conftest import create_events_topic
from tests.integration.kafka_io import read_all
from tests.integration.processes import run_churnwatch, start_churnwatch

# kill -9 this many times mid-stream (`make faults`: 20).
KILLS = int(os.environ.get("FAULT_KILLS", "3"))
RNG = random.Random(KILLS)


def alert_rows(settings: Settings) -> list[str]:
    assert settings.database_url
    with psycopg.connect(settings.database_url) as conn:
        exists = conn.execute(
            "SELECT to_regclass(%s)", (f"{settings.database_schema}.alerts",)
        ).fetchone()
        if not exists or exists[0] is None:
            return []
        return [
            r[0]
            for r in conn.execute(f"SELECT alert_id::text FROM {settings.database_schema}.alerts")
        ]


def ids(settings: Settings, table: str, column: str) -> list[str]:
    assert settings.database_url
    with psycopg.connect(settings.database_url) as conn:
        query = f"SELECT {column}::text FROM {settings.database_schema}.{table}"
        return [r[0] for r in conn.execute(query.encode())]


def account_states(settings: Settings) -> list[tuple[object, ...]]:
    """The accounts table (migration 0008), every field the stream sets, by account."""
    assert settings.database_url
    with psycopg.connect(settings.database_url) as conn:
        return conn.execute(
            "SELECT tenant_id, account_id, company_name, company_name_at, plan, plan_at, mrr,"
            " mrr_at, owner, owner_at, renewal_date, renewal_date_at, first_seen, last_event_at,"
            " status, status_at, latest_score_id, latest_risk, latest_tier"
            f" FROM {settings.database_schema}.accounts ORDER BY 1, 2".encode()
        ).fetchall()


def kafka_alert_ids(settings: Settings) -> list[str]:
    assert settings.kafka_bootstrap
    return [
        orjson.loads(v)["alert_id"]
        for _, v, _ in read_all(settings.kafka_bootstrap, settings.topics.alerts)
    ]


def with_outcomes(simulation: Simulation, every: int = 150) -> Simulation:
    """The simulation with a workflow outcome event (workflow.*, what a CRM reports back)
    after every ``every``-th valid message, for that message's account and time, so the
    outcomes are read throughout the stream (mid-epoch when a kill lands)."""
    messages: list[SimulatedMessage] = []
    kinds = ("delivered", "engaged", "saved", "lost")
    valid = 0
    for message in simulation.messages:
        messages.append(message)
        if message.kind != MessageKind.VALID:
            continue
        valid += 1
        if valid % every:
            continue
        event = orjson.loads(message.value)
        trigger = uuid.uuid5(uuid.NAMESPACE_URL, f"trigger-{valid}")
        messages.append(SimulatedMessage(message.key, orjson.dumps({
            "event_id": f"outcome-{valid}", "tenant_id": event["tenant_id"],
            "account_id": event["account_id"], "user_id": None,
            "event_type": f"workflow.{kinds[valid // every % 4]}",
            "event_time": event["event_time"], "source": "crm", "schema_version": 1,
            "attributes": {"trigger_id": str(trigger), "step": "next"},
        }), MessageKind.VALID, None))
    return replace(simulation, messages=tuple(messages))


def drained_count(output: str, name: str) -> int:
    line = next(ln for ln in output.splitlines() if ln.startswith("drained: "))
    return int(dict(item.split("=") for item in line.split()[1:])[name])


@pytest.mark.faults
def test_sigkill_mid_stream_again_and_again_then_restart_matches_uninterrupted_run(
    make_settings: Callable[..., Settings], fault_report: Callable[[str], None],
) -> None:
    # Small input batches and short epochs: many snapshots, so the kill lands mid-stream;
    # the states packed with a dictionary from the first 100 (each restart reads them).
    tuning = {"input_batch_size": 100, "snapshot_interval": timedelta(milliseconds=500),
              "state_dictionary_samples": 100}
    reference = make_settings("ref", **tuning)
    crashed = make_settings("crash", **tuning)
    # the same input for both runs, outputs of their own
    crashed = crashed.replace(topics=replace(crashed.topics, events=reference.topics.events))
    create_events_topic(reference)
    create_events_topic(crashed)
    simulation = with_outcomes(simulate(accounts=300, days=30, seed=11))
    assert reference.kafka_bootstrap
    produce(simulation, reference.kafka_bootstrap, reference.topics.events)

    full = run_churnwatch(reference, "run", "--until-drained")
    assert drained_count(full, "messages") == len(simulation.messages)
    expected = set(alert_rows(reference))
    assert len(expected) > 50

    # KILLS kills at seeded moments: each one once the run has written a further
    # share of the alerts, so every kill lands mid-stream, after a snapshot.
    landed = []
    for kill in range(1, KILLS + 1):
        proc = start_churnwatch(crashed, "run", "--until-drained")
        share = kill / (KILLS + 1) + RNG.uniform(-0.2, 0.2) / (KILLS + 1)
        deadline = time.monotonic() + 180
        while len(alert_rows(crashed)) < len(expected) * share:
            assert proc.poll() is None, f"finished before kill {kill}:\n{proc.communicate()[0]}"
            assert time.monotonic() < deadline
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        landed.append(len(set(alert_rows(crashed))))
        assert 0 < landed[-1] < len(expected), "the kill must land mid-stream"

    resumed = run_churnwatch(crashed, "run", "--until-drained")
    # It resumed from its snapshot rather than from the start of the topic.
    read_after_restart = drained_count(resumed, "messages")
    assert 0 < read_after_restart < len(simulation.messages)
    assert crashed.recovery_dir is not None
    dictionaries = list((crashed.recovery_dir / SHARD_LOG_FOLDER / DICTIONARY_FOLDER).iterdir())
    assert dictionaries  # trained before the first kill, read by each restart
    figures = (f"{KILLS} kill -9 at {landed} of {len(expected)} alerts written; the last "
               f"restart read {read_after_restart} of {len(simulation.messages)} messages; "
               f"{len(dictionaries)} state dictionaries")

    rows = alert_rows(crashed)
    assert len(rows) == len(set(rows))
    assert set(rows) == expected
    # Decision state is recovered too: the same decisions, triggers and contacts,
    # none twice, as if nothing had happened.
    for table, column in (("decisions", "decision_id"), ("workflow_triggers", "trigger_id"),
                          ("contact_ledger", "contact_id"), ("workflow_signals", "signal_id"),
                          ("workflow_outcomes", "outcome_id")):
        after_crash = ids(crashed, table, column)
        assert len(after_crash) == len(set(after_crash)), table
        assert set(after_crash) == set(ids(reference, table, column)), table
    assert ids(reference, "workflow_triggers", "trigger_id")
    # The accounts table, upserted order-safely, holds the same state field by field.
    accounts = account_states(reference)
    assert len(accounts) == 300
    assert account_states(crashed) == accounts
    assert len(ids(reference, "workflow_outcomes", "outcome_id")) == sum(
        b'"workflow.' in m.value for m in simulation.messages)
    # Kafka is at-least-once: copies from the resumed epoch may repeat, with the same ids.
    assert set(kafka_alert_ids(crashed)) == expected
    assert set(kafka_alert_ids(reference)) == expected
    ref_dead = {
        orjson.loads(v)["source"]["offset"]
        for _, v, _ in read_all(reference.kafka_bootstrap, reference.topics.dead_letters)
    }
    assert crashed.kafka_bootstrap
    crash_dead = read_all(crashed.kafka_bootstrap, crashed.topics.dead_letters)
    assert {orjson.loads(v)["source"]["offset"] for _, v, _ in crash_dead} == ref_dead
    fault_report(figures + "; every table and the Kafka ids equal the uninterrupted run's, "
                 "0 lost, 0 twice")
