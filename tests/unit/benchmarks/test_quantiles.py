"""The benchmark harness's quantile maths, against values worked out by hand."""

from __future__ import annotations

import math

import pytest

from benchmarks.harness import quantiles

INF = math.inf

# 10 observations <= 0.1 s, 20 more in (0.1, 0.5], 10 more in (0.5, 1.0], none above.
HISTOGRAM = [(0.1, 10.0), (0.5, 30.0), (1.0, 40.0), (INF, 40.0)]


def test_median_interpolates_inside_its_bucket() -> None:
    # rank 0.5 * 40 = 20: 10 of the bucket's 20 observations, halfway from 0.1 to 0.5
    assert quantiles.bucket_quantile(0.5, HISTOGRAM) == pytest.approx(0.3)


def test_quantile_in_the_first_bucket_starts_from_zero() -> None:
    # rank 0.1 * 40 = 4 of the first bucket's 10: 4/10 of the way from 0 to 0.1
    assert quantiles.bucket_quantile(0.1, HISTOGRAM) == pytest.approx(0.04)


def test_quantile_on_a_bucket_boundary_is_that_bound() -> None:
    # rank 0.25 * 40 = 10: exactly the first bucket's count
    assert quantiles.bucket_quantile(0.25, HISTOGRAM) == pytest.approx(0.1)
    # rank 40: the last finite bucket's upper bound
    assert quantiles.bucket_quantile(1.0, HISTOGRAM) == pytest.approx(1.0)


def test_quantile_in_the_inf_bucket_is_the_last_finite_bound() -> None:
    # 20 of 40 observations are above 0.25 s: p99 (rank 39.6) is somewhere above 0.25,
    # and 0.25 is all the histogram can say.
    buckets = [(0.1, 10.0), (0.25, 20.0), (INF, 40.0)]
    assert quantiles.bucket_quantile(0.99, buckets) == 0.25


def test_quantile_of_an_empty_histogram_is_unknown() -> None:
    assert quantiles.bucket_quantile(0.5, []) is None
    assert quantiles.bucket_quantile(0.5, [(0.1, 0.0), (INF, 0.0)]) is None


def test_quantile_zero_in_an_empty_first_bucket_is_its_bound() -> None:
    # rank 0 is reached by the first bucket, which holds nothing to interpolate in
    assert quantiles.bucket_quantile(0.0, [(0.1, 0.0), (0.2, 5.0), (INF, 5.0)]) == 0.1


def test_share_at_most_a_bucket_bound() -> None:
    buckets = [(0.1, 10.0), (0.25, 30.0), (INF, 40.0)]
    assert quantiles.share_at_most(0.25, buckets) == 0.75
    assert quantiles.share_at_most(0.1, buckets) == 0.25


def test_share_at_most_a_value_between_bounds_is_unknown() -> None:
    assert quantiles.share_at_most(0.2, [(0.1, 10.0), (0.25, 30.0), (INF, 40.0)]) is None


def test_share_of_an_empty_histogram_is_unknown() -> None:
    assert quantiles.share_at_most(0.25, []) is None
    assert quantiles.share_at_most(0.25, [(0.25, 0.0), (INF, 0.0)]) is None


def test_the_largest_observation_is_at_most_the_first_bound_holding_them_all() -> None:
    assert quantiles.largest_at_most([(0.01, 3.0), (0.05, 9.0), (0.1, 9.0), (math.inf, 9.0)]
                                     ) == 0.05
    assert quantiles.largest_at_most([(0.01, 3.0), (math.inf, 4.0)]) == math.inf
    assert quantiles.largest_at_most([(0.01, 0.0), (math.inf, 0.0)]) is None
    assert quantiles.largest_at_most([]) is None


def test_bucket_delta_is_what_was_observed_in_between() -> None:
    newer = [(0.1, 15.0), (0.5, 22.0), (INF, 30.0)]
    older = [(0.1, 10.0), (INF, 20.0)]  # 0.5 had not been seen yet: counted from zero
    assert quantiles.bucket_delta(newer, older) == [(0.1, 5.0), (0.5, 22.0), (INF, 10.0)]


def test_median_of_an_even_count_is_the_mean_of_the_middle_two() -> None:
    runs = [{"rate": 1}, {"rate": 4}, {"rate": 2}, {"rate": 10}]
    assert quantiles.median_of(runs) == {"rate": 3.0}
    assert quantiles.median_of_numbers(runs) == {"rate": 3.0}


def test_median_of_skips_runs_without_the_figure() -> None:
    assert quantiles.median_of([{"p99": 0.5}, {"p99": None}, {"p99": 0.25}]) == {"p99": 0.375}


def test_median_of_holds_a_check_only_if_every_run_passed() -> None:
    assert quantiles.median_of([{"ok": True}, {"ok": False}, {"ok": True}]) == {"ok": False}
    assert quantiles.median_of([{"ok": True}, {"ok": True}]) == {"ok": True}


def test_median_of_takes_the_median_per_key_of_a_dict_of_numbers() -> None:
    runs = [{"rss": {"process 0": 100, "process 1": 10}},
            {"rss": {"process 0": 300, "process 1": 30}}]
    assert quantiles.median_of(runs) == {"rss": {"process 0": 200.0, "process 1": 20.0}}


def test_median_of_keeps_the_first_run_for_anything_else() -> None:
    runs = [{"prefix": "bench_a", "timeline": [1]}, {"prefix": "bench_b", "timeline": [2]}]
    assert quantiles.median_of(runs) == {"prefix": "bench_a", "timeline": [1]}


def test_median_of_numbers_leaves_dicts_and_flags_as_in_the_first_run() -> None:
    runs = [{"writes": {"redis": 1}, "ok": True}, {"writes": {"redis": 3}, "ok": False}]
    assert quantiles.median_of_numbers(runs) == {"writes": {"redis": 1}, "ok": True}


def test_ratio() -> None:
    assert quantiles.ratio(6.0, 3.0) == 2.0
    assert quantiles.ratio(None, 3.0) is None
    assert quantiles.ratio(6.0, None) is None
    assert quantiles.ratio(6.0, 0.0) is None
