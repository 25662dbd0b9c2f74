"""Errors of the API: each is an HTTP answer, ``{"error": {"code", "message", "field"}}``.

Raised anywhere below a route (queries, validation, authentication); the app's
exception handler turns one into its JSON answer, so a route never builds an
error body by hand.
"""

from __future__ import annotations

from typing import ClassVar

from schemas.errors import ChurnwatchError


class ApiError(ChurnwatchError):
    """An answer other than success: ``status`` and ``code`` by class, a message, and the
    request field at fault when one is (``limit``, ``features.logins_7d``, ``owner``)."""

    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal"

    def __init__(self, message: str, field: str | None = None) -> None:
        self.message = message
        self.field = field
        super().__init__(message if field is None else f"{field}: {message}")

    def document(self) -> dict[str, object]:
        """The JSON body of the answer."""
        return error_document(self.code, self.message, self.field)


def error_document(code: str, message: str, field: str | None = None) -> dict[str, object]:
    """The one shape every error answer has."""
    return {"error": {"code": code, "message": message, "field": field}}


class Unauthorized(ApiError):
    """No bearer token, or one that names no enabled user."""

    status = 401
    code = "unauthorized"


class Forbidden(ApiError):
    """The user's role may not do this (within its own tenant: another tenant's things are
    :class:`NotFound`, never forbidden, so that their existence does not show)."""

    status = 403
    code = "forbidden"


class NotFound(ApiError):
    """No such thing, or not one this user may see (another tenant's, another agent's)."""

    status = 404
    code = "not_found"


class Conflict(ApiError):
    """The request clashes with what is stored (a user name already taken)."""

    status = 409
    code = "conflict"


class BadRequest(ApiError):
    """Malformed input: a cursor that is not one of ours, a body that is not JSON."""

    status = 400
    code = "bad_request"


class InvalidInput(ApiError):
    """Well-formed input with a value that is not allowed; ``field`` names it."""

    status = 422
    code = "invalid"


class Unavailable(ApiError):
    """What the answer needs is not there: no model configured, PostgreSQL or Redis down."""

    status = 503
    code = "unavailable"


class FeatureVersionConflict(Conflict):
    """The account's stored features were written under other feature definitions than
    the live ones (a definitions change the stream has not caught up with)."""

    code = "feature_version_mismatch"
