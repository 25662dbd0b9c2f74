"""The win-back log and experiment reports on the local stack.

A tiny seeded history runs through the production dataflow (``replay_to_sinks``: the
production sinks, real Kafka, Redis and PostgreSQL): accounts of three arms of the
default policy's experiment ``win_back_offer_2026q4`` announce they will cancel (a
``win_back`` trigger, or a holdout decision), some cancel. Then the workflows' outcome
events (``workflow.*``) run through the dataflow the same way; together they make the
win-back log, ``churnwatch experiment report`` and ``GET /v1/experiments/{key}``,
checked against figures computed by hand below.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pytest
from fastapi.testclient import TestClient
from psycopg import sql

from api import add_user
from churnwatch.api_server import api_config
from churnwatch.cli import main
from churnwatch.replay import replay_to_sinks
from churnwatch.settings import Settings, Topics
from decisions.engine import assign_variant, experiment_bucket
from decisions.policy import Experiment
from sinks.migrate import api_role_name
from sinks.postgres import connect
from tests.builders import event_bytes
from tests.integration.conftest import clean_up

pytestmark = pytest.mark.integration

KEY = "win_back_offer_2026q4"
# As in decisions/policies/default.yaml: checked against what the stream assigned.
EXPERIMENT = Experiment(KEY, "win_back", 20, (("coaching", 40), ("discount_20", 40)))
ARMS = ("holdout", "coaching", "discount_20")
PER_ARM = 4


def arm_accounts(tenant: str, prefix: str, per_arm: int) -> dict[str, list[str]]:
    """The first ``per_arm`` account ids ``prefix-N`` the experiment puts in each arm."""
    found: dict[str, list[str]] = {arm: [] for arm in ARMS}
    for n in range(1000):
        account = f"{prefix}-{n}"
        arm = assign_variant(EXPERIMENT, experiment_bucket(tenant, account, KEY))
        if len(found[arm]) < per_arm:
            found[arm].append(account)
        if all(len(v) == per_arm for v in found.values()):
            return found
    raise AssertionError("no accounts for every arm")


ACME = arm_accounts("acme", "wb", PER_ARM)
H1, H2, H3, H4 = ACME["holdout"]
C1, C2, C3, C4 = ACME["coaching"]
D1, D2, D3, D4 = ACME["discount_20"]
GLOBEX_ACCOUNT = arm_accounts("globex", "gx", 1)["coaching"][0]


def event(tenant: str, account: str, event_id: str, event_type: str, time: str,
          **attributes: Any) -> bytes:
    return event_bytes(event_id=event_id, tenant_id=tenant, account_id=account,
                       event_type=event_type, event_time=time, attributes=attributes)


def history() -> list[bytes]:
    """Two logins and a cancel intent (its trigger, or holdout, on 3 Oct) per account;
    h1, h2 and c3 cancel later (c3's open workflow gets a 'cancelled' signal)."""
    lines = []
    for tenant, accounts in (("acme", [a for arm in ARMS for a in ACME[arm]]),
                             ("globex", [GLOBEX_ACCOUNT])):
        for account in accounts:
            lines += [
                event(tenant, account, f"{account}-l1", "app.login", "2026-10-01T09:00:00Z"),
                event(tenant, account, f"{account}-l2", "app.login", "2026-10-02T09:00:00Z"),
                event(tenant, account, f"{account}-ci", "subscription.cancel_intent",
                      "2026-10-03T10:00:00Z"),
            ]
    for account, time in ((H1, "2026-10-10T08:00:00Z"), (H2, "2026-10-12T08:00:00Z"),
                          (C3, "2026-10-11T08:00:00Z")):
        lines.append(event("acme", account, f"{account}-cancel", "subscription.cancelled",
                           time, reason_code="price"))
    return lines


def outcomes(triggers: dict[str, str]) -> list[bytes]:
    """What the workflows reported back (on the same events topic)."""

    def outcome(account: str, kind: str, time: str, event_id: str | None = None,
                tenant: str = "acme", **extra: Any) -> bytes:
        return event_bytes(
            event_id=event_id or f"{account}-{kind}", tenant_id=tenant, account_id=account,
            event_type=f"workflow.{kind}", event_time=time, source="crm", user_id=None,
            attributes={"trigger_id": triggers[account], **extra},
        )

    engaged = outcome(C1, "engaged", "2026-10-05T10:00:00Z", step="call_scheduled",
                      note="wants a call on Friday")
    return [
        outcome(C1, "delivered", "2026-10-04T10:00:00Z"),
        engaged,
        engaged,  # a copy: deduplicated
        outcome(C1, "saved", "2026-10-08T10:00:00Z"),
        outcome(C2, "delivered", "2026-10-04T10:00:00Z"),
        outcome(C2, "lost", "2026-10-09T10:00:00Z", note="moved to a competitor"),
        outcome(C3, "delivered", "2026-10-04T10:00:00Z"),
        outcome(D1, "delivered", "2026-10-04T10:00:00Z"),
        outcome(D2, "delivered", "2026-10-04T10:00:00Z"),
        outcome(D2, "saved", "2026-10-20T10:00:00Z"),
        outcome(D3, "engaged", "2026-10-06T10:00:00Z", step="offer_sent"),
        outcome(GLOBEX_ACCOUNT, "saved", "2026-10-07T10:00:00Z", tenant="globex"),
        # d4's trigger under another account's name: kept, but it settles neither
        event_bytes(event_id="misfiled", tenant_id="acme", account_id=C4,
                    event_type="workflow.saved", event_time="2026-10-07T10:00:00Z",
                    attributes={"trigger_id": triggers[D4]}),
        # Dead-lettered (no trigger id): never in the log
        event_bytes(event_id="bad-outcome", tenant_id="acme", account_id=C4,
                    event_type="workflow.saved", event_time="2026-10-07T10:00:00Z",
                    attributes={"trigger_id": "not-a-trigger"}),
    ]


@dataclass(frozen=True)
class World:
    settings: Settings
    client: TestClient
    tokens: dict[str, str]
    triggers: dict[str, str]  # account -> its win_back trigger id
    dead_letters: int

    def get(self, path: str, user: str | None = None, **params: Any) -> Any:
        headers = {"Authorization": f"Bearer {self.tokens[user]}"} if user else {}
        return self.client.get(path, headers=headers, params=params)

    def rows(self, query: str, *params: Any) -> list[tuple[Any, ...]]:
        assert self.settings.database_url
        with connect(self.settings.database_url, self.settings.database_schema) as conn:
            return list(conn.execute(query.encode(), params))


def write_jsonl(path: Path, lines: list[bytes]) -> Path:
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    return path


@pytest.fixture(scope="module")
def world(stack_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    suffix = uuid.uuid4().hex[:10]
    name = f"twb{suffix}"
    settings = stack_settings.replace(
        topics=Topics(events=f"{name}.events", dead_letters=f"{name}.dlq",
                      alerts=f"{name}.alerts", late=f"{name}.late", scores=f"{name}.scores",
                      workflows=f"{name}.workflows", alert_states=f"{name}.alert-states"),
        database_schema=f"cw_{name}",
        redis_key_prefix=f"cwt{suffix}",
        metrics_port=0,
        recovery_dir=None,
    )
    directory = tmp_path_factory.mktemp("winback")
    try:
        replay_to_sinks(write_jsonl(directory / "history.jsonl", history()), settings)
        assert settings.database_url
        with connect(settings.database_url, settings.database_schema, autocommit=True) as conn:
            triggers = {r[0]: str(r[1]) for r in conn.execute(
                "SELECT account_id, trigger_id FROM workflow_triggers"
                " WHERE workflow_key = 'win_back'")}
        summary = replay_to_sinks(
            write_jsonl(directory / "outcomes.jsonl", outcomes(triggers)), settings
        )
        tokens = {}
        with connect(settings.database_url, settings.database_schema, autocommit=True) as conn:
            for tenant, user, role in (("acme", "cole", "coordinator"),
                                       ("acme", "agent-a", "agent"),
                                       ("globex", "gia", "admin")):
                tokens[f"{tenant}:{user}"] = add_user(conn, tenant, user, role)[1]
            for account in (C1, D1):
                conn.execute("INSERT INTO account_owners (tenant_id, account_id, owner,"
                             " updated_by) VALUES ('acme', %s, 'agent-a', 'setup')", (account,))
        from api import create_app

        with TestClient(create_app(api_config(settings))) as client:
            yield World(settings, client, tokens, triggers, summary["dead_letters"])
    finally:
        clean_up(stack_settings, [settings])


COORDINATOR, AGENT, GLOBEX = "acme:cole", "acme:agent-a", "globex:gia"

# By hand, from history() and outcomes(): (status, result, next step, outcome events)
EXPECTED_LOG = {
    C1: ("saved", "saved", None, 3),
    C2: ("lost", "lost", None, 2),
    C3: ("lost", "cancelled", None, 1),  # no final outcome: the cancelled signal settles it
    C4: ("triggered", None, "deliver", 0),
    D1: ("delivered", None, "engage", 1),
    D2: ("saved", "saved", None, 2),
    D3: ("engaged", None, "offer_sent", 1),
    D4: ("triggered", None, "deliver", 0),
}


def test_the_stream_assigned_the_arms_and_triggered_the_workflows(world: World) -> None:
    assigned = dict(world.rows("SELECT account_id, variant FROM experiment_assignments"
                               " WHERE tenant_id = 'acme' AND experiment_key = %s", KEY))
    assert assigned == {a: arm for arm in ARMS for a in ACME[arm]}
    # Holdout accounts get no workflow; every other account exactly one.
    assert set(world.triggers) == {*ACME["coaching"], *ACME["discount_20"], GLOBEX_ACCOUNT}


def test_outcome_events_reach_workflow_outcomes_once(world: World) -> None:
    rows = world.rows("SELECT account_id, outcome, trigger_id::text, step, note, source"
                      " FROM workflow_outcomes WHERE tenant_id = 'acme'"
                      " ORDER BY occurred_at, account_id")
    assert len(rows) == 11  # 12 acme outcome events, one of them a copy
    assert (C1, "engaged", world.triggers[C1], "call_scheduled", "wants a call on Friday",
            "crm") in rows
    assert all(r[2] == world.triggers[r[0]] for r in rows if r[0] != C4)
    assert [r[2] for r in rows if r[0] == C4] == [world.triggers[D4]]  # the misfiled one
    assert world.dead_letters == 1  # the outcome without a trigger id
    signals = world.rows("SELECT account_id, signal FROM workflow_signals")
    assert signals == [(C3, "cancelled")]
    # The outcomes moved no score: every score row is from the first run's events.
    assert world.rows("SELECT count(*) FROM risk_scores WHERE trigger_event_id LIKE '%%-%%ed'"
                      " OR trigger_event_id LIKE '%%-lost'") == [(0,)]


def test_the_win_back_log(world: World) -> None:
    items = world.get("/v1/win-back", COORDINATOR).json()["items"]
    log = {item["account_id"]: item for item in items}
    assert set(log) == set(EXPECTED_LOG)
    for account, (status, result, next_step, count) in EXPECTED_LOG.items():
        item = log[account]
        assert (item["status"], item["result"], item["next_step"], item["outcomes"]) == (
            status, result, next_step, count), account
        assert item["trigger_id"] == world.triggers[account]
        arm = "coaching" if account in ACME["coaching"] else "discount_20"
        assert item["campaign"] == {"name": f"win_back:{arm}", "workflow_key": "win_back",
                                    "experiment_key": KEY, "variant": arm}
    assert log[C1]["owner"] == "agent-a" and log[C2]["owner"] is None
    assert log[C1]["note"] == "wants a call on Friday"  # the latest note
    assert log[C1]["status_at"].startswith("2026-10-08T10:00:00")
    assert log[C3]["status_at"].startswith("2026-10-11T08:00:00")  # the signal's time
    # Newest trigger first, ties by trigger id (all triggered at one instant here)
    assert [i["trigger_id"] for i in items] == sorted(
        (i["trigger_id"] for i in items), reverse=True)


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"status": "saved"}, {C1, D2}),
        ({"status": "lost"}, {C2, C3}),
        ({"status": "triggered"}, {C4, D4}),
        ({"campaign": "win_back:coaching"}, set(ACME["coaching"])),
        ({"campaign": "win_back"}, set(EXPECTED_LOG)),
        ({"campaign": "dunning"}, set()),
        ({"owner": "agent-a"}, {C1, D1}),
        ({"owner": "agent-a", "status": "delivered"}, {D1}),
        ({"account": D3}, {D3}),
    ],
    ids=["saved", "lost", "triggered", "variant", "workflow", "other-workflow", "owner",
         "owner-and-status", "account"],
)
def test_win_back_filters(world: World, params: dict[str, str], expected: set[str]) -> None:
    response = world.get("/v1/win-back", COORDINATOR, **params)
    assert response.status_code == 200, response.text
    assert {i["account_id"] for i in response.json()["items"]} == expected


