"""The alert lifecycle through the API on the local stack: every transition and refusal,
the history, roles and tenants (through the API and raw SQL under the API's role),
expiry, and the ``churn.alert-states`` messages read back from the broker, Kafka down
included.

The alerts are written as the stream writes them (``PostgresAlertSink``), at times
relative to the wall clock, since expiry is computed against it.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jsonschema
import orjson
import psycopg
import pytest
from fastapi.testclient import TestClient
from psycopg import sql

from api import add_user, create_app
from churnwatch.api_server import api_config, migrate_schema
from churnwatch.settings import Settings, Topics
from churnwatch.topics import ensure_churnwatch_topics
from schemas.alert import Alert, AlertTier, Severity
from schemas.event import format_time
from sinks.migrate import api_role_name
from sinks.postgres import PostgresAlertSink, connect
from tests.builders import event_bytes
from tests.integration.conftest import clean_up, create_events_topic
from tests.integration.kafka_io import produce_all, read_all
from tests.integration.processes import run_churnwatch

pytestmark = pytest.mark.integration

SCHEMA = orjson.loads(
    (Path(__file__).parents[2] / "schemas" / "alert_state.v1.schema.json").read_bytes()
)
ADMIN, COORDINATOR, AGENT_A, AGENT_B = "acme:ada", "acme:cole", "acme:agent-a", "acme:agent-b"
GLOBEX = "globex:gus"


@dataclass
class World:
    settings: Settings
    client: TestClient
    tokens: dict[str, str]
    alerts: dict[str, str]  # name -> alert_id

    def call(self, method: str, path: str, user: str, body: Any = None,
             **params: Any) -> Any:
        return self.client.request(
            method, path, headers={"Authorization": f"Bearer {self.tokens[user]}"},
            json=body, params=params,
        )

    def act(self, name: str, action: str, user: str, body: Any = None) -> Any:
        return self.call("POST", f"/v1/alerts/{self.alerts[name]}/{action}", user, body)

    def rows(self, query: str, *params: Any) -> list[tuple[Any, ...]]:
        assert self.settings.database_url
        with connect(self.settings.database_url, self.settings.database_schema) as conn:
            conn.execute("SET TIME ZONE 'UTC'")
            return list(conn.execute(query.encode(), params))


def _alert(tenant: str, account: str, age: timedelta) -> Alert:
    return Alert(
        str(uuid.uuid4()), tenant, account, AlertTier.EVENT_RULE, "payment_failed",
        Severity.HIGH, f"evt-{uuid.uuid4().hex[:8]}", "billing.payment_failed",
        datetime.now(UTC).replace(microsecond=0) - age, ("a payment failed",),
    )


# name -> (tenant, account, age); accounts acct-a* are agent-a's, acct-b1 agent-b's.
ALERTS = {
    "walk": ("acme", "acct-a1", timedelta(hours=2)),
    "assign": ("acme", "acct-a2", timedelta(hours=3)),
    "other": ("acme", "acct-b1", timedelta(hours=1)),
    "old": ("acme", "acct-a3", timedelta(days=40)),
    "old2": ("acme", "acct-a3", timedelta(days=45)),
    "outage": ("acme", "acct-a4", timedelta(hours=5)),
    "globex": ("globex", "acct-a1", timedelta(hours=2)),
    "fresh": ("acme", "acct-unowned", timedelta(minutes=5)),
    "race": ("acme", "acct-a4", timedelta(hours=6)),
}


@pytest.fixture(scope="module")
def world(stack_settings: Settings) -> Iterator[World]:
    suffix = uuid.uuid4().hex[:10]
    name = f"tals{suffix}"
    settings = stack_settings.replace(
        topics=Topics(events=f"{name}.events", dead_letters=f"{name}.dlq",
                      alerts=f"{name}.alerts", late=f"{name}.late", scores=f"{name}.scores",
                      workflows=f"{name}.workflows", alert_states=f"{name}.alert-states"),
        database_schema=f"cw_{name}",
        redis_key_prefix=f"cwt{suffix}",
        alert_expiry=timedelta(days=30),
    )
    try:
        migrate_schema(settings)
        ensure_churnwatch_topics(settings)
        assert settings.database_url
        alerts = {key: _alert(*spec) for key, spec in ALERTS.items()}
        sink = PostgresAlertSink(settings.database_url, settings.database_schema)
        sink.write_batch(list(alerts.values()))
        sink.close()
        tokens = {}
        with connect(settings.database_url, settings.database_schema, autocommit=True) as conn:
            for tenant, user, role in (
                ("acme", "ada", "admin"), ("acme", "cole", "coordinator"),
                ("acme", "agent-a", "agent"), ("acme", "agent-b", "agent"),
                ("globex", "gus", "coordinator"), ("globex", "agent-a", "agent"),
            ):
                tokens[f"{tenant}:{user}"] = add_user(conn, tenant, user, role)[1]
            for account, owner in (("acct-a1", "agent-a"), ("acct-a2", "agent-a"),
                                   ("acct-a3", "agent-a"), ("acct-a4", "agent-a"),
                                   ("acct-b1", "agent-b")):
                conn.execute("INSERT INTO account_owners (tenant_id, account_id, owner,"
                             " updated_by) VALUES ('acme', %s, %s, 'setup')", (account, owner))
        with TestClient(create_app(api_config(settings))) as client:
            yield World(settings, client, tokens,
                        {key: alert.alert_id for key, alert in alerts.items()})
    finally:
        clean_up(stack_settings, [settings])


def error_of(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "field"}
    return body["error"]


def ok(response: Any) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_every_transition_and_refusal_with_its_history(world: World) -> None:
    alert = world.alerts["walk"]
    listed = ok(world.call("GET", "/v1/alerts", AGENT_A, account="acct-a1"))["items"]
    assert [(a["alert_id"], a["status"], a["assignee"]) for a in listed] == [
        (alert, "open", "agent-a")]  # no row yet: open, the owner's
    assert world.rows("SELECT count(*) FROM alert_states WHERE alert_id = %s", alert) == [(0,)]

    acked = ok(world.act("walk", "acknowledge", AGENT_A, {"note": "calling them"}))
    assert (acked["status"], acked["status_updated_by"]) == ("acknowledged", "agent-a")
    assert acked["notes"] == "[agent-a] calling them"
    refused = error_of(world.act("walk", "acknowledge", AGENT_A), 409)
    assert refused["code"] == "conflict" and "acknowledged already" in refused["message"]

    until = (datetime.now(UTC) + timedelta(days=1)).replace(microsecond=0)
    snoozed = ok(world.act("walk", "snooze", AGENT_A, {"until": until.isoformat()}))
    assert snoozed["status"] == "snoozed"
    assert datetime.fromisoformat(snoozed["snoozed_until"]) == until
    past = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    for body, field in (({"until": past}, "until"), ({"until": "2030-01-01T00:00:00"}, "until"),
                        ({}, "until"), ({"until": until.isoformat(), "x": 1}, "x")):
        assert error_of(world.act("walk", "snooze", AGENT_A, body), 422)["field"] == field
    # Snoozing again moves the time; acknowledging ends the snooze.
    later = until + timedelta(days=1)
    assert ok(world.act("walk", "snooze", AGENT_A, {"until": later.isoformat()}))[
        "snoozed_until"] == later.isoformat().replace("+00:00", "Z")
    assert ok(world.act("walk", "acknowledge", AGENT_A))["snoozed_until"] is None

    for body in ({"resolution": "Saved!"}, {"resolution": ""}, {}):
        assert error_of(world.act("walk", "resolve", AGENT_A, body), 422)["field"] == "resolution"
    resolved = ok(world.act("walk", "resolve", AGENT_A, {"resolution": "saved"}))
    assert (resolved["status"], resolved["resolution"]) == ("resolved", "saved")
    attempts: list[tuple[str, Any]] = [
        ("acknowledge", None), ("snooze", {"until": later.isoformat()}),
        ("resolve", {"resolution": "churned"})]
    for action, body in attempts:
        message = error_of(world.act("walk", action, AGENT_A, body), 409)["message"]
        assert "resolved" in message, message
    # Notes in any status; reopen only from resolved (or expired).
    noted = ok(world.act("walk", "notes", AGENT_A, {"text": "renewed for a year"}))
    assert noted["status"] == "resolved"
    assert noted["notes"] == "[agent-a] calling them\n[agent-a] renewed for a year"
    assert error_of(world.act("walk", "notes", AGENT_A, {"text": ""}), 422)["field"] == "text"
    reopened = ok(world.act("walk", "reopen", COORDINATOR))
    assert (reopened["status"], reopened["resolution"]) == ("open", None)
    assert "reopened" in error_of(world.act("walk", "reopen", COORDINATOR), 409)["message"]

    history = ok(world.call("GET", f"/v1/alerts/{alert}/history", AGENT_A))["items"]
    assert [(h["version"], h["action"], h["by"], h["from_status"], h["to_status"])
            for h in history] == [
        (1, "acknowledge", "agent-a", "open", "acknowledged"),
        (2, "snooze", "agent-a", "acknowledged", "snoozed"),
        (3, "snooze", "agent-a", "snoozed", "snoozed"),
        (4, "acknowledge", "agent-a", "snoozed", "acknowledged"),
        (5, "resolve", "agent-a", "acknowledged", "resolved"),
        (6, "note", "agent-a", "resolved", "resolved"),
        (7, "reopen", "cole", "resolved", "open"),
    ]
    assert history[0]["note"] == "calling them" and history[4]["resolution"] == "saved"
    assert history[1]["snoozed_until"] == until.isoformat().replace("+00:00", "Z")
    # Refusals wrote nothing: seven changes, and the state row is the last one's.
    assert world.rows("SELECT count(*) FROM alert_state_history WHERE alert_id = %s",
                      alert) == [(7,)]
    assert world.rows("SELECT status, version, updated_by, assignee FROM alert_states"
                      " WHERE alert_id = %s", alert) == [("open", 7, "cole", "agent-a")]
    single = ok(world.call("GET", f"/v1/alerts/{alert}", COORDINATOR))
    assert single["status"] == "open" and single["status_updated_by"] == "cole"


def test_assignment_by_coordinators_and_the_list_filters(world: World) -> None:
    alert = world.alerts["assign"]
    refused = error_of(world.act("assign", "assign", AGENT_A, {"assignee": "agent-a"}), 403)
    assert refused["field"] == "assignee"
    for body, field in (({"assignee": "nobody"}, "assignee"), ({"assignee": "gus"}, "assignee"),
                        ({"assignee": "bad name"}, "assignee"), ({}, "assignee")):
        assert error_of(world.act("assign", "assign", COORDINATOR, body), 422)["field"] == field
    assert "already" in error_of(
        world.act("assign", "assign", COORDINATOR, {"assignee": "agent-a"}), 409)["message"]
    given = ok(world.act("assign", "assign", COORDINATOR, {"assignee": "agent-b"}))
    assert (given["assignee"], given["status"]) == ("agent-b", "open")
    by_assignee = ok(world.call("GET", "/v1/alerts", COORDINATOR, assignee="agent-b"))["items"]
    assert alert in {a["alert_id"] for a in by_assignee}
    assert all(a["assignee"] == "agent-b" for a in by_assignee)
    # The account is still agent-a's: agent-a still sees and acts on the alert.
    assert ok(world.act("assign", "acknowledge", AGENT_A))["assignee"] == "agent-b"
    acked = ok(world.call("GET", "/v1/alerts", COORDINATOR, status="acknowledged"))["items"]
    assert alert in {a["alert_id"] for a in acked}
    assert all(a["status"] == "acknowledged" for a in acked)
    unassigned = ok(world.act("assign", "assign", ADMIN, {"assignee": None}))
    assert unassigned["assignee"] is None
    [last] = ok(world.call("GET", f"/v1/alerts/{alert}/history", COORDINATOR))["items"][-1:]
    assert (last["action"], last["from_assignee"], last["to_assignee"]) == (
        "assign", "agent-b", None)
    error_of(world.call("GET", "/v1/alerts", COORDINATOR, status="closed"), 422)
    # An account without an owner: its alerts are unassigned until someone assigns them.
    fresh = ok(world.call("GET", f"/v1/alerts/{world.alerts['fresh']}", COORDINATOR))
    assert (fresh["status"], fresh["assignee"]) == ("open", None)


def test_agents_see_their_accounts_and_tenants_see_their_own(world: World) -> None:
    theirs = world.alerts["other"]
    paths = [("GET", f"/v1/alerts/{theirs}", None), ("GET", f"/v1/alerts/{theirs}/history", None),
             ("POST", f"/v1/alerts/{theirs}/acknowledge", None),
             ("POST", f"/v1/alerts/{theirs}/notes", {"text": "x"}),
             ("POST", f"/v1/alerts/{theirs}/resolve", {"resolution": "saved"})]
    for method, path, body in paths:
        assert error_of(world.call(method, path, AGENT_A, body), 404)["field"] == "alert_id"
        assert error_of(world.call(method, path, GLOBEX, body), 404)["field"] == "alert_id"
    assert ok(world.act("other", "acknowledge", AGENT_B))["status"] == "acknowledged"
    # globex has an alert of an account with the same name: its own, and acme's is not it.
    assert ok(world.act("globex", "acknowledge", GLOBEX))["status"] == "acknowledged"
    assert error_of(world.act("globex", "acknowledge", COORDINATOR), 404)
    listed = ok(world.call("GET", "/v1/alerts", AGENT_A, limit=500))["items"]
    assert theirs not in {a["alert_id"] for a in listed}
    assert error_of(world.call("GET", "/v1/alerts/not-a-uuid", COORDINATOR), 422)["field"] == \
        "alert_id"
    assert error_of(world.call("GET", f"/v1/alerts/{uuid.uuid4()}", COORDINATOR), 404)

    # Under the API's role, a transaction of tenant globex sees globex's lifecycle rows
    # only, and cannot write acme's.
    settings = world.settings
    assert settings.database_url
    with psycopg.connect(settings.database_url) as conn:
        conn.execute(sql.SQL("SET ROLE {}").format(
            sql.Identifier(api_role_name(settings.database_schema))))
        conn.execute(sql.SQL("SET search_path TO {}").format(
            sql.Identifier(settings.database_schema)))
        conn.commit()  # session settings: a rollback below must not undo them
        conn.execute("SELECT set_config('churnwatch.tenant', 'globex', true)")
        for table in ("alert_states", "alert_state_history"):
            tenants = {r[0] for r in conn.execute(
                sql.SQL("SELECT tenant_id FROM {}").format(sql.Identifier(table)))}
            assert tenants == {"globex"}, table
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(
                "INSERT INTO alert_state_history (alert_id, tenant_id, account_id, version,"
                " action, by, from_status, to_status) VALUES (%s, 'acme', 'acct-a1', 99,"
                " 'note', 'x', 'open', 'open')", (world.alerts["walk"],))
        conn.rollback()
        conn.execute("SELECT set_config('churnwatch.tenant', 'globex', true)")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):  # append-only for the API
            conn.execute("UPDATE alert_state_history SET note = 'rewritten'")
        conn.rollback()
        conn.execute("SELECT set_config('churnwatch.tenant', 'acme', true)")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("DELETE FROM alert_states")


def test_old_alerts_read_as_expired_and_reopen(world: World) -> None:
    old, old2 = world.alerts["old"], world.alerts["old2"]
    expired = ok(world.call("GET", "/v1/alerts", COORDINATOR, status="expired"))["items"]
    assert {old, old2} <= {a["alert_id"] for a in expired}
    assert all(a["status"] == "expired" for a in expired)
    open_now = ok(world.call("GET", "/v1/alerts", COORDINATOR, status="open", limit=500))["items"]
    assert not {old, old2} & {a["alert_id"] for a in open_now}
    for action, body in (("acknowledge", None),
                         ("snooze", {"until": (datetime.now(UTC) + timedelta(days=1))
                                     .isoformat()})):
        assert "expired" in error_of(world.act("old", action, AGENT_A, body), 409)["message"]
    # A note does not revive it; resolving closes it; reopening starts its clock again.
    assert ok(world.act("old", "notes", AGENT_A, {"text": "seen"}))["status"] == "expired"
    assert ok(world.act("old", "resolve", AGENT_A, {"resolution": "stale"}))["status"] == \
        "resolved"
    assert ok(world.act("old2", "reopen", AGENT_A))["status"] == "open"
    assert ok(world.act("old2", "acknowledge", AGENT_A))["status"] == "acknowledged"
    changes = ok(world.call("GET", f"/v1/alerts/{old}/history", AGENT_A))["items"]
    assert [(c["action"], c["from_status"], c["to_status"]) for c in changes] == [
        ("note", "expired", "expired"), ("resolve", "expired", "resolved")]


def test_simultaneous_changes_of_one_alert_queue(world: World) -> None:
    """Eight acknowledgements at once: the advisory lock makes them one change and seven
    refusals, never two history rows of one version."""
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: world.act("race", "acknowledge", AGENT_A), range(8)))
    assert sorted(a.status_code for a in answers) == [200] + [409] * 7
    assert world.rows("SELECT version, action FROM alert_state_history WHERE alert_id = %s",
                      world.alerts["race"]) == [(1, "acknowledge")]


def _published(world: World) -> dict[str, tuple[bytes | None, dict[str, Any], dict[str, bytes]]]:
    """message_id -> (key, body, headers) of every message on the topic (the last copy)."""
    assert world.settings.kafka_bootstrap
    out = {}
    for key, value, headers in read_all(world.settings.kafka_bootstrap,
                                        world.settings.topics.alert_states):
        named = {h[0]: h[1] for h in headers}
        out[named["message_id"].decode()] = (key, orjson.loads(value), named)
    return out


def test_every_change_is_published_as_alert_state_v1(world: World) -> None:
    ok(world.act("fresh", "acknowledge", COORDINATOR, {"note": "on it"}))
    ok(world.act("fresh", "resolve", COORDINATOR, {"resolution": "false_alarm"}))
    validator = jsonschema.Draft202012Validator(SCHEMA, format_checker=jsonschema.FormatChecker())
    example = orjson.loads((Path(__file__).parents[2] / "schemas" / "examples"
                            / "alert_state.v1.json").read_bytes())
    validator.validate(example)
    published = _published(world)
    history = world.rows(
        "SELECT id, alert_id::text, tenant_id, account_id, version, action, by, from_status,"
        " to_status, from_assignee, to_assignee, resolution, note, published_at"
        " FROM alert_state_history ORDER BY id")
    assert history and all(row[-1] is not None for row in history)  # every row published
    for row in history:
        key, body, headers = published[str(row[0])]
        validator.validate(body)
        assert key == f"{row[2]}:{row[3]}".encode()
        assert headers["schema_version"] == b"1"
        assert (body["message_id"], body["alert_id"], body["tenant_id"], body["account_id"],
                body["version"], body["action"], body["by"], body["from_status"],
                body["to_status"], body["from_assignee"], body["to_assignee"],
                body["resolution"], body["note"]) == (str(row[0]), *row[1:-1])
    fresh = [published[str(r[0])][1] for r in history if r[1] == world.alerts["fresh"]]
    assert [(m["action"], m["to_status"], m["note"], m["resolution"]) for m in fresh] == [
        ("acknowledge", "acknowledged", "on it", None),
        ("resolve", "resolved", None, "false_alarm")]


def test_a_change_made_while_kafka_is_down_stands_and_is_published_later(
    world: World,
) -> None:
    alert = world.alerts["outage"]
    down = dataclasses.replace(api_config(world.settings), kafka_bootstrap="127.0.0.1:1")
    with TestClient(create_app(down)) as client:
        answer = client.post(f"/v1/alerts/{alert}/acknowledge",
                             headers={"Authorization": f"Bearer {world.tokens[AGENT_A]}"})
        assert answer.status_code == 200, answer.text
        assert client.app.state.services.publisher.failures == 1  # type: ignore[attr-defined]
    [(first_id, published_at)] = world.rows(
        "SELECT id, published_at FROM alert_state_history WHERE alert_id = %s", alert)
    assert published_at is None  # committed, kept in the outbox
    assert ok(world.call("GET", f"/v1/alerts/{alert}", AGENT_A))["status"] == "acknowledged"
    assert str(first_id) not in _published(world)
    # The tenant's next change (through an API that reaches Kafka) publishes both.
    ok(world.act("outage", "resolve", AGENT_A, {"resolution": "saved"}))
    ids = [r[0] for r in world.rows(
        "SELECT id FROM alert_state_history WHERE alert_id = %s AND published_at IS NOT NULL"
        " ORDER BY id", alert)]
    assert len(ids) == 2 and ids[0] == first_id
    published = _published(world)
    assert [published[str(i)][1]["action"] for i in ids] == ["acknowledge", "resolve"]


def test_a_decision_stands_back_when_a_person_acknowledged_the_account_alert(
    make_settings: Callable[..., Settings], tmp_path: Path,
) -> None:
    """The policy's ``when: {alert_status: acknowledged}``: a failed payment alerts and
    starts dunning; a person acknowledges the alert through the API; the account's next
    failed payment is decided ``ignore`` / ``human_acknowledged``. An account nobody
    acknowledged, fed the same events, is decided as before."""
    default = (Path(__file__).parents[2] / "decisions" / "policies" / "default.yaml").read_text()
    assert default.count("\nrules:\n") == 1
    policy = tmp_path / "policy.yaml"
    policy.write_text(default.replace("\nrules:\n", """
