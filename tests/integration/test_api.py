"""The REST API on the local stack: every endpoint over what the real pipeline wrote to
PostgreSQL and Redis, roles and tenants through the API, row-level security through
raw SQL under the API's role, on-demand scoring against the stream's, and paging.

One simulated history (two tenants) is run through the production dataflow once for
the module (``replay_to_sinks``: the production sinks, in this process); each test then
works on its own accounts, or only reads.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pytest
from fastapi.testclient import TestClient
from psycopg import sql

from api import add_user
from api.cursor import encode_cursor
from api.users import disable_user
from churnwatch.api_server import api_config
from churnwatch.cli import main
from churnwatch.replay import replay_to_sinks
from churnwatch.settings import Settings, Topics
from churnwatch.simulator import simulate, write_jsonl
from featurestore.definitions import load_definitions
from featurestore.redis_store import RedisFeatureStore
from schemas.alert import Alert, AlertTier, Severity
from schemas.event import format_time
from scoring.model import load_model
from scoring.risk import score_batch
from sinks.migrate import api_role_name, available_migrations, migrate
from sinks.postgres import PostgresAlertSink, connect
from tests.builders import event_bytes
from tests.integration.conftest import clean_up
from tests.integration.processes import start_churnwatch

pytestmark = pytest.mark.integration

# Tables the API reads, each under row-level security by tenant (migrations 0006, 0007,
# 0008, 0009).
API_TABLES = (
    "alerts", "risk_scores", "usage_signals", "decisions", "workflow_triggers",
    "workflow_signals", "cancellation_reasons", "account_owners", "api_users",
    "alert_states", "alert_state_history", "workflow_outcomes", "experiment_assignments",
    "accounts",
)
# An account of tenant acme whose last event is decisive (a failed payment): the stream
# scores it at that event, and its features in Redis are as of that same event.
ON_DEMAND = "acct-ondemand"


@dataclass(frozen=True)
class World:
    settings: Settings
    client: TestClient
    tokens: dict[str, str]  # user name -> token
    agent_a_accounts: tuple[str, ...]
    agent_b_accounts: tuple[str, ...]

    def get(self, path: str, user: str | None = None, **params: Any) -> Any:
        headers = {"Authorization": f"Bearer {self.tokens[user]}"} if user else {}
        return self.client.get(path, headers=headers, params=params)

    def call(self, method: str, path: str, user: str, body: Any = None) -> Any:
        return self.client.request(
            method, path, headers={"Authorization": f"Bearer {self.tokens[user]}"}, json=body,
        )

    def rows(self, query: str, *params: Any) -> list[tuple[Any, ...]]:
        """As churnwatch's own role (the tables' owner): the ground truth."""
        assert self.settings.database_url
        with connect(self.settings.database_url, self.settings.database_schema) as conn:
            conn.execute("SET TIME ZONE 'UTC'")
            return list(conn.execute(query.encode(), params))


def _history(directory: Path) -> Path:
    simulation = simulate(accounts=40, days=28, seed=11)
    path = directory / "history.jsonl"
    write_jsonl(simulation, path)
    last = max(e["event_time"] for e in simulation.valid_events())
    start = datetime.fromisoformat(last.replace("Z", "+00:00")) - timedelta(days=3)
    extra = [
        event_bytes(event_id=f"od-{i}", tenant_id="acme", account_id=ON_DEMAND,
                    event_type="app.login", event_time=format_time(start + timedelta(hours=5 * i)))
        for i in range(8)
    ]
    extra.append(event_bytes(event_id="od-pay", tenant_id="acme", account_id=ON_DEMAND,
                             event_type="billing.payment_failed",
                             event_time=format_time(start + timedelta(days=2))))
    with path.open("ab") as out:
        for line in extra:
            out.write(line + b"\n")
    return path


@pytest.fixture(scope="module")
def world(stack_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    suffix = uuid.uuid4().hex[:10]
    name = f"tapi{suffix}"
    settings = stack_settings.replace(
        topics=Topics(events=f"{name}.events", dead_letters=f"{name}.dlq",
                      alerts=f"{name}.alerts", late=f"{name}.late", scores=f"{name}.scores",
                      workflows=f"{name}.workflows", alert_states=f"{name}.alert-states"),
        database_schema=f"cw_{name}",
        redis_key_prefix=f"cwt{suffix}",
        metrics_port=0,
        recovery_dir=None,
        score_min_change=0.0,  # every score a row: the stream's score of every event
    )
    try:
        replay_to_sinks(_history(tmp_path_factory.mktemp("api")), settings)
        assert settings.database_url
        tokens = {}
        with connect(settings.database_url, settings.database_schema, autocommit=True) as conn:
            for tenant, user, role in (
                ("acme", "ada", "admin"), ("acme", "cole", "coordinator"),
                ("acme", "agent-a", "agent"), ("acme", "agent-b", "agent"),
                ("globex", "gia", "admin"), ("globex", "gus", "coordinator"),
                ("globex", "agent-a", "agent"),  # the same name in another tenant
            ):
                tokens[f"{tenant}:{user}"] = add_user(conn, tenant, user, role)[1]
            scored = [r[0] for r in conn.execute(
                "SELECT DISTINCT account_id FROM risk_scores WHERE tenant_id = 'acme'"
                " AND account_id <> %s ORDER BY 1", (ON_DEMAND,))]
            agent_a = (ON_DEMAND, *scored[:3])
            agent_b = (scored[3],)
            for account in agent_a:
                conn.execute("INSERT INTO account_owners (tenant_id, account_id, owner,"
                             " updated_by) VALUES ('acme', %s, 'agent-a', 'setup')", (account,))
            conn.execute("INSERT INTO account_owners (tenant_id, account_id, owner, updated_by)"
                         " VALUES ('acme', %s, 'agent-b', 'setup')", agent_b)
        with TestClient(create_app_for(settings)) as client:
            yield World(settings, client, tokens, agent_a, agent_b)
    finally:
        clean_up(stack_settings, [settings])


def create_app_for(settings: Settings) -> Any:
    from api import create_app

    return create_app(api_config(settings))


# Users by the name tests call them.
ADMIN, COORDINATOR, AGENT_A, AGENT_B = "acme:ada", "acme:cole", "acme:agent-a", "acme:agent-b"
GLOBEX_ADMIN, GLOBEX = "globex:gia", "globex:gus"


def error_of(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "field"}
    return body["error"]


def page_through(world: World, path: str, user: str, limit: int, **params: Any) -> list[Any]:
    """Every item of a list, ``limit`` at a time, following next_cursor."""
    items: list[Any] = []
    cursor = None
    for _ in range(1000):
        response = world.get(path, user, limit=limit, **({"cursor": cursor} if cursor else {}),
                             **params)
        assert response.status_code == 200, response.text
        body = response.json()
        assert len(body["items"]) <= limit
        items.extend(body["items"])
        cursor = body["next_cursor"]
        if cursor is None:
            return items
    raise AssertionError("paging did not end")


def latest_scores(world: World, tenant: str) -> dict[str, tuple[Any, ...]]:
    """account -> (risk, tier, score_time) of its latest primary score, from the table."""
    return {r[0]: r[1:] for r in world.rows(
        "SELECT DISTINCT ON (account_id) account_id, score, tier, score_time FROM risk_scores"
        " WHERE tenant_id = %s AND NOT shadow ORDER BY account_id, score_time DESC,"
        " score_id DESC", tenant)}


def test_health_docs_and_authentication(world: World) -> None:
    assert world.get("/healthz").json() == {"status": "ok"}
    document = world.get("/openapi.json").json()
    assert {"/v1/accounts", "/v1/accounts/{account_id}", "/v1/accounts/{account_id}/timeline",
            "/v1/accounts/{account_id}/features", "/v1/accounts/{account_id}/score",
            "/v1/alerts", "/v1/churn-causes", "/v1/users"} <= set(document["paths"])
    assert world.get("/docs").status_code == 200

    missing = world.client.get("/v1/accounts")
    assert error_of(missing, 401)["code"] == "unauthorized"
    assert missing.headers["www-authenticate"] == "Bearer"
    for header in ("Basic abc", f"Bearer {world.tokens[ADMIN]}x", "Bearer cw_unknown"):
        response = world.client.get("/v1/accounts", headers={"Authorization": header})
        assert error_of(response, 401)["code"] == "unauthorized"
    assert error_of(world.get("/v1/nowhere", ADMIN), 404)["code"] == "not_found"


def test_at_risk_accounts_sorted_filtered_and_paged(world: World) -> None:
    truth = latest_scores(world, "acme")
    every = page_through(world, "/v1/accounts", COORDINATOR, 500)
    assert {a["account_id"] for a in every} == set(truth)
    assert [(a["risk"], a["tier"]) for a in every] == [
        truth[a["account_id"]][:2] for a in every]
    assert [(-a["risk"], a["account_id"]) for a in every] == sorted(
        (-a["risk"], a["account_id"]) for a in every)
    owners = {a["account_id"]: a["owner"] for a in every}
    assert all(owners[a] == "agent-a" for a in world.agent_a_accounts)
    first = every[0]
    assert set(first) == {"account_id", "risk", "tier", "reasons", "model_version",
                          "score_time", "expires_at", "owner", "company_name", "plan", "mrr",
                          "renewal_date", "status", "last_event_at"}

    # Paging: stable and complete, whatever the page size, under both sorts.
    for limit in (1, 4, 7):
        assert page_through(world, "/v1/accounts", COORDINATOR, limit) == every
    by_time = page_through(world, "/v1/accounts", COORDINATOR, 500, sort="score_time")
    assert page_through(world, "/v1/accounts", COORDINATOR, 3, sort="score_time") == by_time
    times = [datetime.fromisoformat(a["score_time"]) for a in by_time]
    assert times == sorted(times, reverse=True)

    for tier in ("low", "medium", "high"):
        listed = page_through(world, "/v1/accounts", COORDINATOR, 5, tier=tier)
        assert {a["account_id"] for a in listed} == {a for a, v in truth.items() if v[1] == tier}
    owned = page_through(world, "/v1/accounts", COORDINATOR, 2, owner="agent-a")
    assert {a["account_id"] for a in owned} == set(world.agent_a_accounts)

    # A cursor is for the query that made it; limit and filters are checked.
    page = world.get("/v1/accounts", COORDINATOR, limit=2).json()
    assert page["next_cursor"]
    wrong = world.get("/v1/accounts", COORDINATOR, limit=2, sort="score_time",
                      cursor=page["next_cursor"])
    assert error_of(wrong, 400)["field"] == "cursor"
    # Well-formed for this query, but not what the list put there: still refused.
    forged = [encode_cursor("accounts", {"sort": "risk"}, ["high", "a"]),
              encode_cursor("alerts", {}, ["2026-09-01T00:00:00+00:00", "not-a-uuid"])]
    assert error_of(world.get("/v1/accounts", COORDINATOR, cursor=forged[0]), 400)["field"] \
        == "cursor"
    assert error_of(world.get("/v1/alerts", COORDINATOR, cursor=forged[1]), 400)["field"] \
        == "cursor"
    for cursor in ("garbage!", "eyJ2IjoxfQ"):
        assert error_of(world.get("/v1/accounts", COORDINATOR, cursor=cursor), 400)["field"] \
            == "cursor"
    assert error_of(world.get("/v1/accounts", COORDINATOR, limit=0), 422)["field"] == "limit"
    assert error_of(world.get("/v1/accounts", COORDINATOR, limit=501), 422)["field"] == "limit"
    assert error_of(world.get("/v1/accounts", COORDINATOR, tier="severe"), 422)["field"] == "tier"
    assert error_of(world.get("/v1/accounts", COORDINATOR, sort="size"), 422)["field"] == "sort"


def test_roles_agents_see_their_own_accounts(world: World) -> None:
    mine = page_through(world, "/v1/accounts", AGENT_A, 2)
    assert sorted(a["account_id"] for a in mine) == sorted(world.agent_a_accounts)
    assert [a["account_id"] for a in page_through(world, "/v1/accounts", AGENT_B, 2)] == list(
        world.agent_b_accounts)
    theirs = world.agent_b_accounts[0]
    for path in ("", "/timeline", "/features"):
        assert error_of(world.get(f"/v1/accounts/{theirs}{path}", AGENT_A), 404)["code"] == \
            "not_found"
    assert error_of(world.call("POST", f"/v1/accounts/{theirs}/score", AGENT_A), 404)
    assert error_of(world.call("PATCH", f"/v1/accounts/{theirs}", AGENT_A, {"notes": "x"}), 404)
    # The agent's alerts and churn causes are its accounts' only.
    alerts = page_through(world, "/v1/alerts", AGENT_A, 50)
    assert {a["account_id"] for a in alerts} <= set(world.agent_a_accounts)
    assert len(alerts) == world.rows(
        "SELECT count(*) FROM alerts WHERE tenant_id = 'acme' AND account_id = ANY(%s)",
        list(world.agent_a_accounts))[0][0]


def test_account_detail_and_ownership_changes(world: World) -> None:
    account = page_through(world, "/v1/accounts", COORDINATOR, 500)[-1]["account_id"]
    detail = world.get(f"/v1/accounts/{account}", COORDINATOR).json()
    [(score_id, risk)] = world.rows(
        "SELECT score_id::text, score FROM risk_scores WHERE tenant_id = 'acme' AND account_id"
        " = %s AND NOT shadow ORDER BY score_time DESC, score_id DESC LIMIT 1", account)
    assert detail["latest_score"]["score_id"] == score_id
    assert detail["latest_score"]["risk"] == risk
    assert (detail["owner"], detail["notes"]) == (None, "")

    # A coordinator gives it to agent-b with a note; agent-b then sees it.
    changed = world.call("PATCH", f"/v1/accounts/{account}", COORDINATOR,
                         {"owner": "agent-b", "notes": "call before renewal"})
    assert changed.status_code == 200, changed.text
    assert changed.json()["owner"] == "agent-b" and changed.json()["updated_by"] == "cole"
    assert world.get(f"/v1/accounts/{account}", AGENT_B).json()["notes"] == "call before renewal"
    # agent-b edits the notes of its account, not its owner.
    noted = world.call("PATCH", f"/v1/accounts/{account}", AGENT_B, {"notes": "called"})
    assert noted.json()["notes"] == "called" and noted.json()["owner"] == "agent-b"
    refused = world.call("PATCH", f"/v1/accounts/{account}", AGENT_B, {"owner": "agent-a"})
    assert error_of(refused, 403)["field"] == "owner"
    # Owners are enabled users of the tenant; the body is checked field by field.
    for body, field in (({"owner": "nobody"}, "owner"), ({"owner": "gus"}, "owner"),
                        ({"owner": "bad name"}, "owner"), ({"colour": "red"}, "colour"),
                        ({"notes": None}, "notes"), ({"notes": "x" * 10_001}, "notes")):
        response = world.call("PATCH", f"/v1/accounts/{account}", COORDINATOR, body)
        assert error_of(response, 422)["field"] == field, body
    assert error_of(world.call("PATCH", f"/v1/accounts/{account}", COORDINATOR, {}), 422)
    assert error_of(world.call("PATCH", "/v1/accounts/acct-none", COORDINATOR,
                               {"notes": "x"}), 404)["field"] == "account_id"
    # The admin may too; null leaves it without an owner (the notes stay).
    cleared = world.call("PATCH", f"/v1/accounts/{account}", ADMIN, {"owner": None})
    assert (cleared.json()["owner"], cleared.json()["notes"]) == (None, "called")
    assert error_of(world.get(f"/v1/accounts/{account}", AGENT_B), 404)
    assert error_of(world.get("/v1/accounts/acct-none", COORDINATOR), 404)["code"] == "not_found"


def test_timeline_in_time_order_paged_and_bounded(world: World) -> None:
    [(account, _)] = world.rows(
        "SELECT account_id, count(*) FROM decisions WHERE tenant_id = 'acme'"
        " GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 1")
    items = page_through(world, f"/v1/accounts/{account}/timeline", COORDINATOR, 500)
    counts = world.rows(
        "SELECT (SELECT count(*) FROM risk_scores WHERE tenant_id = 'acme' AND account_id = %s"
        "        AND NOT shadow),"
        " (SELECT count(*) FROM usage_signals WHERE tenant_id = 'acme' AND account_id = %s),"
        " (SELECT count(*) FROM alerts WHERE tenant_id = 'acme' AND account_id = %s),"
        " (SELECT count(*) FROM decisions WHERE tenant_id = 'acme' AND account_id = %s),"
        " (SELECT count(*) FROM workflow_triggers WHERE tenant_id = 'acme' AND account_id = %s),"
        " (SELECT count(*) FROM workflow_signals WHERE tenant_id = 'acme' AND account_id = %s),"
        " (SELECT count(*) FROM cancellation_reasons WHERE tenant_id = 'acme'"
        "        AND account_id = %s)", *[account] * 7)[0]
    kinds = ("score", "usage_signal", "alert", "decision", "workflow_trigger", "workflow_signal",
             "cancellation")
    assert {k: sum(i["kind"] == k for i in items) for k in kinds} == dict(
        zip(kinds, counts, strict=True))
    assert counts[0] > 0 and counts[2] > 0 and counts[3] > 0
    keys = [(datetime.fromisoformat(i["time"]), i["kind"], i["id"]) for i in items]
    assert keys == sorted(keys)
    score = next(i for i in items if i["kind"] == "score")
    assert {"score", "tier", "reasons", "model_version"} <= set(score["data"])
    assert "tenant_id" not in score["data"]
    assert page_through(world, f"/v1/accounts/{account}/timeline", COORDINATOR, 6) == items

    middle = datetime.fromisoformat(items[len(items) // 2]["time"])
    since, until = middle - timedelta(days=2), middle + timedelta(days=1)
    bounded = page_through(world, f"/v1/accounts/{account}/timeline", COORDINATOR, 5,
                           since=since.isoformat(), until=until.isoformat())
    assert bounded == [i for i in items if since <= datetime.fromisoformat(i["time"]) < until]
    assert bounded
    response = world.get(f"/v1/accounts/{account}/timeline", COORDINATOR,
                         since=until.isoformat(), until=since.isoformat())
    assert error_of(response, 422)["field"] == "until"
    naive = world.get(f"/v1/accounts/{account}/timeline", COORDINATOR, since="2026-09-01T00:00")
    assert error_of(naive, 422)["field"] == "since"
    assert error_of(world.get(f"/v1/accounts/{account}/timeline", COORDINATOR,
                              since="yesterday"), 422)["field"] == "since"


def _store(world: World) -> RedisFeatureStore:
    settings = world.settings
    assert settings.redis_url
    definitions = load_definitions(settings.feature_definitions)
    return RedisFeatureStore.from_url(settings.redis_url, definitions.names, definitions.version,
                                      settings.feature_ttl, prefix=settings.redis_key_prefix)


def test_features_from_the_online_store(world: World) -> None:
    store = _store(world)
    stored = store.get("acme", ON_DEMAND)
    store.close()
    assert stored is not None
    for user in (COORDINATOR, AGENT_A):
        body = world.get(f"/v1/accounts/{ON_DEMAND}/features", user).json()
        assert body["features"] == stored.values
        assert body["feature_version"] == stored.feature_version
        assert datetime.fromisoformat(body["as_of"]).timestamp() * 1000 == stored.as_of_ms
    assert error_of(world.get("/v1/accounts/acct-none/features", COORDINATOR), 404)


def test_on_demand_scoring_is_the_streams(world: World) -> None:
    settings = world.settings
    assert settings.model_dir
    store = _store(world)
    stored = store.get("acme", ON_DEMAND)
    store.close()
    assert stored is not None
    # The stream scored the account at its last (decisive) event: the features in Redis
    # are the ones it scored.
    [(ml_score, score_time, model_version)] = world.rows(
        "SELECT ml_score, score_time, model_version FROM risk_scores WHERE tenant_id = 'acme'"
        " AND account_id = %s AND NOT shadow ORDER BY score_time DESC LIMIT 1", ON_DEMAND)
    assert score_time.timestamp() * 1000 == stored.as_of_ms

    current = world.call("POST", f"/v1/accounts/{ON_DEMAND}/score", AGENT_A)
    assert current.status_code == 200, current.text
    scored = current.json()
    assert scored["source"] == "online_store" and scored["model_version"] == model_version
    assert scored["ml_risk"] == pytest.approx(ml_score, abs=1e-6)
    assert scored["risk"] == scored["ml_risk"]  # no rule risk in a feature vector

    # A supplied vector: the same answer for the same values, and scoring/ directly agrees.
    supplied = world.call("POST", f"/v1/accounts/{ON_DEMAND}/score", COORDINATOR,
                          {"features": stored.values})
    assert supplied.json()["source"] == "supplied"
    assert {k: supplied.json()[k] for k in ("ml_risk", "tier", "reasons")} == {
        k: scored[k] for k in ("ml_risk", "tier", "reasons")}
    definitions = load_definitions(settings.feature_definitions)
    model = load_model(settings.model_dir, definitions.version, definitions.names)
    changed = {**stored.values, definitions.names[0]: stored.values[definitions.names[0]] + 40}
    response = world.call("POST", f"/v1/accounts/{ON_DEMAND}/score", COORDINATOR,
                          {"features": changed})
    from accounts.debounce import ScoreRequest
    from churnwatch.api_server import api_config as config_of

    request = ScoreRequest("acme", ON_DEMAND, tuple(changed[n] for n in definitions.names),
                           0.0, 0.0, "x")
    [direct] = score_batch([request], model, config_of(settings).risk_policy)
    assert response.json()["ml_risk"] == pytest.approx(direct.ml_risk, abs=1e-7)
    assert (response.json()["tier"], tuple(response.json()["reasons"])) == (
        str(direct.tier), direct.reasons)

    # A vector names every feature with a number, and nothing else.
    first, *_ = definitions.names
    without = {k: v for k, v in stored.values.items() if k != first}
    for features, field in (
        (without, f"features.{first}"),
        ({**stored.values, "mrr": 10.0}, "features.mrr"),
        ({**stored.values, first: "12"}, f"features.{first}"),
        ({**stored.values, first: True}, f"features.{first}"),
        ({**stored.values, first: None}, f"features.{first}"),
    ):
        response = world.call("POST", f"/v1/accounts/{ON_DEMAND}/score", COORDINATOR,
                              {"features": features})
        assert error_of(response, 422)["field"] == field
    bad_json = world.client.post(
        f"/v1/accounts/{ON_DEMAND}/score", content=b"{not json",
        headers={"Authorization": f"Bearer {world.tokens[COORDINATOR]}",
                 "Content-Type": "application/json"})
    assert error_of(bad_json, 400)["code"] == "bad_request"
    assert error_of(world.call("POST", "/v1/accounts/acct-none/score", COORDINATOR), 404)


def test_alerts_filtered_and_paged(world: World) -> None:
    truth = world.rows(
        "SELECT alert_id::text, account_id, tier, rule, severity, event_time FROM alerts"
        " WHERE tenant_id = 'acme' ORDER BY event_time DESC, alert_id DESC")
    every = page_through(world, "/v1/alerts", COORDINATOR, 500)
    assert [a["alert_id"] for a in every] == [r[0] for r in truth]
    assert page_through(world, "/v1/alerts", COORDINATOR, 7) == every
    assert {r[2] for r in truth} >= {1, 2} and len(truth) > 10

    for params, keep in (
        ({"tier": 1}, lambda r: r[2] == 1),
        ({"severity": "high"}, lambda r: r[4] == "high"),
        ({"rule": truth[0][3]}, lambda r: r[3] == truth[0][3]),
        ({"account": truth[0][1]}, lambda r: r[1] == truth[0][1]),
    ):
        listed = page_through(world, "/v1/alerts", COORDINATOR, 10, **params)
        assert [a["alert_id"] for a in listed] == [r[0] for r in truth if keep(r)], params
    since, until = truth[-1][5] + timedelta(days=5), truth[0][5] - timedelta(days=5)
    window = page_through(world, "/v1/alerts", COORDINATOR, 10, since=since.isoformat(),
                          until=until.isoformat())
    assert [a["alert_id"] for a in window] == [r[0] for r in truth if since <= r[5] < until]
    assert error_of(world.get("/v1/alerts", COORDINATOR, tier=4), 422)["field"] == "tier"
    assert error_of(world.get("/v1/alerts", COORDINATOR, severity="dire"), 422)["field"] == \
        "severity"


def test_churn_causes_by_month_and_reason(world: World) -> None:
    truth = world.rows(
        "SELECT to_char(date_trunc('month', cancelled_at), 'YYYY-MM'), reason_code, count(*)"
        " FROM cancellation_reasons WHERE tenant_id = 'acme' GROUP BY 1, 2")
    body = world.get("/v1/churn-causes", COORDINATOR).json()
    assert sorted((i["period"], i["reason_code"] or "", i["cancellations"])
                  for i in body["items"]) == sorted((p, r or "", c) for p, r, c in truth)
    assert sum(i["cancellations"] for i in body["items"]) > 0
    later = world.get("/v1/churn-causes", COORDINATOR, since="2099-01-01T00:00:00Z").json()
    assert later == {"items": []}
    mine = world.get("/v1/churn-causes", AGENT_B).json()["items"]
    assert sum(i["cancellations"] for i in mine) == world.rows(
        "SELECT count(*) FROM cancellation_reasons WHERE tenant_id = 'acme' AND account_id ="
        " ANY(%s)", list(world.agent_b_accounts))[0][0]


def test_admins_manage_users_others_cannot(world: World) -> None:
    listed = world.get("/v1/users", ADMIN).json()["items"]
    assert {(u["name"], u["role"]) for u in listed} >= {
        ("ada", "admin"), ("cole", "coordinator"), ("agent-a", "agent")}
    assert {u["tenant_id"] for u in listed} == {"acme"}

    created = world.call("POST", "/v1/users", ADMIN, {"name": "newbie", "role": "agent"})
    assert created.status_code == 201, created.text
    token = created.json()["token"]
    assert token.startswith("cw_") and created.json()["tenant_id"] == "acme"
    as_newbie = world.client.get("/v1/accounts", headers={"Authorization": f"Bearer {token}"})
    assert as_newbie.json() == {  # owns nothing yet
        "items": [], "next_cursor": None,
        "mrr_at_risk": {"mrr": 0.0, "accounts": 0, "without_mrr": 0},
    }
    assert world.rows("SELECT count(*) FROM api_users WHERE token_sha256 = %s",
                      token)[0][0] == 0  # the token itself is nowhere

    duplicate = world.call("POST", "/v1/users", ADMIN, {"name": "newbie", "role": "agent"})
    assert error_of(duplicate, 409)["field"] == "name"
    for body, field in (({"name": "x", "role": "boss"}, "role"),
                        ({"name": "has space", "role": "agent"}, "name"),
                        ({"role": "agent"}, "name")):
        assert error_of(world.call("POST", "/v1/users", ADMIN, body), 422)["field"] == field
    for user in (COORDINATOR, AGENT_A):
        assert error_of(world.get("/v1/users", user), 403)["code"] == "forbidden"
        assert error_of(world.call("POST", "/v1/users", user,
                                   {"name": "sneaky", "role": "admin"}), 403)

    disabled = world.call("DELETE", "/v1/users/newbie", ADMIN)
    assert disabled.json()["disabled_at"] is not None
    as_newbie = world.client.get("/v1/accounts", headers={"Authorization": f"Bearer {token}"})
    assert error_of(as_newbie, 401)
    assert error_of(world.call("DELETE", "/v1/users/gus", ADMIN), 404)  # globex's


def test_tenants_are_isolated_through_the_api(world: World) -> None:
    acme = set(latest_scores(world, "acme"))
    globex = set(latest_scores(world, "globex"))
    assert acme and globex and not acme & globex
    listed = {a["account_id"] for a in page_through(world, "/v1/accounts", GLOBEX, 500)}
    assert listed == globex
    account = sorted(acme)[0]
    for user in (GLOBEX, GLOBEX_ADMIN):
        for path in ("", "/timeline", "/features"):
            assert error_of(world.get(f"/v1/accounts/{account}{path}", user), 404)["code"] == \
                "not_found"
        assert error_of(world.call("POST", f"/v1/accounts/{account}/score", user), 404)
        assert error_of(world.call("PATCH", f"/v1/accounts/{account}", user, {"notes": "x"}),
                        404)
        assert {a["account_id"] for a in page_through(world, "/v1/alerts", user, 500)} <= globex
        alerts = page_through(world, "/v1/alerts", user, 500, account=account)
        assert alerts == []
    # globex's agent-a is not acme's: it owns nothing.
    assert world.get("/v1/accounts", "globex:agent-a").json()["items"] == []
    assert {u["tenant_id"] for u in world.get("/v1/users", GLOBEX_ADMIN).json()["items"]} == {
        "globex"}


def test_row_level_security_under_the_api_role(world: World) -> None:
    settings = world.settings
    assert settings.database_url
    role = api_role_name(settings.database_schema)
    owner_counts = {
        table: dict(world.rows(f"SELECT tenant_id, count(*) FROM {table} GROUP BY 1"))
        for table in API_TABLES
    }
    assert all(owner_counts[t].get("acme") and owner_counts[t].get("globex")
               for t in ("alerts", "risk_scores", "decisions", "api_users"))
    with psycopg.connect(settings.database_url) as conn:
        conn.execute(sql.SQL("SET search_path TO {}").format(
            sql.Identifier(settings.database_schema)))
        conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(role)))
        conn.commit()
        for table in API_TABLES:
            # No tenant named: no row, whatever the query forgot.
            assert conn.execute(f"SELECT count(*) FROM {table}").fetchone() == (0,), table
            for tenant in ("acme", "globex"):
                with conn.transaction():
                    conn.execute("SELECT set_config('churnwatch.tenant', %s, true)", (tenant,))
                    found = conn.execute(f"SELECT tenant_id, count(*) FROM {table} GROUP BY 1")
                    seen: dict[str, int] = dict(found.fetchall())
                expected = owner_counts[table].get(tenant)
                assert seen == ({tenant: expected} if expected else {}), (table, tenant)
            conn.commit()
        # What it may not touch at all, and writes into another tenant.
        for table in ("contact_ledger", "contact_preferences", "erasures"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(f"SELECT 1 FROM {table}")
            conn.rollback()
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("DELETE FROM alerts")
        conn.rollback()
        conn.execute("SELECT set_config('churnwatch.tenant', 'acme', true)")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):  # the policy's WITH CHECK
            conn.execute("INSERT INTO account_owners (tenant_id, account_id, owner, updated_by)"
                         " VALUES ('globex', 'a', 'x', 'y')")
        conn.rollback()
    # Enabled, never forced: the owner (the dataflow) is not bound by it.
    flags = world.rows("SELECT relname, relrowsecurity, relforcerowsecurity FROM pg_class"
                       " WHERE relnamespace = %s::regnamespace AND relkind = 'r'",
                       settings.database_schema)
    assert {r[0] for r in flags if r[1]} == set(API_TABLES)
    assert not any(r[2] for r in flags)


def test_a_query_that_forgets_its_tenant_sees_only_the_users(world: World) -> None:
    """The API's own sessions (pooled connection, SET ROLE, tenant per transaction): a query
    without a tenant filter still sees one tenant, and the next request another."""
    database = world.client.app.state.services.database  # type: ignore[attr-defined]
    for user, tenant in ((COORDINATOR, "acme"), (GLOBEX, "globex"), (AGENT_A, "acme")):
        with database.session(world.tokens[user]) as session:
            for table in API_TABLES:
                seen = session.conn.execute(f"SELECT DISTINCT tenant_id FROM {table}").fetchall()
                assert seen in ([(tenant,)], []), (table, user, seen)
            assert session.conn.execute("SELECT count(*) FROM alerts").fetchone() != (0,)
            assert session.conn.execute("SELECT current_user").fetchone() == (
                api_role_name(world.settings.database_schema),)


def test_the_api_refuses_a_role_that_rls_would_not_bind(world: World) -> None:
    from dataclasses import replace

    from api import create_app
    from api.database import ApiDatabaseError

    config = api_config(world.settings)
    [(current, superuser)] = world.rows(
        "SELECT current_user::text, rolsuper FROM pg_roles WHERE rolname = current_user")
    cases = [("no_such_role_for_the_api", "does not exist")]
    if superuser:
        cases.append((current, "superuser"))
    for role, words in cases:
        app = create_app(replace(config, database_role=role))
        with pytest.raises(ApiDatabaseError, match=words), TestClient(app):
            pass


@pytest.fixture(params=["CREATEROLE"])
def owner_role(stack_settings: Settings, request: pytest.FixtureRequest
               ) -> Iterator[tuple[str, str]]:
    """A schema migrated by a non-superuser (that may create roles, unless the param is
    NOCREATEROLE), as a production database's churnwatch user would be: (URL, schema)."""
    assert stack_settings.database_url
    suffix = uuid.uuid4().hex[:10]
    login, schema = f"cw_owner{suffix}", f"cw_towner{suffix}"
    with psycopg.connect(stack_settings.database_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN {}").format(
            sql.Identifier(login), sql.SQL(request.param)))
        conn.execute(sql.SQL("GRANT CREATE ON DATABASE {} TO {}").format(
            sql.Identifier(conn.info.dbname), sql.Identifier(login)))
    url = psycopg.conninfo.make_conninfo(stack_settings.database_url, user=login)
    try:
        yield url, schema
    finally:
        with psycopg.connect(stack_settings.database_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(
                sql.Identifier(schema)))
            conn.execute(sql.SQL("REVOKE CREATE ON DATABASE {} FROM {}").format(
                sql.Identifier(conn.info.dbname), sql.Identifier(login)))
            for name in (api_role_name(schema), login):
                conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))


