"""Versioned contracts: event envelope, alert, risk score, workflow trigger and signal, dead
letter (JSON Schema + runtime); the Schema Registry wire format (``schemas.framing``)."""

from pathlib import Path

from schemas.alert import ALERT_SCHEMA_VERSION, Alert, AlertTier, Severity, alert_id
from schemas.dead_letter import DeadLetter
from schemas.event import (
    Event,
    EventLimits,
    Rejection,
    RejectReason,
    format_time,
    parse_event,
    subject_key,
    validate_document,
)
from schemas.workflow import (
    WORKFLOW_SCHEMA_VERSION,
    SignalKind,
    WorkflowAction,
    WorkflowSignal,
    WorkflowTrigger,
    trigger_id,
)

SCHEMA_DIR = Path(__file__).parent

__all__ = [
    "ALERT_SCHEMA_VERSION",
    "SCHEMA_DIR",
    "WORKFLOW_SCHEMA_VERSION",
    "Alert",
    "AlertTier",
    "DeadLetter",
    "Event",
    "EventLimits",
    "RejectReason",
    "Rejection",
    "Severity",
    "SignalKind",
    "WorkflowAction",
    "WorkflowSignal",
    "WorkflowTrigger",
    "alert_id",
    "format_time",
    "parse_event",
    "subject_key",
    "trigger_id",
    "validate_document",
]
