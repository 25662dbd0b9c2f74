"""The online feature store: one Redis hash per account.

Key: ``cw:{<tenant>:<account>}:f`` (the braces keep an account's keys in one
Redis Cluster slot). Fields: one per feature, plus ``_v`` (the feature_version)
and ``_t`` (event time of the values, epoch milliseconds). Every write sets all
fields in one HSET and refreshes the TTL.

Writes are coalesced and pipelined: the dataflow hands over one update per
account that moved in a batch, the sink keeps only the newest per account, and
one pipeline carries them all (one round trip per batch, not per event or per
account). A write goes through a small Lua script that refuses to replace a
hash whose ``_t`` is newer (feast#5163: an older write must never overwrite a
newer one, e.g. a replay of an old batch after a restart).

The script takes the feature names and the values each as one space-separated
argument, and pairs them itself: redis-py converts and packs every argument of a
command in Python, so an HSET's 2 x 15 fields cost more on the client than the
script's split costs Redis (``python -m benchmarks.bench_feature_store``, three
interleaved runs each: 46.3, 38.9, 41.7 -> 32.6, 28.8, 29.6 us of client CPU per
account write of 15 features, and 63.0, 56.2, 57.6 -> 56.1, 47.8, 52.5 us of wall;
the same hashes stored).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

import redis

from featurestore.errors import FeatureStoreUnavailable, FeatureVersionMismatch

KEY_PREFIX = "cw"
# Accounts per pipeline: a flush after a backlog can hold every account, and
# redis-py holds a pipeline's packed commands and replies at once (about 2 KB per
# account: 104 MiB for 50,000 in a memray profile). A thousand cost one round trip
# per thousand accounts more.
PIPELINE_ACCOUNTS = 1_000

# KEYS[1] hash; ARGV[1] _t (ms), ARGV[2] ttl (ms), ARGV[3] _v (the feature version),
# ARGV[4] the feature names and ARGV[5] their values, in the same order, each joined
# by single spaces (the store refuses a name that holds one; a value is a number's text).
_GUARDED_WRITE = """
local stored = redis.call('HGET', KEYS[1], '_t')
if stored and tonumber(stored) > tonumber(ARGV[1]) then
  return 0
