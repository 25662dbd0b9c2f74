"""The API's PostgreSQL access: a pool of connections under the restricted role, and a
per-request session that authenticates the token and names the tenant.

Every connection SET ROLEs to the API role (``<schema>_api``, migration 0006) once,
when the pool makes it, and sets its schema and time zone (UTC: months and dates are
UTC ones, as everywhere in churnwatch). Every request then runs in one transaction:
``api_authenticate`` finds the token's user, and ``set_config('churnwatch.tenant',
tenant, true)`` (``SET LOCAL``) names its tenant, which the row-level security
policies compare each row with. The setting ends with the transaction, so a pooled
connection never carries a tenant into the next request.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import psycopg
from psycopg import sql
from psycopg_pool import ConnectionPool, PoolTimeout

from api.config import ApiConfig
from api.errors import Unauthorized, Unavailable
from api.users import ApiUser, authenticate
from schemas.errors import ChurnwatchError

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 10
# How long a request waits for a free connection (or for PostgreSQL) before a 503.
POOL_TIMEOUT_S = 10.0


class ApiDatabaseError(ChurnwatchError):
    """The API cannot work with this database: the role is missing, may bypass row-level
    security, or the schema lacks migration 0006. Raised at start, with what to do."""


@dataclass(frozen=True, slots=True)
class Session:
    """One request's connection (inside its transaction, tenant set) and its user."""

    conn: psycopg.Connection
    user: ApiUser

    @property
    def tenant_id(self) -> str:
        return self.user.tenant_id


class Database:
    """The pool; :meth:`open` checks the role and schema before any request is served."""

    def __init__(self, config: ApiConfig) -> None:
        self._config = config
        self._pool = ConnectionPool(
            config.database_url,
            min_size=1,
            max_size=config.pool_size,
            open=False,
            configure=self._configure,
            timeout=POOL_TIMEOUT_S,
            name="churnwatch-api",
            kwargs={"application_name": "churnwatch-api", "connect_timeout": CONNECT_TIMEOUT_S},
        )

    def _configure(self, conn: psycopg.Connection) -> None:
        conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(self._config.database_role)))
        conn.execute(
            sql.SQL("SET search_path TO {}").format(sql.Identifier(self._config.database_schema))
        )
        conn.execute("SET TIME ZONE 'UTC'")
        conn.commit()

    def open(self) -> None:
        """Check one connection by hand (a clear error rather than a pool retrying in the
        background), then open the pool."""
        try:
            with psycopg.connect(
                self._config.database_url, connect_timeout=CONNECT_TIMEOUT_S
            ) as conn:
                try:
                    self._configure(conn)
                except psycopg.errors.InsufficientPrivilege as exc:
                    msg = (f"cannot SET ROLE {self._config.database_role}: {exc}. Connect as a"
                           " member of that role (CHURNWATCH_API_DATABASE_URL), or let"
                           " churnwatch's migration grant it (see README, API)")
                    raise ApiDatabaseError(msg) from None
                except psycopg.errors.InvalidParameterValue as exc:
                    msg = (f"the role {self._config.database_role} does not exist ({exc}):"
                           " run `churnwatch db migrate`")
                    raise ApiDatabaseError(msg) from None
                self.check(conn)
        except psycopg.OperationalError as exc:
            msg = f"cannot connect to PostgreSQL: {exc}"
            raise ApiDatabaseError(msg) from None
        self._pool.open(wait=True, timeout=CONNECT_TIMEOUT_S)

    def check(self, conn: psycopg.Connection) -> None:
        """Refuse a role that row-level security would not bind, or a schema without 0006."""
        row = conn.execute(
            "SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user"
        ).fetchone()
        if row is None or row[0] or row[1]:
            msg = (f"the API role {self._config.database_role} is a superuser or may bypass"
                   " row-level security: the API refuses to run as it")
            raise ApiDatabaseError(msg)
        found = conn.execute(
            "SELECT to_regprocedure('api_authenticate(text)') IS NOT NULL"
        ).fetchone()
        if not (found and found[0]):
            msg = (f"schema {self._config.database_schema} has no API tables (migration"
                   " 0006): run `churnwatch db migrate`")
            raise ApiDatabaseError(msg)
        conn.rollback()

    def close(self) -> None:
        self._pool.close()

    @contextmanager
    def session(self, token: str) -> Iterator[Session]:
        """One transaction: the token's user (else :class:`Unauthorized`), its tenant set."""
        try:
            with self._pool.connection() as conn, conn.transaction():
                user = authenticate(conn, token)
                if user is None:
                    raise Unauthorized("unknown or disabled token")
                conn.execute(
                    "SELECT set_config('churnwatch.tenant', %s, true)", (user.tenant_id,)
                )
                yield Session(conn, user)
        except PoolTimeout:
            raise Unavailable("PostgreSQL did not give a connection in time") from None
        except psycopg.OperationalError as exc:
            log.warning("postgres unavailable", extra={"problem": str(exc)})
            raise Unavailable("PostgreSQL is unavailable") from None

    @contextmanager
    def tenant_transaction(self, tenant_id: str) -> Iterator[psycopg.Connection]:
        """One transaction in ``tenant_id``, with no user: for the API's own work after a
        request (publishing its alert changes), never for a request's reads."""
        with self._pool.connection() as conn, conn.transaction():
            conn.execute("SELECT set_config('churnwatch.tenant', %s, true)", (tenant_id,))
            yield conn
