"""Features and usage signals on the local stack: Redis hashes, stream/batch parity, truth.

One simulated history (1,000 accounts over 36 days) goes through the real
dataflow (Tansu → Bytewax → Redis and PostgreSQL); the batch backfill runs the
same history from its JSONL file. Every account's Redis hash must equal the
backfill's features, value for value, and the usage signals in Postgres must
be exactly the backfill's.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import orjson
import psycopg
import pytest
import redis

from accounts.backfill import BackfillResult, backfill, read_jsonl
from churnwatch.settings import Settings
from churnwatch.simulator import Simulation, produce, simulate, write_jsonl
from churnwatch.wiring import account_config
from featurestore.definitions import load_definitions
from featurestore.errors import FeatureVersionMismatch
from featurestore.redis_store import (
    PIPELINE_ACCOUNTS,
    FeatureUpdate,
    RedisFeatureStore,
    feature_key,
)
from schemas.event import EventLimits
from tests.integration.conftest import create_events_topic
from tests.integration.kafka_io import read_all
from tests.integration.processes import run_churnwatch

ACCOUNTS, DAYS, SEED = 1_000, 36, 3


@pytest.fixture(scope="module")
def simulation() -> Simulation:
    return simulate(accounts=ACCOUNTS, days=DAYS, seed=SEED)


@pytest.fixture
def streamed(
    make_settings: Callable[..., Settings], simulation: Simulation, tmp_path: Path
) -> tuple[Settings, BackfillResult]:
    settings = make_settings("feat", redis_key_prefix=f"cwt{uuid.uuid4().hex[:8]}")
    create_events_topic(settings)
    assert settings.kafka_bootstrap
    produce(simulation, settings.kafka_bootstrap, settings.topics.events)
    run_churnwatch(settings, "run", "--until-drained", timeout_s=600)
    history = tmp_path / "history.jsonl"
    write_jsonl(simulation, history)
    batch = backfill(
        read_jsonl(history),
        account_config(settings, load_definitions()),
        EventLimits(settings.max_message_bytes, settings.max_future_skew),
    )
    return settings, batch


def signal_rows(settings: Settings) -> list[tuple]:
    assert settings.database_url
    with psycopg.connect(settings.database_url) as conn:
        return list(conn.execute(
            f"SELECT signal_id::text, tenant_id, account_id, signal_type, signal_date"
            f" FROM {settings.database_schema}.usage_signals"
        ))


def test_stream_and_batch_agree_and_signals_follow_the_truth(
    streamed: tuple[Settings, BackfillResult], simulation: Simulation
) -> None:
    settings, batch = streamed
    assert settings.redis_url
    client = redis.Redis.from_url(settings.redis_url)
    feature_set = load_definitions()
    store = RedisFeatureStore(
        client, feature_set.names, feature_set.version, settings.feature_ttl,
        prefix=settings.redis_key_prefix,
    )

    # Parity: every account's hash equals the backfill, feature by feature.
    assert len(batch.rows) >= ACCOUNTS * 0.99
    keys = list(client.scan_iter(match=f"{settings.redis_key_prefix}:*", count=1000))
    assert len(keys) == len(batch.rows)
    mismatches = []
    for (tenant, account), row in batch.rows.items():
        vector = store.get(tenant, account)
        assert vector is not None, (tenant, account)
        assert vector.as_of_ms == round(row.as_of * 1000)
        if vector.values != row.values:
            mismatches.append((tenant, account, vector.values, row.values))
    assert mismatches == []

    # Hash layout and TTL on a sample.
    for tenant, account in list(batch.rows)[:20]:
        key = feature_key(tenant, account, settings.redis_key_prefix)
        fields = {k.decode() for k in client.hkeys(key)}
        assert fields == {*feature_set.names, "_v", "_t"}
        assert client.hget(key, "_v") == feature_set.version.encode()
        ttl_ms = client.pttl(key)
        assert 0 < ttl_ms <= settings.feature_ttl / timedelta(milliseconds=1)

    # Usage signals: exactly the batch's, in Postgres and as tier-2 alerts in Kafka.
    rows = signal_rows(settings)
    assert {r[0] for r in rows} == {s.signal_id for s in batch.signals}
    assert len(rows) == len(batch.signals)
    assert settings.kafka_bootstrap
    alerts = [orjson.loads(v) for _, v, _ in read_all(settings.kafka_bootstrap,
                                                       settings.topics.alerts)]
    tier2 = {a["alert_id"] for a in alerts if a["tier"] == 2}
    assert tier2 == {s.to_alert().alert_id for s in batch.signals}

    # Ground truth: every disengaging account is flagged, no steady one is.
    flagged = {(r[1], r[2]) for r in rows}
    profiles = {(a.tenant_id, a.account_id): str(a.profile) for a in simulation.accounts}
    disengaging = {k for k, p in profiles.items() if p == "disengaging"}
    steady = {k for k, p in profiles.items() if p == "steady"}
    assert len(disengaging) > 50
    assert disengaging <= flagged
    assert steady & flagged == set()


def fresh_store(
    make_settings: Callable[..., Settings], names: tuple[str, ...]
) -> tuple[redis.Redis, str, RedisFeatureStore]:
    """A client, a key prefix of this test's own (its keys removed after the test, as
    ``make_settings`` does), and a v1 store of ``names`` under it."""
    settings = make_settings("store")
    assert settings.redis_url
    client = redis.Redis.from_url(settings.redis_url)
    prefix = settings.redis_key_prefix
    return client, prefix, RedisFeatureStore(client, names, "v1", timedelta(days=1),
                                             prefix=prefix)


def test_store_refuses_other_versions_and_older_writes(
    make_settings: Callable[..., Settings],
) -> None:
    names = ("a", "b")
    client, prefix, store = fresh_store(make_settings, names)

    assert store.write_batch([FeatureUpdate("t", "x", (1.0, 2.5), 2_000.0)]) == 1
    # An older vector (a replayed batch) must not overwrite the newer one.
    assert store.write_batch([FeatureUpdate("t", "x", (9.0, 9.0), 1_000.0)]) == 0
    vector = store.get("t", "x")
    assert vector is not None and vector.values == {"a": 1.0, "b": 2.5}
    # Within one batch, only the newest update per account is written.
    store.write_batch([FeatureUpdate("t", "y", (1.0, 1.0), 5.0),
                       FeatureUpdate("t", "y", (3.0, 3.0), 6.0)])
    newest = store.get("t", "y")
    assert newest is not None and newest.values["a"] == 3.0
    other = RedisFeatureStore(client, names, "v2", timedelta(days=1), prefix=prefix)
    with pytest.raises(FeatureVersionMismatch):
        other.get("t", "x")
    assert store.get("t", "missing") is None


def test_a_batch_of_more_accounts_than_a_pipeline_writes_each_once(
    make_settings: Callable[..., Settings],
) -> None:
    client, prefix, store = fresh_store(make_settings, ("a",))
    accounts = 2 * PIPELINE_ACCOUNTS + 7
    # each account twice, the newer last: the newest of each, in three pipelines
    updates = [FeatureUpdate("t", f"x{i}", (float(i) + k,), 1_000.0 + k)
               for k in (0, 1) for i in range(accounts)]
    assert store.write_batch(updates) == accounts
    assert len(client.keys(f"{prefix}:*")) == accounts
    for i in (0, PIPELINE_ACCOUNTS, accounts - 1):
        vector = store.get("t", f"x{i}")
        assert vector is not None and vector.values == {"a": float(i) + 1}
    assert store.write_batch(updates[:accounts]) == 0  # older, in every pipeline: refused


def test_a_newer_write_refreshes_the_ttl_and_a_refused_older_one_leaves_it(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings("ttl")
    assert settings.redis_url
    ttl = timedelta(days=1)
    full_ms = ttl // timedelta(milliseconds=1)
    # A TTL far below the store's, as if most of it had run out: a refresh moves it back
    # above this however slow the machine, and nothing else does.
    worn_ms = 60_000
    key = feature_key("t", "x", settings.redis_key_prefix)
    with redis.Redis.from_url(settings.redis_url) as client:
        store = RedisFeatureStore(client, ("a",), "v1", ttl, prefix=settings.redis_key_prefix)
        assert store.write_batch([FeatureUpdate("t", "x", (1.0,), 2_000.0)]) == 1
        assert worn_ms < client.pttl(key) <= full_ms
        client.pexpire(key, worn_ms)

        # A newer vector is written, and its write refreshes the TTL.
        assert store.write_batch([FeatureUpdate("t", "x", (2.0,), 3_000.0)]) == 1
        assert worn_ms < client.pttl(key) <= full_ms
        client.pexpire(key, worn_ms)

        # An older one (a replayed batch) is refused, and leaves the TTL as it was.
        assert store.write_batch([FeatureUpdate("t", "x", (9.0,), 1_000.0)]) == 0
        assert 0 < client.pttl(key) <= worn_ms
        vector = store.get("t", "x")
        assert vector is not None and (vector.values, vector.as_of_ms) == ({"a": 2.0}, 3_000_000)
