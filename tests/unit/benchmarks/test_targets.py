"""The target rows of the pipeline benchmark, given its figures."""

from __future__ import annotations

import pytest

from benchmarks.harness.figures import Figures
from benchmarks.harness.targets import targets

FLOOR: Figures = {"events_per_s_sustained": 100_000.0}


def _full(**overrides: object) -> Figures:
    full: Figures = {"processes": 2, "events_per_s_sustained": 60_000.0,
                     "score_rows_per_1000_events": 40.0}
    full.update(overrides)
    return full


def _row(rows: list[Figures], starts: str) -> Figures:
    (row,) = [row for row in rows if row["target"].startswith(starts)]
    return row


def test_every_figure_of_the_table_has_a_row_in_its_order() -> None:
    latency = {"tiers": {"1": {"p99_s": 0.2, "share_le_250ms": 0.995}}}
    rows = targets(_full(), FLOOR, latency, rate=10_000,
                   reference={"events_per_s_sustained": 100_000.0},
                   full_1={"events_per_s_sustained": 30_000.0},
                   scoring_off={"events_per_s_sustained": 120_000.0})
    assert [(row["target"], row["unit"]) for row in rows] == [
        (">= 50,000 events/s, full pipeline (sustained)", "events/s"),
        (">= 100,000 events/s, scoring and decisions off (sustained)", "events/s"),
        ("full pipeline, 2 processes / 1 process >= 1.7 (sustained)", "ratio"),
        ("score rows per 1,000 events <= 70, full pipeline", "rows/1000 events"),
        ("tier-1 p99 <= 250 ms at 10,000 ev/s", "s"),
        ("full >= 50% of floor (sustained)", "share"),
        ("full pipeline / hand-written reference >= 50% (sustained)", "share"),
    ]
    assert [row["met"] for row in rows] == [True] * len(rows)


@pytest.mark.parametrize(("off_rate", "met"), [
    (99_999.0, False),
    (100_000.0, True),
    (None, False),
], ids=["just-below", "at-target", "unknown"])
def test_the_scoring_off_row_needs_100k_events_per_s(off_rate: float | None, met: bool) -> None:
    rows = targets(_full(), FLOOR, None, rate=10_000,
                   scoring_off={"events_per_s_sustained": off_rate})
    row = _row(rows, ">= 100,000 events/s")
    assert (row["value"], row["met"]) == (off_rate, met)


@pytest.mark.parametrize(("one_process", "scaling", "met"), [
    (36_000.0, 60_000 / 36_000, False),
    (35_000.0, 60_000 / 35_000, True),
    (0.0, None, False),
], ids=["1.67x", "1.71x", "one-process-rate-unknown"])
def test_the_scaling_row_divides_p_processes_by_one(one_process: float, scaling: float | None,
                                                    met: bool) -> None:
    rows = targets(_full(), FLOOR, None, rate=10_000,
                   full_1={"events_per_s_sustained": one_process})
    row = _row(rows, "full pipeline, 2 processes / 1 process")
    assert row["value"] == (pytest.approx(scaling) if scaling is not None else None)
    assert row["met"] is met


def test_the_scaling_row_says_when_p_is_not_the_targets_two() -> None:
    rows = targets(_full(processes=4), FLOOR, None, rate=10_000,
                   full_1={"events_per_s_sustained": 20_000.0})
    row = _row(rows, "full pipeline, 4 processes / 1 process")
    assert row["target"].endswith("(target set for 2 processes)")
    assert row["value"] == pytest.approx(3.0)


@pytest.mark.parametrize(("per_1000", "met"), [
    (70.0, True),
    (70.1, False),
    (None, None),
], ids=["at-target", "above", "not-counted"])
def test_the_score_rows_row_is_at_most_70_per_1000_events(per_1000: float | None,
                                                          met: bool | None) -> None:
    rows = targets(_full(score_rows_per_1000_events=per_1000), FLOOR, None, rate=10_000)
    row = _row(rows, "score rows per 1,000 events")
    assert (row["value"], row["met"]) == (per_1000, met)


def test_skipped_runs_have_no_rows() -> None:
    full = _full()
    del full["score_rows_per_1000_events"]
    rows = targets(full, FLOOR, None, rate=10_000)
    assert [row["target"] for row in rows] == [
        ">= 50,000 events/s, full pipeline (sustained)",
        "full >= 50% of floor (sustained)",
    ]


@pytest.mark.parametrize(("run", "rate"), [("scoring_off", 150_000.0), ("full_1", 30_000.0)])
def test_a_run_that_counted_other_events_than_the_full_run_gets_no_verdict(
        run: str, rate: float) -> None:
    counts = {"messages": 1_000, "events": 980, "duplicates": 10, "dead_letters": 10}
    full = _full(**counts)
    other = {**counts, "events_per_s_sustained": rate}
    agreeing = targets(full, FLOOR, None, rate=10_000, **{run: other})
    assert agreeing[1]["met"] is True
    # everything dead-lettered: fast, and meaningless
    other.update(events=0, dead_letters=1_000)
    rows = targets(full, FLOOR, None, rate=10_000, **{run: other})
    assert rows[1]["target"].endswith("(its counts differ from the full run's: no verdict)")
    assert rows[1]["met"] is None
    assert rows[1]["value"] == agreeing[1]["value"]


def _replay(**overrides: object) -> Figures:
    replay: Figures = {"days": 182, "accounts": 5_000, "processes": 2, "wall_s": 80.0,
                       "score_rows_per_1000_events": 42.2}
    replay.update(overrides)
    return replay


@pytest.mark.parametrize(("wall", "per_1000", "met"), [
    (120.0, 70.0, [True, True]),
    (120.5, 70.1, [False, False]),
], ids=["at-targets", "just-over"])
def test_the_replay_rows_judge_its_wall_time_and_its_own_score_rows(
    wall: float, per_1000: float, met: list[bool]
) -> None:
    rows = targets(_full(score_rows_per_1000_events=139.4), FLOOR, None, rate=10_000,
                   replay=_replay(wall_s=wall, score_rows_per_1000_events=per_1000))
    replay = [row for row in rows if "the replay" in row["target"]
              or row["target"].startswith("churnwatch replay")]
    assert [(row["value"], row["met"]) for row in replay] == list(zip((wall, per_1000), met,
                                                                      strict=True))
    # the 7-day topic's own row stays, judged on its own figure
    assert _row(rows, "score rows per 1,000 events <= 70, full pipeline")["met"] is False


def test_the_replay_rows_of_another_history_say_so_and_judge_nothing() -> None:
    rows = targets(_full(), FLOOR, None, rate=10_000, replay=_replay(days=30, accounts=1_000))
    row = _row(rows, "churnwatch replay")
    assert row["target"] == ("churnwatch replay <= 120 s (30 days, 1,000 accounts; targets set "
                             "for 182 days, 5,000 accounts, 2 process(es))")
    assert [r["met"] for r in rows if "30 days" in r["target"]] == [None, None]
