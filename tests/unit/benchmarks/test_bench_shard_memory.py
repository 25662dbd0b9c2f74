"""The shard memory diagnostic runs end to end and reads pymalloc's figures."""

from __future__ import annotations

import pytest

from benchmarks.bench_shard_memory import main, pymalloc_figures


def test_pymalloc_figures_are_read() -> None:
    figures = pymalloc_figures()
    assert figures["arenas"] > 0 and figures["allocated"] > 0


def test_a_small_run_prints_each_epoch_and_the_split(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--accounts", "300", "--epochs", "3", "--shards", "2"]) == 0
    out = capsys.readouterr().out
    assert [line.split(":")[0] for line in out.splitlines() if line.startswith("epoch")] == [
        "epoch  0", "epoch  1", "epoch  2"]
    assert "freed but held" in out
    assert "glibc: heap" in out  # this machine's C library is glibc
