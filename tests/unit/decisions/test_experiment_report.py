"""Experiment report figures: Wilson intervals, Newcombe differences, arms and formats,
against published and hand-computed values."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest

from decisions.experiment_report import (
    ArmCounts,
    Interval,
    build_report,
    difference,
    format_text,
    wilson,
)

UNTIL = datetime(2026, 12, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("successes", "trials", "low", "high"),
    [
        # Newcombe (1998), table I, and the usual textbook values
        (81, 263, 0.2553, 0.3662),
        (15, 148, 0.0624, 0.1605),
        (0, 20, 0.0, 0.1611),
        (1, 29, 0.0061, 0.1718),
        (3, 10, 0.1078, 0.6032),
        (10, 10, 0.7225, 1.0),
    ],
    ids=["81-of-263", "15-of-148", "0-of-20", "1-of-29", "3-of-10", "10-of-10"],
)
def test_wilson_matches_published_intervals(
    successes: int, trials: int, low: float, high: float
) -> None:
    interval = wilson(successes, trials)
    assert interval is not None
    assert interval.value == pytest.approx(successes / trials)
    assert interval.low == pytest.approx(low, abs=5e-5)
    assert interval.high == pytest.approx(high, abs=5e-5)


def test_wilson_by_hand() -> None:
    # p = 0.3, n = 10, z = 1.959964: centre (p + z²/2n) / (1 + z²/n), half-width
    # z·sqrt(p(1-p)/n + z²/4n²) / (1 + z²/n)
    z = 1.959963984540054
    centre = (0.3 + z * z / 20) / (1 + z * z / 10)
    half = z * math.sqrt(0.3 * 0.7 / 10 + z * z / 400) / (1 + z * z / 10)
    assert wilson(3, 10) == Interval(0.3, pytest.approx(centre - half),  # type: ignore[arg-type]
                                     pytest.approx(centre + half))  # type: ignore[arg-type]


def test_wilson_refuses_impossible_counts_and_has_no_rate_without_trials() -> None:
    assert wilson(0, 0) is None
    with pytest.raises(ValueError, match="successes"):
        wilson(3, 2)
    with pytest.raises(ValueError, match="successes"):
        wilson(-1, 2)


def test_newcombe_difference_matches_the_paper() -> None:
    # Newcombe (1998), example (a): 56/70 against 48/80, method 10: 0.0524 to 0.3339.
    d = difference(wilson(56, 70), wilson(48, 80))
    assert d is not None
    assert d.value == pytest.approx(0.2)
    assert (d.low, d.high) == (pytest.approx(0.0524, abs=5e-5), pytest.approx(0.3339, abs=5e-5))
    assert difference(wilson(1, 2), None) is None


def test_report_puts_control_first_and_compares_with_it() -> None:
    report = build_report(
        "offer",
        [ArmCounts("discount", 10, 3, 2, 1), ArmCounts("holdout", 10, 0, 0, 4),
         ArmCounts("coaching", 0, 0, 0, 0)],
        until=UNTIL,
        tenant_id="acme",
    )
    assert report.control == "holdout"
    assert [arm.counts.variant for arm in report.arms] == ["holdout", "coaching", "discount"]
    holdout, coaching, discount = report.arms
    assert holdout.is_control and holdout.save_rate_vs_control is None
    assert coaching.save_rate is None and coaching.churn_rate_vs_control is None  # no one
    assert discount.churn_rate == wilson(1, 10)
    assert discount.churn_rate_vs_control == difference(wilson(1, 10), wilson(4, 10))
    assert discount.churn_rate_vs_control is not None
    assert discount.churn_rate_vs_control.value == pytest.approx(-0.3)
    document = report.to_document()
    assert document["until"] == "2026-12-01T00:00:00Z" and document["control"] == "holdout"
    assert document["arms"][2]["save_rate"]["value"] == pytest.approx(0.3)
    text = format_text(report)
    assert "holdout (control)" in text and "discount" in text
    assert "30.0% [10.8, 60.3]" in text  # discount's save rate


def test_a_report_without_the_control_arm_compares_nothing() -> None:
    report = build_report("offer", [ArmCounts("a", 5, 1, 1, 1)], until=UNTIL,
                          control="holdout")
    assert report.control is None
    assert report.arms[0].save_rate_vs_control is None
    assert "(none assigned)" in format_text(report)
    empty = build_report("offer", [], until=UNTIL)
    assert empty.arms == () and "no account assigned" in format_text(empty)
