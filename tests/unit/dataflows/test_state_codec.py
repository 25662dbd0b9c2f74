"""Account states packed with a dictionary each codec trains on its own states."""

from __future__ import annotations

import pickle
import zlib
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
import zstandard
from hypothesis import given
from hypothesis import strategies as st

from dataflows.shard import AccountShard, LoggedShard
from dataflows.shard_log import ShardLog
from dataflows.state_codec import (
    COMMON_SUBJECTS,
    DICTIONARY_FOLDER,
    SUFFIX,
    StateCodec,
    StateDictionaryMissing,
    scrubbed,
)
from tests.unit.dataflows.test_shard import Clock, events, scored_shard


def state(number: int, epoch: int = 0) -> tuple[str, bytes]:
    """An account's state as a shard pickles it: ids of its own, strings all share."""
    subject = f"acme:acct-{number:05d}"
    value = (
        "acme", f"acct-{number:05d}", [f"acme-acct-{number:05d}-{epoch}-{i}" for i in range(6)],
        {"tenure_days": float(number), "active_users_7d": 3.0 + epoch, "plan": "growth"},
        "low", f"u-{number}@example.com", b"\x00\x01" * 8,
    )
    return subject, pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)


def frame_dictionary(blob: bytes) -> int:
    return zstandard.get_frame_parameters(blob).dict_id


def test_a_codec_trains_its_dictionary_on_the_first_states_and_reads_every_frame() -> None:
    codec = StateCodec(samples=40)
    states = [state(n, epoch) for epoch in range(3) for n in range(30)]
    blobs = [codec.pack(pickled, subject) for subject, pickled in states]
    assert codec.dictionary_id != 0
    assert {frame_dictionary(blob) for blob in blobs[:39]} == {0}  # before it was trained
    assert {frame_dictionary(blob) for blob in blobs[40:]} == {codec.dictionary_id}
    assert [codec.unpack(blob) for blob in blobs] == [pickled for _, pickled in states]
    # smaller with it than without (a codec that never trains)
    plain = StateCodec(samples=0)
    assert sum(map(len, blobs[40:])) < sum(len(plain.pack(s, n)) for n, s in states[40:])
    # and the forms of older snapshots: a zlib stream, the pickle itself
    _, pickled = states[0]
    assert codec.unpack(zlib.compress(pickled, 1)) == pickled
    assert codec.unpack(pickled) == pickled


def test_a_restart_reads_the_dictionary_from_the_directory_and_packs_with_it(
    tmp_path: Path,
) -> None:
    folder = tmp_path / DICTIONARY_FOLDER
    codec = StateCodec(folder, samples=40)
    states = [state(n, epoch) for epoch in range(2) for n in range(30)]
    blobs = [codec.pack(pickled, subject) for subject, pickled in states]
    [written] = folder.glob(f"*{SUFFIX}")
    assert written.name == f"{codec.dictionary_id:08x}{SUFFIX}"
    assert not list(folder.glob(".*"))  # no partial file left

    restarted = StateCodec(folder, samples=40)
    assert restarted.dictionary_id == codec.dictionary_id  # not trained again
    assert [restarted.unpack(blob) for blob in blobs] == [pickled for _, pickled in states]
    subject, pickled = state(99)
    assert frame_dictionary(restarted.pack(pickled, subject)) == codec.dictionary_id
    assert len(list(folder.glob(f"*{SUFFIX}"))) == 1


def test_a_frame_whose_dictionary_is_missing_is_a_clear_error(tmp_path: Path) -> None:
    folder = tmp_path / DICTIONARY_FOLDER
    codec = StateCodec(folder, samples=40)
    blobs = [codec.pack(pickled, subject) for subject, pickled in
             (state(n, epoch) for epoch in range(2) for n in range(30))]
    (folder / f"{codec.dictionary_id:08x}{SUFFIX}").unlink()
    with pytest.raises(StateDictionaryMissing, match="missing") as raised:
        StateCodec(folder).unpack(blobs[-1])
    assert raised.value.exit_code == 74
    assert raised.value.path == folder / f"{codec.dictionary_id:08x}{SUFFIX}"
    # without a directory: only the dictionaries this codec trained
    with pytest.raises(StateDictionaryMissing, match="in memory"):
        StateCodec().unpack(blobs[-1])


