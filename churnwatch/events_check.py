"""``churnwatch events check FILE``: what churnwatch would make of a sample of events.

A platform team tries its own data before connecting: each line of a JSONL
file is one message, mapped (``--format``, ``--mapping``) and validated
exactly as the dataflow would, and the report counts the valid events by the
event type they became and the refused ones by reason, with the first
examples of each problem. A line may also be a Kafka record,
``{"headers": {"ce_type": "...", ...}, "value": {...} or "text"}``, for
CloudEvents in binary mode or a tenant taken from a header.
"""

from __future__ import annotations

import sys
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import orjson

from schemas.event import Event, EventLimits, Rejection, parse_event
from schemas.formats import Decoder, InputFormat, load_mapping

EXAMPLES_PER_REASON = 3


@dataclass
class CheckReport:
    """What a sample file became."""

    messages: int = 0
    event_types: Counter[str] = field(default_factory=Counter)
    reasons: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[tuple[int, str]]] = field(default_factory=dict)

    @property
    def refused(self) -> int:
        return sum(self.reasons.values())

    def add(self, line: int, result: Event | Rejection) -> None:
        self.messages += 1
        if isinstance(result, Event):
            self.event_types[result.event_type] += 1
            return
        reason = str(result.reason)
        self.reasons[reason] += 1
        kept = self.examples.setdefault(reason, [])
        if len(kept) < EXAMPLES_PER_REASON:
            kept.append((line, result.detail))


def record(line: bytes) -> tuple[bytes, list[tuple[str, bytes]]]:
    """A line as (value, headers): a Kafka record wrapper, or the value itself."""
    stripped = line.strip()
    if stripped.startswith(b"{") and b'"headers"' in stripped and b'"value"' in stripped:
        try:
            wrapper = orjson.loads(stripped)
        except orjson.JSONDecodeError:
            return stripped, []
        if isinstance(wrapper, dict) and set(wrapper) <= {"headers", "value", "key"}:
            value = wrapper.get("value")
            raw = value.encode() if isinstance(value, str) else orjson.dumps(value)
            headers = wrapper.get("headers") or {}
            if isinstance(headers, dict):
                return raw, [(str(k), str(v).encode()) for k, v in headers.items()]
    return stripped, []


def check_file(
    path: Path, input_format: InputFormat, mapping: Path | None, limits: EventLimits,
    now: datetime | None = None,
) -> CheckReport:
    decoder = None if input_format is InputFormat.NATIVE else Decoder(
        input_format, load_mapping(mapping), limits)
    now = now or datetime.now(UTC)
    report = CheckReport()
    with path.open("rb") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            value, headers = record(line)
            result = parse_event(value, now, limits) if decoder is None else decoder.decode(
                value, headers, now)
            report.add(number, result)
    return report


def print_report(report: CheckReport, source: str, out: TextIO | None = None,
                 header: dict[str, Any] | None = None) -> None:
    out = out or sys.stdout
    described = ", ".join(f"{k} {v}" for k, v in (header or {}).items())
    print(f"{source}: {report.messages:,} messages" + (f" ({described})" if described else ""),
          file=out)
    valid = report.messages - report.refused
    print(f"  valid: {valid:,}", file=out)
    for event_type, count in report.event_types.most_common():
        print(f"    {event_type:<32} {count:>8,}", file=out)
    print(f"  refused: {report.refused:,}", file=out)
    for reason, count in report.reasons.most_common():
        print(f"    {reason:<32} {count:>8,}", file=out)
        for line, detail in report.examples.get(reason, []):
            print(f"      line {line}: {detail}", file=out)
