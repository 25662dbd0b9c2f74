"""The workflow outcome events' contract: a trigger id (a UUID) and optional step and note,
checked alike by the fast path, the reference validator and the JSON Schema file."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import jsonschema
import orjson
import pytest

from schemas import SCHEMA_DIR
from schemas.event import (
    Event,
    EventLimits,
    Rejection,
    RejectReason,
    _judge_document,
    parse_event,
    validate_document,
)
from tests.builders import MISSING, event_doc

NOW = datetime(2026, 10, 2, tzinfo=UTC)
TRIGGER = "25431320-0335-5fc5-8e29-aad518ef8563"


def outcome_doc(attributes: Any = None, event_type: str = "workflow.saved") -> dict[str, Any]:
    return event_doc(event_type=event_type, user_id=None, source="crm",
                     attributes={"trigger_id": TRIGGER} if attributes is None else attributes)


CASES = [
    # (name, document, what a rejection's detail names; None: valid)
    ("delivered", outcome_doc(event_type="workflow.delivered"), None),
    ("engaged-step-note", outcome_doc({"trigger_id": TRIGGER, "step": "call_scheduled",
                                       "note": "Friday 10:00"}, "workflow.engaged"), None),
    ("lost-upper-case", outcome_doc({"trigger_id": TRIGGER.upper()}, "workflow.lost"), None),
    ("extra-attribute", outcome_doc({"trigger_id": TRIGGER, "offer": "20%"}), None),
    ("longest-step-note", outcome_doc({"trigger_id": TRIGGER, "step": "s" * 128,
                                       "note": "n" * 2000}), None),
    ("no-trigger", outcome_doc({}), "trigger_id"),
    ("no-attributes", outcome_doc(MISSING), "trigger_id"),
    ("trigger-null", outcome_doc({"trigger_id": None}), "trigger_id"),
    ("trigger-number", outcome_doc({"trigger_id": 7}), "trigger_id"),
    ("trigger-not-uuid", outcome_doc({"trigger_id": "trigger-1"}), "trigger_id"),
    ("trigger-no-dashes", outcome_doc({"trigger_id": TRIGGER.replace("-", "")}), "trigger_id"),
    ("trigger-newline", outcome_doc({"trigger_id": TRIGGER + "\n"}), "trigger_id"),
    ("trigger-braces", outcome_doc({"trigger_id": "{" + TRIGGER + "}"}), "trigger_id"),
    ("step-number", outcome_doc({"trigger_id": TRIGGER, "step": 3}), "attributes.step"),
    ("step-null", outcome_doc({"trigger_id": TRIGGER, "step": None}), "attributes.step"),
    ("step-129", outcome_doc({"trigger_id": TRIGGER, "step": "s" * 129}), "attributes.step"),
    ("note-list", outcome_doc({"trigger_id": TRIGGER, "note": ["a"]}), "attributes.note"),
    ("note-2001", outcome_doc({"trigger_id": TRIGGER, "note": "n" * 2001}), "attributes.note"),
]


@pytest.fixture(scope="module")
def event_schema() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(
        json.loads((SCHEMA_DIR / "event.v1.schema.json").read_text())
    )


@pytest.mark.parametrize(("name", "doc", "named"), CASES, ids=[c[0] for c in CASES])
def test_outcome_events_are_judged_alike_everywhere(
    name: str, doc: dict[str, Any], named: str | None,
    event_schema: jsonschema.Draft202012Validator,
) -> None:
    raw = orjson.dumps(doc)
    parsed = parse_event(raw, NOW, EventLimits())  # the fast path first
    reference = _judge_document(orjson.loads(raw), NOW, EventLimits(), -1, -1, 0.0, True)
    assert event_schema.is_valid(doc) == (named is None)
    if named is None:
        assert isinstance(parsed, Event) and parsed == reference
    else:
        assert isinstance(parsed, Rejection) and parsed == reference
        assert parsed.reason is RejectReason.SCHEMA
        assert named in parsed.detail


def test_the_shipped_example_is_a_valid_outcome(
    event_schema: jsonschema.Draft202012Validator,
) -> None:
    example = json.loads((SCHEMA_DIR / "examples" / "workflow_outcome.v1.json").read_text())
    assert event_schema.is_valid(example)
    assert isinstance(validate_document(example, None, EventLimits()), Event)
    assert example["event_type"].startswith("workflow.")
