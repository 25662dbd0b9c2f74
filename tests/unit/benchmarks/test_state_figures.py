"""What the state benchmark concludes from RSS samples, its targets and its table."""

from __future__ import annotations

import math

import pytest

from benchmarks.harness import state_figures as sf
from benchmarks.harness.figures import Figures
from benchmarks.harness.prometheus import GC_STAGE
from benchmarks.harness.state_figures import (
    TARGET_RESTART_S,
    TARGET_RSS_PER_ACCOUNT_BYTES,
    compact_timeline,
    first_at_least,
    peak,
    peak_by_role,
    per_account,
    rss_points,
    settled_at,
    state_table,
    state_targets,
    steady_since,
)

MIB = 2**20


def _sample(t: float, **rss: int) -> Figures:
    return {"t": t, "rss": {role.replace("_", " "): value for role, value in rss.items()}}


def test_rss_is_summed_over_the_processes_of_a_sample() -> None:
    samples = [_sample(0.0), _sample(1.0, process_0=100, process_1=50),
               _sample(2.0, process_0=120, process_1=20)]
    assert rss_points(samples) == [(1.0, 150), (2.0, 140)]
    assert rss_points(samples, offset_s=0.5) == [(1.5, 150), (2.5, 140)]
    assert peak(rss_points(samples)) == 150
    assert peak([]) is None
    assert peak_by_role(samples) == {"process 0": 120, "process 1": 50}


@pytest.mark.parametrize(("value", "accounts", "expected"), [
    (2048.0, 1, 2048.0),
    (1_000_000.0, 1_000_000, 1.0),
    (None, 10, None),
    (10.0, 0, None),
])
def test_per_account(value: float | None, accounts: int, expected: float | None) -> None:
    assert per_account(value, accounts) == expected


def test_rss_recovered_is_the_first_sample_at_the_threshold() -> None:
    points = [(0.0, 10), (1.0, 50), (2.0, 90), (3.0, 80)]
    assert first_at_least(points, 90) == 2.0
    assert first_at_least(points, 91) is None


def test_steady_needs_a_whole_window_of_small_moves() -> None:
    rising = [(float(t), 100 + 10 * t) for t in range(10)]
    flat = [*rising, *((10.0 + t, 200) for t in range(6))]
    assert not steady_since(rising, 5.0)
    assert steady_since(flat, 5.0)
    assert not steady_since(flat[-3:], 5.0)  # samples cover less than the window


def test_settled_is_when_the_rss_last_came_within_reach_of_its_final_value() -> None:
    points = [(0.0, 100), (1.0, 200), (2.0, 300), (3.0, 150), (4.0, 301), (5.0, 300)]
    assert settled_at(points) == 4.0
    assert settled_at([]) is None


def test_compact_timeline_keeps_the_last_point_of_each_step() -> None:
    points = [(0.1, MIB), (0.6, 2 * MIB), (1.2, 3 * MIB)]
    assert compact_timeline(points) == [{"t": 0.6, "rss_mib": 2.0}, {"t": 1.2, "rss_mib": 3.0}]


def test_targets_judge_rss_per_account_and_the_first_output_after_restart() -> None:
    met, missed = state_targets(TARGET_RSS_PER_ACCOUNT_BYTES, TARGET_RESTART_S + 0.1)
    assert (met["met"], missed["met"]) == (True, False)
    assert [row["met"] for row in state_targets(None, None)] == [None, None]


