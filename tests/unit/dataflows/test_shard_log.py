"""The shard log: a shard's snapshot names files that hold only what each epoch changed."""

from __future__ import annotations

import errno
import os
import pickle
import time
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from dataflows.shard import AccountShard, LoggedShard, ShardOutputs, shard_of
from dataflows.shard_log import GONE, MAX_FILES, LogRef, ShardLog, ShardLogMissing
from featurestore.redis_store import FeatureUpdate
from schemas.erasure import Erasure
from tests.builders import make_event
from tests.unit.dataflows.test_shard import NOW, T0, Clock, events, scored_shard


def logged(clock: Clock, log: ShardLog, snapshot: object = None) -> AccountShard:
    config = replace(scored_shard(clock)._config, log=log)
    return AccountShard(config, clock, snapshot)  # type: ignore[arg-type]


def round_trip(snapshot: LoggedShard) -> LoggedShard:
    restored = pickle.loads(pickle.dumps(snapshot))
    assert isinstance(restored, LoggedShard)
    return restored


def files(log: ShardLog, ref: LogRef) -> list[str]:
    return sorted(p.name for p in (log.directory / f"{ref.shard:04d}").iterdir())


def erase(account: str) -> Erasure:
    return Erasure("9c1c7a43-6a0e-4c43-8c1e-6b1f0c7d2a10", "acme", account, None, NOW)


KINDS = ["billing.payment_failed", "feature.used", "user.login"]


def history(names: list[str], count: int = 12) -> dict[str, list]:
    return {n: events(n, count, event_type=KINDS[i % 3]) for i, n in enumerate(names)}


def test_each_epoch_writes_only_the_accounts_it_changed(tmp_path: Path) -> None:
    clock, log = Clock(), ShardLog(tmp_path, timedelta(minutes=10))
    account_shard = logged(clock, log)
    names = [f"a{i}" for i in range(20)]
    script = history(names)
    account_shard.process([script[n][:4] for n in names])
    first = account_shard.snapshot()
    assert isinstance(first, LoggedShard) and first.ref is not None
    assert first.ref.full_entries == 20 and len(first.ref.files) == 1
    full_bytes = log.bytes_written
    account_shard.process([script["a3"][4:6]])
    second = account_shard.snapshot()
    assert isinstance(second, LoggedShard) and second.ref is not None
    assert second.ref.files[0] == first.ref.files[0] and len(second.ref.files) == 2
    assert second.ref.since_full == 1
    assert log.bytes_written - full_bytes < full_bytes / 10  # one account's entry
    assert set(log.read(second.ref)) == {f"acme:{n}" for n in names}
    # an epoch with no news writes nothing and names the same files
    third = account_shard.snapshot()
    assert isinstance(third, LoggedShard) and third.ref == second.ref
    assert len(files(log, second.ref)) == 2
    # named by its accounts' shard (one shard in production; here, any of theirs)
    assert second.ref.shard in {shard_of(f"acme:{n}", 64) for n in names}


def test_a_restored_shard_carries_on_as_if_never_stopped(tmp_path: Path) -> None:
    clock, log = Clock(), ShardLog(tmp_path, timedelta(minutes=10))
    live = logged(clock, log)
    names = ["a", "b", "c", "d"]
    script = history(names)
    snapshot = None
    # epochs of a few events each: a full file of three accounts, a delta with a new
    # one, a delta of two (three entries since the full file: as many as it holds)
    for accounts, first in ((["a", "b", "c"], 0), (["d"], 0), (["a", "b"], 3)):
        live.process([script[n][first:first + 3] for n in accounts])
        snapshot = live.snapshot()
    assert isinstance(snapshot, LoggedShard) and snapshot.ref is not None
    assert len(snapshot.ref.files) == 3
    restored = logged(clock, ShardLog(tmp_path, timedelta(minutes=10)), round_trip(snapshot))
    assert len(restored) == len(live) == 4 and restored.risk_states == live.risk_states
    rest = [script[n][9:] for n in names]
    assert restored.process(rest) == live.process(rest)
    clock.now = NOW + timedelta(seconds=5)
    assert_same_flush(restored.on_notify(), live.on_notify())
    assert_same_flush(restored.on_eof(), live.on_eof())


