"""The console without a database: its charts' geometry, its timeline lines, and what is
answered before any query (the login page, redirects, the cookie, a foreign form)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from api import ApiConfig, create_app
from api.console.charts import RiskPoint, bar_chart, risk_chart
from api.console.routes import COOKIE
from api.console.timeline import describe
from featurestore.definitions import load_definitions

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def test_risk_chart_is_a_step_line_from_the_first_score_to_the_last() -> None:
    points = [RiskPoint(T0, 0.2, "low"), RiskPoint(T0 + timedelta(days=1), 1.0, "high"),
              RiskPoint(T0 + timedelta(days=2), 0.5, "medium")]
    chart = risk_chart(points, medium_at=0.4, high_at=0.7, width=220, height=120, margin=10)
    assert chart is not None
    # x 10..210 over two days; y 110 (risk 0) .. 10 (risk 1)
    assert chart.path == "M10.0,90.0H110.0V10.0H210.0V60.0"
    assert [(m.x, m.y, m.tier) for m in chart.markers] == [
        (10.0, 90.0, "low"), (110.0, 10.0, "high"), (210.0, 60.0, "medium")]
    assert [(g.y, g.label) for g in chart.guides] == [(70.0, "medium 0.4"), (40.0, "high 0.7")]
    assert (chart.first_label, chart.last_label) == ("2026-03-01", "2026-03-03")


@pytest.mark.parametrize(("points", "expected"), [
    pytest.param([], None, id="no-scores-no-chart"),
    pytest.param([RiskPoint(T0, 0.5, "medium")], "M110.0,60.0h1", id="one-score-mid-plot"),
    pytest.param([RiskPoint(T0, 1.5, "high"), RiskPoint(T0 + timedelta(1), -1.0, "low")],
                 "M10.0,10.0H210.0V110.0", id="out-of-range-risk-clamped"),
])
def test_risk_chart_edges(points: list[RiskPoint], expected: str | None) -> None:
    chart = risk_chart(points, medium_at=0.4, high_at=0.7, width=220, height=120, margin=10)
    assert (chart.path if chart else None) == expected


def test_bar_chart_scales_to_the_largest_value_in_the_given_order() -> None:
    chart = bar_chart([("price", 10), ("missing_feature", 5), ("other", 0)], width=460,
                      label_width=200, bar_height=20, gap=5)
    assert chart is not None
    assert [(b.label, b.value, b.y, b.length) for b in chart.bars] == [
        ("price", 10, 0, 200.0), ("missing_feature", 5, 25, 100.0), ("other", 0, 50, 0.0)]
    assert chart.height == 75
    assert bar_chart([]) is None


@pytest.mark.parametrize(("kind", "data", "expected"), [
    pytest.param("score", {"score": 0.8123, "tier": "high", "reasons": ["a", "b", "c", "d"]},
                 "risk 0.81 (high): a; b; c", id="score"),
    pytest.param("alert", {"rule": "payment_failed", "severity": "high", "tier": 1},
                 "payment_failed (high, tier 1)", id="alert"),
    pytest.param("usage_signal", {"signal_type": "usage_drop", "usage_count": 2.0,
                                  "baseline_count": 11.25},
                 "usage_drop: usage 2 against a baseline of 11.2", id="usage-signal"),
    pytest.param("cancellation", {"reason_code": None}, "cancelled: no reason given",
                 id="cancellation-without-reason"),
    pytest.param("decision", {}, "? (trigger ?)", id="fields-missing"),
])
def test_timeline_lines(kind: str, data: dict[str, object], expected: str) -> None:
    assert describe(kind, data) == expected


@pytest.fixture
def client() -> Iterator[TestClient]:
    config = ApiConfig(
        database_url="postgresql://nobody@127.0.0.1:1/none",  # never opened: no lifespan
        database_schema="churnwatch",
        database_role="churnwatch_api",
        redis_url="redis://127.0.0.1:1/0",
        feature_set=load_definitions(),
    )
    yield TestClient(create_app(config), follow_redirects=False)


@pytest.mark.parametrize("path", ["/console", "/console/accounts", "/console/accounts/a-1",
                                  "/console/alerts", "/console/churn-causes"])
def test_pages_without_a_cookie_go_to_the_login_page(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 303
    assert response.headers["location"] in ("/console/login", "/console/accounts")


def test_login_page_stylesheet_and_headers(client: TestClient) -> None:
    page = client.get("/console/login")
    assert page.status_code == 200 and 'name="token"' in page.text
    assert "script-src" not in page.headers["content-security-policy"]
    assert page.headers["cache-control"] == "no-store"
    assert client.get("/console/static/console.css").status_code == 200
    assert "/console/login" not in client.get("/openapi.json").text


def test_an_empty_token_is_refused_on_the_page(client: TestClient) -> None:
    page = client.post("/console/login", data={"token": "  "})
    assert page.status_code == 401 and "paste a token" in page.text
    assert COOKIE not in page.cookies


def test_a_form_posted_from_another_site_is_refused(client: TestClient) -> None:
    answer = client.post("/console/login", data={"token": "cw_x"},
                         headers={"Origin": "https://evil.example"})
    assert answer.status_code == 403
    assert answer.json()["error"]["field"] == "origin"


def test_log_out_clears_the_cookie(client: TestClient) -> None:
    answer = client.post("/console/logout", headers={"Origin": "http://testserver"})
    assert answer.status_code == 303 and answer.headers["location"] == "/console/login"
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}=") and "Max-Age=0" in cookie
    assert "HttpOnly" in cookie and "Path=/console" in cookie and "SameSite=strict" in cookie


ALERT = "/console/alerts/00000000-0000-4000-8000-000000000001"


@pytest.mark.parametrize("action", ["acknowledge", "assign", "resolve"])
def test_an_alert_action_without_a_cookie_goes_to_the_login_page(
    client: TestClient, action: str
) -> None:
    answer = client.post(f"{ALERT}/{action}", headers={"Origin": "http://testserver"})
    assert answer.status_code == 303 and answer.headers["location"] == "/console/login"


@pytest.mark.parametrize("action", ["acknowledge", "assign", "resolve"])
def test_an_alert_action_from_another_site_is_refused_before_the_session(
    client: TestClient, action: str
) -> None:
    # The cookie's session would need the (unreachable) database: the origin check is first.
    client.cookies.set(COOKIE, "cw_x", path="/console")
    answer = client.post(f"{ALERT}/{action}", data={"resolution": "saved"},
                         headers={"Origin": "https://evil.example"})
    assert answer.status_code == 403
    assert answer.json()["error"]["field"] == "origin"
