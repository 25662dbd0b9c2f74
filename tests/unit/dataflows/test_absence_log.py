"""dataflows.absence_log: an input partition's absence trackers written as changes,
read back into trackers that carry on exactly as the live ones."""

from __future__ import annotations

import os
import pickle
import random
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from dataflows.absence_log import LoggedTracking, TrackingLog, folder_name
from detectors.inactivity import AbsenceTracking
from detectors.usage import InactivityRule
from schemas.event import Event
from tests.builders import make_event

START = datetime(2026, 10, 1, tzinfo=UTC)
RULES = [(InactivityRule(days=2.0, signal_type="quiet", feature="f"),
          lambda t: t == "app.login"),
         (InactivityRule(days=4.0, signal_type="gone", feature="g"), lambda _t: True)]
SIGNALS = ("quiet", "gone")


def tracking(snapshot: object = None) -> AbsenceTracking:
    return AbsenceTracking(RULES, 3600.0, "v1", snapshot)  # type: ignore[arg-type]


def stream(accounts: int, days: int, seed: int) -> list[list[Event]]:
    """Batches of a partition's events in time order: accounts that go quiet for days
    and come back, so episodes start, finish, wait pending and are forgotten."""
    chosen = random.Random(seed)
    events: list[Event] = []
    for account in range(accounts):
        moment = START + timedelta(hours=chosen.randrange(24))
        while moment < START + timedelta(days=days):
            events.append(make_event(
                event_id=f"{account}-{len(events)}", account_id=f"acct-{account}",
                event_type=chosen.choice(["app.login", "app.visit"]), event_time=moment))
            moment += timedelta(hours=chosen.choice([3, 20, 60, 130]))
    events.sort(key=lambda event: event.event_time)
    return [events[first:first + 5] for first in range(0, len(events), 5)]


def whole(tracked: AbsenceTracking) -> dict[str, tuple[object, ...]]:
    """A tracking's whole snapshot, its accounts and pending silences as sets (the order
    the tracker holds them in is not part of its state)."""
    return {signal: (set(snap.accounts), set(snap.pending), snap.seen_until, snap.checked_day)
            for signal, snap in tracked.snapshot().items()}


def test_trackers_read_back_from_their_log_carry_on_as_the_live_ones(tmp_path: Path) -> None:
    batches = stream(accounts=40, days=30, seed=3)
    live, log = tracking(), TrackingLog(tmp_path, timedelta(0), SIGNALS)
    written: list[LoggedTracking] = []
    signals = []
    for number, batch in enumerate(batches[:-20]):
        erased = [("acme", "acct-7")] if number == 60 else []
        signals += live.track(batch, erased)
        if number % 7 == 6:  # an epoch: what changed goes to the log
            written.append(pickle.loads(pickle.dumps(log.snapshot(live))))
    written.append(pickle.loads(pickle.dumps(log.snapshot(live))))  # the epoch resumed from
    assert signals, "the stream must give signals for the test to mean anything"
    refs = [ref for logged in written for ref in logged.refs.values()]
    assert all(set(logged.refs) == {"quiet", "gone"} for logged in written)
    assert any(len(ref.files) > 1 for ref in refs)  # deltas were written
    restored_log = TrackingLog(tmp_path, timedelta(0), SIGNALS)
    restored = tracking(restored_log.restore(written[-1]))
    assert whole(restored) == whole(live)
    # both go on alike, signals in the same order, and their next snapshots read the same
    carried = []
    for batch in batches[-20:]:
        signalled = restored.track(batch)
        assert signalled == live.track(batch)
        carried += signalled
    assert len({signal.account_id for signal in carried}) > 1  # several accounts' signals
    again = TrackingLog(tmp_path, timedelta(0), SIGNALS).restore(restored_log.snapshot(restored))
    assert whole(tracking(again)) == whole(live)


def test_an_epoch_writes_only_the_accounts_it_changed(tmp_path: Path) -> None:
    live, log = tracking(), TrackingLog(tmp_path, timedelta(0), SIGNALS)
    live.track([make_event(event_id=f"e{i}", account_id=f"acct-{i}", event_time=START)
                for i in range(20)])
    first = log.snapshot(live)
    assert [ref.full_entries for ref in first.refs.values()] == [20, 20]  # 20 accounts each
    live.track([make_event(event_id="again", account_id="acct-3",
                           event_time=START + timedelta(hours=1))])
    second = log.snapshot(live)
    assert [ref.since_full for ref in second.refs.values()] == [1, 1]  # acct-3 alone
    assert log.snapshot(live).refs == second.refs  # no news: no file


def test_an_erasure_rewrites_the_partition_without_the_account(tmp_path: Path) -> None:
    live, log = tracking(), TrackingLog(tmp_path, timedelta(0), SIGNALS)
    live.track([make_event(event_id=f"e{i}", account_id=f"acct-{i}", event_time=START)
                for i in range(20)])
    log.snapshot(live)
    live.track([], [("acme", "acct-5")])
    erased = log.snapshot(live)
    for signal, ref in erased.refs.items():
        assert len(ref.files) == 1 and ref.full_entries == 19  # whole again, without it
        named = (tmp_path / signal / "0000" / ref.files[0]).read_bytes()
        assert b"acct-5" not in named and b"acct-6" in named


def test_trackers_restored_from_a_whole_snapshot_are_written_with_no_news(
    tmp_path: Path,
) -> None:
    """A recovery directory of a run before the absence log: the first snapshot after
    the restart writes what the whole snapshot held, changed or not."""
    before = tracking()
    before.track([make_event(event_id=f"e{i}", account_id=f"acct-{i}", event_time=START)
                  for i in range(5)])
    restored = tracking(before.snapshot())
    logged = TrackingLog(tmp_path, timedelta(0), SIGNALS).snapshot(restored)
    assert [ref.full_entries for ref in logged.refs.values()] == [5, 5]
    read = tracking(TrackingLog(tmp_path, timedelta(0), SIGNALS).restore(logged))
    assert whole(read) == whole(before)


