"""The win-back log's pure parts: campaign names, next steps, the timeline's outcome line."""

from __future__ import annotations

import pytest

from api.console.timeline import describe
from api.winback import campaign_name, next_step


def test_campaign_names_a_variant_within_an_experiment() -> None:
    assert campaign_name("win_back", None) == "win_back"
    assert campaign_name("win_back", "discount_20") == "win_back:discount_20"


@pytest.mark.parametrize(
    ("status", "step", "signal", "expected"),
    [
        ("triggered", None, None, "deliver"),
        ("delivered", None, None, "engage"),
        ("engaged", None, None, "close: saved or lost"),
        ("engaged", "call_scheduled", None, "call_scheduled"),  # the workflow's own word
        ("delivered", None, "opted_out", "stop: the account opted out"),
        ("saved", "call_scheduled", None, None),  # settled: nothing comes next
        ("lost", None, "cancelled", None),
    ],
    ids=["triggered", "delivered", "engaged", "named-step", "opted-out", "saved", "lost"],
)
def test_next_step(status: str, step: str | None, signal: str | None,
                   expected: str | None) -> None:
    assert next_step(status, step, signal) == expected


def test_an_outcome_on_the_timeline() -> None:
    assert describe("workflow_outcome", {"outcome": "engaged", "step": "call_scheduled",
                                         "note": "Friday"}) \
        == "workflow engaged, next: call_scheduled (Friday)"
    assert describe("workflow_outcome", {"outcome": "saved", "step": None, "note": None}) \
        == "workflow saved"
