"""The API's reads and its one write (account ownership), as SQL over the stream's tables.

Every query names the session's tenant, and an agent's also its ownership; the
row-level security policies check the tenant a second time. Lists are keyset-paged
(:mod:`api.cursor`): each orders by its sort key and a unique tie-breaker, and a
page asks for one row more than it returns to know whether another follows.

There is no accounts table yet (issue 15, part 1): an account is known to the API
once it has a risk score, an alert or an owner row, and the at-risk list takes each
account's latest primary score from ``risk_scores`` at query time.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from api import models
from api.alert_lifecycle import ASSIGNEE_SQL, FROM_SQL, ITEM_COLUMNS, alert_item, status_sql
from api.cursor import decode_cursor, encode_cursor
from api.database import Session
from api.errors import BadRequest, Forbidden, InvalidInput, NotFound
from api.users import Role, check_name, find_user


def _page(
    rows: Sequence[tuple[Any, ...]],
    limit: int,
    kind: str,
    query: dict[str, object],
    key: Callable[[tuple[Any, ...]], list[Any]],
) -> tuple[Sequence[tuple[Any, ...]], str | None]:
    """The page's rows and the cursor after its last one (None when nothing follows)."""
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    return rows, encode_cursor(kind, query, key(rows[-1]))


def _time_key(value: object) -> str:
    assert isinstance(value, datetime)
    return value.isoformat()


def _checked(after: list[Any] | None, *kinds: str) -> list[Any] | None:
    """A decoded cursor's values, each checked to be what its list put there ("number",
    "time", "uuid", "text"), so a hand-made cursor gets a 400 rather than a query error."""
    if after is None:
        return None
    for value, kind in zip(after, kinds, strict=True):
        ok = isinstance(value, str)
        if kind == "number":
            ok = isinstance(value, int | float) and not isinstance(value, bool)
        elif kind == "time" and ok:
            try:
                ok = datetime.fromisoformat(value).tzinfo is not None
            except ValueError:
                ok = False
        elif kind == "uuid" and ok:
            try:
                uuid.UUID(value)
            except ValueError:
                ok = False
        if not ok:
            raise BadRequest("not a cursor this API made", "cursor")
    return after


def _owned_clause(session: Session, alias: str) -> tuple[str, tuple[object, ...]]:
    """``AND`` the account (``alias``.account_id) is the agent's; nothing for others."""
    if session.user.sees_every_account:
        return "", ()
    return (
        f" AND EXISTS (SELECT 1 FROM account_owners o WHERE o.tenant_id = {alias}.tenant_id"
        f" AND o.account_id = {alias}.account_id AND o.owner = %s)",
        (session.user.name,),
    )


def require_account(session: Session, account_id: str) -> None:
    """Raise :class:`NotFound` unless the account is known in the tenant and the user may
    see it (an agent: owns it). Another tenant's or another agent's account reads as
    unknown, so an answer never tells that it exists."""
    tenant = session.tenant_id
    if not session.user.sees_every_account:
        query = ("SELECT EXISTS (SELECT 1 FROM account_owners WHERE tenant_id = %s"
                 " AND account_id = %s AND owner = %s)")
        params: tuple[object, ...] = (tenant, account_id, session.user.name)
    else:
        query = (
            "SELECT EXISTS (SELECT 1 FROM risk_scores WHERE tenant_id = %s AND account_id = %s)"
            " OR EXISTS (SELECT 1 FROM alerts WHERE tenant_id = %s AND account_id = %s)"
            " OR EXISTS (SELECT 1 FROM account_owners WHERE tenant_id = %s AND account_id = %s)"
        )
        params = (tenant, account_id) * 3
    row = session.conn.execute(query, params).fetchone()
    if not (row and row[0]):
        raise NotFound(f"no account {account_id}", "account_id")