def test_two_processes_whose_dictionaries_share_an_id_keep_both(tmp_path: Path) -> None:
    folder = tmp_path / DICTIONARY_FOLDER
    states = [state(n, epoch) for epoch in range(2) for n in range(30)]
    first = StateCodec(samples=40)  # trains as the second will: the same samples
    for subject, pickled in states:
        first.pack(pickled, subject)
    taken = first.dictionary_id
    second = StateCodec(folder, samples=40)  # started beside the other: none there yet
    # the other process's dictionary written meanwhile under that id, other contents
    other = zstandard.train_dictionary(
        8192, [pickle.dumps((i, f"other-{i % 7}" * 20, [i] * 30)) for i in range(200)])
    data = other.as_bytes()
    folder.mkdir()
    (folder / f"{taken:08x}{SUFFIX}").write_bytes(data[:4] + taken.to_bytes(4, "little") + data[8:])

    blobs = [second.pack(pickled, subject) for subject, pickled in states]
    assert second.dictionary_id not in (0, taken)
    assert len(list(folder.glob(f"*{SUFFIX}"))) == 2
    restarted = StateCodec(folder)
    assert [restarted.unpack(blob) for blob in blobs] == [pickled for _, pickled in states]


def test_states_it_cannot_learn_from_are_packed_without_a_dictionary() -> None:
    codec = StateCodec(samples=10)
    blobs = [codec.pack(b"not a pickle %d" % n, f"acme:acct-{n}") for n in range(20)]
    assert codec.dictionary_id == 0
    assert [codec.unpack(blob) for blob in blobs] == [b"not a pickle %d" % n for n in range(20)]


def test_the_dictionary_holds_no_string_fewer_than_five_accounts_hold() -> None:
    codec = StateCodec(samples=200)
    states = [state(n, epoch) for epoch in range(4) for n in range(50)]
    for subject, pickled in states:
        codec.pack(pickled, subject)
    dictionary = codec._dictionaries[codec.dictionary_id].as_bytes()
    for number in range(50):
        assert f"acct-{number:05d}".encode() not in dictionary
        assert f"u-{number}@".encode() not in dictionary
    assert b"tenure_days" in dictionary  # what every account holds is learnt


@given(st.lists(st.tuples(st.text(max_size=12), st.binary(max_size=12)), max_size=12))
def test_scrubbing_removes_exactly_the_rare_strings_contents(
    rows: list[tuple[str, bytes]],
) -> None:
    """Strings held by one subject go, their bytes exactly; one held by every subject
    stays. (Each string is unlike the others: equal objects are pickled once.)"""
    shared = "held-by-all"
    samples = []
    for number in range(COMMON_SUBJECTS):
        value = (shared, [(f"{number}:{index}:{text}", data + bytes([number, index]))
                          for index, (text, data) in enumerate(rows)])
        samples.append((f"s{number}", pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)))
    for (_, pickled), kept in zip(samples, scrubbed(samples), strict=True):
        rare = sum(len(f"0:{index}:{text}".encode("utf-8", "surrogatepass")) + len(data) + 2
                   for index, (text, data) in enumerate(rows))
        assert len(kept) == len(pickled) - rare
        assert shared.encode() in kept


