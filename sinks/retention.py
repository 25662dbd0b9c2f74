"""Retention: delete the rows older than each table's retention, a small transaction at a time.

``churnwatch db prune`` runs :func:`prune` on a schedule so the tables stop
growing without bound. A row is old when its *event time* (the column each
:class:`RetentionRule` names: ``score_time``, ``event_time``, ``decided_at`` ...)
**and** its ``inserted_at`` both lie before ``now - retention``. The event time
is the age that matters to a reader; the second condition keeps what was
written recently whatever it is about: a replay or a backfill of an old history
(``churnwatch replay --to-sinks``) is not deleted under the analyst's feet by
the next nightly run, but one retention period after it was written. Since
every output id is deterministic, a replay of events older than the retention
re-inserts the rows a prune deleted, under the same ids, and a later prune
deletes them again; nothing is duplicated either way.

Tables with an ``active`` notion keep what is still active: a workflow trigger
whose ``active_until`` lies ahead, and the workflow signals of such a trigger.
References between tables are plain ids, not foreign keys, and a record carries
what its reader needs (a decision holds its risk, tier and the alert's rule), so
a decision may outlive the score and alert it names when their retentions are
shorter (the defaults are).

Tables never pruned here (:data:`KEPT_TABLES`) say why.

Batches: the table is walked once, in ranges of heap blocks (``ctid`` ranges,
which PostgreSQL 14+ reads as a TID range scan: no index on the time columns is
needed), and each range is deleted in statements of at most ``batch_rows`` rows,
each its own transaction on an autocommit connection. So a large prune never
holds row locks or one transaction's WAL for long, and runs beside the flow's
``INSERT … ON CONFLICT DO NOTHING`` writes: a DELETE locks only the rows it
deletes, and an insert of the same id waits for that batch at most. The walk
ends at the table's size when it began: rows written later are newer than the
cutoff, which lies before the run started.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import psycopg
from psycopg import sql

from sinks.errors import SinkError

log = logging.getLogger(__name__)

DEFAULT_BATCH_ROWS = 5_000
# Before a table was ever analysed PostgreSQL does not know its rows per block.
_GUESS_ROWS_PER_BLOCK = 40


class RetentionError(SinkError):
    """The schema cannot be pruned as asked (a table missing, an unknown table named)."""


@dataclass(frozen=True, slots=True)
class RetentionRule:
    """How the rows of one table age.

    ``time_column`` is the event time a row's age is judged by (``is_date``: a
    ``date`` column, a day being old once it has wholly passed); ``keep`` an SQL
    condition that keeps an old row anyway, with ``%(now)s`` bound to the run's
    clock.
    """

    table: str
    time_column: str
    is_date: bool = False
    keep: str = ""


# In the order they are pruned.
RULES: tuple[RetentionRule, ...] = (
    RetentionRule("risk_scores", "score_time"),
    RetentionRule("alerts", "event_time"),
    RetentionRule("usage_signals", "signal_date", is_date=True),
    RetentionRule("cancellation_reasons", "cancelled_at"),
    RetentionRule("decisions", "decided_at"),
    RetentionRule(
        "workflow_signals",
        "signalled_at",
        keep="EXISTS (SELECT 1 FROM workflow_triggers AS active"
        " WHERE active.trigger_id = workflow_signals.trigger_id"
        " AND active.active_until >= %(now)s)",
    ),
    RetentionRule(
        "workflow_outcomes",
        "occurred_at",
        keep="EXISTS (SELECT 1 FROM workflow_triggers AS active"
        " WHERE active.trigger_id = workflow_outcomes.trigger_id"
        " AND active.active_until >= %(now)s)",
    ),
    RetentionRule("workflow_triggers", "triggered_at", keep="active_until >= %(now)s"),
)

# The tables prune never touches, and why.
KEPT_TABLES: Mapping[str, str] = {
    "contact_ledger": "append-only audit of every contact made (triggers refuse DELETE); one row"
    " per contact, so it grows with contacts, which the frequency caps bound",
    "contact_preferences": "the latest consent word per account; deleting an opt-out would"
    " allow contact again",
    "experiments": "pinned splits; deleting one would let a changed split reuse its key",
    "experiment_assignments": "one row per account and experiment, not per event; the sticky"
    " first exposure an experiment's analysis needs",
    "erasures": "the erasure receipts (what was erased, when, by whom; the subject by digest"
    " only): the proof that an erasure was honoured",
    "schema_migrations": "the applied schema versions",
    "account_owners": "one row per account an API user took on (owner, notes); current, not"
    " history; erased with the account",
    "accounts": "one row per account, its current state (company, plan, MRR, owner, renewal,"
    " status, latest risk); it does not grow with events, and pruning it would lose the"
    " owner and notes; erased with the account",
    "api_users": "the API's users: disabled, never deleted, so an owner's name stays meaningful",
    "alert_states": "one row per alert a human changed (status, assignee, notes); outlives a"
    " pruned alert (no foreign key); erased with the account",
    "alert_state_history": "who changed which alert when (the audit trail, and the outbox of"
    " churn.alert-states); grows with human actions, not events; erased with the account",
}


@dataclass(frozen=True, slots=True)
class PruneResult:
    """What :func:`prune` did to one table (on a dry run, would do)."""

    table: str
    retain: timedelta | None  # None: kept forever, not looked at
    cutoff: datetime | None  # rows older than this (event time and inserted_at) go
    rows: int = 0
    batches: int = 0  # transactions that deleted at least one row


def prune(
    conn: psycopg.Connection,
    retain: Mapping[str, timedelta | None],
    *,
    now: datetime,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    dry_run: bool = False,
    on_batch: Callable[[str, int], None] | None = None,
) -> list[PruneResult]:
    """Delete the rows of each table in ``retain`` older than its retention.

    ``retain`` maps table names of :data:`RULES` to a retention, ``None`` (or
    absent) keeping the table whole. ``conn`` must be in autocommit mode, its
    ``search_path`` churnwatch's schema: every batch commits on its own.
    ``dry_run`` counts the rows that would go and deletes nothing. ``on_batch``
    is told ``(table, rows)`` after each committed batch.
    """
    if not conn.autocommit:
        msg = "prune needs an autocommit connection: every batch commits on its own"
        raise ValueError(msg)
    if now.tzinfo is None:
        msg = "now must be timezone-aware"
        raise ValueError(msg)
    if batch_rows < 1:
        msg = f"batch_rows must be positive, got {batch_rows}"
        raise ValueError(msg)
    known = {rule.table for rule in RULES}
    unknown = sorted(set(retain) - known)
    if unknown:
        msg = f"no retention rule for {', '.join(unknown)} (prunable: {', '.join(sorted(known))})"
        raise RetentionError(msg)
    missing = [
        rule.table for rule in RULES
        if conn.execute("SELECT to_regclass(%s)", (rule.table,)).fetchone() == (None,)
    ]
    if missing:
        msg = (f"table(s) {', '.join(missing)} not found in the schema: "
               "run 'churnwatch db migrate' first")
        raise RetentionError(msg)
    results = []
    for rule in RULES:
        age = retain.get(rule.table)
        if age is None:
            results.append(PruneResult(rule.table, None, None))
            continue
        results.append(_prune_table(conn, rule, age, now, batch_rows, dry_run, on_batch))
    return results


def _prune_table(
    conn: psycopg.Connection,
    rule: RetentionRule,
    age: timedelta,
    now: datetime,
    batch_rows: int,
    dry_run: bool,
    on_batch: Callable[[str, int], None] | None,
) -> PruneResult:
    cutoff = now - age
    params: dict[str, object] = {
        "now": now,
        "cutoff": cutoff,
        # A day is old once it has wholly passed: its end at or before the cutoff.
        "cutoff_day": cutoff.astimezone(UTC).date() if rule.is_date else None,
        "limit": batch_rows,
    }
    table = sql.Identifier(rule.table)
    old = sql.SQL("{} < {} AND inserted_at < %(cutoff)s").format(
        sql.Identifier(rule.time_column),
        sql.SQL("%(cutoff_day)s" if rule.is_date else "%(cutoff)s"),
    )
    if rule.keep:
        old = sql.SQL("{} AND NOT ({})").format(old, sql.SQL(rule.keep))
    in_range = sql.SQL("ctid >= %(low)s::tid AND ctid < %(high)s::tid")
    if dry_run:
        statement = sql.SQL("SELECT count(*) FROM {} WHERE {} AND {}").format(
            table, in_range, old
        )
    else:
        # ctid = ANY(ARRAY(...)) is a TID scan; "ctid IN (SELECT ...)" may become a join
        # over the whole table. The outer condition repeats the test, so a row is
        # deleted only if it still qualifies when the DELETE reaches it.
        statement = sql.SQL(
            "DELETE FROM {table} WHERE ctid = ANY(ARRAY("
            "SELECT ctid FROM {table} WHERE {in_range} AND {old} LIMIT %(limit)s)) AND {old}"
        ).format(table=table, in_range=in_range, old=old)

    blocks, span = _blocks_and_span(conn, rule.table, batch_rows)
    rows = batches = 0
    for low in range(0, blocks, span):
        params["low"] = f"({low},0)"
        params["high"] = f"({low + span},0)"
        while True:
            cursor = conn.execute(statement, params)
            if dry_run:
                counted = cursor.fetchone()
                rows += counted[0] if counted else 0
                break
            deleted = cursor.rowcount
            if deleted > 0:
                rows += deleted
                batches += 1
                log.debug("pruned batch", extra={"table": rule.table, "rows": deleted})
                if on_batch is not None:
                    on_batch(rule.table, deleted)
            if deleted < batch_rows:
                break  # this block range holds no more old rows
    log.info("%s %s: %d row(s) older than %s in %d batch(es)",
             "would prune" if dry_run else "pruned", rule.table, rows, cutoff.isoformat(),
             batches, extra={"table": rule.table, "rows": rows, "batches": batches,
                             "cutoff": cutoff.isoformat(), "dry_run": dry_run})
    return PruneResult(rule.table, age, cutoff, rows, batches)


def _blocks_and_span(conn: psycopg.Connection, table: str, batch_rows: int) -> tuple[int, int]:
    """The table's size in heap blocks now, and how many blocks hold about ``batch_rows`` rows."""
    row = conn.execute(
        "SELECT pg_relation_size(c.oid) / current_setting('block_size')::bigint,"
        " c.reltuples, c.relpages FROM pg_class AS c WHERE c.oid = to_regclass(%s)",
        (table,),
    ).fetchone()
    assert row is not None  # prune checked that every table exists
    blocks, tuples, pages = int(row[0]), float(row[1]), int(row[2])
    per_block = tuples / pages if tuples > 0 and pages > 0 else _GUESS_ROWS_PER_BLOCK
    return blocks, max(1, math.ceil(batch_rows / max(per_block, 1.0)))