end
local fields = {'_t', ARGV[1], '_v', ARGV[3]}
local names = {}
for name in string.gmatch(ARGV[4], '[^ ]+') do
  names[#names + 1] = name
end
local i = 0
for value in string.gmatch(ARGV[5], '[^ ]+') do
  i = i + 1
  fields[#fields + 1] = names[i]
  fields[#fields + 1] = value
end
if i ~= #names then
  return redis.error_reply('feature names and values differ in number')
end
redis.call('HSET', KEYS[1], unpack(fields))
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"""


def feature_key(tenant_id: str, account_id: str, prefix: str = KEY_PREFIX) -> str:
    """The Redis key of an account's feature hash."""
    return f"{prefix}:{{{tenant_id}:{account_id}}}:f"


def encode_value(value: float) -> str:
    """Shortest text that reads back as the same float (integers without '.0')."""
    if value.is_integer() and abs(value) < 2**53:
        return str(int(value))
    return repr(value)


# encode_value of the small whole numbers most features are (counts, days), looked up
# rather than converted (timeit over bench_feature_store's vectors: 6.05 -> 3.87 us per
# vector of 15). -0.0 finds 0.0's "0", as encode_value gives it.
_WHOLE_TEXT = {float(n): encode_value(float(n)) for n in range(1_024)}


def encode_values(values: tuple[float, ...]) -> str:
    """Every value's :func:`encode_value`, joined by single spaces."""
    whole = _WHOLE_TEXT
    return " ".join([whole.get(value) or encode_value(value) for value in values])


@dataclass(frozen=True, slots=True)
class FeatureUpdate:
    """An account's feature values as of event time ``as_of`` (epoch seconds)."""

    tenant_id: str
    account_id: str
    values: tuple[float, ...]
    as_of: float


@dataclass(frozen=True, slots=True)
class FeatureVector:
    """An account's stored features, read back from Redis."""

    tenant_id: str
    account_id: str
    feature_version: str
    as_of_ms: int
    values: dict[str, float]


class RedisFeatureStore:
    """Writes and reads the feature hashes of one feature set."""

    def __init__(
        self,
        client: redis.Redis,
        names: Sequence[str],
        feature_version: str,
        ttl: timedelta,
        *,
        prefix: str = KEY_PREFIX,
    ) -> None:
        self._client = client
        self._names = tuple(names)
        if any(not name or " " in name for name in self._names):  # none: a reader's
            msg = f"a feature name must be non-empty and hold no space: {self._names!r}"
            raise ValueError(msg)
        self._joined_names = " ".join(self._names)
        self._version = feature_version
        self._ttl_ms = int(ttl.total_seconds() * 1000)
        self._prefix = prefix
        self._write = client.register_script(_GUARDED_WRITE)

    @classmethod
    def from_url(
        cls, url: str, names: Sequence[str], feature_version: str, ttl: timedelta, **kwargs: str
    ) -> RedisFeatureStore:
        return cls(redis.Redis.from_url(url), names, feature_version, ttl, **kwargs)

    def write_batch(self, updates: Sequence[FeatureUpdate]) -> int:
        """Write the newest update per account, in pipelines of ``PIPELINE_ACCOUNTS``
        accounts; return hashes written."""
        newest: dict[tuple[str, str], FeatureUpdate] = {}
        for update in updates:
            key = (update.tenant_id, update.account_id)
            held = newest.get(key)
            if held is None or update.as_of >= held.as_of:
                newest[key] = update
        if not newest:
            return 0
        written = 0
        writes = list(newest.values())
        for start in range(0, len(writes), PIPELINE_ACCOUNTS):
            written += self._write_pipeline(writes[start:start + PIPELINE_ACCOUNTS])
        return written

    def _write_pipeline(self, updates: list[FeatureUpdate]) -> int:
        pipe = self._client.pipeline(transaction=False)
        width, names = len(self._names), self._joined_names
        ttl, version = self._ttl_ms, self._version
        for update in updates:
            if len(update.values) != width:
                msg = f"{len(update.values)} values for {width} features"
                raise ValueError(msg)
            self._write(
                keys=[feature_key(update.tenant_id, update.account_id, self._prefix)],
                args=[round(update.as_of * 1000), ttl, version, names,
                      encode_values(update.values)],
                client=pipe,
            )
        try:
            results = pipe.execute()
        except (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError) as exc:
            # Replayed whole by the caller: the guarded script makes a second write of
            # the same vector a no-op, so the pipelines already written cost nothing.
            raise FeatureStoreUnavailable(str(exc)) from exc
        return sum(int(r) for r in results)

    def get(self, tenant_id: str, account_id: str) -> FeatureVector | None:
        """The stored vector, or None; refuses one of another feature_version."""
        key = feature_key(tenant_id, account_id, self._prefix)
        raw: dict[bytes, bytes] = self._client.hgetall(key)  # type: ignore[assignment]
        if not raw:
            return None
        fields = {k.decode(): v.decode() for k, v in raw.items()}
        stored_version = fields.pop("_v", None)
        if stored_version != self._version:
            raise FeatureVersionMismatch(f"{tenant_id}:{account_id}", stored_version, self._version)
        as_of_ms = int(fields.pop("_t"))
        return FeatureVector(
            tenant_id, account_id, stored_version, as_of_ms,
            {name: float(value) for name, value in fields.items()},
        )

    def delete(self, tenant_id: str, account_id: str) -> int:
        """Remove an account's hash (an erasure); return the keys removed (0 or 1)."""
        try:
            return int(self._client.delete(feature_key(tenant_id, account_id, self._prefix)))
        except (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError) as exc:
            raise FeatureStoreUnavailable(str(exc)) from exc

    def close(self) -> None:
        self._client.close()
