"""Retention on the real PostgreSQL: ``churnwatch db prune`` deletes exactly the old rows.

Every table gets rows of several ages; a prune must delete those older than the
table's retention by event time *and* inserted_at, keep the rest (recent rows,
old events written recently, active workflow triggers and their signals, the
tables never pruned), delete nothing on a dry run, and nothing more when run
again.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from psycopg import sql

from churnwatch.cli import main
from churnwatch.settings import Retention, Settings
from schemas.alert import deterministic_id
from schemas.score import RiskScore, RiskTier
from sinks.migrate import migrate
from sinks.postgres import PostgresRiskScoreSink, connect
from sinks.retention import RULES, PruneResult, prune

NOW = datetime.now(UTC)
DAY = timedelta(days=1)
DEFAULTS = Retention()
KEY = {rule.table: rule.time_column for rule in RULES}
ID_COLUMN = {
    "risk_scores": "score_id",
    "alerts": "alert_id",
    "usage_signals": "signal_id",
    "cancellation_reasons": "cancellation_id",
    "decisions": "decision_id",
    "workflow_signals": "signal_id",
    "workflow_outcomes": "outcome_id",
    "workflow_triggers": "trigger_id",
    "contact_ledger": "contact_id",
    "experiment_assignments": "account_id",
    "contact_preferences": "account_id",
    "experiments": "experiment_key",
}


@pytest.fixture
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    import os

    for name in [n for n in os.environ if n.startswith("CHURNWATCH_")]:
        monkeypatch.delenv(name)
    yield monkeypatch


def migrated(make_settings: Callable[..., Settings]) -> Settings:
    settings = make_settings("prune")
    assert settings.database_url
    with connect(settings.database_url, settings.database_schema, autocommit=True) as conn:
        migrate(conn, settings.database_schema)
    return settings


def insert(conn: psycopg.Connection, table: str, **values: Any) -> None:
    conn.execute(
        sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
            sql.Identifier(table),
            sql.SQL(", ").join(sql.Identifier(c) for c in values),
            sql.SQL(", ").join(sql.Placeholder() for _ in values),
        ),
        tuple(values.values()),
    )


def add_row(conn: psycopg.Connection, table: str, name: str, when: datetime,
            inserted: datetime | None = None, **extra: Any) -> str:
    """One row of ``table`` at event time ``when``; its id (or key) is derived from ``name``."""
    row_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{table}/{name}"))
    base: dict[str, Any] = {"tenant_id": "acme", "account_id": f"a-{name}"}
    if inserted is not None:
        base["inserted_at"] = inserted
    if table == "risk_scores":
        base |= {"score_id": row_id, "score": 0.5, "ml_score": 0.5, "rule_score": 0.0,
                 "tier": "medium", "model_version": "m1", "feature_version": "f1",
                 "trigger_event_id": "e1", "score_time": when, "expires_at": when + 7 * DAY}
    elif table == "alerts":
        base |= {"alert_id": row_id, "tier": 1, "rule": "payment_failed", "severity": "high",
                 "trigger_event_id": "e1", "trigger_event_type": "billing.payment_failed",
                 "event_time": when}
    elif table == "usage_signals":
        base |= {"signal_id": row_id, "signal_type": "login_drop", "usage_count": 1.0,
                 "baseline_count": 9.0, "signal_date": when.date(), "feature_version": "f1",
                 "severity": "medium"}
    elif table == "cancellation_reasons":
        base |= {"cancellation_id": row_id, "event_id": name, "cancelled_at": when}
    elif table == "decisions":
        base |= {"decision_id": row_id, "alert_id": str(uuid.uuid4()), "trigger": "payment_failed",
                 "policy_version": "p1", "decision": "ignore", "reasons": "[]", "detail": "",
                 "decided_at": when}
    elif table == "workflow_triggers":
        base |= {"trigger_id": row_id, "workflow_key": "save", "episode": name,
                 "action": "start_workflow", "channel": "email", "decision_id": str(uuid.uuid4()),
                 "alert_id": str(uuid.uuid4()), "trigger": "payment_failed", "reasons": "[]",
                 "policy_version": "p1", "triggered_at": when,
                 "active_until": extra.pop("active_until", when + 14 * DAY)}
    elif table == "workflow_signals":
        base |= {"signal_id": row_id, "trigger_id": extra.pop("trigger_id"),
                 "workflow_key": "save", "episode": name, "signal": "recovered",
                 "cause": "login", "cause_id": "e9", "signalled_at": when}
    elif table == "workflow_outcomes":
        base |= {"outcome_id": row_id, "trigger_id": extra.pop("trigger_id"),
                 "outcome": "delivered", "event_id": name, "source": "crm",
                 "occurred_at": when}
    elif table == "contact_ledger":
        base |= {"contact_id": row_id, "channel": "email", "workflow_key": "save",
                 "episode": name, "contacted_at": when}
    elif table == "contact_preferences":
        base.pop("inserted_at", None)
        base |= {"contact_allowed": False, "updated_at": when, "source": "crm",
                 "recorded_at": inserted or when}
        row_id = base["account_id"]
    elif table == "experiments":
        base = {"experiment_key": name, "workflow_key": "save", "split": '[["holdout", 20]]',
                "policy_version": "p1", "registered_at": inserted or when}
        row_id = name
    elif table == "experiment_assignments":
        base.pop("inserted_at", None)
        base |= {"experiment_key": "exp", "variant": "holdout", "bucket": 3,
                 "assigned_at": when, "policy_version": "p1"}
        row_id = base["account_id"]
    insert(conn, table, **(base | extra))
    return row_id


def ids(settings: Settings, table: str) -> set[str]:
    assert settings.database_url
    with connect(settings.database_url, settings.database_schema, autocommit=True) as conn:
        column = sql.Identifier(ID_COLUMN[table])
        return {str(r[0]) for r in conn.execute(
            sql.SQL("SELECT {} FROM {}").format(column, sql.Identifier(table)))}


def seed(settings: Settings, rows_per_age: int = 3) -> dict[str, set[str]]:
    """Rows of several ages in every table; returns the ids a prune at NOW must keep."""
    assert settings.database_url
    keep: dict[str, set[str]] = {}
    retention = DEFAULTS.tables()
    with connect(settings.database_url, settings.database_schema, autocommit=True) as conn:
        for rule in RULES:
            if rule.table in ("workflow_signals", "workflow_outcomes"):
                continue  # with the triggers, below
            age = retention[rule.table]
            assert age is not None
            kept = keep.setdefault(rule.table, set())
            for i in range(rows_per_age):
                old = NOW - age - DAY - i * DAY
                recent = NOW - age + DAY + i * timedelta(hours=1)
                add_row(conn, rule.table, f"old{i}", old, inserted=old)  # goes
                kept.add(add_row(conn, rule.table, f"recent{i}", recent, inserted=recent))
                # An old event written now (a replay, a backfill): kept for now.
                kept.add(add_row(conn, rule.table, f"replayed{i}", old))
        # Old workflow rows: an expired trigger goes with its signal; an active one stays,
        # its old signal with it.
        workflows = retention["workflow_triggers"]
        assert workflows is not None
        old = NOW - workflows - 30 * DAY
        expired = add_row(conn, "workflow_triggers", "expired", old, inserted=old,
                          active_until=old + DAY)
        add_row(conn, "workflow_signals", "of-expired", old, inserted=old, trigger_id=expired)
        add_row(conn, "workflow_outcomes", "of-expired", old, inserted=old, trigger_id=expired)
        active = add_row(conn, "workflow_triggers", "active", old, inserted=old,
                         active_until=NOW + DAY)
        keep["workflow_triggers"].add(active)
        keep["workflow_signals"] = {
            add_row(conn, "workflow_signals", "of-active", old, inserted=old, trigger_id=active),
            add_row(conn, "workflow_signals", "recent", NOW - DAY, inserted=NOW - DAY,
                    trigger_id=expired),
        }
        keep["workflow_outcomes"] = {
            add_row(conn, "workflow_outcomes", "of-active", old, inserted=old,
                    trigger_id=active),
            add_row(conn, "workflow_outcomes", "recent", NOW - DAY, inserted=NOW - DAY,
                    trigger_id=expired),
        }
        # The tables prune never touches: ancient rows stay.
        ancient = NOW - 3000 * DAY
        for table in ("contact_ledger", "contact_preferences", "experiments",
                      "experiment_assignments"):
            keep[table] = {add_row(conn, table, "ancient", ancient, inserted=ancient)}
    return keep


def line(table: str, text: str) -> str:
    """A table's line in the output of churnwatch db prune."""
    return f"{table:<22} {text}"


