"""The app without a database: what is answered before any query (docs, health, a request
without a token, an unknown route), in the one error shape."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from api import ApiConfig, create_app
from featurestore.definitions import load_definitions


@pytest.fixture
def client() -> Iterator[TestClient]:
    config = ApiConfig(
        database_url="postgresql://nobody@127.0.0.1:1/none",  # never opened: no lifespan
        database_schema="churnwatch",
        database_role="churnwatch_api",
        redis_url="redis://127.0.0.1:1/0",
        feature_set=load_definitions(),
    )
    yield TestClient(create_app(config))  # not entered: the pool is never opened


def test_openapi_documents_every_route_and_the_bearer_scheme(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    assert document["info"]["title"] == "churnwatch API"
    assert set(document["paths"]) == {
        "/healthz", "/v1/accounts", "/v1/accounts/{account_id}",
        "/v1/accounts/{account_id}/timeline", "/v1/accounts/{account_id}/features",
        "/v1/accounts/{account_id}/score", "/v1/alerts", "/v1/churn-causes", "/v1/users",
        "/v1/users/{name}", "/v1/alerts/{alert_id}", "/v1/alerts/{alert_id}/history",
        "/v1/alerts/{alert_id}/acknowledge", "/v1/alerts/{alert_id}/assign",
        "/v1/alerts/{alert_id}/snooze", "/v1/alerts/{alert_id}/resolve",
        "/v1/alerts/{alert_id}/reopen", "/v1/alerts/{alert_id}/notes", "/v1/win-back",
        "/v1/experiments/{key}",
    }
    assert document["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    assert "ErrorResponse" in document["components"]["schemas"]
    assert client.get("/docs").status_code == 200


def test_health_needs_no_token(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}


@pytest.mark.parametrize("header", [None, "Basic dXNlcjpwYXNz", "Bearer"])
def test_no_token_is_a_401_before_any_query(client: TestClient, header: str | None) -> None:
    response = client.get("/v1/accounts", headers={"Authorization": header} if header else {})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["error"]["code"] == "unauthorized"


def test_unknown_routes_and_methods_answer_in_the_error_shape(client: TestClient) -> None:
    missing = client.get("/v2/anything")
    assert missing.status_code == 404
    assert missing.json() == {"error": {"code": "not_found", "message": "Not Found",
                                        "field": None}}
    wrong = client.put("/healthz")
    assert wrong.status_code == 405 and wrong.json()["error"]["code"] == "method_not_allowed"