def test_a_restarted_shard_reads_its_accounts_packed_with_the_dictionary(
    tmp_path: Path,
) -> None:
    clock, log = Clock(), ShardLog(tmp_path, timedelta(minutes=10))
    log.codec = StateCodec(tmp_path / DICTIONARY_FOLDER, samples=20)
    account_shard = AccountShard(replace(scored_shard(clock)._config, log=log), clock)
    names = [f"a{i}" for i in range(30)]
    account_shard.process([events(name, 6) for name in names])
    snapshot = account_shard.snapshot()
    assert isinstance(snapshot, LoggedShard)
    assert log.codec.dictionary_id != 0

    restarted = ShardLog(tmp_path, timedelta(minutes=10))  # a new process: from disk
    assert restarted.codec.dictionary_id == log.codec.dictionary_id
    restored = AccountShard(replace(scored_shard(clock)._config, log=restarted), clock,
                            pickle.loads(pickle.dumps(snapshot)))
    out = restored.process([events(name, 6) for name in names])
    assert out.duplicates == 6 * 30  # every account remembers its events


def other_state(number: int) -> tuple[str, bytes]:
    """A state of another shape (the definitions changed, or accounts grew history)."""
    value = {f"window_{day}": [float(number + day), day * 0.5, "active"] for day in range(40)}
    return f"acme:acct-{number:05d}", pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)


def test_a_dictionary_that_no_longer_fits_is_trained_again(tmp_path: Path) -> None:
    folder = tmp_path / DICTIONARY_FOLDER
    codec = StateCodec(folder, samples=20)
    first = [codec.pack(pickled, subject) for subject, pickled in (state(n) for n in range(40))]
    trained = codec.dictionary_id
    later = [other_state(n % 500) for n in range(4_000)]
    blobs = [codec.pack(pickled, subject) for subject, pickled in later]
    assert codec.dictionary_id not in (0, trained)
    assert len(list(folder.glob(f"*{SUFFIX}"))) == 2
    # the new one fits the new states: smaller than with the first
    again = StateCodec(folder)
    assert again.dictionary_id == codec.dictionary_id  # a restart packs with the newest
    assert [again.unpack(blob) for blob in first + blobs] == (
        [pickled for _, pickled in (state(n) for n in range(40))]
        + [pickled for _, pickled in later])
    assert len(blobs[-1]) < len(first_dictionary_pack(folder, trained, later[-1][1]))


def first_dictionary_pack(folder: Path, dictionary_id: int, pickled: bytes) -> bytes:
    data = (folder / f"{dictionary_id:08x}{SUFFIX}").read_bytes()
    return bytes(zstandard.ZstdCompressor(
        level=1, dict_data=zstandard.ZstdCompressionDict(data)).compress(pickled))


def test_a_dictionary_that_fits_is_kept(tmp_path: Path) -> None:
    folder = tmp_path / DICTIONARY_FOLDER
    codec = StateCodec(folder, samples=20)
    for epoch in range(40):
        for number in range(100):
            subject, pickled = other_state(number + epoch)
            codec.pack(pickled, subject)
    assert len(list(folder.glob(f"*{SUFFIX}"))) == 1


def test_no_samples_packs_without_a_dictionary_and_reads_those_named(tmp_path: Path) -> None:
    folder = tmp_path / DICTIONARY_FOLDER
    trained = StateCodec(folder, samples=20)
    blobs = [trained.pack(pickled, subject) for subject, pickled in (state(n) for n in range(40))]
    off = StateCodec(folder, samples=0)
    assert off.dictionary_id == 0
    subject, pickled = state(7)
    assert frame_dictionary(off.pack(pickled, subject)) == 0
    assert off.unpack(blobs[-1]) == state(39)[1]


def test_a_failed_training_counts_and_waits_like_one(caplog: pytest.LogCaptureFixture) -> None:
    codec = StateCodec(samples=20)
    for subject, pickled in (state(n) for n in range(40)):
        codec.pack(pickled, subject)
    trained = codec.dictionary_id
    # states it cannot learn from (not pickles) and the dictionary does not fit
    for n in range(3_000):
        codec.pack(bytes([n % 251]) * 300 + b"%d" % n, f"acme:acct-{n}")
    failures = [r for r in caplog.records if "no new dictionary" in r.getMessage()]
    # one attempt per 10 x 20 states after the last, at most 8 in all: not one per 20
    assert 1 <= len(failures) <= 8
    assert codec.dictionary_id == trained  # packs as before
