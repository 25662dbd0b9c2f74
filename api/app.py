"""The ASGI app: :func:`create_app` builds it from an :class:`~api.config.ApiConfig`.

FastAPI serves the OpenAPI document at ``/openapi.json`` and its docs at ``/docs``.
Every error, ours or the framework's (validation, unknown route, wrong method), is
answered as ``{"error": {"code", "message", "field"}}``.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import redis
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from api import models
from api.alert_states import AlertStatePublisher
from api.config import ApiConfig
from api.console import install_console
from api.database import Database
from api.deps import Services
from api.errors import ApiError, Unauthorized, error_document
from api.routes import router
from featurestore.redis_store import RedisFeatureStore
from scoring.reload import ModelHolder

log = logging.getLogger(__name__)

DESCRIPTION = """\
churnwatch's REST API: accounts at risk, an account's timeline and current features,
on-demand scoring, alerts, churn causes, and users.

Send `Authorization: Bearer <token>` (a token from `churnwatch users add`). Every user
belongs to one tenant and sees nothing of another (404). Roles: an **agent** sees and
edits the notes of the accounts it owns; a **coordinator** sees every account of its
tenant and sets owners; an **admin** also manages users.
"""


def create_app(config: ApiConfig) -> FastAPI:
    """The API over ``config``'s PostgreSQL (as the restricted role), Redis and model.

    The model is loaded now (a bad one fails here, not at the first request); the
    database pool opens when the app starts (its lifespan), after checking the role.
    """
    model = None
    if config.model_dir is not None:
        model = ModelHolder(
            config.model_dir, config.feature_set.version, config.feature_set.names,
            check_seconds=config.model_reload_seconds, role="api",
        )
    database = Database(config)
    publisher = None
    if config.kafka_bootstrap:
        publisher = AlertStatePublisher(database, config.kafka_bootstrap,
                                        config.alert_states_topic, config.kafka_config)
    services = Services(
        config=config,
        database=database,
        features=RedisFeatureStore(
            redis.Redis.from_url(config.redis_url, socket_timeout=5, socket_connect_timeout=5),
            config.feature_set.names, config.feature_set.version, config.feature_ttl,
            prefix=config.redis_key_prefix,
        ),
        model=model,
        publisher=publisher,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        services.database.open()
        if services.publisher is not None:
            services.publisher.start()
        try:
            yield
        finally:
            if services.publisher is not None:
                services.publisher.close()
            services.database.close()
            services.features.close()

    app = FastAPI(
        title="churnwatch API", version="1", description=DESCRIPTION, lifespan=lifespan,
    )
    app.state.services = services
    app.include_router(router)
    install_console(app)  # the console's pages under /console
    _install_error_handlers(app)

    @app.get("/healthz", response_model=models.Health, tags=["operations"])
    def healthz() -> models.Health:
        """Liveness: the process answers (no database round trip)."""
        return models.Health(status="ok")

    return app


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, Unauthorized) else None
        return JSONResponse(exc.document(), status_code=exc.status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse(*validation_answer(exc.errors()))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return JSONResponse(error_document(code, str(exc.detail)), status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))


def validation_answer(errors: Sequence[Any]) -> tuple[dict[str, object], int]:
    """The body and status for FastAPI's validation errors: the first error's field as a
    dotted path (``features.logins_7d``, ``limit``); a body that is not JSON is a 400."""
    first: dict[str, Any] = dict(errors[0]) if errors else {}
    location = [str(part) for part in first.get("loc", ())]
    if location and location[0] in ("body", "query", "path", "header"):
        location = location[1:]
    field = ".".join(location) or None
    if first.get("type") == "json_invalid":
        return error_document("bad_request", "the body is not valid JSON", None), 400
    message = str(first.get("msg", "invalid input"))
    return error_document("invalid", message, field), 422
