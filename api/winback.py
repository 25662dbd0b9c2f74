"""The win-back log and experiment counts, as SQL over triggers, signals and outcomes.

One entry per workflow trigger (a campaign reaching one account):

- **campaign**: the trigger's workflow, and its experiment and variant when it had one
  (named ``workflow`` or ``workflow:variant``);
- **status**: ``triggered`` → ``delivered`` → ``engaged`` → ``saved`` or ``lost``. The
  furthest stage its outcome events (``workflow_outcomes``) reached; a final one
  (saved, lost) wins over the others, the latest in event time if both came. Without
  a final outcome, the workflow's first signal (``workflow_signals``) settles it:
  ``recovered`` (the account came back by itself: a payment, a renewal, usage) reads
  as saved, ``cancelled`` as lost; ``opted_out`` stops the workflow but settles
  nothing;
- **result**: the final outcome (saved, lost) or else the signal that ended the
  workflow (recovered, cancelled, opted_out); null while it is open;
- **next step**: none once saved or lost; else the latest ``step`` an outcome
  reported, or what the status calls for (deliver, engage, close);
- **owner**: the account's owner (``account_owners``).

Everything is computed at read time "as of" a moment (the API: now; an experiment
report: its ``until``), so nothing is stored twice and a late outcome event simply
shows up. The API runs these under its restricted role (row-level security by
tenant); ``churnwatch experiment report`` as churnwatch's own user.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import psycopg

from decisions.experiment_report import ArmCounts

# What a status calls for when no outcome named the next step.
DEFAULT_NEXT_STEPS: Mapping[str, str] = {
    "triggered": "deliver",
    "delivered": "engage",
    "engaged": "close: saved or lost",
}
FINAL_STATUSES = frozenset(("saved", "lost"))
STATUSES = ("triggered", "delivered", "engaged", "saved", "lost")

# Each trigger with its outcomes and first signal as of %(as_of)s. {where} restricts the
# triggers (t) and owners (ow).
_ENTRIES = """
SELECT t.trigger_id, t.tenant_id, t.account_id, t.workflow_key, t.experiment_key,
       t.variant, t.channel, t.action, t.trigger, t.risk, t.tier, t.triggered_at,
       t.active_until, ow.owner, o.step, o.note, o.outcomes, s.signal,
       CASE WHEN o.final IS NOT NULL THEN o.final
            WHEN s.signal = 'recovered' THEN 'saved'
            WHEN s.signal = 'cancelled' THEN 'lost'
            WHEN o.reached = 2 THEN 'engaged'
            WHEN o.reached = 1 THEN 'delivered'
            ELSE 'triggered' END AS status,
       CASE WHEN o.final IS NOT NULL THEN o.final_at
            WHEN s.signal IN ('recovered', 'cancelled') THEN s.signalled_at
            ELSE greatest(t.triggered_at, o.last_at) END AS status_at,
       coalesce(o.final, s.signal) AS result
