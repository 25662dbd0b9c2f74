"""API tokens: random, recognisable, stored as their SHA-256 only."""

from __future__ import annotations

import hashlib

from api.tokens import new_token, token_digest


def test_tokens_are_prefixed_random_and_url_safe() -> None:
    tokens = {new_token() for _ in range(200)}
    assert len(tokens) == 200
    for token in tokens:
        assert token.startswith("cw_") and len(token) == 3 + 43
        assert set(token[3:]) <= set(
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def test_the_digest_is_the_hex_sha256_of_the_whole_token() -> None:
    assert token_digest("cw_abc") == (
        "a9a662a565ab7b0cfdb7609f7ad91d6f569b9d58ab8d7b30f6584c0e3417439a")
    assert token_digest("cw_abc") == hashlib.sha256(b"cw_abc").hexdigest()
    assert len(token_digest(new_token())) == 64
    assert token_digest("cw_abc") != token_digest("cw_abd")