rules:
  - name: a-person-is-on-it
    when: {alert_status: acknowledged}
    decide: ignore
""", 1))
    settings = make_settings("humans", policy_file=policy,
                             consent_refresh=timedelta(seconds=0.5))
    create_events_topic(settings)
    assert settings.kafka_bootstrap and settings.database_url
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1)
    accounts = ("acct-human", "acct-control")

    def failed_payments(hour: int) -> None:
        assert settings.kafka_bootstrap
        produce_all(settings.kafka_bootstrap, settings.topics.events, [
            (account.encode(), event_bytes(
                event_id=f"{account}-pay-{hour}", tenant_id="acme", account_id=account,
                event_type="billing.payment_failed",
                event_time=format_time(start + timedelta(hours=hour))))
            for account in accounts
        ])

    def decisions() -> dict[str, list[tuple[str, str]]]:
        found: dict[str, list[tuple[str, str]]] = {a: [] for a in accounts}
        with connect(settings.database_url, settings.database_schema) as conn:  # type: ignore[arg-type]
            for account, decision, reason in conn.execute(
                "SELECT account_id, decision, reasons->>0 FROM decisions"
                " WHERE trigger = 'payment_failed' ORDER BY decided_at"
            ):
                found[account].append((decision, reason))
        return found

    failed_payments(0)
    run_churnwatch(settings, "run", "--until-drained")
    assert decisions() == {a: [("start_workflow", "rule_matched")] for a in accounts}

    migrate_schema(settings)  # the API's role (its start does this too)
    with connect(settings.database_url, settings.database_schema, autocommit=True) as conn:
        token = add_user(conn, "acme", "cole", "coordinator")[1]
        [(alert,)] = conn.execute("SELECT alert_id::text FROM alerts WHERE account_id ="
                                  " 'acct-human' AND rule = 'payment_failed'").fetchall()
    with TestClient(create_app(api_config(settings))) as client:
        answer = client.post(f"/v1/alerts/{alert}/acknowledge",
                             headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 200, answer.text

    failed_payments(2)
    run_churnwatch(settings, "run", "--until-drained")  # resumes from its recovery store
    found = decisions()
    assert found["acct-human"][1] == ("ignore", "human_acknowledged")
    assert found["acct-control"][1][1] != "human_acknowledged"
    assert len(found["acct-human"]) == len(found["acct-control"]) == 2
