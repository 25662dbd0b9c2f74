"""Decision records: every decision about a trigger, and sticky experiment assignments.

Rows of ``decisions`` and ``experiment_assignments``; the engine that makes
them lives in ``decisions``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from schemas.event import format_time
from schemas.workflow import WorkflowSignal, WorkflowTrigger


class Decision(StrEnum):
    IGNORE = "ignore"
    START_WORKFLOW = "start_workflow"
    ESCALATE = "escalate"
    HOLDOUT = "holdout"


HOLDOUT = "holdout"


class ReasonCode(StrEnum):
    RULE_MATCHED = "rule_matched"
    NO_RULE = "no_rule"
    RULE_IGNORE = "rule_ignore"
    NOT_ELIGIBLE_CANCELLED = "not_eligible_cancelled"
    NOT_ELIGIBLE_DO_NOT_CONTACT = "not_eligible_do_not_contact"
    NOT_ELIGIBLE_ACTIVE_WORKFLOW = "not_eligible_active_workflow"
    COOLDOWN = "cooldown"
    CAP_HIT = "cap_hit"
    HOLDOUT = "holdout"
    # an ignore rule on the account's alert statuses matched: a person is acting on it
    HUMAN_ACKNOWLEDGED = "human_acknowledged"


@dataclass(frozen=True, slots=True)
class DecisionRecord:
    """One decision about one trigger (a row of ``decisions``)."""

    decision_id: str
    tenant_id: str
    account_id: str
    alert_id: str
    trigger: str
    score_id: str | None
    risk: float | None
    tier: str | None
    policy_version: str
    rule: str | None
    rule_decision: Decision | None  # what the matching rule said
    decision: Decision  # what was decided after eligibility, caps and experiments
    workflow_key: str | None
    reasons: tuple[ReasonCode, ...]
    detail: str
    experiment_key: str | None
    variant: str | None
    trigger_id: str | None  # the workflow trigger it emitted, if any
    decided_at: datetime
    ingested_at: float = field(default=0.0, compare=False)

    def to_document(self) -> dict[str, object]:
        return {
            "decision_id": self.decision_id,
            "tenant_id": self.tenant_id,
            "account_id": self.account_id,
            "alert_id": self.alert_id,
            "trigger": self.trigger,
            "score_id": self.score_id,
            "tier": self.tier,
            "policy_version": self.policy_version,
            "rule": self.rule,
            "rule_decision": None if self.rule_decision is None else str(self.rule_decision),
            "decision": str(self.decision),
            "workflow_key": self.workflow_key,
            "reasons": [str(r) for r in self.reasons],
            "detail": self.detail,
            "experiment_key": self.experiment_key,
            "variant": self.variant,
            "trigger_id": self.trigger_id,
            "decided_at": format_time(self.decided_at),
        }


@dataclass(frozen=True, slots=True)
class ExperimentAssignment:
    """An account's sticky place in an experiment (a row of ``experiment_assignments``)."""

    tenant_id: str
    account_id: str
    experiment_key: str
    variant: str
    bucket: int
    assigned_at: datetime
    policy_version: str


DecisionOutput = DecisionRecord | WorkflowTrigger | WorkflowSignal | ExperimentAssignment
