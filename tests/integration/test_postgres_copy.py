"""Large batches go into PostgreSQL by COPY: the same rows as row-by-row inserts, and
just as idempotent."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import psycopg

from churnwatch.settings import Settings
from schemas.alert import deterministic_id
from schemas.score import RiskScore, RiskTier
from sinks.migrate import migrate
from sinks.postgres import COPY_MIN_ROWS, PostgresRiskScoreSink, connect

T0 = datetime(2026, 10, 1, 8, 30, tzinfo=UTC)


def score(i: int) -> RiskScore:
    when = T0 + timedelta(minutes=i)
    return RiskScore(
        score_id=deterministic_id("test-score", str(i)),
        tenant_id="acme", account_id=f"a{i % 7}", model_version="m1", feature_version="f1",
        ml_risk=i / 1000, rule_risk=0.7 if i % 5 == 0 else 0.0, risk=max(i / 1000, 0.0),
        tier=RiskTier.HIGH if i % 3 == 0 else RiskTier.LOW,
        reasons=("login_trend low", "seats_used high \"quoted\"")[: i % 3],
        score_time=when, expires_at=when + timedelta(days=7), trigger_event_id=f"e{i}",
        shadow=i % 11 == 0,
    )


def table(settings: Settings) -> list[tuple[object, ...]]:
    assert settings.database_url
    with psycopg.connect(settings.database_url) as conn:
        conn.execute(f"SET search_path TO {settings.database_schema}")
        return list(conn.execute(
            "SELECT score_id, tenant_id, account_id, score, ml_score, rule_score, tier,"
            " model_version, feature_version, shadow, reasons, trigger_event_id, score_time,"
            " expires_at FROM risk_scores ORDER BY score_id"
        ))


def test_a_copied_batch_equals_row_by_row_inserts_and_repeats_nothing(
    make_settings: Callable[..., Settings],
) -> None:
    by_copy, by_rows = make_settings("copy"), make_settings("rows")
    scores = [score(i) for i in range(3 * COPY_MIN_ROWS)]
    for settings in (by_copy, by_rows):
        assert settings.database_url
        with connect(settings.database_url, settings.database_schema, autocommit=True) as conn:
            migrate(conn, settings.database_schema)
    copier = PostgresRiskScoreSink(by_copy.database_url or "", by_copy.database_schema)
    # One large batch, holding a copy of its own first rows; then all of it again.
    copier.write_batch(scores + scores[:5])
    copier.write_batch(scores)
    copier.close()
    one_by_one = PostgresRiskScoreSink(by_rows.database_url or "", by_rows.database_schema)
    for item in scores:
        one_by_one.write_batch([item])
    one_by_one.close()

    copied = table(by_copy)
    assert len(copied) == len(scores)  # no row twice
    assert copied == table(by_rows)  # every column as the row-by-row path wrote it
