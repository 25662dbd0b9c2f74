"""Deterministic ids, pinned as literal UUIDs.

Every output is idempotent by an id derived from its inputs; a change of the
namespace, the separator or the parts would give every row a new id after an
upgrade, so a replay or a restart would duplicate everything. Comparing an id
with the same function cannot catch that: these literals can. (Score and
decision ids are pinned by the replay digest, tests/golden/replay-digest.json.)
"""

from __future__ import annotations

import uuid
from datetime import date

import pytest

from detectors.tier1 import detect_cancellation
from detectors.usage import Observation, make_signal
from schemas.alert import ID_NAMESPACE, Severity, alert_id, deterministic_id
from schemas.signal import SignalType
from schemas.workflow import trigger_id
from tests.builders import make_event


def test_alert_id() -> None:
    assert alert_id("acme", "acct-1", "payment_failed", "evt-1") == (
        "5f2ac824-b3e0-5f7d-ad40-301af7f69433"
    )


def test_trigger_id() -> None:
    assert trigger_id("acme", "win_back", "acct-1", "2026-10-01T12:00:00Z") == (
        "19b7a100-a939-5eb9-80fe-5176b7fd21c2"
    )


def test_signal_id() -> None:
    observation = Observation(
        SignalType.LOGIN_DROP, firing=True, recovered=False, usage=1.0, baseline=10.0,
        severity=Severity.MEDIUM,
    )
    signal = make_signal("acme", "acct-1", observation, date(2026, 10, 1), "f1")
    assert signal.signal_id == "d926157e-d1ba-5ca8-b1ef-af8202e3c5ca"


def test_cancellation_id() -> None:
    event = make_event(event_type="subscription.cancelled", event_id="evt-9")
    cancellation = detect_cancellation(event)
    assert cancellation is not None
    assert cancellation.cancellation_id == "fdf51195-12d7-5872-a28f-21f0a90d746d"


@pytest.mark.parametrize(
    "parts",
    [
        ("score", "v1", "acme", "acct-1", "m1", "1790000000.5", "evt-1", ""),
        ("a:b", "c"),
        ("",),
        ("tenant-é", "账户", "emoji 😀", "\x00\x1f"),
        *((f"part-{seed}", str(seed * 7919)) for seed in range(64)),
    ],
)
def test_deterministic_id_is_uuid5(parts: tuple[str, ...]) -> None:
    """Written out for speed, it must stay exactly ``uuid.uuid5`` over the joined parts
    (every variant digit, 8 to b, comes up among these)."""
    assert deterministic_id(*parts) == str(uuid.uuid5(ID_NAMESPACE, "\x1f".join(parts)))
