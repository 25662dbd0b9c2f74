"""churnwatch events check: a sample file mapped and validated as the dataflow would."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from churnwatch.cli import main

LINES: list[dict[str, Any]] = [
    {"type": "track", "event": "Payment Failed", "messageId": "m1", "userId": "u1",
     "timestamp": "2026-11-28T10:00:00.000Z", "context": {"groupId": "acct-1"},
     "properties": {"amount": 49}},
    {"type": "group", "groupId": "acct-1", "messageId": "m2",
     "timestamp": "2026-11-28T10:00:00Z", "traits": {"plan": "pro", "mrr": 490}},
    {"type": "track", "event": "Order Completed", "messageId": "m3",
     "timestamp": "2026-11-28T10:00:00Z"},
    {"headers": {"ce_specversion": "1.0", "ce_id": "c2", "ce_source": "/app",
                 "ce_type": "Signed In", "ce_time": "2026-11-28T10:00:00Z",
                 "ce_accountid": "acct-3"}, "value": {"x": 1}},
]
SAMPLE = b"\n".join(orjson.dumps(line) for line in LINES) + b"\n\nnot json\n"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in [n for n in os.environ if n.startswith("CHURNWATCH_")]:
        monkeypatch.delenv(name)


def test_the_report_counts_types_and_reasons_with_examples(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sample = tmp_path / "sample.jsonl"
    sample.write_bytes(SAMPLE)
    assert main(["events", "check", str(sample), "--format", "auto"]) == 1
    out = capsys.readouterr().out
    assert "5 messages (format auto, mapping the shipped default)" in out
    assert "valid: 3" in out and "refused: 2" in out
    for event_type in ("billing.payment_failed", "account.traits_changed", "app.login"):
        assert event_type in out
    assert "line 3: no account: none of context.groupId" in out
    assert "not_json" in out and "line 6:" in out


def test_a_clean_sample_exits_0_and_a_bad_mapping_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sample = tmp_path / "sample.jsonl"
    sample.write_bytes(SAMPLE.splitlines()[0] + b"\n")
    assert main(["events", "check", str(sample), "--format", "segment"]) == 0
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text("tenant: {value: t}\n")
    assert main(["events", "check", str(sample), "--format", "segment",
                 "--mapping", str(mapping)]) == 1
    assert f"{mapping}: account: required" in capsys.readouterr().err
