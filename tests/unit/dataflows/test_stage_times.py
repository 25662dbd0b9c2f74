"""The stages' times add up: the absence trackers' time, counted as a stage of its own,
is not counted again in the parse's (it runs inside the parse step)."""

from __future__ import annotations

import itertools
import time
from datetime import UTC, datetime, timedelta

import pytest
from bytewax.connectors.kafka import KafkaSourceMessage
from prometheus_client import CollectorRegistry

from dataflows.metrics import PipelineMetrics
from dataflows.parse import MessageParser
from detectors.inactivity import AbsenceTracking
from detectors.usage import InactivityRule
from schemas.clock import DayCloser, EventClock
from schemas.event import EventLimits
from tests.builders import event_bytes

START = datetime(2026, 10, 1, tzinfo=UTC)
NOW = START + timedelta(days=60)


def test_the_parse_stage_leaves_out_the_absence_trackers_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    registry = CollectorRegistry()
    parser = MessageParser(EventLimits(), lambda: NOW, PipelineMetrics.create(registry),
                           shards=2, shards_score=True)
    tracking = AbsenceTracking([(InactivityRule(days=7), lambda _type: True)], 3600.0, "v1")
    hours = [1, 30, 60]  # with 1 h of lateness, 30:00 closes day 0 and 60:00 day 1
    batch: list[KafkaSourceMessage[bytes | None, bytes | None]] = [
        KafkaSourceMessage(key=None, value=event_bytes(
            event_id=f"e{h}", account_id="a",
            event_time=(START + timedelta(hours=h)).isoformat().replace("+00:00", "Z")),
            topic="t", partition=0, offset=n)
        for n, h in enumerate(hours)
    ]
    # A clock that moves one second each time it is read: every timed stretch is
    # as long as the readings inside it, whatever the machine.
    ticks = itertools.count()
    monkeypatch.setattr(time, "perf_counter", lambda: float(next(ticks)))
    before = next(ticks)
    parser.parse_batch(batch, None, tracking, DayCloser(EventClock(3600.0)))
    after = next(ticks)

    def stage(name: str) -> float:
        value = registry.get_sample_value("churnwatch_stage_batch_seconds_sum", {"stage": name})
        assert value is not None
        return value

    tracked = stage("track-inactivity")
    assert tracked >= 3  # two day closes and the batch's end, each tracked
    # the parse's first reading to its last, each second counted once
    assert stage("parse-events") + tracked == after - before - 2
