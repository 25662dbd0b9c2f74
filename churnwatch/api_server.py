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
from featurestore.definitions import load_definitions
from scoring.risk import Blend, RiskPolicy
from sinks.migrate import api_role_name, migrate
from sinks.postgres import connect

log = logging.getLogger(__name__)


def api_config(settings: Settings) -> ApiConfig:
    """The API's config under these settings (database and Redis URLs required)."""
    if not settings.database_url:
        raise ConfigurationError("CHURNWATCH_DATABASE_URL", "required by the API")
    if not settings.redis_url:
        raise ConfigurationError("CHURNWATCH_REDIS_URL", "required by the API (features)")
    medium, high = settings.risk_tiers
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
        risk_policy=RiskPolicy(
            medium_at=medium,
            high_at=high,
            blend=Blend(settings.risk_blend),
            ttl=settings.score_ttl,
            debounce=settings.score_debounce,
            min_change=settings.score_min_change,
            refresh_before=settings.score_refresh_before,
        ),
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
    app = create_app(config)
    log.info("api listening", extra={"host": host, "port": port,
                                     "role": config.database_role})
    # log_config=None: keep churnwatch's logging (configured once, at the entry point)
    uvicorn.run(app, host=host, port=port, log_config=None, access_log=True)