def test_migration_0006_on_an_existing_database_owned_by_a_plain_role(
    owner_role: tuple[str, str],
) -> None:
    url, schema = owner_role
    migrations = available_migrations()
    with connect(url, schema, autocommit=True) as conn:
        # A database at 0005, with rows, as a deployment before the API.
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        conn.execute("CREATE TABLE schema_migrations (version integer PRIMARY KEY,"
                     " name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())")
        for migration in migrations[:5]:
            conn.execute(migration.sql_text.encode())
            conn.execute("INSERT INTO schema_migrations VALUES (%s, %s)",
                         (migration.version, migration.name))
        assert migrate(conn, schema) == [m.version for m in migrations[5:]]
        assert conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user"
                            ).fetchone() == (False,)
    # The dataflow's writes (as the tables' owner) go on, and it reads every tenant.
    sink = PostgresAlertSink(url, schema)
    moment = datetime.fromisoformat("2026-09-01T00:00:00+00:00")
    sink.write_batch([
        Alert(str(uuid.uuid4()), tenant, "acct-1", AlertTier.EVENT_RULE, "payment_failed",
              Severity.HIGH, f"e-{tenant}", "billing.payment_failed", moment)
        for tenant in ("acme", "globex")
    ])
    sink.close()
    with connect(url, schema, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM alerts").fetchone() == (2,)
        # It may switch to the API role (the migration granted it), which is bound.
        conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(api_role_name(schema))))
        assert conn.execute("SELECT count(*) FROM alerts").fetchone() == (0,)
        with conn.transaction():
            conn.execute("SELECT set_config('churnwatch.tenant', 'globex', true)")
            assert conn.execute("SELECT tenant_id FROM alerts").fetchall() == [("globex",)]