# Each account's latest primary score; ties in time broken by id, as the stream never
# writes two primary scores of one account at one time but a replay of another model
# version could.
_LATEST = """
SELECT DISTINCT ON (s.account_id) s.tenant_id, s.account_id, s.score, s.tier, s.reasons,
       s.model_version, s.score_time, s.expires_at
FROM risk_scores s
WHERE s.tenant_id = %s AND NOT s.shadow
ORDER BY s.account_id, s.score_time DESC, s.score_id DESC
"""

_ACCOUNT_SORTS = {
    # sort -> (ORDER BY, keyset condition after (value, account_id))
    "risk": (
        "l.score DESC, l.account_id",
        "(l.score < %s OR (l.score = %s AND l.account_id > %s))",
    ),
    "score_time": (
        "l.score_time DESC, l.account_id",
        "(l.score_time < %s::timestamptz OR (l.score_time = %s::timestamptz"
        " AND l.account_id > %s))",
    ),
}


def list_accounts(
    session: Session, *, tier: str | None, owner: str | None, sort: str, limit: int,
    cursor: str | None,
) -> models.AccountPage:
    query: dict[str, object] = {"tier": tier, "owner": owner, "sort": sort}
    after = _checked(decode_cursor(cursor, "accounts", query, 2),
                     "number" if sort == "risk" else "time", "text")
    order, keyset = _ACCOUNT_SORTS[sort]
    where = ["TRUE"]
    params: list[object] = [session.tenant_id, session.tenant_id]
    if tier is not None:
        where.append("l.tier = %s")
        params.append(tier)
    if owner is not None:
        where.append("o.owner = %s")
        params.append(owner)
    if not session.user.sees_every_account:
        where.append("o.owner = %s")
        params.append(session.user.name)
    if after is not None:
        where.append(keyset)
        params.extend([after[0], after[0], after[1]])
    rows = session.conn.execute(
        f"SELECT l.account_id, l.score, l.tier, l.reasons, l.model_version, l.score_time,"
        f" l.expires_at, o.owner FROM ({_LATEST}) l LEFT JOIN account_owners o"
        f" ON o.tenant_id = %s AND o.account_id = l.account_id"
        f" WHERE {' AND '.join(where)} ORDER BY {order} LIMIT %s",
        (*params, limit + 1),
    ).fetchall()
    page, next_cursor = _page(
        rows, limit, "accounts", query,
        lambda r: [r[1] if sort == "risk" else _time_key(r[5]), r[0]],
    )
    return models.AccountPage(
        items=[
            models.AccountSummary(
                account_id=r[0], risk=r[1], tier=r[2], reasons=r[3], model_version=r[4],
                score_time=r[5], expires_at=r[6], owner=r[7],
            )
            for r in page
        ],
        next_cursor=next_cursor,
    )


def account_detail(session: Session, account_id: str) -> models.AccountDetail:
    require_account(session, account_id)
    tenant = session.tenant_id
    owner_row = session.conn.execute(
        "SELECT owner, notes, updated_at, updated_by FROM account_owners"
        " WHERE tenant_id = %s AND account_id = %s",
        (tenant, account_id),
    ).fetchone()
    score = session.conn.execute(
        "SELECT score_id::text, score, ml_score, rule_score, tier, reasons, model_version,"
        " feature_version, score_time, expires_at FROM risk_scores"
        " WHERE tenant_id = %s AND account_id = %s AND NOT shadow"
        " ORDER BY score_time DESC, score_id DESC LIMIT 1",
        (tenant, account_id),
    ).fetchone()
    latest = None
    if score is not None:
        latest = models.LatestScore(
            score_id=score[0], risk=score[1], ml_risk=score[2], rule_risk=score[3],
            tier=score[4], reasons=score[5], model_version=score[6], feature_version=score[7],
            score_time=score[8], expires_at=score[9],
        )
    owner, notes, updated_at, updated_by = owner_row or (None, "", None, None)
    return models.AccountDetail(
        account_id=account_id, owner=owner, notes=notes, updated_at=updated_at,
        updated_by=updated_by, latest_score=latest,
    )


