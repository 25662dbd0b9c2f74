"""The compiled choice of a batch's reasons equals numpy's stable sort of each row."""

from __future__ import annotations

import itertools
import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from scoring.reasons import top_indexes, top_reasons, top_reasons_by_side

# Few distinct values, so ties, zeros, negatives and NaN are common.
VALUES = st.sampled_from([-2.0, -0.5, -0.0, 0.0, 0.25, 1.0, 1.0000001, 2.0, math.inf, math.nan])


def numpy_top(row: np.ndarray, k: int) -> list[int]:
    """The rule as numpy wrote it before: a stable sort of the negated row, then the
    leading positive values."""
    order = np.argsort(-row, kind="stable")[: max(k, 0)]
    return [int(i) for i in itertools.takewhile(lambda i: row[i] > 0.0, order)]


@settings(max_examples=300, deadline=None)
@given(arrays(np.float32, st.tuples(st.integers(1, 8), st.integers(1, 20)), elements=VALUES),
       st.integers(-1, 6))
def test_top_indexes_equal_a_stable_sort(matrix: np.ndarray, k: int) -> None:
    for row in matrix:
        assert top_indexes(row.tolist(), k) == numpy_top(row, k)


def test_equal_contributions_keep_definition_order() -> None:
    assert top_indexes([1.0, 3.0, 1.0, 3.0, 2.0], 3) == [1, 3, 4]
    assert top_indexes([1.0, 1.0, 1.0], 2) == [0, 1]
    assert top_indexes([0.0, -1.0, math.nan], 3) == []
    assert top_indexes([5.0, 4.0], 0) == []


def test_texts_follow_the_indexes_and_the_side_of_the_mean() -> None:
    texts = ("a high", "b low", "c high")
    rows = [[0.1, 0.3, 0.2], [0.0, -1.0, 0.5]]
    assert top_reasons(rows, 2, texts) == [("b low", "c high"), ("c high",)]
    low, high = ("a low", "b low", "c low"), ("a high", "b high", "c high")
    features = [[9.0, 1.0, 5.0], [0.0, 0.0, 5.0]]
    means = [4.0, 2.0, 5.0]  # the third row value equals its mean: not above it
    assert top_reasons_by_side(rows, 3, features, means, low, high) == [
        ("b low", "c low", "a high"), ("c low",),
    ]