def test_a_signal_taken_out_of_the_definitions_is_not_read_named_or_kept(
    tmp_path: Path,
) -> None:
    """Its reference leaves the next snapshot and its folder goes (no retention here), an
    account erased meanwhile is in no file left, and declared again it starts afresh
    rather than writing its changes over the old files."""
    before = tracking()
    before.track([make_event(event_id=f"e{i}", account_id=f"acct-{i}", event_time=START)
                  for i in range(20)])
    logged = TrackingLog(tmp_path, timedelta(0), SIGNALS).snapshot(before)
    assert (tmp_path / "gone").is_dir()
    quiet_only = TrackingLog(tmp_path, timedelta(0), ("quiet",))
    restored = quiet_only.restore(logged)
    assert set(restored) == {"quiet"}  # the other is not read
    after = AbsenceTracking(RULES[:1], 3600.0, "v1", restored)  # type: ignore[arg-type]
    after.track([], [("acme", "acct-5")])
    without = quiet_only.snapshot(after)
    assert set(without.refs) == set(without.progress) == {"quiet"}
    assert not (tmp_path / "gone").exists()
    assert not any(b"acct-5" in path.read_bytes() for path in tmp_path.rglob("*.entries"))
    again = tracking(TrackingLog(tmp_path, timedelta(0), SIGNALS).restore(without))
    assert [len(tracker) for tracker in again.trackers] == [19, 0]


def test_the_folders_of_undeclared_signals_are_kept_for_the_retention(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A folder a restored snapshot named is kept ``retain`` from the restart (an
    earlier snapshot may still be resumed); one no snapshot named goes at the first
    snapshot once its newest file is that old."""
    retain = timedelta(minutes=10)
    before = tracking()
    before.track([make_event(event_id="e1", account_id="acct-1", event_time=START)])
    logged = TrackingLog(tmp_path, retain, SIGNALS).snapshot(before)
    stale = tmp_path / "renamed" / "0000"
    stale.mkdir(parents=True)
    (stale / "old.entries").write_bytes(b"x")
    hour_ago = time.time() - 3600
    os.utime(stale / "old.entries", (hour_ago, hour_ago))
    log = TrackingLog(tmp_path, retain, ("quiet",))
    after = AbsenceTracking(RULES[:1], 3600.0, "v1", log.restore(logged))  # type: ignore[arg-type]
    log.snapshot(after)
    assert not (tmp_path / "renamed").exists()
    assert (tmp_path / "gone").is_dir()  # named until this run: kept for now
    later = time.time() + retain.total_seconds() + 1
    monkeypatch.setattr(time, "time", lambda: later)
    log.snapshot(after)
    assert not (tmp_path / "gone").exists()
    assert (tmp_path / "quiet").is_dir()


def test_a_partition_that_held_no_account_writes_nothing(tmp_path: Path) -> None:
    log = TrackingLog(tmp_path, timedelta(0), SIGNALS)
    assert log.snapshot(tracking()).refs == {}
    assert not any(tmp_path.rglob("*.entries"))


def test_a_partition_name_becomes_a_safe_folder_name() -> None:
    assert folder_name("3-churn.events") == "3-churn.events"
    assert folder_name("a/b") != folder_name("a:b")  # made safe, and told apart
    assert "/" not in folder_name("a/b") and folder_name("a/b").startswith("a_b-")


def test_an_input_partition_resumes_its_trackers_from_the_log_its_snapshot_names(
    tmp_path: Path,
) -> None:
    from bytewax.connectors.kafka import KafkaSourceMessage
    from prometheus_client import CollectorRegistry

    from dataflows.metrics import PipelineMetrics
    from dataflows.parse import MessageParser, ParsingSource
    from schemas.event import EventLimits
    from tests.builders import event_bytes
    from tests.unit.dataflows.sources import Partitions

    batch = [KafkaSourceMessage(key=None, value=event_bytes(
        event_id=f"e{n}", account_id=f"a{n}",
        event_time=(START + timedelta(hours=n)).isoformat().replace("+00:00", "Z")),
        topic="t", partition=0, offset=n) for n in range(6)]
    parser = MessageParser(EventLimits(), lambda: START + timedelta(days=1),
                           PipelineMetrics.create(CollectorRegistry()), shards=4)

    def source(absences: bool, logged: bool) -> ParsingSource:
        return ParsingSource(
            Partitions([[batch]]), parser, absences=tracking if absences else None,
            absence_log=(lambda part: TrackingLog.for_partition(
                tmp_path, timedelta(0), SIGNALS, part)) if logged else None)

    part = source(absences=True, logged=True).build_part("in", "0", None)
    part.next_batch()
    snapshot = part.snapshot()
    assert isinstance(snapshot[3], LoggedTracking) and set(snapshot[3].refs) == {"quiet", "gone"}
    assert any((tmp_path / "0" / "gone").rglob("*.entries"))
    resumed = source(absences=True, logged=True).build_part("in", "0", snapshot)
    assert resumed._absences is not None
    assert [len(t) for t in resumed._absences.trackers] == [6, 6]  # logins: both signals
    # the absence signals no longer declared: nothing to restore, no log needed
    assert source(absences=False, logged=False).build_part("in", "0", snapshot)._absences is None
    # declared, but no log to read them from (a recovery directory gone): said so
    with pytest.raises(ValueError, match="absence log"):
        source(absences=True, logged=False).build_part("in", "0", snapshot)