FROM workflow_triggers t
LEFT JOIN account_owners ow ON ow.tenant_id = t.tenant_id AND ow.account_id = t.account_id
LEFT JOIN LATERAL (
    SELECT max(CASE o.outcome WHEN 'delivered' THEN 1 WHEN 'engaged' THEN 2 END) AS reached,
           (array_agg(o.outcome ORDER BY o.occurred_at DESC, o.outcome_id DESC)
                FILTER (WHERE o.outcome IN ('saved', 'lost')))[1] AS final,
           max(o.occurred_at) FILTER (WHERE o.outcome IN ('saved', 'lost')) AS final_at,
           max(o.occurred_at) AS last_at,
           (array_agg(o.step ORDER BY o.occurred_at DESC, o.outcome_id DESC)
                FILTER (WHERE o.step IS NOT NULL))[1] AS step,
           (array_agg(o.note ORDER BY o.occurred_at DESC, o.outcome_id DESC)
                FILTER (WHERE o.note IS NOT NULL))[1] AS note,
           count(*) AS outcomes
    FROM workflow_outcomes o
    WHERE o.tenant_id = t.tenant_id AND o.trigger_id = t.trigger_id
      AND o.account_id = t.account_id AND o.occurred_at < %(as_of)s
) o ON TRUE
LEFT JOIN LATERAL (
    SELECT s.signal, s.signalled_at FROM workflow_signals s
    WHERE s.tenant_id = t.tenant_id AND s.trigger_id = t.trigger_id
      AND s.signalled_at < %(as_of)s
    ORDER BY s.signalled_at, s.signal_id LIMIT 1
) s ON TRUE
WHERE {where}
"""

# The columns of _ENTRIES, by name (rows come back as tuples in this order).
COLUMNS = (
    "trigger_id", "tenant_id", "account_id", "workflow_key", "experiment_key", "variant",
    "channel", "action", "trigger", "risk", "tier", "triggered_at", "active_until", "owner",
    "step", "note", "outcomes", "signal", "status", "status_at", "result",
)
# "As of now", and later: the API's log counts every outcome recorded.
END_OF_TIME = datetime(9999, 1, 1, tzinfo=UTC)


def campaign_name(workflow_key: str, variant: str | None) -> str:
    """``workflow`` or, within an experiment, ``workflow:variant``."""
    return workflow_key if variant is None else f"{workflow_key}:{variant}"


def next_step(status: str, step: str | None, signal: str | None) -> str | None:
    """What comes next for an entry: nothing once it is settled; else what the workflow
    last said, or what the status calls for."""
    if status in FINAL_STATUSES:
        return None
    if step:
        return step
    if signal == "opted_out":
        return "stop: the account opted out"
    return DEFAULT_NEXT_STEPS.get(status)


def entries(
    conn: psycopg.Connection,
    *,
    tenant_id: str,
    status: str | None = None,
    campaign: str | None = None,
    owner: str | None = None,
    account_id: str | None = None,
    only_owner: str | None = None,
    after: tuple[datetime, str] | None = None,
    limit: int = 50,
) -> list[dict[str, Any]]:
    """The tenant's win-back entries, newest trigger first, as dicts of :data:`COLUMNS`
    (with ``campaign`` and ``next_step``). ``only_owner``: an agent's accounts only;
    ``after``: the (triggered_at, trigger_id) the previous page ended with."""
    where = ["t.tenant_id = %(tenant)s"]
    params: dict[str, Any] = {"tenant": tenant_id, "as_of": END_OF_TIME, "limit": limit}
    if campaign is not None:
        workflow, _, variant = campaign.partition(":")
        where.append("t.workflow_key = %(workflow)s")
        params["workflow"] = workflow
        if variant:
            where.append("t.variant = %(variant)s")
            params["variant"] = variant
    if owner is not None:
        where.append("ow.owner = %(owner)s")
        params["owner"] = owner
    if only_owner is not None:
        where.append("ow.owner = %(only_owner)s")
        params["only_owner"] = only_owner
    if account_id is not None:
        where.append("t.account_id = %(account)s")
        params["account"] = account_id
    if after is not None:
        where.append("(t.triggered_at, t.trigger_id) < (%(after_time)s, %(after_id)s)")
        params["after_time"], params["after_id"] = after[0], uuid.UUID(after[1])
    outer = ""
    if status is not None:
        outer = " WHERE e.status = %(status)s"
        params["status"] = status
    rows = conn.execute(
        f"SELECT e.* FROM ({_ENTRIES.format(where=' AND '.join(where))}) e{outer}"
        " ORDER BY e.triggered_at DESC, e.trigger_id DESC LIMIT %(limit)s",
        params,
    ).fetchall()
    found = []
    for row in rows:
        entry = dict(zip(COLUMNS, row, strict=True))
        entry["trigger_id"] = str(entry["trigger_id"])
        entry["campaign"] = campaign_name(entry["workflow_key"], entry["variant"])
        entry["next_step"] = next_step(entry["status"], entry["step"], entry["signal"])
        found.append(entry)
    return found


def experiment_known(conn: psycopg.Connection, key: str, tenant_id: str | None) -> bool:
    """Whether any account (of the tenant, or of any) was ever assigned to the experiment."""
    query = "SELECT EXISTS (SELECT 1 FROM experiment_assignments WHERE experiment_key = %s"
    params: tuple[str, ...] = (key,)
    if tenant_id is not None:
        query += " AND tenant_id = %s"
        params = (key, tenant_id)
    row = conn.execute(f"{query})", params).fetchone()
    return bool(row and row[0])


def experiment_counts(
    conn: psycopg.Connection,
    key: str,
    *,
    until: datetime,
    since: datetime | None = None,
    tenant_id: str | None = None,
    only_owner: str | None = None,
) -> list[ArmCounts]:
    """Per arm: the accounts assigned in [since, until), and of them those saved, lost and
    churned as of ``until``.

    - saved / lost: the latest settled status (see the module) among the account's
      win-back entries of this experiment triggered at or after its assignment;
    - churned: a cancellation (``cancellation_reasons``: a subscription.cancelled
      event) at or after its assignment and before ``until``.
    """
    params: dict[str, Any] = {"key": key, "until": until, "as_of": until}
    log_where = ["t.experiment_key = %(key)s"]
    assigned_where = ["a.experiment_key = %(key)s", "a.assigned_at < %(until)s"]
    if tenant_id is not None:
        log_where.append("t.tenant_id = %(tenant)s")
        assigned_where.append("a.tenant_id = %(tenant)s")
        params["tenant"] = tenant_id
    if since is not None:
        assigned_where.append("a.assigned_at >= %(since)s")
        params["since"] = since
    if only_owner is not None:
        assigned_where.append(
            "EXISTS (SELECT 1 FROM account_owners o WHERE o.tenant_id = a.tenant_id"
            " AND o.account_id = a.account_id AND o.owner = %(only_owner)s)"
        )
        params["only_owner"] = only_owner
    rows = conn.execute(
        f"WITH log AS ({_ENTRIES.format(where=' AND '.join(log_where))})"
        " SELECT a.variant, count(*), count(*) FILTER (WHERE f.status = 'saved'),"
        " count(*) FILTER (WHERE f.status = 'lost'), count(*) FILTER (WHERE c.churned)"
        " FROM experiment_assignments a"
        " LEFT JOIN LATERAL (SELECT l.status FROM log l WHERE l.tenant_id = a.tenant_id"
        "   AND l.account_id = a.account_id AND l.triggered_at >= a.assigned_at"
        "   AND l.triggered_at < %(until)s AND l.status IN ('saved', 'lost')"
        "   ORDER BY l.status_at DESC, l.trigger_id DESC LIMIT 1) f ON TRUE"
        " LEFT JOIN LATERAL (SELECT TRUE AS churned FROM cancellation_reasons x"
        "   WHERE x.tenant_id = a.tenant_id AND x.account_id = a.account_id"
        "   AND x.cancelled_at >= a.assigned_at AND x.cancelled_at < %(until)s LIMIT 1) c"
        "   ON TRUE"
        f" WHERE {' AND '.join(assigned_where)}"
        " GROUP BY a.variant ORDER BY a.variant",
        params,
    ).fetchall()
    return [ArmCounts(r[0], r[1], r[2], r[3], r[4]) for r in rows]


def status_counts(
    conn: psycopg.Connection, *, tenant_id: str, only_owner: str | None = None
) -> dict[str, int]:
    """How many of the tenant's win-back entries are at each status (every status named)."""
    where = ["t.tenant_id = %(tenant)s"]
    params: dict[str, Any] = {"tenant": tenant_id, "as_of": END_OF_TIME}
    if only_owner is not None:
        where.append("ow.owner = %(only_owner)s")
        params["only_owner"] = only_owner
    rows = conn.execute(
        f"SELECT e.status, count(*) FROM ({_ENTRIES.format(where=' AND '.join(where))}) e"
        " GROUP BY e.status",
        params,
    ).fetchall()
    found = dict.fromkeys(STATUSES, 0)
    found.update({status: count for status, count in rows})
    return found
