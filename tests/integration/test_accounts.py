"""The accounts table (issue 15, part 1) on the local stack: built by the production
dataflow from lifecycle events, traits and scores; unchanged by a replay, a duplicate or
an out-of-order batch; read and edited through the API (filters, sorts, paging, MRR at
risk, owner and notes) under the same tenant isolation as the other tables, through the
API and through raw SQL under the API's role.

One small hand-made history of two tenants is run through the production dataflow
(``replay_to_sinks``: the production sinks, in this process) once for the module.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient
from psycopg import sql

from api import add_user
from churnwatch.api_server import api_config
from churnwatch.replay import replay_to_sinks
from churnwatch.settings import Settings, Topics
from schemas.account import AccountRecord, AccountStatus, Fact, LatestScore
from schemas.event import TRAITS_EVENT_TYPE, format_time
from sinks.account_table import PostgresAccountSink
from sinks.migrate import api_role_name, migrate
from sinks.postgres import COPY_MIN_ROWS, connect
from tests.builders import event_bytes
from tests.integration.conftest import clean_up

pytestmark = pytest.mark.integration

T0 = datetime(2026, 9, 1, 9, 0, tzinfo=UTC)
# What the API's answers and the table are compared on (updated_at moves with writes).
STATE = (
    "tenant_id, account_id, company_name, company_name_at, plan, plan_at, mrr, mrr_at, owner,"
    " owner_at, renewal_date, renewal_date_at, first_seen, last_event_at, latest_risk,"
    " latest_tier, latest_reasons, latest_model_version, latest_score_id, latest_score_time,"
    " latest_expires_at, status, status_at, notes, edited_at, edited_by"
)


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


class History:
    """Events in file order; each account's ids numbered."""

    def __init__(self) -> None:
        self.lines: list[bytes] = []
        self.count = 0

    def add(self, tenant: str, account: str, event_type: str, hours: float,
            **attributes: Any) -> None:
        self.count += 1
        self.lines.append(event_bytes(
            event_id=f"{account}-{self.count}", tenant_id=tenant, account_id=account,
            event_type=event_type, event_time=format_time(at(hours)), attributes=attributes,
        ))

    def logins(self, tenant: str, account: str, hours: range) -> None:
        for hour in hours:
            self.add(tenant, account, "app.login", hour)

    def write(self, path: Path, lines: list[bytes] | None = None) -> Path:
        path.write_bytes(b"".join(line + b"\n" for line in (lines or self.lines)))
        return path


def history() -> History:
    h = History()
    traits = TRAITS_EVENT_TYPE
    h.add("acme", "big", traits, 0, company="Big Co", plan="enterprise", mrr=5000,
          renewal_date="2027-01-31", owner="agent-a")
    h.logins("acme", "big", range(1, 40, 3))
    h.add("acme", "big", "billing.payment_failed", 41)
    h.add("acme", "small", traits, 0, name="Small Ltd", plan="starter", mrr="49.5")
    h.logins("acme", "small", range(2, 30, 4))
    h.add("acme", "small", "billing.payment_failed", 31)
    h.add("acme", "unknown-mrr", traits, 1, plan="starter")
    h.add("acme", "unknown-mrr", "billing.payment_failed", 2)
    h.add("acme", "quiet", traits, 0, company="Quiet Inc", plan="pro", mrr=900)
    h.logins("acme", "quiet", range(1, 48, 2))
    h.add("acme", "gone", traits, 0, company="Gone GmbH", plan="pro", mrr=300)
    h.add("acme", "gone", "subscription.cancel_intent", 5)
    h.add("acme", "gone", "subscription.cancelled", 6, reason_code="price")
    h.add("acme", "back", traits, 0, plan="pro", mrr=120)
    h.add("acme", "back", "subscription.cancelled", 3, reason_code="price")
    h.add("acme", "back", "subscription.reactivated", 9)
    h.logins("acme", "back", range(10, 14))
    # Read newest first: the older plan and MRR must not win.
    h.add("acme", "shuffled", traits, 20, plan="team", mrr=250)
    h.add("acme", "shuffled", traits, 19, plan="starter", mrr=40, company="Shuffled")
    h.add("acme", "shuffled", "billing.downgraded", 21, from_plan="team", to_plan="basic")
    h.add("globex", "g1", traits, 0, company="Globex Big", plan="enterprise", mrr=777)
    h.add("globex", "g1", "billing.payment_failed", 3)
    return h


