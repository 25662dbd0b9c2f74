"""API users: a name, a role and a tenant, authenticated by a bearer token.

The same functions serve ``churnwatch users`` (connected as churnwatch's own role,
the table owner) and the API's ``/v1/users`` (as the API role, under row-level
security): every query names its tenant anyway, the policy being the second lock.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

import psycopg

from api.errors import Conflict, InvalidInput, NotFound
from api.tokens import new_token, token_digest

# A user's name is how accounts name their owner: short, printable, no spaces.
NAME_PATTERN = re.compile(r"[A-Za-z0-9_.@+-]{1,64}")
# As event v1's tenant_id (schemas/event.py).
TENANT_PATTERN = re.compile(r"[A-Za-z0-9_.-]{1,64}")


class Role(StrEnum):
    """What a user may do (README, API: the roles table)."""

    ADMIN = "admin"  # everything of its tenant, and its users
    COORDINATOR = "coordinator"  # every account and alert of its tenant
    AGENT = "agent"  # the accounts it owns (and their alerts) only


@dataclass(frozen=True, slots=True)
class ApiUser:
    """A user as stored (never its token)."""

    user_id: str
    tenant_id: str
    name: str
    role: Role
    created_at: datetime | None = None
    disabled_at: datetime | None = None

    @property
    def sees_every_account(self) -> bool:
        """Coordinators and admins see every account of their tenant; agents their own."""
        return self.role is not Role.AGENT


def check_name(name: str, field: str = "name") -> str:
    if not NAME_PATTERN.fullmatch(name):
        raise InvalidInput("1-64 characters of letters, digits and _ . @ + -", field)
    return name


def check_tenant(tenant_id: str, field: str = "tenant") -> str:
    if not TENANT_PATTERN.fullmatch(tenant_id):
        raise InvalidInput("1-64 characters of letters, digits and _ . -", field)
    return tenant_id


def check_role(role: str, field: str = "role") -> Role:
    try:
        return Role(role)
    except ValueError:
        raise InvalidInput(f"one of {', '.join(Role)}", field) from None


_COLUMNS = "id::text, tenant_id, name, role, created_at, disabled_at"


def _user(row: tuple[Any, ...]) -> ApiUser:
    return ApiUser(row[0], row[1], row[2], Role(row[3]), row[4], row[5])


def add_user(
    conn: psycopg.Connection, tenant_id: str, name: str, role: Role | str
) -> tuple[ApiUser, str]:
    """Create a user; return it and its token (the only time the token is seen)."""
    check_tenant(tenant_id)
    check_name(name)
    role = check_role(str(role))
    token = new_token()
    try:
        with conn.transaction():
            row = conn.execute(
                f"INSERT INTO api_users (tenant_id, name, role, token_sha256)"
                f" VALUES (%s, %s, %s, %s) RETURNING {_COLUMNS}",
                (tenant_id, name, str(role), token_digest(token)),
            ).fetchone()
    except psycopg.errors.UniqueViolation:
        raise Conflict(f"tenant {tenant_id} already has a user named {name}", "name") from None
    assert row is not None
    return _user(row), token


def list_users(conn: psycopg.Connection, tenant_id: str | None = None) -> list[ApiUser]:
    """Every user (of ``tenant_id``, if given), disabled ones included, by tenant and name."""
    where, params = ("WHERE tenant_id = %s", (tenant_id,)) if tenant_id else ("", ())
    return [
        _user(row)
        for row in conn.execute(
            f"SELECT {_COLUMNS} FROM api_users {where} ORDER BY tenant_id, name", params
        )
    ]


def find_user(conn: psycopg.Connection, tenant_id: str, name: str) -> ApiUser | None:
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM api_users WHERE tenant_id = %s AND name = %s",
        (tenant_id, name),
    ).fetchone()
    return None if row is None else _user(row)


def disable_user(conn: psycopg.Connection, name: str, tenant_id: str | None = None) -> ApiUser:
    """Disable a user by name (in ``tenant_id``, needed when several tenants have the
    name): its token stops working at once. Disabling twice keeps the first time."""
    where = "name = %s" + (" AND tenant_id = %s" if tenant_id else "")
    params: tuple[str, ...] = (name, tenant_id) if tenant_id else (name,)
    with conn.transaction():
        found = conn.execute(f"SELECT tenant_id FROM api_users WHERE {where}", params).fetchall()
        if not found:
            raise NotFound(f"no user named {name}" + (f" in tenant {tenant_id}" if tenant_id
                                                      else ""), "name")
        if len(found) > 1:
            tenants = ", ".join(sorted(r[0] for r in found))
            raise InvalidInput(f"tenants {tenants} each have a user named {name}: name the"
                               " tenant", "tenant")
        row = conn.execute(
            f"UPDATE api_users SET disabled_at = coalesce(disabled_at, now()) WHERE {where}"
            f" RETURNING {_COLUMNS}",
            params,
        ).fetchone()
    assert row is not None
    return _user(row)


def authenticate(conn: psycopg.Connection, token: str) -> ApiUser | None:
    """The enabled user whose token this is, or None. Runs ``api_authenticate`` (migration
    0006), which reads ``api_users`` as its owner: the tenant is not known yet."""
    row = conn.execute(
        "SELECT user_id::text, tenant_id, name, role FROM api_authenticate(%s)",
        (token_digest(token),),
    ).fetchone()
    return None if row is None else ApiUser(row[0], row[1], row[2], Role(row[3]))