@pytest.mark.parametrize("owner_role", ["NOCREATEROLE"], indirect=True)
def test_a_user_that_may_not_create_roles_runs_the_dataflow_and_the_api_names_the_fix(
    owner_role: tuple[str, str], stack_settings: Settings,
) -> None:
    from churnwatch.api_server import ApiRoleError, migrate_schema

    url, schema = owner_role
    settings = stack_settings.replace(database_url=url, database_schema=schema)
    with connect(url, schema, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        # the dataflow's start goes on
        assert migrate(conn, schema) == [m.version for m in available_migrations()]
    sink = PostgresAlertSink(url, schema)
    sink.write_batch([Alert(str(uuid.uuid4()), "acme", "acct-1", AlertTier.EVENT_RULE,
                            "payment_failed", Severity.HIGH, "e-1", "billing.payment_failed",
                            datetime.fromisoformat("2026-09-01T00:00:00+00:00"))])
    sink.close()
    role = api_role_name(schema)
    with pytest.raises(ApiRoleError, match=f"As a superuser: CREATE ROLE {role}"):
        migrate_schema(settings)  # what `churnwatch api` runs at its start
    assert stack_settings.database_url
    with psycopg.connect(stack_settings.database_url, autocommit=True) as conn:
        login = conn.execute("SELECT rolname FROM pg_roles WHERE rolname LIKE 'cw_owner%%'"
                             " AND NOT rolcreaterole ORDER BY oid DESC LIMIT 1").fetchone()
        assert login is not None
        conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(role)))
        conn.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(role),
                                                      sql.Identifier(login[0])))
    assert migrate_schema(settings) == []  # the hint followed: the API's setup goes through
    with connect(url, schema, autocommit=True) as conn:
        conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(role)))
        assert conn.execute("SELECT count(*) FROM alerts").fetchone() == (0,)  # bound by RLS


