"""Per-subject erasure on the real stack: ``churnwatch erase`` mid-stream, then a scan of
every table, every Redis key, the live snapshot and the topics churnwatch owns."""

from __future__ import annotations

import dataclasses
import pickle
import re
import sqlite3
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import psycopg
import redis

from churnwatch.settings import Settings
from churnwatch.simulator import produce, simulate
from dataflows.absence_log import ABSENCE_LOG_FOLDER, LoggedTracking, folder_name
from dataflows.shard_log import SHARD_LOG_FOLDER, LogRef, ShardLog
from dataflows.state_codec import DICTIONARY_FOLDER
from tests.builders import event_bytes
from tests.integration.conftest import create_events_topic
from tests.integration.kafka_io import ends, produce_all, read_all
from tests.integration.processes import run_churnwatch


def rows(settings: Settings, query: str, *params: Any) -> list[tuple[Any, ...]]:
    assert settings.database_url
    with psycopg.connect(settings.database_url) as conn:
        conn.execute(f"SET search_path TO {settings.database_schema}")
        return list(conn.execute(query.encode(), params))


def tables(settings: Settings) -> list[str]:
    return [r[0] for r in rows(
        settings, "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
        settings.database_schema,
    )]


def mentions(account: str) -> re.Pattern[bytes]:
    """The account id as a whole token (acct-0001 is not in acct-00011)."""
    return re.compile(rb"(?<![A-Za-z0-9_.-])" + re.escape(account.encode()) + rb"(?![A-Za-z0-9_-])")


def opened(value: Any, log: ShardLog, absence_log: Path) -> Iterator[Any]:
    """Every value inside a snapshot, packed states unpacked, the files read of the shard
    log or of the input partition's absence log (``absence_log``) that it names."""
    yield value
    if isinstance(value, LoggedTracking):
        for signal, ref in value.refs.items():
            tracker_log = ShardLog(absence_log / folder_name(signal), timedelta(0))
            yield from opened(tracker_log.read(ref), log, absence_log)
        yield from opened(value.progress, log, absence_log)
        return
    if isinstance(value, LogRef):
        yield from opened(log.read(value), log, absence_log)
        return
    if isinstance(value, bytes):
        for load in (lambda b: pickle.loads(log.codec.unpack(b)), pickle.loads):
            try:
                inner = load(value)
            except Exception:  # not a pickle: plain bytes
                continue
            yield from opened(inner, log, absence_log)
            return
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from opened(key, log, absence_log)
            yield from opened(item, log, absence_log)
    elif isinstance(value, list | tuple | set | frozenset):
        for item in value:
            yield from opened(item, log, absence_log)
    elif dataclasses.is_dataclass(value):
        for field in dataclasses.fields(value):
            yield from opened(getattr(value, field.name), log, absence_log)


def snapshot_mentions(settings: Settings, account: str) -> list[str]:
    """The live snapshot rows (every step's state) that hold the account anywhere."""
    assert settings.recovery_dir
    pattern = mentions(account)
    log = ShardLog(settings.recovery_dir / SHARD_LOG_FOLDER, timedelta(0))
    found = []
    for path in sorted(settings.recovery_dir.glob("*.sqlite3")):
        with sqlite3.connect(path) as db:
            for step, key, blob in db.execute("SELECT step_id, state_key, ser_change FROM snaps"):
                if blob is None:
                    continue
                absence_log = settings.recovery_dir / ABSENCE_LOG_FOLDER / folder_name(key)
                for value in opened(blob, log, absence_log):
                    text = value if isinstance(value, bytes) else str(value).encode()
                    if isinstance(value, bytes | str) and pattern.search(text):
                        found.append(f"{path.name}:{step}:{key}")
                        break
    return found


