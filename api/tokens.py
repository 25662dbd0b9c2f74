"""API tokens: random, shown once, stored as their SHA-256 only.

A token is ``cw_`` and 32 random bytes, URL-safe base64 (43 characters): the prefix
makes a leaked one easy to recognise (secret scanners, logs). Only the hex SHA-256
of the whole token is stored (``api_users.token_sha256``); a fast hash is enough
because the token is 256 random bits, not a password that could be guessed.
"""

from __future__ import annotations

import hashlib
import secrets

TOKEN_PREFIX = "cw_"
TOKEN_BYTES = 32


def new_token() -> str:
    """A fresh random token."""
    return TOKEN_PREFIX + secrets.token_urlsafe(TOKEN_BYTES)


def token_digest(token: str) -> str:
    """The hex SHA-256 of ``token``: what is stored and looked up."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()
