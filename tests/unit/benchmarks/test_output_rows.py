"""Rows a run wrote, per 1,000 valid events."""

from __future__ import annotations

import pytest

from benchmarks.harness.output_rows import rows_per_thousand_events


def test_rows_are_divided_by_the_events_and_scaled_to_1000() -> None:
    figures = rows_per_thousand_events({"risk_scores": 35, "decisions": 4, "alerts": 0}, 500)
    assert figures == pytest.approx({"score_rows_per_1000_events": 70.0,
                                     "decision_rows_per_1000_events": 8.0,
                                     "alert_rows_per_1000_events": 0.0})


def test_an_uncounted_table_or_no_events_cannot_say() -> None:
    figures = rows_per_thousand_events({"risk_scores": None, "decisions": 3}, 1000)
    assert figures == {"score_rows_per_1000_events": None,
                       "decision_rows_per_1000_events": 3.0,
                       "alert_rows_per_1000_events": None}
    assert set(rows_per_thousand_events({"risk_scores": 5}, 0).values()) == {None}
