"""Workflow trigger v1 and workflow signal v1: what downstream workflows consume.

Both go to the ``churn.workflow-triggers`` topic (Kafka key
``<tenant_id>:<account_id>``, so an account's trigger and its later signals
arrive in order; header ``message_id``) and to the Postgres tables
``workflow_triggers`` and ``workflow_signals``. The contracts are
``workflow_trigger.v1.schema.json`` and ``workflow_signal.v1.schema.json``
beside this module, with an example each in ``examples/``.

A trigger's idempotency key is (tenant, workflow_key, account, episode); its
``trigger_id`` is a UUIDv5 of exactly that, and ``episode`` is the event time
the episode opened, so a replay or a retry never starts a workflow twice.

What became of a trigger comes back as events on the events topic
(``workflow.delivered``, ``workflow.engaged``, ``workflow.saved``,
``workflow.lost``, attributes ``trigger_id`` and optionally ``step`` and
``note``: see ``schemas.event``), each a :class:`WorkflowOutcome` row of
``workflow_outcomes``; with the triggers and signals they make the win-back log.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

import orjson

from schemas.alert import deterministic_id
from schemas.event import Event, format_time, subject_key

WORKFLOW_SCHEMA_VERSION = 1


class WorkflowAction(StrEnum):
    START_WORKFLOW = "start_workflow"
    ESCALATE = "escalate"


class SignalKind(StrEnum):
    RECOVERED = "recovered"  # the account came back: the workflow may exit early
    CANCELLED = "cancelled"  # the account cancelled: the workflow should stop
    OPTED_OUT = "opted_out"  # the account asked not to be contacted: stop now


def episode_of(opened_at: datetime) -> str:
    """An episode's name: the event time it opened, to the second (``20261103T101500Z``)."""
    return opened_at.strftime("%Y%m%dT%H%M%SZ")


def trigger_id(tenant_id: str, workflow_key: str, account_id: str, episode: str) -> str:
    return deterministic_id("workflow-trigger", "v1", tenant_id, workflow_key, account_id, episode)


@dataclass(frozen=True, slots=True)
class WorkflowTrigger:
    """Start (or escalate) one workflow for one account, once per episode."""

    trigger_id: str
    tenant_id: str
    account_id: str
    workflow_key: str
    episode: str
    action: WorkflowAction
    channel: str
    decision_id: str
    alert_id: str
    trigger: str  # the alert's rule that led here
    score_id: str | None
    risk: float | None
    tier: str | None
    reasons: tuple[str, ...]
    experiment_key: str | None
    variant: str | None
    policy_version: str
    triggered_at: datetime
    active_until: datetime
    ingested_at: float = field(default=0.0, compare=False)

    @property
    def subject(self) -> str:
        return subject_key(self.tenant_id, self.account_id)

    @property
    def idempotency_key(self) -> str:
        return f"{self.tenant_id}:{self.workflow_key}:{self.account_id}:{self.episode}"

    def to_document(self) -> dict[str, object]:
        return {
            "schema_version": WORKFLOW_SCHEMA_VERSION,
            "message_type": "trigger",
            "trigger_id": self.trigger_id,
            "idempotency_key": self.idempotency_key,
            "tenant_id": self.tenant_id,
            "account_id": self.account_id,
            "workflow_key": self.workflow_key,
            "episode": self.episode,
            "action": str(self.action),
            "channel": self.channel,
            "decision_id": self.decision_id,
            "alert_id": self.alert_id,
            "trigger": self.trigger,
            "score_id": self.score_id,
            "risk": None if self.risk is None else round(self.risk, 6),
            "tier": self.tier,
            "reasons": list(self.reasons),
            "experiment": None if self.experiment_key is None
            else {"key": self.experiment_key, "variant": self.variant},
            "policy_version": self.policy_version,
            "triggered_at": format_time(self.triggered_at),
            "active_until": format_time(self.active_until),
        }

    def to_json(self) -> bytes:
        return orjson.dumps(self.to_document())


@dataclass(frozen=True, slots=True)
class WorkflowSignal:
    """News for an open workflow: the account recovered, or cancelled."""

    signal_id: str
    trigger_id: str
    tenant_id: str
    account_id: str
    workflow_key: str
    episode: str
    signal: SignalKind
    cause: str  # payment_succeeded, renewed, usage_recovered, cancelled
    cause_id: str  # the event or usage signal that said so
    signalled_at: datetime
    ingested_at: float = field(default=0.0, compare=False)

    @staticmethod
    def make(trigger: str, tenant_id: str, account_id: str, workflow_key: str, episode: str,
             signal: SignalKind, cause: str, cause_id: str, at: datetime) -> WorkflowSignal:
        return WorkflowSignal(
            deterministic_id("workflow-signal", "v1", trigger, str(signal)),
            trigger, tenant_id, account_id, workflow_key, episode, signal, cause, cause_id, at,
        )

    @property
    def subject(self) -> str:
        return subject_key(self.tenant_id, self.account_id)

    def to_document(self) -> dict[str, object]:
        return {
            "schema_version": WORKFLOW_SCHEMA_VERSION,
            "message_type": "signal",
            "signal_id": self.signal_id,
            "trigger_id": self.trigger_id,
            "tenant_id": self.tenant_id,
            "account_id": self.account_id,
            "workflow_key": self.workflow_key,
            "episode": self.episode,
            "signal": str(self.signal),
            "cause": self.cause,
            "cause_id": self.cause_id,
            "signalled_at": format_time(self.signalled_at),
        }

    def to_json(self) -> bytes:
        return orjson.dumps(self.to_document())


class OutcomeKind(StrEnum):
    """What became of a workflow trigger, in the order a win-back moves through them."""

    DELIVERED = "delivered"  # the message or call reached the account
    ENGAGED = "engaged"  # the account answered (opened, clicked, took the call)
    SAVED = "saved"  # the account stays: final
    LOST = "lost"  # the account leaves anyway: final


# event type -> outcome (see schemas.event.OUTCOME_EVENT_TYPES, which validates them)
OUTCOME_KINDS = {f"workflow.{kind}": kind for kind in OutcomeKind}


@dataclass(frozen=True, slots=True)
class WorkflowOutcome:
    """One outcome event of a workflow trigger: a row of ``workflow_outcomes``.

    ``outcome_id`` is derived from the event (tenant, account, event id), so a
    replayed or retried event writes no second row; two different events saying
    the same thing are two rows (the win-back log reads the furthest stage)."""

    outcome_id: str
    trigger_id: str
    tenant_id: str
    account_id: str
    outcome: OutcomeKind
    step: str | None
    note: str | None
    event_id: str
    source: str
    occurred_at: datetime
    ingested_at: float = field(default=0.0, compare=False)

    @staticmethod
    def of(event: Event) -> WorkflowOutcome | None:
        """The outcome an event reports, or None if it is not a ``workflow.*`` outcome.

        The validator has checked the attributes (a UUID ``trigger_id``; ``step``
        and ``note`` strings when present)."""
        kind = OUTCOME_KINDS.get(event.event_type)
        if kind is None:
            return None
        attributes = event.attributes
        step = attributes.get("step")
        note = attributes.get("note")
        return WorkflowOutcome(
            deterministic_id("workflow-outcome", "v1", event.tenant_id, event.account_id,
                             event.event_id),
            str(attributes["trigger_id"]).lower(),
            event.tenant_id,
            event.account_id,
            kind,
            step or None,
            note or None,
            event.event_id,
            event.source,
            event.event_time,
            event.ingested_at,
        )

    @property
    def subject(self) -> str:
        return subject_key(self.tenant_id, self.account_id)