def test_erase_an_account_mid_stream_leaves_no_trace(
    make_settings: Callable[..., Settings],
) -> None:
    # a dictionary trained on the first 40 states (of 40 accounts): checked below
    settings = make_settings("erase", snapshot_interval=timedelta(milliseconds=500),
                             state_dictionary_samples=40)
    create_events_topic(settings)
    assert settings.kafka_bootstrap and settings.redis_url
    simulation = simulate(accounts=40, days=20, seed=5)
    produce(simulation, settings.kafka_bootstrap, settings.topics.events)
    run_churnwatch(settings, "run", "--until-drained")

    # The account with the most outputs: alerts, decisions and contacts to erase.
    [(tenant, account, _)] = rows(
        settings,
        "SELECT a.tenant_id, a.account_id, count(*) FROM alerts a JOIN contact_ledger c"
        " USING (tenant_id, account_id) GROUP BY 1, 2 ORDER BY 3 DESC, 2 LIMIT 1",
    )
    pattern = mentions(account)
    # What became of its workflows, reported back on the events topic (workflow_outcomes).
    triggers = rows(settings, "SELECT trigger_id::text FROM workflow_triggers"
                    " WHERE tenant_id = %s AND account_id = %s", tenant, account)
    assert triggers
    produce_all(settings.kafka_bootstrap, settings.topics.events, [
        (None, event_bytes(event_id=f"outcome-{i}", tenant_id=tenant, account_id=account,
                           event_type="workflow.engaged", source="crm", user_id=None,
                           event_time=simulation.valid_events()[-1]["event_time"],
                           attributes={"trigger_id": trigger, "note": f"{account} called"}))
        for i, (trigger,) in enumerate(triggers)
    ])
    run_churnwatch(settings, "run", "--until-drained")
    assert rows(settings, "SELECT count(*) FROM workflow_outcomes WHERE account_id = %s",
                account) == [(len(triggers),)]
    ledger_before = rows(settings, "SELECT count(*) FROM contact_ledger")[0][0]
    outputs_before = {t: ends(settings.kafka_bootstrap, t) for t in (
        settings.topics.alerts, settings.topics.scores, settings.topics.workflows)}

    printed = run_churnwatch(settings, "erase", "--tenant", tenant, "--account", account,
                             "--by", "dpo@example.com")
    receipt = orjson.loads(printed[printed.index("{"):])
    assert receipt["scope"] == "account" and receipt["requested_by"] == "dpo@example.com"
    assert receipt["removed"]["alerts"] > 0 and receipt["removed"]["contact_ledger"] > 0
    assert receipt["removed"]["workflow_outcomes"] == len(triggers)
    assert receipt["removed"]["redis"] == 1
    assert receipt["removed"]["control_messages"] == settings.topic_partitions
    assert receipt["stream_erased_at"] is None  # no dataflow running yet
    assert account.encode() not in printed.encode()  # the receipt names it by digest

    # Later events: the erased account's (refused) and another's (processed).
    last = max(e["event_time"] for e in simulation.valid_events())
    other = "acct-later"
    produce_all(settings.kafka_bootstrap, settings.topics.events, [
        (None, event_bytes(event_id=f"late-{i}", tenant_id=tenant, account_id=acc,
                           event_type="billing.payment_failed",
                           event_time=_after(last, i)))
        for i, acc in enumerate([account, account, other])
    ])
    run_churnwatch(settings, "run", "--until-drained")

    # PostgreSQL: no row names the account, in any table; the ledger kept its count.
    for table in tables(settings):
        texts = [r[0] for r in rows(settings, f"SELECT t::text FROM {table} t")]
        assert not [t for t in texts if pattern.search(t.encode())], table
    assert rows(settings, "SELECT count(*) FROM contact_ledger WHERE account_id <> %s",
                other)[0][0] == ledger_before
    tombstone = f"erased:{receipt['erasure_id']}"
    assert rows(settings, "SELECT count(*) FROM contact_ledger WHERE account_id = %s",
                tombstone)[0][0] == receipt["removed"]["contact_ledger"]
    [(confirmed, removed)] = rows(
        settings, "SELECT stream_erased_at, stream_removed FROM erasures WHERE erasure_id = %s",
        receipt["erasure_id"],
    )
    assert confirmed is not None and "alerts" in removed
    # The other account's later event went through.
    assert rows(settings, "SELECT count(*) FROM alerts WHERE account_id = %s AND tier = 1",
                other)[0][0] == 1

    # Redis: no key or value names it.
    client = redis.Redis.from_url(settings.redis_url)
    try:
        assert client.exists(f"{settings.redis_key_prefix}:{{{tenant}:{other}}}:f")
        for key in client.scan_iter(match=f"{settings.redis_key_prefix}:*", count=1000):
            assert not pattern.search(key), key
            for field, value in client.hgetall(key).items():
                assert not pattern.search(field + b"=" + value), key
    finally:
        client.close()

    # The live snapshots: no step's state holds it.
    assert snapshot_mentions(settings, account) == []
    assert snapshot_mentions(settings, other)  # the scan does see an account's state
    assert settings.recovery_dir is not None
    for folder in (SHARD_LOG_FOLDER, ABSENCE_LOG_FOLDER):  # read there
        assert any((settings.recovery_dir / folder).rglob("*.entries")), folder
    # The dictionaries the states are packed with (never rewritten): nothing of either.
    dictionaries = list((settings.recovery_dir / SHARD_LOG_FOLDER / DICTIONARY_FOLDER).iterdir())
    assert dictionaries  # trained in this run
    for path in dictionaries:
        assert not mentions(account).search(path.read_bytes()), path
        assert not mentions(other).search(path.read_bytes()), path

    # Kafka: its later events were dead-lettered without key or value; nothing churnwatch
    # published after the erasure names it.
    letters = [orjson.loads(v) for _, v, _ in read_all(settings.kafka_bootstrap,
                                                        settings.topics.dead_letters)]
    refused = [d for d in letters if d["reason"] == "erased_subject"]
    assert len(refused) == 2 and all(d["original"] is None for d in refused)
    for topic, before in outputs_before.items():
        after = read_all(settings.kafka_bootstrap, topic, since=before)
        assert not [v for k, v, _ in after if pattern.search((k or b"") + v)], topic


def _after(last: str, minutes: int) -> str:
    """An event time a few minutes after the simulated history's newest event."""
    return (datetime.fromisoformat(last) + timedelta(minutes=5 + minutes)).isoformat()