def assert_same_flush(got: ShardOutputs, expected: ShardOutputs) -> None:
    """The same outputs, the feature writes in any order (a restored shard lists its
    pending accounts in another order than the live one's set)."""
    def by_account(updates: list[FeatureUpdate]) -> list[FeatureUpdate]:
        return sorted(updates, key=lambda update: update.account_id)

    assert by_account(got.features) == by_account(expected.features)
    assert replace(got, features=[]) == replace(expected, features=[])


def touch(account_shard: AccountShard, account: str, hour: int) -> LogRef:
    """One event of ``account`` at ``hour`` after T0, then a snapshot: its log ref."""
    account_shard.process([[make_event(event_id=f"{account}-x{hour}", account_id=account,
                                       event_time=T0 + timedelta(hours=hour))]])
    ref = account_shard.snapshot().ref  # type: ignore[union-attr]
    assert ref is not None
    return ref


def test_once_the_deltas_outweigh_the_full_file_the_next_is_full(tmp_path: Path) -> None:
    clock, log = Clock(), ShardLog(tmp_path, timedelta(0))  # replaced files go at once
    account_shard = logged(clock, log)
    account_shard.process([events(name, 2) for name in "abc"])
    ref = account_shard.snapshot().ref  # type: ignore[union-attr]
    assert ref is not None and ref.full_entries == 3
    for hour in (3, 4, 5):  # deltas of one entry each, up to as many as the full file
        ref = touch(account_shard, "a", hour)
        assert ref.since_full == hour - 2 and len(ref.files) == hour - 1
    compacted = touch(account_shard, "a", 6)  # a fourth would outweigh it: written whole
    assert compacted.full_entries == 3 and compacted.since_full == 0
    assert files(log, compacted) == list(compacted.files) == [compacted.files[0]]
    restored = logged(clock, log, account_shard.snapshot())
    again = [[make_event(event_id="a-x6", account_id="a", event_time=T0 + timedelta(hours=6))]]
    assert restored.process(again).duplicates == 1  # remembered through the full file
    assert len(restored) == 3


def test_the_file_count_bounds_the_deltas_too(tmp_path: Path) -> None:
    clock, log = Clock(), ShardLog(tmp_path, timedelta(0))
    account_shard = logged(clock, log)
    account_shard.process([events(f"acct-{n}", 1) for n in range(MAX_FILES + 10)])
    ref = account_shard.snapshot().ref  # type: ignore[union-attr]
    assert ref is not None and ref.full_entries == MAX_FILES + 10
    for hour in range(1, MAX_FILES):  # 63 deltas of one entry: fewer than the full file's
        ref = touch(account_shard, "acct-0", hour)
    assert len(ref.files) == MAX_FILES and ref.since_full == MAX_FILES - 1
    compacted = touch(account_shard, "acct-0", MAX_FILES)
    assert len(compacted.files) == 1 and compacted.since_full == 0
    assert files(log, compacted) == list(compacted.files)  # the 64 replaced: deleted


def test_an_evicted_account_is_gone_from_the_log(tmp_path: Path) -> None:
    clock, log = Clock(), ShardLog(tmp_path, timedelta(minutes=10))
    account_shard = logged(clock, log)
    account_shard.process([events("a", 2), events("b", 2)])
    account_shard.snapshot()
    clock.now = NOW + timedelta(days=20)
    account_shard.process([events("b", 4)[2:]])
    clock.now = NOW + timedelta(days=200)
    account_shard.on_notify()  # both idle past the TTL on the wall clock: forgotten
    snapshot = account_shard.snapshot()
    assert isinstance(snapshot, LoggedShard) and snapshot.ref is not None
    last = log.directory / f"{snapshot.ref.shard:04d}" / snapshot.ref.files[-1]
    assert pickle.loads(last.read_bytes()) == {"acme:a": GONE, "acme:b": GONE}
    assert log.read(snapshot.ref) == {}
    assert len(logged(clock, log, snapshot)) == 0


