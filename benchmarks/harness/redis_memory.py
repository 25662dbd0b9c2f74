"""Memory of the feature hashes a run left in Redis.

``MEMORY USAGE`` of a seeded random sample of a run's hashes (its own key prefix),
so the bytes per account compare across runs without reading every key.
"""

from __future__ import annotations

import random
import statistics
from typing import TYPE_CHECKING

from benchmarks.harness.figures import Figures

if TYPE_CHECKING:
    import redis


def used_memory(client: redis.Redis) -> int:
    """The server's ``used_memory`` in bytes."""
    return int(client.info("memory")["used_memory"])


def feature_hash_keys(client: redis.Redis, prefix: str) -> list[str]:
    """Every feature hash under ``prefix`` (SCAN, so the server keeps serving)."""
    from featurestore.redis_store import feature_key

    pattern = feature_key("*", "*", prefix)
    return [k.decode() for k in client.scan_iter(match=pattern, count=10_000)]


def memory_usage_sample(client: redis.Redis, keys: list[str],
                        size: int) -> tuple[list[str], list[int]]:
    """(sampled keys, their ``MEMORY USAGE`` in bytes) for up to ``size`` of ``keys``.

    ``samples=0`` makes Redis measure every field of a hash rather than estimate.
    """
    sample = random.Random(0).sample(keys, min(size, len(keys)))
    pipe = client.pipeline(transaction=False)
    for key in sample:
        pipe.memory_usage(key, samples=0)
    return sample, [int(u) for u in pipe.execute() if u is not None]


def feature_memory(redis_url: str, prefix: str, sample_size: int = 500) -> Figures:
    """Hashes under ``prefix``, and the mean bytes per hash (one hash: one account)."""
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        keys = feature_hash_keys(client, prefix)
        figures: Figures = {"hashes": len(keys), "sampled": 0, "bytes_per_account": None}
        if not keys:
            return figures
        sample, usages = memory_usage_sample(client, keys, sample_size)
        figures.update(
            sampled=len(usages),
            bytes_per_account=statistics.fmean(usages) if usages else None,
            fields_per_hash=int(client.hlen(sample[0])),
            encoding=client.object("encoding", sample[0]).decode(),
            used_memory=used_memory(client),
        )
        return figures
    finally:
        client.close()


def feature_hash_figures(client: redis.Redis, prefix: str, used_before: int,
                         expected: set[str], sample_size: int = 200) -> Figures:
    """Feature hashes under ``prefix``: count, memory per hash, shape of one hash.

    ``expected`` are the keys of the accounts that had events: the hashes
    missing and unexpected are counted against it.
    """
    used_after = used_memory(client)
    keys = feature_hash_keys(client, prefix)
    figures: Figures = {
        "redis_hashes": len(keys),
        "redis_used_memory_before": used_before,
        "redis_used_memory_after": used_after,
        "redis_bytes_per_hash_info": (used_after - used_before) / len(keys) if keys else None,
        "redis_hashes_missing": len(expected - set(keys)),
        "redis_hashes_unexpected": len(set(keys) - expected),
    }
    if keys:
        sample, usages = memory_usage_sample(client, keys, sample_size)
        figures["redis_memory_usage_sampled"] = len(usages)
        figures["redis_memory_usage_mean"] = statistics.fmean(usages) if usages else None
        figures["redis_fields_per_hash"] = int(client.hlen(sample[0]))
        figures["redis_hash_encoding"] = client.object("encoding", sample[0]).decode()
        figures["redis_ttl_s"] = int(client.ttl(sample[0]))
    return figures
