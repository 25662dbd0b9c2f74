"""The /v1 routes: accounts, alerts, churn causes, users; each a short function over
:mod:`api.queries` (or the online store and the model), its role checks explicit."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import redis
from fastapi import APIRouter, BackgroundTasks, Body, Path, Query, Request, status

from api import alert_lifecycle, models, queries
from api.alert_lifecycle import Action, Change
from api.deps import AdminDep, ServicesDep, SessionDep, page_size, services
from api.errors import FeatureVersionConflict, InvalidInput, NotFound, Unavailable
from api.models import error_doc
from api.on_demand import feature_vector, score_vector
from api.users import ApiUser, add_user, disable_user, list_users
from featurestore.errors import FeatureVersionMismatch
from featurestore.redis_store import FeatureVector
from scoring.reload import live_model

router = APIRouter(prefix="/v1", responses={
    401: error_doc("no, an unknown or a disabled token"),
    422: error_doc("a value not allowed; error.field names it"),
})

AccountId = Annotated[str, Path(min_length=1, max_length=128)]
Limit = Annotated[int | None, Query(description="items per page (default 50, at most 500)")]
Cursor = Annotated[str | None, Query(description="next_cursor of the previous page")]
Since = Annotated[datetime | None, Query(description="RFC 3339 with offset; from (inclusive)")]
Until = Annotated[datetime | None, Query(description="RFC 3339 with offset; before (exclusive)")]
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: error_doc("no such account, or not one this user may see"),
}


def _aware(value: datetime | None, field: str) -> datetime | None:
    if value is not None and value.tzinfo is None:
        raise InvalidInput("give a time zone offset (e.g. Z)", field)
    return value


def _window(since: datetime | None, until: datetime | None) -> tuple[datetime | None,
                                                                   datetime | None]:
    since, until = _aware(since, "since"), _aware(until, "until")
    if since is not None and until is not None and until <= since:
        raise InvalidInput("must be after since", "until")
    return since, until


@router.get("/accounts", response_model=models.AccountPage, summary="Accounts at risk")
def get_accounts(
    request: Request,
    session: SessionDep,
    tier: models.TierName | None = None,
    owner: Annotated[str | None, Query(max_length=64)] = None,
    plan: Annotated[str | None, Query(max_length=256)] = None,
    status: models.AccountStatus | None = None,
    sort: Literal["risk", "mrr", "score_time"] = "risk",
    limit: Limit = None,
    cursor: Cursor = None,
) -> models.AccountPage:
    """The scored accounts (the accounts table: company, plan, MRR, owner, renewal date,
    status, latest primary score), riskiest first (or largest MRR first, an unknown MRR
    last; or most recently scored first), and ``mrr_at_risk``: the MRR of the active
    high-tier accounts under the same owner and plan filters. An agent sees the accounts
    it owns only."""
    return queries.list_accounts(
        session, tier=tier, owner=owner, sort=sort, limit=page_size(request, limit),
        cursor=cursor, plan=plan, status=status,
    )


@router.get("/accounts/{account_id}", response_model=models.AccountDetail, responses=NOT_FOUND,
            summary="An account")
def get_account(session: SessionDep, account_id: AccountId) -> models.AccountDetail:
    """The account (company, plan, MRR, renewal date, status, first and last event), its
    latest primary score, owner and notes."""
    return queries.account_detail(session, account_id)


@router.patch(
    "/accounts/{account_id}", response_model=models.AccountDetail,
    responses={**NOT_FOUND, 403: error_doc("an agent changing an owner")},
    summary="Change an account's owner or notes",
)
def patch_account(
    session: SessionDep, account_id: AccountId, patch: models.AccountPatch
) -> models.AccountDetail:
    """Coordinators and admins set the owner (an enabled user of the tenant, or null) and
    the notes; an agent edits the notes of the accounts it owns only."""
    return queries.update_account(session, account_id, patch)


@router.get("/accounts/{account_id}/timeline", response_model=models.TimelinePage,
            responses=NOT_FOUND, summary="An account's timeline")
def get_timeline(
    request: Request,
    session: SessionDep,
    account_id: AccountId,
    since: Since = None,
    until: Until = None,
    limit: Limit = None,
    cursor: Cursor = None,
) -> models.TimelinePage:
    """Scores (with reasons), usage signals, alerts, decisions, workflow triggers,
    signals and outcomes, and cancellations, oldest first."""
    since, until = _window(since, until)
    return queries.timeline(
        session, account_id, since=since, until=until, limit=page_size(request, limit),
        cursor=cursor,
    )


def _stored_features(services: ServicesDep, tenant_id: str, account_id: str) -> FeatureVector:
    try:
        stored = services.features.get(tenant_id, account_id)
    except FeatureVersionMismatch as exc:
        raise FeatureVersionConflict(str(exc)) from None
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        raise Unavailable(f"Redis is unavailable: {exc}") from None
    if stored is None:
        raise NotFound(f"no current features for account {account_id}", "account_id")
    return stored


@router.get("/accounts/{account_id}/features", response_model=models.Features,
            responses=NOT_FOUND, summary="An account's current features")
def get_features(
    session: SessionDep, services: ServicesDep, account_id: AccountId
) -> models.Features:
    """The account's online feature hash (Redis), as the stream last wrote it."""
    if not session.user.sees_every_account:
        queries.require_account(session, account_id)
    stored = _stored_features(services, session.tenant_id, account_id)
    return models.Features(
        account_id=account_id, feature_version=stored.feature_version,
        as_of=datetime.fromtimestamp(stored.as_of_ms / 1000, UTC), features=stored.values,
    )


