"""The recovery-state benchmark runs end to end and prints each of its figures."""

from __future__ import annotations

import pytest

from benchmarks import bench_recovery_state
from benchmarks.bench_recovery_state import main


def test_a_small_run_prints_the_restore_and_the_trackers(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    # the process's collector and allocator as the test run has them (a run tunes both)
    monkeypatch.setattr(bench_recovery_state, "tune_process", lambda: None)
    assert main(["--accounts", "400", "--shards", "4", "--partitions", "2",
                 "--changed", "40"]) == 0
    out = capsys.readouterr().out
    assert "shards: 400 accounts in 4 shards" in out
    assert "restore:" in out and "reading the shard log's files" in out
    assert "absence trackers: 400 accounts over 2 partitions" in out
    assert "an epoch changing 40: written whole" in out
    assert "restart: from the whole snapshots" in out
