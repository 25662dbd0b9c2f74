"""The alert lifecycle's pure parts: the transition table, and the alert state v1
message a history row becomes (checked against the published JSON Schema)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import jsonschema
import orjson
import pytest

from api.alert_lifecycle import Action, Status, next_status
from api.alert_states import alert_state_message
from api.errors import Conflict

SCHEMAS = Path(__file__).parents[3] / "schemas"

ALLOWED = {
    (Status.OPEN, Action.ACKNOWLEDGE): Status.ACKNOWLEDGED,
    (Status.SNOOZED, Action.ACKNOWLEDGE): Status.ACKNOWLEDGED,
    (Status.OPEN, Action.SNOOZE): Status.SNOOZED,
    (Status.ACKNOWLEDGED, Action.SNOOZE): Status.SNOOZED,
    (Status.SNOOZED, Action.SNOOZE): Status.SNOOZED,
    (Status.OPEN, Action.RESOLVE): Status.RESOLVED,
    (Status.ACKNOWLEDGED, Action.RESOLVE): Status.RESOLVED,
    (Status.SNOOZED, Action.RESOLVE): Status.RESOLVED,
    (Status.EXPIRED, Action.RESOLVE): Status.RESOLVED,
    (Status.RESOLVED, Action.REOPEN): Status.OPEN,
    (Status.EXPIRED, Action.REOPEN): Status.OPEN,
    **{(status, action): status for status in Status for action in (Action.ASSIGN, Action.NOTE)},
}


@pytest.mark.parametrize(
    ("status", "action"), [(s, a) for s in Status for a in Action], ids=lambda v: str(v),
)
def test_every_status_and_action(status: Status, action: Action) -> None:
    if (status, action) in ALLOWED:
        assert next_status(status, action) is ALLOWED[(status, action)]
    else:
        with pytest.raises(Conflict) as refused:
            next_status(status, action)
        assert refused.value.status == 409 and refused.value.message


def test_refusals_say_what_to_do() -> None:
    with pytest.raises(Conflict, match="reopen it first"):
        next_status(Status.RESOLVED, Action.ACKNOWLEDGE)
    with pytest.raises(Conflict, match="expired: reopen it first"):
        next_status(Status.EXPIRED, Action.SNOOZE)
    with pytest.raises(Conflict, match="acknowledged already"):
        next_status(Status.ACKNOWLEDGED, Action.ACKNOWLEDGE)


def test_a_history_row_is_an_alert_state_v1_message() -> None:
    schema = orjson.loads((SCHEMAS / "alert_state.v1.schema.json").read_bytes())
    validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())
    validator.validate(orjson.loads((SCHEMAS / "examples" / "alert_state.v1.json").read_bytes()))
    at = datetime(2026, 11, 2, 9, 15, tzinfo=UTC)
    message = alert_state_message((
        1042, "059ce517-ec34-5809-b8cf-bdd6c5f433c5", "acme", "acct-42", 3, "snooze", at,
        "agent-a", "acknowledged", "snoozed", "agent-a", "agent-a",
        datetime(2026, 11, 5, tzinfo=UTC), None, None,
    ))
    body = orjson.loads(message.value)
    validator.validate(body)
    assert message.key == b"acme:acct-42"
    assert dict(message.headers) == {"message_id": b"1042", "schema_version": b"1"}
    assert (body["message_id"], body["at"], body["snoozed_until"]) == (
        "1042", "2026-11-02T09:15:00Z", "2026-11-05T00:00:00Z")
