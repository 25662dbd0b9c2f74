"""What the decision engine reads from PostgreSQL: consent, alert statuses, and
experiment splits.

:class:`PostgresAlertStatusDirectory` keeps, per account, the statuses of the alerts
people changed through the API (``alert_states``), for policy rules on
``alert_status``; re-read whole once per refresh interval.

:class:`PostgresConsentDirectory` keeps every account's latest consent word
(``contact_preferences``) in memory and re-reads only the rows recorded since
its last read, at most once per refresh interval (one query per worker per
interval, never one per decision). Another system (a CRM, a support tool) may
write do-not-contact rows there; the flow itself writes the
``account.consent_changed`` events it sees.

:func:`register_experiments` pins each experiment's split the first time a
policy names it: an assignment is ``hash(tenant, account, key) % 100`` against
the split, so a policy that changed the split of an existing key would quietly
move accounts between arms. It is refused instead; start a new key.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta

import orjson
import psycopg

from decisions.policy import Policy
from sinks.errors import SinkError
from sinks.postgres import connect

log = logging.getLogger(__name__)

# Rows committed out of recorded_at order (a transaction that began earlier
# commits later) are caught by re-reading this far back on every refresh.
_OVERLAP = timedelta(minutes=2)


class ExperimentSplitChanged(SinkError):
    """A policy changes the split of an experiment key already in use."""

    def __init__(self, experiment_key: str, stored: object, new: object) -> None:
        self.experiment_key = experiment_key
        self.stored = stored
        self.new = new
        super().__init__(
            f"experiment {experiment_key!r}: the policy's split {new} differs from the stored "
            f"{stored}; assignments would reshuffle. Give the new split a new experiment key."
        )


class PostgresConsentDirectory:
    """``lookup(tenant, account)`` → (contact allowed, as of epoch s) or None."""

    def __init__(self, url: str, schema: str, refresh_seconds: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._url = url
        self._schema = schema
        self._refresh_seconds = refresh_seconds
        self._clock = clock
        self._known: dict[tuple[str, str], tuple[bool, float]] = {}
        self._read_since: datetime | None = None
        self._loaded = False  # read at least once: later failures keep what is known
        self._next_refresh = float("-inf")

    def lookup(self, tenant_id: str, account_id: str) -> tuple[bool, float] | None:
        if self._clock() >= self._next_refresh:
            self.refresh()
        return self._known.get((tenant_id, account_id))

    def refresh(self) -> int:
        """Read the rows recorded since the last read; return how many."""
        self._next_refresh = self._clock() + self._refresh_seconds
        query = ("SELECT tenant_id, account_id, contact_allowed, updated_at, recorded_at"
                 " FROM contact_preferences")
        params: tuple[object, ...] = ()
        if self._read_since is not None:
            query += " WHERE recorded_at > %s"
            params = (self._read_since - _OVERLAP,)
        try:
            with connect(self._url, self._schema, autocommit=True) as conn:
                rows = conn.execute(query, params).fetchall()
        except psycopg.Error as exc:
            if not self._loaded:
                msg = f"consent directory: cannot read contact_preferences: {exc}"
                raise SinkError(msg) from exc  # never decide without the opt-outs
            # Later failures: keep deciding on what is known; retried next interval.
            log.warning("consent directory refresh failed: %s", exc)
            return 0
        self._loaded = True
        for tenant_id, account_id, allowed, updated_at, recorded_at in rows:
            self._known[(tenant_id, account_id)] = (allowed, updated_at.timestamp())
            if self._read_since is None or recorded_at > self._read_since:
                self._read_since = recorded_at
        return len(rows)


def register_experiments(url: str, schema: str, policy: Policy) -> None:
    """Pin new experiments' splits; raise :class:`ExperimentSplitChanged` on a changed one."""
    with connect(url, schema) as conn:
        for experiment in policy.experiments.values():
            split = [list(part) for part in experiment.split()]
            conn.execute(
                "INSERT INTO experiments (experiment_key, workflow_key, split, policy_version)"
                " VALUES (%s, %s, %s, %s) ON CONFLICT (experiment_key) DO NOTHING",
                (experiment.key, experiment.workflow_key, orjson.dumps(split).decode(),
                 policy.version),
            )
            row = conn.execute(
                "SELECT split FROM experiments WHERE experiment_key = %s", (experiment.key,)
            ).fetchone()
            stored = row[0] if row else None
            if stored != split:
                conn.rollback()
                raise ExperimentSplitChanged(experiment.key, stored, split)
        conn.commit()


# An alert's lifecycle status at read time (migration 0007), over ``alerts a LEFT JOIN
# alert_states s``: the one definition, which the API reads alerts with too. One
# placeholder: the expiry interval (NULL: never).
ALERT_STATUS_SQL = (
    "CASE WHEN s.status = 'resolved' THEN 'resolved'"
    " WHEN greatest(coalesce(s.status_since, a.event_time), s.snoozed_until)"
    "      < now() - %s::interval THEN 'expired'"
    " WHEN s.status = 'snoozed' AND s.snoozed_until <= now() THEN 'open'"
    " ELSE coalesce(s.status, 'open') END"
)


class PostgresAlertStatusDirectory:
    """``lookup(tenant, account)`` → the statuses of the account's alerts that people
    changed through the API (``alert_states``: acknowledged, snoozed, resolved, expired;
    never ``open``), re-read whole at most once per refresh interval.

    Only alerts someone touched have a row, so the map grows with human actions, not
    with events. The statuses are as of the wall clock at the last read (a snooze ends,
    an alert expires, with time): a decision that reads them is not replayable, as with
    the consent directory. A failed read keeps what was known (it is a courtesy to the
    people acting, not a safety rule as an opt-out is), and is logged.
    """

    def __init__(self, url: str, schema: str, refresh_seconds: float,
                 expiry: timedelta | None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._url = url
        self._schema = schema
        self._refresh_seconds = refresh_seconds
        self._expiry = expiry
        self._clock = clock
        self._known: dict[tuple[str, str], frozenset[str]] = {}
        self._next_refresh = float("-inf")

    def lookup(self, tenant_id: str, account_id: str) -> frozenset[str]:
        if self._clock() >= self._next_refresh:
            self.refresh()
        return self._known.get((tenant_id, account_id), frozenset())

    def refresh(self) -> int:
        """Read every account's non-open statuses; return how many accounts have some."""
        self._next_refresh = self._clock() + self._refresh_seconds
        query = (
            f"SELECT tenant_id, account_id, array_agg(DISTINCT status) FROM ("
            f" SELECT s.tenant_id, s.account_id, {ALERT_STATUS_SQL} AS status"
            f" FROM alert_states s JOIN alerts a ON a.alert_id = s.alert_id) t"
            f" WHERE status <> 'open' GROUP BY 1, 2"
        )
        try:
            with connect(self._url, self._schema, autocommit=True) as conn:
                rows = conn.execute(query, (self._expiry,)).fetchall()
        except psycopg.Error as exc:
            log.warning("alert status directory refresh failed: %s", exc)
            return 0
        self._known = {(tenant, account): frozenset(statuses)
                       for tenant, account, statuses in rows}
        return len(self._known)
