"""The console's pages under ``/console``: log in with an API token, then at-risk
accounts, an account (risk chart and timeline), the alert queue and churn causes.

Each page reads through :mod:`api.queries` (and :mod:`api.console.queries`) in the same
per-request session as the API, so a page shows exactly what the user's token may see
through the API: its tenant only, and an agent only the accounts it owns.

The token is kept in an HttpOnly, SameSite=Strict cookie scoped to ``/console``. The
forms (log in, log out) are POSTs; SameSite=Strict means a cross-site page cannot make
the browser send the cookie with them, and a POST whose ``Origin`` is another site is
refused as well. The console changes nothing yet, so no other form exists.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path as FilePath
from typing import Annotated, Any, Literal, get_args
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from api import queries
from api.console import queries as console_queries
from api.console.charts import bar_chart, risk_chart
from api.console.errors import LoginRequired
from api.console.timeline import describe
from api.database import Session
from api.deps import services
from api.errors import ApiError, Forbidden, Unauthorized
from api.models import AlertStatus

COOKIE = "churnwatch_console"
PREFIX = "/console"
PAGE_SIZE = 50
TIMELINE_PAGE = 100
# The pages hold no script and no inline style: the CSP says so, so an injected one
# would not run even if escaping failed somewhere.
_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self';"
                               " form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "Cache-Control": "no-store",
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
}

templates = Jinja2Templates(directory=FilePath(__file__).parent / "templates")
# An account id as one path segment ("/" too is escaped, which Jinja's urlencode keeps).
templates.env.filters["segment"] = lambda value: quote(str(value), safe="")
router = APIRouter(prefix=PREFIX, include_in_schema=False)

Tier = Literal["high", "medium", "low"]


def console_session(request: Request) -> Iterator[Session]:
    """The request's transaction as the cookie's user (as :func:`api.deps.session` is
    the bearer token's); :class:`LoginRequired` when there is no valid cookie."""
    token = request.cookies.get(COOKIE)
    if not token:
        raise LoginRequired("log in")
    try:
        with services(request).database.session(token) as current:
            yield current
    except Unauthorized:
        raise LoginRequired("unknown or disabled token") from None


# scope="function": as the API's, the transaction ends before the page is sent.
ConsoleSession = Annotated[Session, Depends(console_session, scope="function")]


def check_same_origin(request: Request) -> None:
    """Refuse a form posted from another site (defence in depth beside SameSite=Strict).
    Browsers send ``Origin`` with every POST; a client that sends none is not a browser
    page another site controls."""
    origin = request.headers.get("origin")
    if origin is not None and origin != f"{request.url.scheme}://{request.url.netloc}":
        raise Forbidden("a form of another site", "origin")


def render(
    request: Request, name: str, context: dict[str, Any], status_code: int = 200
) -> HTMLResponse:
    response = templates.TemplateResponse(request, name, context, status_code=status_code)
    response.headers.update(_HEADERS)
    return response


def _page_context(session: Session, section: str) -> dict[str, Any]:
    return {"user": session.user, "section": section}


def _error(request: Request, session: Session, error: ApiError) -> HTMLResponse:
    return render(request, "error.html", {**_page_context(session, ""), "error": error},
                  status_code=error.status)


@router.get("", response_class=RedirectResponse)
@router.get("/", response_class=RedirectResponse)
def home() -> RedirectResponse:
    return RedirectResponse(f"{PREFIX}/accounts", status_code=303)


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request) -> HTMLResponse:
    return render(request, "login.html", {"user": None, "section": "login", "problem": None})


@router.post("/login", response_model=None)
def log_in(request: Request, token: Annotated[str, Form()] = "") -> Response:
    """Check the token as the API does; on success keep it in the cookie."""
    check_same_origin(request)
    token = token.strip()
    try:
        if not token:
            raise Unauthorized("paste a token")
        with services(request).database.session(token):
            pass
    except Unauthorized as exc:
        return render(request, "login.html",
                      {"user": None, "section": "login", "problem": exc.message},
                      status_code=401)
    response = RedirectResponse(f"{PREFIX}/accounts", status_code=303)
    response.set_cookie(
        COOKIE, token, httponly=True, samesite="strict", path=PREFIX,
        secure=request.url.scheme == "https",
    )
    return response


@router.post("/logout")
def log_out(request: Request) -> RedirectResponse:
    check_same_origin(request)
    return logged_out()


def logged_out() -> RedirectResponse:
    response = RedirectResponse(f"{PREFIX}/login", status_code=303)
    response.delete_cookie(COOKIE, path=PREFIX, httponly=True, samesite="strict")
    return response


@router.get("/accounts", response_class=HTMLResponse)
def accounts_page(
    request: Request, session: ConsoleSession, tier: Tier | None = None,
    cursor: str | None = None,
) -> HTMLResponse:
    try:
        page = queries.list_accounts(session, tier=tier, owner=None, sort="risk",
                                     limit=PAGE_SIZE, cursor=cursor)
    except ApiError as exc:
        return _error(request, session, exc)
    return render(request, "accounts.html", {
        **_page_context(session, "accounts"), "page": page, "tier": tier,
        "counts": console_queries.tier_counts(session),
    })


@router.get("/accounts/{account_id}", response_class=HTMLResponse)
def account_page(
    request: Request, session: ConsoleSession,
    account_id: Annotated[str, Path(min_length=1, max_length=128)],
    cursor: str | None = None,
) -> HTMLResponse:
    policy = services(request).config.risk_policy
    try:
        detail = queries.account_detail(session, account_id)
        series = console_queries.risk_series(session, account_id)
        timeline = queries.timeline(session, account_id, since=None, until=None,
                                    limit=TIMELINE_PAGE, cursor=cursor)
    except ApiError as exc:
        return _error(request, session, exc)
    chart = risk_chart(series, medium_at=policy.medium_at, high_at=policy.high_at)
    return render(request, "account.html", {
        **_page_context(session, "accounts"), "account": detail, "chart": chart,
        "points": len(series),
        "timeline": [(item, describe(item.kind, item.data)) for item in timeline.items],
        "next_cursor": timeline.next_cursor,
    })


@router.get("/alerts", response_class=HTMLResponse)
def alerts_page(
    request: Request, session: ConsoleSession,
    severity: Literal["low", "medium", "high"] | None = None,
    tier: Annotated[int | None, Query(ge=1, le=3)] = None,
    status: AlertStatus | None = None, cursor: str | None = None,
) -> HTMLResponse:
    """The alerts with their status and assignee as the API reads them; read-only (the
    lifecycle's actions are the API's, not yet the console's)."""
    try:
        page = queries.list_alerts(session, tier=tier, severity=severity, rule=None,
                                   account_id=None, since=None, until=None, limit=PAGE_SIZE,
                                   cursor=cursor, status=status,
                                   expiry=services(request).config.alert_expiry)
    except ApiError as exc:
        return _error(request, session, exc)
    return render(request, "alerts.html", {
        **_page_context(session, "alerts"), "page": page, "severity": severity, "tier": tier,
        "status": status, "statuses": get_args(AlertStatus),
    })


@router.get("/churn-causes", response_class=HTMLResponse)
def churn_causes_page(request: Request, session: ConsoleSession) -> HTMLResponse:
    causes = queries.churn_causes(session, since=None, until=None)
    totals: Counter[str] = Counter()
    for item in causes.items:
        totals[item.reason_code or "no reason given"] += item.cancellations
    return render(request, "churn_causes.html", {
        **_page_context(session, "causes"), "causes": causes,
        "chart": bar_chart(totals.most_common()), "total": sum(totals.values()),
    })
