"""Workflow outcome events in the account kernel: one WorkflowOutcome each, deduplicated,
and invisible to features, detectors, lateness and scoring."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from accounts.config import AccountConfig, ScoringConfig
from accounts.debounce import ScoreRequest
from accounts.processor import AccountProcessor
from detectors.inactivity import activity_matcher
from detectors.tier1 import DEFAULT_TIER1_RULES
from featurestore.aggregation import CompiledFeatures
from featurestore.definitions import load_definitions
from schemas.event import OUTCOME_EVENT_TYPES, Event
from schemas.workflow import OUTCOME_KINDS, OutcomeKind, WorkflowOutcome
from tests.builders import T0, make_event

CONFIG = AccountConfig(86_400.0, 1_000, DEFAULT_TIER1_RULES,
                       CompiledFeatures(load_definitions()),
                       scoring=ScoringConfig(debounce_seconds=0.0))
TRIGGER = "25431320-0335-5fc5-8e29-aad518ef8563"


def outcome(event_id: str, kind: str, hours: float, **attributes: Any) -> Event:
    return make_event(event_id=event_id, event_type=f"workflow.{kind}", user_id=None,
                      source="crm", event_time=T0 + timedelta(hours=hours),
                      attributes={"trigger_id": TRIGGER, **attributes})


def login(event_id: str, hours: float) -> Event:
    return make_event(event_id=event_id, event_time=T0 + timedelta(hours=hours))


def test_the_outcome_types_are_the_validated_ones() -> None:
    assert set(OUTCOME_KINDS) == OUTCOME_EVENT_TYPES
    assert set(OUTCOME_KINDS.values()) == set(OutcomeKind)


def test_an_outcome_is_recorded_and_nothing_else() -> None:
    processor = AccountProcessor(CONFIG)
    first = processor.process([login("l1", 0)])
    assert any(isinstance(o, ScoreRequest) for o in first.outputs)
    features_before = processor.feature_values()
    newest_before = processor.newest

    # Later in event time than the login: it would move the watermark and ask for a
    # score if it were the account's behaviour.
    result = processor.process([outcome("o1", "engaged", 30, step="call", note="Friday")])
    (recorded,) = result.outputs
    assert recorded == WorkflowOutcome.of(result_event := outcome("o1", "engaged", 30,
                                                                   step="call", note="Friday"))
    assert isinstance(recorded, WorkflowOutcome)
    assert (recorded.outcome, recorded.trigger_id, recorded.step, recorded.note,
            recorded.event_id, recorded.occurred_at) == (
        OutcomeKind.ENGAGED, TRIGGER, "call", "Friday", "o1", result_event.event_time)
    assert result.events == []  # not an event of the account's behaviour
    assert processor.feature_values() == features_before
    assert processor.newest == newest_before
    # The same event again: a copy, dropped like any other.
    again = processor.process([outcome("o1", "engaged", 30, step="call", note="Friday")])
    assert again.outputs == [] and again.duplicates == 1


def test_an_outcome_ids_follow_the_event() -> None:
    a = WorkflowOutcome.of(outcome("o1", "saved", 1))
    b = WorkflowOutcome.of(outcome("o1", "saved", 1))
    c = WorkflowOutcome.of(outcome("o2", "saved", 1))
    assert a is not None and b is not None and c is not None
    assert a.outcome_id == b.outcome_id != c.outcome_id
    assert WorkflowOutcome.of(login("l", 0)) is None


def test_outcomes_are_never_activity() -> None:
    everything = activity_matcher(lambda _event_type: True)  # an activity feature on "*"
    assert not any(everything(t) for t in OUTCOME_EVENT_TYPES)
    assert everything("app.login") and everything("workflow.paused")
