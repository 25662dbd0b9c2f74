"""Reads the console needs in shapes the REST API does not serve: how many accounts are
in each tier, and an account's risk over time. Each names the session's tenant (and an
agent's ownership), as :mod:`api.queries` does; row-level security checks the tenant
again."""

from __future__ import annotations

from api.console.charts import RiskPoint
from api.database import Session
from api.queries import require_account

# How many of an account's latest scores the chart draws (a long-lived account's series
# is thinned to its most recent ones rather than sent whole).
MAX_CHART_POINTS = 2000


def tier_counts(session: Session) -> dict[str, int]:
    """Accounts by the tier of their latest primary score (the accounts table; the user's
    accounts only, for an agent)."""
    owned, params = "", [session.tenant_id]
    if not session.user.sees_every_account:
        owned = " AND a.owner = %s"
        params.append(session.user.name)
    rows = session.conn.execute(
        "SELECT a.latest_tier, count(*) FROM accounts a WHERE a.tenant_id = %s"
        " AND a.latest_tier IS NOT NULL" + owned + " GROUP BY a.latest_tier",
        params,
    ).fetchall()
    counts = {"high": 0, "medium": 0, "low": 0}
    counts.update({row[0]: row[1] for row in rows})
    return counts


def risk_series(session: Session, account_id: str) -> list[RiskPoint]:
    """The account's primary scores, oldest first (its latest :data:`MAX_CHART_POINTS`).
    :class:`~api.errors.NotFound` unless the user may see the account."""
    require_account(session, account_id)
    rows = session.conn.execute(
        "SELECT score_time, score, tier FROM (SELECT score_time, score, tier, score_id"
        " FROM risk_scores WHERE tenant_id = %s AND account_id = %s AND NOT shadow"
        " ORDER BY score_time DESC, score_id DESC LIMIT %s) latest"
        " ORDER BY score_time, score_id",
        (session.tenant_id, account_id, MAX_CHART_POINTS),
    ).fetchall()
    return [RiskPoint(row[0], row[1], row[2]) for row in rows]