def test_win_back_paging(world: World) -> None:
    seen: list[str] = []
    cursor = None
    for _ in range(10):
        body = world.get("/v1/win-back", COORDINATOR, limit=3,
                         **({"cursor": cursor} if cursor else {})).json()
        assert len(body["items"]) <= 3
        seen += [i["trigger_id"] for i in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == len(EXPECTED_LOG)
    # With a filter, and a cursor of another filter refused
    first = world.get("/v1/win-back", COORDINATOR, limit=1, status="saved").json()
    assert first["next_cursor"] is not None
    rest = world.get("/v1/win-back", COORDINATOR, status="saved",
                     cursor=first["next_cursor"]).json()
    assert {i["account_id"] for i in first["items"] + rest["items"]} == {C1, D2}
    refused = world.get("/v1/win-back", COORDINATOR, status="lost", cursor=first["next_cursor"])
    assert refused.status_code == 400 and refused.json()["error"]["field"] == "cursor"


@pytest.mark.parametrize(
    ("params", "field"),
    [({"status": "won"}, "status"), ({"campaign": "a:b:c"}, "campaign"),
     ({"limit": "0"}, "limit"), ({"cursor": "bm90LW91cnM"}, "cursor")],
    ids=["status", "campaign", "limit", "cursor"],
)
def test_win_back_errors(world: World, params: dict[str, str], field: str) -> None:
    response = world.get("/v1/win-back", COORDINATOR, **params)
    assert response.status_code in (400, 422), response.text
    assert response.json()["error"]["field"] == field
    assert world.get("/v1/win-back").status_code == 401


def test_win_back_roles_and_tenants(world: World) -> None:
    agent = world.get("/v1/win-back", AGENT).json()["items"]
    assert {i["account_id"] for i in agent} == {C1, D1}
    globex = world.get("/v1/win-back", GLOBEX).json()["items"]
    assert [(i["account_id"], i["status"]) for i in globex] == [(GLOBEX_ACCOUNT, "saved")]
    assert world.get("/v1/win-back", GLOBEX, account=C1).json()["items"] == []


def test_the_timeline_holds_the_outcomes(world: World) -> None:
    items = world.get(f"/v1/accounts/{C1}/timeline", COORDINATOR, limit=500).json()["items"]
    outcome_items = [i for i in items if i["kind"] == "workflow_outcome"]
    assert [i["data"]["outcome"] for i in outcome_items] == ["delivered", "engaged", "saved"]
    assert {i["data"]["trigger_id"] for i in outcome_items} == {world.triggers[C1]}
    assert outcome_items[1]["data"]["step"] == "call_scheduled"
    assert outcome_items[0]["time"].startswith("2026-10-04T10:00:00")


# By hand (Wilson 95 %, z = 1.959964): 0/4 -> [0, 0.4899]; 1/4 -> [0.0456, 0.6994];
# 2/4 -> [0.1500, 0.8500]. Coaching's churn minus the holdout's, 1/4 - 2/4 = -0.25,
# Newcombe: -0.25 -/+ sqrt((0.25-0.0456)^2 + (0.8500-0.5)^2) and
# sqrt((0.6994-0.25)^2 + (0.5-0.1500)^2) -> [-0.6553, 0.3196].
EXPECTED_ARMS = {
    # arm: (assigned, saved, lost, churned)
    "holdout": (4, 0, 0, 2),
    "coaching": (4, 1, 2, 1),  # c1 saved; c2 lost, c3 lost by its cancelled signal
    "discount_20": (4, 1, 0, 0),  # d2 saved on 20 Oct
}


def check_report(document: dict[str, Any], expected: dict[str, tuple[int, ...]]) -> None:
    arms = {arm["variant"]: arm for arm in document["arms"]}
    assert document["arms"][0]["variant"] == "holdout"
    assert document["control"] == "holdout"
    for arm, counts in expected.items():
        got = arms[arm]
        assert (got["assigned"], got["saved"], got["lost"], got["churned"]) == counts, arm

    def bounds(interval: dict[str, float]) -> tuple[float, float, float]:
        return (round(interval["value"], 4), round(interval["low"], 4),
                round(interval["high"], 4))

    assert bounds(arms["holdout"]["churn_rate"]) == (0.5, 0.15, 0.85)
    assert bounds(arms["discount_20"]["churn_rate"]) == (0.0, 0.0, 0.4899)
    assert bounds(arms["coaching"]["churn_rate"]) == (0.25, 0.0456, 0.6994)
    assert bounds(arms["coaching"]["churn_rate_vs_control"]) == (-0.25, -0.6553, 0.3196)
    assert arms["holdout"]["churn_rate_vs_control"] is None


def test_experiment_report_through_the_api(world: World) -> None:
    response = world.get(f"/v1/experiments/{KEY}", COORDINATOR)
    assert response.status_code == 200, response.text
    document = response.json()
    assert document["tenant_id"] == "acme"
    check_report(document, EXPECTED_ARMS)
    arms = {arm["variant"]: arm for arm in document["arms"]}
    assert (round(arms["coaching"]["save_rate"]["low"], 4),
            round(arms["coaching"]["save_rate"]["high"], 4)) == (0.0456, 0.6994)
    # Until 15 Oct: d2 (saved on the 20th) is not saved yet.
    early = world.get(f"/v1/experiments/{KEY}", COORDINATOR,
                      until="2026-10-15T00:00:00Z").json()
    check_report(early, {**EXPECTED_ARMS, "discount_20": (4, 0, 0, 0)})
    # Assigned from 4 Oct: nobody.
    late = world.get(f"/v1/experiments/{KEY}", COORDINATOR, since="2026-10-04T00:00:00Z")
    assert late.status_code == 200 and late.json()["arms"] == []
    # Another tenant sees its own account only; an agent its own accounts only.
    globex = world.get(f"/v1/experiments/{KEY}", GLOBEX).json()
    assert [(a["variant"], a["assigned"], a["saved"]) for a in globex["arms"]] == [
        ("coaching", 1, 1)]
    agent = world.get(f"/v1/experiments/{KEY}", AGENT).json()
    assert {a["variant"]: a["assigned"] for a in agent["arms"]} == {"coaching": 1,
                                                                  "discount_20": 1}


def test_experiment_report_errors(world: World) -> None:
    missing = world.get("/v1/experiments/no_such_experiment", COORDINATOR)
    assert missing.status_code == 404 and missing.json()["error"]["field"] == "key"
    backwards = world.get(f"/v1/experiments/{KEY}", COORDINATOR,
                          since="2026-10-05T00:00:00Z", until="2026-10-04T00:00:00Z")
    assert backwards.status_code == 422 and backwards.json()["error"]["field"] == "until"
    naive = world.get(f"/v1/experiments/{KEY}", COORDINATOR, since="2026-10-05T00:00:00")
    assert naive.status_code == 422 and naive.json()["error"]["field"] == "since"
    assert world.get(f"/v1/experiments/{KEY}").status_code == 401


def test_experiment_report_command(world: World, monkeypatch: pytest.MonkeyPatch,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    for name in [n for n in os.environ if n.startswith("CHURNWATCH_")]:
        monkeypatch.delenv(name)
    for name, value in world.settings.to_env().items():
        monkeypatch.setenv(name, value)
    assert main(["experiment", "report", KEY, "--tenant", "acme", "--format", "json"]) == 0
    check_report(orjson.loads(capsys.readouterr().out), EXPECTED_ARMS)
    # Every tenant: globex's coaching account joins the coaching arm.
    assert main(["experiment", "report", KEY, "--format", "json",
                 "--until", "2026-10-15T00:00:00Z"]) == 0
    every = {a["variant"]: a for a in orjson.loads(capsys.readouterr().out)["arms"]}
    assert (every["coaching"]["assigned"], every["coaching"]["saved"]) == (5, 2)
    assert every["discount_20"]["saved"] == 0
    assert main(["experiment", "report", KEY, "--tenant", "acme"]) == 0
    text = capsys.readouterr().out
    assert "holdout (control)" in text
    assert "25.0% [4.6, 69.9]" in text  # coaching's save and churn rates
    assert main(["experiment", "report", "no_such_experiment"]) == 1
    assert "no account was assigned" in capsys.readouterr().err


def test_new_tables_under_row_level_security(world: World) -> None:
    settings = world.settings
    assert settings.database_url
    with psycopg.connect(settings.database_url) as conn:
        conn.execute(sql.SQL("SET search_path TO {}").format(
            sql.Identifier(settings.database_schema)))
        conn.execute(sql.SQL("SET ROLE {}").format(
            sql.Identifier(api_role_name(settings.database_schema))))
        conn.commit()
        for table in ("workflow_outcomes", "experiment_assignments"):
            assert conn.execute(f"SELECT count(*) FROM {table}").fetchone() == (0,), table
            with conn.transaction():
                conn.execute("SELECT set_config('churnwatch.tenant', 'globex', true)")
                seen = conn.execute(f"SELECT DISTINCT tenant_id FROM {table}").fetchall()
            assert seen == [("globex",)], table
            conn.commit()  # the tenant was named for the transaction only
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("DELETE FROM workflow_outcomes")
        conn.rollback()
