"""One line of text for each kind of timeline item, from its stored row (as
:func:`api.queries.timeline` returns it)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def _reasons(value: object, limit: int = 3) -> str:
    if isinstance(value, Sequence) and not isinstance(value, str):
        return "; ".join(str(reason) for reason in list(value)[:limit])
    return ""


def _number(value: object, digits: int = 2) -> str:
    return f"{value:.{digits}f}" if isinstance(value, int | float) else "?"


def describe(kind: str, data: Mapping[str, Any]) -> str:
    """What happened, in a line: the fields a reader of the timeline looks for first."""
    if kind == "score":
        text = f"risk {_number(data.get('score'))} ({data.get('tier', '?')})"
    elif kind == "alert":
        text = f"{data.get('rule', '?')} ({data.get('severity', '?')}, tier {data.get('tier')})"
    elif kind == "usage_signal":
        text = (f"{data.get('signal_type', '?')}: usage {_number(data.get('usage_count'), 0)}"
                f" against a baseline of {_number(data.get('baseline_count'), 1)}")
    elif kind == "decision":
        text = f"{data.get('decision', '?')} (trigger {data.get('trigger', '?')})"
    elif kind == "workflow_trigger":
        text = f"{data.get('workflow_key', '?')}: {data.get('action', '?')}"
    elif kind == "workflow_signal":
        text = f"{data.get('workflow_key', '?')}: {data.get('signal', '?')} after" \
               f" {data.get('cause', '?')}"
    elif kind == "workflow_outcome":
        text = f"workflow {data.get('outcome', '?')}"
        if data.get("step"):
            text += f", next: {data['step']}"
        if data.get("note"):
            text += f" ({data['note']})"
    elif kind == "cancellation":
        text = f"cancelled: {data.get('reason_code') or 'no reason given'}"
    else:
        text = kind
    reasons = _reasons(data.get("reasons"))
    return f"{text}: {reasons}" if reasons else text
