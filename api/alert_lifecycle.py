"""The alert lifecycle: each alert's status, assignee and notes, and their history.

An alert has no lifecycle row until someone changes it (the stream never writes
one): it reads as ``open``, assigned to its account's owner. Statuses:

- ``open``: nobody has acted yet, or it was reopened, or its snooze ended;
- ``acknowledged``: a human is on it;
- ``snoozed`` until a time, after which it reads as ``open`` again;
- ``resolved`` with a resolution code: final, unless reopened;
- ``expired``: never stored; an alert not resolved whose status was last set (or,
  never set, whose event time; or the end of its snooze) longer ago than the expiry
  setting reads so, at read time (:func:`status_sql`). Assigning or noting does not
  restart that clock; reopening does.

:data:`TRANSITIONS` says which action each status allows; anything else is a 409
saying why. Assigning and adding a note are allowed in every status. Every change
is one transaction: an advisory lock on the alert (the API role may not lock
``alerts`` rows), the current state read, the new state upserted with its version
one higher, and a history row; the history row is also the outbox of the
``churn.alert-states`` topic (:mod:`api.alert_states`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from api import models
from api.database import Session
from api.errors import Conflict, Forbidden, InvalidInput, NotFound
from api.users import Role, check_name, find_user
from sinks.decision_store import ALERT_STATUS_SQL


class Status(StrEnum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    SNOOZED = "snoozed"
    RESOLVED = "resolved"
    EXPIRED = "expired"


class Action(StrEnum):
    ACKNOWLEDGE = "acknowledge"
    ASSIGN = "assign"
    SNOOZE = "snooze"
    RESOLVE = "resolve"
    NOTE = "note"
    REOPEN = "reopen"


# action -> (statuses it is allowed from, the status it leads to; None: unchanged)
TRANSITIONS: dict[Action, tuple[frozenset[Status], Status | None]] = {
    Action.ACKNOWLEDGE: (frozenset({Status.OPEN, Status.SNOOZED}), Status.ACKNOWLEDGED),
    Action.SNOOZE: (frozenset({Status.OPEN, Status.ACKNOWLEDGED, Status.SNOOZED}),
                    Status.SNOOZED),
    Action.RESOLVE: (frozenset({Status.OPEN, Status.ACKNOWLEDGED, Status.SNOOZED,
                                Status.EXPIRED}), Status.RESOLVED),
    Action.REOPEN: (frozenset({Status.RESOLVED, Status.EXPIRED}), Status.OPEN),
    Action.ASSIGN: (frozenset(Status), None),
    Action.NOTE: (frozenset(Status), None),
}

_REFUSALS = {
    Status.RESOLVED: "the alert is resolved: reopen it first",
    Status.EXPIRED: "the alert has expired: reopen it first",
}


def next_status(current: Status, action: Action) -> Status:
    """The status ``action`` leads to from ``current``; :class:`Conflict` if refused."""
    allowed, target = TRANSITIONS[action]
    if current not in allowed:
        if action is Action.REOPEN:
            raise Conflict(f"only a resolved or expired alert can be reopened; it is {current}")
        if current is Status.ACKNOWLEDGED and action is Action.ACKNOWLEDGE:
            raise Conflict("the alert is acknowledged already")
        raise Conflict(_REFUSALS.get(current, f"cannot {action} an alert that is {current}"))
    return current if target is None else target


def status_sql() -> str:
    """The alert's status at read time over ``alerts a LEFT JOIN alert_states s``; one
    placeholder: the expiry (an interval, NULL for never). The stream's alert status
    directory (:mod:`sinks.decision_store`) reads the same definition."""
    return ALERT_STATUS_SQL


# An alert without a lifecycle row is its account owner's; with one, its assignee (which
# may be null: unassigned on purpose).
ASSIGNEE_SQL = "CASE WHEN s.alert_id IS NULL THEN o.owner ELSE s.assignee END"

# The item columns, in models.Alert's order after the alert's own; then the version.
ITEM_COLUMNS = (
    "a.alert_id::text, a.account_id, a.tier, a.rule, a.severity, a.trigger_event_id,"
    " a.trigger_event_type, a.event_time, a.reasons, {status} AS status,"
    f" {ASSIGNEE_SQL} AS assignee,"
    " CASE WHEN s.status = 'snoozed' AND s.snoozed_until > now() THEN s.snoozed_until END,"
    " s.resolution, coalesce(s.notes, ''), s.updated_at, s.updated_by, coalesce(s.version, 0)"
)
FROM_SQL = (
    "alerts a LEFT JOIN alert_states s ON s.alert_id = a.alert_id"
    " LEFT JOIN account_owners o ON o.tenant_id = a.tenant_id AND o.account_id = a.account_id"
)


def alert_item(row: tuple[Any, ...]) -> models.Alert:
    return models.Alert(
        alert_id=row[0], account_id=row[1], tier=row[2], rule=row[3], severity=row[4],
        trigger_event_id=row[5], trigger_event_type=row[6], event_time=row[7], reasons=row[8],
        status=row[9], assignee=row[10], snoozed_until=row[11], resolution=row[12],
        notes=row[13], status_updated_at=row[14], status_updated_by=row[15],
    )


def _owned(session: Session) -> tuple[str, tuple[object, ...]]:
    if session.user.sees_every_account:
        return "", ()
    return (
        " AND EXISTS (SELECT 1 FROM account_owners w WHERE w.tenant_id = a.tenant_id"
        " AND w.account_id = a.account_id AND w.owner = %s)",
        (session.user.name,),
    )


def _read(session: Session, alert_id: str, expiry: timedelta | None) -> tuple[Any, ...]:
    owned, owned_params = _owned(session)
    row = session.conn.execute(
        f"SELECT {ITEM_COLUMNS.format(status=status_sql())} FROM {FROM_SQL}"
        f" WHERE a.tenant_id = %s AND a.alert_id = %s::uuid{owned}",
        (expiry, session.tenant_id, alert_id, *owned_params),
    ).fetchone()
    if row is None:
        raise NotFound(f"no alert {alert_id}", "alert_id")
    return tuple(row)


def get_alert(session: Session, alert_id: str, expiry: timedelta | None) -> models.Alert:
    """One alert with its lifecycle; :class:`NotFound` unless the user may see it."""
    return alert_item(_read(session, alert_id, expiry))


@dataclass(frozen=True, slots=True)
class Change:
    """What a request asks: an action and its arguments (each checked by the route's body
    model; the checks that need the database are here)."""

    action: Action
    assignee: str | None = None
    until: datetime | None = None
    resolution: str | None = None
    note: str | None = None


def change_alert(
    session: Session, alert_id: str, change: Change, expiry: timedelta | None
) -> models.Alert:
    """Apply ``change`` in the session's transaction: the state and one history row."""
    user = session.user
    if change.action is Action.ASSIGN:
        if user.role is Role.AGENT:
            raise Forbidden("an agent may not assign alerts", "assignee")
        if change.assignee is not None:
            check_name(change.assignee, "assignee")
            found = find_user(session.conn, session.tenant_id, change.assignee)
            if found is None or found.disabled_at is not None:
                raise InvalidInput(f"no enabled user named {change.assignee} in this tenant",
                                   "assignee")
    # Changes of one alert queue here, so each reads the state the previous one wrote
    # (READ COMMITTED: the next statement sees what committed while this one waited).
    session.conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 7))", (alert_id,))
    current = _read(session, alert_id, expiry)
    status = Status(current[9])
    assignee = current[10]
    target = next_status(status, change.action)
    if change.action is Action.ASSIGN and change.assignee == assignee:
        raise Conflict(f"the alert is assigned to {assignee} already"
                       if assignee else "the alert is unassigned already")
    new_assignee = change.assignee if change.action is Action.ASSIGN else assignee
    notes = current[13]
    if change.note:
        stamp = f"[{user.name}] {change.note}"
        notes = f"{notes}\n{stamp}" if notes else stamp
    version = current[16] + 1
    until = change.until if target is Status.SNOOZED else None
    resolution = change.resolution if target is Status.RESOLVED else None
    if change.action in (Action.ASSIGN, Action.NOTE):
        # No status change: status, its clock (status_since, which expiry counts from),
        # snooze and resolution stay; a new row starts open, its clock the event time.
        session.conn.execute(
            "INSERT INTO alert_states AS s (alert_id, tenant_id, account_id, status, assignee,"
            " notes, version, updated_at, updated_by) VALUES (%s::uuid, %s, %s, 'open', %s,"
            " %s, %s, now(), %s) ON CONFLICT (alert_id) DO UPDATE SET"
            " assignee = EXCLUDED.assignee, notes = EXCLUDED.notes,"
            " version = EXCLUDED.version, updated_at = now(), updated_by = EXCLUDED.updated_by",
            (alert_id, session.tenant_id, current[1], new_assignee, notes, version, user.name),
        )
    else:
        session.conn.execute(
            "INSERT INTO alert_states AS s (alert_id, tenant_id, account_id, status,"
            " status_since, snoozed_until, resolution, assignee, notes, version, updated_at,"
            " updated_by) VALUES (%s::uuid, %s, %s, %s, now(), %s, %s, %s, %s, %s, now(), %s)"
            " ON CONFLICT (alert_id) DO UPDATE SET status = EXCLUDED.status,"
            " status_since = now(), snoozed_until = EXCLUDED.snoozed_until,"
            " resolution = EXCLUDED.resolution, assignee = EXCLUDED.assignee,"
            " notes = EXCLUDED.notes, version = EXCLUDED.version, updated_at = now(),"
            " updated_by = EXCLUDED.updated_by",
            (alert_id, session.tenant_id, current[1], str(target), until, resolution,
             new_assignee, notes, version, user.name),
        )
    session.conn.execute(
        "INSERT INTO alert_state_history (alert_id, tenant_id, account_id, version, action,"
        " by, from_status, to_status, from_assignee, to_assignee, snoozed_until, resolution,"
        " note) VALUES (%s::uuid, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (
            alert_id, session.tenant_id, current[1], version, str(change.action), user.name,
            str(status), str(target), assignee, new_assignee, until, resolution, change.note,
        ),
    )
    return get_alert(session, alert_id, expiry)


def history(session: Session, alert_id: str, expiry: timedelta | None) -> models.AlertHistory:
    """Every change of the alert, oldest first."""
    _read(session, alert_id, expiry)
    rows = session.conn.execute(
        "SELECT id, version, action, at, by, from_status, to_status, from_assignee,"
        " to_assignee, snoozed_until, resolution, note FROM alert_state_history"
        " WHERE tenant_id = %s AND alert_id = %s::uuid ORDER BY id",
        (session.tenant_id, alert_id),
    ).fetchall()
    return models.AlertHistory(items=[
        models.AlertChange(
            id=str(r[0]), version=r[1], action=r[2], at=r[3], by=r[4], from_status=r[5],
            to_status=r[6], from_assignee=r[7], to_assignee=r[8], snoozed_until=r[9],
            resolution=r[10], note=r[11],
        )
        for r in rows
    ])
