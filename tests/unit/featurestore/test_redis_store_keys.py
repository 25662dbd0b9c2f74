"""The Redis feature store's pure parts: key building and value encoding."""

from __future__ import annotations

import math

import pytest

from featurestore.redis_store import KEY_PREFIX, encode_value, feature_key


@pytest.mark.parametrize(
    ("tenant", "account", "prefix", "key"),
    [
        pytest.param("acme", "acct-1", None, "cw:{acme:acct-1}:f", id="default-prefix"),
        pytest.param("acme", "acct-1", "test-42", "test-42:{acme:acct-1}:f", id="custom-prefix"),
        pytest.param("globex.eu", "a_9", None, "cw:{globex.eu:a_9}:f", id="dots-and-underscores"),
    ],
)
def test_feature_key_is_exact(tenant: str, account: str, prefix: str | None, key: str) -> None:
    built = feature_key(tenant, account) if prefix is None else feature_key(tenant, account, prefix)
    assert built == key


def test_default_prefix_is_cw() -> None:
    assert KEY_PREFIX == "cw"


def test_one_accounts_key_is_hash_tagged_by_tenant_and_account() -> None:
    # Redis Cluster hashes only the text between the first '{' and the next '}'
    key = feature_key("acme", "acct-1")
    assert key[key.index("{") + 1 : key.index("}")] == "acme:acct-1"
    assert feature_key("acme", "acct-1") != feature_key("acme", "acct-2")
    assert feature_key("acme", "acct-1") != feature_key("globex", "acct-1")


@pytest.mark.parametrize(
    ("value", "text"),
    [
        pytest.param(3.0, "3", id="integral"),
        pytest.param(-2.0, "-2", id="negative-integral"),
        pytest.param(0.0, "0", id="zero"),
        pytest.param(-0.0, "0", id="negative-zero-loses-its-sign"),
        pytest.param(0.1, repr(0.1), id="tenth-as-repr"),
        pytest.param(0.1, "0.1", id="tenth-shortest"),
        pytest.param(2.0**53 - 1, "9007199254740991", id="largest-exact-integer"),
        pytest.param(2.0**53, "9007199254740992.0", id="beyond-exact-integers-as-repr"),
        pytest.param(1e300, "1e+300", id="huge"),
    ],
)
def test_encode_value_text(value: float, text: str) -> None:
    assert encode_value(value) == text


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(0.1, id="tenth"),
        pytest.param(1 / 3, id="third"),
        pytest.param(1e-300, id="tiny"),
        pytest.param(5e-324, id="smallest-subnormal"),
        pytest.param(123456789.125, id="binary-fraction"),
        pytest.param(-2.5, id="negative"),
        pytest.param(-0.0, id="negative-zero"),
        pytest.param(2.0**53 + 2, id="above-2-53"),
        pytest.param(1.7976931348623157e308, id="max-float"),
        pytest.param(math.inf, id="infinity"),
        pytest.param(-math.inf, id="minus-infinity"),
    ],
)
def test_encode_value_reads_back_as_the_same_float(value: float) -> None:
    assert float(encode_value(value)) == value


def test_encode_value_of_nan_reads_back_as_nan() -> None:
    assert math.isnan(float(encode_value(math.nan)))
