"""The console's pages under ``/console``: log in with an API token, then at-risk
accounts, an account (risk chart and timeline), the alert queue, churn causes and the
win-back log.

Each page reads through :mod:`api.queries` (and :mod:`api.console.queries`) in the same
per-request session as the API, so a page shows exactly what the user's token may see
through the API: its tenant only, and an agent only the accounts it owns.

The token is kept in an HttpOnly, SameSite=Strict cookie scoped to ``/console``. The
forms (log in, log out) are POSTs; SameSite=Strict means a cross-site page cannot make
the browser send the cookie with them, and a POST whose ``Origin`` is another site is
refused as well. The alert queue's forms (acknowledge, assign, resolve) are POSTs too,
each applying the change through the API's own :func:`api.routes.apply_change` (so the same
lifecycle, role checks and publishing), then sending the browser back to the queue with
what happened in the query string.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path as FilePath
from typing import Annotated, Any, Literal, get_args
from urllib.parse import quote, urlencode
from uuid import UUID

from fastapi import APIRouter, BackgroundTasks, Depends, Form, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from pydantic import ValidationError

from api import models, queries, winback
from api.alert_lifecycle import Action, Change
from api.console import queries as console_queries
from api.console.charts import bar_chart, risk_chart
from api.console.errors import LoginRequired
from api.console.timeline import describe
from api.database import Session
from api.deps import services
from api.errors import ApiError, Forbidden, Unauthorized
from api.models import AlertStatus
from api.routes import apply_change
from api.users import Role, list_users

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
# The resolution codes the queue's form offers (the API takes any code of its pattern).
RESOLUTIONS = ("saved", "churned", "false_alarm")
# What ?done= may say on the queue (anything else is ignored).
DONE = {"acknowledged": "Alert acknowledged.", "assigned": "Alert assigned.",
        "resolved": "Alert resolved."}


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
    live = services(request).model
    if live is not None:  # the tiers the live model's scores are given (its own, if any)
        policy = policy.for_model(live.current())
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
    done: str | None = None, error: Annotated[str | None, Query(max_length=300)] = None,
) -> HTMLResponse:
    """The alerts with their status and assignee as the API reads them, each with its
    forms (acknowledge, resolve; assign for coordinators and admins)."""
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
        "done": DONE.get(done or ""), "problem": error, "resolutions": RESOLUTIONS,
        "assignees": _assignees(session),
    })


def _assignees(session: Session) -> list[str] | None:
    """The enabled users of the tenant an alert may be assigned to; None for an agent
    (who may not assign, so sees no such form)."""
    if session.user.role is Role.AGENT:
        return None
    return [u.name for u in list_users(session.conn, session.tenant_id)
            if u.disabled_at is None]


def _back(**message: str) -> RedirectResponse:
    return RedirectResponse(f"{PREFIX}/alerts?{urlencode(message)}", status_code=303)


def _act(request: Request, session: Session, tasks: BackgroundTasks, alert_id: UUID,
         change: Change, done: str) -> RedirectResponse:
    """Apply the change as ``POST /v1/alerts/{id}/...`` does; a refused one (a 4xx: not
    found, not allowed, a conflict) goes back to the queue as its error. The lifecycle
    refuses before it writes anything, so the transaction has nothing to undo."""
    try:
        apply_change(request, session, tasks, alert_id, change)
    except ApiError as exc:
        return _back(error=exc.message[:300])
    return _back(done=done)


def _invalid(exc: ValidationError) -> RedirectResponse:
    first = exc.errors()[0]
    field = ".".join(str(p) for p in first["loc"])
    return _back(error=f"{field}: {first['msg']}"[:300])


AlertIdPath = Annotated[UUID, Path()]
# Checked before the cookie's session is opened: a foreign form is refused first.
SameOrigin = Depends(check_same_origin)


@router.post("/alerts/{alert_id}/acknowledge", dependencies=[SameOrigin])
def acknowledge_alert(
    request: Request, session: ConsoleSession, tasks: BackgroundTasks, alert_id: AlertIdPath,
) -> RedirectResponse:
    return _act(request, session, tasks, alert_id, Change(Action.ACKNOWLEDGE), "acknowledged")


@router.post("/alerts/{alert_id}/assign", dependencies=[SameOrigin])
def assign_alert(
    request: Request, session: ConsoleSession, tasks: BackgroundTasks, alert_id: AlertIdPath,
    assignee: Annotated[str, Form()] = "",
) -> RedirectResponse:
    """Coordinators and admins; "" unassigns. The lifecycle refuses an agent (403) and a
    name that is not an enabled user of the tenant."""
    try:
        body = models.AssignBody(assignee=assignee.strip() or None)
    except ValidationError as exc:
        return _invalid(exc)
    return _act(request, session, tasks, alert_id,
                Change(Action.ASSIGN, assignee=body.assignee), "assigned")


@router.post("/alerts/{alert_id}/resolve", dependencies=[SameOrigin])
def resolve_alert(
    request: Request, session: ConsoleSession, tasks: BackgroundTasks, alert_id: AlertIdPath,
    resolution: Annotated[str, Form()] = "",
) -> RedirectResponse:
    try:
        body = models.ResolveBody(resolution=resolution.strip())
    except ValidationError as exc:
        return _invalid(exc)
    return _act(request, session, tasks, alert_id,
                Change(Action.RESOLVE, resolution=body.resolution), "resolved")


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


@router.get("/win-back", response_class=HTMLResponse)
def win_back_page(
    request: Request, session: ConsoleSession,
    status: models.WinBackStatus | None = None,
    campaign: Annotated[str | None, Query(max_length=257)] = None,
    cursor: str | None = None,
) -> HTMLResponse:
    """The win-back log as ``GET /v1/win-back`` reads it, with a count per status."""
    try:
        page = queries.win_back_log(session, status=status, campaign=campaign or None,
                                    owner=None, account_id=None, limit=PAGE_SIZE,
                                    cursor=cursor)
    except ApiError as exc:
        return _error(request, session, exc)
    only_owner = None if session.user.sees_every_account else session.user.name
    return render(request, "win_back.html", {
        **_page_context(session, "win-back"), "page": page, "status": status,
        "campaign": campaign, "statuses": winback.STATUSES,
        "counts": winback.status_counts(session.conn, tenant_id=session.tenant_id,
                                        only_owner=only_owner),
    })
