"""The accounts table's writer: one order-safe upsert per account per batch.

The records of a batch are merged per account first (:func:`~schemas.account.
coalesce_records`: a statement may not update a row twice, and a busy account costs
one row, not one per bundle), then upserted in one transaction: ``executemany``
for a small batch, ``COPY`` into a staging table and one ``INSERT … SELECT`` from
:data:`~sinks.postgres.COPY_MIN_ROWS` rows (as the other high-volume tables).

The upsert moves each field only forward in event time (its ``*_at`` column), and at
one instant only to a different value (the later write wins, as in the merge); the
first and last event times only outwards; the latest score only to a newer one (by
score time, then id). A row that nothing moves is not written (no dead tuple), so a
replay or a duplicate batch costs a read and changes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import psycopg
from psycopg import sql

from schemas.account import AccountRecord, Fact, coalesce_records
from sinks.postgres import IdempotentInsert, PostgresBatchWriter

# Fields set by one fact each: (column, its event-time column).
_FACT_COLUMNS = ("company_name", "plan", "mrr", "renewal_date", "owner", "status")
_SCORE_COLUMNS = (
    "latest_risk", "latest_tier", "latest_reasons", "latest_model_version", "latest_score_id",
    "latest_score_time", "latest_expires_at",
)
COLUMNS = (
    "tenant_id", "account_id", "first_seen", "last_event_at",
    *(c for name in _FACT_COLUMNS for c in (name, f"{name}_at")),
    *_SCORE_COLUMNS,
    # who set the owner, for a new row ('stream' with an owner trait); an existing row's
    # follow the owner's move in the update
    "edited_at", "edited_by",
)


def _newer(column: str) -> str:
    """The record's fact is newer than the row's (or as new, and different)."""
    at = f"{column}_at"
    return (
        f"(EXCLUDED.{at} > a.{at} OR (a.{at} IS NULL AND EXCLUDED.{at} IS NOT NULL)"
        f" OR (EXCLUDED.{at} = a.{at} AND EXCLUDED.{column} IS DISTINCT FROM a.{column}))"
    )


_NEWER_SCORE = (
    "(EXCLUDED.latest_score_time IS NOT NULL AND (a.latest_score_time IS NULL"
    " OR (EXCLUDED.latest_score_time, EXCLUDED.latest_score_id)"
    " > (a.latest_score_time, a.latest_score_id)))"
)


def _upsert_tail() -> str:
    sets = [
        "first_seen = LEAST(a.first_seen, EXCLUDED.first_seen)",
        "last_event_at = GREATEST(a.last_event_at, EXCLUDED.last_event_at)",
    ]
    for column in _FACT_COLUMNS:
        newer = _newer(column)
        sets += [
            f"{column} = CASE WHEN {newer} THEN EXCLUDED.{column} ELSE a.{column} END",
            f"{column}_at = CASE WHEN {newer} THEN EXCLUDED.{column}_at ELSE a.{column}_at END",
        ]
    owner_moves = f"({_newer('owner')} AND EXCLUDED.owner IS DISTINCT FROM a.owner)"
    sets += [
        f"edited_by = CASE WHEN {owner_moves} THEN 'stream' ELSE a.edited_by END",
        f"edited_at = CASE WHEN {owner_moves} THEN EXCLUDED.owner_at ELSE a.edited_at END",
    ]
    sets += [
        f"{c} = CASE WHEN {_NEWER_SCORE} THEN EXCLUDED.{c} ELSE a.{c} END"
        for c in _SCORE_COLUMNS
    ]
    sets.append("updated_at = now()")
    moved = " OR ".join([
        "EXCLUDED.first_seen < a.first_seen",
        "(a.first_seen IS NULL AND EXCLUDED.first_seen IS NOT NULL)",
        "EXCLUDED.last_event_at > a.last_event_at",
        "(a.last_event_at IS NULL AND EXCLUDED.last_event_at IS NOT NULL)",
        *(_newer(c) for c in _FACT_COLUMNS),
        _NEWER_SCORE,
    ])
    return (
        f" ON CONFLICT (tenant_id, account_id) DO UPDATE SET {', '.join(sets)} WHERE {moved}"
    )


_TAIL = _upsert_tail()
# A new row's status is active until a lifecycle event says otherwise; no score, no reasons.
_PLACEHOLDERS = {
    "status": "coalesce(%s, 'active')",
    "latest_reasons": "coalesce(%s::jsonb, '[]'::jsonb)",
}
_INSERTED = ", ".join(_PLACEHOLDERS.get(c, "%s") for c in COLUMNS)
_DEFAULTS = {c: p.replace("%s", c) for c, p in _PLACEHOLDERS.items()}


@dataclass(frozen=True, slots=True)
class AccountUpsert(IdempotentInsert):
    """The accounts upsert, row by row or by COPY (same shape as the idempotent inserts
    of :mod:`sinks.postgres`, so the same writer runs it)."""

    @property
    def statement(self) -> str:
        return f"INSERT INTO accounts AS a ({', '.join(COLUMNS)}) VALUES ({_INSERTED}){_TAIL}"

    def copy(self, cur: psycopg.Cursor[Any], rows: Sequence[Sequence[Any]]) -> None:
        stage = sql.Identifier("cw_stage_accounts")
        columns = sql.SQL(", ").join(sql.Identifier(c) for c in COLUMNS)
        # The row as given (no NOT NULL: status and reasons may be unknown), emptied at commit.
        cur.execute(sql.SQL(
            "CREATE TEMP TABLE IF NOT EXISTS {} ON COMMIT DELETE ROWS"
            " AS SELECT {} FROM accounts WITH NO DATA"
        ).format(stage, columns))
        with cur.copy(sql.SQL("COPY {} ({}) FROM STDIN").format(stage, columns)) as copy:
            for row in rows:
                copy.write_row(row)
        selected = sql.SQL(", ").join(
            sql.SQL(_DEFAULTS[c]) if c in _DEFAULTS else sql.Identifier(c) for c in COLUMNS
        )
        cur.execute(sql.SQL("INSERT INTO accounts AS a ({}) SELECT {} FROM {}").format(
            columns, selected, stage) + sql.SQL(_TAIL))  # type: ignore[arg-type]


UPSERT_ACCOUNTS = AccountUpsert("accounts", COLUMNS, "tenant_id, account_id")


def _fact(fact: Fact | None) -> tuple[Any, Any]:
    if fact is None:
        return None, None
    value = fact.value
    return (str(value) if isinstance(value, str) else value), fact.at


def account_row(record: AccountRecord) -> tuple[Any, ...]:
    """The upsert's parameters for one (merged) record, in :data:`COLUMNS` order."""
    score = record.score
    scored: tuple[Any, ...] = (None,) * len(_SCORE_COLUMNS)
    if score is not None:
        scored = (
            score.risk, score.tier, orjson.dumps(list(score.reasons)).decode(),
            score.model_version, score.score_id, score.score_time, score.expires_at,
        )
    return (
        record.tenant_id, record.account_id, record.first_seen, record.last_event_at,
        *_fact(record.company_name), *_fact(record.plan), *_fact(record.mrr),
        *_fact(record.renewal_date), *_fact(record.owner), *_fact(record.status),
        *scored,
        *((None, None) if record.owner is None else (record.owner.at, "stream")),
    )


class PostgresAccountSink:
    """Account records into ``accounts``: merged per account, one upsert per batch."""

    def __init__(self, url: str, schema: str) -> None:
        self._writer = PostgresBatchWriter(url, schema, UPSERT_ACCOUNTS)

    def write_batch(self, items: Sequence[AccountRecord]) -> None:
        self._writer.write_rows([account_row(r) for r in coalesce_records(list(items))])

    def close(self) -> None:
        self._writer.close()
