"""What the API is built from: plain values, made from settings by the composition root.

The API never reads the environment: ``churnwatch api`` builds an :class:`ApiConfig`
from :class:`~churnwatch.settings.Settings` (``churnwatch/api_server.py``) and hands
it to :func:`api.create_app`; tests build one directly.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from featurestore.definitions import FeatureSet
from scoring.risk import RiskPolicy


@dataclass(frozen=True, slots=True)
class ApiConfig:
    """Everything :func:`api.create_app` needs.

    ``database_url`` is the connection the API uses; every connection then SET ROLEs to
    ``database_role`` (``<schema>_api``, migration 0006), the role subject to row-level
    security by tenant, so the URL may be churnwatch's own (a member of that role) or
    the role's own login.
    """

    database_url: str
    database_schema: str
    database_role: str
    redis_url: str
    feature_set: FeatureSet
    redis_key_prefix: str = "cw"
    # The Redis store wants a TTL to write with; the API only reads.
    feature_ttl: timedelta = timedelta(days=40)
    # The live model for on-demand scoring (re-read when its directory changes, as the
    # dataflow's is); None: scoring is off and POST .../score answers 503.
    model_dir: Path | None = None
    model_reload_seconds: float = 30.0
    risk_policy: RiskPolicy = field(default_factory=RiskPolicy)
    # Connections the API keeps to PostgreSQL at most (requests beyond wait).
    pool_size: int = 8
    default_page_size: int = 50
    max_page_size: int = 500
    # Every answer to a request names no more than this many timeline items.
    max_timeline_items: int = 1000
    # An alert not resolved reads as expired this long after its last change (or its
    # event time, or the end of its snooze); None: never.
    alert_expiry: timedelta | None = timedelta(days=30)
    # Where alert lifecycle changes are published (api.alert_states); no bootstrap: they
    # stay in the outbox (alert_state_history.published_at NULL), unpublished.
    kafka_bootstrap: str | None = None
    kafka_config: Mapping[str, str | int | bool] = field(default_factory=dict)
    alert_states_topic: str = "churn.alert-states"

    def __repr__(self) -> str:  # the URL may carry a password
        return (f"ApiConfig(schema={self.database_schema!r}, role={self.database_role!r}, "
                f"model_dir={self.model_dir!r})")