@router.post(
    "/accounts/{account_id}/score", response_model=models.OnDemandScore,
    responses={**NOT_FOUND, 503: error_doc("no model configured")},
    summary="Score an account now",
)
def post_score(
    session: SessionDep,
    services: ServicesDep,
    account_id: AccountId,
    body: Annotated[models.ScoreBody | None, Body()] = None,
) -> models.OnDemandScore:
    """The live model's score of the account's current features (no body, or no
    ``features``), or of a supplied vector naming every feature. Nothing is written."""
    if services.model is None:
        raise Unavailable("scoring is off (CHURNWATCH_MODEL_DIR is 'off')")
    model = live_model(services.model)
    supplied = body.features if body is not None else None
    if supplied is not None:
        queries.require_account(session, account_id)
        values = feature_vector(supplied, model.feature_names)
        as_of = None
        source: Literal["online_store", "supplied"] = "supplied"
    else:
        if not session.user.sees_every_account:
            queries.require_account(session, account_id)
        stored = _stored_features(services, session.tenant_id, account_id)
        values = feature_vector(stored.values, model.feature_names)
        as_of = datetime.fromtimestamp(stored.as_of_ms / 1000, UTC)
        source = "online_store"
    scored = score_vector(model, services.config.risk_policy, session.tenant_id, account_id,
                          values, as_of)
    return models.OnDemandScore(
        account_id=account_id, source=source, as_of=as_of, risk=scored.risk,
        ml_risk=scored.ml_risk, tier=scored.tier, reasons=list(scored.reasons),  # type: ignore[arg-type]
        model_version=scored.model_version, feature_version=scored.feature_version,
        features=dict(zip(model.feature_names, values, strict=True)),
    )


@router.get("/alerts", response_model=models.AlertPage, summary="Alerts")
def get_alerts(
    request: Request,
    session: SessionDep,
    tier: Annotated[int | None, Query(ge=1, le=3)] = None,
    severity: Literal["low", "medium", "high"] | None = None,
    rule: Annotated[str | None, Query(max_length=128)] = None,
    account: Annotated[str | None, Query(max_length=128)] = None,
    since: Since = None,
    until: Until = None,
    limit: Limit = None,
    cursor: Cursor = None,
    status: models.AlertStatus | None = None,
    assignee: Annotated[str | None, Query(max_length=64)] = None,
) -> models.AlertPage:
    """Alerts with their status and assignee, newest first (event time). An agent sees
    those of its accounts only."""
    since, until = _window(since, until)
    return queries.list_alerts(
        session, tier=tier, severity=severity, rule=rule, account_id=account, since=since,
        until=until, limit=page_size(request, limit), cursor=cursor, status=status,
        assignee=assignee, expiry=services(request).config.alert_expiry,
    )


AlertId = Annotated[uuid.UUID, Path(description="the alert's id")]
ALERT_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: error_doc("no such alert, or not one this user may see"),
}
CHANGE_RESPONSES: dict[int | str, dict[str, Any]] = {
    **ALERT_NOT_FOUND, 409: error_doc("the alert's status does not allow this change"),
}


@router.get("/alerts/{alert_id}", response_model=models.Alert, responses=ALERT_NOT_FOUND,
            summary="An alert")