def test_users_commands(world: World, monkeypatch: pytest.MonkeyPatch,
                        capsys: pytest.CaptureFixture[str]) -> None:
    for name in [n for n in os.environ if n.startswith("CHURNWATCH_")]:
        monkeypatch.delenv(name)
    for name, value in world.settings.to_env().items():
        monkeypatch.setenv(name, value)
    assert main(["users", "add", "--tenant", "globex", "--role", "coordinator",
                 "--name", "cli-user"]) == 0
    token = capsys.readouterr().out.strip()
    assert token.startswith("cw_") and len(token) == 46
    response = world.client.get("/v1/accounts", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    assert main(["users", "list", "--tenant", "globex"]) == 0
    assert "globex\tcli-user\tcoordinator\tenabled" in capsys.readouterr().out
    assert main(["users", "disable", "agent-a"]) == 1  # two tenants have one: name it
    assert "name the tenant" in capsys.readouterr().err
    assert main(["users", "disable", "cli-user"]) == 0
    response = world.client.get("/v1/accounts", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    assert main(["users", "add", "--tenant", "bad tenant", "--role", "agent",
                 "--name", "x"]) == 1


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_churnwatch_api_serves_over_http(world: World) -> None:
    import httpx2

    port = _free_port()
    proc = start_churnwatch(world.settings, "api", "--port", str(port))
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(httpx2.TransportError):
                if httpx2.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            assert proc.poll() is None, proc.communicate()[0]
            assert time.monotonic() < deadline, "churnwatch api did not answer in 30 s"
            time.sleep(0.2)
        answer = httpx2.get(f"{base}/v1/alerts", params={"limit": 2}, timeout=5,
                            headers={"Authorization": f"Bearer {world.tokens[COORDINATOR]}"})
        assert answer.status_code == 200 and len(answer.json()["items"]) == 2
        assert orjson.loads(httpx2.get(f"{base}/openapi.json", timeout=5).content)["info"][
            "title"] == "churnwatch API"
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.communicate(timeout=15)
        except Exception:
            proc.kill()
            proc.communicate()


def test_disabled_users_lose_access_at_once(world: World) -> None:
    assert world.settings.database_url
    with connect(world.settings.database_url, world.settings.database_schema,
                 autocommit=True) as conn:
        _, token = add_user(conn, "acme", "short-lived", "coordinator")
        assert world.client.get("/healthz").status_code == 200
        headers = {"Authorization": f"Bearer {token}"}
        assert world.client.get("/v1/alerts", headers=headers).status_code == 200
        disable_user(conn, "short-lived", "acme")
    assert error_of(world.client.get("/v1/alerts", headers=headers), 401)