def update_account(
    session: Session, account_id: str, patch: models.AccountPatch
) -> models.AccountDetail:
    """Set owner and/or notes. Coordinators and admins may change both; an agent only the
    notes of an account it owns (so it cannot give an account away or take one)."""
    require_account(session, account_id)
    given = patch.model_fields_set
    if not given:
        raise InvalidInput("give owner and/or notes", None)
    user = session.user
    if "owner" in given and user.role is Role.AGENT:
        raise Forbidden("an agent may edit the notes of its accounts, not their owner", "owner")
    if "notes" in given and patch.notes is None:
        raise InvalidInput("notes are text (an empty string clears them)", "notes")
    if "owner" in given and patch.owner is not None:
        check_name(patch.owner, "owner")
        owner = find_user(session.conn, session.tenant_id, patch.owner)
        if owner is None or owner.disabled_at is not None:
            raise InvalidInput(f"no enabled user named {patch.owner} in this tenant", "owner")
    session.conn.execute(
        "INSERT INTO account_owners AS a (tenant_id, account_id, owner, notes, updated_at,"
        " updated_by) VALUES (%s, %s, %s, %s, now(), %s)"
        " ON CONFLICT (tenant_id, account_id) DO UPDATE SET"
        " owner = CASE WHEN %s THEN EXCLUDED.owner ELSE a.owner END,"
        " notes = CASE WHEN %s THEN EXCLUDED.notes ELSE a.notes END,"
        " updated_at = now(), updated_by = EXCLUDED.updated_by",
        (
            session.tenant_id, account_id, patch.owner, patch.notes or "", user.name,
            "owner" in given, "notes" in given,
        ),
    )
    return account_detail(session, account_id)


def list_alerts(
    session: Session, *, tier: int | None, severity: str | None, rule: str | None,
    account_id: str | None, since: datetime | None, until: datetime | None, limit: int,
    cursor: str | None, status: str | None = None, assignee: str | None = None,
    expiry: timedelta | None = None,
) -> models.AlertPage:
    """Alerts with their lifecycle (status at read time, assignee), newest first."""
    query: dict[str, object] = {
        "tier": tier, "severity": severity, "rule": rule, "account": account_id,
        "since": since.isoformat() if since else None,
        "until": until.isoformat() if until else None,
        "status": status, "assignee": assignee,
    }
    after = _checked(decode_cursor(cursor, "alerts", query, 2), "time", "uuid")
    where = ["a.tenant_id = %s"]
    params: list[object] = [session.tenant_id]
    for column, value in (("a.tier", tier), ("a.severity", severity), ("a.rule", rule),
                          ("a.account_id", account_id)):
        if value is not None:
            where.append(f"{column} = %s")
            params.append(value)
    if since is not None:
        where.append("a.event_time >= %s")
        params.append(since)
    if until is not None:
        where.append("a.event_time < %s")
        params.append(until)
    if after is not None:
        where.append("(a.event_time, a.alert_id) < (%s::timestamptz, %s::uuid)")
        params.extend(after)
    status_expression = status_sql()
    if status is not None:
        where.append(f"{status_expression} = %s")
        params.extend([expiry, status])
    if assignee is not None:
        where.append(f"{ASSIGNEE_SQL} = %s")
        params.append(assignee)
    owned, owned_params = _owned_clause(session, "a")
    rows = session.conn.execute(
        f"SELECT {ITEM_COLUMNS.format(status=status_expression)} FROM {FROM_SQL}"
        f" WHERE {' AND '.join(where)}{owned}"
        " ORDER BY a.event_time DESC, a.alert_id DESC LIMIT %s",
        (expiry, *params, *owned_params, limit + 1),
    ).fetchall()
    page, next_cursor = _page(rows, limit, "alerts", query, lambda r: [_time_key(r[7]), r[0]])
    return models.AlertPage(items=[alert_item(r) for r in page], next_cursor=next_cursor)


