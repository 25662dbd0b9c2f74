"""The API's reads and its one write (account ownership), as SQL over the stream's tables.

Every query names the session's tenant, and an agent's also its ownership; the
row-level security policies check the tenant a second time. Lists are keyset-paged
(:mod:`api.cursor`): each orders by its sort key and a unique tie-breaker, and a
page asks for one row more than it returns to know whether another follows.

Accounts come from the ``accounts`` table (migration 0008), which the stream keeps
(company, plan, MRR, owner, renewal date, status, latest score) and the API edits
(owner, notes); ``account_owners`` follows it (a trigger), so an agent's ownership
reads the same in either.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from api import models, winback
from api.alert_lifecycle import ASSIGNEE_SQL, FROM_SQL, ITEM_COLUMNS, alert_item, status_sql
from api.cursor import decode_cursor, encode_cursor
from api.database import Session
from api.errors import BadRequest, Forbidden, InvalidInput, NotFound
from api.users import Role, check_name, find_user
from decisions.experiment_report import build_report


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
        query = ("SELECT EXISTS (SELECT 1 FROM accounts WHERE tenant_id = %s"
                 " AND account_id = %s AND owner = %s)")
        params: tuple[object, ...] = (tenant, account_id, session.user.name)
    else:
        # An account the stream wrote before the accounts table has its scores or alerts.
        query = (
            "SELECT EXISTS (SELECT 1 FROM accounts WHERE tenant_id = %s AND account_id = %s)"
            " OR EXISTS (SELECT 1 FROM risk_scores WHERE tenant_id = %s AND account_id = %s)"
            " OR EXISTS (SELECT 1 FROM alerts WHERE tenant_id = %s AND account_id = %s)"
        )
        params = (tenant, account_id) * 3
    row = session.conn.execute(query, params).fetchone()
    if not (row and row[0]):
        raise NotFound(f"no account {account_id}", "account_id")


# sort -> (ORDER BY, keyset condition after (value, account_id), cursor value kind). The
# sort keys are the indexed expressions (migration 0008); an unknown MRR sorts last.
_ACCOUNT_SORTS = {
    "risk": (
        "coalesce(a.latest_risk, -1) DESC, a.account_id",
        "(coalesce(a.latest_risk, -1) < %s OR (coalesce(a.latest_risk, -1) = %s"
        " AND a.account_id > %s))",
        "number",
    ),
    "mrr": (
        "coalesce(a.mrr, -1) DESC, a.account_id",
        "(coalesce(a.mrr, -1) < %s::numeric OR (coalesce(a.mrr, -1) = %s::numeric"
        " AND a.account_id > %s))",
        "number",
    ),
    "score_time": (
        "a.latest_score_time DESC, a.account_id",
        "(a.latest_score_time < %s::timestamptz OR (a.latest_score_time = %s::timestamptz"
        " AND a.account_id > %s))",
        "time",
    ),
}
_SUMMARY_COLUMNS = (
    "a.account_id, a.latest_risk, a.latest_tier, a.latest_reasons, a.latest_model_version,"
    " a.latest_score_time, a.latest_expires_at, a.owner, a.company_name, a.plan, a.mrr,"
    " a.renewal_date, a.status, a.last_event_at"
)


def _money(value: object) -> float | None:
    return None if value is None else float(value)  # type: ignore[arg-type]


def _account_filters(
    session: Session, *, owner: str | None, plan: str | None, status: str | None,
) -> tuple[list[str], list[object]]:
    """The at-risk list's conditions over ``accounts a`` but the tier and the keyset: its
    scored accounts of the tenant (an agent's: its own), by owner, plan and status."""
    where = ["a.tenant_id = %s", "a.latest_score_time IS NOT NULL"]
    params: list[object] = [session.tenant_id]
    for column, value in (("a.owner", owner), ("a.plan", plan), ("a.status", status)):
        if value is not None:
            where.append(f"{column} = %s")
            params.append(value)
    if not session.user.sees_every_account:
        where.append("a.owner = %s")
        params.append(session.user.name)
    return where, params


def mrr_at_risk(
    session: Session, *, owner: str | None = None, plan: str | None = None,
) -> models.MrrAtRisk:
    """The MRR of the active accounts whose latest tier is high (an agent's: its own), with
    the owner and plan filters of the list."""
    where, params = _account_filters(session, owner=owner, plan=plan, status="active")
    row = session.conn.execute(
        "SELECT coalesce(sum(a.mrr), 0), count(*), count(*) FILTER (WHERE a.mrr IS NULL)"
        f" FROM accounts a WHERE {' AND '.join(where)} AND a.latest_tier = 'high'",
        params,
    ).fetchone()
    assert row is not None
    return models.MrrAtRisk(mrr=float(row[0]), accounts=row[1], without_mrr=row[2])


def list_accounts(
    session: Session, *, tier: str | None, owner: str | None, sort: str, limit: int,
    cursor: str | None, plan: str | None = None, status: str | None = None,
) -> models.AccountPage:
    """The scored accounts (latest primary score), by risk, MRR or score time, with the MRR
    at risk of the same owner and plan."""
    query: dict[str, object] = {
        "tier": tier, "owner": owner, "sort": sort, "plan": plan, "status": status,
    }
    order, keyset, kind = _ACCOUNT_SORTS[sort]
    after = _checked(decode_cursor(cursor, "accounts", query, 2), kind, "text")
    where, params = _account_filters(session, owner=owner, plan=plan, status=status)
    if tier is not None:
        where.append("a.latest_tier = %s")
        params.append(tier)
    if after is not None:
        where.append(keyset)
        params.extend([after[0], after[0], after[1]])
    rows = session.conn.execute(
        f"SELECT {_SUMMARY_COLUMNS} FROM accounts a WHERE {' AND '.join(where)}"
        f" ORDER BY {order} LIMIT %s",
        (*params, limit + 1),
    ).fetchall()

    def key(r: tuple[Any, ...]) -> list[Any]:
        if sort == "risk":
            return [r[1], r[0]]
        if sort == "mrr":
            return [-1.0 if r[10] is None else float(r[10]), r[0]]
        return [_time_key(r[5]), r[0]]

    page, next_cursor = _page(rows, limit, "accounts", query, key)
    return models.AccountPage(
        items=[
            models.AccountSummary(
                account_id=r[0], risk=r[1], tier=r[2], reasons=r[3], model_version=r[4],
                score_time=r[5], expires_at=r[6], owner=r[7], company_name=r[8], plan=r[9],
                mrr=_money(r[10]), renewal_date=r[11], status=r[12], last_event_at=r[13],
            )
            for r in page
        ],
        next_cursor=next_cursor,
        mrr_at_risk=mrr_at_risk(session, owner=owner, plan=plan),
    )


def account_detail(session: Session, account_id: str) -> models.AccountDetail:
    require_account(session, account_id)
    tenant = session.tenant_id
    account = session.conn.execute(
        "SELECT owner, notes, edited_at, edited_by, company_name, plan, mrr, renewal_date,"
        " status, status_at, first_seen, last_event_at FROM accounts"
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
    row = account or (None, "", None, None, None, None, None, None, "active", None, None, None)
    return models.AccountDetail(
        account_id=account_id, owner=row[0], notes=row[1], updated_at=row[2],
        updated_by=row[3], company_name=row[4], plan=row[5], mrr=_money(row[6]),
        renewal_date=row[7], status=row[8], status_at=row[9], first_seen=row[10],
        last_event_at=row[11], latest_score=latest,
    )


def update_account(
    session: Session, account_id: str, patch: models.AccountPatch
) -> models.AccountDetail:
    """Set owner and/or notes. Coordinators and admins may change both; an agent only the
    notes of an account it owns (so it cannot give an account away or take one).

    The owner's time is the edit's (wall clock), so an owner trait older than the edit,
    replayed, does not undo it; ``account_owners`` follows (migration 0008's trigger)."""
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
    owner_given, notes_given = "owner" in given, "notes" in given
    session.conn.execute(
        "INSERT INTO accounts AS a (tenant_id, account_id, owner, owner_at, notes, edited_at,"
        " edited_by, updated_at) VALUES (%s, %s, %s, CASE WHEN %s THEN now() END, %s, now(),"
        " %s, now())"
        " ON CONFLICT (tenant_id, account_id) DO UPDATE SET"
        " owner = CASE WHEN %s THEN EXCLUDED.owner ELSE a.owner END,"
        " owner_at = CASE WHEN %s THEN now() ELSE a.owner_at END,"
        " notes = CASE WHEN %s THEN EXCLUDED.notes ELSE a.notes END,"
        " edited_at = now(), edited_by = EXCLUDED.edited_by, updated_at = now()",
        (
            session.tenant_id, account_id, patch.owner, owner_given, patch.notes or "",
            user.name, owner_given, owner_given, notes_given,
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
    ("workflow_outcome", "workflow_outcomes", "t.occurred_at", "t.outcome_id", ""),
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
    session: Session, *, since: datetime | None, until: datetime | None,
    plan: str | None = None,
) -> models.ChurnCauses:
    """Cancellations by month (UTC), reason code and plan, most frequent first in each
    month, with the MRR of the accounts that left (plan and MRR as the accounts table
    holds them: the last known)."""
    where = ["c.tenant_id = %s"]
    params: list[object] = [session.tenant_id]
    if since is not None:
        where.append("c.cancelled_at >= %s")
        params.append(since)
    if until is not None:
        where.append("c.cancelled_at < %s")
        params.append(until)
    if plan is not None:
        where.append("a.plan = %s")
        params.append(plan)
    owned, owned_params = _owned_clause(session, "c")
    # Per account first: an account cancelled twice in a month counts its MRR once.
    rows = session.conn.execute(
        "SELECT period, reason_code, plan, sum(n), count(*), coalesce(sum(mrr), 0),"
        " count(*) FILTER (WHERE mrr IS NULL) FROM ("
        " SELECT to_char(date_trunc('month', c.cancelled_at), 'YYYY-MM') AS period,"
        " c.reason_code, a.plan, c.account_id, count(*) AS n, max(a.mrr) AS mrr"
        " FROM cancellation_reasons c LEFT JOIN accounts a"
        " ON a.tenant_id = c.tenant_id AND a.account_id = c.account_id"
        f" WHERE {' AND '.join(where)}{owned} GROUP BY 1, 2, 3, 4) per_account"
        " GROUP BY 1, 2, 3 ORDER BY 1, 4 DESC, 2 NULLS LAST, 3 NULLS LAST",
        (*params, *owned_params),
    ).fetchall()
    return models.ChurnCauses(
        items=[
            models.ChurnCause(period=r[0], reason_code=r[1], plan=r[2], cancellations=r[3],
                              accounts=r[4], mrr=float(r[5]), accounts_without_mrr=r[6])
            for r in rows
        ]
    )

def win_back_log(
    session: Session, *, status: str | None, campaign: str | None, owner: str | None,
    account_id: str | None, limit: int, cursor: str | None,
) -> models.WinBackPage:
    """The tenant's win-back log (see :mod:`api.winback`), newest trigger first; an agent
    sees the entries of its accounts only."""
    query: dict[str, object] = {
        "status": status, "campaign": campaign, "owner": owner, "account": account_id,
    }
    after = _checked(decode_cursor(cursor, "win-back", query, 2), "time", "uuid")
    rows = winback.entries(
        session.conn, tenant_id=session.tenant_id, status=status, campaign=campaign,
        owner=owner, account_id=account_id,
        only_owner=None if session.user.sees_every_account else session.user.name,
        after=None if after is None else (datetime.fromisoformat(after[0]), after[1]),
        limit=limit + 1,
    )
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_cursor = encode_cursor(
            "win-back", query, [_time_key(rows[-1]["triggered_at"]), rows[-1]["trigger_id"]]
        )
    return models.WinBackPage(
        items=[
            models.WinBackEntry(
                campaign=models.Campaign(
                    name=r["campaign"], workflow_key=r["workflow_key"],
                    experiment_key=r["experiment_key"], variant=r["variant"],
                ),
                **{name: r[name] for name in (
                    "trigger_id", "account_id", "channel", "action", "trigger", "risk", "tier",
                    "triggered_at", "active_until", "status", "status_at", "result",
                    "next_step", "note", "outcomes", "owner",
                )},
            )
            for r in rows
        ],
        next_cursor=next_cursor,
    )


def experiment_report(
    session: Session, key: str, *, since: datetime | None, until: datetime, control: str,
) -> models.ExperimentReport:
    """An experiment's figures per arm over the tenant's accounts (an agent's: its own)."""
    if not winback.experiment_known(session.conn, key, session.tenant_id):
        raise NotFound(f"no account of this tenant was assigned to experiment {key}", "key")
    counts = winback.experiment_counts(
        session.conn, key, since=since, until=until, tenant_id=session.tenant_id,
        only_owner=None if session.user.sees_every_account else session.user.name,
    )
    report = build_report(key, counts, since=since, until=until, tenant_id=session.tenant_id,
                          control=control)
    return models.ExperimentReport.model_validate(report.to_document())
