"""Versioned schema migrations, applied by the program itself.

Migrations are the numbered ``migrations/NNNN_name.sql`` files beside this
module. Each runs in its own transaction and is recorded in
``schema_migrations``; a session advisory lock keeps two processes starting at
once from applying the same migration twice.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

import psycopg
from psycopg import sql

from sinks.errors import MigrationError

_FILE_RE = re.compile(r"(\d{4})_([a-z0-9_]+)\.sql")
# Arbitrary but fixed: the advisory lock id churnwatch migrations take.
_LOCK_ID = 0x6368_7572_6E77


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql_text: str


def available_migrations() -> list[Migration]:
    """Every migration shipped with this program, in version order."""
    found = []
    for entry in resources.files("sinks").joinpath("migrations").iterdir():
        match = _FILE_RE.fullmatch(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if versions != list(range(1, len(found) + 1)):
        msg = f"migration versions must be 1..n without gaps, found {versions}"
        raise MigrationError(msg)
    return found


def migrate(conn: psycopg.Connection, schema: str) -> list[int]:
    """Bring ``schema`` to the newest version; return the versions applied now."""
    applied_now: list[int] = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_ID,))
    try:
        with conn.transaction():
            conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
            conn.execute(
                sql.SQL(
                    "CREATE TABLE IF NOT EXISTS {}.schema_migrations ("
                    " version integer PRIMARY KEY, name text NOT NULL,"
                    " applied_at timestamptz NOT NULL DEFAULT now())"
                ).format(sql.Identifier(schema))
            )
        done = {
            row[0]
            for row in conn.execute(
                sql.SQL("SELECT version FROM {}.schema_migrations").format(sql.Identifier(schema))
            )
        }
        for migration in available_migrations():
            if migration.version in done:
                continue
            with conn.transaction():
                conn.execute(sql.SQL("SET LOCAL search_path TO {}").format(sql.Identifier(schema)))
                try:
                    conn.execute(migration.sql_text.encode())  # bytes: no placeholder parsing
                except psycopg.Error as exc:
                    msg = f"migration {migration.version:04d}_{migration.name} failed: {exc}"
                    raise MigrationError(msg) from exc
                conn.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)",
                    (migration.version, migration.name),
                )
            applied_now.append(migration.version)
    finally:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_ID,))
    return applied_now


def api_role_name(schema: str) -> str:
    """The role the REST API runs as over ``schema``'s tables, which migration 0006
    creates: ``<schema>_api`` (role names are cluster-wide, so one per schema), cut at
    PostgreSQL's 63-byte name limit as the server cuts it."""
    return f"{schema}_api"[:63]