def rows_pruned(results: list[PruneResult], table: str) -> int:
    return next(r.rows for r in results if r.table == table)


def environment(monkeypatch: pytest.MonkeyPatch, settings: Settings, **extra: str) -> None:
    assert settings.database_url
    monkeypatch.setenv("CHURNWATCH_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("CHURNWATCH_DATABASE_SCHEMA", settings.database_schema)
    for name, value in extra.items():
        monkeypatch.setenv(f"CHURNWATCH_{name}", value)


def test_prune_deletes_exactly_the_old_rows_and_a_second_run_nothing(
    make_settings: Callable[..., Settings],
    clean_environment: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings = migrated(make_settings)
    keep = seed(settings)
    before = {table: ids(settings, table) for table in keep}
    environment(clean_environment, settings)

    assert main(["db", "prune", "--dry-run"]) == 0
    dry = capsys.readouterr().out
    assert {table: ids(settings, table) for table in keep} == before  # nothing deleted
    assert line("risk_scores", "90 days: would delete 3 row(s)") in dry
    assert line("workflow_triggers", "730 days: would delete 4 row(s)") in dry  # 3 old, expired
    assert line("workflow_signals", "730 days: would delete 1 row(s)") in dry
    assert line("workflow_outcomes", "730 days: would delete 1 row(s)") in dry

    # Batches of 2 rows: 3 old rows of a table take two transactions.
    assert main(["db", "prune", "--batch-size", "2"]) == 0
    out = capsys.readouterr().out
    for table, expected in keep.items():
        assert ids(settings, table) == expected, table
    assert line("risk_scores", "90 days: deleted 3 row(s) in 2 batch(es)") in out
    assert line("alerts", "365 days: deleted 3 row(s) in 2 batch(es)") in out
    assert line("usage_signals", "365 days: deleted 3 row(s)") in out
    assert line("contact_ledger", "never pruned") in out

    assert main(["db", "prune"]) == 0
    again = capsys.readouterr().out
    assert "deleted 0 row(s)" in again and "deleted 1" not in again and "deleted 3" not in again
    for table, expected in keep.items():
        assert ids(settings, table) == expected, table


def test_replayed_rows_go_one_retention_after_they_were_written(
    make_settings: Callable[..., Settings],
) -> None:
    settings = migrated(make_settings)
    assert settings.database_url
    # The flow's own writer, replaying scores a year old.
    scores = [
        RiskScore(
            score_id=deterministic_id("retention-test", str(i)), tenant_id="acme",
            account_id=f"a{i}", model_version="m1", feature_version="f1", ml_risk=0.2,
            rule_risk=0.0, risk=0.2, tier=RiskTier.LOW, reasons=(),
            score_time=NOW - 365 * DAY, expires_at=NOW - 358 * DAY, trigger_event_id=f"e{i}",
        )
        for i in range(60)  # over COPY_MIN_ROWS: the COPY path, as a replay writes
    ]
    sink = PostgresRiskScoreSink(settings.database_url, settings.database_schema)
    sink.write_batch(scores)
    sink.close()
    retain = {"risk_scores": 90 * DAY}
    with connect(settings.database_url, settings.database_schema, autocommit=True) as conn:
        assert rows_pruned(prune(conn, retain, now=NOW), "risk_scores") == 0
        assert len(ids(settings, "risk_scores")) == 60
        assert rows_pruned(prune(conn, retain, now=NOW + 91 * DAY), "risk_scores") == 60
    assert ids(settings, "risk_scores") == set()
    # A second replay of the same events re-inserts them, under the same ids.
    sink = PostgresRiskScoreSink(settings.database_url, settings.database_schema)
    sink.write_batch(scores)
    sink.close()
    assert ids(settings, "risk_scores") == {str(s.score_id) for s in scores}


def test_a_signal_day_goes_once_it_has_wholly_passed_the_cutoff(
    make_settings: Callable[..., Settings],
) -> None:
    settings = migrated(make_settings)
    assert settings.database_url
    now = datetime(2026, 6, 10, 12, 0, tzinfo=UTC)  # cutoff at 10 days: 2026-05-31T12:00Z
    written = now - 100 * DAY
    with connect(settings.database_url, settings.database_schema, autocommit=True) as conn:
        add_row(conn, "usage_signals", "before", datetime(2026, 5, 30, 23, 0, tzinfo=UTC),
                inserted=written)
        cutoff_day = add_row(conn, "usage_signals", "cutoff-day",
                             datetime(2026, 5, 31, 0, 0, tzinfo=UTC), inserted=written)
        results = prune(conn, {"usage_signals": 10 * DAY}, now=now)
    assert rows_pruned(results, "usage_signals") == 1
    assert ids(settings, "usage_signals") == {cutoff_day}


def test_a_large_prune_walks_every_block_in_bounded_batches(
    make_settings: Callable[..., Settings],
) -> None:
    settings = migrated(make_settings)
    assert settings.database_url
    old, recent = NOW - 200 * DAY, NOW - DAY
    with connect(settings.database_url, settings.database_schema) as conn, conn.cursor() as cur:
        # Old and recent rows interleaved over some hundred heap blocks.
        with cur.copy("COPY alerts (alert_id, tenant_id, account_id, tier, rule, severity,"
                      " trigger_event_id, trigger_event_type, event_time, inserted_at)"
                      " FROM STDIN") as copy:
            for i in range(6000):
                when = old if i % 3 else recent
                copy.write_row((uuid.uuid4(), "acme", f"a{i}", 2, "login_drop", "low", f"e{i}",
                                "app.login", when, when))
        conn.commit()
        blocks = conn.execute("SELECT pg_relation_size('alerts') / 8192").fetchone()
    assert blocks is not None and blocks[0] > 50
    batches: list[int] = []
    with connect(settings.database_url, settings.database_schema, autocommit=True) as conn:
        results = prune(conn, {"alerts": 90 * DAY}, now=NOW, batch_rows=100,
                        on_batch=lambda table, rows: batches.append(rows))
    assert rows_pruned(results, "alerts") == sum(batches) == 4000
    assert max(batches) <= 100
    with connect(settings.database_url, settings.database_schema, autocommit=True) as conn:
        counts = conn.execute(
            "SELECT count(*) FILTER (WHERE event_time < %s), count(*) FROM alerts",
            (NOW - 90 * DAY,),
        ).fetchone()
    assert counts == (0, 2000)


def test_prune_beside_a_running_writer_loses_no_new_row(
    make_settings: Callable[..., Settings],
) -> None:
    settings = migrated(make_settings)
    assert settings.database_url
    old = NOW - 200 * DAY
    with connect(settings.database_url, settings.database_schema) as conn, conn.cursor() as cur:
        with cur.copy("COPY risk_scores (score_id, tenant_id, account_id, score, ml_score,"
                      " rule_score, tier, model_version, feature_version, trigger_event_id,"
                      " score_time, expires_at, inserted_at) FROM STDIN") as copy:
            for i in range(3000):
                copy.write_row((uuid.uuid4(), "acme", f"a{i}", 0.1, 0.1, 0.0, "low", "m1", "f1",
                                f"e{i}", old, old + 7 * DAY, old))
        conn.commit()

    written: list[RiskScore] = []
    stop = threading.Event()
    failures: list[BaseException] = []

    def writer() -> None:  # the flow's sink, writing fresh scores meanwhile
        sink = PostgresRiskScoreSink(settings.database_url or "", settings.database_schema)
        try:
            i = 0
            while not stop.is_set() or i < 200:
                batch = [
                    RiskScore(
                        score_id=deterministic_id("live", str(n)), tenant_id="acme",
                        account_id=f"b{n}", model_version="m1", feature_version="f1",
                        ml_risk=0.3, rule_risk=0.0, risk=0.3, tier=RiskTier.LOW, reasons=(),
                        score_time=NOW, expires_at=NOW + 7 * DAY, trigger_event_id=f"e{n}",
                    )
                    for n in range(i, i + 20)
                ]
                sink.write_batch(batch)
                written.extend(batch)
                i += 20
        except BaseException as exc:  # reported by the test's assertion
            failures.append(exc)
        finally:
            sink.close()

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        with connect(settings.database_url, settings.database_schema, autocommit=True) as conn:
            results = prune(conn, {"risk_scores": 90 * DAY}, now=NOW, batch_rows=50)
    finally:
        stop.set()
        thread.join(timeout=60)
    assert not failures
    assert rows_pruned(results, "risk_scores") == 3000
    assert ids(settings, "risk_scores") == {str(s.score_id) for s in written}


def test_retention_off_keeps_a_table_and_an_unmigrated_schema_is_refused(
    make_settings: Callable[..., Settings],
    clean_environment: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings = migrated(make_settings)
    keep = seed(settings, rows_per_age=1)
    old_scores = ids(settings, "risk_scores")
    environment(clean_environment, settings, RETAIN_RISK_SCORES_DAYS="off",
                RETAIN_ALERTS_DAYS="0")
    assert main(["db", "prune"]) == 0
    out = capsys.readouterr().out
    assert line("risk_scores", "kept (retention off)") in out
    assert ids(settings, "risk_scores") == old_scores != keep["risk_scores"]
    assert ids(settings, "alerts") > keep["alerts"]  # 0 is off too: the old alert stays
    assert ids(settings, "decisions") == keep["decisions"]  # the others were pruned

    bare = make_settings("bare")  # a schema never migrated
    environment(clean_environment, bare)
    assert main(["db", "prune"]) == 1
    assert "churnwatch db migrate" in capsys.readouterr().err
    environment(clean_environment, settings)
    with pytest.raises(SystemExit) as usage:
        main(["db", "prune", "--batch-size", "0"])
    assert usage.value.code == 2


def test_churnwatch_creates_its_topics_with_their_retention(
    make_settings: Callable[..., Settings],
) -> None:
    from confluent_kafka.admin import AdminClient, ConfigResource

    from churnwatch.topics import ensure_topics, topic_configs

    settings = make_settings("topics", output_topic_retention=2 * DAY)
    assert settings.kafka_bootstrap
    ensure_topics(settings.kafka_bootstrap, settings.topics.all(), 1,
                  configs=topic_configs(settings))
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap})
    topics = settings.topics
    described = admin.describe_configs(
        [ConfigResource(ConfigResource.Type.TOPIC, name) for name in topics.all()]
    )
    retention = {
        resource.name: entries["retention.ms"].value if "retention.ms" in entries else None
        for resource, entries in ((r, f.result(timeout=30)) for r, f in described.items())
    }
    # On Apache Kafka an unset retention.ms reads as the broker's default; Tansu returns
    # only the configs given at creation.
    assert retention[topics.dead_letters] == str(30 * 86_400_000)
    assert retention[topics.alerts] == retention[topics.scores] == str(2 * 86_400_000)
    assert retention[topics.events] != str(2 * 86_400_000)
    # An existing topic is left as it is.
    ensure_topics(settings.kafka_bootstrap, [topics.dead_letters], 1,
                  configs={topics.dead_letters: {"retention.ms": "1000"}})
    (again,) = admin.describe_configs(
        [ConfigResource(ConfigResource.Type.TOPIC, topics.dead_letters)]
    ).values()
    assert again.result(timeout=30)["retention.ms"].value == str(30 * 86_400_000)
