"""The command line of ``python -m benchmarks.bench_state``."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.bench_state import parse_args
from benchmarks.harness.state_runs import DEFAULT_OUT


def test_defaults_are_a_million_accounts_with_two_events_each_in_one_process() -> None:
    options = parse_args([])
    assert (options.accounts, options.events_per_account) == (1_000_000, 2)
    assert (options.partitions, options.processes) == (8, 1)
    assert options.out == DEFAULT_OUT
    assert DEFAULT_OUT.parts[-3:] == ("benchmarks", "results", "state.json")
    assert options.env == ()


def test_a_smoke_size_and_overrides() -> None:
    options = parse_args(["--accounts", "20000", "--env", "CHURNWATCH_SHARDS=32",
                          "--out", "/tmp/s.json"])
    assert options.accounts == 20_000
    assert options.env == ("CHURNWATCH_SHARDS=32",)
    assert options.out == Path("/tmp/s.json")


@pytest.mark.parametrize("argv", [
    ["--accounts", "0"],
    ["--events-per-account", "0"],
    ["--restart-timeout", "0"],
    ["--env", "SHARDS=32"],
])
def test_nonsense_is_refused(argv: list[str]) -> None:
    with pytest.raises(SystemExit):
        parse_args(argv)
