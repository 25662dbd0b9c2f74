"""On-demand scoring's input: a supplied vector names every feature with a number."""

from __future__ import annotations

import math

import pytest

from api.errors import InvalidInput
from api.on_demand import feature_vector

NAMES = ("logins_7d", "seats", "tenure_days")


def test_a_complete_vector_comes_out_in_the_models_order() -> None:
    supplied = {"tenure_days": 400, "logins_7d": 3.5, "seats": 0}
    assert feature_vector(supplied, NAMES) == (3.5, 0.0, 400.0)


@pytest.mark.parametrize(
    ("supplied", "field", "words"),
    [
        pytest.param({"logins_7d": 1, "seats": 2}, "features.tenure_days", "required",
                     id="missing-one"),
        pytest.param({}, "features.logins_7d", "and 2 more", id="missing-all"),
        pytest.param({"logins_7d": 1, "seats": 2, "tenure_days": 3, "mrr": 9}, "features.mrr",
                     "not a feature", id="unknown"),
        pytest.param({"logins_7d": "1", "seats": 2, "tenure_days": 3}, "features.logins_7d",
                     "number", id="string"),
        pytest.param({"logins_7d": True, "seats": 2, "tenure_days": 3}, "features.logins_7d",
                     "number", id="bool"),
        pytest.param({"logins_7d": None, "seats": 2, "tenure_days": 3}, "features.logins_7d",
                     "number", id="null"),
        pytest.param({"logins_7d": [1], "seats": 2, "tenure_days": 3}, "features.logins_7d",
                     "number", id="list"),
        pytest.param({"logins_7d": math.inf, "seats": 2, "tenure_days": 3},
                     "features.logins_7d", "finite", id="infinite"),
        pytest.param({"logins_7d": 1, "seats": math.nan, "tenure_days": 3}, "features.seats",
                     "finite", id="nan"),
    ],
)
def test_a_bad_vector_names_its_field(supplied: dict[str, object], field: str,
                                      words: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        feature_vector(supplied, NAMES)
    assert refused.value.field == field and refused.value.status == 422
    assert words in refused.value.message
