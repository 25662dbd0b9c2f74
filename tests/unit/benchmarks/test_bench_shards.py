"""The shards benchmark runs end to end, prints each stage, and the same outputs per pass."""

from __future__ import annotations

import pytest

from benchmarks import bench_shards
from benchmarks.bench_shards import main


def test_a_small_run_prints_every_stage_and_one_digest(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    # the process's collector and allocator as the test run has them (a run tunes both)
    monkeypatch.setattr(bench_shards, "tune_process", lambda: None)
    assert main(["--accounts", "120", "--days", "3", "--repeat", "2"]) == 0
    out = capsys.readouterr().out
    for stage in ("process", "flush", "snapshot", "total"):
        assert f"  {stage} " in out
    outputs = [line for line in out.splitlines() if line.startswith("outputs: ")]
    assert len(outputs) == 1, out  # both passes produced the same outputs and counts
    assert "scores sha256 " in outputs[0] and "; outputs sha256 " in outputs[0]
    assert "account rows 0" not in outputs[0] and "scores 0" not in outputs[0]