def _report() -> Figures:
    return {
        "environment": {"cpu_count": 2, "cpus_usable": 2, "python": "3.11.7",
                        "bytewax": "0.21.1"},
        "arguments": {"accounts": 1000, "events_per_account": 2, "partitions": 8,
                      "processes": 1, "env": []},
        "workload": {"produced": 2000, "produce_s": 1.0, "produce_rate": 2000.0,
                     "snapshot_interval_s": 10.0},
        "baseline": {"peak_rss_bytes": 100 * MIB},
        "load": {"peak_rss_bytes": 110 * MIB, "settled_rss_bytes": 109 * MIB,
                 "rss_per_account_bytes": 10 * MIB / 1000,
                 "settled_rss_per_account_bytes": 9 * MIB / 1000, "read_s": 1.5,
                 "snapshotted_s": 2.0,
                 "messages_per_s": 1000.0},
        "redis": {"used_memory_growth": MIB, "used_memory_per_account": 1048.6,
                  "hashes": 1000, "bytes_per_account": 536.0},
        "recovery": {"size": {"allocated_bytes": 4 * MIB},
                     "allocated_bytes_per_account": 4194.3, "live_bytes_per_account": 900.0,
                     "snapshots": {"live_bytes": 900_000, "kept_bytes": 1_000_000,
                                   "oldest_snap_epoch": 1, "newest_snap_epoch": 3,
                                   "live_by_step": {"shard": {"keys": 64, "bytes": 900_000}}}},
        "restart": {"ready_s": 3.0, "kafka_alert_s": 2.5, "kafka_alert_timestamp_s": 2.4,
                    "postgres_alert_s": 2.6, "peak_rss_bytes": 120 * MIB,
                    "rss_before_kill_bytes": 110 * MIB, "rss_recovered_s": 2.0,
                    "rss_settled_s": 2.4, "rss_at_end_bytes": 108 * MIB, "messages_read": 1,
                    "metrics_s": 0.9},
        "targets": state_targets(10 * MIB / 1000, 2.5),
    }


def test_the_table_shows_every_figure_and_the_verdicts() -> None:
    rows = dict(state_table(_report()))
    assert rows["  per account: (peak - baseline) / accounts"] == "10,486 B"
    assert rows["  tier-1 alert on Kafka (first output; by its timestamp)"] == "2.5 s (2.4 s)"
    assert rows["    shard"] == "64 keys, 0.9 MiB"
    verdicts = [value for label, value in rows.items() if label.startswith("  <=")
                or label.startswith("  restart")]
    assert verdicts == ["10,486 B: NOT met", "2.5 s: met"]


def test_the_table_copes_with_a_restart_that_saw_nothing() -> None:
    report = _report()
    report["restart"] = {"rss_before_kill_bytes": None}
    report["recovery"].pop("snapshots")
    report["recovery"].pop("live_bytes_per_account")
    rows = dict(state_table(report))
    assert rows["  tier-1 alert on Kafka (first output; by its timestamp)"] == "- (-)"


def test_the_table_names_the_code_and_warns_when_it_changed_during_the_run() -> None:
    report = _report()
    start = {"commit": "0123456789abcdef", "modified": ["dataflows/shard.py"], "diff_sha1": "a"}
    report["code"] = {"at_start": start, "at_end": {**start, "diff_sha1": "b"},
                      "unchanged": False}
    rows = dict(state_table(report))
    assert rows["  code (git)"] == "0123456789 + 1 modified file(s): dataflows/shard.py"
    assert "  WARNING: the code changed during the run" in rows
    report["code"]["unchanged"] = True
    assert "  WARNING: the code changed during the run" not in dict(state_table(report))


def test_the_collector_pauses_are_read_from_the_last_sample() -> None:
    samples = [
        {"stages": {GC_STAGE: 0.1}, "gc_pauses": [(0.05, 1.0), (math.inf, 1.0)]},
        {"stages": {GC_STAGE: 1.5, "parse-events": 9.0},
         "gc_pauses": [(0.05, 60.0), (0.1, 67.0), (math.inf, 67.0)]},
    ]
    assert sf.collector_pauses(samples) == {"gc_pause_s": 1.5, "gc_pauses": 67.0,
                                            "gc_longest_s": 0.1}
    assert sf.collector_pauses([]) == {"gc_pause_s": None, "gc_pauses": None,
                                       "gc_longest_s": None}
