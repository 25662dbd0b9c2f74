"""The printed table of the pipeline benchmark, given a report."""

from __future__ import annotations

from benchmarks.harness.figures import Figures
from benchmarks.harness.report import table
from benchmarks.harness.targets import targets


def _run(sustained: float, wall: float, **overrides: object) -> Figures:
    run: Figures = {
        "events_per_s_sustained": sustained, "events_per_s_wall": wall, "wall_s": 10.0,
        "busy_s": 8.0, "messages": 1_000, "messages_match_produced": True,
        "pg_rows": {"risk_scores": 50, "decisions": 5, "alerts": 20},
        "score_rows_per_1000_events": 50.0, "decision_rows_per_1000_events": 5.0,
        "alert_rows_per_1000_events": 20.0, "processes": 2, "peak_rss_mib": {},
        "peak_rss_sum_mib": 0.0, "cpu_share_busy": {},
    }
    run.update(overrides)
    return run


def _report(**runs: Figures) -> Figures:
    full = _run(60_000.0, 40_000.0)
    report: Figures = {
        "environment": {"cpu_count": 2, "cpus_usable": 2, "python": "3.12", "bytewax": "0.21.1"},
        "workload": {"produced": 1_000, "valid": 980, "duplicate": 10, "malformed": 10,
                     "days": 3, "simulate_s": 1.0, "produce_s": 1.0},
        "arguments": {"accounts": 100, "seed": 7, "partitions": 4, "processes": 2,
                      "repeat": 1, "env": []},
        "floor": {"processes": 2, "events_per_s_sustained": 200_000.0,
                  "events_per_s_wall": 100_000.0},
        "full": full,
        "redis": {"bytes_per_account": 500.0, "sampled": 10, "hashes": 100},
        **runs,
    }
    report["targets"] = targets(full, report["floor"], None, rate=10_000,
                                full_1=runs.get("full_1"), scoring_off=runs.get("scoring_off"),
                                replay=runs.get("replay"))
    return report


def _value(rows: list[tuple[str, str]], label: str) -> str:
    (value,) = [value for row_label, value in rows if row_label.strip() == label]
    return value


def test_the_one_process_and_scoring_off_runs_are_shown_beside_the_full_run() -> None:
    rows = table(_report(
        full_1=_run(40_000.0, 20_000.0, processes=1, messages_match_produced=False),
        scoring_off=_run(120_000.0, 80_000.0, pg_rows={"risk_scores": 0, "decisions": 0,
                                                       "alerts": 20},
                         score_rows_per_1000_events=0.0, decision_rows_per_1000_events=0.0),
    ))
    assert _value(rows, "full, 1 process: sustained / wall") == "40,000 / 20,000"
    assert _value(rows, "full, scoring and decisions off, 2 process(es): sustained / wall") \
        == "120,000 / 80,000"
    assert _value(rows, "full, 2 process(es) / 1 process: sustained / wall") == "1.50 / 2.00"
    assert _value(rows, "full / scoring and decisions off: sustained / wall") == "50% / 50%"
    assert _value(rows, "drained: messages == produced") == (
        "full, 2 process(es) yes (1,000); full, 1 process NO (1,000); "
        "full, scoring and decisions off, 2 process(es) yes (1,000)")
    assert _value(rows, "full, scoring and decisions off, 2 process(es)") \
        == "0 / 0 / 20 (0.0 / 0.0 / 20.0)"
    assert _value(rows, "full pipeline, 2 processes / 1 process >= 1.7 (sustained)") \
        == "1.50: NOT met"
    assert _value(rows, ">= 100,000 events/s, scoring and decisions off (sustained)") \
        == "120,000/s: met"
    assert _value(rows, "score rows per 1,000 events <= 70, full pipeline") \
        == "50.0 rows/1000 events: met"


def test_a_run_that_counted_otherwise_is_shown_with_both_counts() -> None:
    rows = table(_report(
        full_1=_run(40_000.0, 20_000.0, processes=1),
        scoring_off=_run(900_000.0, 800_000.0, dead_letters=1_000),
    ))
    assert _value(rows, "same counts as full: messages / valid / duplicates / DLQ") == (
        "full, 1 process yes; full, scoring and decisions off, 2 process(es) NO "
        "(1,000 / - / - / 1,000; full 1,000 / - / - / -)")


def test_without_the_extra_runs_their_rows_are_left_out() -> None:
    labels = [label.strip() for label, _ in table(_report())]
    assert not [label for label in labels if "1 process" in label or "scoring" in label]
    assert "full, 2 process(es)" in labels  # its rows written still are


def test_the_wall_time_of_every_phase_is_printed_with_the_total() -> None:
    report = _report()
    report["wall_times"] = {"phases_s": {"floor": 12.0, "full_1": 30.5, "other": 4.0},
                            "total_s": 46.5}
    rows = table(report)
    assert _value(rows, "wall time per phase (summed over repeats)") == "total 46.5 s"
    assert _value(rows, "floor, 2 process(es) and 1 process") == "12.0 s"
    assert _value(rows, "full, 1 process") == "30.5 s"
    assert _value(rows, "other") == "4.0 s"


def test_the_replay_is_shown_with_its_time_outputs_and_targets() -> None:
    rows = table(_report(replay={
        "accounts": 5_000, "days": 182, "start": "2026-05-01", "processes": 2,
        "simulate_s": 50.0, "messages": 6_160_432, "events": 6_148_111,
        "outputs": {"scores": 259_346, "decisions": 30_000, "alerts": 40_000},
        "wall_s": 80.4, "events_per_s_wall": 76_622.3, "score_rows_per_1000_events": 42.18,
    }))
    assert _value(rows, "wall / messages per s") == "80.4 s (1 min 20 s) / 76,622"
    assert _value(rows, "scores / decisions / alerts (scores per 1,000 events)") \
        == "259,346 / 30,000 / 40,000 (42.2)"
    assert _value(rows, "churnwatch replay <= 120 s (182 days, 5,000 accounts, "
                        "2 process(es))") == "80.4 s (1 min 20 s): met"
    assert _value(rows, "score rows per 1,000 events <= 70, the replay (182 days, "
                        "5,000 accounts)") == "42.2 rows/1000 events: met"
