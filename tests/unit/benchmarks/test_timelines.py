"""Rates and shares the benchmark harness derives from its samples, and the target checks."""

from __future__ import annotations

import pytest

from benchmarks.harness.figures import Figures
from benchmarks.harness.targets import targets
from benchmarks.harness.timelines import sustained_rate, throughput_timeline, utilisation


def _samples(points: list[tuple[float, float]]) -> list[Figures]:
    return [{"t": t, "messages": m, "scraped": 1} for t, m in points]


def test_sustained_rate_runs_from_first_to_last_progress() -> None:
    samples = _samples([(0, 0), (1, 0), (2, 100), (3, 300), (4, 500), (5, 500)])
    # 400 messages between t=2 (first > 0) and t=4 (first >= the final 500)
    assert sustained_rate(samples, 500, end_t=6.0) == (200.0, 2, 4, 2)


def test_sustained_rate_ends_at_exit_when_the_last_count_was_not_scraped() -> None:
    samples = _samples([(0, 0), (2, 100), (3, 300)])
    rate, _, t_last, busy = sustained_rate(samples, 600, end_t=5.0)
    # (600 - 100) / (5 - 2)
    assert rate == pytest.approx(500 / 3)
    assert (t_last, busy) == (5.0, 3)


def test_a_run_seen_whole_by_one_sample_has_no_sustained_rate() -> None:
    samples = _samples([(0, 0), (1, 0), (2, 600)])
    assert sustained_rate(samples, 600, end_t=2.5) == (None, 2, 2, 0)


def test_sustained_rate_without_progress_is_zero() -> None:
    assert sustained_rate(_samples([(0, 0), (1, 0)]), 0, end_t=7.0) == (0.0, 0.0, 7.0, 0.0)


def test_throughput_timeline_is_the_rate_since_the_previous_sample() -> None:
    timeline = throughput_timeline(_samples([(0, 0), (0.5, 50), (0.5, 60), (2.5, 260)]))
    # the pair with no time between them is skipped
    assert [row["events_per_s"] for row in timeline] == [100.0, 100.0]
    assert [row["t"] for row in timeline] == [0.5, 2.5]


def test_utilisation_is_cpu_seconds_per_second_between_two_times() -> None:
    samples = [
        {"t": 0.0, "cpu": {"process 0": 1.0}, "servers_cpu": {"redis": 0.0}, "bench_cpu": 0.0},
        {"t": 1.0, "cpu": {"process 0": 1.5}, "servers_cpu": {"redis": 0.1}, "bench_cpu": 0.1},
        {"t": 3.0, "cpu": {"process 0": 2.5, "process 1": 9.0}, "servers_cpu": {"redis": 0.2},
         "bench_cpu": 0.2},
    ]
    shares = utilisation(samples, 1.0, 3.0)
    # process 1 appeared after t=1: no share for it
    assert shares == pytest.approx({"process 0": 0.5, "server redis": 0.05,
                                    "benchmark (sampler)": 0.05})
    assert utilisation(samples, 1.0, 1.0) == {}


def test_targets_prefer_the_exact_share_under_250_ms_to_the_p99() -> None:
    latency = {"tiers": {"1": {"p99_s": 0.3, "share_le_250ms": 0.995}}}
    rows = targets({"events_per_s_sustained": 60_000.0}, {"events_per_s_sustained": 200_000.0},
                   latency, rate=10_000)
    assert [row["met"] for row in rows] == [True, True, False]
    assert rows[2]["value"] == pytest.approx(0.3)


def test_targets_name_a_rate_other_than_the_targets_own() -> None:
    latency = {"tiers": {"1": {"p99_s": 0.2, "share_le_250ms": None}}}
    rows = targets({"events_per_s_sustained": None}, {}, latency, rate=2_000)
    assert rows[1]["target"].endswith("(measured at 2,000/s)")
    assert [row["met"] for row in rows] == [False, True, False]


def test_targets_without_tier_1_alerts_cannot_say() -> None:
    rows = targets({}, {}, {"tiers": {}}, rate=10_000)
    assert rows[1]["met"] is None
