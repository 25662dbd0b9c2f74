"""scoring.evaluation against values computed by hand, ties included."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from scoring.evaluation import (
    average_precision,
    average_ranks,
    evaluate,
    roc_auc,
    top_decile_lift,
    top_fraction_lift,
)


def pairwise_auc(labels: list[int], scores: list[float]) -> float:
    """The definition: over all (positive, negative) pairs, 1 if the positive
    scores higher, 1/2 on a tie."""
    positives = [s for y, s in zip(labels, scores, strict=True) if y]
    negatives = [s for y, s in zip(labels, scores, strict=True) if not y]
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0
               for p, n in itertools.product(positives, negatives))
    return wins / (len(positives) * len(negatives))


@pytest.mark.parametrize(
    ("labels", "scores", "expected"),
    [
        pytest.param([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8], 0.75, id="one-inversion"),
        pytest.param([0, 1, 0, 1], [0.5, 0.5, 0.2, 0.9], 3.5 / 4, id="tie-counts-half"),
        pytest.param([1, 1, 0, 0], [0.9, 0.8, 0.2, 0.1], 1.0, id="perfect"),
        pytest.param([1, 1, 0, 0], [0.1, 0.2, 0.8, 0.9], 0.0, id="reversed"),
        pytest.param([1, 0, 1, 0], [0.3, 0.3, 0.3, 0.3], 0.5, id="all-tied"),
    ],
)
def test_roc_auc(labels: list[int], scores: list[float], expected: float) -> None:
    assert roc_auc(labels, scores) == pytest.approx(expected)


def test_roc_auc_matches_the_pairwise_definition_with_many_ties() -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 300).tolist()
    scores = rng.integers(0, 12, 300).astype(float).tolist()  # lots of ties
    assert roc_auc(labels, scores) == pytest.approx(pairwise_auc(labels, scores), abs=1e-12)


def test_average_ranks_share_tied_ranks() -> None:
    assert average_ranks([10, 20, 20, 5, 20]).tolist() == [2.0, 4.0, 4.0, 1.0, 4.0]


@pytest.mark.parametrize(
    ("labels", "scores", "expected"),
    [
        # precision at each positive: 1/1, 2/3, 3/5
        pytest.param([1, 0, 1, 0, 1], [0.9, 0.8, 0.7, 0.6, 0.5], (1 + 2 / 3 + 3 / 5) / 3,
                     id="distinct"),
        # thresholds 0.9 (P=1, R=1/2) and 0.5 (P=2/3, R=1)
        pytest.param([1, 0, 1], [0.9, 0.5, 0.5], 0.5 * 1 + 0.5 * 2 / 3, id="tie-steps-once"),
        pytest.param([1, 1, 0], [0.9, 0.8, 0.1], 1.0, id="perfect"),
    ],
)
def test_average_precision(labels: list[int], scores: list[float], expected: float) -> None:
    assert average_precision(labels, scores) == pytest.approx(expected)


def test_top_decile_lift_without_ties() -> None:
    # 20 rows, 4 positives (base rate 0.2); the top 2 hold one: 0.5 / 0.2.
    scores = [1.0 - i / 20 for i in range(20)]
    labels = [1, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]
    assert top_decile_lift(labels, scores) == pytest.approx(2.5)


def test_top_decile_lift_splits_a_tie_at_the_cut() -> None:
    # 10 rows: the top is 1 row, but two tie at the top score, one of them
    # positive: half a positive is inside. Base rate 2/10.
    scores = [0.9, 0.9, 0.5, 0.4, 0.3, 0.2, 0.1, 0.05, 0.02, 0.01]
    labels = [0, 1, 0, 0, 1, 0, 0, 0, 0, 0]
    assert top_decile_lift(labels, scores) == pytest.approx(0.5 / 0.2)
    # the order of the tied rows does not matter
    assert top_decile_lift([1, 0, *labels[2:]], scores) == pytest.approx(2.5)


def test_top_fraction_lift_rounds_the_top_up() -> None:
    # 15 rows at 10 %: the top is 2 rows (ceil 1.5).
    scores = list(range(15, 0, -1))
    labels = [1, 1] + [0] * 12 + [1]
    assert top_fraction_lift(labels, scores, 0.1) == pytest.approx(1.0 / (3 / 15))
    with pytest.raises(ValueError):
        top_fraction_lift(labels, scores, 0.0)


def test_single_class_metrics_are_undefined() -> None:
    assert math.isnan(roc_auc([0, 0, 0], [0.1, 0.2, 0.3]))
    assert math.isnan(average_precision([0, 0], [0.1, 0.2]))
    assert math.isnan(top_decile_lift([0, 0], [0.1, 0.2]))
    metrics = evaluate([0, 0, 0], [0.1, 0.2, 0.3], accounts=2)
    assert metrics.roc_auc is None and metrics.average_precision is None
    assert metrics.brier == pytest.approx((0.01 + 0.04 + 0.09) / 3)
    assert metrics.rows == 3 and metrics.positives == 0 and metrics.accounts == 2


def test_evaluate_round_trips_through_its_document() -> None:
    metrics = evaluate([0, 1, 1, 0], [0.2, 0.7, 0.6, 0.4], accounts=3)
    assert metrics.roc_auc == 1.0
    assert metrics.base_rate == 0.5
    assert type(metrics).from_document(metrics.to_document()) == metrics


def test_nan_scores_and_length_mismatch_are_refused() -> None:
    with pytest.raises(ValueError, match="NaN"):
        roc_auc([0, 1], [0.1, float("nan")])
    with pytest.raises(ValueError, match="differ"):
        roc_auc([0, 1, 1], [0.1, 0.2])
