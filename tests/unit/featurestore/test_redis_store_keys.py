"""The Redis feature store's pure parts: key building, value encoding, and what the
guarded write refuses before sending anything."""

from __future__ import annotations

import math
from datetime import timedelta

import pytest
import redis

from featurestore.redis_store import (
    KEY_PREFIX,
    FeatureUpdate,
    RedisFeatureStore,
    encode_value,
    encode_values,
    feature_key,
)


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


def test_encode_values_is_each_value_s_text_joined_by_spaces() -> None:
    # The looked-up small whole numbers and everything around them alike.
    values = (0.0, -0.0, 1.0, 1023.0, 1024.0, -1.0, 0.5, 1023.5, 2.0**53, 2.0**53 - 1,
              1e16, -3.25, math.inf, -math.inf, math.nan, 5e-324)
    assert encode_values(values) == " ".join(encode_value(v) for v in values)
    assert encode_values((-0.0,)) == "0" and encode_values(()) == ""
    assert all(" " not in encode_value(v) for v in values)  # the script splits on them


def test_names_that_the_script_could_not_split_are_refused() -> None:
    # The guarded write passes the names joined by spaces (no connection is made here).
    client = redis.Redis()
    for names in (("a", "b c"), ("a", "")):
        with pytest.raises(ValueError, match="no space"):
            RedisFeatureStore(client, names, "v1", timedelta(days=1))
    RedisFeatureStore(client, (), "", timedelta(days=1))  # a reader or an eraser: no names


def test_a_vector_of_another_length_is_refused_before_anything_is_sent() -> None:
    # Port 1: nothing listens; a write that reached the pipeline's execute would fail
    # with a connection error, not this one.
    store = RedisFeatureStore(redis.Redis(port=1), ("a", "b"), "v1", timedelta(days=1))
    with pytest.raises(ValueError, match="3 values for 2 features"):
        store.write_batch([FeatureUpdate("t", "x", (1.0, 2.0, 3.0), 1.0)])