def get_alert(request: Request, session: SessionDep, alert_id: AlertId) -> models.Alert:
    """The alert with its status, assignee and notes."""
    return alert_lifecycle.get_alert(session, str(alert_id),
                                     services(request).config.alert_expiry)


@router.get("/alerts/{alert_id}/history", response_model=models.AlertHistory,
            responses=ALERT_NOT_FOUND, summary="An alert's changes")
def get_alert_history(
    request: Request, session: SessionDep, alert_id: AlertId
) -> models.AlertHistory:
    """Every change of the alert (who, when, from, to), oldest first."""
    return alert_lifecycle.history(session, str(alert_id),
                                   services(request).config.alert_expiry)


def apply_change(
    request: Request, session: SessionDep, tasks: BackgroundTasks, alert_id: uuid.UUID,
    change: Change,
) -> models.Alert:
    """Apply the change in the request's transaction; publish it once that has committed
    (a background task runs after the answer, so after the session's commit)."""
    changed = alert_lifecycle.change_alert(session, str(alert_id), change,
                                           services(request).config.alert_expiry)
    publisher = services(request).publisher
    if publisher is not None:
        tasks.add_task(publisher.drain, session.tenant_id)
    return changed


@router.post("/alerts/{alert_id}/acknowledge", response_model=models.Alert,
             responses=CHANGE_RESPONSES, summary="Acknowledge an alert")
def post_acknowledge(
    request: Request, session: SessionDep, tasks: BackgroundTasks, alert_id: AlertId,
    body: Annotated[models.NoteOnly | None, Body()] = None,
) -> models.Alert:
    """open or snoozed -> acknowledged: a human is on it."""
    note = body.note if body is not None else None
    return apply_change(request, session, tasks, alert_id, Change(Action.ACKNOWLEDGE, note=note))


@router.post("/alerts/{alert_id}/assign", response_model=models.Alert,
             responses={**CHANGE_RESPONSES, 403: error_doc("an agent assigning")},
             summary="Assign an alert (coordinators, admins)")
def post_assign(
    request: Request, session: SessionDep, tasks: BackgroundTasks, alert_id: AlertId,
    body: models.AssignBody,
) -> models.Alert:
    """Any status; the assignee is an enabled user of the tenant, or null (unassigned)."""
    return apply_change(request, session, tasks, alert_id,
                   Change(Action.ASSIGN, assignee=body.assignee, note=body.note))


@router.post("/alerts/{alert_id}/snooze", response_model=models.Alert,
             responses=CHANGE_RESPONSES, summary="Snooze an alert")
def post_snooze(
    request: Request, session: SessionDep, tasks: BackgroundTasks, alert_id: AlertId,
    body: models.SnoozeBody,
) -> models.Alert:
    """open, acknowledged or snoozed -> snoozed until a time; then it reads as open."""
    until = _aware(body.until, "until")
    assert until is not None
    if until <= datetime.now(UTC):
        raise InvalidInput("must be in the future", "until")
    return apply_change(request, session, tasks, alert_id,
                   Change(Action.SNOOZE, until=until, note=body.note))


@router.post("/alerts/{alert_id}/resolve", response_model=models.Alert,
             responses=CHANGE_RESPONSES, summary="Resolve an alert")
def post_resolve(
    request: Request, session: SessionDep, tasks: BackgroundTasks, alert_id: AlertId,
    body: models.ResolveBody,
) -> models.Alert:
    """Any status but resolved -> resolved, with a resolution code: final unless reopened."""
    return apply_change(request, session, tasks, alert_id,
                   Change(Action.RESOLVE, resolution=body.resolution, note=body.note))


@router.post("/alerts/{alert_id}/reopen", response_model=models.Alert,
             responses=CHANGE_RESPONSES, summary="Reopen an alert")
def post_reopen(
    request: Request, session: SessionDep, tasks: BackgroundTasks, alert_id: AlertId,
    body: Annotated[models.NoteOnly | None, Body()] = None,
) -> models.Alert:
    """resolved or expired -> open (its expiry clock starts again)."""
    note = body.note if body is not None else None
    return apply_change(request, session, tasks, alert_id, Change(Action.REOPEN, note=note))


@router.post("/alerts/{alert_id}/notes", response_model=models.Alert,
             responses=ALERT_NOT_FOUND, summary="Add a note to an alert")