@dataclass(frozen=True)
class World:
    settings: Settings
    client: TestClient
    tokens: dict[str, str]
    history: History
    directory: Path

    def get(self, path: str, user: str, **params: Any) -> Any:
        return self.client.get(path, headers=self.auth(user), params=params)

    def auth(self, user: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[user]}"}

    def rows(self, query: str, *params: Any) -> list[tuple[Any, ...]]:
        assert self.settings.database_url
        with connect(self.settings.database_url, self.settings.database_schema) as conn:
            conn.execute("SET TIME ZONE 'UTC'")
            return list(conn.execute(query.encode(), params))

    def table(self) -> list[tuple[Any, ...]]:
        return self.rows(f"SELECT {STATE} FROM accounts ORDER BY tenant_id, account_id")

    def account(self, account: str, tenant: str = "acme") -> dict[str, Any]:
        columns = [c.strip() for c in STATE.split(",")]
        [row] = self.rows(f"SELECT {STATE} FROM accounts WHERE tenant_id = %s"
                          " AND account_id = %s", tenant, account)
        return dict(zip(columns, row, strict=True))


def _settings(stack: Settings, tag: str) -> Settings:
    suffix = uuid.uuid4().hex[:10]
    name = f"t{tag}{suffix}"
    return stack.replace(
        topics=Topics(events=f"{name}.events", dead_letters=f"{name}.dlq",
                      alerts=f"{name}.alerts", late=f"{name}.late", scores=f"{name}.scores",
                      workflows=f"{name}.workflows", alert_states=f"{name}.alert-states"),
        database_schema=f"cw_{name}", redis_key_prefix=f"cwt{suffix}", metrics_port=0,
        recovery_dir=None,
    )