def test_an_erasure_rewrites_the_log_without_the_account(tmp_path: Path) -> None:
    clock, log = Clock(), ShardLog(tmp_path, timedelta(minutes=10))
    account_shard = logged(clock, log)
    account_shard.process([events("a", 3), events("b", 3)])
    before = account_shard.snapshot().ref  # type: ignore[union-attr]
    assert before is not None
    account_shard.process([[erase("a")]])
    after = account_shard.snapshot().ref  # type: ignore[union-attr]
    assert after is not None and len(after.files) == 1 and after.files[0] not in before.files
    assert set(log.read(after)) == {"acme:b"}
    stored = (log.directory / f"{after.shard:04d}" / after.files[0]).read_bytes()
    assert b"acme:a" not in stored


def test_replaced_files_wait_their_retention_and_old_orphans_go(tmp_path: Path) -> None:
    clock, log = Clock(), ShardLog(tmp_path, timedelta(minutes=10))
    account_shard = logged(clock, log)
    account_shard.process([events("a", 2)])
    first = account_shard.snapshot().ref  # type: ignore[union-attr]
    assert first is not None
    folder = tmp_path / f"{first.shard:04d}"
    old_orphan, young_orphan = folder / "1-dead.entries", folder / "2-dead.entries"
    for orphan in (old_orphan, young_orphan):
        orphan.write_bytes(b"x")
    an_hour_ago = time.time() - 3_600
    os.utime(old_orphan, (an_hour_ago, an_hour_ago))
    # a restart: a new log object looks through the folder at its first write
    restarted = ShardLog(tmp_path, timedelta(minutes=10))
    account_shard = logged(clock, restarted, LoggedShard(first, (), 0.0, (), {}))
    account_shard.process([[erase("a")]])
    second = account_shard.snapshot().ref  # type: ignore[union-attr]
    assert second is not None
    names = set(files(restarted, second))
    assert not old_orphan.exists() and young_orphan.exists()
    assert set(first.files) <= names  # replaced just now: a restart may still need it
    assert set(second.files) <= names


def test_a_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    clock, log = Clock(), ShardLog(tmp_path, timedelta(minutes=10))
    account_shard = logged(clock, log)
    account_shard.process([events("a", 2)])
    snapshot = account_shard.snapshot()
    assert isinstance(snapshot, LoggedShard) and snapshot.ref is not None
    (tmp_path / f"{snapshot.ref.shard:04d}" / snapshot.ref.files[0]).unlink()
    with pytest.raises(ShardLogMissing) as missing:
        logged(clock, log, snapshot)
    message = str(missing.value)
    assert snapshot.ref.files[0] in message
    assert "shard-log/" in message and "absence-log/" in message  # the folders to restore


def test_a_shard_that_never_held_an_account_writes_nothing(tmp_path: Path) -> None:
    clock, log = Clock(), ShardLog(tmp_path, timedelta(minutes=10))
    snapshot = logged(clock, log).snapshot()
    assert isinstance(snapshot, LoggedShard) and snapshot.ref is None
    assert not any(tmp_path.iterdir())
    assert len(logged(clock, log, snapshot)) == 0


def test_a_full_disk_names_the_recovery_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dataflows.run import recovery_store_error

    def full(_fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")  # as write(2) says it

    log = ShardLog(tmp_path / "shard-log", timedelta(minutes=10))
    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError) as failed:
        log.append(None, 3, {"acme:a": GONE}, full=True)
    failure = recovery_store_error(failed.value, tmp_path)
    assert failure is not None and "full" in str(failure)
    assert not any((tmp_path / "shard-log" / "0003").iterdir())  # no partial file left


def test_a_whole_snapshot_of_an_older_run_is_written_to_the_log_at_once(
    tmp_path: Path,
) -> None:
    clock = Clock()
    older = scored_shard(clock)  # no log: a whole snapshot, as before the shard log
    older.process([events("a", 3), events("b", 3)])
    whole = pickle.loads(pickle.dumps(older.snapshot()))
    log = ShardLog(tmp_path, timedelta(minutes=10))
    upgraded = logged(clock, log, whole)
    snapshot = upgraded.snapshot()  # an epoch without news, yet every account written
    assert isinstance(snapshot, LoggedShard) and snapshot.ref is not None
    assert set(log.read(snapshot.ref)) == {"acme:a", "acme:b"}
    restored = logged(clock, log, round_trip(snapshot))
    assert restored.process([events("a", 3)]).duplicates == 3
