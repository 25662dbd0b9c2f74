"""Every error answer has one shape: {"error": {"code", "message", "field"}}."""

from __future__ import annotations

import pytest

from api.app import validation_answer
from api.errors import (
    ApiError,
    BadRequest,
    Conflict,
    FeatureVersionConflict,
    Forbidden,
    InvalidInput,
    NotFound,
    Unauthorized,
    Unavailable,
    error_document,
)
from schemas.errors import ChurnwatchError


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        pytest.param(Unauthorized("no token"), 401, "unauthorized", id="401"),
        pytest.param(Forbidden("admins only"), 403, "forbidden", id="403"),
        pytest.param(NotFound("no account x", "account_id"), 404, "not_found", id="404"),
        pytest.param(Conflict("taken", "name"), 409, "conflict", id="409"),
        pytest.param(FeatureVersionConflict("v1 vs v2"), 409, "feature_version_mismatch",
                     id="409-features"),
        pytest.param(BadRequest("not a cursor", "cursor"), 400, "bad_request", id="400"),
        pytest.param(InvalidInput("must be a number", "features.x"), 422, "invalid", id="422"),
        pytest.param(Unavailable("no model"), 503, "unavailable", id="503"),
    ],
)
def test_each_error_has_its_status_code_and_shape(error: ApiError, status: int, code: str) -> None:
    assert isinstance(error, ChurnwatchError)
    assert error.status == status
    document = error.document()
    assert document == {"error": {"code": code, "message": error.message, "field": error.field}}


def test_the_field_is_null_when_no_field_is_at_fault() -> None:
    assert error_document("forbidden", "admins only") == {
        "error": {"code": "forbidden", "message": "admins only", "field": None}}


@pytest.mark.parametrize(
    ("errors", "answer"),
    [
        pytest.param(
            [{"type": "less_than_equal", "loc": ("query", "tier"), "msg": "Input should be <= 3"}],
            ({"error": {"code": "invalid", "message": "Input should be <= 3", "field": "tier"}},
             422),
            id="query",
        ),
        pytest.param(
            [{"type": "missing", "loc": ("body", "name"), "msg": "Field required"},
             {"type": "missing", "loc": ("body", "role"), "msg": "Field required"}],
            ({"error": {"code": "invalid", "message": "Field required", "field": "name"}}, 422),
            id="first-of-several",
        ),
        pytest.param(
            [{"type": "string_type", "loc": ("body", "features", "logins_7d", 0),
              "msg": "Input should be a valid string"}],
            ({"error": {"code": "invalid", "message": "Input should be a valid string",
                        "field": "features.logins_7d.0"}}, 422),
            id="nested",
        ),
        pytest.param(
            [{"type": "json_invalid", "loc": ("body", 1), "msg": "JSON decode error"}],
            ({"error": {"code": "bad_request", "message": "the body is not valid JSON",
                        "field": None}}, 400),
            id="not-json",
        ),
        pytest.param(
            [{"type": "missing", "loc": ("body",), "msg": "Field required"}],
            ({"error": {"code": "invalid", "message": "Field required", "field": None}}, 422),
            id="whole-body",
        ),
    ],
)
def test_framework_validation_errors_name_the_field(
    errors: list[dict[str, object]], answer: tuple[dict[str, object], int]
) -> None:
    assert validation_answer(errors) == answer
