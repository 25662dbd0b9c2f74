"""Erasure in PostgreSQL and Redis: every row and hash of a subject, with a receipt.

:func:`record_and_erase` is what ``churnwatch erase`` runs: in one
transaction it writes the receipt (``erasures``: the subject by digest, who
asked, when) and removes the account from every table churnwatch writes. The
append-only contact ledger keeps its rows, with the account replaced by a
tombstone (``erased:<erasure id>``) through the ledger's one audited exception
(migration 0005), so contact counts do not change.

:class:`ErasureSink` is the dataflow's side: when the stream reads the
erasure's control message it removes again what it wrote of the subject
between the command and that moment (an event already read, a score in
flight), and confirms the receipt. Both passes are idempotent.

A user's erasure (``user_id``) touches no table: no table holds user ids. It is
the stream's state alone (see ``dataflows.shard``), and a receipt.
"""

from __future__ import annotations

import getpass
import logging
import socket
from collections.abc import Sequence
from typing import Any, Protocol

import orjson
import psycopg

from schemas.erasure import Erasure
from sinks.errors import DatabaseUnavailable
from sinks.postgres import connect

log = logging.getLogger(__name__)

# Every table with a subject's rows, deleted outright (the ledger is tombstoned).
ERASED_TABLES = (
    "alerts",
    "cancellation_reasons",
    "usage_signals",
    "risk_scores",
    "decisions",
    "workflow_triggers",
    "workflow_signals",
    "workflow_outcomes",  # what became of the triggers (migration 0009): notes may name people
    "contact_preferences",
    "experiment_assignments",
    "account_owners",  # the API's owner and notes (migration 0006): notes may name people
    "accounts",  # the account's current state (migration 0008): company name, owner, notes
    "alert_states",  # the alert lifecycle (migration 0007): notes again
    "alert_state_history",
)
LEDGER = "contact_ledger"


class FeatureHashes(Protocol):
    """The online store's side of an erasure (``featurestore.redis_store``)."""

    def delete(self, tenant_id: str, account_id: str) -> int: ...

    def close(self) -> None: ...


def requester() -> str:
    """Who asks, by default: ``user@host`` of the process."""
    return f"{getpass.getuser()}@{socket.gethostname()}"


def erase_rows(cur: psycopg.Cursor[Any], erasure: Erasure) -> dict[str, int]:
    """Remove the account's rows from every table (in the caller's transaction);
    return the rows removed (tombstoned, for the ledger) per table."""
    removed: dict[str, int] = {}
    if erasure.user_id is not None:
        return removed
    subject = (erasure.tenant_id, erasure.account_id)
    for table in ERASED_TABLES:
        cur.execute(f"DELETE FROM {table} WHERE tenant_id = %s AND account_id = %s", subject)
        removed[table] = cur.rowcount
    cur.execute("SELECT set_config('churnwatch.erasure_id', %s, true)", (erasure.erasure_id,))
    cur.execute(
        f"UPDATE {LEDGER} SET account_id = %s, contact_id = gen_random_uuid() "
        "WHERE tenant_id = %s AND account_id = %s",
        (erasure.tombstone, *subject),
    )
    removed[LEDGER] = cur.rowcount
    return removed


def record_and_erase(
    url: str, schema: str, erasure: Erasure, requested_by: str
) -> dict[str, int]:
    """The receipt and the removal, in one transaction; the rows removed per table."""
    with connect(url, schema) as conn, conn.cursor() as cur:
        cur.execute(
            "INSERT INTO erasures (erasure_id, tenant_id, subject_digest, scope, requested_by,"
            " requested_at, removed) VALUES (%s, %s, %s, %s, %s, %s, '{}'::jsonb)",
            (
                erasure.erasure_id, erasure.tenant_id, erasure.digest,
                "account" if erasure.user_id is None else "user", requested_by,
                erasure.requested_at,
            ),
        )
        removed = erase_rows(cur, erasure)
        cur.execute(
            "UPDATE erasures SET removed = %s::jsonb WHERE erasure_id = %s",
            (orjson.dumps(removed).decode(), erasure.erasure_id),
        )
        conn.commit()
    return removed


def add_to_receipt(url: str, schema: str, erasure_id: str, extra: dict[str, int]) -> None:
    """Add counts to a receipt's ``removed`` (what the command removed outside
    PostgreSQL, such as the Redis hash)."""
    with connect(url, schema) as conn:
        conn.execute(
            "UPDATE erasures SET removed = removed || %s::jsonb WHERE erasure_id = %s",
            (orjson.dumps(extra).decode(), erasure_id),
        )
        conn.commit()


def receipt(url: str, schema: str, erasure_id: str) -> dict[str, Any] | None:
    """An erasure's receipt as a JSON-ready document, or None."""
    with connect(url, schema) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT erasure_id::text, tenant_id, subject_digest, scope, requested_by,"
            " requested_at, removed, stream_erased_at, stream_removed"
            " FROM erasures WHERE erasure_id = %s",
            (erasure_id,),
        )
        row = cur.fetchone()
    if row is None:
        return None
    names = ("erasure_id", "tenant_id", "subject_digest", "scope", "requested_by",
             "requested_at", "removed", "stream_erased_at", "stream_removed")
    document = dict(zip(names, row, strict=True))
    for name in ("requested_at", "stream_erased_at"):
        if document[name] is not None:
            document[name] = document[name].isoformat()
    return document


class ErasureSink:
    """The dataflow's pass of each erasure it reads: the rows and the hash written
    since the command ran, then the receipt's confirmation (one transaction). An
    outage raises the transient kind, which the dataflow's sink retries."""

    def __init__(self, url: str, schema: str, features: FeatureHashes) -> None:
        self._url = url
        self._schema = schema
        self._features = features

    def write_batch(self, items: Sequence[Erasure]) -> None:
        # One copy per input partition reads the same erasure: one pass each.
        for erasure in {item.erasure_id: item for item in items}.values():
            self._erase(erasure)

    def _erase(self, erasure: Erasure) -> None:
        removed: dict[str, int] = {}
        if erasure.user_id is None:
            removed["redis"] = self._features.delete(erasure.tenant_id, erasure.account_id)
        try:
            with connect(self._url, self._schema) as conn, conn.cursor() as cur:
                removed |= erase_rows(cur, erasure)
                cur.execute(
                    "UPDATE erasures SET stream_erased_at = coalesce(stream_erased_at, now()),"
                    " stream_removed = coalesce(stream_removed, '{}'::jsonb) || %s::jsonb"
                    " WHERE erasure_id = %s",
                    (orjson.dumps(removed).decode(), erasure.erasure_id),
                )
                conn.commit()
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            msg = f"erasure {erasure.erasure_id} not written: {exc}"
            raise DatabaseUnavailable(msg) from exc
        if any(removed.values()):
            log.info("erasure %s: the stream removed %s", erasure.erasure_id, removed)

    def close(self) -> None:
        self._features.close()
