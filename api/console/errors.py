"""The console's own conditions (the API's are in :mod:`api.errors`)."""

from __future__ import annotations

from schemas.errors import ChurnwatchError


class LoginRequired(ChurnwatchError):
    """No console cookie, or its token is unknown or disabled: answered by a redirect to
    the login page (and the cookie cleared), not by the API's JSON 401."""