# One branch per kind: (kind, table, time expression, id column, extra condition). The
# row itself is the item's data, less what every item shares or the API's reader has no
# use for.
_TIMELINE_SOURCES = (
    ("score", "risk_scores", "t.score_time", "t.score_id", " AND NOT t.shadow"),
    ("usage_signal", "usage_signals", "t.signal_date::timestamptz", "t.signal_id", ""),
    ("alert", "alerts", "t.event_time", "t.alert_id", ""),
    ("decision", "decisions", "t.decided_at", "t.decision_id", ""),
    ("workflow_trigger", "workflow_triggers", "t.triggered_at", "t.trigger_id", ""),
    ("workflow_signal", "workflow_signals", "t.signalled_at", "t.signal_id", ""),
    ("cancellation", "cancellation_reasons", "t.cancelled_at", "t.cancellation_id", ""),
)


def timeline(
    session: Session, account_id: str, *, since: datetime | None, until: datetime | None,
    limit: int, cursor: str | None,
) -> models.TimelinePage:
    """Everything recorded about the account, oldest first (time, then kind, then id)."""
    require_account(session, account_id)
    query: dict[str, object] = {
        "account": account_id,
        "since": since.isoformat() if since else None,
        "until": until.isoformat() if until else None,
    }
    after = _checked(decode_cursor(cursor, "timeline", query, 3), "time", "text", "text")
    branches = []
    params: list[object] = []
    for kind, table, at, key, extra in _TIMELINE_SOURCES:
        branches.append(
            f"SELECT '{kind}'::text AS kind, {at} AS at, {key}::text AS id,"
            f" to_jsonb(t) - 'tenant_id' - 'account_id' - 'inserted_at' AS data"
            f" FROM {table} t WHERE t.tenant_id = %s AND t.account_id = %s{extra}"
        )
        params.extend([session.tenant_id, account_id])
    where = ["TRUE"]
    if since is not None:
        where.append("i.at >= %s")
        params.append(since)
    if until is not None:
        where.append("i.at < %s")
        params.append(until)
    if after is not None:
        where.append("(i.at, i.kind, i.id) > (%s::timestamptz, %s, %s)")
        params.extend(after)
    rows = session.conn.execute(
        f"SELECT i.kind, i.at, i.id, i.data FROM ({' UNION ALL '.join(branches)}) i"
        f" WHERE {' AND '.join(where)} ORDER BY i.at, i.kind, i.id LIMIT %s",
        (*params, limit + 1),
    ).fetchall()
    page, next_cursor = _page(
        rows, limit, "timeline", query, lambda r: [_time_key(r[1]), r[0], r[2]]
    )
    return models.TimelinePage(
        items=[models.TimelineItem(kind=r[0], time=r[1], id=r[2], data=r[3]) for r in page],
        next_cursor=next_cursor,
    )


def churn_causes(
    session: Session, *, since: datetime | None, until: datetime | None
) -> models.ChurnCauses:
    """Cancellations by month (UTC) and reason code, most frequent first in each month."""
    where = ["c.tenant_id = %s"]
    params: list[object] = [session.tenant_id]
    if since is not None:
        where.append("c.cancelled_at >= %s")
        params.append(since)
    if until is not None:
        where.append("c.cancelled_at < %s")
        params.append(until)
    owned, owned_params = _owned_clause(session, "c")
    rows = session.conn.execute(
        "SELECT to_char(date_trunc('month', c.cancelled_at), 'YYYY-MM') AS period,"
        " c.reason_code, count(*), count(DISTINCT c.account_id) FROM cancellation_reasons c"
        f" WHERE {' AND '.join(where)}{owned}"
        " GROUP BY 1, 2 ORDER BY 1, 3 DESC, 2 NULLS LAST",
        (*params, *owned_params),
    ).fetchall()
    return models.ChurnCauses(
        items=[
            models.ChurnCause(period=r[0], reason_code=r[1], cancellations=r[2], accounts=r[3])
            for r in rows
        ]
    )