@pytest.fixture(scope="module")
def world(stack_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    from api import create_app

    settings = _settings(stack_settings, "acc")
    directory = tmp_path_factory.mktemp("accounts")
    h = history()
    try:
        replay_to_sinks(h.write(directory / "history.jsonl"), settings)
        assert settings.database_url
        tokens = {}
        with connect(settings.database_url, settings.database_schema, autocommit=True) as conn:
            for tenant, user, role in (
                ("acme", "cole", "coordinator"), ("acme", "agent-a", "agent"),
                ("acme", "agent-b", "agent"), ("globex", "gus", "coordinator"),
            ):
                tokens[f"{tenant}:{user}"] = add_user(conn, tenant, user, role)[1]
        with TestClient(create_app(api_config(settings))) as client:
            yield World(settings, client, tokens, h, directory)
    finally:
        clean_up(stack_settings, [settings])


COORDINATOR, AGENT_A, AGENT_B, GLOBEX = "acme:cole", "acme:agent-a", "acme:agent-b", "globex:gus"


def latest_scores(world: World) -> dict[tuple[str, str], tuple[Any, ...]]:
    return {(r[0], r[1]): r[2:] for r in world.rows(
        "SELECT DISTINCT ON (tenant_id, account_id) tenant_id, account_id, score, tier,"
        " score_id::text, score_time FROM risk_scores WHERE NOT shadow"
        " ORDER BY tenant_id, account_id, score_time DESC, score_id DESC")}


def test_the_stream_builds_the_accounts_table(world: World) -> None:
    big = world.account("big")
    assert (big["company_name"], big["plan"], big["mrr"], big["owner"]) == (
        "Big Co", "enterprise", 5000, "agent-a")
    assert big["renewal_date"] == date(2027, 1, 31) and big["status"] == "active"
    assert (big["first_seen"], big["last_event_at"]) == (at(0), at(41))
    assert big["edited_by"] == "stream"  # the owner came from a trait
    small = world.account("small")
    assert (small["company_name"], small["mrr"]) == ("Small Ltd", pytest.approx(49.5))
    assert world.account("unknown-mrr")["mrr"] is None
    gone = world.account("gone")
    assert (gone["status"], gone["status_at"]) == ("cancelled", at(6))
    back = world.account("back")
    assert (back["status"], back["status_at"]) == ("active", at(9))
    shuffled = world.account("shuffled")
    assert (shuffled["plan"], shuffled["plan_at"]) == ("basic", at(21))
    assert (shuffled["mrr"], shuffled["company_name"]) == (250, "Shuffled")
    assert world.account("g1", "globex")["mrr"] == 777
    # Each account's latest risk is its newest published primary score.
    truth = latest_scores(world)
    table = {(r[0], r[1]): r for r in world.rows(
        "SELECT tenant_id, account_id, latest_risk, latest_tier, latest_score_id::text,"
        " latest_score_time FROM accounts")}
    assert truth and set(truth) <= set(table)
    for key, (risk, tier, score_id, score_time) in truth.items():
        assert table[key][2:] == (risk, tier, score_id, score_time), key
    assert truth[("acme", "big")][1] == "high"  # the failed payment
    # account_owners follows the owner trait, so the agent's ownership reads the same.
    assert world.rows("SELECT owner, updated_by FROM account_owners WHERE tenant_id = 'acme'"
                      " AND account_id = 'big'") == [("agent-a", "stream")]


def test_a_replay_duplicate_or_older_batch_changes_nothing(world: World) -> None:
    columns = [c.strip() for c in STATE.split(",")]

    def moved(after: list[tuple[Any, ...]], before: list[tuple[Any, ...]]) -> list[Any]:
        return [(b[1], c, x, y) for a, b in zip(after, before, strict=True)
                for c, x, y in zip(columns, a, b, strict=True) if x != y]

    before = world.table()
    written = world.rows("SELECT account_id, updated_at FROM accounts ORDER BY 1")
    # The whole history again, then its first half (older than what the table holds):
    # every field stays, and no row is even rewritten.
    lines = world.history.lines
    for name, batch in (("again", lines), ("older", lines[: len(lines) // 2])):
        replay_to_sinks(world.history.write(world.directory / f"{name}.jsonl", batch),
                        world.settings)
        assert moved(world.table(), before) == [], name
    assert world.rows("SELECT account_id, updated_at FROM accounts ORDER BY 1") == written
    # Its events newest first: each account's older events arrive after its newer ones.
    # The traits, status and event times stay; the scores of this other order may add
    # newer ones, and the latest score is still the newest stored.
    replay_to_sinks(world.history.write(world.directory / "reversed.jsonl",
                                        list(reversed(lines))), world.settings)
    changed = moved(world.table(), before)
    assert all(column.startswith("latest_") for _, column, _, _ in changed), changed
    truth = latest_scores(world)
    for tenant, account, risk, score_id in world.rows(
            "SELECT tenant_id, account_id, latest_risk, latest_score_id::text FROM accounts"):
        assert (risk, score_id) == truth[(tenant, account)][:3:2], account


def record(i: int, hours: float, **fields: Any) -> AccountRecord:
    return AccountRecord("acme", f"a{i}", first_seen=at(hours), last_event_at=at(hours),
                         **fields)


def score(i: int, minutes: int, risk: float) -> LatestScore:
    return LatestScore(f"00000000-0000-0000-{i:04d}-{minutes:012d}", risk,
                       "high" if risk >= 0.7 else "low", ("r",), "m1",
                       at(minutes / 60), at(minutes / 60 + 24))


def test_the_sink_is_order_safe_by_rows_and_by_copy(
    make_settings: Callable[..., Settings],
) -> None:
    """Many records of many accounts, written one at a time in order into one schema, and
    shuffled, duplicated, in batches large enough for COPY into another: the same table."""
    rng = random.Random(7)
    records = []
    for i in range(COPY_MIN_ROWS):
        # No two facts of an account at one instant (there, the later write wins).
        times, minutes = rng.sample(range(100), 4), rng.sample(range(10_000), 4)
        for step in range(4):
            hours = float(times[step])
            records.append(record(
                i, hours,
                plan=Fact(rng.choice(["pro", "team", None]), at(hours)),
                mrr=Fact(float(rng.randrange(1000)), at(hours)) if step % 2 else None,
                status=Fact(rng.choice(list(AccountStatus)), at(hours)) if step == 3 else None,
                owner=Fact(f"user-{step}", at(hours)) if step == 1 else None,
                score=score(i, minutes[step], rng.random()),
            ))
    in_order, shuffled = make_settings("accrows"), make_settings("acccopy")
    for settings in (in_order, shuffled):
        assert settings.database_url
        with connect(settings.database_url, settings.database_schema, autocommit=True) as conn:
            migrate(conn, settings.database_schema)
    one_by_one = PostgresAccountSink(in_order.database_url or "", in_order.database_schema)
    for item in sorted(records, key=lambda r: r.last_event_at or T0):
        one_by_one.write_batch([item])
    one_by_one.close()
    mixed = records * 2
    rng.shuffle(mixed)
    copier = PostgresAccountSink(shuffled.database_url or "", shuffled.database_schema)
    half = len(mixed) // 2
    copier.write_batch(mixed[:half])
    copier.write_batch(mixed[half:])
    copier.write_batch(list(reversed(records)))
    copier.close()

    def table(settings: Settings) -> list[tuple[Any, ...]]:
        assert settings.database_url
        with connect(settings.database_url, settings.database_schema) as conn:
            return list(conn.execute(
                f"SELECT {STATE} FROM accounts ORDER BY account_id".encode()))  # type: ignore[arg-type]

    expected = table(in_order)
    assert len(expected) == COPY_MIN_ROWS
    assert table(shuffled) == expected
    # The newest of each field, as merged in memory.
    by_account: dict[str, AccountRecord] = {}
    for item in sorted(records, key=lambda r: r.last_event_at or T0):
        current = by_account.get(item.account_id)
        by_account[item.account_id] = item if current is None else current.merge(item)
    row = expected[0]
    merged = by_account[row[1]]
    assert merged.plan is not None and (row[4], row[5]) == (merged.plan.value, merged.plan.at)
    assert merged.score is not None and row[18] == uuid.UUID(merged.score.score_id)


def page_through(world: World, user: str, limit: int, **params: Any) -> tuple[list[Any], Any]:
    items: list[Any] = []
    cursor = None
    summary = None
    for _ in range(100):
        response = world.get("/v1/accounts", user, limit=limit,
                             **({"cursor": cursor} if cursor else {}), **params)
        assert response.status_code == 200, response.text
        body = response.json()
        items.extend(body["items"])
        summary = body["mrr_at_risk"]
        cursor = body["next_cursor"]
        if cursor is None:
            return items, summary
    raise AssertionError("paging did not end")


def test_at_risk_list_filters_sorts_pages_and_sums_mrr_at_risk(world: World) -> None:
    truth = {a: v for (t, a), v in latest_scores(world).items() if t == "acme"}
    every, summary = page_through(world, COORDINATOR, 500)
    assert {a["account_id"] for a in every} == set(truth)
    big = next(a for a in every if a["account_id"] == "big")
    assert (big["company_name"], big["plan"], big["mrr"], big["owner"], big["status"],
            big["renewal_date"]) == ("Big Co", "enterprise", 5000.0, "agent-a", "active",
                                     "2027-01-31")
    # MRR at risk: the MRR of the active high-tier accounts, from the table.
    [(mrr, count, unknown)] = world.rows(
        "SELECT coalesce(sum(mrr), 0), count(*), count(*) FILTER (WHERE mrr IS NULL)"
        " FROM accounts WHERE tenant_id = 'acme' AND latest_tier = 'high'"
        " AND status = 'active'")
    assert summary == {"mrr": pytest.approx(float(mrr)), "accounts": count,
                       "without_mrr": unknown}
    assert summary["mrr"] >= 5000 + 49.5 and unknown >= 1  # big, small; unknown-mrr
    high = {a for a, v in truth.items() if v[1] == "high"}
    assert {"big", "small", "unknown-mrr"} <= high
    assert "gone" not in {a["account_id"] for a in every if a["status"] == "active"}

    # Sorted by MRR (unknown last), by risk; paged at any size to the same list.
    by_mrr, _ = page_through(world, COORDINATOR, 500, sort="mrr")
    keys = [(-(a["mrr"] if a["mrr"] is not None else -1), a["account_id"]) for a in by_mrr]
    assert keys == sorted(keys) and by_mrr[0]["account_id"] == "big"
    assert by_mrr[-1]["mrr"] is None
    for sort in ("mrr", "risk", "score_time"):
        full, _ = page_through(world, COORDINATOR, 500, sort=sort)
        assert page_through(world, COORDINATOR, 1, sort=sort)[0] == full
        assert page_through(world, COORDINATOR, 3, sort=sort)[0] == full
    risks = [(-a["risk"], a["account_id"]) for a in every]
    assert risks == sorted(risks)

    # Filters: plan, tier, owner, status; the summary follows owner and plan.
    starter, starter_summary = page_through(world, COORDINATOR, 2, plan="starter")
    assert {a["account_id"] for a in starter} == {"small", "unknown-mrr"}
    assert starter_summary == {"mrr": pytest.approx(49.5), "accounts": 2, "without_mrr": 1}
    listed, _ = page_through(world, COORDINATOR, 2, tier="high")
    assert {a["account_id"] for a in listed} == high
    cancelled, _ = page_through(world, COORDINATOR, 5, status="cancelled")
    assert [a["account_id"] for a in cancelled] == ["gone"]
    owned, owned_summary = page_through(world, COORDINATOR, 5, owner="agent-a")
    assert [a["account_id"] for a in owned] == ["big"]
    assert owned_summary["mrr"] == 5000.0
    # A cursor is for its sort; bad values are refused with the field at fault.
    page = world.get("/v1/accounts", COORDINATOR, limit=1, sort="mrr").json()
    other = world.get("/v1/accounts", COORDINATOR, limit=1, sort="risk",
                      cursor=page["next_cursor"])
    assert other.status_code == 400 and other.json()["error"]["field"] == "cursor"
    for params, field in (({"sort": "size"}, "sort"), ({"status": "paused"}, "status")):
        response = world.get("/v1/accounts", COORDINATOR, **params)
        assert response.status_code == 422 and response.json()["error"]["field"] == field


def test_agents_see_their_accounts_and_mrr_only(world: World) -> None:
    mine, summary = page_through(world, AGENT_A, 5)
    assert [a["account_id"] for a in mine] == ["big"]
    assert summary == {"mrr": 5000.0, "accounts": 1, "without_mrr": 0}
    assert page_through(world, AGENT_B, 5) == ([], {"mrr": 0.0, "accounts": 0,
                                                    "without_mrr": 0})
    assert world.get("/v1/accounts/small", AGENT_A).status_code == 404


def test_account_detail_and_edits_keep_account_owners_consistent(world: World) -> None:
    detail = world.get("/v1/accounts/shuffled", COORDINATOR).json()
    assert (detail["company_name"], detail["plan"], detail["mrr"], detail["status"]) == (
        "Shuffled", "basic", 250.0, "active")
    assert datetime.fromisoformat(detail["first_seen"]) == at(19)
    changed = world.client.patch("/v1/accounts/shuffled", headers=world.auth(COORDINATOR),
                                 json={"owner": "agent-b", "notes": "renewal call"})
    assert changed.status_code == 200, changed.text
    assert (changed.json()["owner"], changed.json()["updated_by"]) == ("agent-b", "cole")
    assert world.rows("SELECT owner, notes, updated_by FROM account_owners WHERE"
                      " tenant_id = 'acme' AND account_id = 'shuffled'") == [
        ("agent-b", "renewal call", "cole")]
    mine, _ = page_through(world, AGENT_B, 5)
    assert [a["account_id"] for a in mine] == ["shuffled"]
    # An edit outranks the older owner trait when the history is replayed...
    big = world.client.patch("/v1/accounts/big", headers=world.auth(COORDINATOR),
                             json={"owner": "agent-b"})
    assert big.status_code == 200, big.text
    replay_to_sinks(world.history.write(world.directory / "again-after-edit.jsonl"),
                    world.settings)
    assert world.account("big")["owner"] == "agent-b"
    # ...and a writer of account_owners (an older API) reaches the accounts table too.
    with connect(world.settings.database_url or "", world.settings.database_schema,
                 autocommit=True) as conn:
        conn.execute("UPDATE account_owners SET owner = 'agent-a', updated_by = 'old-api'"
                     " WHERE tenant_id = 'acme' AND account_id = 'big'")
    assert (world.account("big")["owner"], world.account("big")["edited_by"]) == (
        "agent-a", "old-api")
    # An agent edits the notes of its account.
    noted = world.client.patch("/v1/accounts/big", headers=world.auth(AGENT_A),
                               json={"notes": "called"})
    assert noted.status_code == 200 and noted.json()["notes"] == "called"
    assert world.account("big")["notes"] == "called"


def test_churn_causes_gain_plan_and_mrr(world: World) -> None:
    body = world.get("/v1/churn-causes", COORDINATOR).json()
    by_plan = {(i["reason_code"], i["plan"]): i for i in body["items"]}
    price = by_plan[("price", "pro")]  # gone (300) and back (120): both were pro
    assert (price["cancellations"], price["accounts"], price["mrr"]) == (2, 2, 420.0)
    assert price["period"] == "2026-09" and price["accounts_without_mrr"] == 0
    only = world.get("/v1/churn-causes", COORDINATOR, plan="enterprise").json()
    assert only == {"items": []}


def test_tenants_are_isolated_through_the_api_and_row_level_security(world: World) -> None:
    listed, summary = page_through(world, GLOBEX, 50)
    assert [a["account_id"] for a in listed] == ["g1"] and summary["mrr"] == 777.0
    for account in ("big", "gone"):
        assert world.get(f"/v1/accounts/{account}", GLOBEX).status_code == 404
    patch = world.client.patch("/v1/accounts/big", headers=world.auth(GLOBEX),
                               json={"notes": "x"})
    assert patch.status_code == 404
    settings = world.settings
    assert settings.database_url
    counts = dict(world.rows("SELECT tenant_id, count(*) FROM accounts GROUP BY 1"))
    with psycopg.connect(settings.database_url) as conn:
        conn.execute(sql.SQL("SET search_path TO {}").format(
            sql.Identifier(settings.database_schema)))
        conn.execute(sql.SQL("SET ROLE {}").format(
            sql.Identifier(api_role_name(settings.database_schema))))
        conn.commit()
        assert conn.execute("SELECT count(*) FROM accounts").fetchone() == (0,)
        for tenant in ("acme", "globex"):
            with conn.transaction():
                conn.execute("SELECT set_config('churnwatch.tenant', %s, true)", (tenant,))
                seen: dict[str, int] = dict(conn.execute(
                    "SELECT tenant_id, count(*) FROM accounts GROUP BY 1").fetchall())
            assert seen == {tenant: counts[tenant]}
        conn.execute("SELECT set_config('churnwatch.tenant', 'acme', true)")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):  # the policy's WITH CHECK
            conn.execute("INSERT INTO accounts (tenant_id, account_id, notes, updated_at)"
                         " VALUES ('globex', 'x', 'y', now())")
        conn.rollback()
        conn.execute("SELECT set_config('churnwatch.tenant', 'acme', true)")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):  # the stream's columns
            conn.execute("UPDATE accounts SET mrr = 1 WHERE account_id = 'big'")
        conn.rollback()
        conn.execute("SELECT set_config('churnwatch.tenant', 'acme', true)")
        # Under the policy an update of another tenant's row finds nothing to update.
        changed = conn.execute("UPDATE accounts SET notes = 'x' WHERE account_id = 'g1'")
        assert changed.rowcount == 0
        conn.rollback()


def test_migration_0008_fills_the_table_from_what_was_written_before(
    make_settings: Callable[..., Settings],
) -> None:
    """A database at 0007 with scores, alerts, a cancellation and an owner: 0008 makes a
    row of each account from them, and the owner triggers work from then on."""
    from schemas.alert import Alert, AlertTier, Severity, deterministic_id
    from schemas.lifecycle import Cancellation
    from schemas.score import RiskScore, RiskTier
    from sinks.migrate import available_migrations
    from sinks.postgres import (
        PostgresAlertSink,
        PostgresCancellationSink,
        PostgresRiskScoreSink,
    )

    settings = make_settings("acc0008")
    url, schema = settings.database_url or "", settings.database_schema
    with connect(url, schema, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        conn.execute("CREATE TABLE schema_migrations (version integer PRIMARY KEY,"
                     " name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())")
        for migration in available_migrations()[:7]:
            conn.execute(migration.sql_text.encode())
            conn.execute("INSERT INTO schema_migrations VALUES (%s, %s)",
                         (migration.version, migration.name))

    def scored(account: str, hours: float, risk: float, shadow: bool = False) -> RiskScore:
        return RiskScore(
            deterministic_id("s", account, str(hours), str(shadow)), "acme", account, "m1",
            "f1", risk, 0.0, risk, RiskTier.HIGH if risk >= 0.7 else RiskTier.LOW, ("r",),
            at(hours), at(hours + 24), "e", shadow=shadow)

    scores = PostgresRiskScoreSink(url, schema)
    scores.write_batch([scored("a", 1, 0.2), scored("a", 2, 0.9), scored("a", 3, 0.1, True)])
    scores.close()
    alerts = PostgresAlertSink(url, schema)
    alerts.write_batch([Alert(deterministic_id("al", str(h)), "acme", "b", AlertTier.EVENT_RULE,
                              "payment_failed", Severity.HIGH, f"e{h}",
                              "billing.payment_failed", at(h)) for h in (5, 8)])
    alerts.close()
    cancellations = PostgresCancellationSink(url, schema)
    cancellations.write_batch([Cancellation(deterministic_id("c", "b"), "acme", "b", "e9", at(9),
                                            "price")])
    cancellations.close()
    with connect(url, schema, autocommit=True) as conn:
        conn.execute("INSERT INTO account_owners (tenant_id, account_id, owner, notes,"
                     " updated_by) VALUES ('acme', 'c', 'ann', 'vip', 'cole')")
        applied = migrate(conn, schema)
        assert applied[0] == 8
        rows = {r[0]: r[1:] for r in conn.execute(
            "SELECT account_id, latest_risk, latest_tier, first_seen, last_event_at, status,"
            " status_at, owner, notes, edited_by FROM accounts")}
        assert rows == {
            "a": (0.9, "high", None, None, "active", None, None, "", None),
            "b": (None, None, at(5), at(8), "cancelled", at(9), None, "", None),
            "c": (None, None, None, None, "active", None, "ann", "vip", "cole"),
        }
        # From now on an owner written to either table reaches the other.
        conn.execute("UPDATE account_owners SET owner = 'bob', updated_by = 'old-api'"
                     " WHERE account_id = 'c'")
        assert conn.execute("SELECT owner, edited_by FROM accounts WHERE account_id = 'c'"
                            ).fetchone() == ("bob", "old-api")
        conn.execute("UPDATE accounts SET owner = 'cy', edited_by = 'cole', edited_at = now()"
                     " WHERE account_id = 'a'")
        assert conn.execute("SELECT owner, updated_by FROM account_owners"
                            " WHERE account_id = 'a'").fetchone() == ("cy", "cole")
