"""``churnwatch api`` and ``churnwatch users``: settings in, the REST API out.

:func:`api_config` is the one place that turns :class:`~churnwatch.settings.Settings`
into the API's :class:`~api.config.ApiConfig`; :func:`serve` migrates the schema (as
churnwatch's own role, which owns the tables) and runs the app under uvicorn.
"""

from __future__ import annotations

import logging

import psycopg

from api import ApiConfig, create_app
from churnwatch.errors import ChurnwatchError, ConfigurationError
from churnwatch.settings import Settings
from churnwatch.topics import ensure_churnwatch_topics
from churnwatch.wiring import risk_policy
from featurestore.definitions import load_definitions
from sinks.migrate import api_role_name, migrate
from sinks.postgres import connect

log = logging.getLogger(__name__)


def api_config(settings: Settings) -> ApiConfig:
    """The API's config under these settings (database and Redis URLs required)."""
    if not settings.database_url:
        raise ConfigurationError("CHURNWATCH_DATABASE_URL", "required by the API")
    if not settings.redis_url:
        raise ConfigurationError("CHURNWATCH_REDIS_URL", "required by the API (features)")
    return ApiConfig(
        database_url=settings.api_database_url or settings.database_url,
        database_schema=settings.database_schema,
        database_role=api_role_name(settings.database_schema),
        redis_url=settings.redis_url,
        redis_key_prefix=settings.redis_key_prefix,
        feature_set=load_definitions(settings.feature_definitions),
        feature_ttl=settings.feature_ttl,
        model_dir=settings.model_dir,
        model_reload_seconds=settings.model_reload_interval.total_seconds(),
        alert_expiry=settings.alert_expiry,
        kafka_bootstrap=settings.kafka_bootstrap,
        kafka_config=settings.kafka_config.properties,
        alert_states_topic=settings.topics.alert_states,
        risk_policy=risk_policy(settings),
    )


def migrate_schema(settings: Settings) -> list[int]:
    """Bring the schema up to date as churnwatch's own role (the tables' owner), and set
    up the API's role, grants and row-level security (idempotent; migration 0006 does
    it already where churnwatch's user may create roles, else it is done here, and a
    refusal names what a superuser must run)."""
    if not settings.database_url:
        raise ConfigurationError("CHURNWATCH_DATABASE_URL", "required")
    with connect(settings.database_url, settings.database_schema, autocommit=True) as conn:
        applied = migrate(conn, settings.database_schema)
        try:
            conn.execute("SELECT churnwatch_api_setup()")
        except psycopg.errors.RaiseException as exc:
            hint = exc.diag.message_hint or ""
            raise ApiRoleError(f"{exc.diag.message_primary}. {hint}".strip()) from None
    return applied


class ApiRoleError(ChurnwatchError):
    """The API's role cannot be set up by churnwatch's database user."""


def serve(settings: Settings, host: str, port: int) -> None:
    """Migrate, then serve the API until SIGINT/SIGTERM."""
    import uvicorn

    config = api_config(settings)
    applied = migrate_schema(settings)
    if applied:
        log.info("applied migrations", extra={"versions": applied,
                                              "schema": settings.database_schema})
    if settings.kafka_bootstrap:
        ensure_churnwatch_topics(settings)  # churn.alert-states, with the others
    else:
        log.warning("no CHURNWATCH_KAFKA_BOOTSTRAP: alert changes are kept unpublished in"
                    " alert_state_history until the API runs with Kafka")
    app = create_app(config)
    log.info("api listening", extra={"host": host, "port": port,
                                     "role": config.database_role})
    # log_config=None: keep churnwatch's logging (configured once, at the entry point)
    uvicorn.run(app, host=host, port=port, log_config=None, access_log=True)
