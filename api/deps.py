"""What routes are handed: the request's session (token checked, tenant set), the
app's services, and the checks shared by several routes (roles, page size)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.alert_states import AlertStatePublisher
from api.config import ApiConfig
from api.database import Database, Session
from api.errors import Forbidden, InvalidInput, Unauthorized
from api.users import Role
from featurestore.redis_store import RedisFeatureStore
from scoring.reload import ModelHolder

# auto_error=False: a missing or malformed header is our 401 in our error shape.
_bearer = HTTPBearer(auto_error=False, description="a token from `churnwatch users add`")


@dataclass(frozen=True, slots=True)
class Services:
    """The app's long-lived parts, made once by :func:`api.create_app`."""

    config: ApiConfig
    database: Database
    features: RedisFeatureStore
    model: ModelHolder | None
    # Publishes alert lifecycle changes (None: no Kafka configured; they stay unpublished)
    publisher: AlertStatePublisher | None = None


def services(request: Request) -> Services:
    found: Services = request.app.state.services
    return found


def session(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Iterator[Session]:
    """The request's transaction, as its user, in its user's tenant."""
    if credentials is None or not credentials.credentials:
        raise Unauthorized("send Authorization: Bearer <token>")
    with services(request).database.session(credentials.credentials) as current:
        yield current


def admin_session(current: Annotated[Session, Depends(session, scope="function")]) -> Session:
    if current.user.role is not Role.ADMIN:
        raise Forbidden("only an admin manages users")
    return current


def page_size(request: Request, limit: int | None) -> int:
    config = services(request).config
    if limit is None:
        return config.default_page_size
    if not 1 <= limit <= config.max_page_size:
        raise InvalidInput(f"between 1 and {config.max_page_size}", "limit")
    return limit


ServicesDep = Annotated[Services, Depends(services)]
# scope="function": the transaction commits before the answer is sent, so a client that
# has its answer to a change also sees the change (and a failed commit is its answer).
SessionDep = Annotated[Session, Depends(session, scope="function")]
AdminDep = Annotated[Session, Depends(admin_session)]
