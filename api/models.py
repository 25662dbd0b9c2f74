"""The API's request and response bodies (pydantic): what /openapi.json documents.

Times are RFC 3339 in UTC. Lists answer ``{"items": [...], "next_cursor": ...}``;
``next_cursor`` is null on the last page.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

TierName = Literal["low", "medium", "high"]
AlertStatus = Literal["open", "acknowledged", "snoozed", "resolved", "expired"]
RoleName = Literal["admin", "coordinator", "agent"]


class ErrorBody(BaseModel):
    code: str = Field(examples=["invalid"])
    message: str
    field: str | None = Field(None, description="the request field at fault, if one is")


class ErrorResponse(BaseModel):
    error: ErrorBody


AccountStatus = Literal["active", "cancelled"]


class AccountSummary(BaseModel):
    """An account (the accounts table) and its latest primary (non-shadow) risk score."""

    account_id: str
    risk: float
    tier: TierName
    reasons: list[str]
    model_version: str
    score_time: datetime
    expires_at: datetime
    owner: str | None
    company_name: str | None
    plan: str | None
    mrr: float | None = Field(description="monthly recurring revenue; null: not known")
    renewal_date: date | None
    status: AccountStatus
    last_event_at: datetime | None = Field(description="event time of its newest event")


class MrrAtRisk(BaseModel):
    """The MRR of the active accounts whose latest tier is high (under the list's owner and
    plan filters, not its tier or status)."""

    mrr: float = Field(description="the sum of their known MRR")
    accounts: int = Field(description="how many accounts that is")
    without_mrr: int = Field(description="of those, how many have no MRR known")


class AccountPage(BaseModel):
    items: list[AccountSummary]
    next_cursor: str | None
    mrr_at_risk: MrrAtRisk


class LatestScore(BaseModel):
    score_id: str
    risk: float
    ml_risk: float
    rule_risk: float
    tier: TierName
    reasons: list[str]
    model_version: str
    feature_version: str
    score_time: datetime
    expires_at: datetime


class AccountDetail(BaseModel):
    account_id: str
    owner: str | None
    notes: str
    updated_at: datetime | None = Field(None, description="when owner or notes last changed")
    updated_by: str | None = Field(description="who changed them: a user, or 'stream' (an"
                                   " owner trait)")
    company_name: str | None = None
    plan: str | None = None
    mrr: float | None = None
    renewal_date: date | None = None
    status: AccountStatus = "active"
    status_at: datetime | None = Field(None, description="event time of the status")
    first_seen: datetime | None = Field(None, description="event time of its first event")
    last_event_at: datetime | None = None
    latest_score: LatestScore | None


class AccountPatch(BaseModel):
    """Change an account's owner (coordinators and admins) and/or notes. An omitted field
    stays as it is; ``"owner": null`` leaves the account without an owner."""

    model_config = {"extra": "forbid"}

    owner: str | None = Field(None, description="an enabled user of the tenant, or null")
    notes: str | None = Field(None, max_length=10_000)


class Alert(BaseModel):
    alert_id: str
    account_id: str
    tier: int = Field(description="1 decisive event, 2 usage signal, 3 risk score")
    rule: str
    severity: Literal["low", "medium", "high"]
    trigger_event_id: str
    trigger_event_type: str
    event_time: datetime
    reasons: list[str]
    status: AlertStatus = Field(description="open until someone acts; expired: not resolved"
                                " and untouched longer than the expiry setting")
    assignee: str | None = Field(description="the account's owner until assigned")
    snoozed_until: datetime | None = Field(description="set while snoozed")
    resolution: str | None = Field(description="the resolution code, once resolved")
    notes: str = Field(description="the notes added, one a line, each with its author")
    status_updated_at: datetime | None = Field(description="the last change; null: none")
    status_updated_by: str | None


class AlertPage(BaseModel):
    items: list[Alert]
    next_cursor: str | None


class TimelineItem(BaseModel):
    """One thing that happened to the account: its row as stored (less tenant, account and
    insertion time) under ``data``."""

    kind: Literal[
        "score", "usage_signal", "alert", "decision", "workflow_trigger", "workflow_signal",
        "workflow_outcome", "cancellation",
    ]
    time: datetime
    id: str
    data: dict[str, Any]


class TimelinePage(BaseModel):
    items: list[TimelineItem]
    next_cursor: str | None


class Features(BaseModel):
    account_id: str
    feature_version: str
    as_of: datetime = Field(description="event time of the values")
    features: dict[str, float]


class ScoreBody(BaseModel):
    """Omit ``features`` to score the account's current features (Redis); give every
    feature of the live model to score that vector instead."""

    model_config = {"extra": "forbid"}

    features: dict[str, Any] | None = None


class OnDemandScore(BaseModel):
    account_id: str
    source: Literal["online_store", "supplied"]
    as_of: datetime | None = Field(None, description="event time of stored features")
    risk: float = Field(description="the model's risk blended with no rule risk (see README)")
    ml_risk: float
    tier: TierName
    reasons: list[str]
    model_version: str
    feature_version: str
    features: dict[str, float]


class ChurnCause(BaseModel):
    period: str = Field(description="the month, YYYY-MM (UTC)", examples=["2026-09"])
    reason_code: str | None = Field(description="null: the cancellation gave none")
    plan: str | None = Field(None, description="the account's plan (last known); null: none")
    cancellations: int
    accounts: int
    mrr: float = Field(0.0, description="the accounts' MRR (last known), each counted once")
    accounts_without_mrr: int = Field(0, description="accounts with no MRR known")


class ChurnCauses(BaseModel):
    items: list[ChurnCause]


class User(BaseModel):
    name: str
    role: RoleName
    tenant_id: str
    created_at: datetime | None
    disabled_at: datetime | None


class UserList(BaseModel):
    items: list[User]


class NewUser(BaseModel):
    model_config = {"extra": "forbid"}

    name: str
    role: RoleName


class CreatedUser(User):
    token: str = Field(description="the bearer token, shown this once only")


_NOTE = Field(None, min_length=1, max_length=2_000, description="recorded in the history")


class NoteOnly(BaseModel):
    """An optional note with the change."""

    model_config = {"extra": "forbid"}

    note: str | None = _NOTE


class AssignBody(BaseModel):
    model_config = {"extra": "forbid"}

    assignee: str | None = Field(description="an enabled user of the tenant, or null")
    note: str | None = _NOTE


class SnoozeBody(BaseModel):
    model_config = {"extra": "forbid"}

    until: datetime = Field(description="RFC 3339 with offset, in the future")
    note: str | None = _NOTE


class ResolveBody(BaseModel):
    model_config = {"extra": "forbid"}

    resolution: str = Field(pattern=r"^[a-z][a-z0-9_]{0,62}$",
                            examples=["saved", "churned", "false_alarm"])
    note: str | None = _NOTE


class NoteBody(BaseModel):
    model_config = {"extra": "forbid"}

    text: str = Field(min_length=1, max_length=2_000)


class AlertChange(BaseModel):
    """One change of an alert, as published on churn.alert-states (id = message_id)."""

    id: str
    version: int = Field(description="the alert's version after this change (1, 2, ...)")
    action: Literal["acknowledge", "assign", "snooze", "resolve", "note", "reopen"]
    at: datetime
    by: str
    from_status: AlertStatus
    to_status: AlertStatus
    from_assignee: str | None
    to_assignee: str | None
    snoozed_until: datetime | None
    resolution: str | None
    note: str | None


class AlertHistory(BaseModel):
    items: list[AlertChange]


WinBackStatus = Literal["triggered", "delivered", "engaged", "saved", "lost"]


class Campaign(BaseModel):
    name: str = Field(description="the workflow, or workflow:variant within an experiment",
                      examples=["win_back:discount_20"])
    workflow_key: str
    experiment_key: str | None
    variant: str | None


class WinBackEntry(BaseModel):
    """One workflow trigger (a campaign reaching one account) and what became of it."""

    trigger_id: str
    account_id: str
    campaign: Campaign
    channel: str
    action: Literal["start_workflow", "escalate"]
    trigger: str = Field(description="the alert's rule that led here")
    risk: float | None
    tier: TierName | None
    triggered_at: datetime
    active_until: datetime
    status: WinBackStatus = Field(description="the furthest stage reported by workflow.*"
                                  " outcome events; without saved or lost, a recovered"
                                  " signal reads as saved and a cancelled one as lost")
    status_at: datetime = Field(description="when the status was reached (event time)")
    result: Literal["saved", "lost", "recovered", "cancelled", "opted_out"] | None = Field(
        description="the final outcome, or the signal that ended the workflow; null: open")
    next_step: str | None = Field(description="the latest step an outcome named, else what"
                                  " the status calls for; null once saved or lost")
    note: str | None = Field(description="the latest note an outcome carried")
    outcomes: int = Field(description="outcome events recorded for this trigger")
    owner: str | None


class WinBackPage(BaseModel):
    items: list[WinBackEntry]
    next_cursor: str | None


class RateInterval(BaseModel):
    value: float
    low: float = Field(description="lower bound of the 95 % interval")
    high: float = Field(description="upper bound of the 95 % interval")


class ExperimentArm(BaseModel):
    variant: str
    control: bool
    assigned: int = Field(description="accounts assigned to the arm in the window")
    saved: int
    lost: int
    churned: int = Field(description="assigned accounts cancelled at or after their"
                         " assignment and before until")
    save_rate: RateInterval | None = Field(description="saved / assigned, Wilson interval")
    churn_rate: RateInterval | None = Field(description="churned / assigned, Wilson interval")
    save_rate_vs_control: RateInterval | None = Field(
        description="arm minus control, Newcombe's hybrid score interval")
    churn_rate_vs_control: RateInterval | None


class ExperimentReport(BaseModel):
    experiment_key: str
    tenant_id: str | None
    since: datetime | None
    until: datetime
    control: str | None = Field(description="the control arm (null: not assigned)")
    confidence: float
    arms: list[ExperimentArm]


def error_doc(description: str) -> dict[str, Any]:
    """An error answer in a route's OpenAPI ``responses``."""
    return {"model": ErrorResponse, "description": description}


class Health(BaseModel):
    status: Literal["ok"]