def post_note(
    request: Request, session: SessionDep, tasks: BackgroundTasks, alert_id: AlertId,
    body: models.NoteBody,
) -> models.Alert:
    """Any status: the note is appended to the alert's notes, with its author."""
    return apply_change(request, session, tasks, alert_id, Change(Action.NOTE, note=body.text))


@router.get("/churn-causes", response_model=models.ChurnCauses, summary="Why customers leave")
def get_churn_causes(
    session: SessionDep, since: Since = None, until: Until = None,
    plan: Annotated[str | None, Query(max_length=256)] = None,
) -> models.ChurnCauses:
    """Cancellations by month (UTC), reason code and plan, with counts and the MRR of the
    accounts that left (plan and MRR as last known in the accounts table)."""
    since, until = _window(since, until)
    return queries.churn_causes(session, since=since, until=until, plan=plan)


@router.get("/win-back", response_model=models.WinBackPage, summary="The win-back log")
def get_win_back(
    request: Request,
    session: SessionDep,
    status: models.WinBackStatus | None = None,
    campaign: Annotated[str | None, Query(
        max_length=257, pattern=r"^[^:]+(:[^:]+)?$",
        description="a workflow (every variant) or workflow:variant")] = None,
    owner: Annotated[str | None, Query(max_length=64)] = None,
    account: Annotated[str | None, Query(max_length=128)] = None,
    limit: Limit = None,
    cursor: Cursor = None,
) -> models.WinBackPage:
    """One entry per workflow trigger, newest first: its campaign (workflow, experiment
    and variant), status (triggered, delivered, engaged, saved, lost: from workflow.*
    outcome events and the workflow's signals), result, next step and the account's
    owner. An agent sees the entries of its accounts only."""
    return queries.win_back_log(
        session, status=status, campaign=campaign, owner=owner, account_id=account,
        limit=page_size(request, limit), cursor=cursor,
    )


@router.get("/experiments/{key}", response_model=models.ExperimentReport,
            responses={404: error_doc("no account of this tenant was assigned to it")},
            summary="An experiment's results per arm")
def get_experiment(
    session: SessionDep,
    key: Annotated[str, Path(min_length=1, max_length=128)],
    since: Since = None,
    until: Until = None,
    control: Annotated[str, Query(min_length=1, max_length=128,
                                  description="the arm the others are compared with")]
    = "holdout",
) -> models.ExperimentReport:
    """Per arm: accounts assigned in [since, until) (until: now by default), saved, lost
    and churned (cancelled at or after assignment, before until); save and churn rates
    over the accounts assigned, with 95 % Wilson intervals, and each arm's difference
    from the control arm (Newcombe interval). As churnwatch experiment report; an agent's
    report covers its own accounts only."""
    since, until = _window(since, until)
    return queries.experiment_report(
        session, key, since=since, until=until or datetime.now(UTC), control=control,
    )


def _user(user: ApiUser) -> models.User:
    return models.User(name=user.name, role=str(user.role), tenant_id=user.tenant_id,  # type: ignore[arg-type]
                       created_at=user.created_at, disabled_at=user.disabled_at)


@router.get("/users", response_model=models.UserList, summary="Users (admin)",
            responses={403: error_doc("not an admin")})
def get_users(session: AdminDep) -> models.UserList:
    """The tenant's users, disabled ones included."""
    return models.UserList(items=[_user(u) for u in list_users(session.conn, session.tenant_id)])


@router.post("/users", response_model=models.CreatedUser, status_code=status.HTTP_201_CREATED,
             summary="Create a user (admin)",
             responses={403: error_doc("not an admin"),
                        409: error_doc("the name is taken")})
def post_user(session: AdminDep, new: models.NewUser) -> models.CreatedUser:
    """A new user of the admin's tenant; its token is in this answer only."""
    user, token = add_user(session.conn, session.tenant_id, new.name, new.role)
    return models.CreatedUser(**_user(user).model_dump(), token=token)


@router.delete("/users/{name}", response_model=models.User, summary="Disable a user (admin)",
               responses={403: error_doc("not an admin"),
                          404: error_doc("no such user in this tenant")})
def delete_user(session: AdminDep, name: Annotated[str, Path(max_length=64)]) -> models.User:
    """Disable the user: its token stops working at once. Users are never deleted, so the
    accounts they owned keep a meaningful owner name."""
    return _user(disable_user(session.conn, name, session.tenant_id))
