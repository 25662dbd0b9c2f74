"""Decisions on the local stack: records, triggers, ledger, caps, holdouts, signals, replays."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jsonschema
import orjson
import psycopg
import pytest

from churnwatch.settings import DEFAULT_POLICY, Settings
from churnwatch.simulator import produce, simulate
from decisions.engine import AccountDecisions, DecisionEngine
from decisions.policy import load_policy, vocabulary_for
from detectors.tier1 import DEFAULT_TIER1_RULES
from featurestore.definitions import load_definitions
from schemas import SCHEMA_DIR
from schemas.alert import Alert, AlertTier, Severity, alert_id
from schemas.decision import DecisionRecord, ReasonCode
from schemas.lifecycle import AccountChange, ChangeKind
from sinks.decision_store import PostgresConsentDirectory
from sinks.errors import SinkError
from sinks.migrate import migrate
from sinks.postgres import PostgresDecisionSink
from tests.integration.conftest import create_events_topic
from tests.integration.kafka_io import read_all
from tests.integration.processes import run_churnwatch, start_churnwatch


def rows(settings: Settings, query: str, params: tuple = ()) -> list[tuple]:
    assert settings.database_url
    with psycopg.connect(settings.database_url) as conn:
        conn.execute(f"SET search_path TO {settings.database_schema}")
        return list(conn.execute(query, params))


def validator(name: str) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(json.loads((SCHEMA_DIR / name).read_text()))


def test_decisions_triggers_ledger_and_a_replay_adds_nothing(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings("decide")
    create_events_topic(settings)
    assert settings.kafka_bootstrap
    produce(simulate(accounts=200, days=30, seed=7, opt_out_rate=0.05),
            settings.kafka_bootstrap, settings.topics.events)
    run_churnwatch(settings, "run", "--until-drained")

    # Every alert got exactly one decision, recorded with its reason.
    alerts = {r[0] for r in rows(settings, "SELECT alert_id::text FROM alerts")}
    decisions = rows(settings, "SELECT alert_id::text, decision, reasons->>0, workflow_key,"
                               " trigger_id::text, tenant_id, account_id, decided_at,"
                               " variant, policy_version FROM decisions")
    assert alerts and sorted(r[0] for r in decisions) == sorted(alerts)
    reasons = {r[2] for r in decisions}
    assert {"rule_matched", "holdout", "cap_hit", "not_eligible_do_not_contact"} <= reasons
    policy = load_policy(DEFAULT_POLICY, vocabulary_for(
        (r.rule for r in settings.tier1_rules.values()), ["seats", "tenure_days"]))
    assert {r[9] for r in decisions} == {policy.version}

    # Triggers: one per start/escalate decision, the same ids in Kafka and Postgres,
    # each valid against the published schema.
    triggers = rows(settings, "SELECT trigger_id::text, decision_id::text, tenant_id,"
                              " account_id, workflow_key, episode, channel, triggered_at"
                              " FROM workflow_triggers")
    started = [r for r in decisions if r[1] in ("start_workflow", "escalate")]
    assert triggers and sorted(r[4] for r in started) == sorted(r[0] for r in triggers)
    messages = read_all(settings.kafka_bootstrap, settings.topics.workflows)
    trigger_schema = validator("workflow_trigger.v1.schema.json")
    signal_schema = validator("workflow_signal.v1.schema.json")
    kafka_triggers, kafka_signals = set(), set()
    for key, value, headers in messages:
        document = orjson.loads(value)
        assert key == f"{document['tenant_id']}:{document['account_id']}".encode()
        assert (dict(headers)["message_id"]).decode() in (
            document.get("trigger_id"), document.get("signal_id"))
        if document["message_type"] == "trigger":
            trigger_schema.validate(document)
            kafka_triggers.add(document["trigger_id"])
        else:
            signal_schema.validate(document)
            kafka_signals.add(document["signal_id"])
    assert kafka_triggers == {r[0] for r in triggers}
    signals = rows(settings, "SELECT signal_id::text, trigger_id::text, signal FROM"
                             " workflow_signals")
    assert kafka_signals == {r[0] for r in signals}
    assert {r[1] for r in signals} <= {r[0] for r in triggers}
    assert "recovered" in {r[2] for r in signals}

    # Held out: a decision but no trigger and no contact; the assignment is recorded.
    held = [r for r in decisions if r[1] == "holdout"]
    assert held and all(r[4] is None for r in held)
    assignments = {(r[0], r[1]): r[2] for r in rows(
        settings, "SELECT tenant_id, account_id, variant FROM experiment_assignments")}
    assert all(assignments[(r[5], r[6])] == "holdout" for r in held)

    # The ledger holds one contact per trigger, and agrees with every cap decision:
    # a cap_hit saw a full window in the ledger; a start never exceeded the cap.
    ledger = rows(settings, "SELECT contact_id::text, tenant_id, account_id, channel,"
                            " contacted_at FROM contact_ledger")
    assert sorted(r[0] for r in ledger) == sorted(r[0] for r in triggers)

    def contacts_before(tenant: str, account: str, channel: str, at: datetime,
                        own: str | None) -> int:
        window = timedelta(seconds=policy.caps[channel].window_seconds)
        return sum(1 for contact, t, a, c, when in ledger
                   if (t, a, c) == (tenant, account, channel) and at - window < when <= at
                   and contact != own)

    for r in decisions:
        if r[2] == "cap_hit" or r[1] in ("start_workflow", "escalate"):
            channel = policy.workflows[r[3]].channel
            used = contacts_before(r[5], r[6], channel, r[7], r[4])
            if r[2] == "cap_hit":
                assert used >= policy.caps[channel].max_contacts, r
            else:
                assert used < policy.caps[channel].max_contacts, r

    # Nobody who opted out is contacted after the opt-out.
    opted_out = {(r[0], r[1]): r[2] for r in rows(
        settings, "SELECT tenant_id, account_id, updated_at FROM contact_preferences"
                  " WHERE NOT contact_allowed")}
    assert opted_out
    assert not [r for r in ledger if (r[1], r[2]) in opted_out and r[4] > opted_out[(r[1], r[2])]]

    # A replay of the same input (fresh recovery state: the engine starts empty)
    # triggers nothing new, contacts nobody again and reshuffles no assignment.
    def counts() -> dict[str, int]:
        return {table: rows(settings, f"SELECT count(*) FROM {table}")[0][0]
                for table in ("decisions", "workflow_triggers", "workflow_signals",
                              "contact_ledger", "experiment_assignments")}

    before = counts()
    replay = settings.replace(recovery_dir=settings.recovery_dir.with_name("replay-decisions"))
    run_churnwatch(replay, "run", "--until-drained")
    assert counts() == before
    assert {(r[0], r[1]): r[2] for r in rows(
        settings, "SELECT tenant_id, account_id, variant FROM experiment_assignments")
    } == assignments


def test_a_changed_experiment_split_and_an_invalid_policy_are_refused_at_start(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = make_settings("policy")
    create_events_topic(settings)
    run_churnwatch(settings, "run", "--until-drained")  # pins the default policy's split
    assert rows(settings, "SELECT experiment_key FROM experiments")

    changed = tmp_path / "changed.yaml"
    changed.write_text(DEFAULT_POLICY.read_text().replace("holdout: 20", "holdout: 30")
                       .replace("coaching: 40", "coaching: 30"))
    proc = start_churnwatch(settings.replace(policy_file=changed), "run", "--until-drained")
    output, _ = proc.communicate(timeout=120)
    assert proc.returncode != 0 and "assignments would reshuffle" in output

    broken = tmp_path / "broken.yaml"
    broken.write_text(DEFAULT_POLICY.read_text().replace("decide: escalate", "decide: shout"))
    proc = start_churnwatch(settings.replace(policy_file=broken), "run", "--until-drained")
    output, _ = proc.communicate(timeout=120)
    assert proc.returncode != 0 and "unknown decision 'shout'" in output


@pytest.fixture
def decision_schema(make_settings: Callable[..., Settings]) -> Settings:
    settings = make_settings("consent")
    assert settings.database_url
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        migrate(conn, settings.database_schema)
    return settings


def test_consent_directory_reads_the_newest_word_incrementally(decision_schema: Settings) -> None:
    settings = decision_schema
    assert settings.database_url
    sink = PostgresDecisionSink(settings.database_url, settings.database_schema)
    t0 = datetime(2026, 10, 1, tzinfo=UTC)

    def change(account: str, allowed: bool, at: datetime, event: str) -> AccountChange:
        return AccountChange("acme", account, ChangeKind.CONSENT, at, event,
                             contact_allowed=allowed)

    # Within one batch and across batches, the newest event time wins.
    sink.write_batch([change("a1", False, t0, "e1"), change("a1", True, t0 - timedelta(1), "e0")])
    sink.write_batch([change("a2", False, t0, "e2")])
    sink.write_batch([change("a2", True, t0 - timedelta(hours=1), "e-older")])
    clock = [0.0]
    directory = PostgresConsentDirectory(settings.database_url, settings.database_schema, 30.0,
                                         clock=lambda: clock[0])
    assert directory.lookup("acme", "a1") == (False, t0.timestamp())
    assert directory.lookup("acme", "a2") == (False, t0.timestamp())
    assert directory.lookup("acme", "a3") is None

    # Another system opts a3 out; the directory sees it at its next refresh, not before.
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        conn.execute(f"SET search_path TO {settings.database_schema}")
        conn.execute("INSERT INTO contact_preferences (tenant_id, account_id, contact_allowed,"
                     " updated_at, source) VALUES ('acme', 'a3', false, %s, 'crm')", (t0,))
    assert directory.lookup("acme", "a3") is None
    clock[0] = 31.0
    assert directory.lookup("acme", "a3") == (False, t0.timestamp())
    sink.write_batch([change("a1", True, t0 + timedelta(days=1), "e3")])
    clock[0] = 62.0
    assert directory.lookup("acme", "a1") == (True, (t0 + timedelta(days=1)).timestamp())
    sink.close()


def test_the_contact_ledger_is_append_only(decision_schema: Settings) -> None:
    assert decision_schema.database_url
    with psycopg.connect(decision_schema.database_url, autocommit=True) as conn:
        conn.execute(f"SET search_path TO {decision_schema.database_schema}")
        conn.execute(
            "INSERT INTO contact_ledger (contact_id, tenant_id, account_id, channel,"
            " workflow_key, episode, contacted_at) VALUES (gen_random_uuid(), 'acme', 'a1',"
            " 'email', 'dunning', '20261001T000000Z', now())"
        )
        with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
            conn.execute("DELETE FROM contact_ledger")
        with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
            conn.execute("UPDATE contact_ledger SET channel = 'sms'")
        assert conn.execute("SELECT count(*) FROM contact_ledger").fetchone() == (1,)


def test_consent_directory_fails_closed_only_before_its_first_read(
    decision_schema: Settings,
) -> None:
    assert decision_schema.database_url
    unreachable = "postgresql://churnwatch@127.0.0.1:9/nowhere?connect_timeout=1"
    with pytest.raises(SinkError, match="cannot read contact_preferences"):
        PostgresConsentDirectory(unreachable, decision_schema.database_schema, 30.0).refresh()

    t0 = datetime(2026, 10, 1, tzinfo=UTC)
    with psycopg.connect(decision_schema.database_url, autocommit=True) as conn:
        conn.execute(f"SET search_path TO {decision_schema.database_schema}")
        conn.execute("INSERT INTO contact_preferences (tenant_id, account_id, contact_allowed,"
                     " updated_at, source) VALUES ('acme', 'a1', false, %s, 'crm')", (t0,))
    clock = [0.0]
    directory = PostgresConsentDirectory(decision_schema.database_url,
                                         decision_schema.database_schema, 30.0,
                                         clock=lambda: clock[0])
    assert directory.lookup("acme", "a1") == (False, t0.timestamp())  # the first read
    directory._url = unreachable  # the database goes away
    clock[0] = 31.0
    # It keeps deciding on what it knows: the opt-out read before the outage still
    # stands, and still blocks a contact (an outage must never wipe it).
    assert directory.lookup("acme", "a2") is None
    assert directory.lookup("acme", "a1") == (False, t0.timestamp())
    names = load_definitions().names
    rules = (rule.rule for rule in DEFAULT_TIER1_RULES.values())
    policy = load_policy(DEFAULT_POLICY, vocabulary_for(rules, names))
    decisions = AccountDecisions(DecisionEngine(policy, names, directory.lookup))
    alert = Alert(alert_id("acme", "a1", "payment_failed", "e9"), "acme", "a1",
                  AlertTier.EVENT_RULE, "payment_failed", Severity.HIGH, "e9",
                  "billing.payment_failed", t0 + timedelta(days=1), ("a payment failed",))
    [record] = [r for r in decisions.decide(alert) if isinstance(r, DecisionRecord)]
    assert record.reasons[0] is ReasonCode.NOT_ELIGIBLE_DO_NOT_CONTACT, record
