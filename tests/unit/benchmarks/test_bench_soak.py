"""The command line of ``python -m benchmarks.bench_soak``."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.bench_soak import options_from, parse_args
from benchmarks.harness.soak_runs import DEFAULT_OUT, SoakOptions


def test_defaults_are_a_year_with_a_control() -> None:
    options = options_from(parse_args([]))
    assert options == SoakOptions()
    assert (options.days, options.control, options.tracemalloc) == (365, True, False)
    assert options.out == DEFAULT_OUT
    assert DEFAULT_OUT.parts[-3:] == ("benchmarks", "results", "soak.json")


def test_a_longer_run_and_overrides() -> None:
    options = options_from(parse_args([
        "--accounts", "20000", "--days", "730", "--mean-lifetime-days", "60",
        "--skip-control", "--tracemalloc", "--env", "CHURNWATCH_SHARDS=32", "--out", "/tmp/s.json",
    ]))
    assert (options.accounts, options.days, options.mean_lifetime_days) == (20_000, 730, 60.0)
    assert not options.control
    assert options.tracemalloc
    assert options.env == ("CHURNWATCH_SHARDS=32",)
    assert options.out == Path("/tmp/s.json")


def test_the_worker_mode_takes_its_spec() -> None:
    assert parse_args(["--soak-worker", "/tmp/spec.json"]).soak_worker == Path("/tmp/spec.json")


@pytest.mark.parametrize("argv", [
    ["--accounts", "0"],
    ["--days", "0"],
    ["--mean-lifetime-days", "0"],
    ["--snapshot-interval", "-1"],
    ["--env", "SHARDS=32"],
])
def test_nonsense_is_refused(argv: list[str]) -> None:
    with pytest.raises(SystemExit):
        parse_args(argv)
