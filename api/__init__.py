"""churnwatch's REST API (issue 15): accounts at risk, timelines, features, on-demand
scoring, alerts, churn causes and users, with roles and tenant isolation (row-level
security in PostgreSQL beneath the API's own checks).

The layer between ``dataflows`` and the composition root: it reads what the stream
writes and never reads the environment; ``churnwatch api`` builds its
:class:`ApiConfig` from settings and serves :func:`create_app` with uvicorn.
"""

from api.app import create_app
from api.config import ApiConfig
from api.errors import ApiError
from api.tokens import new_token, token_digest
from api.users import ApiUser, Role, add_user, disable_user, list_users

__all__ = [
    "ApiConfig",
    "ApiError",
    "ApiUser",
    "Role",
    "add_user",
    "create_app",
    "disable_user",
    "list_users",
    "new_token",
    "token_digest",
]
